"""What encoder adaptation trains on: the distinct item texts of a data set, augmented views of them,
and pairs of items one user consumed one after the other (the positives of supervised SimCSE)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from clarec.contrastive.augment import IdentityAugment, TextAugment
from clarec.text.templates import item_text

if TYPE_CHECKING:
    from clarec.data.dataset import Dataset

__all__ = ["ItemTexts", "collaborative_pairs", "seeded_sample"]


def collaborative_pairs(ds: Dataset, exclude: np.ndarray | None = None) -> np.ndarray:
    """Distinct pairs of different items consumed one right after the other by the same user in ``ds``.

    Returns an int64 array ``(n, 2)`` with ``a < b`` in every row (a pair is unordered), rows sorted.
    Pass only the training split when the pairs are used for training. ``exclude`` (pairs in the same
    form, e.g. the training pairs) removes those pairs, so held-out pairs are really unseen.
    """
    firsts, seconds = [], []
    for history in ds.user_histories():
        if len(history) > 1:
            firsts.append(history[:-1])
            seconds.append(history[1:])
    return _distinct_pairs(firsts, seconds, exclude)


def crossing_pairs(train: Dataset, valid: Dataset, exclude: np.ndarray | None = None) -> np.ndarray:
    """Each user's last training item paired with their first validation item (the step out of the
    training history), in :func:`collaborative_pairs`' form: the held-out pairs of a split that gives
    each user one validation item (leave-one-out), where ``valid`` alone holds no pair."""
    firsts, seconds = [], []
    for before, after in zip(train.user_histories(), valid.user_histories(), strict=True):
        if len(before) and len(after):
            firsts.append(before[-1:])
            seconds.append(after[:1])
    return _distinct_pairs(firsts, seconds, exclude)


def _distinct_pairs(firsts: list, seconds: list, exclude: np.ndarray | None) -> np.ndarray:
    if not firsts:
        return np.empty((0, 2), dtype=np.int64)
    a, b = np.concatenate(firsts).astype(np.int64), np.concatenate(seconds).astype(np.int64)
    keep = a != b
    pairs = np.stack([np.minimum(a, b)[keep], np.maximum(a, b)[keep]], axis=1)
    pairs = np.unique(pairs, axis=0).reshape(-1, 2)
    if exclude is not None and len(exclude) and len(pairs):
        n = int(max(pairs.max(), np.max(exclude))) + 1
        drop = np.isin(
            pairs[:, 0] * n + pairs[:, 1], np.asarray(exclude)[:, 0] * n + np.asarray(exclude)[:, 1]
        )
        pairs = pairs[~drop]
    return pairs


def seeded_sample(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """All of ``range(n)`` when ``n <= k``, else ``k`` of them drawn without replacement, sorted."""
    return np.arange(n) if n <= k else np.sort(rng.choice(n, size=k, replace=False))


class ItemTexts:
    """Item texts of a dataset, their distinct values, and (for augmentations) the field records.

    Attributes:
        fields: the item fields rendered (:func:`~clarec.text.templates.item_text`).
        texts: one text per item, in item-index order.
        text_id: per item, the index of its text in ``unique`` (items with the same text share one).
        unique: the distinct texts, in order of first appearance.
    """

    def __init__(self, ds: Dataset, fields: Sequence[str]):
        self.fields = [fields] if isinstance(fields, str) else list(fields)
        self.texts = item_text(ds.items, self.fields)
        first: dict[str, int] = {}
        self.text_id = np.array([first.setdefault(t, len(first)) for t in self.texts], dtype=np.int64)
        self.unique = list(first)
        # One item per distinct text: its field values are what an augmentation changes.
        self.representative = np.zeros(len(self.unique), dtype=np.int64)
        self.representative[self.text_id[::-1]] = np.arange(len(self.texts))[::-1]
        present = [f for f in self.fields if f in ds.items.columns]
        self._columns = {f: ds.items[f].tolist() for f in present}

    def record(self, text_id: int) -> dict[str, Any]:
        """The field values behind distinct text ``text_id`` (those of its first item)."""
        item = int(self.representative[text_id])
        return {f: col[item] for f, col in self._columns.items()}

    def views(self, text_ids: np.ndarray, augment: TextAugment, rng: np.random.Generator) -> list[str]:
        """Texts of ``text_ids`` after ``augment`` (applied to the field record, then rendered)."""
        if isinstance(augment, IdentityAugment):
            return [self.unique[int(t)] for t in text_ids]
        out = []
        for t in text_ids:
            record = augment(self.record(int(t)), rng)
            if isinstance(record, str):  # an augmentation that renders text itself
                out.append(record)
            else:
                out.append(item_text(record, list(record) or self.fields)[0] if record else "")
        return out
