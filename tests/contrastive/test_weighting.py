import math

import pytest
import torch

from clarec.contrastive import FixedWeighting, UncertaintyWeighting, WarmupWeighting
from clarec.errors import ConfigError


def _losses(rec=2.0, cl=3.0):
    return {"rec": torch.tensor(rec), "cl": torch.tensor(cl)}


def test_fixed():
    total, used = FixedWeighting({"rec": 1.0, "cl": 0.1})(_losses())
    assert total.item() == pytest.approx(2.3) and used == {"rec": 1.0, "cl": 0.1}
    total, used = FixedWeighting({"rec": 1.0, "cl": 0.1})({"rec": torch.tensor(2.0)})  # cl absent this step
    assert total.item() == 2.0 and used == {"rec": 1.0}
    with pytest.raises(ConfigError, match="no weight for loss byol"):
        FixedWeighting({"rec": 1.0})({"byol": torch.tensor(1.0)})
    with pytest.raises(ConfigError, match=">= 0"):
        FixedWeighting({"rec": -1.0})


def test_fixed_gradients_are_weighted():
    rec, cl = torch.tensor(1.0, requires_grad=True), torch.tensor(1.0, requires_grad=True)
    total, _ = FixedWeighting({"rec": 1.0, "cl": 0.25})({"rec": rec * 3, "cl": cl * 3})
    total.backward()
    assert rec.grad.item() == 3.0 and cl.grad.item() == 0.75


@pytest.mark.parametrize(
    ("kind", "step", "cl_weight"),
    [
        ("linear", 0, 0.0),
        ("linear", 5, 0.2),
        ("linear", 10, 0.4),
        ("linear", 25, 0.4),
        ("cosine", 0, 0.0),
        ("cosine", 5, 0.2),
        ("cosine", 10, 0.4),
        ("cosine", 2, 0.4 * (1 - math.cos(math.pi * 0.2)) / 2),
    ],
)
def test_warmup_weights(kind, step, cl_weight):
    w = WarmupWeighting({"rec": 1.0, "cl": 0.4}, warmup_steps=10, kind=kind)
    for _ in range(step):
        w.step()
    total, used = w(_losses())
    assert used["rec"] == 1.0 and used["cl"] == pytest.approx(cl_weight)
    assert total.item() == pytest.approx(2.0 + 3.0 * cl_weight)


def test_warmup_main_tasks_and_checkpoint():
    w = WarmupWeighting({"cl": 0.5, "rec": 1.0, "aux": 2.0}, warmup_steps=4, main=["rec"])
    w.step()
    assert w.weights() == {"cl": 0.125, "rec": 1.0, "aux": 0.5}
    other = WarmupWeighting({"cl": 0.5, "rec": 1.0, "aux": 2.0}, warmup_steps=4, main="rec")
    other.load_state_dict(w.state_dict())
    assert other.weights() == w.weights()
    assert WarmupWeighting({"rec": 1.0, "cl": 0.5}, warmup_steps=0).weights() == {"rec": 1.0, "cl": 0.5}
    with pytest.raises(ConfigError, match="main task"):
        WarmupWeighting({"rec": 1.0}, 10, main="ranking")
    with pytest.raises(ConfigError, match="kind"):
        WarmupWeighting({"rec": 1.0}, 10, kind="step")


def test_uncertainty_total_and_weights():
    w = UncertaintyWeighting(["rec", "cl"])
    total, used = w(_losses())
    assert total.item() == pytest.approx(5.0) and used == {"rec": 1.0, "cl": 1.0}  # s = 0
    with torch.no_grad():
        w.log_vars.copy_(torch.tensor([math.log(2.0), 0.5]))
    total, used = w(_losses())
    assert total.item() == pytest.approx(2.0 / 2.0 + math.log(2.0) + 3.0 * math.exp(-0.5) + 0.5)
    assert used["rec"] == pytest.approx(0.5) and used["cl"] == pytest.approx(math.exp(-0.5))
    half = UncertaintyWeighting(["rec", "cl"], half=True)
    half.load_state_dict(w.state_dict())
    total_half, used_half = half(_losses())
    assert total_half.item() == pytest.approx(total.item() / 2)
    assert used_half["rec"] == pytest.approx(0.25)


def test_uncertainty_gradient_pushes_s_towards_log_loss():
    w = UncertaintyWeighting(["rec", "cl"])
    total, _ = w({"rec": torch.tensor(4.0), "cl": torch.tensor(0.5)})
    total.backward()
    # d/ds (e^{-s} L + s) = 1 - L at s = 0: negative (s goes up) for L = 4, positive for L = 0.5
    torch.testing.assert_close(w.log_vars.grad, torch.tensor([-3.0, 0.5]))
    opt = torch.optim.Adam(w.parameters(), lr=0.05)
    for _ in range(400):
        opt.zero_grad()
        w({"rec": torch.tensor(4.0), "cl": torch.tensor(0.5)})[0].backward()
        opt.step()
    torch.testing.assert_close(w.log_vars.detach(), torch.log(torch.tensor([4.0, 0.5])), atol=0.02, rtol=0)


def test_uncertainty_bad_names():
    with pytest.raises(ConfigError, match="distinct"):
        UncertaintyWeighting(["rec", "rec"])
    with pytest.raises(ConfigError, match="no weight"):
        UncertaintyWeighting(["rec"])({"cl": torch.tensor(1.0)})


def test_uncertainty_refuses_a_negative_loss():
    # at L < 0, exp(-s)·L + s falls without bound as s → -inf: training would diverge silently
    w = UncertaintyWeighting(["rec", "cl"])
    with pytest.raises(ValueError, match="'cl' is -0.5.*shift the loss above zero"):
        w(_losses(cl=-0.5))
    total, _ = w(_losses(cl=-1e-7))  # rounding below zero (BYOL's 2 − 2cos at cos = 1) is allowed
    assert total.item() == pytest.approx(2.0)


def test_uncertainty_weighting_keeps_a_finite_weight_for_a_loss_at_zero():
    # at L = 0 the optimum s = log L does not exist: unfloored, s runs to -inf and exp(-s)·0 is NaN
    w = UncertaintyWeighting(["a", "b"])
    opt = torch.optim.Adam(w.parameters(), lr=0.5)
    for _ in range(200):
        total, used = w({"a": torch.tensor(0.0), "b": torch.tensor(2.0)})
        opt.zero_grad()
        total.backward()
        opt.step()
    assert math.isfinite(float(total)) and used["a"] == pytest.approx(math.exp(10.0), rel=1e-5)
    assert w.weights()["a"] == pytest.approx(math.exp(10.0), rel=1e-5)
    assert used["b"] == pytest.approx(0.5, rel=0.05)  # the other task still finds s = log L
    w({"a": torch.tensor(-5e-5), "b": torch.tensor(1.0)})  # rounding below zero is taken
    # below the floor a zero loss pushes it no further, and once the loss is back above zero the
    # gradient brings it back (a plain clamp gave zero both ways: the weight stayed e¹⁰ for good)
    assert float(w.log_vars[0]) < w.LOG_VAR_MIN
    for loss, sign in ((0.0, 0.0), (5.0, -1.0)):
        w.zero_grad()
        w({"a": torch.tensor(loss), "b": torch.tensor(2.0)})[0].backward()
        assert float(torch.sign(w.log_vars.grad[0])) == sign, loss
