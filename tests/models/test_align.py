"""Language-model alignment (``align``) of bpr and the graph models, and its loss."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
from factories import make_random_dataset

from clarec.contrastive import LMAlignment
from clarec.data.dataset import Dataset
from clarec.errors import ConfigError
from clarec.models import create
from clarec.models._align import AlignSettings
from clarec.models.base import Recommender

from .recommender_mixin import RecommenderMixin, TinyBert, block_dataset

GRAPH = {"embedding_dim": 16, "epochs": 30, "batch_size": 32, "lr": 0.01, "progress": False, "seed": 1}
GRAPH |= {"num_threads": 1}
MF = {"embedding_dim": 16, "epochs": 40, "batch_size": 32, "lr": 0.01, "progress": False, "seed": 1}


def _align(encoder_dir: str, **kw) -> dict:
    return {"weight": 0.1, "encoder": encoder_dir, "cache_dir": "none"} | kw


class TestLightGCNAligned(TinyBert, RecommenderMixin):
    uses_validation = True

    def _get_model(self):
        return create("lightgcn", GRAPH | {"align": _align(self.encoder_dir)})


class TestXSimGCLAligned(TinyBert, RecommenderMixin):
    uses_validation = True

    def _get_model(self):
        return create(
            "xsimgcl", GRAPH | {"ssl_weight": 0.02, "align": _align(self.encoder_dir, mode="generative")}
        )


class TestBPRAligned(TinyBert, RecommenderMixin):
    uses_validation = True

    def _get_model(self):
        return create("bpr", MF | {"align": _align(self.encoder_dir, hidden=8)})


# ---------------------------------------------------------------------------- the loss
def test_contrastive_loss_prefers_matched_pairs_and_trains_both_sides():
    torch.manual_seed(0)
    lm = torch.nn.functional.normalize(torch.randn(16, 12), dim=-1)
    loss = LMAlignment(12, 8, "contrastive", temperature=0.1)
    cf = loss.head(lm).detach().clone().requires_grad_(True)  # CF vectors = the projections: aligned
    matched = loss(cf, lm)
    shuffled = loss(cf, lm[torch.randperm(16, generator=torch.Generator().manual_seed(1))])
    assert matched.item() < shuffled.item()
    matched.backward()
    assert cf.grad is not None and loss.head.weight.grad is not None
    assert cf.grad.abs().sum() > 0 and loss.head.weight.grad.abs().sum() > 0


def test_generative_loss_is_zero_for_a_perfect_reconstruction():
    loss = LMAlignment(6, 6, "generative")
    with torch.no_grad():
        loss.head.weight.copy_(torch.eye(6))
        loss.head.bias.zero_()
    x = torch.randn(5, 6)
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(x, -x).item() == pytest.approx(2.0, abs=1e-6)  # 1 - cos = 2 for opposite vectors


def test_alignment_training_makes_cf_vectors_match_their_text():
    """Gradient steps on the loss alone: each CF vector ends up nearest its own text's projection."""
    torch.manual_seed(0)
    lm = torch.nn.functional.normalize(torch.randn(32, 12), dim=-1)
    cf = torch.nn.Parameter(torch.randn(32, 8))
    loss = LMAlignment(12, 8, "contrastive", temperature=0.1)
    opt = torch.optim.Adam([cf, *loss.parameters()], lr=0.05)
    first = loss(cf, lm).item()
    for _ in range(200):
        opt.zero_grad()
        value = loss(cf, lm)
        value.backward()
        opt.step()
    assert value.item() < 0.5 * first
    sims = torch.nn.functional.normalize(cf, dim=-1) @ torch.nn.functional.normalize(loss.head(lm), dim=-1).T
    assert (sims.argmax(1) == torch.arange(32)).float().mean() > 0.9


# ---------------------------------------------------------------------------- settings
@pytest.mark.parametrize(
    ("align", "message"),
    [
        ({"weight": 0.1, "temprature": 0.2}, "unknown align key"),
        ({"temperature": 0.2}, "align.weight is required"),
        ({"weight": 0}, "align.weight must be > 0"),
        ({"weight": "lots"}, "align.weight must be a finite number"),
        ({"weight": 0.1, "mode": "mirror"}, "align.mode"),
        ({"weight": 0.1, "temperature": 0}, "align.temperature must be > 0"),
        ({"weight": 0.1, "cold_calibration": "zscore"}, "align.cold_calibration"),
        ([0.1], "must be a mapping"),
    ],
)
def test_bad_align_settings_name_the_problem(align, message):
    with pytest.raises(ConfigError, match=message):
        create("lightgcn", {"align": align})
    with pytest.raises(ConfigError, match=message):
        create("bpr", {"align": align})


