"""Full-ranking evaluator: exclusion, chunking, segments, and agreement with a brute-force pipeline."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from clarec.data.dataset import Dataset
from clarec.data.split import Split
from clarec.errors import ClarecError, ConfigError
from clarec.evaluate.evaluator import Evaluator, evaluate_rankings, popularity_buckets
from clarec.evaluate.metrics import ACCURACY_METRICS, per_user_metrics
from clarec.models.base import Recommender
from clarec.ranking import top_k


class TableModel(Recommender):
    """Scores read from a fixed users × items table."""

    def __init__(self, table: np.ndarray | None = None, return_view: bool = False):
        self.table = table
        self.return_view = return_view

    def _fit(self, train, valid) -> None:
        pass

    def score(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users)
        if self.return_view and len(users) and np.all(np.diff(users) == 1):
            return self.table[users[0] : users[-1] + 1]  # a view of the model's own state
        return self.table[users]


def make_split(seed: int = 0, n_users: int = 40, n_items: int = 30, cold: int = 0) -> Split:
    """Random interactions, each user's pairs split 60/20/20; the last ``cold`` items only in test."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=int(rng.integers(3, 15)), replace=False)
        rows += [(u, int(i)) for i in items]
    df = pd.DataFrame(rows, columns=["user", "item"])
    base = Dataset(df, [f"u{u}" for u in range(n_users)], [f"i{i}" for i in range(n_items)])
    part = rng.choice(3, size=len(df), p=[0.6, 0.2, 0.2])
    cold_items = np.arange(n_items - cold, n_items)
    part[np.isin(df["item"], cold_items)] = 2
    parts = [base.with_interactions(df[part == p].reset_index(drop=True)) for p in range(3)]
    return Split(*parts, cold_items=cold_items, method="test")


def fitted(split: Split, table: np.ndarray, **kw) -> TableModel:
    return TableModel(table=table.astype(np.float32), **kw).fit(split.train)


def test_seen_items_excluded_model_that_loves_train_items_is_perfect():
    split = make_split(0)
    train, valid, test = (
        split.train.to_csr().toarray(),
        split.valid.to_csr().toarray(),
        split.test.to_csr().toarray(),
    )
    # Train items score highest, then valid, then test items, then the rest.
    table = 3 * train + 2 * valid + 1 * test
    res = Evaluator(split, ks=(10, 20)).evaluate(fitted(split, table), part="test")
    assert (test.sum(1) <= 10).all()
    for k in (10, 20):
        assert res.metrics[f"recall@{k}"] == 1.0
        assert res.metrics[f"ndcg@{k}"] == pytest.approx(1.0)
        assert res.metrics[f"mrr@{k}"] == 1.0
        assert res.metrics[f"map@{k}"] == pytest.approx(1.0)
    assert res.users.tolist() == np.flatnonzero(test.sum(1)).tolist()
    # On validation only training items are excluded, so valid items (next best) come first.
    res_valid = Evaluator(split).evaluate(fitted(split, table), part="valid")
    assert res_valid.metrics["recall@10"] == 1.0
    assert res_valid.users.tolist() == np.flatnonzero(valid.sum(1)).tolist()


def test_without_valid_exclusion_the_same_model_would_lose():
    split = make_split(1)
    valid, test = split.valid.to_csr().toarray(), split.test.to_csr().toarray()
    table = 2 * valid + 1 * test
    res = Evaluator(split, ks=(1,)).evaluate(fitted(split, table), part="test")
    # Had valid items stayed in the ranking, users with a valid item would miss at rank 1.
    assert (valid[res.users].sum(1) > 0).sum() >= 10
    assert res.metrics["hit@1"] == 1.0


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_chunking_gives_identical_results(batch_size):
    split = make_split(2, n_users=50, n_items=35)
    rng = np.random.default_rng(5)
    # Coarse scores so ties occur and must be broken the same way in every chunking.
    table = rng.integers(0, 4, size=(50, 35))
    ref = Evaluator(split, ks=(5, 10), batch_size=None).evaluate(fitted(split, table))
    res = Evaluator(split, ks=(5, 10), batch_size=batch_size).evaluate(fitted(split, table))
    assert res.metrics == ref.metrics
    assert res.segments == ref.segments
    for name, values in ref.per_user.items():
        np.testing.assert_array_equal(res.per_user[name], values)


