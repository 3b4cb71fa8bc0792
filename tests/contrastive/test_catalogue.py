import math

import pytest
import torch

from clarec.contrastive import CatalogueSoftmaxLoss, LearnableTemperature, SampledBCELoss
from clarec.errors import ConfigError


def test_catalogue_softmax_is_cross_entropy_over_every_item():
    g = torch.Generator().manual_seed(0)
    q, items = torch.randn(5, 4, generator=g), torch.randn(9, 4, generator=g)
    y = torch.tensor([0, 8, 3, 3, 1])
    logits = q @ items.T
    want = -torch.log_softmax(logits, dim=1)[torch.arange(5), y]
    torch.testing.assert_close(CatalogueSoftmaxLoss(reduction="none")(q, items, y), want)
    torch.testing.assert_close(CatalogueSoftmaxLoss()(q, items, y), want.mean())
    hot = -torch.log_softmax(logits / 0.5, dim=1)[torch.arange(5), y].sum()
    torch.testing.assert_close(CatalogueSoftmaxLoss(0.5, reduction="sum")(q, items, y), hot)


def test_catalogue_softmax_of_equal_scores_is_log_n_and_learns_temperature():
    q, items = torch.zeros(2, 3), torch.randn(7, 3)
    assert CatalogueSoftmaxLoss()(q, items, torch.tensor([1, 6])).item() == pytest.approx(math.log(7))
    loss = CatalogueSoftmaxLoss(LearnableTemperature(0.2))
    assert len(list(loss.parameters())) == 1
    with pytest.raises(ConfigError):
        CatalogueSoftmaxLoss(reduction="avg")


def test_sampled_bce_by_hand():
    pos, neg = torch.tensor([0.0, 2.0]), torch.tensor([[0.0, -1.0], [3.0, 3.0]])
    sp = torch.nn.functional.softplus
    want = torch.stack(
        [
            sp(torch.tensor(0.0)) + (sp(torch.tensor(0.0)) + sp(torch.tensor(-1.0))) / 2,
            sp(torch.tensor(-2.0)) + sp(torch.tensor(3.0)),
        ]
    )
    torch.testing.assert_close(SampledBCELoss(reduction="none")(pos, neg), want)
    # one negative per row as a vector
    torch.testing.assert_close(SampledBCELoss()(pos, neg[:, 0]), (sp(-pos) + sp(neg[:, 0])).mean())
    # the gradient raises the positive and lowers the negatives
    p, n = pos.clone().requires_grad_(), neg.clone().requires_grad_()
    SampledBCELoss()(p, n).backward()
    assert (p.grad < 0).all() and (n.grad > 0).all()
