import math

import pytest
import torch

from clarec.contrastive import alignment, uniformity
from clarec.errors import ConfigError


def test_alignment_by_hand():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    # distances √2 and 0
    assert alignment(x, y).item() == pytest.approx(1.0)
    assert alignment(x, y, alpha=1).item() == pytest.approx(math.sqrt(2) / 2)
    assert alignment(x, x).item() == 0.0
    assert alignment(5 * x, y).item() == pytest.approx(1.0)  # normalised first
    assert alignment(5 * x, y, normalize=False).item() == pytest.approx((26 + 16) / 2)


def test_uniformity_by_hand():
    opposite = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert uniformity(opposite).item() == pytest.approx(-8.0)  # one pair, squared distance 4, t = 2
    assert uniformity(opposite, t=1).item() == pytest.approx(-4.0)
    three = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])  # squared distances 2, 4, 2
    expected = math.log((2 * math.exp(-4) + math.exp(-8)) / 3)
    assert uniformity(three).item() == pytest.approx(expected, rel=1e-6)
    assert uniformity(torch.ones(4, 3)).item() == pytest.approx(0.0, abs=1e-6)  # collapse: the maximum


def test_spread_vectors_are_more_uniform_and_gradients_are_finite():
    torch.manual_seed(0)
    spread = torch.randn(64, 8)
    clustered = torch.randn(1, 8) + 0.05 * torch.randn(64, 8)
    assert uniformity(spread) < uniformity(clustered) < 0
    x = torch.ones(3, 2, requires_grad=True)  # identical rows: pdist would give NaN gradients
    (uniformity(x) + alignment(x, x.detach() + 1e-3)).backward()
    assert torch.isfinite(x.grad).all()


def test_bad_inputs():
    with pytest.raises(ConfigError, match="at least two"):
        uniformity(torch.ones(1, 3))
    with pytest.raises(ValueError, match="same shape"):
        alignment(torch.ones(2, 3), torch.ones(3, 3))
