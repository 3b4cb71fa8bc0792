import math

import pytest
import torch
import torch.nn.functional as F

from clarec.contrastive import InfoNCELoss, LearnableTemperature
from clarec.errors import ConfigError

E = math.e


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_identity_pairs_by_hand():
    eye = torch.eye(2)
    # logits = I / τ: each row is -1/τ + log(e^{1/τ} + 1) = log(1 + e^{-1/τ})
    assert InfoNCELoss(temperature=1.0)(eye, eye).item() == pytest.approx(math.log1p(math.exp(-1)))
    assert InfoNCELoss(temperature=0.5)(eye, eye).item() == pytest.approx(math.log1p(math.exp(-2)))


def test_both_queries_alike_by_hand():
    q = torch.tensor([[1.0, 0.0], [3.0, 0.0]])  # normalised inside: both (1, 0)
    p = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    rows = InfoNCELoss(temperature=1.0, reduction="none")(q, p)
    # row 0 logits (1, 0), label 0; row 1 logits (1, 0), label 1
    torch.testing.assert_close(rows, torch.tensor([math.log1p(math.exp(-1)), math.log1p(E)]))
    assert InfoNCELoss(temperature=1.0)(q, p).item() == pytest.approx(rows.mean().item())
    assert InfoNCELoss(temperature=1.0, reduction="sum")(q, p).item() == pytest.approx(rows.sum().item())


def test_shared_and_per_row_negatives_by_hand():
    eye = torch.eye(2)
    shared = torch.tensor([[-1.0, 0.0]])
    rows = InfoNCELoss(temperature=1.0, reduction="none")(eye, eye, shared)
    # row 0: logits (1, 0, -1); row 1: logits (0, 1, 0)
    expected = torch.tensor([math.log(E + 1 + 1 / E) - 1, math.log(1 + E + 1) - 1])
    torch.testing.assert_close(rows, expected)
    per_row = torch.tensor([[[0.0, 1.0]], [[0.0, 1.0]]])  # row 0 gets (0,1)·(1,0)=0, row 1 gets 1
    rows = InfoNCELoss(temperature=1.0, reduction="none")(eye, eye, per_row)
    torch.testing.assert_close(rows, torch.tensor([math.log(E + 2) - 1, math.log(2 * E + 1) - 1]))


def test_equals_cross_entropy_on_the_same_logits():
    q, p, n = _rand(8, 5, seed=1), _rand(8, 5, seed=2), _rand(6, 5, seed=3)
    qn, pn, nn_ = F.normalize(q, dim=1), F.normalize(p, dim=1), F.normalize(n, dim=1)
    logits = torch.cat([qn @ pn.T, qn @ nn_.T], dim=1) / 0.1
    expected = F.cross_entropy(logits, torch.arange(8))
    torch.testing.assert_close(InfoNCELoss(temperature=0.1)(q, p, n), expected)
    raw = torch.cat([q @ p.T, q @ n.T], dim=1) / 0.1
    torch.testing.assert_close(
        InfoNCELoss(0.1, normalize=False)(q, p, n), F.cross_entropy(raw, torch.arange(8))
    )
    got, mask = InfoNCELoss(0.1).logits(q, p, n)
    torch.testing.assert_close(got, logits)
    assert mask is None


def _masked_reference(logits, mask):
    return F.cross_entropy(
        logits.masked_fill(mask, float("-inf")), torch.arange(len(logits)), reduction="none"
    )


def test_duplicate_positive_ids_mask_exactly_those_entries():
    q, p = _rand(3, 4, seed=4), _rand(3, 4, seed=5)
    loss = InfoNCELoss(temperature=0.2, reduction="none")
    logits, _ = loss.logits(q, p)
    ids = torch.tensor([5, 5, 7])
    masked_logits, mask = loss.logits(q, p, positive_ids=ids)
    expected_mask = torch.tensor([[False, True, False], [True, False, False], [False, False, False]])
    assert torch.equal(mask, expected_mask)
    rows = loss(q, p, positive_ids=ids)
    torch.testing.assert_close(rows, _masked_reference(logits, expected_mask))
    plain = loss(q, p)
    assert rows[2] == plain[2]  # the row without duplicates is unchanged
    assert (rows[:2] < plain[:2]).all()  # removing a negative can only lower the loss
    # switched off: the ids are ignored
    off = InfoNCELoss(temperature=0.2, reduction="none", mask_duplicates=False)
    torch.testing.assert_close(off(q, p, positive_ids=ids), plain)


