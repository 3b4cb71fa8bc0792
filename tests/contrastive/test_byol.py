import pytest
import torch
from torch import nn

from clarec.contrastive import BYOL, BYOLLoss
from clarec.errors import ConfigError


def test_byol_loss_by_hand():
    pred = torch.tensor([[1.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    target = torch.tensor([[3.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    torch.testing.assert_close(BYOLLoss(reduction="none")(pred, target), torch.tensor([0.0, 2.0, 4.0]))
    assert BYOLLoss()(pred, target).item() == pytest.approx(2.0)


def test_byol_loss_gives_no_gradient_to_the_target():
    pred, target = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3, requires_grad=True)
    BYOLLoss()(pred, target).backward()
    assert pred.grad is not None and target.grad is None


def _byol(**kw):
    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    return BYOL(online, projector_dim=3, predictor_hidden=8, **kw)


def test_target_is_a_frozen_copy():
    byol = _byol()
    assert byol.target is not byol.online
    for t, o in zip(byol.target.parameters(), byol.online.parameters(), strict=True):
        assert torch.equal(t, o) and not t.requires_grad and t.data_ptr() != o.data_ptr()


def test_only_online_and_predictor_get_gradients():
    byol = _byol()
    v1, v2 = torch.randn(8, 4), torch.randn(8, 4)
    loss = byol.loss(v1, v2)
    loss.backward()
    assert all(p.grad is not None for p in byol.online.parameters())
    assert all(p.grad is not None for p in byol.predictor.parameters())
    assert all(p.grad is None for p in byol.target.parameters())
    # the loss is the mean of both directions
    p1, p2 = byol.predictor(byol.online(v1)), byol.predictor(byol.online(v2))
    z1, z2 = byol.target(v1), byol.target(v2)
    expected = 0.5 * (BYOLLoss()(p1, z2) + BYOLLoss()(p2, z1))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_update_target_is_an_ema_of_online():
    byol = _byol(momentum=0.9)
    before = [t.clone() for t in byol.target.parameters()]
    opt = torch.optim.SGD(list(byol.online.parameters()) + list(byol.predictor.parameters()), lr=0.5)
    byol.loss(torch.randn(8, 4), torch.randn(8, 4)).backward()
    opt.step()
    byol.online(torch.randn(8, 4))  # moves the batch-norm running statistics
    assert byol.update_target() == 0.9
    for old, t, o in zip(before, byol.target.parameters(), byol.online.parameters(), strict=True):
        assert not torch.equal(o, old)  # the online network did move
        torch.testing.assert_close(t, 0.9 * old + 0.1 * o)
    for t, o in zip(byol.target.buffers(), byol.online.buffers(), strict=True):
        assert torch.equal(t, o)  # buffers are copied
    assert int(byol.num_updates) == 1


def test_cosine_momentum_schedule():
    byol = _byol(momentum=0.99, final_momentum=1.0, total_steps=10)
    taus = []
    for _ in range(12):
        taus.append(byol.update_target())
    assert taus[0] == pytest.approx(0.99)
    assert taus[5] == pytest.approx(0.995)
    assert taus[10] == pytest.approx(1.0) and taus[11] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(taus, taus[1:], strict=False))
    # τ = 1 leaves the target where it is
    frozen = [t.clone() for t in byol.target.parameters()]
    with torch.no_grad():
        for o in byol.online.parameters():
            o.add_(1.0)
    byol.update_target()
    assert all(torch.equal(a, b) for a, b in zip(frozen, byol.target.parameters(), strict=True))


class _DictEncoder(nn.Module):
    """An embedding table + mean pooling, called with keyword inputs like a tokenizer's output."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 3)

    def forward(self, input_ids, attention_mask):
        m = attention_mask.unsqueeze(-1).float()
        return (self.emb(input_ids) * m).sum(1) / m.sum(1)


def test_mapping_views_are_keyword_arguments():
    torch.manual_seed(0)
    byol = BYOL(_DictEncoder(), projector_dim=3, predictor_hidden=4, batch_norm=False)
    view = {
        "input_ids": torch.tensor([[1, 2, 0], [3, 4, 5]]),
        "attention_mask": torch.tensor([[1, 1, 0], [1, 1, 1]]),
    }
    loss = byol(view, view)
    # the encoder is called with the mapping's items as keyword arguments: the loss of its output
    z = byol.online(**view)
    torch.testing.assert_close(byol.encode(view), z)
    torch.testing.assert_close(loss, BYOLLoss()(byol.predictor(z), byol.target(**view)))
    assert byol.encode(view).shape == (2, 3)
    assert set(byol.state_dict()) >= {"online.emb.weight", "target.emb.weight", "num_updates"}


def test_training_reduces_the_loss():
    torch.manual_seed(1)
    byol = BYOL(nn.Linear(4, 3), projector_dim=3, predictor_hidden=16, momentum=0.9)
    x = torch.randn(64, 4)
    opt = torch.optim.Adam([p for p in byol.parameters() if p.requires_grad], lr=0.01)
    first = None
    for _ in range(60):
        v1, v2 = x + 0.1 * torch.randn_like(x), x + 0.1 * torch.randn_like(x)
        loss = byol.loss(v1, v2)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
        byol.update_target()
    assert loss.item() < first / 2


def test_bad_arguments():
    with pytest.raises(ConfigError, match="momentum"):
        BYOL(nn.Linear(2, 2), 2, 4, momentum=1.5)
    with pytest.raises(ConfigError, match="total_steps"):
        BYOL(nn.Linear(2, 2), 2, 4, total_steps=0)