def brute_force_rankings(split: Split, table: np.ndarray, users: np.ndarray, k: int, part: str) -> np.ndarray:
    """Per user: drop excluded items, sort by (−score, item index), keep k."""
    excluded = split.train.to_csr().toarray() > 0
    if part == "test":
        excluded |= split.valid.to_csr().toarray() > 0
    out = np.full((len(users), k), -1)
    for row, u in enumerate(users):
        items = [i for i in range(table.shape[1]) if not excluded[u, i]]
        items.sort(key=lambda i: (-float(np.float32(table[u, i])), i))
        out[row, : min(k, len(items))] = items[:k]
    return out


@pytest.mark.parametrize("part", ["test", "valid"])
def test_matches_brute_force_pipeline(part):
    split = make_split(3, n_users=45, n_items=20)
    table = np.random.default_rng(9).integers(0, 6, size=(45, 20)).astype(np.float32)
    res = Evaluator(split, ks=(3, 10), batch_size=4).evaluate(fitted(split, table), part=part)
    target = (split.test if part == "test" else split.valid).to_csr()
    users = np.flatnonzero(np.diff(target.indptr))
    topk = brute_force_rankings(split, table, users, 10, part)
    expected = per_user_metrics(topk, target[users], (3, 10))
    for name, values in expected.items():
        np.testing.assert_allclose(res.per_user[name], values, atol=1e-12, err_msg=name)
        assert res.metrics[name] == pytest.approx(values.mean(), abs=1e-12)
    pop = split.train.item_popularity().astype(float)
    counts = np.bincount(topk[:, :10][topk[:, :10] >= 0], minlength=20)
    assert res.metrics["coverage@10"] == pytest.approx(np.count_nonzero(counts) / 20)
    nov = [np.mean([-math.log2(max(pop[i], 1) / 45) for i in row if i >= 0]) for row in topk[:, :3]]
    assert res.metrics["novelty@3"] == pytest.approx(np.mean(nov), abs=1e-12)


def test_flat_metric_names_and_diversity():
    split = make_split(4)
    feats = np.eye(30)[np.arange(30) % 4]  # four "genres"
    table = np.random.default_rng(0).random((40, 30))
    res = Evaluator(split, ks=(10, 20), item_features=feats).evaluate(fitted(split, table))
    expected = [
        f"{m}@{k}"
        for k in (10, 20)
        for m in (*ACCURACY_METRICS, "coverage", "diversity", "novelty", "avg_pop", "gini")
    ]
    assert list(res.metrics) == expected
    # one-hot genres: a pair is 1 apart when its genres differ, 0 when they agree
    test = split.test.to_csr()
    users = np.flatnonzero(np.diff(test.indptr))
    genre = np.arange(30) % 4
    for k in (10, 20):
        lists = [row[row >= 0] for row in brute_force_rankings(split, table, users, k, "test")]
        by_hand = [
            np.mean([genre[a] != genre[b] for j, a in enumerate(row) for b in row[j + 1 :]]) for row in lists
        ]
        assert k == 10 or min(map(len, lists)) < k  # lists cut short by the excluded items count too
        assert min(by_hand) < max(by_hand)  # the lists differ in how mixed they are
        assert res.metrics[f"diversity@{k}"] == pytest.approx(np.mean(by_hand), abs=1e-12)
    plain = Evaluator(split, ks=(10,)).evaluate(fitted(split, table))
    assert "diversity@10" not in plain.metrics
    only = Evaluator(split, ks=(10,), metrics=["ndcg", "gini"]).evaluate(fitted(split, table))
    assert list(only.metrics) == ["ndcg@10", "gini@10"]
    assert res.seconds > 0
    assert res.to_dict()["users"] == len(res.users)


