import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from clarec.data.dataset import Dataset
from clarec.errors import ConfigError, UnknownIdError
from clarec.models import create
from clarec.models.base import Recommender
from clarec.models.sequential._base import (
    SequenceEncoder,
    history_pairs,
    left_pad,
    low_pass_kernel,
    training_prefixes,
    training_windows,
)

from .recommender_mixin import RecommenderMixin, TinyBert, block_dataset

SMALL = {"embedding_dim": 16, "n_heads": 2, "inner_size": 32, "dropout": 0.1, "lr": 0.01, "epochs": 40}
SMALL |= {"batch_size": 32, "progress": False, "num_threads": 1, "seed": 0}


class TestSASRec(RecommenderMixin):
    uses_validation = True

    def _get_model(self):
        return create("sasrec", SMALL)

    def test_similar_items(self, fitted, data):
        # Unlike the mixin's check, not from a0: a0 opens every A history and is never a target, so
        # its embedding learns next to nothing. Every item that is a target finds its own cluster.
        for item in ("a2", "a3", "a4", "b1", "b2", "c1", "c3"):
            ids, vals = fitted.similar_items([data.item_index(item)], k=3)
            assert data.item_ids[ids[0, 0]][0] == item[0], item
            assert np.all(np.diff(vals) <= 0)


