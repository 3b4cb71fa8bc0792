import numpy as np
import pandas as pd
import pytest
import torch

from clarec.data.dataset import Dataset
from clarec.errors import ClarecError, ConfigError, UnknownIdError
from clarec.models import create
from clarec.models.base import Recommender
from clarec.models.two_tower import TwoTowerRecommender, centre, example_histories, fit_tokens

from .recommender_mixin import RecommenderMixin, TinyBert, block_dataset

FAST = {
    "cache_dir": "none",
    "epochs": 25,
    "batch_size": 32,
    "embedding_dim": 16,
    "hidden": 32,
    "lr": 0.01,
    "num_threads": 1,
    "n_negatives": 0,
}


class TestTwoTower(TinyBert, RecommenderMixin):
    uses_validation = True

    def _get_model(self):
        return TwoTowerRecommender(encoder=self.encoder_dir, **FAST)


class TestTwoTowerVariant(TinyBert, RecommenderMixin):
    """Mean pooling over all other items, sampled negatives, BYOL, a scheduled temperature, dot
    product scores and log-q correction."""

    uses_validation = True

    def _get_model(self):
        return TwoTowerRecommender(
            encoder=self.encoder_dir,
            **FAST
            | {
                "pooling": "mean",
                "history_scope": "all",
                "n_negatives": 4,
                "neg_alpha": 0.75,
                "aux": "byol",
                "temperature": [0.2, 0.05],
                "weighting": "warmup",
                "similarity": "dot",
                "logq": True,
            },
        )


@pytest.fixture
def tiny(tiny_model_dir):
    def build(**kwargs):
        return TwoTowerRecommender(encoder=str(tiny_model_dir), **(FAST | kwargs))

    return build


def _clustered() -> tuple[Dataset, str]:
    """Three clusters of 6 items with their own words; users interact within a cluster in time order.
    ``a_twin`` is a cold item whose text equals ``a2``'s."""
    words = {
        "a": "galaxy space alien starship",
        "b": "love romance wedding heart",
        "c": "detective murder crime police",
    }
    rows, items = [], []
    for p, w in words.items():
        items += [{"item_id": f"{p}{j}", "title": f"{w} part {j}"} for j in range(6)]
    items.append({"item_id": "a_twin", "title": "galaxy space alien starship part 2"})
    rng = np.random.default_rng(0)
    t = 0
    for p in words:
        for u in range(12):
            for j in rng.permutation(6)[: rng.integers(3, 6)]:
                rows.append((f"u{p}{u}", f"{p}{j}", t))
                t += 1
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return Dataset.from_frame(inter, items=pd.DataFrame(items), keep_all_items=True), "a_twin"


def test_cold_twin_of_a_liked_item_ranks_high(tiny):
    data, twin = _clustered()
    model = tiny(epochs=40, history_scope="past").fit(data)
    t = data.item_index(twin)
    vecs = model.item_vectors()
    assert np.isfinite(vecs).all() and np.linalg.norm(vecs[t]) == pytest.approx(1.0, abs=1e-5)
    scores = model.score(np.arange(data.n_users))
    assert np.isfinite(scores[:, t]).all()
    # users of cluster a who like a2: the twin ranks above every unseen item of the other clusters
    seen = data.to_csr()
    a2 = data.item_index("a2")
    fans = [u for u in range(data.n_users) if data.user_ids[u].startswith("ua") and a2 in seen[u].indices]
    assert len(fans) >= 5
    for u in fans:
        ids, _ = model.recommend([u], k=data.n_items)
        ranked = [data.item_ids[i] for i in ids[0] if i >= 0]
        before = ranked[: ranked.index(twin)]
        assert all(i.startswith("a") for i in before), (data.user_ids[u], ranked)
    # the twin's vector is the text path alone: it matches a2's text projection without a2's ID part
    towers = model._towers
    with torch.no_grad():
        lm = torch.from_numpy(model.lm_item)
        text_only = towers.items(lm[[a2]], torch.tensor([a2]), None)
    np.testing.assert_allclose(
        vecs[t], torch.nn.functional.normalize(text_only, dim=-1)[0].numpy(), atol=1e-5
    )


def test_cold_items_are_gated_out_and_finite(tiny):
    data = block_dataset()
    model = tiny().fit(data)
    d0 = data.item_index("d0")
    assert not model.warm_items[d0] and model.warm_items.sum() == data.n_items - 1
    v = model.item_vectors()
    assert np.isfinite(v).all() and np.linalg.norm(v[d0]) == pytest.approx(1.0, abs=1e-5)


