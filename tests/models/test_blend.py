import numpy as np
import pytest

from clarec.errors import ClarecError, ConfigError
from clarec.models import create
from clarec.models.base import Recommender
from clarec.models.blend import Blend, simplex_grid, standardize
from clarec.train.validation import RankingValidator

from .recommender_mixin import RecommenderMixin, block_dataset

EASE_KNN = [{"name": "ease", "params": {"reg": 10.0}}, {"name": "itemknn", "params": {"k_neighbors": 10}}]


class TestBlend(RecommenderMixin):
    uses_validation = True  # chooses its weights on it (given weights: see below)

    def _get_model(self):
        return Blend(members=EASE_KNN)


def test_with_given_weights_validation_changes_nothing():
    train, valid = _split()
    users = np.arange(train.n_users)
    a = Blend(members=EASE_KNN, weights=[1, 2]).fit(train).score(users)
    b = Blend(members=EASE_KNN, weights=[1, 2]).fit(train, valid).score(users)
    np.testing.assert_array_equal(a, b)


def _split(seed: int = 0):
    """The block data set with one random interaction of each user held out as validation."""
    data = block_dataset()
    inter = data.interactions
    held = inter.groupby("user").sample(n=1, random_state=seed).index
    return data.with_interactions(inter.drop(held)), data.with_interactions(inter.loc[held])


def test_the_weights_are_chosen_on_validation_and_a_corner_is_the_member_alone():
    train, valid = _split()
    # popularity is a poor model of this data: validation gives the blend to EASE
    blend = Blend(members=[{"name": "ease", "params": {"reg": 10.0}}, "popularity"], grid=4).fit(train, valid)
    curve = dict(zip(map(tuple, blend.validation_["weights"]), blend.validation_["values"], strict=True))
    validator = RankingValidator(train.to_csr(), valid.to_csr(), k=20)
    ease, pop = blend.members_
    # a member alone ranks as it does by itself (standardising keeps each user's order)
    assert curve[(1.0, 0.0)] == pytest.approx(validator(ease.score))
    assert curve[(0.0, 1.0)] == pytest.approx(validator(pop.score))
    assert len(curve) == 5 and validator(ease.score) > validator(pop.score)
    best = max(curve.values())
    assert curve[tuple(blend.weights_)] == best and blend.weights_[0] > blend.weights_[1]
    assert blend.chosen_ == {
        "members": ["ease", "popularity"],
        "weights": list(blend.weights_),
    }  # kept by a run
    # the chosen blend ranks as its validation figure says
    assert validator(blend.score) == pytest.approx(best)


def test_kept_validates_with_the_training_items_ranked():
    train, valid = _split()
    blend = Blend(
        members=[{"name": "ease", "params": {"reg": 10.0}}, "popularity"], grid=4, eval_history="kept"
    )
    blend.fit(train, valid)
    curve = dict(zip(map(tuple, blend.validation_["weights"]), blend.validation_["values"], strict=True))
    kept = RankingValidator(train.to_csr(), valid.to_csr(), k=20, exclude_seen=False)
    masked = RankingValidator(train.to_csr(), valid.to_csr(), k=20)
    ease = blend.members_[0]
    assert curve[(1.0, 0.0)] == pytest.approx(kept(ease.score)) and kept(ease.score) < masked(ease.score)


def test_given_weights_are_used_and_scaled():
    train, valid = _split()
    blend = Blend(members=EASE_KNN, weights=[3, 1]).fit(train, valid)
    np.testing.assert_allclose(blend.weights_, [0.75, 0.25])
    assert blend.validation_ == {} and blend.chosen_ == {}  # given, not chosen
    users = np.arange(5)
    ease, knn = (standardize(m.score(users)) for m in blend.members_)
    np.testing.assert_allclose(blend.score(users), 0.75 * ease + 0.25 * knn, rtol=1e-6, atol=1e-6)
    # without validation data and weights: equal weights
    np.testing.assert_allclose(Blend(members=EASE_KNN).fit(train).weights_, [0.5, 0.5])