def cycle_dataset(n_users: int = 120, n_items: int = 12, seed: int = 0) -> Dataset:
    """Users walk a ring of items one step at a time from a random start: the next item is always
    the one after the last, whatever came before; the same items in another order say otherwise."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start, length = rng.integers(n_items), rng.integers(4, 9)
        rows += [(f"u{u}", f"i{(start + t) % n_items:02d}", t) for t in range(length)]
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    items = pd.DataFrame(
        {
            "item_id": [f"i{i:02d}" for i in range(n_items)],
            "title": [f"{words[i % 10]} {words[(3 * i + 1) % 10]} stop {i}" for i in range(n_items)],
        }
    )
    return Dataset.from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]), items=items)


@pytest.fixture(scope="module")
def ring():
    return cycle_dataset()


SSL = {"ssl_weight": 0.1}
# The tiny random BERT's text vectors are nearly parallel (mean cosine 0.96): dropout on them, right
# for a real encoder, would drown what tells the items apart.
TEXT = {"cache_dir": "none", "temperature": 0.1, "adaptor_dropout": 0.0}


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("sasrec", {}),
        ("sasrec", {"loss": "bce"}),
        ("sasrec", {"exclude_history": True}),
        ("sasrec", {"filter_mix": 0.5}),
        ("sasrec", {"targets": "last"}),
        ("cl4srec", SSL),
        ("cl4srec", SSL | {"augmentations": ["mask"], "ssl_similarity": "cos", "ssl_temperature": 0.2}),
        ("cl4srec", SSL | {"augmentations": ["insert", "substitute"]}),
        ("duorec", SSL),
        ("duorec", SSL | {"unsupervised": False}),
        ("text-seq", {}),
        ("text-seq", {"id_embedding": True}),
        ("text-seq", {"id_embedding": True, "filter_mix": 0.5, "filter_frequencies": 2}),
        ("slit", {"reg": 1.0}),
    ],
)
def test_learns_the_next_item_from_the_order(ring, name, params, tiny_model_dir):
    if name == "text-seq":
        params = params | TEXT | {"encoder": str(tiny_model_dir)}
    if name == "slit":  # closed form: no epochs
        model = create(name, params).fit(ring)
    else:
        model = create(name, SMALL | params).fit(ring)
        assert model.history_.losses[-1] < 0.7 * model.history_.losses[0]
    forward = ring.item_index(["i03", "i04", "i05"])
    s = model.score_histories([forward, forward[::-1]])
    if params.get("exclude_history"):  # never trained to push history items down: ranked without them
        s[:, forward] = -np.inf
    assert ring.item_ids[int(np.argmax(s[0]))] == "i06"
    # the same items in the other order (never seen in training) end at i03: whatever the model makes
    # of it, it is not the answer to i03 → i04 → i05 (no bag of items can tell the two apart)
    assert ring.item_ids[int(np.argmax(s[1]))] != "i06"
    after_reversed = s[1].copy()
    after_reversed[forward] = -np.inf
    if name == "slit":  # linear: the oldest item still points at i06, with the least weight
        i06 = ring.item_index("i06")
        assert s[0, i06] > 2 * s[1, i06]
    else:
        assert ring.item_ids[int(np.argmax(after_reversed))] != "i06"


class TestSLIT(RecommenderMixin):
    def _get_model(self):
        return create("slit", {"reg": 1.0})


def test_slit_is_the_ridge_solution_over_every_position():
    # histories a→b→c and a→c: positions (a)→b, (b, a)→c, (a)→c with weights 1, e^(-1/decay)
    ds = Dataset.from_frame(
        pd.DataFrame(
            [("u", "a", 0), ("u", "b", 1), ("u", "c", 2), ("v", "a", 0), ("v", "c", 1)],
            columns=["user_id", "item_id", "timestamp"],
        )
    )
    model = create("slit", {"reg": 0.5, "decay": 1.0}).fit(ds)
    a, b, c = ds.item_index(["a", "b", "c"])
    x = np.zeros((3, 3))
    x[0, a] = x[2, a] = 1.0
    x[1, b], x[1, a] = 1.0, np.exp(-1.0)
    y = np.zeros((3, 3))
    y[0, b] = y[1, c] = y[2, c] = 1.0
    w = np.linalg.solve(x.T @ x + 0.5 * np.eye(3), x.T @ y)
    np.testing.assert_allclose(model.weights, w, rtol=1e-5, atol=1e-6)
    # a user is scored from the last items of their history, the most recent weighing most
    np.testing.assert_allclose(
        model.score([ds.user_index("u")])[0],
        np.array([1.0, np.exp(-1), np.exp(-2)]) @ w[[c, b, a]],
        rtol=1e-5,
    )


def test_slit_follows_the_window_and_refuses_a_catalogue_too_large(ring):
    model = create("slit", {"reg": 1.0, "window": 1}).fit(ring)
    i03, i05 = ring.item_index(["i03", "i05"])
    # with one item of input, only the last item counts
    np.testing.assert_array_equal(
        model.score_histories([np.array([i03, i05])]), model.score_histories([np.array([i05])])
    )
    with pytest.raises(ConfigError, match="max_items=5"):
        create("slit", {"max_items": 5}).fit(ring)


def _quick(name: str, **params):
    """A sequential model fitted in moments: two epochs of sasrec, or the closed-form slit."""
    return create(name, ({"reg": 1.0} if name == "slit" else SMALL | {"epochs": 2}) | params)


@pytest.mark.parametrize("name", ["sasrec", "slit"])
def test_scores_from_a_history_are_the_trained_users_scores(ring, name):
    model = _quick(name).fit(ring)
    histories = ring.user_histories()
    users = np.arange(10)
    np.testing.assert_allclose(
        model.score_histories([histories[u] for u in users]), model.score(users), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("name", ["sasrec", "slit"])
def test_bad_histories_get_a_clear_answer(ring, name):
    model = _quick(name).fit(ring)
    s = model.score_histories([np.empty(0, dtype=np.int64), np.array([3])])
    assert s.shape == (2, ring.n_items) and np.isfinite(s).all()
    np.testing.assert_array_equal(s[0], np.zeros(ring.n_items, dtype=np.float32))
    with pytest.raises(UnknownIdError, match="item index 99"):
        model.score_histories([np.array([1, 99])])


def test_one_item_users_and_long_histories_train():
    rows = [("solo", "i00", 0)] + [("long", f"i{t % 7:02d}", t) for t in range(130)]
    ds = Dataset.from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]))
    model = create("sasrec", SMALL | {"epochs": 2, "max_len": 20}).fit(ds)
    assert np.isfinite(model.score(np.arange(ds.n_users))).all()


def test_training_windows_use_every_target_once():
    h = np.arange(12)
    windows = training_windows([h, np.array([5]), np.array([1, 2])], max_len=5)
    targets = np.concatenate([w[1:] for w in windows])
    assert sorted(targets.tolist()) == sorted([*range(1, 12), 2])
    assert all(len(w) <= 6 for w in windows)


def test_training_prefixes_are_one_example_per_target():
    prefixes = training_prefixes([np.arange(8), np.array([5]), np.array([1, 2])], max_len=5)
    assert [p[-1] for p in prefixes] == [*range(1, 8), 2]  # each target once, as a prefix's last item
    np.testing.assert_array_equal(prefixes[2], [0, 1, 2, 3])  # the whole past
    np.testing.assert_array_equal(prefixes[6], [2, 3, 4, 5, 6, 7])  # its last max_len + 1 items


def test_left_pad():
    m = left_pad([np.array([4, 5, 6]), np.array([], dtype=np.int64), np.array([0])], max_len=2)
    np.testing.assert_array_equal(m, [[6, 7], [0, 0], [0, 1]])
    assert left_pad([], max_len=3).shape == (0, 1)


class TestCL4SRec(TestSASRec):
    def _get_model(self):
        return create("cl4srec", SMALL | SSL)


class TestDuoRec(TestSASRec):
    def _get_model(self):
        return create("duorec", SMALL | SSL)


def test_duorec_positives_share_the_next_item_and_are_other_sequences():
    model = create("duorec", SMALL)
    model._windows = [np.array(w) for w in ([1, 2, 9], [3, 9], [4, 5], [6, 9], [7, 5], [8, 1])]
    model._rng = np.random.default_rng(0)
    rows = np.arange(6).repeat(50)
    picks = model._positives(rows)
    last = np.array([w[-1] for w in model._windows])
    np.testing.assert_array_equal(last[picks], last[rows])
    alone = rows == 5
    assert (picks[~alone] != rows[~alone]).all() and (picks[alone] == 5).all()
    assert set(picks[rows == 0].tolist()) == {1, 3}  # both others with next item 9 are drawn


def test_cl4srec_views_use_a_mask_token_outside_the_catalogue(ring):
    model = create("cl4srec", SMALL | SSL | {"augmentations": ["mask"], "epochs": 2}).fit(ring)
    assert model.module_.items.num_embeddings == ring.n_items + 2
    assert model.item_vecs.shape == (ring.n_items, 16)
    augment = model._augment()
    seq = np.array([[0, 1, 2, 3, 4]])
    assert set(augment(seq, np.random.default_rng(0)).ravel()) <= {0, 1, 2, 3, 4, ring.n_items + 1}
    with pytest.raises(ConfigError, match="augmentations"):
        create("cl4srec", {"augmentations": ["shuffle"]})
    with pytest.raises(ConfigError, match="unsupervised, supervised"):
        create("duorec", {"unsupervised": False, "supervised": False})


def test_cl4srec_insert_and_substitute_use_items_taken_together(ring, monkeypatch):
    from clarec.models.sequential import cl4srec

    tables = []
    original = cl4srec.most_similar_tokens

    def recording(*args, **kwargs):
        tables.append(original(*args, **kwargs))
        return tables[-1]

    monkeypatch.setattr(cl4srec, "most_similar_tokens", recording)
    model = create(
        "cl4srec", SMALL | SSL | {"augmentations": ["substitute"], "substitute_ratio": 1.0, "epochs": 1}
    )
    model.fit(ring)
    (table,) = tables
    assert len(table) == ring.n_items + 2 and table[0] == 0 and table[-1] == ring.n_items + 1
    x = ring.to_csr().toarray() > 0
    co = (x.T.astype(float) @ x) / np.sqrt(np.outer(x.sum(0), x.sum(0)))
    np.fill_diagonal(co, -1)
    for item in range(ring.n_items):
        assert co[item, table[item + 1] - 1] == pytest.approx(co[item].max())  # its most correlated item
    assert not hasattr(model, "_similar")  # a training aid, not part of the model
    create("cl4srec", SMALL | SSL | {"augmentations": ["crop"], "epochs": 1}).fit(ring)
    assert len(tables) == 1  # only built when insert or substitute is used


def test_history_pairs_are_each_targets_earlier_items_in_its_window():
    inputs = torch.tensor([[0, 3, 5, 7], [2, 4, 6, 8]])  # item index + 1; 0 pads
    targets = torch.tensor([[0, 5, 7, 9], [4, 6, 8, 0]])
    keep = (inputs > 0) & (targets > 0)  # rows of states[keep]: (0,1) (0,2) (0,3) (1,0) (1,1) (1,2)
    rows, items = history_pairs(inputs, keep)
    got = sorted(zip(rows.tolist(), items.tolist(), strict=True))
    want = [(0, 2), (1, 2), (1, 4), (2, 2), (2, 4), (2, 6), (3, 1), (4, 1), (4, 3), (5, 1), (5, 3), (5, 5)]
    assert got == want


@pytest.mark.parametrize(("n", "kept"), [(50, 3), (8, 2), (8, 5), (7, 4), (6, 1)])
def test_low_pass_kernel_is_the_fourier_low_pass_of_the_window_ending_at_each_position(n, kept):
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(n))
    kernel = low_pass_kernel(n, kept)
    for t in range(n):  # the window of n positions ending at t, zero before the sequence's start
        window = torch.cat([torch.zeros(n - 1 - t, 4), x[: t + 1]])
        spectrum = torch.fft.rfft(window, dim=0, norm="ortho")
        spectrum[kept:] = 0
        want = torch.fft.irfft(spectrum, n=n, dim=0, norm="ortho")[-1]
        torch.testing.assert_close((kernel @ x)[t], want, atol=1e-6, rtol=0)
    assert torch.equal(kernel, kernel.tril())  # causal
    # every frequency kept: the filter passes its input through
    torch.testing.assert_close(low_pass_kernel(n, n) @ x, x, atol=1e-5, rtol=0)


def _encoder(filter_mix: float) -> SequenceEncoder:
    settings = {"dim": 8, "max_len": 6, "n_layers": 2, "n_heads": 2, "inner_size": 16, "dropout": 0.0}
    return SequenceEncoder(
        n_items=10,
        init_std=0.02,
        generator=torch.Generator().manual_seed(0),
        filter_mix=filter_mix,
        **settings,
    ).eval()


def test_filtered_encoder_is_causal_and_ignores_padding():
    encoder = _encoder(0.7)
    with torch.no_grad():
        encoder.filters[0].sqrt_beta.mul_(0.5)  # high frequencies rescaled, as training would
        seq = torch.tensor([[3, 4, 5, 6, 7, 8]])
        changed = torch.tensor([[3, 4, 5, 6, 7, 2]])
        a, b = encoder(seq), encoder(changed)
        torch.testing.assert_close(a[:, :-1], b[:, :-1])  # no position reads a later one
        assert not torch.allclose(a[:, -1], b[:, -1])
        # a history's state is the same padded to its own length or to a longer batch's
        short = torch.tensor([[5, 6, 7]])
        torch.testing.assert_close(encoder.last(short), encoder.last(torch.tensor([[0, 0, 5, 6, 7]])))


def test_filter_adds_no_draw_to_the_initialisation():
    plain, filtered = _encoder(0.0).state_dict(), _encoder(0.5).state_dict()
    assert plain.keys() < filtered.keys() and _encoder(0.0).filters is None
    for key, value in plain.items():
        torch.testing.assert_close(filtered[key], value, rtol=0, atol=0)


def test_checks_parameters():
    with pytest.raises(ConfigError, match="multiple of n_heads"):
        create("sasrec", {"embedding_dim": 10, "n_heads": 3})
    with pytest.raises(ConfigError, match="exclude_history needs loss: ce"):
        create("sasrec", {"loss": "bce", "exclude_history": True})
    with pytest.raises(ConfigError, match="loss"):
        create("sasrec", {"loss": "bpr"})
    with pytest.raises(ConfigError, match="filter_mix"):
        create("sasrec", {"filter_mix": 1.5})
    with pytest.raises(ConfigError, match="targets"):
        create("sasrec", {"targets": "first"})


@pytest.mark.parametrize(("name", "params"), [("sasrec", {}), ("sasrec", {"filter_mix": 0.5}), ("slit", {})])
def test_saved_model_scores_histories_the_same(ring, tmp_path, name, params):
    model = _quick(name, **params).fit(ring)
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    h = [ring.item_index(["i01", "i02"]), ring.item_index(["i07"])]
    np.testing.assert_array_equal(loaded.score_histories(h), model.score_histories(h))


def _text_seq(encoder, **kw):
    return create("text-seq", SMALL | TEXT | {"encoder": str(encoder)} | kw)


class TestTextSeq(TinyBert, TestSASRec):
    def _get_model(self):
        return _text_seq(self.encoder_dir)


def test_text_seq_new_items_are_recommendable_at_once(ring, tiny_model_dir, tmp_path):
    model = _text_seq(tiny_model_dir).fit(ring)
    new = pd.DataFrame({"item_id": ["n1", "n2"], "title": ["alpha echo stop 12", "kilo lima"]})
    idx = model.add_items(new)
    np.testing.assert_array_equal(idx, [ring.n_items, ring.n_items + 1])
    s = model.score_histories([ring.item_index(["i03", "i04"]), [int(idx[0])]])
    assert s.shape == (2, ring.n_items + 2) and np.isfinite(s).all()
    assert s[0, idx[0]] != s[0, idx[1]]  # scored from their text, not a shared default
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    np.testing.assert_array_equal(
        loaded.score_histories([[1, int(idx[1])]]), model.score_histories([[1, int(idx[1])]])
    )


def test_text_seq_ids_only_for_items_with_training_interactions(ring, tiny_model_dir, tmp_path):
    # i05 is in the catalogue but nobody's training history: with ID vectors on, it keeps its text alone
    # (an ID vector training never fitted would only carry the full softmax's push down)
    data = ring.with_interactions(ring.interactions[ring.interactions["item"] != ring.item_index("i05")])
    model = _text_seq(tiny_model_dir, id_embedding=True, epochs=5).fit(data)
    new = int(data.item_index("i05"))
    mask = model.module_.id_mask.ravel().numpy()
    assert mask[new] == 0 and np.delete(mask, new).min() == 1
    with torch.no_grad():
        text_alone = F.normalize(model.module_.adaptor(model.module_.text), dim=-1).numpy()
    np.testing.assert_allclose(model.item_vecs[new], text_alone[new], rtol=1e-5, atol=1e-6)
    trained = np.delete(np.arange(data.n_items), new)
    assert np.abs(model.item_vecs[trained] - text_alone[trained]).max() > 0.05  # the IDs count there
    added = model.add_items(pd.DataFrame({"item_id": ["n1"], "title": ["kilo lima"]}))
    np.testing.assert_array_equal(model.module_.id_mask.ravel().numpy()[added], [0.0])
    model.save(tmp_path / "m")
    h = [data.item_index(["i03", "i04"])]
    np.testing.assert_array_equal(
        Recommender.load(tmp_path / "m").score_histories(h), model.score_histories(h)
    )
    # a model saved before the mask existed used every item's ID vector: it loads as such
    with np.load(tmp_path / "m" / "state.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "state.module.id_mask"}
    np.savez(tmp_path / "m" / "state.npz", **arrays)
    assert Recommender.load(tmp_path / "m").module_.id_mask.min() == 1


def test_text_seq_starts_from_a_model_trained_elsewhere(ring, tiny_model_dir, tmp_path):
    source = _text_seq(tiny_model_dir, epochs=3).fit(ring)
    source.save(tmp_path / "source")
    # another data set (other items), a learning rate too small to move: the weights are the source's
    target = _text_seq(tiny_model_dir, epochs=1, lr=1e-12, init_from=str(tmp_path / "source")).fit(
        block_dataset()
    )
    for name, weight in source.module_.state_dict().items():
        if not name.startswith(("text", "items.")):
            torch.testing.assert_close(target.module_.state_dict()[name], weight, rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="does not fit"):
        _text_seq(tiny_model_dir, embedding_dim=32, init_from=str(tmp_path / "source")).fit(ring)
    # a source that read other text vectors (another encoder or token limit) is refused: its adaptor
    # and layers were fitted to them (only the tensors' shapes were compared)
    with pytest.raises(ConfigError, match=r"was trained with another max_length \(64, here 16\)"):
        _text_seq(tiny_model_dir, max_length=16, init_from=str(tmp_path / "source")).fit(ring)
    # a filter the source lacks starts from its own initialisation; one the target lacks is refused
    filtered = _text_seq(tiny_model_dir, epochs=1, filter_mix=0.5, init_from=str(tmp_path / "source")).fit(
        ring
    )
    assert filtered.module_.filters is not None
    filtered.save(tmp_path / "filtered")
    with pytest.raises(ConfigError, match="filter"):
        _text_seq(tiny_model_dir, epochs=1, init_from=str(tmp_path / "filtered")).fit(ring)
    with pytest.raises(ConfigError, match="holds no saved model"):
        _text_seq(tiny_model_dir, init_from=str(tmp_path / "nothing")).fit(ring)
    create("sasrec", SMALL | {"epochs": 1}).fit(ring).save(tmp_path / "sasrec")
    with pytest.raises(ConfigError, match="not text-seq"):
        _text_seq(tiny_model_dir, init_from=str(tmp_path / "sasrec")).fit(ring)


def test_item_attributes_join_the_item_vectors(ring, tiny_model_dir, tmp_path):
    data = ring.with_interactions(ring.interactions)
    data.items = ring.items.assign(
        kind=[["even"] if i % 2 == 0 else ["odd", "x"] for i in range(ring.n_items)]
    )
    model = create("sasrec", SMALL | {"epochs": 2, "attributes": "kind"}).fit(data)
    bag = model.module_.attributes
    assert bag is not None and bag.num_embeddings == 3  # even, odd, x
    with torch.no_grad():
        ids_only = model.module_.items.weight[1 : ring.n_items + 1]
        np.testing.assert_allclose(model.item_vecs[0], (ids_only[0] + bag.weight[0]).numpy(), rtol=1e-6)
        np.testing.assert_allclose(
            model.item_vecs[1], (ids_only[1] + bag.weight[1:].mean(0)).numpy(), rtol=1e-6
        )
    model.save(tmp_path / "m")
    h = [ring.item_index(["i01", "i02"])]
    np.testing.assert_array_equal(
        Recommender.load(tmp_path / "m").score_histories(h), model.score_histories(h)
    )
    text = _text_seq(tiny_model_dir, epochs=2, attributes="kind").fit(data)
    # a model started from it on data whose items carry the attributes otherwise keeps its own
    # item → attribute map (the tensors have the same shapes: they were copied before)
    text.save(tmp_path / "source")
    swapped = ring.with_interactions(ring.interactions)
    swapped.items = ring.items.assign(
        kind=[["odd", "x"] if i % 2 == 0 else ["even"] for i in range(ring.n_items)]
    )
    own = _text_seq(tiny_model_dir, epochs=1, attributes="kind").fit(swapped).module_
    started = _text_seq(tiny_model_dir, epochs=1, attributes="kind", init_from=str(tmp_path / "source"))
    started = started.fit(swapped).module_
    assert own.attribute_index.shape == text.module_.attribute_index.shape
    torch.testing.assert_close(started.attribute_index, own.attribute_index, rtol=0, atol=0)
    torch.testing.assert_close(started.attribute_offsets, own.attribute_offsets, rtol=0, atol=0)
    text.add_items(pd.DataFrame({"item_id": ["n1"], "title": ["new stop"]}))
    assert np.isfinite(text.score_histories(h)).all()
    with pytest.raises(ConfigError, match="no column 'brand'"):
        create("sasrec", SMALL | {"attributes": "brand"}).fit(ring)
    # cl4srec's mask token, past the catalogue, is looked up beside the attribute-joined item vectors
    masked = create("cl4srec", SMALL | SSL | {"epochs": 1, "attributes": "kind", "augmentations": ["mask"]})
    seq = torch.tensor([[0, 1, ring.n_items + 1]])
    vectors = masked.fit(data).module_.embed(seq) - masked.module_.position_vectors(3)
    torch.testing.assert_close(vectors[0, 2], masked.module_.items.weight[ring.n_items + 1])


def test_moe_adaptor_is_the_gated_mix_of_whitened_projections():
    from clarec.models.sequential.text_seq import MoEAdaptor

    g = torch.Generator().manual_seed(0)
    moe = MoEAdaptor(6, 4, n_experts=3, dropout=0.0, init_std=0.5, generator=g)
    with torch.no_grad():
        moe.bias.normal_(generator=g)
    x = torch.randn(5, 6, generator=g)
    gate = torch.softmax(x @ moe.gate, dim=-1)
    expected = sum(gate[:, [k]] * ((x - moe.bias[k]) @ moe.proj[k]) for k in range(3))
    torch.testing.assert_close(moe(x), expected)


def test_bce_negatives_are_never_the_target():
    from clarec.models.sequential._base import target_free_negatives

    targets = torch.tensor([0, 1, 1, 2])
    neg = target_free_negatives(targets, 3, 200, torch.Generator().manual_seed(0))
    assert neg.shape == (4, 200) and not (neg == targets[:, None]).any()
    assert set(neg[0].tolist()) == {1, 2} and set(neg[3].tolist()) == {0, 1}  # every other item drawn


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_trained_negatives_leave_items_without_interactions_alone(loss):
    # An item of the catalogue nobody has interacted with: by default every target pushes its vector
    # down (the softmax, or a sampled negative); with negatives: trained it is never contrasted with
    # anything, so its ID vector keeps its initial value (Adam moves no parameter whose gradient is 0)
    # while every trained item's moves.
    ring = cycle_dataset(n_users=40)
    events = ring.interactions
    frame = pd.DataFrame(
        {
            "user_id": np.asarray(ring.user_ids)[events.user],
            "item_id": np.asarray(ring.item_ids)[events.item],
            "timestamp": events.timestamp,
        }
    )
    items = pd.concat([ring.items, pd.DataFrame({"item_id": ["new"], "title": ["kilo lima"]})])
    data = Dataset.from_frame(frame, items=items, keep_all_items=True)
    new = data.item_index("new")
    assert data.item_popularity()[new] == 0

    def vectors(negatives, epochs):
        params = SMALL | {"epochs": epochs, "loss": loss, "n_negatives": 4, "negatives": negatives}
        model = create("sasrec", params).fit(data)
        return model.module_.items.weight.detach()[1 : data.n_items + 1].clone()

    one, two = vectors("trained", 1), vectors("trained", 2)
    assert torch.equal(one[new], two[new])
    assert not torch.equal(one[new - 1], two[new - 1])
    default_one, default_two = vectors("catalogue", 1), vectors("catalogue", 2)
    assert not torch.equal(default_one[new], default_two[new])


def test_trained_negatives_with_history_exclusion_train():
    ring = cycle_dataset(n_users=40)
    model = create("sasrec", SMALL | {"epochs": 2, "negatives": "trained", "exclude_history": True}).fit(ring)
    assert np.isfinite(model.score(np.arange(3))).all()
