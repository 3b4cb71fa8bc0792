import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from clarec.contrastive import (
    HardNegativeMiner,
    NoDuplicateBatchSampler,
    PopularityNegativeSampler,
    UniformNegativeSampler,
)
from clarec.errors import ConfigError

# ------------------------------------------------------------------------------------ no-duplicate batches


def _check_epoch(batches, ids, n, batch_size):
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(n))  # every example exactly once
    for b in batches:
        assert 1 <= len(b) <= batch_size
        # no id shared by two examples of a batch (one example may repeat its own id: a self-pair)
        batch_ids = [x for i in b for x in set(np.atleast_1d(ids[i]).tolist())]
        assert len(batch_ids) == len(set(batch_ids))


@pytest.mark.parametrize("seed", range(5))
def test_no_duplicates_property_on_random_data(seed):
    r = np.random.default_rng(seed)
    n, batch_size = int(r.integers(50, 1500)), int(r.integers(2, 64))
    # Zipf-like popularity, so clashes are frequent
    single = np.minimum(r.zipf(1.5, size=n), 300)
    pairs = np.minimum(r.zipf(1.3, size=(n, 2)), 500)
    for ids in (single, pairs):
        sampler = NoDuplicateBatchSampler(ids, batch_size, seed=seed)
        batches = list(sampler)
        _check_epoch(batches, ids, n, batch_size)
        # first-fit: an example sits after a short batch k only because one of its ids was already
        # in a batch from k on, before its own
        last_seen, last_short = {}, None
        for k, b in enumerate(batches):
            for i in b:
                ids_i = set(np.atleast_1d(ids[i]).tolist())
                if last_short is not None:
                    assert max(last_seen.get(x, -1) for x in ids_i) >= last_short
            for i in b:
                last_seen.update(dict.fromkeys(np.atleast_1d(ids[i]).tolist(), k))
            if len(b) < batch_size:
                last_short = k


def test_ragged_ids_and_drop_last():
    ids = [[1, 2], [3], [2, 4], [5, 6, 7], [1], [8]]
    batches = list(NoDuplicateBatchSampler(ids, batch_size=3, seed=0))
    _check_epoch(batches, ids, 6, 3)
    dropped = list(NoDuplicateBatchSampler(ids, batch_size=4, seed=0, drop_last=True))
    assert dropped and all(len(b) == 4 for b in dropped)


def test_one_id_per_example_needs_only_as_many_batches_as_its_most_frequent_id():
    ids = np.repeat(np.arange(10), 100)  # 10 items, 100 examples each: 100 full batches exist
    batches = list(NoDuplicateBatchSampler(ids, 10, seed=0))
    _check_epoch(batches, ids, 1000, 10)
    assert len(batches) == 100 and all(len(b) == 10 for b in batches)


def test_one_item_everywhere_gives_batches_of_one():
    batches = list(NoDuplicateBatchSampler(np.zeros(7, dtype=int), batch_size=4, seed=0))
    assert sorted(len(b) for b in batches) == [1] * 7
    assert list(NoDuplicateBatchSampler(np.zeros(7, dtype=int), batch_size=4, drop_last=True)) == []


def test_epochs_are_reproducible_and_differ():
    ids = np.arange(100) % 37
    a, b = NoDuplicateBatchSampler(ids, 10, seed=3), NoDuplicateBatchSampler(ids, 10, seed=3)
    first, second = list(a), list(a)
    assert first == list(b) and first != second
    b.set_epoch(1)
    assert list(b) == second
    assert len(a) == 10 and len(NoDuplicateBatchSampler(ids, 30, drop_last=True)) == 3
    assert list(NoDuplicateBatchSampler(ids, 10, seed=4)) != first


def test_works_as_a_dataloader_batch_sampler():
    data = torch.arange(20)
    loader = torch.utils.data.DataLoader(data, batch_sampler=NoDuplicateBatchSampler(data % 5, 5, seed=0))
    for batch in loader:
        assert len(set((batch % 5).tolist())) == len(batch)


def test_bad_batch_size():
    with pytest.raises(ConfigError, match="batch_size"):
        NoDuplicateBatchSampler(np.arange(3), 0)


# ------------------------------------------------------------------------------------------ hard negatives


def _vectors(n_queries=30, n_items=200, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n_queries, d, generator=g), torch.randn(n_items, d, generator=g)


def _ranking_without_positives(q, items, pos):
    """Reference: item ranks per query after removing its positives (numpy, one query at a time)."""
    scores = (q @ items.T).numpy()
    out = []
    for i in range(len(q)):
        order = np.argsort(-scores[i], kind="stable")
        out.append([int(j) for j in order if j not in pos[i]])
    return out


