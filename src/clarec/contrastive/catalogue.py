"""Losses of a query against the whole item catalogue: next-item prediction's objectives.

:class:`CatalogueSoftmaxLoss` is the full-softmax cross-entropy — InfoNCE where every item of the
catalogue is a negative, so no sample has to be drawn and no false negative from the batch enters —
the loss SASRec-CE and most recent sequential recommenders train with. :class:`SampledBCELoss` is the
original SASRec objective: a logistic loss on the positive and on sampled negatives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clarec.contrastive._reduce import check_reduction, reduce
from clarec.contrastive.temperature import Temperature, as_temperature

__all__ = ["CatalogueSoftmaxLoss", "SampledBCELoss"]


class CatalogueSoftmaxLoss(nn.Module):
    """Cross-entropy of each query's target among every item: ``-log softmax(q·Eᵀ / τ)[target]``.

    Args:
        temperature: a number (fixed τ; 1 is the plain cross-entropy) or a
            :class:`~clarec.contrastive.temperature.Temperature` module.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (one loss per query).

    ``forward(queries (N, d), items (n_items, d), targets (N,))``: dot products, no normalisation.
    """

    def __init__(self, temperature: float | Temperature = 1.0, reduction: str = "mean"):
        super().__init__()
        self.temperature = as_temperature(temperature)
        self.reduction = check_reduction(reduction)

    def forward(self, queries: torch.Tensor, items: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # τ scales the (N, d) queries rather than the (N, n_items) logits: one pass less over the
        # largest tensor of a step, forward and backward (the same numbers at τ = 1)
        logits = (queries / self.temperature.value) @ items.T
        return reduce(F.cross_entropy(logits, targets, reduction="none"), self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class SampledBCELoss(nn.Module):
    """Binary cross-entropy of the positive's score against 1 and each sampled negative's against 0
    (SASRec, Kang and McAuley 2018): ``softplus(-s⁺) + mean_k softplus(s⁻_k)``.

    ``forward(pos_scores (N,), neg_scores (N, n))``; ``reduction`` over the ``N`` queries.
    """

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = check_reduction(reduction)

    def forward(self, pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
        if neg_scores.dim() == 1:
            neg_scores = neg_scores.unsqueeze(-1)
        loss = F.softplus(-pos_scores) + F.softplus(neg_scores).mean(dim=-1)
        return reduce(loss, self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