def test_cold_item_segment():
    split = make_split(5, n_users=40, n_items=30, cold=4)
    rng = np.random.default_rng(1)
    table = rng.random((40, 30)).astype(np.float32)
    table[:, 26:] += 0.5  # cold items rank high for everyone
    res = Evaluator(split, ks=(5,)).evaluate(fitted(split, table))
    test = split.test.to_csr()
    users = np.flatnonzero(np.diff(test.indptr))
    topk = brute_force_rankings(split, table, users, 5, "test")
    rel = test[users].toarray()
    rel[:, :26] = 0  # relevance restricted to cold items
    keep = rel.sum(1) > 0
    expected = per_user_metrics(topk[keep], sp.csr_matrix(rel[keep]), (5,))
    seg = res.segments["cold_items"]
    assert seg["users"] == keep.sum() > 0
    for name, values in expected.items():
        assert seg[name] == pytest.approx(values.mean(), abs=1e-12)
    # No cold items -> no cold segment.
    assert (
        "cold_items" not in Evaluator(make_split(5), ks=(5,)).evaluate(fitted(make_split(5), table)).segments
    )


def test_cold_only_segment_ranks_only_cold_items():
    split = make_split(5, n_users=40, n_items=30, cold=6)
    table = np.random.default_rng(2).random((40, 30)).astype(np.float32)  # warm items compete too
    res = Evaluator(split, ks=(3,)).evaluate(fitted(split, table))
    test = split.test.to_csr()
    users = np.flatnonzero(np.diff(test.indptr))
    masked = table.copy()
    masked[:, :24] = -np.inf  # only the 6 cold items are candidates
    topk = brute_force_rankings(split, masked, users, 3, "test")
    topk[np.take_along_axis(masked[users], np.maximum(topk, 0), 1) == -np.inf] = -1
    rel = test[users].toarray()
    rel[:, :24] = 0
    keep = rel.sum(1) > 0
    expected = per_user_metrics(topk[keep], sp.csr_matrix(rel[keep]), (3,))
    seg = res.segments["cold_only"]
    assert seg["users"] == keep.sum() > 0
    for name, values in expected.items():
        assert seg[name] == pytest.approx(values.mean(), abs=1e-12)
    # ranking among 6 cold items finds more of them than ranking the whole catalogue
    assert seg["recall@3"] > res.segments["cold_items"]["recall@3"]


def test_popularity_buckets_split_interactions_in_thirds():
    pop = np.array([10, 1, 1, 0, 5, 5, 3, 2, 2, 1.0])  # 30 interactions
    buckets = {k: np.flatnonzero(v).tolist() for k, v in popularity_buckets(pop).items()}
    # head: the top item (a third); mid: the next third (5 + 5); tail: the rest, unseen item 3 too
    assert buckets == {"items_head": [0], "items_mid": [4, 5], "items_tail": [1, 2, 3, 6, 7, 8, 9]}
    # ties stay together: three items of equal popularity all go where the first one goes
    assert {k: v.sum() for k, v in popularity_buckets(np.array([3, 3, 3.0])).items()} == {
        "items_head": 3,
        "items_mid": 0,
        "items_tail": 0,
    }
    pop = np.random.default_rng(0).permutation(np.floor(1000 / np.arange(1, 501)))  # Zipf's law
    b = popularity_buckets(pop)
    assert sum(v.astype(int) for v in b.values()).tolist() == [1] * 500  # a partition
    assert b["items_head"].sum() < b["items_mid"].sum() < b["items_tail"].sum()  # a long tail
    assert pop[b["items_head"]].min() >= pop[b["items_mid"]].max() >= pop[b["items_tail"]].max()


def test_long_tail_segments():
    split = make_split(9, n_users=60, n_items=30)
    table = np.random.default_rng(4).random((60, 30))
    res = Evaluator(split, ks=(5,)).evaluate(fitted(split, table))
    pop = np.diff(split.train.to_csr().tocsc().indptr)
    test = split.test.to_csr()
    users = np.flatnonzero(np.diff(test.indptr))
    topk = brute_force_rankings(split, table, users, 5, "test")
    for name, chosen in popularity_buckets(pop).items():
        rel = test[users].toarray()
        rel[:, ~chosen] = 0
        keep = rel.sum(1) > 0
        expected = per_user_metrics(topk[keep], sp.csr_matrix(rel[keep]), (5,))
        seg = res.segments[name]
        assert seg["users"] == keep.sum() > 0 and seg["items"] == chosen.sum()
        for metric, values in expected.items():
            assert seg[metric] == pytest.approx(values.mean(), abs=1e-12)