def test_items_without_training_interactions_are_never_negatives(tiny, monkeypatch):
    # A cold item drawn as a negative would only ever be pushed away from every user.
    from clarec.contrastive.samplers import NegativeSampler

    drawn = []
    original = NegativeSampler.sample

    def recording(self, users, n_neg=1):
        out = original(self, users, n_neg)
        drawn.append(out.ravel())
        return out

    monkeypatch.setattr(NegativeSampler, "sample", recording)
    data, twin = _clustered()
    tiny(epochs=3, n_negatives=8).fit(data)
    drawn = np.concatenate(drawn)
    assert len(drawn) > 500
    assert data.item_index(twin) not in set(drawn.tolist())
    assert len(set(drawn.tolist())) == data.n_items - 1  # every warm item is drawn


def test_hard_negatives_are_mined_near_the_top_of_each_users_ranking(tiny, monkeypatch):
    from clarec.contrastive.samplers import HardNegativeMiner
    from clarec.models.two_tower.task import TwoTowerTask

    mined, refreshed = [], []
    original_mine, original_refresh = HardNegativeMiner.mine, TwoTowerTask._refresh_mining_vectors

    def mine(self, queries, items, positives=None):
        out = original_mine(self, queries, items, positives)
        scores = (queries @ items.T).numpy()
        scores[positives.toarray() > 0] = -np.inf
        rank = (scores[:, None, :] > np.take_along_axis(scores, out.numpy(), 1)[:, :, None]).sum(-1)
        mined.append(rank)
        return out

    def refresh(self):
        refreshed.append(self.bundle.training)
        original_refresh(self)
        assert self.bundle.training  # back to training mode after the no-dropout pass

    monkeypatch.setattr(HardNegativeMiner, "mine", mine)
    monkeypatch.setattr(TwoTowerTask, "_refresh_mining_vectors", refresh)
    negatives = []
    original_negatives = TwoTowerTask._negatives

    def record(self, users):
        negatives.append((users, original_negatives(self, users)))
        return negatives[-1][1]

    monkeypatch.setattr(TwoTowerTask, "_negatives", record)
    data, twin = _clustered()
    model = tiny(epochs=3, n_negatives=5, hard_negatives=3, hard_ranks=[1, 4]).fit(data)
    assert len(refreshed) == 3  # once per epoch
    ranks = np.concatenate([r.ravel() for r in mined])
    assert ranks.min() >= 1 and ranks.max() <= 3  # ranks [1, 4) of the user's unseen items
    seen = data.to_csr().toarray() > 0
    for users, negs in negatives:
        assert negs.shape == (len(users), 5)
        assert not seen[users[:, None], negs[:, 2:]].any()  # mined: never the user's own items
    drawn = np.concatenate([n.ravel() for _, n in negatives])
    assert data.item_index(twin) not in set(drawn.tolist())  # nor an item without interactions
    assert np.isfinite(model.score([0, 1])).all()


def test_hard_negative_settings_are_checked(tiny):
    with pytest.raises(ConfigError, match="part of n_negatives"):
        tiny(n_negatives=2, hard_negatives=3)
    with pytest.raises(ConfigError, match="hard_ranks"):
        tiny(n_negatives=4, hard_negatives=1, hard_ranks=[5, 5])
    with pytest.raises(ConfigError, match="logq"):
        tiny(n_negatives=4, hard_negatives=1, logq=True)


def test_score_histories_matches_training_users_and_reacts_to_events(tiny):
    data, _ = _clustered()
    model = tiny(epochs=10, history_scope="past").fit(data)
    df = data.interactions.sort_values(["user", "timestamp"], kind="stable")
    users = [0, 5, 20]
    hists = [df.loc[df["user"] == u, "item"].to_numpy() for u in users]
    np.testing.assert_allclose(model.score_histories(hists), model.score(users), rtol=1e-5, atol=1e-6)
    # an empty history is the learned "no history" user; new events move the user's scores
    empty, grown = model.score_histories([np.array([], dtype=np.int64), np.append(hists[0], [13, 14])])
    assert np.isfinite(empty).all()
    assert not np.allclose(grown, model.score([0])[0])
    with pytest.raises(UnknownIdError):
        model.score_histories([np.array([data.n_items])])


