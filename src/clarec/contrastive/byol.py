"""BYOL: learning without negatives from an online network, its EMA target and a predictor."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clarec.contrastive._reduce import check_reduction, reduce
from clarec.errors import ConfigError

__all__ = ["BYOL", "BYOLLoss"]


class BYOLLoss(nn.Module):
    """BYOL regression loss (Grill et al., 2020): ``2 - 2·cos(prediction, target)`` per row.

    The target is detached: in BYOL it comes from the slowly moving target network and must not
    receive gradients. Equals the squared distance of the two L2-normalised vectors.
    """

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = check_reduction(reduction)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        cos = F.cosine_similarity(prediction, target.detach(), dim=-1)
        return reduce(2.0 - 2.0 * cos, self.reduction)


class BYOL(nn.Module):
    """Online network + predictor, trained to predict an exponential-moving-average target network.

    Works for any ``online`` module that maps an input to vectors ``(B, projector_dim)``: a text
    encoder with a projection head, an embedding table followed by a GNN, ... A view that is a
    mapping (e.g. a tokenizer's output) is passed as keyword arguments, ``online(**view)``.

    Args:
        online: the network being learned (including its projection head).
        projector_dim: size of the vectors ``online`` returns.
        predictor_hidden: hidden size of the predictor MLP
            (``Linear → BatchNorm → ReLU → Linear``, as in the paper).
        momentum: EMA rate τ of the target, ``ξ ← τ·ξ + (1 - τ)·θ``.
        final_momentum, total_steps: with ``total_steps`` given, τ follows BYOL's cosine schedule
            ``τ_k = final - (final - momentum)·(cos(πk/K) + 1)/2`` from ``momentum`` at step 0 to
            ``final_momentum`` at step ``K = total_steps``; otherwise τ stays at ``momentum``.
        batch_norm: use batch norm in the predictor (needs batches of at least two in training).

    Training step: ``loss = byol.loss(v1, v2); loss.backward(); opt.step(); byol.update_target()``.
    The target is a deep copy of ``online`` made here, with ``requires_grad=False``; its buffers
    (e.g. batch-norm statistics) are copied from the online network at each update.
    """

    def __init__(
        self,
        online: nn.Module,
        projector_dim: int,
        predictor_hidden: int = 4096,
        momentum: float = 0.996,
        final_momentum: float = 1.0,
        total_steps: int | None = None,
        batch_norm: bool = True,
    ):
        super().__init__()
        for name, value in (("momentum", momentum), ("final_momentum", final_momentum)):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"BYOL: {name} must be in [0, 1], got {value}")
        if projector_dim < 1 or predictor_hidden < 1:
            raise ConfigError("BYOL: projector_dim and predictor_hidden must be positive")
        if total_steps is not None and total_steps < 1:
            raise ConfigError(f"BYOL: total_steps must be >= 1, got {total_steps}")
        self.online = online
        self.target = copy.deepcopy(online).requires_grad_(False)
        self.predictor = nn.Sequential(
            nn.Linear(projector_dim, predictor_hidden),
            nn.BatchNorm1d(predictor_hidden) if batch_norm else nn.Identity(),
            nn.ReLU(inplace=True),
            nn.Linear(predictor_hidden, projector_dim),
        )
        self.base_momentum, self.final_momentum = float(momentum), float(final_momentum)
        self.total_steps = total_steps
        self.criterion = BYOLLoss()
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    @property
    def momentum(self) -> float:
        """τ used by the next ``update_target``."""
        if self.total_steps is None:
            return self.base_momentum
        k = min(int(self.num_updates), self.total_steps)
        cos = (math.cos(math.pi * k / self.total_steps) + 1.0) / 2.0
        return self.final_momentum - (self.final_momentum - self.base_momentum) * cos

    @torch.no_grad()
    def update_target(self) -> float:
        """Move the target towards the online network; returns the τ used."""
        tau = self.momentum
        for t, o in zip(self.target.parameters(), self.online.parameters(), strict=True):
            t.lerp_(o.detach(), 1.0 - tau)  # t + (1 - τ)(o - t) = τ·t + (1 - τ)·o
        for t, o in zip(self.target.buffers(), self.online.buffers(), strict=True):
            t.copy_(o)
        self.num_updates += 1
        return tau

    def loss(self, view1: Any, view2: Any) -> torch.Tensor:
        """Symmetric BYOL loss: mean over the batch and both directions of
        ``2 - 2·cos(predictor(online(v1)), target(v2))`` and ``2 - 2·cos(predictor(online(v2)), target(v1))``."""
        p1, p2 = self.predictor(_call(self.online, view1)), self.predictor(_call(self.online, view2))
        with torch.no_grad():
            z1, z2 = _call(self.target, view1), _call(self.target, view2)
        return 0.5 * (self.criterion(p1, z2) + self.criterion(p2, z1))

    def forward(self, view1: Any, view2: Any) -> torch.Tensor:
        return self.loss(view1, view2)

    def encode(self, x: Any) -> torch.Tensor:
        """The online network's output (what downstream models use after pre-training)."""
        return _call(self.online, x)


def _call(module: nn.Module, x: Any) -> torch.Tensor:
    return module(**x) if isinstance(x, Mapping) else module(x)