def test_a_pair_mask_leaves_out_exactly_those_in_batch_columns():
    q, p = _rand(3, 4, seed=8), _rand(3, 4, seed=9)
    loss = InfoNCELoss(temperature=0.2, reduction="none")
    logits, _ = loss.logits(q, p)
    pairs = torch.tensor([[True, True, False], [False, False, False], [False, True, True]])
    expected = pairs & ~torch.eye(3, dtype=torch.bool)  # the positive itself is never left out
    torch.testing.assert_close(loss(q, p, pair_mask=pairs), _masked_reference(logits, expected))
    with pytest.raises(ValueError, match="pair_mask must be"):
        loss(q, p, pair_mask=pairs[:2])


def test_duplicate_query_ids_are_masked_too():
    q, p = _rand(3, 4, seed=6), _rand(3, 4, seed=7)
    loss = InfoNCELoss(temperature=0.2, reduction="none")
    _, mask = loss.logits(q, p, query_ids=torch.tensor([1, 2, 1]))
    assert mask.nonzero().tolist() == [[0, 2], [2, 0]]


def test_sampled_negative_equal_to_positive_is_masked():
    q, p, n = _rand(2, 4, seed=8), _rand(2, 4, seed=9), _rand(3, 4, seed=10)
    loss = InfoNCELoss(temperature=0.5, reduction="none")
    logits, mask = loss.logits(
        q, p, n, positive_ids=torch.tensor([10, 11]), negative_ids=torch.tensor([11, 12, 10])
    )
    expected = torch.zeros(2, 5, dtype=torch.bool)
    expected[0, 4] = True  # negative 10 is row 0's positive
    expected[1, 2] = True  # negative 11 is row 1's positive
    assert torch.equal(mask, expected)
    rows = loss(q, p, n, positive_ids=torch.tensor([10, 11]), negative_ids=torch.tensor([11, 12, 10]))
    torch.testing.assert_close(rows, _masked_reference(logits, expected))
    # per-row negatives (B, n) ids
    per_row = _rand(2, 2, 4, seed=11)
    _, mask = loss.logits(
        q, p, per_row, positive_ids=torch.tensor([10, 11]), negative_ids=torch.tensor([[10, 3], [4, 4]])
    )
    assert mask.nonzero().tolist() == [[0, 2]]


def test_negative_rows_of_a_table_are_the_gathered_negatives():
    table = _rand(9, 4, seed=12).requires_grad_()
    q = _rand(5, 4, seed=13).requires_grad_()
    pos = torch.tensor([0, 1, 2, 3, 4])
    rows = torch.randint(0, 9, (5, 6), generator=torch.Generator().manual_seed(14))
    rows[0, 0] = 0  # a sampled negative that is the row's own positive: masked in both forms
    for normalize in (True, False):
        loss = InfoNCELoss(temperature=0.3, normalize=normalize)
        kw = {"positive_ids": pos, "negative_ids": rows}
        gathered = loss(q, table[pos], table[rows], **kw)
        grads = torch.autograd.grad(gathered, (q, table))
        by_rows = loss(q, table[pos], table, negative_rows=rows, **kw)
        torch.testing.assert_close(by_rows, gathered)
        for a, b in zip(torch.autograd.grad(by_rows, (q, table)), grads, strict=True):
            torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="negative_rows must be"):
        InfoNCELoss()(q, table[pos], table[rows], negative_rows=rows)
    # bfloat16: the loss kept its dtype from a small table only (a large one is gathered in float32)
    for n in (10, 1000):
        big = _rand(n, 4, seed=15).bfloat16()
        picks = torch.randint(0, n, (5, 3), generator=torch.Generator().manual_seed(16))
        out = InfoNCELoss()(q.detach().bfloat16(), big[:5], big, negative_rows=picks)
        assert out.dtype == torch.bfloat16, n


