"""CL4SRec: SASRec with a contrastive term between two augmented views of each sequence
(Xie et al., ICDE 2022)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from clarec.contrastive.augment import (
    RandomSequenceAugment,
    SequenceCrop,
    SequenceInsert,
    SequenceMask,
    SequenceReorder,
    SequenceSubstitute,
)
from clarec.errors import ConfigError
from clarec.models.params import param, text_list
from clarec.models.registry import register
from clarec.models.sequential._base import ContrastiveSequential

AUGMENTATIONS = ("crop", "mask", "reorder", "insert", "substitute")


@register("cl4srec")
class CL4SRec(ContrastiveSequential):
    """Next-item loss plus InfoNCE between two views of each training sequence, each made by one
    augmentation drawn at random from ``augmentations`` (:mod:`clarec.contrastive.augment`): ``crop``
    (a random contiguous ``crop_ratio`` of the items), ``mask`` (``mask_ratio`` of the items replaced by
    a learned mask token), ``reorder`` (a random window of ``reorder_ratio`` of the items shuffled),
    and CoSeRec's ``insert`` (before ``insert_ratio`` of the items, the item most correlated with
    it) and ``substitute`` (``substitute_ratio`` of the items replaced by their most correlated
    item), correlation being the cosine of the items' training user sets (item-based CF). The
    default augmentations and ratios are those of the CL4SRec/ICLRec code (0.2, 0.7, 0.2); the insert
    and substitute ratios those of CoSeRec's (0.4, 0.1). The negatives of a view are the other
    sequences' other views (cross-view InfoNCE, both directions), where the paper's NT-Xent also
    counts the same view's other sequences.

    Other hyper-parameters: :class:`~clarec.models.sequential._base.ContrastiveSequential`.
    """

    augmentations = param(["crop", "mask", "reorder"], text_list)
    crop_ratio = param(0.2, gt=0, le=1)
    mask_ratio = param(0.7, ge=0, le=1)
    reorder_ratio = param(0.2, ge=0, le=1)
    insert_ratio = param(0.4, gt=0, le=1)
    substitute_ratio = param(0.1, gt=0, le=1)
    extra_tokens = 1  # the mask token, index n_items + 1 in the encoder's input

    def _check_params(self) -> None:
        super()._check_params()
        unknown = sorted(set(self.augmentations) - set(AUGMENTATIONS))
        if unknown or not self.augmentations:
            raise ConfigError(
                f"{self.name}: augmentations must be some of {list(AUGMENTATIONS)}, got {unknown}"
            )

    def _fit(self, train, valid) -> None:
        if {"insert", "substitute"} & set(self.augmentations):
            self._similar = most_similar_tokens(train.to_csr(), extra_tokens=self.extra_tokens)
        try:
            super()._fit(train, valid)
        finally:
            self.__dict__.pop("_similar", None)

    def _augment(self) -> RandomSequenceAugment:
        made = {
            "crop": lambda: SequenceCrop(self.crop_ratio),
            "mask": lambda: SequenceMask(self.mask_ratio, mask_token=self.n_items + 1),
            "reorder": lambda: SequenceReorder(self.reorder_ratio),
            "insert": lambda: SequenceInsert(self.insert_ratio, self._similar),
            "substitute": lambda: SequenceSubstitute(self.substitute_ratio, self._similar),
        }
        return RandomSequenceAugment([made[a]() for a in self.augmentations])

    def _extra_loss(self, rows: np.ndarray, seq: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        inputs = seq[:, :-1]
        augment = self._augment()
        views = [self.module_.last(augment(inputs, self._rng)) for _ in range(2)]
        return self._contrast(*views)


def most_similar_tokens(user_items: sp.csr_matrix, extra_tokens: int = 0) -> np.ndarray:
    """The sequence-token table ``token → most correlated token`` (tokens: 0 padding, item ``i`` as
    ``i + 1``, then ``extra_tokens`` special ones, each mapped to itself): each item's other item with
    the highest cosine between their sets of training users; an item that shares no user with
    another maps to itself."""
    x = sp.csr_matrix(user_items, dtype=np.float64)
    x.data[:] = 1.0
    n_items = x.shape[1]
    norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel())
    co = (x.T @ x).tocsr()
    co.setdiag(0)
    co.eliminate_zeros()
    rows = np.repeat(np.arange(n_items), np.diff(co.indptr))
    co.data = co.data / (norms[rows] * norms[co.indices])
    best = np.arange(n_items)
    has = np.diff(co.indptr) > 0
    best[has] = np.asarray(co[has].argmax(axis=1)).ravel()
    return np.concatenate([[0], best + 1, np.arange(n_items + 1, n_items + 1 + extra_tokens)])
