import numpy as np
import pytest
import scipy.sparse as sp

from clarec.contrastive.samplers import NegativeSampler, PopularityNegativeSampler, UniformNegativeSampler
from clarec.errors import ConfigError


def _positives() -> sp.csr_matrix:
    # user 0: items 0..7 of 10 (only 8, 9 are negatives); user 1: item 3; user 2: nothing
    rows = [0] * 8 + [1]
    cols = list(range(8)) + [3]
    return sp.csr_matrix((np.ones(9), (rows, cols)), shape=(3, 10))


def test_never_returns_a_positive():
    s = UniformNegativeSampler(_positives(), seed=0)
    neg = s.sample(np.array([0, 1, 2] * 200), n_neg=5)
    assert neg.shape == (600, 5) and neg.dtype == np.int64
    assert set(np.unique(neg[0::3])) == {8, 9}
    assert 3 not in neg[1::3]
    assert set(np.unique(neg[2::3])) == set(range(10))


def test_is_positive():
    s = UniformNegativeSampler(_positives(), seed=0)
    np.testing.assert_array_equal(
        s.is_positive([0, 0, 1, 1, 2], [7, 8, 3, 9, 0]), [True, False, True, False, False]
    )


def test_same_seed_same_draws():
    users = np.arange(3).repeat(10)
    a = UniformNegativeSampler(_positives(), seed=42).sample(users, 3)
    b = UniformNegativeSampler(_positives(), seed=42).sample(users, 3)
    c = UniformNegativeSampler(_positives(), seed=43).sample(users, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_uniform_is_uniform():
    neg = UniformNegativeSampler(sp.csr_matrix((1, 10)), seed=0).sample(np.zeros(100_000, dtype=int)).ravel()
    freq = np.bincount(neg, minlength=10) / len(neg)
    np.testing.assert_allclose(freq, 0.1, atol=0.005)


def test_popularity_to_the_alpha():
    # item popularity 4, 1, 0 (from the positives of users 0-3), sampled for user 4 who has none
    pos = sp.csr_matrix((np.ones(5), ([0, 1, 2, 3, 0], [0, 0, 0, 0, 1])), shape=(5, 3))
    neg = PopularityNegativeSampler(pos, alpha=0.5, seed=0).sample(np.full(100_000, 4)).ravel()
    freq = np.bincount(neg, minlength=3) / len(neg)
    np.testing.assert_allclose(freq, [2 / 3, 1 / 3, 0.0], atol=0.005)  # √4 : √1 : 0
    assert freq[2] == 0.0
    uniform = PopularityNegativeSampler(pos, alpha=0.0, seed=0).sample(np.full(30_000, 4)).ravel()
    np.testing.assert_allclose(np.bincount(uniform, minlength=3) / 30_000, 1 / 3, atol=0.01)


def test_explicit_popularity_and_weights():
    pos = sp.csr_matrix((2, 4))
    neg = PopularityNegativeSampler(pos, alpha=1.0, popularity=np.array([0, 0, 5, 0]), seed=0).sample(
        np.zeros(50, int)
    )
    assert (neg == 2).all()
    with pytest.raises(ConfigError, match="one entry per item"):
        NegativeSampler(pos, weights=np.ones(3))
    with pytest.raises(ConfigError, match="not all zero"):
        NegativeSampler(pos, weights=np.zeros(4))
    with pytest.raises(ConfigError, match="alpha"):
        PopularityNegativeSampler(pos, alpha=-1.0)


def test_user_with_every_item_does_not_hang():
    pos = sp.csr_matrix(np.ones((1, 4)))
    neg = UniformNegativeSampler(pos, seed=0, max_rounds=3).sample(np.zeros(10, int), n_neg=2)
    assert neg.shape == (10, 2)  # collisions are unavoidable and kept


def test_bad_n_neg():
    with pytest.raises(ConfigError):
        UniformNegativeSampler(_positives()).sample(np.array([0]), n_neg=0)


def test_dense_and_sorted_key_lookups_agree(monkeypatch):
    import clarec.contrastive.samplers as samplers

    rng = np.random.default_rng(0)
    pos = sp.random(40, 60, density=0.2, format="csr", random_state=1)
    users, items = rng.integers(0, 40, 5000), rng.integers(0, 60, 5000)
    dense = NegativeSampler(pos, seed=0)
    monkeypatch.setattr(samplers, "_DENSE_CELLS", 0)
    keys = NegativeSampler(pos, seed=0)
    assert dense._dense is not None and keys._dense is None
    np.testing.assert_array_equal(dense.is_positive(users, items), keys.is_positive(users, items))
    np.testing.assert_array_equal(dense.is_positive(users, items), pos.toarray()[users, items] > 0)
    np.testing.assert_array_equal(dense.sample(users, 4), keys.sample(users, 4))


def test_equal_weights_on_a_subset_draw_as_the_cdf_would():
    # weight 1 on items 2, 5, 6, 9 only: the subset shortcut must reproduce the CDF inversion
    w = np.zeros(10)
    w[[2, 5, 6, 9]] = 1.0
    shortcut = NegativeSampler(_positives(), weights=w, seed=7)
    assert shortcut._support is not None
    users = np.array([1, 2] * 500)
    draws = shortcut.sample(users, 3)
    assert set(np.unique(draws)) == {2, 5, 6, 9}
    u = np.random.default_rng(7).random(3000) * 4.0
    by_cdf = np.searchsorted(np.cumsum(w), u, side="right")
    # user 1's only positive (item 3) has weight 0 and user 2 has none: no draw is redrawn
    np.testing.assert_array_equal(draws.ravel(), by_cdf)
    # unequal weights keep the CDF path
    w[2] = 2.0
    assert NegativeSampler(_positives(), weights=w, seed=7)._support is None


@pytest.mark.parametrize("n_items", [5, 7000])  # a dense lookup, then the sorted keys (> 2^25 cells)
def test_a_stored_zero_is_not_a_positive(n_items):
    n_users = 5 if n_items == 5 else 5000
    pos = sp.csr_matrix(
        (np.array([1.0, 0.0]), np.array([1, 2]), np.r_[0, np.full(n_users, 2)]), shape=(n_users, n_items)
    )
    sampler = NegativeSampler(pos, seed=0)
    assert sampler.is_positive(np.array([0, 0]), np.array([1, 2])).tolist() == [True, False]
