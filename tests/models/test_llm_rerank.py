"""llm-rerank: the base model's top-N re-ordered by a generative model's listwise answer."""

from __future__ import annotations

import numpy as np
import pytest
from factories import make_random_dataset

from clarec.data.split import random_split
from clarec.errors import ConfigError
from clarec.evaluate import Evaluator
from clarec.llm import Generator
from clarec.models import create
from clarec.models.base import Recommender
from clarec.models.llm_rerank import parse_ranking


class Scripted(Generator):
    """Answers each prompt with ``answer(prompt)`` and keeps the prompts."""

    model_id = "scripted"

    def __init__(self, answer):
        super().__init__(cache_dir="none")
        self.answer, self.prompts = answer, []

    def _generate(self, batch, settings):
        texts = [m[-1]["content"] for m in batch]
        self.prompts += texts
        return [self.answer(t) for t in texts]


TITLES = [f"Title: {t}." for t in ("Contact (1997)", "Fargo (1996)", "Star Wars (1977)", "Amistad (1997)")]


@pytest.mark.parametrize(
    "answer, order",
    [
        ("3, 1, 2", [2, 0, 1]),
        ("Ranking: 4, 2, 2", [3, 1]),  # a repeat counts once
        ("[2, 1]", [1, 0]),
        ("4", [3]),
        ("3, 1, 9", None),  # a number that is no candidate: not a ranking of them
        ("I cannot tell.", None),
        # numbers in prose were read as candidates: 4 (of "these 4"), the 2 of "2 most recent", a year
        ("I cannot rank these 4 candidates.", None),
        ("Based on the 2 most recent items: 3, 1", None),
        ("Seven (1995)", None),
        # titles one per line, under the model's own numbering, the last cut by the token limit
        ("1. Title: Fargo (1996).\n2. Title: Amistad (1997).\n3. Title: Conta", [1, 3, 0]),
        ("- Star Wars (1977)\n- Fargo (1996)", [2, 1]),
        ("1. The 4.\n2. The 3.", None),  # was [3, 2]
        ("1. Pinocchio (1940)\n2. Fargo (1996)", None),  # a title that is no candidate
        # the last line cut before it names a candidate is dropped (the whole answer was)
        ("1. Title: Fargo (1996).\n2. Title: Amistad (1997).\n3. Ti", [1, 3]),
        ("1. Fargo (1996)\n4", [1]),
        ("1. Fargo (1996)\nSeven (1995)\n2. Amistad (1997)", None),  # not the last line
        # markdown emphasis
        ("**3, 1, 2**", [2, 0, 1]),
        ("1. **Fargo (1996)**\n2. *Contact (1997)*", [1, 0]),
    ],
)
def test_parse_ranking(answer, order):
    assert parse_ranking(answer, 4, TITLES) == order


def test_parse_ranking_reads_a_title_that_begins_like_a_list_mark():
    titles = ["2001: A Space Odyssey (1968)", "Fargo (1996)"]
    # "2001:" was stripped as the line's mark, leaving a text that names no candidate
    assert parse_ranking("2001: A Space Odyssey (1968)\nFargo (1996)", 2, titles) == [0, 1]


@pytest.fixture
def data():
    return make_random_dataset(n_users=12, n_items=20, per_user=5, seed=2)


def test_the_answer_reorders_the_top_and_nothing_else(data):
    model = create("llm-rerank", {"base": "popularity", "top_n": 4, "cache_dir": "none"}).fit(data)
    model._gen = Scripted(lambda prompt: "4, 2")  # the 4th then the 2nd candidate, the rest in base order
    base = model.base_.score(np.arange(3))
    scores = model.score(np.arange(3))
    for u in range(3):
        masked = base[u].copy()
        masked[data.to_csr()[u].indices] = -np.inf
        top = np.argsort(-masked, kind="stable")[:4]
        expected = top[[3, 1, 0, 2]]
        got = np.argsort(-scores[u], kind="stable")
        got = got[~np.isin(got, data.to_csr()[u].indices)][:4]
        np.testing.assert_array_equal(got, expected)
        rest = np.setdiff1d(np.arange(data.n_items), top)
        np.testing.assert_array_equal(scores[u, rest], base[u, rest])  # the rest keeps base scores
    prompt = model._gen.prompts[0]
    history = data.user_histories()[0][::-1]
    assert f"- {model.titles[history[0]]}" in prompt and "4. " in prompt and "5. " not in prompt
    assert model.cost_["users"] == 3 and model.cost_["prompts"] == 3 and model.cost_["fallbacks"] == 0


