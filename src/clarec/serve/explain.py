"""Why an item is recommended: the history items that contribute most, and what they share with it.

A contribution is the model's own item-to-item term: ``S[h, j]`` for ``itemknn`` (a score is
``Σ_h S[h, j]``), ``B[h, j]`` for ``ease``, the cosine of item vectors for embedding and text models
(``Recommender.item_similarity``). Shared attributes come from the item table: list fields (genres,
categories, tags; ``"a|b"`` strings are split as MovieLens writes them) and single values (brand).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from clarec.models.base import Recommender

#: Item-table columns compared for shared attributes, in display order.
ATTRIBUTE_FIELDS: tuple[str, ...] = ("genres", "categories", "category", "tags", "brand")
LIST_FIELDS = frozenset({"genres", "categories", "category", "tags"})


def item_attributes(row: pd.Series | dict, fields: Sequence[str] = ATTRIBUTE_FIELDS) -> dict[str, set[str]]:
    """The attribute values of one item-table row, as sets per field (missing fields left out, and a
    field that repeats an earlier one's values: MovieLens' ``categories`` copy its ``genres``)."""
    out: dict[str, set[str]] = {}
    for f in fields:
        v = row.get(f) if hasattr(row, "get") else None
        values = _values(v, split=f in LIST_FIELDS)
        if values and values not in out.values():
            out[f] = values
    return out


def _values(v: Any, split: bool) -> set[str]:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return set()
    if isinstance(v, str):
        parts = v.split("|") if split else [v]
        return {p.strip() for p in parts if p.strip()}
    if isinstance(v, list | tuple | np.ndarray | pd.Series):
        return {str(x).strip() for x in v if str(x).strip()}
    return {str(v)}


def shared_attributes(a: dict[str, set[str]], b: dict[str, set[str]]) -> dict[str, list[str]]:
    """Values two items have in common, per field (fields with none left out)."""
    return {f: sorted(a[f] & b[f]) for f in a if f in b and a[f] & b[f]}


def contributions(model: Recommender, history: np.ndarray, items: np.ndarray) -> np.ndarray | None:
    """``(len(history), len(items))`` item-to-item contributions, or ``None`` when the model has none
    (popularity, or a model without item similarity). Only these pairs are computed
    (:meth:`Recommender.item_pair_similarity`), not the history against the whole catalogue."""
    if len(history) == 0 or len(items) == 0 or model.history_mode == "constant":
        return None
    try:
        sim = model.item_pair_similarity(
            np.asarray(history, dtype=np.int64), np.asarray(items, dtype=np.int64)
        )
    except NotImplementedError:
        return None
    return np.asarray(sim, dtype=np.float64)


def explain(
    model: Recommender,
    history: np.ndarray,
    items: np.ndarray,
    item_ids: Sequence[str],
    attributes: Sequence[dict[str, set[str]]],
    titles: Sequence[str | None],
    top: int = 3,
    max_history: int = 200,
    inputs: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """One explanation per recommended item: ``{"because": [...], "shared": {...}}``.

    ``because`` lists up to ``top`` history items with a positive contribution, largest first, each
    with its ``similarity`` and the attributes it shares with the recommended item; ``shared`` is the
    union of those. Only the ``max_history`` most recent distinct history items are considered.
    ``inputs`` (:meth:`Recommender.history_input`): how much each item counts in the model's input
    row; a history item's contribution is then its input times its similarity (interaction weights,
    ``slit``'s window and recency), the exact terms of the score of an item-item model.
    """
    items = np.asarray(items, dtype=np.int64)
    hist = np.asarray(history, dtype=np.int64)[::-1]
    _, first = np.unique(hist, return_index=True)
    hist = hist[np.sort(first)][:max_history]  # distinct, most recent first
    sim = contributions(model, hist, items)
    if sim is None:
        return [{"because": [], "shared": {}} for _ in range(len(items))]
    if inputs is not None:
        sim = sim * np.asarray(inputs, dtype=np.float64)[hist][:, None]
    # the `top` largest contributions of every item at once (stable: ties keep the more recent item)
    order = np.argsort(-sim, axis=0, kind="stable")[:top]
    best = np.take_along_axis(sim, order, axis=0)
    out = []
    for col, j in enumerate(items.tolist()):
        because = []
        shared_all: dict[str, set[str]] = {}
        for r, s in zip(order[:, col].tolist(), best[:, col].tolist(), strict=True):
            if not s > 0:
                break
            h = int(hist[r])
            shared = shared_attributes(attributes[j], attributes[h])
            for f, vals in shared.items():
                shared_all.setdefault(f, set()).update(vals)
            because.append(
                {
                    "item_id": str(item_ids[h]),
                    "title": titles[h],
                    "similarity": round(s, 6),
                    "shared": shared,
                }
            )
        out.append({"because": because, "shared": {f: sorted(v) for f, v in shared_all.items()}})
    return out
