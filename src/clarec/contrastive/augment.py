"""Augmentations that make the two views of a contrastive pair.

Text augmentations work on a string or on a record of fields (``dict[str, value]``, e.g. an item's
title, genres and description before a template renders it). Words are whitespace-separated tokens;
an augmented string is re-joined with single spaces. Sequence augmentations (CL4SRec, Xie et al.
2022) work on one unpadded int sequence or on a padded batch ``(B, L)`` (numpy or torch), vectorised
over the batch.

Every augmentation takes an explicit ``numpy.random.Generator``: ``aug(x, rng)``, so the same seed gives
the same views. None returns an empty string or sequence from a non-empty one: at least one word,
field or item is always kept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from clarec.errors import ConfigError

__all__ = [
    "Compose",
    "FieldDropout",
    "FieldShuffle",
    "IdentityAugment",
    "RandomSequenceAugment",
    "SequenceAugment",
    "SequenceCrop",
    "SequenceMask",
    "SequenceInsert",
    "SequenceReorder",
    "SequenceSubstitute",
    "SpanCrop",
    "TextAugment",
    "WordDropout",
]

Text = str | Mapping[str, Any]


def _ratio(name: str, value: float, allow_zero: bool = True) -> float:
    value = float(value)
    lo_ok = value >= 0 if allow_zero else value > 0
    if not (math.isfinite(value) and lo_ok and value <= 1):
        raise ConfigError(f"{name} must be in {'[0, 1]' if allow_zero else '(0, 1]'}, got {value}")
    return value


def _floor(ratio: float, n: np.ndarray | int) -> np.ndarray:
    # the epsilon keeps e.g. 0.29 * 100 = 28.999999999999996 from flooring to 28
    return np.floor(ratio * np.asarray(n, dtype=np.float64) + 1e-9).astype(np.int64)


# ---------------------------------------------------------------------------------------------- text


class TextAugment:
    """Base class of text augmentations: ``aug(text_or_fields, rng)`` returns an augmented copy.

    Word-level augmentations applied to a record change each string field independently and leave
    other values (numbers, lists) as they are.
    """

    def __call__(self, x: Text, rng: np.random.Generator) -> Text:
        if isinstance(x, str):
            return self.augment_text(x, rng)
        if isinstance(x, Mapping):
            return self.augment_fields(x, rng)
        raise TypeError(f"{type(self).__name__} takes a string or a dict of fields, got {type(x).__name__}")

    def augment_text(self, text: str, rng: np.random.Generator) -> str:
        raise NotImplementedError

    def augment_fields(self, fields: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        return {k: self.augment_text(v, rng) if isinstance(v, str) else v for k, v in fields.items()}

    def batch(self, xs: Sequence[Text], rng: np.random.Generator) -> list[Text]:
        """Augment every element (each gets its own random draw)."""
        return [self(x, rng) for x in xs]

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


class IdentityAugment(TextAugment):
    """No change: the SimCSE view. Encoding the same text twice with dropout active (the model in
    train mode) makes the two views differ only by dropout noise (Gao et al., 2021)."""

    def augment_text(self, text: str, rng: np.random.Generator) -> str:
        return text

    def augment_fields(self, fields: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        return dict(fields)


class WordDropout(TextAugment):
    """Drop each word independently with probability ``p``; if all would go, one random word stays."""

    def __init__(self, p: float = 0.1):
        self.p = _ratio("word dropout p", p)

    def augment_text(self, text: str, rng: np.random.Generator) -> str:
        words = text.split()
        if not words:
            return text
        keep = rng.random(len(words)) >= self.p
        if not keep.any():
            keep[rng.integers(len(words))] = True
        return " ".join(w for w, k in zip(words, keep, strict=True) if k)


class SpanCrop(TextAugment):
    """Keep one contiguous span of words.

    For ``n`` words the span length is uniform over ``[max(1, ⌈min_ratio·n⌉), max(that, ⌊max_ratio·n⌋)]``
    and its start uniform over the positions where it fits.
    """

    def __init__(self, min_ratio: float = 0.5, max_ratio: float = 1.0):
        self.min_ratio = _ratio("span crop min_ratio", min_ratio)
        self.max_ratio = _ratio("span crop max_ratio", max_ratio)
        if self.min_ratio > self.max_ratio:
            raise ConfigError(f"span crop: min_ratio {min_ratio} > max_ratio {max_ratio}")

    def span_bounds(self, n: int) -> tuple[int, int]:
        """Smallest and largest span length (inclusive) for ``n`` words."""
        lo = max(1, math.ceil(self.min_ratio * n - 1e-9))
        return lo, max(lo, int(_floor(self.max_ratio, n)))

    def augment_text(self, text: str, rng: np.random.Generator) -> str:
        words = text.split()
        if not words:
            return text
        lo, hi = self.span_bounds(len(words))
        length = int(rng.integers(lo, hi + 1))
        start = int(rng.integers(0, len(words) - length + 1))
        return " ".join(words[start : start + length])


class FieldDropout(TextAugment):
    """Drop each field of a record with probability ``p``, never those in ``keep``; at least one
    non-empty field always stays (a random one, if all would go)."""

    def __init__(self, p: float = 0.2, keep: Sequence[str] = ()):
        self.p = _ratio("field dropout p", p)
        self.keep = tuple(keep)

    def augment_text(self, text: str, rng: np.random.Generator) -> str:
        raise TypeError("FieldDropout works on a dict of fields, not on a string")

    def augment_fields(self, fields: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        names = list(fields)
        if not names:
            return {}
        kept = (rng.random(len(names)) >= self.p) | np.isin(names, self.keep)
        if not any(k and _present(fields[n]) for n, k in zip(names, kept, strict=True)):
            candidates = [i for i, n in enumerate(names) if _present(fields[n])] or list(range(len(names)))
            kept[candidates[int(rng.integers(len(candidates)))]] = True
        return {n: fields[n] for n, k in zip(names, kept, strict=True) if k}


class FieldShuffle(TextAugment):
    """Put a record's fields in a random order (a template then renders them in that order)."""

    def augment_text(self, text: str, rng: np.random.Generator) -> str:
        raise TypeError("FieldShuffle works on a dict of fields, not on a string")

    def augment_fields(self, fields: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        names = list(fields)
        return {names[i]: fields[names[i]] for i in rng.permutation(len(names))}


class Compose(TextAugment):
    """Apply augmentations one after another, e.g. ``Compose([FieldShuffle(), WordDropout(0.1)])``."""

    def __init__(self, augments: Sequence[TextAugment]):
        self.augments = list(augments)

    def __call__(self, x: Text, rng: np.random.Generator) -> Text:
        for aug in self.augments:
            x = aug(x, rng)
        return x


def _present(value: Any) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return not (isinstance(value, str | list | tuple | dict) and len(value) == 0)


# ------------------------------------------------------------------------------------------ sequences

Sequences = np.ndarray | torch.Tensor | Sequence[int]


def _random_subset(n: np.ndarray, width: int, count: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(B, width)`` mask of ``count[i]`` positions drawn uniformly among row ``i``'s first ``n[i]``:
    the ``count`` smallest of i.i.d. uniform keys."""
    pos = np.arange(width)[None, :]
    keys = np.where(pos < n[:, None], rng.random((len(n), width)), np.inf)
    rank = np.argsort(np.argsort(keys, axis=1, kind="stable"), axis=1, kind="stable")
    return rank < count[:, None]


class SequenceAugment:
    """Base class of item-sequence augmentations.

    ``aug(seq, rng)`` with a 1-D unpadded sequence returns a 1-D numpy array; with a padded batch
    ``(B, L)`` (numpy array or torch tensor) it returns the same type and shape, padded the same way.
    A padded row's length is its number of entries different from ``pad_token``, or ``lengths[i]``
    when ``lengths`` is given. Item order is oldest → newest along each row.

    Args:
        pad_token: the padding value in batches (must not be a real item).
        padding_side: ``"left"`` (items right-aligned, as SASRec-style models read them) or ``"right"``.
    """

    #: how many times its length an unpadded sequence may grow by (insertions)
    growth = 0

    def __init__(self, pad_token: int = 0, padding_side: str = "left"):
        if padding_side not in ("left", "right"):
            raise ConfigError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        self.pad_token, self.padding_side = int(pad_token), padding_side

    def __call__(self, seqs: Sequences, rng: np.random.Generator, lengths: Sequences | None = None) -> Any:
        if isinstance(seqs, torch.Tensor):
            lens = None if lengths is None else np.asarray(torch.as_tensor(lengths).cpu())
            out = self._batch(seqs.detach().cpu().numpy(), rng, lens)
            return torch.from_numpy(out).to(device=seqs.device, dtype=seqs.dtype)
        arr = np.asarray(seqs)
        if arr.ndim == 1:
            # room for a view longer than the sequence (insertions)
            padded = np.concatenate([arr, np.full(len(arr) * self.growth, self.pad_token, dtype=arr.dtype)])[
                None
            ]
            out = self._apply(padded, np.array([len(arr)]), np.zeros(1, dtype=np.int64), rng)
            return out[0][0, : out[1][0]]
        if arr.ndim != 2:
            raise ValueError(
                f"{type(self).__name__} takes a 1-D sequence or a (B, L) batch, got shape {arr.shape}"
            )
        return self._batch(arr, rng, None if lengths is None else np.asarray(lengths))

    def _batch(self, arr: np.ndarray, rng: np.random.Generator, lengths: np.ndarray | None) -> np.ndarray:
        width = arr.shape[1]
        n = (arr != self.pad_token).sum(axis=1) if lengths is None else lengths.astype(np.int64)
        if np.any(n < 0) or np.any(n > width):
            raise ValueError("sequence lengths must be within [0, L]")
        values, out_len = self._apply(arr, n, self._offsets(width, n), rng)
        return self._place(values, out_len, width, arr.dtype)

    def _offsets(self, width: int, n: np.ndarray) -> np.ndarray:
        return (width - n) if self.padding_side == "left" else np.zeros_like(n)

    def _apply(
        self, arr: np.ndarray, n: np.ndarray, offset: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Returns ``(values, out_len)``: row ``i``'s new sequence is ``values[i, :out_len[i]]``."""
        raise NotImplementedError

    def _place(self, values: np.ndarray, out_len: np.ndarray, width: int, dtype: np.dtype) -> np.ndarray:
        pos = np.arange(width)[None, :]
        out = np.full((len(values), width), self.pad_token, dtype=dtype)
        if self.padding_side == "right":
            valid = pos < out_len[:, None]
            out[valid] = values[valid]
        else:
            shift = (width - out_len)[:, None]
            valid = pos >= shift
            src = np.clip(pos - shift, 0, width - 1)
            out[valid] = np.take_along_axis(values, src, axis=1)[valid]
        return out

    @staticmethod
    def _gather(arr: np.ndarray, offset: np.ndarray, seq_pos: np.ndarray) -> np.ndarray:
        """``arr[i, offset[i] + seq_pos[i, p]]`` (positions clipped into the row; callers mask)."""
        cols = np.clip(offset[:, None] + seq_pos, 0, arr.shape[1] - 1)
        return np.take_along_axis(arr, cols, axis=1)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


class SequenceCrop(SequenceAugment):
    """Keep a random contiguous sub-sequence of ``max(1, ⌊ratio·n⌋)`` items (CL4SRec's item crop, η)."""

    def __init__(self, ratio: float = 0.6, pad_token: int = 0, padding_side: str = "left"):
        super().__init__(pad_token, padding_side)
        self.ratio = _ratio("crop ratio", ratio, allow_zero=False)

    def _apply(self, arr, n, offset, rng):
        crop = np.where(n > 0, np.maximum(1, _floor(self.ratio, n)), 0)
        start = np.floor(rng.random(len(n)) * (n - crop + 1)).astype(np.int64)
        seq_pos = start[:, None] + np.arange(arr.shape[1])[None, :]
        return self._gather(arr, offset, seq_pos), crop


class SequenceMask(SequenceAugment):
    """Replace ``min(⌊ratio·n⌋, n − 1)`` random items by ``mask_token`` (CL4SRec's item mask, γ);
    at least one real item stays unmasked."""

    def __init__(self, ratio: float, mask_token: int, pad_token: int = 0, padding_side: str = "left"):
        super().__init__(pad_token, padding_side)
        self.ratio = _ratio("mask ratio", ratio)
        self.mask_token = int(mask_token)
        if self.mask_token == self.pad_token:
            raise ConfigError("mask_token must differ from pad_token")

    def _apply(self, arr, n, offset, rng):
        width = arr.shape[1]
        pos = np.arange(width)[None, :]
        n_mask = np.minimum(_floor(self.ratio, n), np.maximum(n - 1, 0))
        values = self._gather(arr, offset, np.broadcast_to(pos, arr.shape))
        values = np.where(_random_subset(n, width, n_mask, rng), self.mask_token, values)
        return values, n


class SequenceReorder(SequenceAugment):
    """Shuffle a random contiguous window of ``⌊ratio·n⌋`` items (CL4SRec's item reorder, β)."""

    def __init__(self, ratio: float = 0.3, pad_token: int = 0, padding_side: str = "left"):
        super().__init__(pad_token, padding_side)
        self.ratio = _ratio("reorder ratio", ratio)

    def _apply(self, arr, n, offset, rng):
        width = arr.shape[1]
        pos = np.arange(width)[None, :].astype(np.float64)
        size = _floor(self.ratio, n)
        start = np.floor(rng.random(len(n)) * (n - size + 1))[:, None]
        inside = (pos >= start) & (pos < start + size[:, None])
        # keys inside the window are random but stay within [start, start + size), so sorting the keys
        # permutes the window and leaves every other position where it is
        keys = np.where(inside, start + rng.random((len(n), width)) * size[:, None], pos)
        seq_pos = np.argsort(keys, axis=1, kind="stable")
        return self._gather(arr, offset, seq_pos), n


def _similar_table(similar: Sequences, pad_token: int) -> np.ndarray:
    table = np.asarray(similar, dtype=np.int64)
    if table.ndim != 1 or not len(table):
        raise ConfigError("similar must be a 1-D table: token -> a correlated token")
    if not 0 <= pad_token < len(table) or table[pad_token] != pad_token:
        raise ConfigError("similar must map pad_token to itself")
    if table.min() < 0 or table.max() >= len(table):
        raise ConfigError(f"similar holds tokens outside [0, {len(table)})")
    to_pad = np.flatnonzero(table == pad_token)
    if len(to_pad) > 1:  # an item replaced by padding would empty the sequence
        first = int(to_pad[to_pad != pad_token][0])
        raise ConfigError(
            f"similar maps item {first} to the pad token; map an item without a similar one to itself"
        )
    return table


class _CorrelatedAugment(SequenceAugment):
    """Base of the augmentations that bring in correlated items (CoSeRec).

    Args:
        ratio: share of the items acted on (at least one).
        similar: a table ``token → correlated token`` over every token of the batches (e.g. each
            item's most co-occurring other item; ``similar[pad_token] = pad_token``).
    """

    action = ""

    def __init__(self, ratio: float, similar: Sequences, pad_token: int = 0, padding_side: str = "left"):
        super().__init__(pad_token, padding_side)
        self.ratio = _ratio(f"{self.action} ratio", ratio, allow_zero=False)
        self.similar = _similar_table(similar, self.pad_token)


class SequenceSubstitute(_CorrelatedAugment):
    """Replace ``max(1, ⌊ratio·n⌋)`` random items by a correlated item, ``similar[item]`` (CoSeRec's
    substitute): the view keeps the sequence's length and order, with some items swapped for ones
    users take together with them. Args: :class:`_CorrelatedAugment`."""

    action = "substitute"

    def _apply(self, arr, n, offset, rng):
        width = arr.shape[1]
        pos = np.arange(width)[None, :]
        count = np.where(n > 0, np.maximum(1, _floor(self.ratio, n)), 0)
        values = self._gather(arr, offset, np.broadcast_to(pos, arr.shape))
        chosen = _random_subset(n, width, count, rng)
        values = np.where(chosen, self.similar[np.clip(values, 0, len(self.similar) - 1)], values)
        return values, n


class SequenceInsert(_CorrelatedAugment):
    """Before each of ``max(1, ⌊ratio·n⌋)`` random items, insert a correlated item ``similar[item]``
    (CoSeRec's insert); a batch row that grows past its width keeps its most recent items.
    Args: :class:`_CorrelatedAugment`."""

    action = "insert"
    growth = 1

    def _apply(self, arr, n, offset, rng):
        width = arr.shape[1]
        pos = np.arange(width)[None, :]
        rows = np.arange(len(n))[:, None]
        count = np.where(n > 0, np.maximum(1, _floor(self.ratio, n)), 0)
        chosen = _random_subset(n, width, count, rng)
        items = self._gather(arr, offset, np.broadcast_to(pos, arr.shape))
        real = pos < n[:, None]
        # item p moves right by the number of insertions at or before it; its insertion goes just before
        moved = pos + np.cumsum(chosen, axis=1)
        grown = n + count
        drop = np.maximum(grown - width, 0)[:, None]  # the oldest items that no longer fit
        out = np.full((len(n), 2 * width), self.pad_token, dtype=arr.dtype)
        out[np.broadcast_to(rows, arr.shape)[real], (moved - drop)[real] % (2 * width)] = items[real]
        ins = real & chosen
        out[np.broadcast_to(rows, arr.shape)[ins], (moved - 1 - drop)[ins] % (2 * width)] = self.similar[
            np.clip(items[ins], 0, len(self.similar) - 1)
        ]
        return out[:, :width], np.minimum(grown, width)


class RandomSequenceAugment(SequenceAugment):
    """Apply one augmentation per sequence, chosen at random (with probabilities ``p``, default
    uniform), as CL4SRec does for each view. All members must share padding settings."""

    def __init__(self, augments: Sequence[SequenceAugment], p: Sequence[float] | None = None):
        augments = list(augments)
        if not augments:
            raise ConfigError("RandomSequenceAugment needs at least one augmentation")
        first = augments[0]
        if any((a.pad_token, a.padding_side) != (first.pad_token, first.padding_side) for a in augments):
            raise ConfigError("all augmentations must use the same pad_token and padding_side")
        super().__init__(first.pad_token, first.padding_side)
        self.augments = augments
        self.growth = max(a.growth for a in augments)  # a 1-D sequence has room for an insertion
        probs = np.full(len(augments), 1.0 / len(augments)) if p is None else np.asarray(p, dtype=np.float64)
        if probs.shape != (len(augments),) or np.any(probs < 0) or not np.isclose(probs.sum(), 1.0):
            raise ConfigError("p must give one non-negative probability per augmentation, summing to 1")
        self.p = probs

    def _apply(self, arr, n, offset, rng):
        choice = rng.choice(len(self.augments), size=len(n), p=self.p)
        values = np.empty_like(arr)
        out_len = np.empty_like(n)
        # each member runs on the whole batch (vectorised) and rows keep their chosen member's output
        for k, aug in enumerate(self.augments):
            v, length = aug._apply(arr, n, offset, rng)
            rows = choice == k
            values[rows], out_len[rows] = v[rows], length[rows]
        return values, out_len