def test_add_items_scores_new_items_from_text_and_survives_save(tiny, tmp_path):
    data, twin = _clustered()
    model = tiny(epochs=10, history_scope="past").fit(data)
    n = data.n_items
    new = model.add_items(
        pd.DataFrame({"item_id": ["new_a", "new_b"], "title": ["galaxy space alien starship part 2", "x"]})
    )
    np.testing.assert_array_equal(new, [n, n + 1])
    assert model.n_items == n + 2 and model.seen.shape == (data.n_users, n + 2)
    vecs = model.item_vectors()
    # same text as the cold twin: same vector (both go through the text path alone)
    np.testing.assert_allclose(vecs[n], vecs[data.item_index(twin)], atol=1e-6)
    scores = model.score([0, 1])
    assert scores.shape == (2, n + 2) and np.isfinite(scores).all()
    ids, _ = model.recommend([0], k=n + 2)
    assert n in ids[0] and n + 1 in ids[0]
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.score([0, 1]), scores)
    # a history holding the added item: its tower output was computed again on load, in another
    # batch than add_items' (the last digits moved)
    histories = [np.array([0, 1, n]), np.array([n + 1])]
    np.testing.assert_array_equal(loaded.score_histories(histories), model.score_histories(histories))
    np.testing.assert_allclose(loaded.add_items(pd.DataFrame({"item_id": ["c"], "title": ["x"]})), [n + 2])
    np.testing.assert_allclose(loaded.item_vectors()[n + 2], vecs[n + 1], atol=1e-6)


def test_fit_tokens_keeps_words_shared_by_trained_items():
    texts = ["space alien war", "space love", "alien love story", "space only cold", "unique words"]
    warm = np.array([True, True, True, False, True])
    vocab, m = fit_tokens(texts, warm)
    # "space" is in 2 of 4 trained items (max_df 0.5 keeps it); "war", "story", "unique" in one;
    # "cold" and "only" only in an item without interactions
    assert vocab.tolist() == ["alien", "love", "space"]
    np.testing.assert_array_equal(m.toarray(), [[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1], [0, 0, 0]])


def test_token_features_reach_cold_items_and_survive_save(tiny, tmp_path):
    data, twin = _clustered()
    model = tiny(epochs=10, history_scope="past", token_features=True, id_embedding=False).fit(data)
    assert {"galaxy", "romance", "police"} <= set(model.token_vocab.tolist())
    t = data.item_index(twin)
    assert model.item_tokens[t].nnz > 0
    # the word vectors are part of the item vector: without them the cold twin's vector changes
    with torch.no_grad():
        lm = torch.from_numpy(model.lm_item[[t]])
        ids = torch.tensor([t])
        with_words = model._towers.items(lm, ids, None, model._bags(np.array([t])))
        without = model._towers.items(lm, ids, None)
    assert not torch.allclose(with_words, without)
    np.testing.assert_allclose(
        model.item_vectors()[t], torch.nn.functional.normalize(with_words, dim=-1)[0].numpy(), atol=1e-5
    )
    new = model.add_items(pd.DataFrame({"item_id": ["n"], "title": ["galaxy space alien starship part 2"]}))
    np.testing.assert_allclose(model.item_vectors()[new[0]], model.item_vectors()[t], atol=1e-6)
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert loaded.token_vocab.tolist() == model.token_vocab.tolist()
    np.testing.assert_array_equal(loaded.score([0, 3]), model.score([0, 3]))


def test_cold_calibration_matches_scales_without_reordering(tiny):
    data, twin = _clustered()
    t = data.item_index(twin)
    plain = tiny(epochs=5, history_scope="past").fit(data)  # "none" is the default
    matched = tiny(epochs=5, history_scope="past", cold_calibration="match").fit(data)
    users = np.arange(data.n_users)
    s0, s1 = plain.score(users).astype(np.float64), matched.score(users).astype(np.float64)
    warm = np.arange(data.n_items) != t
    np.testing.assert_array_equal(s0[:, warm], s1[:, warm])  # same seed, same model: only cold scores move
    a, b = matched.cold_affine
    assert a > 0 and (a, b) != (1.0, 0.0)
    np.testing.assert_allclose(s1[:, t], a * s0[:, t] + b, rtol=1e-5, atol=1e-5)
    # with a single cold item the match is: mean and spread of the cold scores = the warm scores'
    assert s1[:, t].mean() == pytest.approx(s1[:, warm].mean(), abs=1e-4)
    assert s1[:, t].std() == pytest.approx(s1[:, warm].std(), rel=1e-3)
    assert plain.cold_affine == (1.0, 0.0)