@pytest.mark.parametrize("block", [1, 7, 20, 1 << 21])  # one row, uneven blocks, every row at once
@pytest.mark.parametrize("ratio", [16, 0])  # from the product with the table / from the picked rows
def test_gathered_scores_match_the_full_product_forward_and_backward(monkeypatch, block, ratio):
    import clarec.contrastive.infonce as infonce

    monkeypatch.setattr(infonce, "_BLOCK", block)
    monkeypatch.setattr(infonce, "_GATHER_BLOCK", block)
    monkeypatch.setattr(infonce, "_GATHER_RATIO", ratio)
    g = torch.Generator().manual_seed(3)
    q, table = torch.randn(11, 5, generator=g), torch.randn(4, 5, generator=g)
    rows = torch.randint(0, 4, (11, 6), generator=g)  # 6 picks of 4 rows: repeats in every row
    weights = torch.randn(11, 6, generator=g)
    for need in ((True, True), (True, False), (False, True)):
        a = [x.clone().requires_grad_(n) for x, n in zip((q, table), need, strict=True)]
        b = [x.clone().requires_grad_(n) for x, n in zip((q, table), need, strict=True)]
        blocked, full = infonce.gathered_scores(a[0], a[1], rows), (b[0] @ b[1].T).gather(1, rows)
        torch.testing.assert_close(blocked, full)  # BLAS may round a smaller block differently
        (blocked * weights).sum().backward()
        (full * weights).sum().backward()
        for x, y in zip(a, b, strict=True):
            if y.grad is None:
                assert x.grad is None
            else:
                torch.testing.assert_close(x.grad, y.grad)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 scores, gradients of the fp32 inputs
        a = [q.clone().requires_grad_(), table.clone().requires_grad_()]
        out = infonce.gathered_scores(a[0], a[1], rows)
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert a[0].grad.dtype == torch.float32 and a[1].grad.dtype == torch.float32
    # d sum / d table[r] = the sum of the queries that picked row r, once per pick
    expected = torch.zeros(4, 5).index_add_(0, rows.flatten(), q.repeat_interleave(6, 0))
    torch.testing.assert_close(a[1].grad, expected, rtol=0.02, atol=0.05)
    # float64 inputs are summed in float64 on both paths (they were cast to float32): gradcheck holds
    q64, t64 = (x.double().requires_grad_() for x in (q, table))
    assert torch.autograd.gradcheck(lambda x, y: infonce.gathered_scores(x, y, rows), (q64, t64))
    assert infonce.gathered_scores(q64, t64, rows).dtype == torch.float64


def test_every_negative_masked_costs_nothing():
    q, p = _rand(2, 3, seed=12), _rand(2, 3, seed=13)
    rows = InfoNCELoss(reduction="none")(q, p, positive_ids=torch.tensor([1, 1]))
    torch.testing.assert_close(rows, torch.zeros(2))


def test_symmetric_is_the_mean_of_both_directions():
    q, p = _rand(5, 4, seed=14), _rand(5, 4, seed=15)
    logits = F.normalize(q, dim=1) @ F.normalize(p, dim=1).T / 0.3
    labels = torch.arange(5)
    expected = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
    torch.testing.assert_close(InfoNCELoss(0.3, symmetric=True)(q, p), expected)
    # with a duplicate, the transposed mask applies to the reverse direction
    ids = torch.tensor([0, 1, 0, 2, 3])
    _, mask = InfoNCELoss(0.3).logits(q, p, positive_ids=ids)
    expected = 0.5 * (_masked_reference(logits, mask) + _masked_reference(logits.T, mask.T))
    torch.testing.assert_close(
        InfoNCELoss(0.3, symmetric=True, reduction="none")(q, p, positive_ids=ids), expected
    )


def test_logq_correction_subtracts_log_probabilities():
    q, p, n = _rand(3, 4, seed=16), _rand(3, 4, seed=17), _rand(2, 4, seed=18)
    pos_logq, neg_logq = torch.log(torch.tensor([0.5, 0.1, 0.2])), torch.log(torch.tensor([0.05, 0.3]))
    loss = InfoNCELoss(0.2, reduction="none")
    logits, _ = loss.logits(q, p, n)
    corrected = logits - torch.cat([pos_logq, neg_logq])[None, :]
    expected = F.cross_entropy(corrected, torch.arange(3), reduction="none")
    torch.testing.assert_close(loss(q, p, n, positive_logq=pos_logq, negative_logq=neg_logq), expected)
    # a uniform sampling probability shifts every logit equally: no change
    torch.testing.assert_close(loss(q, p, positive_logq=torch.full((3,), -2.0)), loss(q, p))


def test_cosine_loss_ignores_vector_length():
    q, p = _rand(4, 3, seed=19), _rand(4, 3, seed=20)
    torch.testing.assert_close(InfoNCELoss()(q, p), InfoNCELoss()(3 * q, 0.5 * p))


