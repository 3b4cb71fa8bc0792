"""Alignment and uniformity (Wang & Isola, 2020): how a contrastive embedding space is shaped.

Lower is better for both. Alignment measures how close positive pairs sit; uniformity how evenly the
vectors spread over the unit sphere (0, its maximum, when every vector is the same: collapse). Both
are defined on L2-normalised vectors; the functions normalise their inputs unless ``normalize=False``.
They are differentiable, so they can also be used as losses.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from clarec.errors import ConfigError

__all__ = ["alignment", "uniformity"]


def alignment(x: torch.Tensor, y: torch.Tensor, alpha: float = 2.0, normalize: bool = True) -> torch.Tensor:
    """``L_align = mean_i ‖x_i − y_i‖₂^α`` over positive pairs ``(x_i, y_i)``, both ``(B, d)``.

    With unit vectors and ``α = 2`` this is ``2 − 2·mean cos(x_i, y_i)``, in ``[0, 4]``.
    """
    if x.shape != y.shape:
        raise ValueError(f"alignment needs x and y of the same shape, got {tuple(x.shape)}, {tuple(y.shape)}")
    if normalize:
        x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    return (x - y).norm(dim=-1).pow(alpha).mean()


def uniformity(x: torch.Tensor, t: float = 2.0, normalize: bool = True) -> torch.Tensor:
    """``L_uniform = log mean_{i<j} exp(−t·‖x_i − x_j‖₂²)`` over distinct pairs of rows of ``x (N, d)``.

    0 when all vectors coincide (collapse), more negative as they spread; computed with
    ``logsumexp`` so widely spread vectors do not underflow to ``log 0``.
    """
    if x.dim() != 2 or len(x) < 2:
        raise ConfigError(f"uniformity needs at least two vectors (N >= 2, d), got shape {tuple(x.shape)}")
    if normalize:
        x = F.normalize(x, dim=-1)
    # squared distances from the Gram matrix: unlike pdist(x)**2, differentiable where two rows coincide
    norms = x.pow(2).sum(dim=1)
    sq = (norms[:, None] + norms[None, :] - 2.0 * (x @ x.T)).clamp_min(0.0)
    i, j = torch.triu_indices(len(x), len(x), offset=1, device=x.device)
    sq = sq[i, j]
    return torch.logsumexp(-t * sq, dim=0) - math.log(sq.numel())