def test_cold_calibration_validate_shifts_cold_scores_by_the_validation_best_amount(tiny):
    data, twin = _clustered()
    t = data.item_index(twin)
    fans = [u for u in range(data.n_users) if data.user_ids[u].startswith("ua")]
    on_twin = pd.DataFrame({"user": fans, "item": t, "timestamp": 10_000})
    valid = data.with_interactions(on_twin, name="valid")
    kw = {"epochs": 5, "history_scope": "past", "patience": 10, "eval_every": 5}
    matched = tiny(cold_calibration="match", **kw).fit(data, valid)
    tuned = tiny(cold_calibration="validate", **kw).fit(data, valid)
    users = np.arange(data.n_users)
    s0, s1 = matched.score(users).astype(np.float64), tuned.score(users).astype(np.float64)
    warm = np.arange(data.n_items) != t
    np.testing.assert_array_equal(s0[:, warm], s1[:, warm])  # only the cold item moves ...
    shift = tuned.cold_shift_ * tuned.cold_spread_
    np.testing.assert_allclose(s1[:, t], s0[:, t] + shift, rtol=1e-5, atol=1e-5)  # ... by one constant
    curve = tuned.cold_shift_curve_
    assert curve[round(tuned.cold_shift_, 2)] == max(curve.values()) and len(curve) == 37
    # every validation user holds out the twin only: the best shift puts it first for each of them,
    # and that shift is the least one that does
    assert max(curve.values()) == pytest.approx(1.0)
    assert tuned.cold_shift_ > 0 and curve[round(tuned.cold_shift_ - 0.25, 2)] < 1.0
    for u in fans:
        assert tuned.recommend([u], k=1)[0][0, 0] == t
    # validation without interactions on items lacking training ones: the match as it is
    other = data.with_interactions(pd.DataFrame({"user": [0], "item": [int(np.flatnonzero(warm)[0])]}))
    plain = tiny(cold_calibration="validate", **kw).fit(data, other)
    assert plain.cold_affine == matched.cold_affine and plain.cold_shift_ == 0.0


def test_example_histories_leave_the_target_out():
    # user 0: items 10, 11, 12, 13 in time order; user 1: item 20
    ex_user = np.array([0, 0, 0, 0, 1])
    ex_item = np.array([10, 11, 12, 13, 20])
    starts, ends = np.array([0, 4]), np.array([4, 5])
    rows = np.arange(5)
    items, ok = example_histories(rows, ex_user, ex_item, starts, ends, 3, "past")
    np.testing.assert_array_equal(
        np.where(ok, items, -1), [[-1] * 3, [10, -1, -1], [11, 10, -1], [12, 11, 10], [-1] * 3]
    )
    items, ok = example_histories(rows, ex_user, ex_item, starts, ends, 3, "all")
    np.testing.assert_array_equal(
        np.where(ok, items, -1), [[13, 12, 11], [13, 12, 10], [13, 11, 10], [12, 11, 10], [-1] * 3]
    )
    for mode in ("past", "all"):
        items, ok = example_histories(rows, ex_user, ex_item, starts, ends, 3, mode)
        assert not (ok & (items == ex_item[rows, None])).any()


def test_infonce_loss_decreases_and_seed_matters(tiny):
    data = block_dataset()
    a = tiny(epochs=15).fit(data)
    losses = a.history_.losses
    assert len(losses) == 15 and losses[-1] < 0.8 * losses[0]
    users = np.arange(data.n_users)
    b = tiny(epochs=15).fit(data)
    np.testing.assert_array_equal(a.score(users), b.score(users))
    c = tiny(epochs=15, seed=1).fit(data)
    assert not np.array_equal(a.score(users), c.score(users))