def test_gradients_reach_inputs_and_learnable_temperature():
    temperature = LearnableTemperature(init=0.1, min=0.05, max=1.0)
    loss_fn = InfoNCELoss(temperature)
    assert [n for n, _ in loss_fn.named_parameters()] == ["temperature.log_tau"]
    q, p = _rand(6, 4, seed=21).requires_grad_(), _rand(6, 4, seed=22).requires_grad_()
    loss_fn(q, p).backward()
    assert q.grad.abs().sum() > 0 and p.grad.abs().sum() > 0
    assert temperature.log_tau.grad is not None and temperature.log_tau.grad.item() != 0.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="reduction"):
        InfoNCELoss(reduction="max")
    with pytest.raises(ConfigError, match="temperature"):
        InfoNCELoss(temperature=0.0)
    with pytest.raises(ValueError, match="negatives"):
        InfoNCELoss()(torch.eye(2), torch.eye(2), torch.zeros(3, 1, 2))
    with pytest.raises(ValueError, match=r"\(B, d\)"):
        InfoNCELoss()(torch.eye(2), torch.eye(3))
    # each of these was ignored silently or failed deep inside with a broadcasting error
    q, p, table = torch.randn(3, 4), torch.randn(3, 4), torch.randn(5, 4)
    bad = [
        ({"negatives": torch.randn(5, 5)}, r"with d = 4, got \(5, 5\)"),
        ({"negatives": table, "negative_ids": torch.arange(5)}, "give positive_ids too"),
        (
            {"negatives": table, "positive_ids": torch.arange(3), "negative_ids": torch.arange(4)},
            r"\(5,\) or \(3, 5\)",
        ),
        ({"positive_ids": torch.arange(2)}, r"positive_ids must be \(3,\)"),
        ({"negative_logq": torch.zeros(5)}, "give negatives too"),
        ({"negatives": table, "negative_logq": torch.zeros(3, 4)}, "negative_logq must be"),
        ({"positive_logq": torch.zeros(4)}, r"positive_logq must be \(3,\)"),
        ({"negatives": table.double()}, "share a dtype"),
    ]
    for kw, message in bad:
        with pytest.raises(ValueError, match=message):
            InfoNCELoss()(q, p, **kw)
    # ids as a list or an array are read as tensors (a list raised AttributeError)
    torch.testing.assert_close(
        InfoNCELoss()(q, p, positive_ids=[0, 1, 1]), InfoNCELoss()(q, p, positive_ids=torch.tensor([0, 1, 1]))
    )
    with pytest.raises(ValueError, match="empty batch"):
        InfoNCELoss()(torch.randn(0, 4), torch.randn(0, 4))
    with pytest.raises(ValueError, match="needs extra negatives"):
        InfoNCELoss(in_batch=False)(q, p, torch.randn(0, 4))  # it gave a loss of 0


def test_sampled_softmax_leaves_the_batch_out():
    q, p, n = _rand(4, 5, seed=23), _rand(4, 5, seed=24), _rand(4, 3, 5, seed=25)
    qn, pn, nn_ = F.normalize(q, dim=1), F.normalize(p, dim=1), F.normalize(n, dim=2)
    logits = torch.cat([(qn * pn).sum(1, keepdim=True), torch.einsum("bd,bnd->bn", qn, nn_)], 1) / 0.2
    loss = InfoNCELoss(0.2, in_batch=False, reduction="none")
    expected = F.cross_entropy(logits, torch.zeros(4, dtype=torch.long), reduction="none")
    torch.testing.assert_close(loss(q, p, n), expected)
    # a row's loss does not depend on the other pairs of its batch
    torch.testing.assert_close(loss(q[2:3], p[2:3], n[2:3]), expected[2:3])
    # only a sampled negative equal to the row's positive is masked; equal positives are not columns
    ids, neg_ids = torch.tensor([7, 7, 8, 9]), torch.tensor([[7, 1, 2], [3, 4, 5], [1, 8, 8], [0, 0, 0]])
    got, mask = loss.logits(
        q, p, n, query_ids=torch.tensor([0, 0, 1, 2]), positive_ids=ids, negative_ids=neg_ids
    )
    torch.testing.assert_close(got, logits)
    assert mask.nonzero().tolist() == [[0, 1], [2, 2], [2, 3]]
    rows = loss(q, p, n, positive_ids=ids, negative_ids=neg_ids)
    zeros = torch.zeros(4, dtype=torch.long)
    torch.testing.assert_close(
        rows, F.cross_entropy(logits.masked_fill(mask, -torch.inf), zeros, reduction="none")
    )
    # log-q: each row's positive column gets its own positive's probability
    pos_logq, neg_logq = torch.log(torch.tensor([0.5, 0.1, 0.2, 0.4])), torch.log(torch.rand(4, 3) + 0.1)
    corrected = logits - torch.cat([pos_logq[:, None], neg_logq], 1)
    torch.testing.assert_close(
        loss(q, p, n, positive_logq=pos_logq, negative_logq=neg_logq),
        F.cross_entropy(corrected, zeros, reduction="none"),
    )
    # negatives as rows of a table
    table, rows_idx = _rand(6, 5, seed=26), torch.tensor([[0, 1], [2, 3], [4, 5], [0, 5]])
    torch.testing.assert_close(loss(q, p, table, negative_rows=rows_idx), loss(q, p, table[rows_idx]))
    with pytest.raises(ValueError, match="needs extra negatives"):
        loss(q, p)
    with pytest.raises(ValueError, match="symmetric"):
        InfoNCELoss(symmetric=True, in_batch=False)