def test_align_defaults_and_off():
    assert AlignSettings.parse(None) is None and AlignSettings.parse({}) is None
    a = AlignSettings.parse({"weight": 1})
    assert a.weight == 1.0 and a.temperature == 0.2 and a.mode == "contrastive" and a.ridge == 1.0
    assert AlignSettings.parse(a) is a
    # a saved model's params (JSON) load back unchanged
    assert AlignSettings.parse(json.loads(json.dumps(dataclasses.asdict(a)))) == a
    assert create("bpr", {"align": {"weight": 1}}).align == a


def test_byol_cf_refuses_align():
    with pytest.raises(ConfigError, match="byol-cf: align is not supported"):
        create("byol-cf", {"align": {"weight": 0.1}})


# ---------------------------------------------------------------------------- cold start through text
@pytest.fixture
def aligned(tiny_model_dir):
    def build(name, **kw):
        params = (GRAPH if name != "bpr" else MF) | {"align": _align(str(tiny_model_dir))} | kw
        return create(name, params)

    return build


@pytest.mark.parametrize("name", ["bpr", "lightgcn"])
def test_items_without_interactions_get_the_text_map(aligned, name):
    data = block_dataset()
    model = aligned(name).fit(data)
    d0 = data.item_index("d0")  # the item nobody interacted with
    vecs = model.item_vectors()
    text = model._encode(data.items.iloc[[d0]], model.text_fields_)
    np.testing.assert_allclose(vecs[d0], model._text_to_cf(text)[0], atol=1e-5)
    assert np.linalg.norm(vecs[d0]) > 0
    # the map is the least-squares fit on the warm items: residuals are orthogonal to the centred text
    warm = np.asarray(data.to_csr().sum(axis=0)).ravel() > 0
    all_text = model._encode(data.items, model.text_fields_)
    resid = vecs[warm] - model._text_to_cf(all_text[warm])
    x = all_text[warm] - all_text[warm].mean(0)
    w, _ = model.text_map_
    np.testing.assert_allclose(x.T @ resid, model.align.ridge * w, atol=2e-3)
    np.testing.assert_allclose(resid.mean(0), 0, atol=1e-4)


def test_without_align_nothing_changes(tiny_model_dir):
    data = block_dataset()
    plain = create("lightgcn", GRAPH).fit(data)
    assert plain.text_map_ is None and not plain.new_items_from_text
    added = plain.add_items(pd.DataFrame({"item_id": ["n1"], "title": ["space"]}))
    assert not plain.item_vectors()[added].any()


@pytest.mark.parametrize("name", ["bpr", "xsimgcl"])
def test_added_items_are_scored_from_text_and_survive_save(aligned, name, tmp_path):
    data = block_dataset()
    model = aligned(name).fit(data)
    assert model.new_items_from_text
    a0 = data.item_index("a0")
    twin = data.items.iloc[[a0]].assign(item_id="a0-twin")
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    for m in (model, loaded):
        new = m.add_items(twin)
        assert m.n_items == data.n_items + 1
        # the same text → the same vector as the text map gives a0's text
        want = m._text_to_cf(m._encode(data.items.iloc[[a0]], m.text_fields_))[0]
        np.testing.assert_allclose(m.item_vectors()[new[0]], want, atol=1e-5)
    np.testing.assert_allclose(model.item_vectors(), loaded.item_vectors(), atol=1e-6)


