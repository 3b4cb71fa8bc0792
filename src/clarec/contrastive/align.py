"""Alignment of collaborative-filtering embeddings with language-model vectors (in the spirit of
RLMRec, Ren et al., WWW 2024).

A CF model learns one vector per user and item from interactions alone; a language model gives each of
them a vector of its text. :class:`LMAlignment` is the auxiliary loss that ties the two spaces
together, in one of two directions:

- ``"contrastive"``: the LM vector goes through a projection head into the CF space, and InfoNCE
  (cosine, temperature ``τ``, the other rows of the batch as negatives, both directions) pulls each
  CF vector towards the projection of its own text and away from the others';
- ``"generative"``: the CF vector goes through a head into the LM space and must reconstruct its own
  LM vector (``1 - cos``), so the CF vector has to carry what the text says.

The head is linear, or a one-hidden-layer MLP (GELU) with ``hidden > 0``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clarec.contrastive.infonce import InfoNCELoss
from clarec.errors import ConfigError

ALIGN_MODES = ("contrastive", "generative")


def _head(d_in: int, d_out: int, hidden: int) -> nn.Module:
    if hidden <= 0:
        return nn.Linear(d_in, d_out)
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))


class LMAlignment(nn.Module):
    """The alignment loss between paired rows of CF vectors ``(B, cf_dim)`` and LM vectors
    ``(B, lm_dim)``.

    Args:
        lm_dim: size of the language-model vectors.
        cf_dim: size of the CF vectors.
        mode: ``"contrastive"`` (LM → CF projection, InfoNCE) or ``"generative"`` (CF → LM, cosine
            reconstruction).
        temperature: InfoNCE temperature (``"contrastive"`` only).
        hidden: hidden width of the head; ``0`` for a linear head.
    """

    def __init__(
        self, lm_dim: int, cf_dim: int, mode: str = "contrastive", temperature: float = 0.2, hidden: int = 0
    ):
        super().__init__()
        if mode not in ALIGN_MODES:
            raise ConfigError(f"align: mode must be one of {list(ALIGN_MODES)}, got {mode!r}")
        if not float(temperature) > 0:
            raise ConfigError(f"align: temperature must be > 0, got {temperature}")
        if int(hidden) < 0:
            raise ConfigError(f"align: hidden must be >= 0, got {hidden}")
        self.mode = mode
        if mode == "contrastive":
            self.head = _head(lm_dim, cf_dim, int(hidden))
            self.infonce = InfoNCELoss(temperature=float(temperature), symmetric=True, mask_duplicates=False)
        else:
            self.head = _head(cf_dim, lm_dim, int(hidden))

    def forward(self, cf: torch.Tensor, lm: torch.Tensor) -> torch.Tensor:
        """Mean loss over the rows; row ``i`` of ``cf`` and ``lm`` describe the same user or item."""
        if self.mode == "contrastive":
            return self.infonce(cf, self.head(lm))
        return (1.0 - F.cosine_similarity(self.head(cf), lm, dim=-1)).mean()