def test_activity_quartiles():
    split = make_split(6, n_users=41)
    table = np.random.default_rng(2).random((41, 30))
    res = Evaluator(split, ks=(10,)).evaluate(fitted(split, table))
    activity = np.diff(split.train.to_csr().indptr)[res.users]
    order = sorted(range(len(res.users)), key=lambda r: (activity[r], res.users[r]))
    sizes = [len(g) for g in np.array_split(np.arange(len(order)), 4)]
    start = 0
    for q, size in enumerate(sizes, start=1):
        rows = order[start : start + size]
        start += size
        seg = res.segments[f"activity_q{q}"]
        assert seg["users"] == size
        assert seg["recall@10"] == pytest.approx(res.per_user["recall@10"][rows].mean(), abs=1e-12)
        assert seg["min_train"] == activity[rows].min() and seg["max_train"] == activity[rows].max()
    assert res.segments["activity_q1"]["max_train"] <= res.segments["activity_q4"]["min_train"]


def test_model_state_is_not_written_into():
    split = make_split(7)
    table = np.random.default_rng(3).random((40, 30)).astype(np.float32)
    model = TableModel(table=table.copy(), return_view=True).fit(split.train)
    views = []
    score = model.score
    model.score = lambda users: views.append(np.shares_memory(out := score(users), model.table)) or out
    Evaluator(split, ks=(5,), batch_size=8).evaluate(model)
    assert any(views)  # the evaluator was handed the model's own memory at least once
    np.testing.assert_array_equal(model.table, table)


def test_errors():
    split = make_split(8)
    model = fitted(split, np.zeros((40, 30)))
    with pytest.raises(ConfigError, match="part"):
        Evaluator(split).evaluate(model, part="train")
    with pytest.raises(ConfigError, match="did you mean 'ndcg'"):
        Evaluator(split, metrics=["ndgc"])
    with pytest.raises(ConfigError, match="item_features"):
        Evaluator(split, metrics=["diversity"])
    with pytest.raises(ConfigError, match="positive"):
        Evaluator(split, ks=(0, 10))
    with pytest.raises(ConfigError, match="batch_size"):
        Evaluator(split, batch_size=0)
    with pytest.raises(ConfigError, match="item_features has 29 rows"):
        Evaluator(split, item_features=np.ones((29, 3)))
    empty = make_split(8)
    empty.test = empty.test.with_interactions(empty.test.interactions.iloc[:0])
    with pytest.raises(ClarecError, match="nothing to evaluate"):
        Evaluator(empty).evaluate(model)
    nan_table = np.zeros((40, 30))
    user = int(np.flatnonzero(np.diff(split.test.to_csr().indptr))[3])
    nan_table[user] = np.nan
    with pytest.raises(ClarecError, match=rf"NaN scores \(user index {user}\)"):
        Evaluator(split).evaluate(fitted(split, nan_table))
    # one NaN among tied scores (the k-th score tied with an item left out) is refused too
    seen = set(split.train.to_csr()[user].indices) | set(split.valid.to_csr()[user].indices)
    one_nan = np.zeros((40, 30))
    one_nan[user, next(i for i in range(29, -1, -1) if i not in seen)] = np.nan
    with pytest.raises(ClarecError, match=rf"NaN scores \(user index {user}\)"):
        Evaluator(split, ks=(5,)).evaluate(fitted(split, one_nan))
    wrong = fitted(split, np.zeros((40, 29)))
    with pytest.raises(ClarecError, match="shape"):
        Evaluator(split).evaluate(wrong)


