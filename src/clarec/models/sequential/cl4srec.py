"""CL4SRec: SASRec with a contrastive term between two augmented views of each sequence
(Xie et al., ICDE 2022)."""

from __future__ import annotations

import numpy as np
import torch

from clarec.contrastive.augment import RandomSequenceAugment, SequenceCrop, SequenceMask, SequenceReorder
from clarec.errors import ConfigError
from clarec.models.params import param, text_list
from clarec.models.registry import register
from clarec.models.sequential._base import ContrastiveSequential

AUGMENTATIONS = ("crop", "mask", "reorder")


@register("cl4srec")
class CL4SRec(ContrastiveSequential):
    """Next-item loss plus InfoNCE between two views of each training sequence, each made by one
    augmentation drawn at random from ``augmentations`` (:mod:`clarec.contrastive.augment`): ``crop``
    (a random contiguous ``crop_ratio`` of the items), ``mask`` (``mask_ratio`` of the items replaced by
    a learned mask token), ``reorder`` (a random window of ``reorder_ratio`` of the items shuffled).
    The defaults are the ratios of the CL4SRec/ICLRec code (0.2, 0.7, 0.2).

    Other hyper-parameters: :class:`~clarec.models.sequential._base.ContrastiveSequential`.
    """

    augmentations = param(list(AUGMENTATIONS), text_list)
    crop_ratio = param(0.2, gt=0, le=1)
    mask_ratio = param(0.7, ge=0, le=1)
    reorder_ratio = param(0.2, ge=0, le=1)
    extra_tokens = 1  # the mask token, index n_items + 1 in the encoder's input

    def _check_params(self) -> None:
        super()._check_params()
        unknown = sorted(set(self.augmentations) - set(AUGMENTATIONS))
        if unknown or not self.augmentations:
            raise ConfigError(
                f"{self.name}: augmentations must be some of {list(AUGMENTATIONS)}, got {unknown}"
            )

    def _augment(self) -> RandomSequenceAugment:
        made = {
            "crop": lambda: SequenceCrop(self.crop_ratio),
            "mask": lambda: SequenceMask(self.mask_ratio, mask_token=self.n_items + 1),
            "reorder": lambda: SequenceReorder(self.reorder_ratio),
        }
        return RandomSequenceAugment([made[a]() for a in self.augmentations])

    def _extra_loss(self, rows: np.ndarray, seq: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        inputs = seq[:, :-1]
        augment = self._augment()
        views = [self.module_.last(augment(inputs, self._rng)) for _ in range(2)]
        return self._contrast(*views)
