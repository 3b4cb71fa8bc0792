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


def test_catalogue_softmax_of_equal_scores_is_log_n_and_holds_a_learnable_temperature():
    q, items = torch.zeros(2, 3), torch.randn(7, 3)
    assert CatalogueSoftmaxLoss()(q, items, torch.tensor([1, 6])).item() == pytest.approx(math.log(7))
    loss = CatalogueSoftmaxLoss(LearnableTemperature(0.2))
    assert len(list(loss.parameters())) == 1
    with pytest.raises(ConfigError):
        CatalogueSoftmaxLoss(reduction="avg")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_catalogue_softmax_gradients_are_cross_entropys(dtype):
    """float32 on the CPU runs the NumPy autograd function; its loss and gradients (queries, items,
    a learned temperature) are torch's cross-entropy's; other dtypes run torch's directly."""
    g = torch.Generator().manual_seed(1)
    base_q = torch.randn(40, 16, generator=g, dtype=dtype) * 2
    base_items = torch.randn(16, 300, generator=g, dtype=dtype).T  # a transposed view, as tables are
    y = torch.randint(0, 300, (40,), generator=g)
    weights = torch.rand(40, generator=g, dtype=dtype)  # an uneven incoming gradient

    def grads(fn):
        q, items = base_q.clone().requires_grad_(), base_items.clone().requires_grad_()
        temperature = LearnableTemperature(0.3).to(dtype)
        loss = fn(q, items, temperature)
        (loss * weights).sum().backward()
        return loss, q.grad, items.grad, temperature.log_tau.grad

    def reference(q, items, temperature):
        return torch.nn.functional.cross_entropy(q / temperature.value @ items.T, y, reduction="none")

    got = grads(lambda q, items, t: CatalogueSoftmaxLoss(t, reduction="none")(q, items, y))
    for a, b in zip(got, grads(reference), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert got[0].dtype == dtype


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_excluded_pairs_leave_the_softmax(dtype):
    """An excluded (query, item) pair is as if its logit were -inf: no share of the softmax and no
    gradient; a pair naming the query's own target is ignored."""
    g = torch.Generator().manual_seed(2)
    base_q, base_items = (
        torch.randn(6, 4, generator=g, dtype=dtype),
        torch.randn(9, 4, generator=g, dtype=dtype),
    )
    y = torch.tensor([0, 8, 3, 3, 1, 5])
    rows, cols = torch.tensor([0, 0, 2, 3, 3, 5]), torch.tensor([1, 0, 4, 3, 7, 8])  # (0, 0), (3, 3): targets

    def run(fn):
        q, items = base_q.clone().requires_grad_(), base_items.clone().requires_grad_()
        loss = fn(q, items)
        loss.backward()
        return loss, q.grad, items.grad

    def by_hand(q, items):
        logits = (q @ items.T).index_put(
            (torch.tensor([0, 2, 3, 5]), torch.tensor([1, 4, 7, 8])), torch.tensor(-torch.inf, dtype=dtype)
        )
        return torch.nn.functional.cross_entropy(logits, y, reduction="sum")

    got = run(lambda q, items: CatalogueSoftmaxLoss(reduction="sum")(q, items, y, (rows, cols)))
    for a, b in zip(got, run(by_hand), strict=True):
        torch.testing.assert_close(a, b)
    assert got[0] < run(lambda q, items: CatalogueSoftmaxLoss(reduction="sum")(q, items, y))[0]
    with pytest.raises(ValueError, match="equal length"):
        CatalogueSoftmaxLoss()(base_q, base_items, y, (rows, cols[:2]))


def test_an_excluded_item_far_above_the_rest_leaves_the_loss_finite():
    """The softmax's shift is the largest logit kept: an excluded item 110 above the others (whose
    exponentials would all underflow against it) leaves the loss the kept items' cross-entropy."""
    q = torch.tensor([[1.0]])
    items = torch.tensor([[0.0], [110.0], [-1.0]])  # the target, an excluded item, another
    y = torch.tensor([0])
    got = CatalogueSoftmaxLoss(reduction="none")(q, items, y, (torch.tensor([0]), torch.tensor([1])))
    want = torch.nn.functional.cross_entropy(torch.tensor([[0.0, -1.0]]), y, reduction="none")
    torch.testing.assert_close(got, want)


def test_catalogue_softmax_rejects_targets_outside_the_catalogue():
    q, items = torch.randn(2, 3), torch.randn(5, 3)
    for bad in ([0, 5], [-1, 2]):
        with pytest.raises(IndexError, match=r"\[0, 5\)"):
            CatalogueSoftmaxLoss()(q, items, torch.tensor(bad))
    no_targets = torch.tensor([], dtype=torch.int64)
    assert CatalogueSoftmaxLoss(reduction="sum")(q[:0], items, no_targets).item() == 0.0


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


def test_a_second_backward_of_the_cpu_path_is_refused_clearly():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(4, 3, generator=g, requires_grad=True)
    items = torch.randn(6, 3, generator=g, requires_grad=True)
    loss = CatalogueSoftmaxLoss()(q, items, torch.tensor([0, 1, 2, 3]))
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="one backward pass per forward"):
        loss.backward()