def test_evaluate_rankings_for_external_lists():
    rel = sp.csr_matrix(np.array([[1, 0, 0, 1], [0, 0, 0, 0], [0, 1, 0, 0]]))
    train = sp.csr_matrix(np.array([[0, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0]]))
    topk = np.array([[1, 0, 3], [0, 1, 2], [2, 1, -1]])
    res = evaluate_rankings(topk, rel, ks=(2,), train=train)
    assert res.users.tolist() == [0, 2]  # user 1 has nothing relevant
    # User 0: item 1 (a training item, simply not relevant) then item 0: hit at rank 2 of 2 relevant.
    assert res.per_user["recall@2"].tolist() == [0.5, 1.0]
    assert res.metrics["mrr@2"] == pytest.approx((0.5 + 0.5) / 2)
    # Lists of scored users: {1, 0} and {2, 1} -> 3 of 4 items.
    assert res.metrics["coverage@2"] == pytest.approx(0.75)
    # Popularity from train columns: [2, 2, 1, 0]; avg_pop: user 0 (2+2)/2, user 2 (1+2)/2.
    assert res.metrics["avg_pop@2"] == pytest.approx((2 + 1.5) / 2)
    # popularity [2, 2, 1, 0] of 5 interactions: head {0} (ties: item 1 joins it), tail {2, 3}
    assert set(res.segments) == {"activity_q1", "activity_q2", "items_head", "items_tail"}
    # user 0's item 0 and user 2's item 1 (head) are both at rank 2; user 0's tail item 3 is missed
    head, tail = res.segments["items_head"], res.segments["items_tail"]
    assert (head["users"], head["items"], head["recall@2"], head["mrr@2"]) == (2, 2, 1.0, 0.5)
    assert (tail["users"], tail["items"], tail["recall@2"]) == (1, 2, 0.0)
    no_train = evaluate_rankings(topk, rel, ks=(2,))
    assert "novelty@2" not in no_train.metrics and "ndcg@2" in no_train.metrics
    with pytest.raises(ConfigError, match="train"):
        evaluate_rankings(topk, rel, ks=(2,), metrics=["novelty"])
    with pytest.raises(ClarecError, match="rankings"):
        evaluate_rankings(topk[:2], rel, ks=(2,))
    with pytest.raises(ClarecError, match="item index 4"):
        evaluate_rankings(np.array([[4], [0], [1]]), rel, ks=(2,))


@pytest.mark.parametrize("n_items", [7, 300, 5000])
def test_top_k_breaks_ties_by_lower_index_even_at_the_cut(n_items):
    # Three distinct scores over many items: the 10th place is almost always tied with items left out.
    rng = np.random.default_rng(n_items)
    scores = rng.integers(0, 3, size=(20, n_items)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.1] = -np.inf
    idx, vals = top_k(scores, 10)
    for row, s in enumerate(scores):
        expected = sorted(range(n_items), key=lambda i: (-s[i], i))[:10]
        assert idx[row].tolist() == expected
        np.testing.assert_array_equal(vals[row], s[expected])


def test_history_items_kept_leaves_every_item_a_candidate():
    split = make_split(3)
    train, test = split.train.to_csr().toarray(), split.test.to_csr().toarray()
    table = (3 * train + 1 * test).astype(np.float32)
    model = fitted(split, table)
    masked = Evaluator(split, ks=(5,)).evaluate(model, part="test")
    kept = Evaluator(split, ks=(5,), history_items="kept").evaluate(model, part="test")
    assert (test.sum(1) <= 5).all() and masked.metrics["recall@5"] == 1.0
    # kept: nothing excluded, so the lists are the plain top 5 of the table (training items first)
    users = kept.users
    idx, _ = top_k(table[users], 5)
    want = per_user_metrics(idx, sp.csr_matrix(test[users]), (5,), ["recall", "ndcg"])
    assert kept.metrics["recall@5"] == pytest.approx(want["recall@5"].mean())
    assert kept.metrics["ndcg@5"] == pytest.approx(want["ndcg@5"].mean())
    assert kept.metrics["recall@5"] < masked.metrics["recall@5"]
    with pytest.raises(ConfigError, match="history_items"):
        Evaluator(split, history_items="hidden")
    with pytest.raises(ConfigError, match="test_input"):
        Evaluator(split, test_input="valid")


