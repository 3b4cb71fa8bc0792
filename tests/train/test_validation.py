import numpy as np
import pytest
import scipy.sparse as sp

from clarec.train.validation import RankingValidator


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


def test_no_validation_users():
    seen, _, score = _setup()
    assert RankingValidator(seen, sp.csr_matrix((3, 4)), k=3)(score) == 0.0
