import math

import pytest
import torch

from clarec.contrastive.bpr import DotProductBPRLoss
from clarec.contrastive.losses import BPRLoss


def test_equal_scores_cost_log2():
    loss = BPRLoss()(torch.zeros(4), torch.zeros(4))
    assert loss.item() == pytest.approx(math.log(2))


def test_values_by_hand():
    pos = torch.tensor([2.0, 0.0])
    neg = torch.tensor([1.0, 3.0])
    # -log σ(1) and -log σ(-3)
    expected = torch.tensor([math.log1p(math.exp(-1.0)), math.log1p(math.exp(3.0))])
    torch.testing.assert_close(BPRLoss(reduction="none")(pos, neg), expected)
    torch.testing.assert_close(BPRLoss(reduction="sum")(pos, neg), expected.sum())
    torch.testing.assert_close(BPRLoss()(pos, neg), expected.mean())


def test_several_negatives_pair_with_their_row():
    pos = torch.tensor([1.0, -1.0])
    neg = torch.tensor([[1.0, 0.0], [-1.0, -1.0]])
    out = BPRLoss(reduction="none")(pos, neg)
    assert out.shape == (2, 2)
    torch.testing.assert_close(
        out, torch.tensor([[math.log(2), math.log1p(math.exp(-1.0))], [math.log(2)] * 2])
    )


def test_large_margins_do_not_overflow():
    out = BPRLoss(reduction="none")(torch.tensor([0.0, 200.0]), torch.tensor([200.0, 0.0]))
    torch.testing.assert_close(out, torch.tensor([200.0, 0.0]))


def test_gradient_pushes_positive_up_and_negative_down():
    pos = torch.zeros(1, requires_grad=True)
    neg = torch.zeros(1, requires_grad=True)
    BPRLoss()(pos, neg).backward()
    assert pos.grad.item() == pytest.approx(-0.5) and neg.grad.item() == pytest.approx(0.5)


def test_bad_reduction():
    with pytest.raises(ValueError, match="reduction"):
        BPRLoss(reduction="max")


@pytest.mark.parametrize(("n_neg", "l2"), [(1, 0.0), (3, 0.0), (1, 0.3), (2, 1e-4)])
def test_dot_product_bpr_matches_bpr_of_the_dot_products(n_neg, l2):
    g = torch.Generator().manual_seed(0)
    u = torch.randn(17, 8, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(17, 1 + n_neg, 8, generator=g, dtype=torch.float64, requires_grad=True)
    fused = DotProductBPRLoss(l2=l2)(u, v)
    plain = BPRLoss()((u * v[:, 0]).sum(-1), torch.einsum("bd,bnd->bn", u, v[:, 1:]))
    plain = plain + l2 * (u.pow(2).sum() + v.pow(2).sum()) / len(u)
    torch.testing.assert_close(fused, plain)
    want = torch.autograd.grad(3.0 * plain, [u, v])
    for a, b in zip(torch.autograd.grad(3.0 * fused, [u, v]), want, strict=True):
        torch.testing.assert_close(a, b)
    assert torch.autograd.gradcheck(lambda a, b: DotProductBPRLoss(l2=l2)(a, b), (u, v))


def test_dot_product_bpr_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"items \(B, 1 \+ n, d\)"):
        DotProductBPRLoss()(torch.zeros(4, 8), torch.zeros(4, 1, 8))
    with pytest.raises(ValueError):
        DotProductBPRLoss()(torch.zeros(4, 8), torch.zeros(3, 2, 8))
    with pytest.raises(ValueError, match="l2"):
        DotProductBPRLoss(l2=-1.0)