def test_unusable_answers_keep_the_base_order_and_are_counted(data, caplog):
    model = create("llm-rerank", {"base": "popularity", "top_n": 5, "cache_dir": "none"}).fit(data)
    model._gen = Scripted(lambda prompt: "no idea")
    users = np.arange(4)
    base = model.base_.score(users)
    scores = model.score(users)
    for u in users:
        seen = data.to_csr()[u].indices
        a, b = base[u].copy(), scores[u].copy()
        a[seen] = b[seen] = -np.inf
        np.testing.assert_array_equal(np.argsort(-a, kind="stable")[:5], np.argsort(-b, kind="stable")[:5])
    assert model.cost_["fallbacks"] == 4 and "not a ranking of the candidates" in caplog.text


def test_save_load_and_settings(data, tmp_path, tiny_llm_dir):
    model = create(
        "llm-rerank",
        {
            "base": "ease",
            "base_params": {"reg": 5.0},
            "top_n": 3,
            "generator": str(tiny_llm_dir),
            "cache_dir": "none",
            "max_new_tokens": 6,
        },
    ).fit(data)
    s = model.score([0, 1])
    loaded = Recommender.load(model.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.score([0, 1]), s)  # greedy answers: the same re-ranking
    assert loaded.base_.reg == 5.0 and model.cost_["tokens"] is not None
    # model.json's base edited: it loaded with the saved EASE under the name itemknn
    import json

    from clarec.errors import ClarecError

    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    meta["params"] |= {"base": "itemknn", "base_params": {}}
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ClarecError, match="its base is a 'ease' model"):
        Recommender.load(tmp_path / "m")
    with pytest.raises(ConfigError, match="another model"):
        create("llm-rerank", {"base": "llm-rerank"})
    with pytest.raises(ConfigError, match="top_n"):
        create("llm-rerank", {"top_n": 1})


def test_cost_adds_up_over_calls_until_reset(data):
    model = create("llm-rerank", {"base": "popularity", "top_n": 3, "cache_dir": "none"}).fit(data)
    model._gen = Scripted(lambda prompt: "2, 1")
    model.score(np.arange(2))
    model.score(np.arange(2, 5))
    assert model.cost_["users"] == 5 and model.cost_["prompts"] == 5 and model.cost_["tokens"] is None
    assert model.cost_["answers"] == 5
    model.reset_cost()
    model.score([7])
    assert model.cost_["users"] == 1 and model.cost_["prompts"] == 1


def test_an_evaluation_takes_the_candidates_among_the_items_its_ranking_can_hold(data):
    # the test ranking leaves out validation items too: they were listed as candidates before
    split = random_split(make_random_dataset(n_users=30, n_items=25, per_user=8, seed=4), (0.6, 0.2, 0.2))
    model = create("llm-rerank", {"base": "popularity", "top_n": 6, "cache_dir": "none"}).fit(split.train)
    model._gen = Scripted(lambda prompt: "2, 1")
    ev = Evaluator(split, ks=[5])
    titles = {str(t): i for i, t in enumerate(model.titles)}
    for part, left_out in (
        ("valid", split.train.to_csr()),
        ("test", split.train.to_csr() + split.valid.to_csr()),
    ):
        model._gen.prompts.clear()
        ev.evaluate(model, part=part)
        users = np.unique((split.valid if part == "valid" else split.test).interactions["user"].to_numpy())
        assert len(model._gen.prompts) == len(users)
        for u, prompt in zip(users, model._gen.prompts, strict=True):
            listed = prompt.split("Candidates:\n")[1].split("\n\n")[0].splitlines()
            items = [titles[line.split(". ", 1)[1]] for line in listed]
            assert len(items) == 6 and not set(items) & set(left_out[u].indices)
            assert left_out[u].nnz > split.train.to_csr()[u].nnz or part == "valid"


def test_the_base_takes_the_runs_seed_and_settings(data, tmp_path):
    # a run's seeds must be seeds of the base's training (not its default seed on every one)
    params = {"base": "bpr", "base_params": {"epochs": 1, "num_threads": 1}, "cache_dir": "none"}
    model = create("llm-rerank", params | {"seed": 7, "eval_k": 10, "run_dir": str(tmp_path)}).fit(data)
    assert model.base_.seed == 7 and model.base_.eval_k == 10
    assert (tmp_path / "base").is_dir()  # its training log
    assert model.trains_torch() and not create("llm-rerank", {"base": "ease"}).trains_torch()
    kept = create("llm-rerank", params | {"seed": 7, "base_params": {"epochs": 1, "seed": 3}}).fit(data)
    assert kept.base_.seed == 3  # base_params win
