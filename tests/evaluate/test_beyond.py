"""Beyond-accuracy metrics: hand-worked values and brute-force references."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.sparse as sp

from clarec.evaluate.beyond import (
    average_popularity,
    gini_index,
    intra_list_diversity,
    item_coverage,
    novelty,
    recommendation_counts,
    self_information,
)

# 6 items, 3 lists of 3 (the worked example of docs/metrics.md).
TOPK = np.array([[0, 1, 2], [0, 1, -1], [0, 3, 0]])
# Genre one-hot: items 0 and 1 share genre A; item 2 is genre B; item 3 is A and B.
GENRES = np.array([[1, 0], [1, 0], [0, 1], [1, 1], [0, 1], [0, 1]], dtype=float)
POP = np.array([8, 4, 2, 1, 0, 0])  # training users per item, out of 8 users


def test_worked_example():
    # Items recommended in the top 3: {0, 1, 2, 3} of 6 -> coverage 4/6.
    assert item_coverage(TOPK, 6, 3) == pytest.approx(4 / 6)
    # In the top 1 only item 0 -> 1/6.
    assert item_coverage(TOPK, 6, 1) == pytest.approx(1 / 6)
    # Counts (the repeat of item 0 in list 3 counts once): [3, 2, 1, 1, 0, 0].
    assert recommendation_counts(TOPK, 6, 3).tolist() == [3, 2, 1, 1, 0, 0]
    # Gini: sorted x = [0,0,1,1,2,3], n=6, Σx=7; Σ(2i−7)x_i = -1·1 + 1·1 + 3·2 + 5·3 = 21 -> 21/42.
    assert gini_index([3, 2, 1, 1, 0, 0]) == pytest.approx(0.5)
    # Diversity, list 1: cos(0,1)=1, cos(0,2)=0, cos(1,2)=0 -> mean distance (0+1+1)/3 = 2/3.
    # List 2: one pair, cos(0,1)=1 -> 0. List 3: items {0, 3}: cos = 1/√2 -> 1 − 0.70711.
    div = intra_list_diversity(TOPK, GENRES, 3)
    np.testing.assert_allclose(div, [2 / 3, 0.0, 1 - 1 / math.sqrt(2)], atol=1e-12)
    # Novelty with 8 users: −log2(8/8)=0, −log2(4/8)=1, −log2(2/8)=2, −log2(1/8)=3.
    # List 1: (0+1+2)/3 = 1; list 2: (0+1)/2 = 0.5; list 3: (0+3)/2 = 1.5.
    np.testing.assert_allclose(novelty(TOPK, POP, 8, 3), [1.0, 0.5, 1.5], atol=1e-12)
    # Average popularity: (8+4+2)/3, (8+4)/2, (8+1)/2.
    np.testing.assert_allclose(average_popularity(TOPK, POP, 3), [14 / 3, 6.0, 4.5], atol=1e-12)


def test_zero_popularity_counts_as_one_user():
    # Item 4 was never seen in training: its self-information is that of an item seen once.
    assert self_information(POP, 8)[4] == pytest.approx(3.0)
    assert novelty(np.array([[4, 5]]), POP, 8, 2)[0] == pytest.approx(3.0)


def test_gini_extremes_and_empty():
    assert gini_index([5, 5, 5, 5]) == pytest.approx(0.0)
    assert gini_index([0, 0, 0, 10]) == pytest.approx(0.75)  # (n-1)/n for one item taking all
    assert math.isnan(gini_index([0, 0]))


def test_lists_without_pairs_and_zero_vectors():
    feats = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    div = intra_list_diversity(np.array([[0, -1], [0, 1], [-1, -1]]), feats, 2)
    assert np.isnan(div[0]) and np.isnan(div[2])
    assert div[1] == pytest.approx(1.0)  # a zero vector has cosine 0 with everything
    assert np.isnan(novelty(np.array([[-1, -1]]), POP, 8, 2)[0])


def test_bad_cutoff_and_feature_rows():
    with pytest.raises(ValueError, match="positive"):
        item_coverage(TOPK, 6, 0)
    with pytest.raises(ValueError, match="feature rows"):
        intra_list_diversity(TOPK, GENRES[:2], 3)


# ---------------------------------------------------------------------- brute force
def _lists(topk, k):
    out = []
    for row in topk:
        items = []
        for i in row[:k]:
            if i >= 0 and i not in items:
                items.append(int(i))
        out.append(items)
    return out


def bf_diversity(topk, feats, k):
    out = []
    for items in _lists(topk, k):
        if len(items) < 2:
            out.append(math.nan)
            continue
        dists = []
        for a, b in itertools.combinations(items, 2):
            va, vb = feats[a], feats[b]
            na, nb = math.sqrt(sum(x * x for x in va)), math.sqrt(sum(x * x for x in vb))
            cos = 0.0 if na == 0 or nb == 0 else sum(x * y for x, y in zip(va, vb, strict=True)) / (na * nb)
            dists.append(1 - cos)
        out.append(sum(dists) / len(dists))
    return out


def bf_gini(counts):
    # Mean absolute difference form: G = Σ_i Σ_j |x_i − x_j| / (2 n² mean).
    n = len(counts)
    total = sum(counts)
    return sum(abs(a - b) for a in counts for b in counts) / (2 * n * total)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items, kmax, n_train = 40, 30, 8, 50
    topk = rng.integers(0, n_items, size=(n_users, kmax))
    topk[rng.random(topk.shape) < 0.2] = -1
    pop = rng.integers(0, 12, size=n_items)
    dense = rng.standard_normal((n_items, 5))
    dense[3] = 0.0
    onehot = (rng.random((n_items, 4)) < 0.4).astype(float)
    for k in (1, 3, 8, 12):
        lists = _lists(topk, k)
        counts = [sum(items.count(i) for items in lists) for i in range(n_items)]
        assert recommendation_counts(topk, n_items, k).tolist() == counts
        assert item_coverage(topk, n_items, k) == pytest.approx(
            sum(c > 0 for c in counts) / n_items, abs=1e-12
        )
        assert gini_index(counts) == pytest.approx(bf_gini(counts), abs=1e-9)
        nov = [
            math.nan if not items else sum(-math.log2(max(pop[i], 1) / n_train) for i in items) / len(items)
            for items in lists
        ]
        np.testing.assert_allclose(novelty(topk, pop, n_train, k), nov, atol=1e-9)
        avg = [math.nan if not items else sum(pop[i] for i in items) / len(items) for items in lists]
        np.testing.assert_allclose(average_popularity(topk, pop, k), avg, atol=1e-9)
        for feats in (dense, onehot):
            ref = bf_diversity(topk, feats.tolist(), k)
            np.testing.assert_allclose(intra_list_diversity(topk, feats, k), ref, atol=1e-9)
            np.testing.assert_allclose(
                intra_list_diversity(topk, sp.csr_matrix(feats), k, batch_size=7), ref, atol=1e-9
            )
