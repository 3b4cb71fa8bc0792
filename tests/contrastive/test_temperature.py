import math

import pytest
import torch

from clarec.contrastive import (
    FixedTemperature,
    InfoNCELoss,
    LearnableTemperature,
    ScheduledTemperature,
    as_temperature,
)
from clarec.errors import ConfigError


def test_fixed():
    t = FixedTemperature(0.07)
    assert t.value.dtype == torch.float32 and t.value.item() == pytest.approx(0.07)
    assert "tau" in t.state_dict() and list(t.parameters()) == []
    t.step()  # a no-op
    assert float(t) == pytest.approx(0.07)
    assert isinstance(as_temperature(0.2), FixedTemperature) and as_temperature(t) is t


def test_learnable_is_log_parameterised():
    t = LearnableTemperature(init=0.1, min=0.01, max=1.0)
    assert t.log_tau.item() == pytest.approx(math.log(0.1))
    assert t.value.item() == pytest.approx(0.1)
    assert "log_tau" in t.state_dict()
    # d τ / d log τ = τ
    t.value.backward()
    assert t.log_tau.grad.item() == pytest.approx(0.1)


def test_learnable_value_stays_clamped_and_can_come_back():
    t = LearnableTemperature(init=0.05, min=0.02, max=0.5)
    opt = torch.optim.SGD(t.parameters(), lr=1.0)
    for _ in range(50):  # minimising τ drives the parameter down, far past log(min)
        opt.zero_grad()
        (t.value * 100).backward()
        opt.step()
        assert t.value.item() >= 0.02 - 1e-7
    assert t.value.item() == pytest.approx(0.02)
    assert t.log_tau.item() < math.log(0.02)  # pushed out of range by the SGD steps...
    opt.zero_grad()
    (-t.value).backward()
    assert t.log_tau.grad.item() < 0  # ...but a gradient pointing back in still flows
    opt.zero_grad()
    t.value.backward()  # pointing further out: blocked
    assert t.log_tau.grad.item() == 0.0
    t.clamp_()
    assert t.log_tau.item() == pytest.approx(math.log(0.02))
    with torch.no_grad():
        t.log_tau.fill_(5.0)
    assert t.value.item() == pytest.approx(0.5)


def test_learnable_temperature_trains_inside_infonce():
    torch.manual_seed(0)
    t = LearnableTemperature(init=0.5, min=0.05, max=1.0)
    loss_fn = InfoNCELoss(t)
    q = torch.randn(16, 8)
    opt = torch.optim.SGD(loss_fn.parameters(), lr=0.5)
    for _ in range(20):  # perfectly aligned pairs: a sharper softmax always helps, τ goes down
        opt.zero_grad()
        loss_fn(q, q).backward()
        opt.step()
    assert t.value.item() < 0.5


@pytest.mark.parametrize(
    ("kind", "progress", "expected"),
    [
        ("cosine", 0.0, 0.2),
        ("cosine", 0.5, 0.125),
        ("cosine", 0.25, 0.05 + 0.15 * (1 + math.cos(math.pi / 4)) / 2),
        ("cosine", 1.0, 0.05),
        ("linear", 0.0, 0.2),
        ("linear", 0.25, 0.1625),
        ("linear", 0.5, 0.125),
        ("linear", 1.0, 0.05),
    ],
)
def test_scheduled_values(kind, progress, expected):
    t = ScheduledTemperature(start=0.2, end=0.05, steps=100, kind=kind)
    t.set_progress(progress)
    assert t.value.item() == pytest.approx(expected, rel=1e-6)


def test_scheduled_steps_and_resumes_from_state_dict():
    t = ScheduledTemperature(start=0.2, end=0.05, steps=10, kind="linear")
    for _ in range(5):
        t.step()
    assert t.progress == 0.5 and t.value.item() == pytest.approx(0.125)
    resumed = ScheduledTemperature(start=0.2, end=0.05, steps=10, kind="linear")
    resumed.load_state_dict(t.state_dict())
    assert resumed.value.item() == pytest.approx(0.125)
    for _ in range(20):
        t.step()
    assert t.value.item() == pytest.approx(0.05)  # stays at the end value


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_cast_to_half_precision_keeps_the_schedule_going(dtype):
    loss = InfoNCELoss(ScheduledTemperature(start=0.2, end=0.05, steps=1000, kind="linear")).to(dtype)
    schedule = loss.temperature
    for _ in range(999):
        schedule.step()
    assert schedule.current_step.dtype == torch.float64 and schedule.current_step.item() == 999
    schedule.step()
    assert schedule.progress == 1.0 and schedule.value.item() == pytest.approx(0.05)


def test_bad_temperatures():
    for make in (
        lambda: FixedTemperature(-1),
        lambda: LearnableTemperature(init=2.0, max=1.0),
        lambda: LearnableTemperature(min=0.0),
        lambda: ScheduledTemperature(steps=0),
        lambda: ScheduledTemperature(kind="step"),
        lambda: ScheduledTemperature().set_progress(1.5),
        lambda: as_temperature(torch.nn.Linear(1, 1)),
    ):
        with pytest.raises(ConfigError):
            make()