def test_standardize_makes_scales_irrelevant():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(4, 30)).astype(np.float32)
    z = standardize(s)
    np.testing.assert_allclose(z.mean(axis=1), 0, atol=1e-6)
    np.testing.assert_allclose(z.std(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(standardize(1000 * s + 7), z, atol=1e-5)
    np.testing.assert_array_equal(standardize(np.ones((2, 5))), np.zeros((2, 5)))
    g = simplex_grid(3, 4)
    assert len(g) == 15 and np.allclose(g.sum(axis=1), 1) and (g >= 0).all()


def test_members_take_the_runs_seed_and_folder_unless_they_set_them(tmp_path):
    mf = {"embedding_dim": 8, "epochs": 2, "progress": False, "num_threads": 1}
    blend = Blend(
        members=[{"name": "bpr", "params": mf}, {"name": "bpr", "params": mf | {"seed": 5}}],
        seed=7,
        run_dir=str(tmp_path),
        eval_history="kept",
    ).fit(block_dataset())
    assert [m.seed for m in blend.members_] == [7, 5]
    assert [m.eval_history for m in blend.members_] == ["kept", "kept"]
    assert blend.members_[0].run_dir == str(tmp_path / "0-bpr")
    assert blend.history_mode == "fold-in"  # BPR folds a history in


def test_capabilities_follow_the_members():
    assert Blend(members=EASE_KNN).history_mode == "exact"
    no_histories = Blend(members=["ease", {"name": "llm-rerank", "params": {"base": "ease"}}])
    assert not no_histories.supports_histories
    assert Blend.supports_histories  # the class default, for blends of models that score histories


def test_bad_settings_are_one_clear_error():
    with pytest.raises(ConfigError, match="at least two"):
        Blend(members=["ease"])
    with pytest.raises(ConfigError, match="members\\[1\\]"):
        Blend(members=["ease", {"model": "itemknn"}])
    with pytest.raises(ConfigError, match="blend cannot be a member"):
        Blend(members=["ease", "blend"])
    with pytest.raises(ClarecError, match="nosuch"):
        Blend(members=["ease", "nosuch"])
    with pytest.raises(ConfigError, match="2 weights for 3 members"):
        Blend(members=["ease", "itemknn", "popularity"], weights=[1, 1])
    with pytest.raises(ConfigError, match="non-negative"):
        Blend(members=EASE_KNN, weights=[1, -1])
    with pytest.raises(ConfigError, match="members\\[0\\]: ease: reg"):  # before any data is read
        create("blend", {"members": [{"name": "ease", "params": {"reg": "x"}}, "itemknn"]})


def test_the_saved_blend_keeps_its_members_and_weights(tmp_path):
    train, valid = _split()
    blend = Blend(members=EASE_KNN, grid=4).fit(train, valid)
    back = Recommender.load(blend.save(tmp_path / "b"))
    users = np.arange(train.n_users)
    np.testing.assert_array_equal(back.score(users), blend.score(users))
    np.testing.assert_array_equal(back.weights_, blend.weights_)
    assert back.validation_ == blend.validation_ and len(back.validation_["values"]) == 5
    # model.json's members edited: it loaded with the saved members under the new names
    import json

    from clarec.errors import ClarecError

    meta = json.loads((tmp_path / "b" / "model.json").read_text())
    meta["params"]["members"] = [{"name": "popularity", "params": {}}, meta["params"]["members"][1]]
    (tmp_path / "b" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ClarecError, match="its members are"):
        Recommender.load(tmp_path / "b")
    # a user's scores do not depend on who is scored with them
    np.testing.assert_array_equal(blend.score(users[3:5]), blend.score(users)[3:5])


def test_a_member_fitted_already_is_taken_as_it_is_and_its_key_matches_the_same_model():
    from clarec.models.registry import fit_key

    train, valid = _split()
    ease = create("ease", {"reg": 10.0, "max_items": 30000}).fit(train, valid)  # a default written out
    blend = Blend(members=EASE_KNN, seed=3, run_dir="elsewhere")
    keys = blend.member_fit_keys()
    assert keys[0] == fit_key("ease", ease.get_params()) and keys[1] != keys[0]
    assert keys[0] != fit_key("ease", create("ease", {"reg": 20.0}).get_params())
    blend.fitted_members = {0: ease}
    blend.fit(train, valid)
    assert blend.members_[0] is ease and blend.members_[1].seen is not None  # the other one fitted here
    assert blend.fitted_members is None  # let go of


def test_history_mode_is_read_from_the_fitted_members(tmp_path):
    # simgcl's class says fold-in; a fitted simgcl scores a training user's history exactly, so a
    # blend of it with EASE does too once fitted (and so the evaluator reads its histories exactly)
    simgcl = {"name": "simgcl", "params": {"embedding_dim": 8, "epochs": 2, "num_threads": 1, "seed": 0}}
    blend = Blend(members=[simgcl, {"name": "ease", "params": {"reg": 10.0}}], weights=[1, 1])
    assert blend.history_mode == "fold-in"
    train, valid = _split()
    blend.fit(train, valid)
    assert blend.members_[0].history_mode == "exact" and blend.history_mode == "exact"
    users = np.arange(train.n_users)
    np.testing.assert_allclose(blend.score_histories(train.user_histories()), blend.score(users), atol=1e-4)
    blend.save(tmp_path / "blend")
    assert Recommender.load(tmp_path / "blend").history_mode == "exact"


def test_members_validate_at_the_blends_cut_off():
    bpr = {"name": "bpr", "params": {"epochs": 2}}
    assert Blend(members=[bpr, "ease"], eval_k=10)._member_params(0)["eval_k"] == 10
    assert "eval_k" not in Blend(members=[bpr, "ease"])._member_params(0)  # the member's default, 20
    assert Blend(members=[bpr, "ease"]).trains_torch() and not Blend(members=EASE_KNN).trains_torch()


def test_a_save_over_an_earlier_model_leaves_none_of_its_subfolders(tmp_path):
    train, valid = _split()
    Blend(members=EASE_KNN, grid=2).fit(train, valid).save(tmp_path / "m")
    assert (tmp_path / "m" / "members" / "1").is_dir()
    ease = create("ease", {"reg": 10.0}).fit(train, valid)
    ease.save(tmp_path / "m")  # the blend's members went with it
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.json", "state.npz"]
    # a folder that held no model keeps what is in it
    (tmp_path / "mine" / "members").mkdir(parents=True)
    ease.save(tmp_path / "mine")
    assert (tmp_path / "mine" / "members").is_dir()