def test_aux_simcse_learnable_temperature_uncertainty(tiny):
    data = block_dataset()
    model = tiny(epochs=5, aux="simcse", learn_temperature=True, weighting="uncertainty").fit(data)
    assert np.isfinite(model.score(np.arange(data.n_users))).all()
    traces = model.history_.traces
    (temperature,) = [v for k, v in traces.items() if k.startswith("temperature")]
    assert len(temperature) == 5 and len(set(temperature)) > 1  # learned: it moves epoch by epoch
    # both tasks' uncertainty weights are learned: the auxiliary loss is in the sum and trains
    assert {"weight rec", "weight aux"} <= set(traces)
    assert len(set(traces["weight aux"])) > 1 and len(set(traces["weight rec"])) > 1
    plain = tiny(epochs=5).fit(data)
    assert not any(k.startswith(("temperature", "weight")) for k in plain.history_.traces)


def _profile_data() -> tuple[Dataset, np.ndarray]:
    """``block_dataset`` with an occupation per user, plus two users without interactions
    (``zz1`` an artist, ``zz2`` an engineer); returns the data and those two users' indices."""
    base = block_dataset()
    users = pd.DataFrame({"user_id": base.user_ids})
    users["occupation"] = ["engineer" if i % 2 else "artist" for i in range(len(users))]
    inter = base.interactions.assign(
        user_id=base.user_ids[base.interactions["user"]], item_id=base.item_ids[base.interactions["item"]]
    )
    extra = pd.DataFrame({"user_id": ["zz1", "zz2"], "occupation": ["artist", "engineer"]})
    data = Dataset.from_frame(
        inter[["user_id", "item_id", "timestamp"]],
        items=base.items,
        users=pd.concat([users, extra], ignore_index=True),
        keep_all_items=True,
        keep_all_users=True,
    )
    return data, data.user_index(["zz1", "zz2"])


def test_user_text_profiles_separate_cold_users(tiny):
    data, cold = _profile_data()
    with_text = tiny(epochs=5, user_text=True).fit(data)
    assert not np.allclose(with_text.user_vecs[cold[0]], with_text.user_vecs[cold[1]])
    without = tiny(epochs=5).fit(data)
    np.testing.assert_array_equal(without.user_vecs[cold[0]], without.user_vecs[cold[1]])  # the empty vector
    with pytest.raises(ConfigError, match="profile fields"):
        tiny(epochs=1, user_text=True).fit(block_dataset().with_interactions(block_dataset().interactions))