@pytest.mark.parametrize("name", ["bpr", "lightgcn"])
def test_cold_calibration_moves_only_text_scored_items_and_survives_save(aligned, name, tmp_path):
    data = block_dataset()
    d0 = data.item_index("d0")  # no interactions: scored through the text map
    # every user of block A holds out d0 in validation: the validated shift must lift it
    fans = [u for u in range(data.n_users) if data.user_ids[u].startswith("uA")]
    valid = data.with_interactions(pd.DataFrame({"user": fans, "item": d0, "timestamp": 10_000}))
    plain = aligned(name).fit(data, valid)
    matched = aligned(name, align=dataclasses.replace(plain.align, cold_calibration="match")).fit(data, valid)
    tuned = aligned(name, align=dataclasses.replace(plain.align, cold_calibration="validate")).fit(
        data, valid
    )
    users = np.arange(data.n_users)
    s0, s1, s2 = (m.score(users).astype(np.float64) for m in (plain, matched, tuned))
    other = np.arange(data.n_items) != d0
    np.testing.assert_array_equal(s0[:, other], s1[:, other])  # same seed, same model: only d0 moves
    np.testing.assert_array_equal(s0[:, other], s2[:, other])
    a, b = matched.cold_affine
    assert a > 0 and (a, b) != (1.0, 0.0) and plain.cold_affine == (1.0, 0.0)
    np.testing.assert_allclose(s1[:, d0], a * s0[:, d0] + b, rtol=1e-5, atol=1e-5)
    a2, b2 = tuned.cold_affine
    assert a2 == a and b2 != b
    np.testing.assert_allclose(s2[:, d0], s1[:, d0] + (b2 - b), rtol=1e-5, atol=1e-5)
    for u in fans:  # the shift chosen on validation puts d0 first for the users who hold it out
        assert tuned.recommend([u], k=1)[0][0, 0] == d0
    # the calibration is saved, reaches folded-in histories and items added from text
    tuned.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.score(users), tuned.score(users), rtol=1e-6, atol=1e-6)
    hist = [np.array([data.item_index("a0")])]
    vecs = tuned.item_vectors().astype(np.float64)
    raw = tuned._history_vectors(hist)[0].astype(np.float64) @ vecs.T  # the fold-in's plain inner product
    np.testing.assert_allclose(tuned.score_histories(hist)[0, d0], a2 * raw[d0] + b2, rtol=1e-5, atol=1e-5)
    twin = data.items.iloc[[d0]].assign(item_id="d0-twin")
    for m in (tuned, loaded):
        new = m.add_items(twin)[0]
        np.testing.assert_allclose(m.score(users)[:, new], m.score(users)[:, d0], rtol=1e-5, atol=1e-5)


def _topics_dataset() -> Dataset:
    """Random interactions; each item's text names one of three topics, unrelated to who chose it."""
    base = make_random_dataset(40, 30, 8, seed=0)
    rng = np.random.default_rng(0)
    topics = ["galaxy space alien starship", "love romance wedding heart", "detective murder crime police"]
    titles = [f"{topics[rng.integers(3)]} {j}" for j in range(base.n_items)]
    inter = pd.DataFrame(
        {
            "user_id": base.user_ids[base.interactions["user"].to_numpy()],
            "item_id": base.item_ids[base.interactions["item"].to_numpy()],
        }
    )
    return Dataset.from_frame(inter, items=pd.DataFrame({"item_id": base.item_ids, "title": titles}))


@pytest.mark.parametrize(
    ("name", "mode", "floor"), [("lightgcn", "contrastive", 0.18), ("lightgcn", "generative", 0.35)]
)
def test_alignment_gives_cf_vectors_the_structure_of_the_text(aligned, name, mode, floor):
    """Where interactions say nothing about the text, the item vectors' similarities follow the
    texts' only with alignment: correlation of the item-item cosines of CF and (centred) LM vectors."""
    data = _topics_dataset()
    warm = np.asarray(data.to_csr().sum(axis=0)).ravel() > 0
    pairs = np.triu_indices(int(warm.sum()), 1)

    def text_structure(weight: float) -> float:
        model = aligned(name, align={"weight": weight, "mode": mode} | _encoder_of(aligned)).fit(data)
        t = model._encode(data.items, model.text_fields_)[warm]
        t = t - t.mean(axis=0)  # the targets are centred
        t = t / np.linalg.norm(t, axis=1, keepdims=True)
        v = model.item_vectors()[warm]
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        return float(np.corrcoef((t @ t.T)[pairs], (v @ v.T)[pairs])[0, 1])

    assert text_structure(1e-6) < 0.1
    assert text_structure(1.0) > floor


def _encoder_of(aligned) -> dict:
    base = aligned("lightgcn").align
    return {"encoder": base.encoder, "cache_dir": base.cache_dir}
