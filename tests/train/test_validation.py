import numpy as np
import pytest
import scipy.sparse as sp
import torch

from clarec.train.validation import RankingValidator, best_offset, dot_scores


def _setup():
    seen = sp.csr_matrix(np.array([[1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]], dtype=np.float32))
    # user 0 holds out item 2; user 1 items 1 and 3; user 2 nothing (skipped)
    truth = sp.csr_matrix(np.array([[0, 0, 1, 0], [0, 1, 0, 1], [0, 0, 0, 0]], dtype=np.float32))
    scores = np.array([[9, 1, 5, 3], [9, 1, 2, 3], [0, 0, 0, 0]], dtype=np.float32)
    return seen, truth, lambda users: scores[users]


def test_ndcg_by_hand():
    seen, truth, score = _setup()
    # user 0: ranking 2, 3, 1 -> hit at rank 1 -> 1.0
    # user 1: ranking 3, 2, 1 -> hits at ranks 1 and 3: (1 + 1/2) / (1 + 1/log2(3))
    expected = (1.0 + 1.5 / (1 + 1 / np.log2(3))) / 2
    assert RankingValidator(seen, truth, k=3)(score) == pytest.approx(expected)
    # k = 2: user 1 has one hit at rank 1 of two possible
    assert RankingValidator(seen, truth, k=2)(score) == pytest.approx((1.0 + 1 / (1 + 1 / np.log2(3))) / 2)


def test_user_subset_and_batches():
    seen, truth, score = _setup()
    v = RankingValidator(seen, truth, k=3, max_users=1, seed=0, batch_size=1)
    assert len(v.users) == 1 and v.users[0] in (0, 1)
    assert RankingValidator(seen, truth, k=3, batch_size=1)(score) == RankingValidator(seen, truth, k=3)(
        score
    )


def test_kept_ranks_the_training_items_too():
    seen, truth, score = _setup()
    # user 0's held-out item is now also a training item (a repeat): masked, it can never be ranked
    seen = sp.csr_matrix(np.array([[1, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]], dtype=np.float32))
    masked, kept = RankingValidator(seen, truth, k=1), RankingValidator(seen, truth, k=1, exclude_seen=False)
    # k = 1, masked: user 0 gets item 3 (item 2 excluded) -> 0; user 1 gets item 3 -> a hit of two: 1
    assert masked(score) == pytest.approx(0.5)
    # kept: user 0 gets item 0 (scored 9) -> 0; user 1 too -> 0
    assert kept(score) == 0.0
    top = lambda users: np.array([[0, 0, 9, 0], [0, 9, 0, 0], [0, 0, 0, 0]], dtype=np.float32)[users]  # noqa: E731
    assert masked(top) == pytest.approx(0.5) and kept(top) == pytest.approx(1.0)


def test_no_validation_users():
    seen, _, score = _setup()
    assert RankingValidator(seen, sp.csr_matrix((3, 4)), k=3)(score) == 0.0


def test_best_offset_lifts_the_masked_items_by_the_least_that_wins():
    seen, truth, score = _setup()
    v = RankingValidator(seen, truth, k=1)
    # k = 1: user 0's top is item 2 (score 5, relevant); user 1's is item 3 (3, relevant)
    assert v(score) == pytest.approx(1.0)
    # items 2 and 3 shifted down: below 1 (item 1 score 1) the users lose their hits
    mask = np.array([False, False, True, True])
    offsets = np.array([-5.0, -4.0, -1.0, 0.0, 1.0])
    best, curve = best_offset(v, score, mask, offsets)
    assert best == 0.0  # ties (0, 1) go to the offset closest to 0
    # -5: user 0: 2 -> 0 < 1 (item 1 wins, irrelevant); user 1: 3 -> -2, item 1 (relevant) wins
    np.testing.assert_allclose(curve, [0.5, 0.5, 1.0, 1.0, 1.0])
    # one batch at a time gives the same curve
    _, again = best_offset(RankingValidator(seen, truth, k=1, batch_size=1), score, mask, offsets)
    np.testing.assert_allclose(again, curve)
    # user 0's only relevant item (2) must pass item 1 (4) without passing user 1's item 1 (5)
    scores = np.array([[9, 4, 1, 3], [9, 5, 0, 3], [0, 0, 0, 0]], dtype=np.float32)
    only2 = np.array([False, False, True, False])
    best, curve = best_offset(v, lambda u: scores[u], only2, [0.0, 2.0, 3.2, 5.5])
    np.testing.assert_allclose(curve, [0.5, 0.5, 1.0, 0.5])  # at 5.5 item 2 tops user 1 too
    assert best == 3.2


def test_dot_scores_are_the_rows_products_with_every_item():
    g = torch.Generator().manual_seed(0)
    queries = torch.randn(7, 5, generator=g, requires_grad=True)  # a model's live weights
    items = torch.randn(11, 5, generator=g).to(torch.bfloat16)  # mixed precision comes back fp32
    rows = np.array([6, 0, 0, 3])
    out = dot_scores(queries, items)(rows)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (4, 11)
    expected = (queries.detach()[torch.from_numpy(rows)] @ items.float().T).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