def test_score_texts_is_the_user_tower_on_an_empty_history_plus_the_text(tiny, tmp_path):
    data, cold = _profile_data()
    model = tiny(epochs=5, user_text=True, cold_calibration="match").fit(data)
    assert model.supports_texts and not TwoTowerRecommender.supports_texts  # set per instance
    # its histories are scored without the profile: said, so the server and the evaluator do not
    # take them for the trained user (it claimed "exact" and lists moved on a user's first event)
    assert model.history_mode == "fold-in" and TwoTowerRecommender.history_mode == "exact"
    assert not np.allclose(model.score_histories([data.user_histories()[0]])[0], model.score([0])[0])
    texts = model._profile_texts(data)
    assert texts[cold[0]] == "Occupation: artist." and texts[cold[1]] == "Occupation: engineer."
    # a training user without interactions is exactly "empty history + profile text"
    got = model.score_texts([texts[c] for c in cold])
    assert got.shape == (2, data.n_items) and got.dtype == np.float32
    np.testing.assert_allclose(got, model.score(cold), rtol=1e-5, atol=1e-6)
    assert not np.allclose(got[0], got[1])  # different texts, different scores
    # a user with history: its profile text alone is the user tower on an empty history plus the text
    towers = model._towers
    with torch.no_grad():
        alone = towers.users(
            torch.zeros((1, model.max_history, model.embedding_dim)),
            torch.zeros((1, model.max_history), dtype=torch.bool),
            torch.from_numpy(model.lm_user[[0]]),
        )
    expected = model._scores(model._finish(alone).numpy())
    np.testing.assert_allclose(model.score_texts([texts[0]]), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(model.score_texts([texts[0]]), model.score([0]))
    assert model.score_texts([]).shape == (0, data.n_items)

    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert loaded.supports_texts and loaded.history_mode == "fold-in"
    # the server renders a posted profile as training did: the model's profile fields, in its order
    # (it took every posted field in the posted order: "Zip code: 1. Occupation: artist.")
    from clarec.serve.service import profile_text

    assert loaded.user_fields_ == ["occupation"]
    assert profile_text({"zip_code": "1", "occupation": "artist"}, loaded.user_fields_) == texts[cold[0]]
    assert profile_text({"age": 24, "occupation": "engineer"}, ["age", "occupation"]) == (
        profile_text({"occupation": "engineer", "age": 24, "zip_code": "9"}, ["age", "occupation"])
    )
    np.testing.assert_allclose(loaded.score_texts([texts[c] for c in cold]), got, rtol=1e-5, atol=1e-6)


def test_score_texts_with_a_finetuned_encoder_uses_the_encoder_that_wrote_the_profiles(tiny):
    data, cold = _profile_data()
    model = tiny(epochs=2, user_text=True, finetune_encoder=True, max_history=5).fit(data)
    texts = model._profile_texts(data)
    got = model.score_texts([texts[c] for c in cold])
    np.testing.assert_allclose(got, model.score(cold), rtol=1e-5, atol=1e-6)


def test_score_texts_refused_without_user_text(tiny, tmp_path):
    data, cold = _profile_data()
    model = tiny(epochs=2).fit(data)
    assert not model.supports_texts
    with pytest.raises(ClarecError, match="cannot score users from a text.*user_text"):
        model.score_texts(["Occupation: artist."])
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert not loaded.supports_texts
    with pytest.raises(ClarecError, match="cannot score users from a text"):
        loaded.score_texts(["Occupation: artist."])
    # a user_text model saved before the user-text centring was kept cannot score texts either
    with_text = tiny(epochs=1, user_text=True).fit(data)
    with_text.save(tmp_path / "old")
    with np.load(tmp_path / "old" / "state.npz") as z:
        arrays = {k: z[k] for k in z.files if not k.startswith("state.user_lm_")}
    np.savez(tmp_path / "old" / "state.npz", **arrays)
    old = Recommender.load(tmp_path / "old")
    assert not old.supports_texts
    np.testing.assert_array_equal(old.score(cold), with_text.score(cold))
    with pytest.raises(ClarecError, match="re-train"):
        old.score_texts(["Occupation: artist."])


def test_finetuned_encoder_is_saved_and_reloads(tiny, tmp_path):
    from clarec.text.encoder import TextEncoder

    data = block_dataset()
    model = tiny(epochs=2, finetune_encoder=True, aux="simcse", max_history=5).fit(data)
    model.save(tmp_path / "m")
    enc = TextEncoder.load(tmp_path / "m" / "encoder", device="cpu", progress=False)
    assert enc.dim == 32
    loaded = Recommender.load(tmp_path / "m")
    users = np.arange(data.n_users)
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    # items added after loading go through the fine-tuned encoder, as in the trained model
    new = pd.DataFrame({"item_id": ["n1"], "title": ["galaxy starship romance"]})
    model.add_items(new)
    loaded.add_items(new)
    np.testing.assert_allclose(loaded.item_vectors()[-1], model.item_vectors()[-1], atol=1e-5)
    fresh = tiny(epochs=2, finetune_encoder=True, aux="simcse", max_history=5)._encoder()
    assert not np.allclose(
        fresh.encode(["galaxy starship romance"]), loaded._encoder().encode(["galaxy starship romance"])
    )
    # without its encoder folder the model loaded silently and encoded new items with the starting one
    import shutil

    from clarec.errors import ClarecError

    shutil.rmtree(tmp_path / "m" / "encoder")
    with pytest.raises(ClarecError, match="fine-tuned text encoder"):
        Recommender.load(tmp_path / "m")


def test_messy_item_texts_never_crash(tiny):
    base = block_dataset()
    items = base.items.copy()
    items["title"] = items["title"].astype(object)
    items.loc[0, "title"] = ""
    items.loc[1, "title"] = "word " * 5000
    items.loc[2, "title"] = b"caf\xe9 \xff\xfe bytes"
    items.loc[3, "title"] = "!!! ... ??? ---"
    items.loc[4, ["title", "genres"]] = [None, []]
    inter = base.interactions.assign(
        user_id=base.user_ids[base.interactions["user"]], item_id=base.item_ids[base.interactions["item"]]
    )
    data = Dataset.from_frame(inter[["user_id", "item_id", "timestamp"]], items=items, keep_all_items=True)
    model = tiny(epochs=3, aux="simcse").fit(data)
    assert np.isfinite(model.score(np.arange(data.n_users))).all()


def test_centre():
    v = np.array([[1.0, 1.0], [1.0, 3.0]])
    np.testing.assert_allclose(centre(v), [[0.0, -1.0], [0.0, 1.0]])


def test_bad_params():
    for params in (
        {"pooling": "max"},
        {"history_scope": "future"},
        {"aux": "mae"},
        {"temperature": 0},
        {"temperature": [0.1]},
        {"temperature": [0.2, 0.05], "learn_temperature": True},
        {"id_dropout": 1.0},
        {"embedding_dim": 0},
        {"similarity": "euclid"},
        {"cold_calibration": "zscore"},
    ):
        with pytest.raises(ConfigError):
            create("two-tower", params)


def test_false_negative_masking_can_be_switched_off(tiny, monkeypatch):
    from clarec.contrastive import InfoNCELoss

    seen = []
    original = InfoNCELoss.forward

    def forward(self, *args, **kwargs):
        logits, mask = self.logits(*args, **{k: v for k, v in kwargs.items() if "logq" not in k})
        seen.append((self.mask_duplicates, mask is not None and bool(mask.any())))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(InfoNCELoss, "forward", forward)
    data, _ = _clustered()
    tiny(epochs=1, n_negatives=4).fit(data)  # batches of 32 examples over 18 items: targets repeat
    assert seen and all(flag and masked for flag, masked in seen)
    seen.clear()
    tiny(epochs=1, n_negatives=4, mask_false_negatives=False).fit(data)
    assert seen and not any(flag or masked for flag, masked in seen)


def test_in_batch_targets_the_user_has_in_training_can_be_masked(tiny, monkeypatch):
    # ~18% of in-batch negatives on ML-100K are the user's own training items (sampled and mined
    # negatives exclude them): mask_seen_negatives leaves them out of the softmax
    from clarec.contrastive import InfoNCELoss

    got = []
    original = InfoNCELoss.forward

    def forward(self, *args, **kwargs):
        got.append((kwargs.get("pair_mask"), kwargs.get("query_ids"), kwargs.get("positive_ids")))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(InfoNCELoss, "forward", forward)
    data, _ = _clustered()
    tiny(epochs=1).fit(data)
    assert got and all(m is None for m, _, _ in got)  # off by default
    got.clear()
    tiny(epochs=1, mask_seen_negatives=True).fit(data)
    seen = data.to_csr()
    assert got and all(m is not None for m, _, _ in got)
    for mask, users, targets in got:
        want = seen[users.numpy()][:, targets.numpy()].toarray() > 0
        assert np.array_equal(mask.numpy(), want)
    assert any(bool((m & ~torch.eye(len(m), dtype=torch.bool)).any()) for m, _, _ in got)


def test_sampled_negatives_only(tiny, monkeypatch):
    from clarec.contrastive import InfoNCELoss

    widths = []
    original = InfoNCELoss.logits

    def logits(self, *args, **kw):
        out = original(self, *args, **kw)
        widths.append((self.in_batch, out[0].shape[1]))
        return out

    monkeypatch.setattr(InfoNCELoss, "logits", logits)
    data, _ = _clustered()
    model = tiny(epochs=2, n_negatives=4, in_batch_negatives=False).fit(data)
    assert widths and set(widths) == {(False, 1 + 4)}  # the positive, then the 4 sampled negatives
    assert np.isfinite(model.score([0, 1])).all()
    with pytest.raises(ConfigError, match="in_batch_negatives"):
        tiny(n_negatives=0, in_batch_negatives=False)


def test_weight_decay_spares_the_learned_temperature_and_task_weights(tiny, monkeypatch):
    # AdamW's decay would pull τ and the uncertainty weights towards 1 whatever the data says
    groups, real = [], torch.optim.AdamW

    def spy(params, **kw):
        groups.extend(params)
        return real(params, **kw)

    monkeypatch.setattr(torch.optim, "AdamW", spy)
    data, _ = _clustered()
    model = tiny(epochs=1, weight_decay=0.1, learn_temperature=True, weighting="uncertainty")
    model.fit(data)
    spared = [g for g in groups if g.get("weight_decay") == 0.0]
    assert len(spared) == 1 and len(groups) == 2
    shapes = sorted(tuple(p.shape) for p in spared[0]["params"])
    assert shapes == [(), (1,)]  # log τ and the one task's log-variance
    groups.clear()
    tiny(epochs=1, weight_decay=0.1).fit(data)
    assert len(groups) == 1  # nothing to spare
