"""DuoRec: contrastive regularisation of a sequential model with model-level (dropout) views and
supervised positives (Qiu et al., WSDM 2022)."""

from __future__ import annotations

import numpy as np
import torch

from clarec.errors import ConfigError
from clarec.models.params import param
from clarec.models.registry import register
from clarec.models.sequential._base import ContrastiveSequential, left_pad


@register("duorec")
class DuoRec(ContrastiveSequential):
    """Next-item loss plus InfoNCE terms on the state after each training sequence:

    - ``unsupervised``: the same sequence encoded a second time, dropout being the only
      augmentation (no item is cropped or masked, so the view keeps the sequence's meaning);
    - ``supervised``: another training sequence with the same next item (drawn at random; the
      sequence itself when it is the only one), its most recent items up to the batch's width.

    Sequences of the batch with the same next item are not negatives of each other (false
    negatives masked). Each term pairs the sequence's own state with its view, the negatives being
    the other sequences' views (cross-view InfoNCE); the authors' code in its default setting
    (``us_x``) contrasts the dropout view with the same-target view instead, and draws negatives
    from both views (NT-Xent). Other hyper-parameters:
    :class:`~clarec.models.sequential._base.ContrastiveSequential`.
    """

    unsupervised = param(True)
    supervised = param(True)

    def _check_params(self) -> None:
        super()._check_params()
        if not (self.unsupervised or self.supervised):
            raise ConfigError(f"{self.name}: set unsupervised, supervised or both")

    def _fit(self, train, valid) -> None:
        try:
            super()._fit(train, valid)
        finally:
            self.__dict__.pop("_groups", None)

    def _same_target(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The training windows sorted by their last item, and per window: its place in that order,
        where its group of windows with the same last item starts, and the group's size."""
        if getattr(self, "_groups", (None,))[0] is not self._windows:
            last = np.array([w[-1] for w in self._windows])
            order = np.argsort(last, kind="stable")
            _, start, size = np.unique(last[order], return_index=True, return_counts=True)
            group = np.empty(len(last), dtype=np.int64)
            group[order] = np.repeat(np.arange(len(start)), size)
            place = np.empty(len(last), dtype=np.int64)
            place[order] = np.arange(len(last))
            self._groups = (self._windows, order, place, start[group], size[group])
        return self._groups[1:]

    def _positives(self, rows: np.ndarray) -> np.ndarray:
        """For each window, another window with the same last item at random (itself when alone)."""
        order, place, start, size = self._same_target()
        size, place = size[rows], place[rows]
        offset = np.floor(self._rng.random(len(rows)) * np.maximum(size - 1, 1)).astype(np.int64)
        pick = start[rows] + offset
        pick = np.where(size > 1, pick + (pick >= place), place)  # skip the window itself
        return order[pick]

    def _extra_loss(self, rows: np.ndarray, seq: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        inputs, targets = seq[:, :-1], seq[:, -1]
        anchor = states[:, -1]
        loss = torch.zeros(())
        if self.unsupervised:
            loss = loss + self._contrast(anchor, self.module_.last(inputs), targets)
        if self.supervised:
            # the positive's most recent items, as many as the batch's width: a long positive would
            # otherwise cost a full-length pass for every batch
            others = [self._windows[i][:-1] for i in self._positives(rows)]
            other = torch.from_numpy(left_pad(others, inputs.shape[1])).to(inputs.device)
            loss = loss + self._contrast(anchor, self.module_.last(other), targets)
        return loss
