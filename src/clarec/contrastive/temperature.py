"""Softmax temperatures for contrastive losses: fixed, learnable, or scheduled.

Every temperature is an ``nn.Module`` (so it sits in a model's ``state_dict`` and moves with
``.to(device)``) exposing ``.value``, a float32 scalar tensor. Losses divide their logits by ``.value``.
Trainers may call ``.step()`` once per optimiser step on any temperature; only the scheduled one moves.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from clarec.errors import ConfigError

__all__ = [
    "FixedTemperature",
    "LearnableTemperature",
    "ScheduledTemperature",
    "Temperature",
    "as_temperature",
]


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {value}")
    return value


class Temperature(nn.Module):
    """Base class: a softmax temperature τ > 0 whose current value is ``.value``."""

    @property
    def value(self) -> torch.Tensor:
        raise NotImplementedError

    def forward(self) -> torch.Tensor:
        return self.value

    def step(self) -> None:
        """Advance one training step (a no-op unless the temperature is scheduled)."""

    def __float__(self) -> float:
        return float(self.value.detach())


class FixedTemperature(Temperature):
    """A constant temperature ``t`` (stored as a buffer so it is saved with the model)."""

    def __init__(self, t: float = 0.07):
        super().__init__()
        self.register_buffer("tau", torch.tensor(_positive("temperature", t), dtype=torch.float32))

    @property
    def value(self) -> torch.Tensor:
        return self.tau

    def extra_repr(self) -> str:
        return f"t={float(self.tau):g}"


class _ClampInward(torch.autograd.Function):
    """``clamp`` whose gradient still flows when it would move the input back inside the range.

    Plain ``clamp`` has zero gradient outside ``[lo, hi]``, so a parameter an optimiser pushed past a
    bound (momentum, a large step) would be stuck there for good. Here the gradient passes wherever
    the input is inside the range, or outside it with a descent direction pointing back in.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        # gradient descent moves x by -grad: below lo it must increase (grad < 0), above hi decrease.
        passes = ((x >= ctx.lo) & (x <= ctx.hi)) | ((x < ctx.lo) & (grad < 0)) | ((x > ctx.hi) & (grad > 0))
        return grad * passes, None, None


def clamp_inward(x: torch.Tensor, lo: float = -math.inf, hi: float = math.inf) -> torch.Tensor:
    """``x.clamp(lo, hi)`` whose gradient can bring an ``x`` past a bound back in (:class:`_ClampInward`)."""
    return _ClampInward.apply(x, lo, hi)


class LearnableTemperature(Temperature):
    """A temperature learned with the model, parameterised as ``log τ`` and clamped to ``[min, max]``.

    The log parameterisation keeps τ positive and makes steps multiplicative (as CLIP does for its
    logit scale). ``.value`` is ``exp(clamp(log τ, log min, log max))``: always within the bounds,
    with a gradient that can bring an out-of-range parameter back (see ``clamp_`` to project the
    parameter itself, e.g. after each optimiser step, so weight decay or momentum cannot drift it).

    Remember to give the loss's (or this module's) parameters to the optimiser.
    """

    def __init__(self, init: float = 0.07, min: float = 0.01, max: float = 1.0):
        super().__init__()
        init, lo, hi = _positive("init", init), _positive("min", min), _positive("max", max)
        if not lo <= init <= hi:
            raise ConfigError(f"learnable temperature: need min <= init <= max, got {lo}, {init}, {hi}")
        self.min, self.max = lo, hi
        self.log_tau = nn.Parameter(torch.tensor(math.log(init), dtype=torch.float32))

    @property
    def value(self) -> torch.Tensor:
        return clamp_inward(self.log_tau, math.log(self.min), math.log(self.max)).exp()

    @torch.no_grad()
    def clamp_(self) -> LearnableTemperature:
        """Project the parameter onto ``[log min, log max]`` in place."""
        self.log_tau.clamp_(math.log(self.min), math.log(self.max))
        return self

    def extra_repr(self) -> str:
        return f"value={float(self):.4g}, min={self.min:g}, max={self.max:g}"


class ScheduledTemperature(Temperature):
    """A temperature moving from ``start`` to ``end`` over ``steps`` training steps, then staying at ``end``.

    ``kind="cosine"``: ``τ(p) = end + (start - end)·(1 + cos πp)/2``; ``kind="linear"``:
    ``τ(p) = start + (end - start)·p``, where ``p = min(step / steps, 1)`` is the progress. Call
    ``.step()`` once per optimiser step, or ``set_progress(p)`` (e.g. from the epoch fraction). The
    step count is a buffer, so a resumed checkpoint continues the schedule where it stopped.
    """

    KINDS = ("cosine", "linear")

    def __init__(self, start: float = 0.2, end: float = 0.05, steps: int = 1000, kind: str = "cosine"):
        super().__init__()
        self.start, self.end = _positive("start", start), _positive("end", end)
        if int(steps) < 1:
            raise ConfigError(f"scheduled temperature: steps must be >= 1, got {steps}")
        if kind not in self.KINDS:
            raise ConfigError(f"scheduled temperature: kind must be one of {self.KINDS}, got {kind!r}")
        self.steps, self.kind = int(steps), kind
        # float64 so that set_progress can place the schedule between two integer steps exactly
        self.register_buffer("current_step", torch.zeros((), dtype=torch.float64))

    @property
    def progress(self) -> float:
        return min(float(self.current_step) / self.steps, 1.0)

    def step(self) -> None:
        self.current_step += 1

    def _apply(self, fn, recurse: bool = True):
        # .half() / .to(torch.bfloat16) cast every floating buffer: the counter keeps float64 (in
        # bf16 it stopped at 256, so the schedule stopped), and moves with the module's device
        step = self.current_step
        super()._apply(fn, recurse)
        self.current_step = step.to(self.current_step.device)
        return self

    def set_progress(self, fraction: float) -> None:
        """Jump to ``fraction`` (in ``[0, 1]``) of the schedule."""
        fraction = float(fraction)
        if not 0.0 <= fraction <= 1.0:
            raise ConfigError(f"progress must be in [0, 1], got {fraction}")
        self.current_step.fill_(fraction * self.steps)

    @property
    def value(self) -> torch.Tensor:
        p = self.progress
        if self.kind == "cosine":
            tau = self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * p))
        else:
            tau = self.start + (self.end - self.start) * p
        return torch.tensor(tau, dtype=torch.float32, device=self.current_step.device)

    def extra_repr(self) -> str:
        return f"start={self.start:g}, end={self.end:g}, steps={self.steps}, kind={self.kind!r}"


def as_temperature(temperature: float | Temperature) -> Temperature:
    """A ``Temperature`` module from a number (fixed) or an existing module (returned as is)."""
    if isinstance(temperature, Temperature):
        return temperature
    if isinstance(temperature, nn.Module):
        raise ConfigError(f"temperature must be a number or a Temperature, got {type(temperature).__name__}")
    return FixedTemperature(temperature)
