"""The serving parts on their own: index, store, explanations, service start-up."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from factories import make_random_dataset

from clarec.data.split import load_predefined_split, random_split
from clarec.errors import ClarecError
from clarec.models import create
from clarec.serve.explain import explain, item_attributes, shared_attributes
from clarec.serve.index import ItemIndex, hnsw_recall
from clarec.serve.service import RecService, choose_model
from clarec.serve.store import Event, EventStore, normalise_url

from .helpers import build_run


def test_exact_index_search_add_and_save(tmp_path):
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(200, 16)).astype(np.float32)
    index = ItemIndex.build(vecs)
    assert index.kind == "exact" and index.size == 200
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    ids, scores = index.search(vecs[:3], 5)
    expected = np.argsort(-(unit[:3] @ unit.T), axis=1)[:, :5]
    np.testing.assert_array_equal(ids, expected)
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    index.add(-vecs[:1])  # a new item: found at once
    ids, _ = index.search(-vecs[:1], 1)
    assert ids[0, 0] == 200 and index.size == 201
    index.save(tmp_path / "i.faiss", {"model": "m"})
    loaded, info = ItemIndex.load(tmp_path / "i.faiss")
    assert info["model"] == "m" and info["size"] == 201 and loaded.size == 201
    np.testing.assert_array_equal(loaded.search(vecs[:3], 5)[0], index.search(vecs[:3], 5)[0])
    with pytest.raises(ClarecError):
        ItemIndex.load(tmp_path / "missing.faiss")


def test_hnsw_recall_is_measured_against_exact_search():
    vecs = np.random.default_rng(1).normal(size=(2000, 32)).astype(np.float32)
    hnsw = ItemIndex.build(vecs, kind="hnsw")
    assert hnsw.kind == "hnsw" and hnsw.size == 2000
    recall = hnsw_recall(vecs, k=20, n_queries=100, index=hnsw)
    assert 0.9 <= recall <= 1.0
    assert hnsw_recall(vecs[:100], k=20, n_queries=50) >= 0.99  # tiny sets: HNSW is exact


def test_store_round_trip_in_order_and_wal(tmp_path):
    url = f"sqlite:///{tmp_path / 'sub' / 'events.db'}"
    store = EventStore(url)
    assert store.journal_mode() == "wal" and store.dialect == "sqlite"
    store.add_item("n1", {"title": "new", "genres": ["A"]})
    assert store.add_events([Event("u1", "i1", "click", 5), Event("u2", "n1", "view", 3)]) == 2
    store.add_events([Event("u1", "i2", "click", 1)])
    store.close()
    again = EventStore(url)
    assert [(e.user_id, e.item_id, e.behavior, e.timestamp) for e in again.events()] == [
        ("u1", "i1", "click", 5),
        ("u2", "n1", "view", 3),
        ("u1", "i2", "click", 1),
    ]
    assert again.items() == [("n1", {"title": "new", "genres": ["A"]})]
    assert again.count_events() == 3
    assert normalise_url("postgres://a@h/db") == "postgresql+psycopg://a@h/db"
    with pytest.raises(ClarecError, match="cannot open the event store"):
        EventStore("nosuchdb://x")
    with pytest.raises(ClarecError, match=r"'mysql://u@h/db': the store is SQLite .* or PostgreSQL"):
        EventStore("mysql://u@h/db")  # a database SQLAlchemy knows, but not one the store is made for
    (tmp_path / "afile").write_text("")
    for bad in (f"sqlite:///{tmp_path / 'afile' / 'x.db'}", "postgresql://u@127.0.0.1:notaport/db"):
        with pytest.raises(ClarecError, match="cannot open the event store"):  # were tracebacks
            EventStore(bad)


def test_attributes_and_explanations():
    assert item_attributes({"genres": "Action|Drama", "brand": "Acme", "title": "x"}) == {
        "genres": {"Action", "Drama"},
        "brand": {"Acme"},
    }
    # MovieLens' categories copy its genres: said once
    assert item_attributes({"genres": ["Drama"], "categories": ["Drama"]}) == {"genres": {"Drama"}}
    a, b = item_attributes({"genres": ["Action", "Drama"]}), item_attributes({"genres": "Drama|Comedy"})
    assert shared_attributes(a, b) == {"genres": ["Drama"]}


def test_explanations_follow_the_model_terms(run_dir):
    svc = RecService(run_dir, db_url="sqlite://", model_label="knn")
    try:
        model = svc.model
        u = svc.user_pos["u1"]
        hist = svc.history("u1")
        recs = svc.recommend("u1", k=3)
        j = svc.item_pos[recs.items[0]["item_id"]]
        # itemknn: score_j = sum over the history of S[h, j]; the top contributors are the largest terms
        terms = np.asarray(model.similarity[hist][:, j].toarray()).ravel()
        assert recs.items[0]["score"] == pytest.approx(terms.sum(), rel=1e-5)
        because = recs.items[0]["explanation"]["because"]
        assert [b["similarity"] for b in because] == pytest.approx(
            sorted(terms[terms > 0], reverse=True)[:3], rel=1e-5
        )
        assert because[0]["item_id"] in {svc.item_ids[h] for h in hist} and u == svc.user_pos["u1"]
        out = explain(
            svc.model, np.array([], dtype=np.int64), np.array([j]), svc.item_ids, svc.attributes, svc.titles
        )
        assert out == [{"because": [], "shared": {}}]
    finally:
        svc.close()


def test_scores_of_the_wrong_shape_are_one_error_not_an_index_error(run_dir):
    svc = RecService(run_dir, db_url="sqlite://", model_label="knn")
    try:
        right = svc.model.score
        svc.model.score = lambda users: right(users)[:, :-1]  # a model of one's own, one item short
        with pytest.raises(
            ClarecError, match=r"model 'itemknn' scored 1 user\(s\) \d+ items as an array of shape"
        ):
            svc.recommend("u1", k=3)
    finally:
        svc.close()


def test_service_start_errors(run_dir, tmp_path):
    with pytest.raises(ClarecError, match="no model 'nope'"):
        choose_model(run_dir, "nope")
    assert choose_model(run_dir, None) == "lm"  # best validation ndcg@20 in results.json
    # chosen on validation, whatever test says; a model without a figure is never chosen
    other = tmp_path / "other"
    other.mkdir()
    (other / "models").symlink_to(run_dir / "models", target_is_directory=True)
    (other / "config.yaml").write_text("evaluation: {main_metric: recall@10}\n")
    names = sorted(p.name for p in (run_dir / "models").iterdir())
    figures = {
        n: {"valid": {"recall@10": 0.5 - 0.1 * i}, "test": {"recall@10": 0.1 * i}}
        for i, n in enumerate(names)
    }
    figures[names[0]]["valid"]["recall@10"] = float("nan")
    (other / "results.json").write_text(json.dumps(figures))
    assert choose_model(other, None) == names[1]
    with pytest.raises(ClarecError, match="run folder not found"):
        RecService(tmp_path / "missing")
    with pytest.raises(ClarecError, match="no saved models"):
        RecService(tmp_path)


def test_service_replays_items_before_events(run_dir, tmp_path):
    url = f"sqlite:///{tmp_path / 'e.db'}"
    svc = RecService(run_dir, db_url=url, model_label="ease")
    svc.add_item("brand-new", {"title": "brand new thing"})
    svc.add_events([Event("u3", "brand-new", "click", 1), Event("x9", "i2", "click", 2)])
    before = svc.recommend("u3", k=5).items
    svc.close()
    again = RecService(run_dir, db_url=url, model_label="ease")
    assert again.history("u3")[-1] == again.item_pos["brand-new"] == 30
    assert again.recommend("u3", k=5).items == before
    assert again.recommend("x9", k=5).path == "history"
    assert again.popularity[again.item_pos["brand-new"]] == 1
    again.close()


def test_small_run_for_bpr_folds_in(tmp_path):
    folder = build_run(tmp_path / "run", {"bpr": ("bpr", {"epochs": 5, "progress": False})})
    svc = RecService(folder, db_url="sqlite://")
    assert svc.index is not None and svc.index.size == 30  # BPR's item vectors are indexed
    svc.add_events([Event("u0", "i1", "click", 1)])
    assert svc.recommend("u0", k=3).path == "history"
    assert svc.health()["history_mode"] == "fold-in"
    similar = [s["item_id"] for s in svc.similar("i1", k=5)]
    svc.add_item("new1", {"title": "no text model, no interactions"})  # a zero vector in the index
    assert svc.index.size == 31 and svc.similar("new1", k=5) == []
    svc.close()
    # an index file left from other vectors of the same size (a model replaced in place) is rebuilt
    label = svc.label
    path = folder / "serve" / f"index-{label}.faiss"
    info = json.loads(Path(f"{path}.json").read_text())
    ItemIndex.build(np.random.default_rng(0).normal(size=(30, svc.index.dim))).save(
        path, {k: v for k, v in info.items() if k not in ("kind", "dim", "size")}
    )
    Path(f"{path}.json").write_text(json.dumps(info | {"vectors": "other"}))
    again = RecService(folder, db_url="sqlite://")
    assert [s["item_id"] for s in again.similar("i1", k=5)] == similar
    assert again.index_info["vectors"] == info["vectors"]
    again.close()


def test_cli_serve_reports_a_bad_run_folder_in_one_line(tmp_path, capsys):
    from clarec.cli import main

    from .helpers import free_port

    assert main(["serve", str(tmp_path / "missing"), "--port", str(free_port())]) == 2
    assert "run folder not found" in capsys.readouterr().err
    # a port in use: said in one line before anything is loaded
    import socket

    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert main(["serve", str(tmp_path / "missing"), "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_ranking_cache_is_dropped_by_the_users_next_event(run_dir):
    svc = RecService(run_dir, db_url="sqlite://", model_label="lm")
    try:
        first = svc.recommend("u1", k=5)
        assert svc.recommend("u1", k=5).items == first.items and svc.cache_hits == 1
        svc.recommend("u2", k=5)  # another user's entry
        top = first.items[0]["item_id"]
        svc.add_events([Event("u1", top, "click", 1)])  # the top item is now seen: it must go
        after = svc.recommend("u1", k=5)
        assert after.path == "history" and top not in [x["item_id"] for x in after.items]
        assert after.items != first.items and svc.cache_misses == 3
        # u2 is not affected by u1's event and still answered from the cache
        hits = svc.cache_hits
        svc.recommend("u2", k=5)
        assert svc.cache_hits == hits + 1
        # another query (k, exclude_seen, diversity) is its own entry
        assert len(svc.recommend("u1", k=3).items) == 3
        assert svc.recommend("u1", k=5, exclude_seen=False).items[0]["item_id"] == top
    finally:
        svc.close()


def test_ranking_cache_follows_profiles_items_and_popularity(run_dir):
    svc = RecService(run_dir, db_url="sqlite://", model_label="lm")
    try:
        assert svc.recommend("stranger", k=3).path == "popularity"
        svc.add_events([Event(f"x{n}", "i7", "click", 1) for n in range(25)])
        pop = svc.recommend("stranger", k=3)  # anyone's event moves the popularity list
        assert pop.path == "popularity" and pop.items[0]["item_id"] == "i7"
        svc.set_profile("stranger", {"text": "a comedy"})
        assert svc.recommend("stranger", k=3).path == "profile"
        before = [x["item_id"] for x in svc.recommend("u1", k=30).items]
        svc.add_item("fresh", {"title": "fresh", "genres": ["Comedy"]})  # recommendable at once
        after = [x["item_id"] for x in svc.recommend("u1", k=30).items]
        assert "fresh" in after and "fresh" not in before
        svc.ranking_cache_size = 1  # least recently used entries are dropped
        svc.recommend("u2", k=2)
        svc.recommend("u3", k=2)
        assert list(svc.ranking_cache) == [("u3", 2, True, 0.0)]
    finally:
        svc.close()


def test_inner_product_top_k_matches_scoring_every_item(run_dir):
    """The lm-content fast path (float32 ranking, exact rescoring of the candidates) gives the items
    and scores of the full float64 scores, seen items left out, ties by lower index."""
    from clarec.ranking import top_k, top_k_inner_product

    svc = RecService(run_dir, db_url="sqlite://", model_label="lm")
    try:
        model = svc.model
        vectors, t64, norm = model.query_items()
        faiss_search = svc._inner_product_search(vectors)
        asked = []

        def stingy(query, n):  # the float32 ranking, but cut short: the caller must ask again
            asked.append(n)
            ids, values = faiss_search(query, n)
            return ids[: min(n, 3 * len(asked))], values[: min(n, 3 * len(asked))]

        for u in range(model.n_users):
            scores = model.score([u])[0].copy()
            seen = model.seen[u].indices
            scores[seen] = -np.inf
            for k in (1, 5, 20):
                ids, vals = top_k(scores[None, :], k)
                for search in (None, faiss_search, stingy):
                    asked.clear()
                    got = top_k_inner_product(model.user_queries([u])[0], vectors, t64, k, seen, norm, search)
                    np.testing.assert_array_equal(got[0], ids[0])
                    np.testing.assert_array_equal(got[1], vals[0])
        # ties: equal item vectors are ranked by index, including at the k-th place
        rng = np.random.default_rng(0)
        base = rng.normal(size=(6, 8)).astype(np.float32)
        items = np.repeat(base, 3, axis=0)  # items 3i, 3i+1, 3i+2 are equal
        q = rng.normal(size=8).astype(np.float32)
        exact = (q.astype(np.float64)[None, :] @ items.T.astype(np.float64)).astype(np.float32)
        for k in range(1, 17):
            ids, vals = top_k(exact, k)
            got = top_k_inner_product(q, items, items.T.astype(np.float64), k)
            np.testing.assert_array_equal(got[0], ids[0])
            np.testing.assert_array_equal(got[1], vals[0])
        assert top_k_inner_product(q, items, items.T.astype(np.float64), 18) is None  # all: score them
        # the service uses it and answers as the full scores do
        recs = svc.recommend("u1", k=5)
        u = svc.user_pos["u1"]
        scores = model.score([u])[0].copy()
        scores[svc.history("u1")] = -np.inf
        ids, vals = top_k(scores[None, :], 5)
        assert [x["item_id"] for x in recs.items] == [svc.item_ids[j] for j in ids[0]]
        assert [x["score"] for x in recs.items] == [float(v) for v in vals[0]]
    finally:
        svc.close()


def test_two_tower_with_user_text_serves_a_profile(tmp_path, tiny_model_dir):
    """A two-tower model trained with profile text serves a user without history from the profile
    (the server renders the fields as training did); one trained without refuses (popularity)."""
    data = make_random_dataset(n_users=40, n_items=30, per_user=8, seed=3)
    data.users["user_id"] = data.user_ids
    data.users["occupation"] = ["engineer" if u % 2 else "artist" for u in range(data.n_users)]
    split = random_split(data, seed=0)
    folder = tmp_path / "run"
    split.save(folder / "split")
    params = {"encoder": str(tiny_model_dir), "cache_dir": "none", "epochs": 2, "batch_size": 32}
    params |= {"embedding_dim": 8, "hidden": 16, "n_negatives": 0, "num_threads": 1, "progress": False}
    results = {}
    for label, user_text in (("tt", True), ("plain", False)):
        create("two-tower", params | {"user_text": user_text}).fit(split.train).save(
            folder / "models" / label
        )
        results[label] = {"test": {"ndcg@20": 0.5}, "valid": {}}
    (folder / "results.json").write_text(json.dumps(results))
    (folder / "config.yaml").write_text("evaluation: {main_metric: ndcg@20}\n")

    svc = RecService(folder, db_url="sqlite://", model_label="tt")
    try:
        assert svc.health()["profiles_from_text"] is True
        assert svc.set_profile("stranger", {"occupation": "engineer"}) == "Occupation: engineer."
        got = svc.recommend("stranger", k=5, exclude_seen=False)
        assert got.path == "profile"
        assert "Occupation: engineer." in svc.model._profile_texts(split.train)  # as in training
        scores = svc.model.score_texts(["Occupation: engineer."])[0]
        assert [x["item_id"] for x in got.items] == [
            svc.item_ids[j] for j in np.argsort(-scores, kind="stable")[:5]
        ]
    finally:
        svc.close()
    svc = RecService(folder, db_url="sqlite://", model_label="plain")
    try:
        assert svc.health()["profiles_from_text"] is False
        svc.set_profile("stranger", {"occupation": "engineer"})
        assert svc.recommend("stranger", k=5).path == "popularity"
    finally:
        svc.close()


def test_diversity_reranking_is_maximal_marginal_relevance():
    """Items 0–2 are near-duplicates, 3 and 4 unlike anything: MMR worked by hand."""
    sim = np.eye(5)
    sim[:3, :3] = 1.0

    class Stub:
        def _similarity_among(self, cand):
            return sim[np.ix_(cand, cand)]

    scores = np.array([1.0, 0.95, 0.9, 0.5, 0.4, -np.inf, -np.inf])
    # relevance rescaled to [0, 1] over the finite candidates: 1, .917, .833, .167, 0
    assert RecService._mmr(Stub(), scores, 5, 0.0).tolist() == [0, 1, 2, 3, 4]
    # after 0: 1 and 2 are worth .5·rel − .5 < 0, item 3 .083, item 4 0; after 3, item 4 (0) still
    # beats 1 (−.042)
    assert RecService._mmr(Stub(), scores, 5, 0.5).tolist() == [0, 3, 4, 1, 2]
    assert RecService._mmr(Stub(), scores, 2, 0.5).tolist() == [0, 3]
    assert RecService._mmr(Stub(), scores, 9, 0.5).tolist() == [0, 3, 4, 1, 2]  # never an -inf item
    # a light touch keeps the near-duplicate 1 (.9·.917 − .1 = .725 > .9·.167 = .15)
    assert RecService._mmr(Stub(), scores, 3, 0.1).tolist() == [0, 1, 2]


def test_events_are_ordered_by_timestamp_and_items_a_model_cannot_add_are_left_out(tmp_path):
    seq = {"embedding_dim": 16, "epochs": 2, "progress": False, "num_threads": 1}
    folder = build_run(tmp_path / "run", {"slit": ("slit", {"reg": 1.0}), "sasrec": ("sasrec", seq)})
    url = f"sqlite:///{tmp_path / 'e.db'}"
    svc = RecService(folder, db_url=url, model_label="slit")
    pos = svc.item_pos
    # the same two events, the late one arriving first; equal timestamps keep the order of arrival
    svc.add_events([Event("late", "i5", "click", 200), Event("late", "i8", "click", 100)])
    svc.add_events([Event("ordered", "i8", "click", 100), Event("ordered", "i5", "click", 200)])
    svc.add_events([Event("tie", "i3", "click", 50), Event("tie", "i4", "click", 50)])
    assert svc.history("late").tolist() == svc.history("ordered").tolist() == [pos["i8"], pos["i5"]]
    assert svc.history("tie").tolist() == [pos["i3"], pos["i4"]]
    assert svc.recommend("late", k=5).items == svc.recommend("ordered", k=5).items
    base = svc.history("u0").tolist()
    svc.add_events([Event("u0", "i9", "click", 10**9), Event("u0", "i7", "click", 5)])
    assert svc.history("u0").tolist() == [*base, pos["i7"], pos["i9"]]  # events follow training
    svc.add_item("brand-new", {"title": "brand new thing"})
    svc.add_events([Event("ordered", "brand-new", "click", 300)])
    assert svc.skipped_items == []
    svc.close()
    again = RecService(folder, db_url=url, model_label="slit")  # replayed in the same order
    assert again.history("late").tolist() == [pos["i8"], pos["i5"]]
    assert again.history("ordered")[-1] == again.item_pos["brand-new"]
    again.close()
    # sasrec cannot add items: it starts on the same store without the added one and its event
    other = RecService(folder, db_url=url, model_label="sasrec")
    assert other.skipped_items == ["brand-new"] and other.health()["skipped_items"] == 1
    assert "brand-new" not in other.item_pos
    assert other.history("ordered").tolist() == [pos["i8"], pos["i5"]]
    assert other.recommend("ordered", k=5).path == "history"
    other.close()


def test_weighted_models_serve_live_events_with_their_behaviours_weights(tmp_path):
    # a run whose EASE and popularity read behaviour weights: a purchase (4) counted as a view (1)
    # in served histories, and a training user's first event dropped their training weights
    data = make_random_dataset(n_users=40, n_items=30, per_user=8, seed=3)
    rng = np.random.default_rng(0)
    bought = rng.random(data.n_interactions) < 0.3
    data.interactions["behavior"] = np.where(bought, "purchase", "view")
    data.interactions["weight"] = np.where(bought, 4.0, 1.0).astype(np.float32)
    split = random_split(data, seed=0)
    folder = tmp_path / "run"
    split.save(folder / "split")
    create("ease", {"reg": 10.0, "weighted": True}).fit(split.train).save(folder / "models" / "ease")
    create("popularity", {"weighted": True}).fit(split.train).save(folder / "models" / "pop")
    (folder / "results.json").write_text(json.dumps({"ease": {"valid": {"ndcg@20": 0.5}}}))
    (folder / "config.yaml").write_text(
        "data: {behavior_weights: {view: 1, purchase: 4}}\nevaluation: {main_metric: ndcg@20}\n"
    )
    svc = RecService(folder, db_url="sqlite://", model_label="ease")
    seen = svc.model.seen.toarray().astype(np.float64)
    u = int(np.flatnonzero((seen == 4.0).any(axis=1))[0])  # the fitted matrix holds the weights
    user, x = svc.user_ids[u], seen[u]
    j = int(np.flatnonzero(x == 0)[0])
    svc.add_events([Event(user, svc.item_ids[j], "purchase", 1)])
    assert svc.recommend(user, k=3).path == "history"
    x[j] += 4.0
    want = x @ svc.model.weights.astype(np.float64)
    np.testing.assert_allclose(svc._scores(user, svc.history(user), "history"), want, rtol=1e-5, atol=1e-6)
    # a new user's events: weighted too; a behaviour training dropped is refused, nothing stored
    svc.add_events([Event("new", svc.item_ids[0], "view", 1), Event("new", svc.item_ids[1], "purchase", 2)])
    e = np.zeros(svc.model.n_items)
    e[0], e[1] = 1.0, 4.0
    np.testing.assert_allclose(
        svc._scores("new", svc.history("new"), "history"), e @ svc.model.weights, rtol=1e-5
    )
    with pytest.raises(ClarecError, match="behavior 'wishlist' is not one the model was trained on"):
        svc.add_events(
            [Event("new", svc.item_ids[2], "view", 3), Event("new", svc.item_ids[2], "wishlist", 4)]
        )
    assert len(svc.history("new")) == 2 and len(list(svc.store.events())) == 3
    svc.close()
    pop = RecService(folder, db_url="sqlite://", model_label="pop")
    before = pop.popularity[3]
    pop.add_events([Event("u1", pop.item_ids[3], "purchase", 1), Event("u1", pop.item_ids[3], "purchase", 2)])
    assert pop.popularity[3] == before + 8.0  # summed, as training's weighted popularity counts
    pop.close()


def test_a_users_held_out_interactions_are_not_recommended_back(run_dir):
    # the run's validation and test interactions were recommended back to the user who made them
    # (exclude_seen knew the training part only); the history page did not show them
    svc = RecService(run_dir, db_url="sqlite://", model_label="ease")
    split = load_predefined_split(run_dir / "split")
    held = split.test.interactions.groupby("user")["item"].apply(set)
    scores = svc.model.score(np.arange(svc.model.n_users))
    scores[svc.model.seen.nonzero()] = -np.inf
    # users whose top 5 from training alone would hold a held-out item
    hit = [u for u in held.index if set(np.argsort(-scores[u])[:5].tolist()) & held[u]]
    assert hit
    for u in hit:
        user = svc.user_ids[u]
        got = {svc.item_pos[i["item_id"]] for i in svc.recommend(user, k=5).items}
        assert not got & held[u] and not got & set(svc.model.seen[u].indices.tolist())
        svc.add_events([Event(user, svc.item_ids[next(iter(held[u]))], "click", 10**9)])  # history path
        assert not {svc.item_pos[i["item_id"]] for i in svc.recommend(user, k=5).items} & held[u]
        assert svc.recommend(user, k=5, exclude_seen=False).items  # still served
    sources = [r["source"] for r in svc.history_items(svc.user_ids[hit[0]], limit=100)]
    assert sources[0] == "event" and "held out" in sources and sources[-1] == "train"
    svc.close()


def test_explanations_weigh_history_items_as_the_score_does(tmp_path):
    """A weighted itemknn's score of j is the sum of w_h·S[h, j]; slit's reads only the last
    ``window`` items, each weighted by recency: the listed contributions are those terms."""
    import json as _json

    data = make_random_dataset(n_users=40, n_items=30, per_user=8, seed=3)
    data.interactions["weight"] = (
        np.random.default_rng(0).integers(1, 6, len(data.interactions)).astype(float)
    )
    split = random_split(data, seed=0)
    folder = tmp_path / "run"
    split.save(folder / "split")
    create("itemknn", {"k_neighbors": 10, "weighted": True}).fit(split.train).save(folder / "models" / "knn")
    create("slit", {"window": 2}).fit(split.train).save(folder / "models" / "slit")
    scores = {"test": {"ndcg@20": 0.5}, "valid": {"ndcg@20": 0.4}}
    (folder / "results.json").write_text(_json.dumps({"knn": scores, "slit": scores}))
    (folder / "config.yaml").write_text("evaluation: {main_metric: ndcg@20}\n")

    svc = RecService(folder, db_url="sqlite://", model_label="knn")
    try:
        u = svc.user_pos["u1"]
        row = svc.model.seen[u]
        top = svc.recommend("u1", k=1).items[0]
        j = svc.item_pos[top["item_id"]]
        terms = row.data * np.asarray(svc.model.similarity[row.indices][:, j].toarray()).ravel()
        assert top["score"] == pytest.approx(terms.sum(), rel=1e-5)
        listed = [(b["item_id"], b["similarity"]) for b in top["explanation"]["because"]]
        order = np.argsort(-terms, kind="stable")[:3]
        assert listed == [(svc.item_ids[row.indices[r]], pytest.approx(terms[r], rel=1e-5)) for r in order]
    finally:
        svc.close()
    svc = RecService(folder, db_url="sqlite://", model_label="slit")
    try:
        hist = svc.history("u1")
        for item in svc.recommend("u1", k=5).items:
            assert {b["item_id"] for b in item["explanation"]["because"]} <= {
                svc.item_ids[h] for h in hist[-2:]
            }
    finally:
        svc.close()


def test_an_item_is_in_the_store_and_the_model_or_in_neither(run_dir, tmp_path):
    # the model took the item before the store write: a refused write (another server's item, a
    # locked or read-only store) left it served but never stored, its events dropped at restart
    from fastapi.testclient import TestClient

    from clarec.serve.app import create_app

    url = f"sqlite:///{tmp_path / 'e.db'}"
    a = RecService(run_dir, db_url=url, model_label="lm")
    b = RecService(run_dir, db_url=url, model_label="lm")  # a second server on the same store
    a.add_item("X", {"title": "item 7 reissue"})
    n = b.model.n_items
    r = TestClient(create_app(b)).post("/v1/items", json={"item_id": "X", "title": "other text"})
    assert r.status_code == 409 and "event store" in r.json()["error"]
    assert "X" not in b.item_pos and b.model.n_items == n and len(b.item_ids) == n
    # a model that refuses the item (no text it reads) leaves nothing stored
    with pytest.raises(ClarecError, match="no text"):
        a.add_item("blank", {"title": " "})
    assert [i for i, _ in a.store.items()] == ["X"]
    # an item stored by an older clarec that this model refuses is left out at start-up, said
    EventStore(url).add_item("old-blank", {"title": ""})
    again = RecService(run_dir, db_url=url, model_label="lm")
    assert "X" in again.item_pos and "old-blank" not in again.item_pos
    assert again.skipped_items == ["old-blank"]
    for svc in (a, b, again):
        svc.close()


def test_an_in_memory_store_serves_every_thread():
    # each request thread opened its own empty in-memory database: "no such table" on every write
    import threading

    store = EventStore("sqlite://")
    done = []
    worker = threading.Thread(target=lambda: done.append(store.add_events([Event("u", "i", "click", 1)])))
    worker.start()
    worker.join()
    assert done == [1] and store.count_events() == 1


def test_a_write_waiting_on_a_locked_store_does_not_hold_up_recommendations(run_dir, tmp_path):
    # the service lock was held for the whole store write: with the SQLite file locked by another
    # writer, every recommendation waited behind it (up to the 30 s busy timeout)
    import sqlite3
    import threading

    path = tmp_path / "locked.db"
    svc = RecService(run_dir, db_url=f"sqlite:///{path}", model_label="lm")
    user, item = svc.user_ids[0], svc.item_ids[-1]
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # holds the write lock
    waiting = threading.Event()
    real = svc.store.add_events

    def add_events(events):
        waiting.set()
        return real(events)

    svc.store.add_events = add_events
    writer = threading.Thread(target=lambda: svc.add_events([Event(user, item, "interaction", 1)]))
    writer.start()
    assert waiting.wait(10)
    answered: list = []
    reader = threading.Thread(target=lambda: answered.append(svc.recommend(svc.user_ids[1], k=5)))
    reader.start()
    reader.join(10)
    served_while_locked = bool(answered)
    other.execute("COMMIT")  # the store is free again: the write goes through
    reader.join(30)
    writer.join(30)
    other.close()
    assert served_while_locked
    assert svc.store.count_events() == 1 and svc.n_events == 1
    assert item in set(svc.item_ids[i] for i in svc.history(user))
    svc.close()