def test_mined_negatives_are_in_the_rank_window_and_never_positives():
    q, items = _vectors()
    r = np.random.default_rng(0)
    pos_sets = [set(r.choice(200, size=int(r.integers(0, 15)), replace=False).tolist()) for _ in range(30)]
    rows = [i for i, s in enumerate(pos_sets) for _ in s]
    cols = [j for s in pos_sets for j in s]
    positives = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(30, 200))
    miner = HardNegativeMiner(n_neg=4, rank_start=5, rank_end=20, chunk_size=7, seed=0)
    neg = miner.mine(q, items, positives)
    assert neg.shape == (30, 4) and neg.dtype == torch.int64
    ranking = _ranking_without_positives(q, items, pos_sets)
    for i in range(30):
        assert not set(neg[i].tolist()) & pos_sets[i]
        assert set(neg[i].tolist()) <= set(ranking[i][5:20])
        assert len(set(neg[i].tolist())) == 4  # without replacement


def test_whole_window_is_returned_when_n_neg_fills_it_whatever_the_chunking():
    q, items = _vectors(seed=1)
    positives = torch.arange(30)  # one positive per query (1-D form)
    ranking = _ranking_without_positives(q, items, [{i} for i in range(30)])
    for chunk in (1, 8, 1000):
        neg = HardNegativeMiner(n_neg=10, rank_start=2, rank_end=12, chunk_size=chunk, seed=chunk).mine(
            q, items, positives
        )
        for i in range(30):
            assert sorted(neg[i].tolist()) == sorted(ranking[i][2:12])


def test_deterministic_with_seed_and_padded_positives():
    q, items = _vectors(seed=2)
    padded = np.full((30, 3), -1)
    padded[:, 0] = np.arange(30)
    padded[::2, 1] = 100
    a = HardNegativeMiner(n_neg=3, rank_end=30, seed=5).mine(q, items, padded)
    b = HardNegativeMiner(n_neg=3, rank_end=30, seed=5).mine(q, items, padded)
    c = HardNegativeMiner(n_neg=3, rank_end=30, seed=6).mine(q, items, padded)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not (a[::2] == 100).any() and not (a == torch.arange(30)[:, None]).any()


def test_cosine_ranking():
    q = torch.tensor([[1.0, 0.0]])
    items = torch.tensor([[10.0, 10.0], [0.9, 0.05], [-1.0, 0.0]])  # by dot: 0 first; by cosine: 1 first
    assert HardNegativeMiner(rank_end=1).mine(q, items).item() == 0
    assert HardNegativeMiner(rank_end=1, normalize=True).mine(q, items).item() == 1


def test_small_windows_widen_and_sample_with_replacement():
    q, items = _vectors(n_queries=2, n_items=6, seed=3)
    # query 0: positives 0..3, so only items 4 and 5 remain, both above rank_start = 3
    positives = sp.csr_matrix((np.ones(4), ([0, 0, 0, 0], [0, 1, 2, 3])), shape=(2, 6))
    neg = HardNegativeMiner(n_neg=5, rank_start=3, rank_end=6, seed=0).mine(q, items, positives)
    assert set(neg[0].tolist()) <= {4, 5}
    assert len(set(neg[1].tolist())) <= 3  # 3 candidates in the window: drawn with replacement
    everything = sp.csr_matrix(np.ones((2, 6)))
    assert HardNegativeMiner(n_neg=2).mine(q, items, everything).shape == (2, 2)  # no hang, no error


def test_bad_miner_arguments():
    for make in (
        lambda: HardNegativeMiner(n_neg=0),
        lambda: HardNegativeMiner(rank_start=5, rank_end=5),
        lambda: HardNegativeMiner(chunk_size=0),
    ):
        with pytest.raises(ConfigError):
            make()
    with pytest.raises(ValueError, match="one row per query"):
        HardNegativeMiner().mine(*_vectors(), np.arange(3))


# ------------------------------------------------------------------------------------------ log q


def test_sampling_log_probabilities():
    pos = sp.csr_matrix((np.ones(5), ([0, 1, 2, 3, 0], [0, 0, 0, 0, 1])), shape=(5, 3))
    np.testing.assert_allclose(UniformNegativeSampler(pos).log_prob(np.array([0, 2])), [-math.log(3)] * 2)
    logq = PopularityNegativeSampler(pos, alpha=0.5).log_prob(np.array([0, 1, 2]))
    np.testing.assert_allclose(logq, [math.log(2 / 3), math.log(1 / 3), -np.inf])
