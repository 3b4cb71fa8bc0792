"""What the two-tower model reads from the data besides the encoder's vectors: centred LM vectors,
the bag-of-words channel of the item text, and the users' training sequences with the histories of
the training examples drawn from them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from clarec.models._lm import recent_positions

#: A word in more than this share of the items with interactions (template labels, "the") is dropped.
_TOKEN_MAX_DF = 0.5


def centring(vectors: np.ndarray) -> tuple[np.ndarray, float]:
    """Mean vector and scale that :func:`centre` applies (kept so items added later are centred alike)."""
    v = np.asarray(vectors, dtype=np.float64)
    if len(v) == 0:
        return np.zeros(v.shape[1:], dtype=np.float64), 1.0
    mean = v.mean(axis=0)
    scale = float(np.linalg.norm(v - mean, axis=1).mean())
    return mean, (scale if scale > 1e-12 else 1.0)


def centre(vectors: np.ndarray, stats: tuple[np.ndarray, float] | None = None) -> np.ndarray:
    """Sentence vectors minus their mean, scaled to unit mean length (``stats``: a stored :func:`centring`).

    Sentence vectors of one catalogue share a large common direction (cosines of 0.3-0.6 between
    unrelated movies); removing it lets the projection separate items from the first step instead of
    spending its early training undoing it. Uses only item text, never interactions.
    """
    mean, scale = centring(vectors) if stats is None else stats
    return ((np.asarray(vectors, dtype=np.float64) - mean) / scale).astype(np.float32)


class UserSequences(NamedTuple):
    """Training interactions sorted by (user, time): user ``u``'s are positions ``starts[u]:ends[u]``
    of ``users`` / ``items`` (example ``j`` predicts ``items[j]`` for ``users[j]``)."""

    users: np.ndarray
    items: np.ndarray
    starts: np.ndarray
    ends: np.ndarray


def user_sequences(interactions: pd.DataFrame, n_users: int) -> UserSequences:
    """The interactions (columns ``user``, ``item``, ``timestamp``) as :class:`UserSequences`."""
    df = interactions.sort_values(["user", "timestamp"], kind="stable")
    users = df["user"].to_numpy().astype(np.int64)
    items = df["item"].to_numpy().astype(np.int64)
    starts = np.searchsorted(users, np.arange(n_users), side="left")
    ends = np.searchsorted(users, np.arange(n_users), side="right")
    return UserSequences(users, items, starts, ends)


def example_histories(
    rows: np.ndarray,
    ex_user: np.ndarray,
    ex_item: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    max_history: int,
    mode: str = "past",
) -> tuple[np.ndarray, np.ndarray]:
    """Input histories of training examples ``rows``: ``(items, valid)``, each ``(len(rows), max_history)``,
    most recent first.

    ``ex_user``/``ex_item`` are the training interactions sorted by user then time, and user ``u``'s
    interactions are positions ``starts[u]:ends[u]``; example ``j`` predicts ``ex_item[j]``. With
    ``mode="past"`` its history is the user's interactions before position ``j``; with ``"all"`` every
    other interaction of the user. Position ``j`` itself is never part of its own history.
    """
    users = ex_user[rows]
    if mode == "past":
        pos, ok = recent_positions(starts[users], rows, max_history)
    else:
        pos, ok = recent_positions(starts[users], ends[users], max_history, skip=rows)
    return ex_item[pos], ok


def _unique_items(items: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(items, return_inverse=True)`` for indices below ``n_items``, by a presence mask
    (linear time; a training step gathers tens of thousands of indices)."""
    present = np.zeros(n_items, dtype=bool)
    present[items] = True
    position = np.cumsum(present) - 1
    return np.flatnonzero(present), position[items]


def fit_tokens(texts: Sequence[str], warm: np.ndarray) -> tuple[np.ndarray, sp.csr_matrix]:
    """Vocabulary of the words shared by at least two items with training interactions (``warm``), and
    the binary item × word matrix of every item. Words only cold items have would keep an untrained
    random vector, so they are left out."""
    from sklearn.feature_extraction.text import CountVectorizer

    warm_texts = [t for t, w in zip(texts, warm, strict=True) if w]
    vectorizer = CountVectorizer(binary=True, min_df=2, max_df=_TOKEN_MAX_DF, dtype=np.float32)
    try:
        vectorizer.fit(warm_texts)
    except ValueError:  # no word shared by two items: the channel stays empty
        return np.empty(0, dtype=str), sp.csr_matrix((len(texts), 0), dtype=np.float32)
    vocab = vectorizer.get_feature_names_out().astype(str)
    return vocab, item_tokens(texts, vocab)


def item_tokens(texts: Sequence[str], vocab: np.ndarray) -> sp.csr_matrix:
    """Binary item × word matrix of ``texts`` over a fixed ``vocab`` (other words ignored)."""
    from sklearn.feature_extraction.text import CountVectorizer

    if len(vocab) == 0:
        return sp.csr_matrix((len(texts), 0), dtype=np.float32)
    vectorizer = CountVectorizer(binary=True, vocabulary=list(vocab), dtype=np.float32)
    return sp.csr_matrix(vectorizer.transform(list(texts)))


def token_bags(
    tokens: sp.csr_matrix | None, items: np.ndarray, drop: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """``items``' words (rows of the item × word matrix ``tokens``) as EmbeddingBag input with mean
    weights; ``drop`` (training) drops a share of the words (torch's generator, so the model's seed
    governs it). ``None`` without words."""
    if tokens is None or tokens.shape[1] == 0:
        return None
    sub = tokens[np.asarray(items, dtype=np.int64)]
    idx = torch.from_numpy(sub.indices.astype(np.int64))
    rows = torch.repeat_interleave(torch.arange(len(items)), torch.from_numpy(np.diff(sub.indptr)))
    if drop > 0 and len(idx):
        keep = torch.rand(len(idx)) >= drop
        idx, rows = idx[keep], rows[keep]
    counts = torch.bincount(rows, minlength=len(items))
    offsets = torch.cumsum(counts, 0) - counts
    weights = 1.0 / counts[rows].to(torch.float32)
    return idx, offsets, weights
