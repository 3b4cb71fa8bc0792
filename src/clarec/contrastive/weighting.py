"""Combine a recommendation loss with auxiliary (e.g. contrastive) losses into one training loss.

Every weighting is an ``nn.Module`` with ``forward(losses) -> (total, weights_used)``: ``losses`` maps a
task name to its scalar loss, ``total`` is the scalar to back-propagate, and ``weights_used`` the
effective weight of each task as plain floats (for logging). Trainers may call ``.step()`` once per
optimiser step on any weighting; only the warm-up moves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from clarec.contrastive.temperature import clamp_inward
from clarec.errors import ConfigError

__all__ = ["FixedWeighting", "LossWeighting", "UncertaintyWeighting", "WarmupWeighting"]


def _check_weights(weights: Mapping[str, float]) -> dict[str, float]:
    out = {str(k): float(v) for k, v in weights.items()}
    if not out:
        raise ConfigError("loss weighting needs at least one task")
    bad = [k for k, v in out.items() if not math.isfinite(v) or v < 0]
    if bad:
        raise ConfigError(f"loss weights must be finite and >= 0, bad for: {', '.join(bad)}")
    return out


class LossWeighting(nn.Module):
    """Base class; subclasses define ``weights()`` or override ``forward``."""

    tasks: tuple[str, ...]

    def weights(self) -> dict[str, float]:
        raise NotImplementedError

    def step(self) -> None:
        """Advance one training step (a no-op unless the weighting is scheduled)."""

    def _check_names(self, losses: Mapping[str, torch.Tensor]) -> None:
        unknown = sorted(set(losses) - set(self.tasks))
        if unknown:
            raise ConfigError(
                f"no weight for loss {', '.join(unknown)}; known tasks: {', '.join(self.tasks)}"
            )

    def forward(self, losses: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """``Σ w_task · loss_task`` over the losses given (a task absent this step contributes nothing)."""
        self._check_names(losses)
        weights = self.weights()
        used = {name: weights[name] for name in losses}
        total = sum(used[name] * loss for name, loss in losses.items())
        return torch.as_tensor(total), used


class FixedWeighting(LossWeighting):
    """Constant weights, e.g. ``FixedWeighting({"rec": 1.0, "cl": 0.1})``."""

    def __init__(self, weights: Mapping[str, float]):
        super().__init__()
        self._weights = _check_weights(weights)
        self.tasks = tuple(self._weights)

    def weights(self) -> dict[str, float]:
        return dict(self._weights)

    def extra_repr(self) -> str:
        return repr(self._weights)


class WarmupWeighting(LossWeighting):
    """Auxiliary weights ramp from 0 to their target over ``warmup_steps`` steps; main tasks stay fixed.

    At step ``s`` with ``p = min(s / warmup_steps, 1)`` an auxiliary task's weight is ``w·p`` for
    ``kind="linear"`` and ``w·(1 − cos πp)/2`` for ``kind="cosine"``. ``main`` names the task(s) not
    ramped (default: the first key of ``weights``). Call ``.step()`` once per optimiser step; the step
    count is a buffer, so it is saved and restored with checkpoints.
    """

    KINDS = ("linear", "cosine")

    def __init__(
        self,
        weights: Mapping[str, float],
        warmup_steps: int,
        kind: str = "linear",
        main: str | Sequence[str] | None = None,
    ):
        super().__init__()
        self._weights = _check_weights(weights)
        self.tasks = tuple(self._weights)
        if int(warmup_steps) < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {warmup_steps}")
        if kind not in self.KINDS:
            raise ConfigError(f"warm-up kind must be one of {self.KINDS}, got {kind!r}")
        main = [self.tasks[0]] if main is None else [main] if isinstance(main, str) else list(main)
        missing = [m for m in main if m not in self._weights]
        if missing:
            raise ConfigError(
                f"main task {', '.join(missing)} has no weight; known tasks: {', '.join(self.tasks)}"
            )
        self.main = tuple(main)
        self.warmup_steps, self.kind = int(warmup_steps), kind
        self.register_buffer("current_step", torch.zeros((), dtype=torch.long))

    @property
    def factor(self) -> float:
        """Fraction of their target weight the auxiliary tasks currently get."""
        if self.warmup_steps == 0:
            return 1.0
        p = min(int(self.current_step) / self.warmup_steps, 1.0)
        return p if self.kind == "linear" else 0.5 * (1.0 - math.cos(math.pi * p))

    def step(self) -> None:
        self.current_step += 1

    def weights(self) -> dict[str, float]:
        f = self.factor
        return {k: w if k in self.main else w * f for k, w in self._weights.items()}

    def extra_repr(self) -> str:
        return f"{self._weights!r}, warmup_steps={self.warmup_steps}, kind={self.kind!r}, main={self.main}"


class UncertaintyWeighting(LossWeighting):
    """Learned homoscedastic-uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018).

    Learns ``s_i = log σ_i²`` per task and returns ``Σ_i exp(−s_i)·L_i + s_i``. Minimising over
    ``s_i`` gives ``exp(−s_i) = 1 / L_i``, i.e. ``s_i → log L_i``: noisier (larger) losses are
    down-weighted, and the ``+ s_i`` term stops all weights collapsing to zero.

    ``half=True`` uses the paper's regression form ``Σ_i ½·exp(−s_i)·L_i + ½·s_i`` (from
    ``L/(2σ²) + log σ``); its optimum is the same ``s_i = log L_i`` and it is exactly half the default
    total, so it only rescales the gradients. ``weights_used`` reports ``exp(−s_i)`` (halved if
    ``half``). Remember to give this module's parameters to the optimiser. The task losses must be
    positive: at ``L_i ≤ 0`` the optimum ``s_i = log L_i`` does not exist and ``s_i`` runs to ``−∞``,
    so a negative loss (``uniformity`` is ≤ 0: shift it, e.g. ``uniformity + 4``) is refused, and
    ``s_i`` is floored at ``LOG_VAR_MIN`` (a weight of at most ``e¹⁰``): a loss at zero (a batch whose
    positives are all one item, BYOL's ``2 − 2cos`` at its minimum) then keeps a finite weight.
    """

    #: The lowest ``s_i`` used (below it the gradient that would push it further is zero; the one that
    #: brings it back passes).
    LOG_VAR_MIN = -10.0

    def __init__(self, task_names: Sequence[str], init: float = 0.0, half: bool = False):
        super().__init__()
        names = [str(n) for n in task_names]
        if not names or len(set(names)) != len(names):
            raise ConfigError(f"uncertainty weighting needs distinct task names, got {names}")
        self.tasks = tuple(names)
        self.half = bool(half)
        self.log_vars = nn.Parameter(torch.full((len(names),), float(init), dtype=torch.float32))

    def weights(self) -> dict[str, float]:
        scale = 0.5 if self.half else 1.0
        w = torch.exp(-self.log_vars.detach().clamp(min=self.LOG_VAR_MIN)) * scale
        return {name: float(w[i]) for i, name in enumerate(self.tasks)}

    def forward(self, losses: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        self._check_names(losses)
        scale = 0.5 if self.half else 1.0
        total = self.log_vars.new_zeros(())
        used = {}
        for name, loss in losses.items():
            if float(loss.detach()) < -1e-4:  # beyond rounding (BYOL's 2 − 2cos can be −1e-7)
                raise ValueError(
                    f"uncertainty weighting needs non-negative task losses; {name!r} is {float(loss):.4g} "
                    "(its weight would grow without bound): shift the loss above zero"
                )
            s = clamp_inward(self.log_vars[self.tasks.index(name)], self.LOG_VAR_MIN)
            total = total + scale * (torch.exp(-s) * loss + s)
            used[name] = scale * math.exp(-float(s.detach()))
        return total, used

    def extra_repr(self) -> str:
        return f"tasks={self.tasks}, half={self.half}"
