"""Accuracy metrics: a hand-worked example and an independent brute-force reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from clarec.evaluate.metrics import (
    ACCURACY_METRICS,
    hit_matrix,
    mean_metrics,
    per_user_metrics,
    valid_slots,
)


def csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    r = [u for u, items in enumerate(rows) for _ in items]
    c = [i for items in rows for i in items]
    return sp.csr_matrix((np.ones(len(c)), (r, c)), shape=(len(rows), n_items))


# The worked example of docs/metrics.md: 8 items, 4 users, lists of 5.
TOPK = np.array(
    [
        [3, 1, 4, 6, 2],  # user 0, relevant {1, 2, 7}: hits at ranks 2 and 5
        [5, 0, -1, -1, -1],  # user 1, relevant {0}: hit at rank 2, only 2 items recommended
        [0, 1, 2, 3, 4],  # user 2, no relevant item: not scored
        [4, 5, 6, 0, 1],  # user 3, relevant {7}: no hit
    ]
)
RELEVANT = csr([[1, 2, 7], [0], [], [7]], 8)
L3, L6 = math.log2(3), math.log2(6)
IDCG3 = 1 + 1 / L3 + 1 / math.log2(4)  # three relevant items fill ranks 1..3: 2.1309297535714578

EXPECTED = {
    # user 0, K=3: 1 hit (rank 2) of 3 relevant
    "precision@3": [1 / 3, 1 / 3, np.nan, 0.0],  # u1: 1 hit / K=3
    "recall@3": [1 / 3, 1.0, np.nan, 0.0],  # u1: 1 hit / 1 relevant
    "f1@3": [1 / 3, 0.5, np.nan, 0.0],  # u1: 2·(1/3)·1 / (1/3 + 1) = 0.5
    "ndcg@3": [(1 / L3) / IDCG3, 1 / L3, np.nan, 0.0],  # u0: 0.63093/2.13093 = 0.29608; u1: ideal DCG = 1
    "hit@3": [1.0, 1.0, np.nan, 0.0],
    "mrr@3": [0.5, 0.5, np.nan, 0.0],  # first hit at rank 2 for both
    "map@3": [(1 / 2) / 3, (1 / 2) / 1, np.nan, 0.0],  # u0: P@2 = 1/2, over min(3, 3); u1: over min(1, 3)
    # user 0, K=5: 2 hits (ranks 2 and 5)
    "precision@5": [2 / 5, 1 / 5, np.nan, 0.0],
    "recall@5": [2 / 3, 1.0, np.nan, 0.0],
    "f1@5": [0.5, 1 / 3, np.nan, 0.0],  # u0: 2·0.4·(2/3) / (0.4 + 2/3) = 0.5333/1.0667 = 0.5; u1: 0.4/1.2
    "ndcg@5": [(1 / L3 + 1 / L6) / IDCG3, 1 / L3, np.nan, 0.0],  # u0: (0.63093 + 0.38685)/2.13093 = 0.47762
    "hit@5": [1.0, 1.0, np.nan, 0.0],
    "mrr@5": [0.5, 0.5, np.nan, 0.0],
    "map@5": [(1 / 2 + 2 / 5) / 3, 0.5, np.nan, 0.0],  # u0: (P@2 + P@5) / 3 = 0.9/3 = 0.3
}


def test_worked_example_per_user():
    got = per_user_metrics(TOPK, RELEVANT, ks=(3, 5))
    assert list(got) == [f"{m}@{k}" for k in (3, 5) for m in ACCURACY_METRICS]
    for name, expected in EXPECTED.items():
        np.testing.assert_allclose(got[name], expected, rtol=0, atol=1e-12, err_msg=name)


def test_worked_example_means_skip_users_without_relevant_items():
    means = mean_metrics(per_user_metrics(TOPK, RELEVANT, ks=(3, 5)))
    assert means["ndcg@5"] == pytest.approx((0.4776237035032179 + 0.6309297535714575 + 0.0) / 3, abs=1e-12)
    assert means["recall@5"] == pytest.approx((2 / 3 + 1 + 0) / 3, abs=1e-12)
    assert means["map@5"] == pytest.approx((0.3 + 0.5 + 0) / 3, abs=1e-12)
    assert means["hit@3"] == pytest.approx(2 / 3, abs=1e-12)


def test_hits_and_duplicates():
    topk = np.array([[2, 2, 7, -1, 7]])
    rel = csr([[2, 7]], 8)
    # The repeat of item 2 at rank 2 and of item 7 at rank 5 do not count again.
    assert hit_matrix(topk, rel).tolist() == [[True, False, True, False, False]]
    assert valid_slots(topk).tolist() == [[True, False, True, False, False]]
    got = per_user_metrics(topk, rel, ks=(5,))
    assert got["recall@5"][0] == 1.0
    assert got["precision@5"][0] == pytest.approx(2 / 5)


def test_cutoff_beyond_list_length_counts_missing_slots_as_empty():
    topk = np.array([[1, 0]])
    rel = csr([[0]], 3)
    got = per_user_metrics(topk, rel, ks=(1, 2, 10))
    assert got["precision@10"][0] == pytest.approx(1 / 10)
    assert got["ndcg@10"][0] == pytest.approx(1 / math.log2(3))
    assert got["mrr@1"][0] == 0.0 and got["mrr@2"][0] == 0.5


def test_explicit_zeros_and_duplicates_in_relevance_are_binary():
    rel = sp.csr_matrix((np.array([0.0, 2.0, 1.0]), np.array([1, 3, 3]), np.array([0, 3])), shape=(1, 5))
    got = per_user_metrics(np.array([[1, 3]]), rel, ks=(2,))
    assert got["recall@2"][0] == 1.0  # only item 3 is relevant; its duplicate entries merge
    assert got["precision@2"][0] == 0.5


def test_subset_of_metrics_and_bad_input():
    got = per_user_metrics(TOPK, RELEVANT, ks=(5,), metrics=["f1"])
    assert list(got) == ["f1@5"]
    with pytest.raises(ValueError, match="unknown accuracy metric"):
        per_user_metrics(TOPK, RELEVANT, ks=(5,), metrics=["auc"])
    with pytest.raises(ValueError, match="positive"):
        per_user_metrics(TOPK, RELEVANT, ks=(0,))
    with pytest.raises(ValueError, match="rows"):
        per_user_metrics(TOPK[:2], RELEVANT, ks=(5,))
    with pytest.raises(ValueError, match="n_items"):
        per_user_metrics(np.array([[9]]), csr([[1]], 8), ks=(1,))


def test_empty_ranking_matrix():
    got = per_user_metrics(np.empty((2, 0), dtype=np.int64), csr([[1], []], 4), ks=(3,))
    assert got["ndcg@3"][0] == 0.0 and np.isnan(got["ndcg@3"][1])


# ---------------------------------------------------------------------- brute force reference
def brute_force(ranking: list[int], relevant: set[int], k: int) -> dict[str, float]:
    """Textbook definitions, one user at a time, written without the vectorised tricks."""
    if not relevant:
        return {m: math.nan for m in ACCURACY_METRICS}
    seen: set[int] = set()
    hits = []
    for r in range(k):
        item = ranking[r] if r < len(ranking) else -1
        is_hit = item >= 0 and item not in seen and item in relevant
        if item >= 0:
            seen.add(item)
        hits.append(is_hit)
    n_hits = sum(hits)
    precision = n_hits / k
    recall = n_hits / len(relevant)
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    dcg = sum(1 / math.log2(r + 2) for r in range(k) if hits[r])
    idcg = sum(1 / math.log2(r + 2) for r in range(min(len(relevant), k)))
    mrr = 0.0
    for r in range(k):
        if hits[r]:
            mrr = 1 / (r + 1)
            break
    ap = 0.0
    for r in range(k):
        if hits[r]:
            ap += sum(hits[: r + 1]) / (r + 1)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "ndcg": dcg / idcg,
        "hit": float(n_hits > 0),
        "mrr": mrr,
        "map": ap / min(len(relevant), k),
    }


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_matches_brute_force_on_random_rankings(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items, kmax = 60, 40, 15
    topk = np.stack([rng.permutation(n_items)[:kmax] for _ in range(n_users)])
    # Padding, repeats, and users with no / few / many relevant items.
    topk[rng.random(topk.shape) < 0.15] = -1
    topk[rng.random(topk.shape) < 0.05] = rng.integers(0, n_items)
    sizes = rng.choice([0, 1, 2, 3, 5, 20, 30], size=n_users)
    rel_sets = [set(rng.choice(n_items, size=s, replace=False).tolist()) for s in sizes]
    rel = csr([sorted(s) for s in rel_sets], n_items)
    ks = (1, 5, 10, 15, 25)
    got = per_user_metrics(topk, rel, ks)
    for u in range(n_users):
        for k in ks:
            ref = brute_force(topk[u].tolist(), rel_sets[u], k)
            for m in ACCURACY_METRICS:
                v = got[f"{m}@{k}"][u]
                if math.isnan(ref[m]):
                    assert np.isnan(v)
                else:
                    assert abs(v - ref[m]) <= 1e-9, (seed, u, k, m, v, ref[m])