class NextOnRing(Recommender):
    """Scores the item after a history's last item on a ring of items (an exact history model)."""

    supports_histories = True
    history_mode = "exact"

    def _fit(self, train, valid) -> None:
        self.histories = train.user_histories()

    def score_histories(self, histories) -> np.ndarray:
        out = np.zeros((len(histories), self.n_items), dtype=np.float32)
        for r, h in enumerate(self._check_histories(histories)):
            if len(h):
                out[r, (h[-1] + 1) % self.n_items] = 1.0
        return out

    def score(self, users) -> np.ndarray:
        return self.score_histories([self.histories[u] for u in self._check_users(users)])


def test_the_validation_item_is_the_test_input_for_history_models():
    from clarec.data.split import leave_one_out_split

    rng = np.random.default_rng(0)
    rows = []
    for u in range(30):
        start = int(rng.integers(20))
        rows += [(f"u{u}", f"i{(start + t) % 20:02d}", t) for t in range(int(rng.integers(4, 9)))]
    ds = Dataset.from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]))
    split = leave_one_out_split(ds)
    model = NextOnRing().fit(split.train)
    both = Evaluator(split, ks=(1,), test_input="train+valid")
    assert both.reads_test_input(model)
    assert both.evaluate(model, part="test").metrics["hit@1"] == 1.0
    # without the validation item the model predicts it, and it is masked when testing: what is left
    # is a tie of zeros, broken by item index
    assert Evaluator(split, ks=(1,)).evaluate(model, part="test").metrics["hit@1"] < 0.5
    assert both.evaluate(model, part="valid").metrics["hit@1"] == 1.0  # valid reads train only
    # a model whose history scoring is not exact keeps scoring its training user
    model.history_mode = "fold-in"
    assert not both.reads_test_input(model)


@pytest.mark.parametrize("name", ["ease", "itemknn"])
def test_a_weighted_model_reads_the_test_inputs_weights(name):
    # its test input was scored as 0/1 while training read the weights: rankings not the model's
    from clarec.data.split import leave_one_out_split
    from clarec.models import create

    rng = np.random.default_rng(1)
    rows = [
        (f"u{u}", f"i{int(i):02d}", t, float(rng.choice([1.0, 5.0])))
        for u in range(40)
        for t, i in enumerate(rng.choice(25, size=7, replace=False))
    ]
    ds = Dataset.from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "weight"]))
    split = leave_one_out_split(ds)
    model = create(name, {"weighted": True}).fit(split.train)
    ev = Evaluator(split, ks=(5,), history_items="kept", test_input="train+valid")
    users = np.unique(split.test.interactions["user"].to_numpy())
    got, _ = ev.ranked_lists(model, users)
    known = pd.concat([split.train.interactions, split.valid.interactions])
    weight = dict(zip(zip(known["user"], known["item"], strict=True), known["weight"], strict=True))
    items = ev.test_histories()
    expected = model.score_histories(
        [items[u] for u in users], weights=[[weight[u, i] for i in items[u]] for u in users]
    )
    np.testing.assert_array_equal(got, np.argsort(-expected, axis=1, kind="stable")[:, :5])


def test_repeat_interactions_are_counted_as_targets_the_masked_convention_cannot_reach():
    from clarec.data.split import leave_one_out_split

    # users 0-3 buy the item they viewed last (it is in their history), users 4-9 a new one
    rows = []
    for u in range(10):
        seq = [u, u + 1, u + 2] + ([u + 2] if u < 4 else [u + 3]) + ([u + 2] if u < 2 else [u + 4])
        rows += [(f"u{u}", f"i{i:02d}", t) for t, i in enumerate(seq)]
    ds = Dataset.from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]))
    split = leave_one_out_split(ds)
    masked = Evaluator(split, ks=(5,))
    # test: users 0-1 repeat i(u+2), also in their history; 2-3 test on u+4, new; valid: users 0-3
    assert masked.unreachable("test") == {"targets": 2, "of": 10, "users": 2, "of_users": 10}
    assert masked.unreachable("valid") == {"targets": 4, "of": 10, "users": 4, "of_users": 10}
    # a model that knows every target still misses the unreachable ones, and the result says so
    truth = split.test.to_csr().toarray().astype(np.float32)
    result = masked.evaluate(fitted(split, truth), part="test")
    assert result.metrics["hit@5"] == pytest.approx(0.8)
    assert result.unreachable == masked.unreachable("test")
    assert result.to_dict()["unreachable"]["targets"] == 2
    kept = Evaluator(split, ks=(5,), history_items="kept")
    assert kept.unreachable("test") == {}
    assert kept.evaluate(fitted(split, truth), part="test").metrics["hit@5"] == 1.0
    # a log without repeats has nothing to report
    assert Evaluator(make_split(3), ks=(5,)).unreachable("test") == {}


