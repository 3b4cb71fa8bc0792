"""All losses of :mod:`clarec.contrastive` in one namespace, one ``nn.Module`` per loss.

Each loss lives in its own module (``infonce``, ``byol``, ``bpr``, ``catalogue``, ``align``; diagnostics in
``diagnostics``) and
takes its hyper-parameters in the constructor, keeping ``forward`` short, so models compose losses
instead of re-writing them. ``from clarec.contrastive.losses import BPRLoss`` keeps working.
"""

from __future__ import annotations

from clarec.contrastive.align import LMAlignment
from clarec.contrastive.bpr import BPRLoss, DotProductBPRLoss
from clarec.contrastive.byol import BYOL, BYOLLoss
from clarec.contrastive.catalogue import CatalogueSoftmaxLoss, SampledBCELoss
from clarec.contrastive.diagnostics import alignment, uniformity
from clarec.contrastive.infonce import InfoNCELoss

__all__ = [
    "BPRLoss",
    "BYOL",
    "BYOLLoss",
    "CatalogueSoftmaxLoss",
    "DotProductBPRLoss",
    "InfoNCELoss",
    "LMAlignment",
    "SampledBCELoss",
    "alignment",
    "uniformity",
]