def test_user_sample_scores_the_same_users_with_an_interval():
    split = make_split(4, n_users=400, n_items=60)
    rng = np.random.default_rng(1)
    table = rng.random((400, 60)) + np.arange(60)[None, :] / 60  # some signal: higher items better
    full = Evaluator(split, ks=(10,)).evaluate(fitted(split, table))
    sampled_eval = Evaluator(split, ks=(10,), user_sample=120, sample_seed=3)
    a = sampled_eval.evaluate(fitted(split, table))
    b = sampled_eval.evaluate(fitted(split, rng.random((400, 60))))
    assert a.sample == {"users": 120, "of": len(full.users), "seed": 3}
    np.testing.assert_array_equal(a.users, b.users)  # every model on the same users: paired tests hold
    assert set(a.users) <= set(full.users)
    # the sampled users' figures are exactly the full run's figures of those users
    pos = np.searchsorted(full.users, a.users)
    np.testing.assert_allclose(a.per_user["ndcg@10"], full.per_user["ndcg@10"][pos])
    assert set(a.ci95) == {k for k in full.per_user if k.split("@")[0] in ACCURACY_METRICS}
    for key, half in a.ci95.items():
        n, big_n = 120, len(full.users)
        sd = np.std(a.per_user[key], ddof=1)
        assert half == pytest.approx(1.96 * sd / math.sqrt(n) * math.sqrt((big_n - n) / (big_n - 1)))
    assert abs(a.metrics["ndcg@10"] - full.metrics["ndcg@10"]) < a.ci95["ndcg@10"]
    assert a.to_dict()["sample"]["users"] == 120 and "ci95" in a.to_dict()
    # a sample as large as the population is no sample
    whole = Evaluator(split, ks=(10,), user_sample=10_000).evaluate(fitted(split, table))
    assert whole.sample == {} and whole.metrics == full.metrics and "sample" not in whole.to_dict()
    with pytest.raises(ConfigError, match="user_sample"):
        Evaluator(split, user_sample=1)


def test_device_scoring_of_an_inner_product_model_ranks_as_the_model_does():
    """``device="auto"`` (here the CPU: the torch path) scores an embedding model from its query and
    item vectors and ranks with torch's top-k: the same lists and figures as the model's own scores;
    a model without the inner-product path keeps its own scores."""
    from clarec.models import create

    split = make_split(4, n_users=60, n_items=50)
    model = create("bpr", {"embedding_dim": 8, "epochs": 2, "seed": 1, "progress": False}).fit(split.train)
    vecs = model.item_vecs.copy()
    vecs[7] = vecs[3]  # a tie, broken by the lower index on both paths
    model.item_vecs = vecs
    assert model.query_items() is not None
    table = fitted(split, make_split(5, n_users=60, n_items=50).train.to_csr().toarray() + 0.0)
    for m in (model, table):
        on_cpu, on_device = Evaluator(split, ks=[5, 10]), Evaluator(split, ks=[5, 10], device="auto")
        users = np.arange(split.train.n_users)
        excluded = split.train.to_csr()[users]
        allowed = np.arange(50) % 3 > 0
        histories = [excluded[u].indices[::-1] for u in users]  # scored through history_queries
        for kw in ({}, {"allowed": allowed}, {"histories": histories} if m is model else {}):
            np.testing.assert_array_equal(
                on_device.rank(m, users, excluded, **kw), on_cpu.rank(m, users, excluded, **kw)
            )
        assert on_device.evaluate(m).metrics == on_cpu.evaluate(m).metrics
    with pytest.raises(ConfigError, match="device"):
        Evaluator(split, device="tpu")
