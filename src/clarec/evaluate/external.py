"""Scoring recommendations produced outside clarec.

A recommendation file is tab-separated ``user_id<TAB>item_id<TAB>rank`` with original ids, one line
per recommended item, ``rank`` starting at 1, optionally followed by a ``score`` field (not read:
``clarec recommend`` writes it); a header line naming the fields is optional and blank lines are
ignored; a file named ``*.gz`` is read through gzip. It is scored
against a predefined split folder (see :func:`clarec.data.split.load_predefined_split`) exactly as
given: nothing is excluded, so training items in a list simply count as non-relevant. Users of the
test part without any line get empty lists (they score 0 and stay in the averages).

Next-item lists can be scored under either convention of :class:`~clarec.evaluate.Evaluator`:
``history_items="kept"`` scores them as given; ``"masked"`` first removes each user's training and
validation items from their list (the items below move up), as clarec masks them in its own
rankings, so a list written with history items kept can be scored both ways (give it enough items).
"""

from __future__ import annotations

import gzip
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from clarec.errors import ClarecError, DataError
from clarec.evaluate.evaluator import HISTORY_ITEMS, evaluate_rankings, unreachable_note, unreachable_targets
from clarec.evaluate.metrics import check_ks

HEADER = ["user_id", "item_id", "rank"]


def _read_lines(path: Path) -> list[str]:
    """The file's lines; a name ending in ``.gz`` is read through gzip."""
    if not path.is_file():
        raise DataError(path, "recommendation file not found")
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        return data.decode("utf-8-sig").split("\n")  # a byte-order mark (Excel's) is not text
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(path, f"not a complete gzip file ({e})") from None
    except UnicodeDecodeError as e:
        raise DataError(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise DataError(path, f"cannot read file: {e.strerror}") from None


def read_recommendations(path: str | Path, split: Any, kmax: int | None, strict: bool = True) -> np.ndarray:
    """Read a recommendation file into a ``(n_users, kmax)`` ranking matrix (``-1`` = empty).

    A line of rank ``r`` fills slot ``r`` of its user's list; ranks above ``kmax`` are dropped
    (``None``: the deepest rank in the file sets the width) and a
    missing rank leaves an empty slot. Raises :class:`DataError` (with the line) for a malformed
    line, a rank that is not a positive integer, a rank or an item given twice for one user, and —
    when ``strict`` — an id unknown to the split; with ``strict=False`` lines with unknown ids are
    ignored with one warning.
    """
    path = Path(path)
    lines = _read_lines(path)
    fields = [ln.rstrip("\r").split("\t") for ln in lines]
    line_no = np.arange(1, len(fields) + 1)
    keep = np.array([f != [""] and "".join(f).strip() != "" for f in fields], dtype=bool)
    first = int(np.argmax(keep)) if keep.any() else -1
    if first >= 0 and [x.strip().lower() for x in fields[first]] in (HEADER, [*HEADER, "score"]):
        keep[first] = False
    rows = [fields[i] for i in np.flatnonzero(keep)]
    line_no = line_no[keep]
    if not rows:
        raise DataError(path, "no recommendations (expected lines 'user_id<TAB>item_id<TAB>rank')")
    widths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    bad = np.flatnonzero((widths != 3) & (widths != 4))
    if len(bad):
        raise DataError(
            path,
            f"expected 3 tab-separated fields (user_id, item_id, rank; a score may follow), found "
            f"{widths[bad[0]]}",
            line=int(line_no[bad[0]]),
        )
    frame = pd.DataFrame([r[:3] for r in rows], columns=HEADER, dtype=str)
    for col in HEADER:
        frame[col] = frame[col].str.strip()
    rank = pd.to_numeric(frame["rank"], errors="coerce").to_numpy(dtype=np.float64)
    finite = np.isfinite(rank)
    whole = np.where(finite, rank, 1.0)  # inf and NaN are bad already; no numpy warning from them
    bad = np.flatnonzero(~finite | (whole < 1) | (whole % 1 != 0))
    if len(bad):
        raise DataError(
            path,
            f"rank must be a positive integer, got {frame['rank'].iloc[bad[0]]!r}",
            line=int(line_no[bad[0]]),
        )
    n_items = split.train.n_items
    bad = np.flatnonzero(rank > n_items)  # a list of distinct items holds at most the catalogue
    if len(bad):
        raise DataError(
            path,
            f"rank {frame['rank'].iloc[bad[0]]} is beyond the catalogue's {n_items} items",
            line=int(line_no[bad[0]]),
        )
    users = pd.Index(np.asarray(split.train.user_ids).astype(str)).get_indexer(frame["user_id"])
    items = pd.Index(np.asarray(split.train.item_ids).astype(str)).get_indexer(frame["item_id"])
    unknown = (users < 0) | (items < 0)
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        kind, value = (
            ("user", frame["user_id"].iloc[i]) if users[i] < 0 else ("item", frame["item_id"].iloc[i])
        )
        if strict:
            raise DataError(path, f"unknown {kind} id {value!r} (not in the split)", line=int(line_no[i]))
        warnings.warn(
            f"{path}: ignored {int(unknown.sum())} line(s) with ids unknown to the split "
            f"(first at line {int(line_no[i])}: {kind} {value!r})",
            stacklevel=2,
        )
    known = ~unknown
    users, items, rank, line_no = users[known], items[known], rank[known].astype(np.int64), line_no[known]
    for what, other in (("rank", rank), ("item", items)):
        dup = pd.DataFrame({"u": users, "x": other}).duplicated().to_numpy()
        if dup.any():
            i = int(np.flatnonzero(dup)[0])
            value = int(rank[i]) if what == "rank" else split.train.item_ids[items[i]]
            raise DataError(
                path,
                f"{what} {value!r} given twice for user {split.train.user_ids[users[i]]!r}",
                line=int(line_no[i]),
            )
    if kmax is None:
        kmax = int(rank.max()) if len(rank) else 1
    topk = np.full((split.train.n_users, kmax), -1, dtype=np.int64)
    inside = rank <= kmax
    topk[users[inside], rank[inside] - 1] = items[inside]
    return topk


def mask_history(topk: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
    """``topk`` without each row's items in ``history`` (same rows), the slots below moved up and
    ``-1`` filling the end of each list; an empty slot (``-1``, a missing rank) stays a slot, as in
    the lists kept whole."""
    topk = np.asarray(topk, dtype=np.int64)
    rows = np.broadcast_to(np.arange(len(topk))[:, None], topk.shape)
    filled = topk >= 0
    drop = np.zeros(topk.shape, dtype=bool)
    drop[filled] = np.asarray(history[rows[filled], topk[filled]]).ravel() > 0
    order = np.argsort(drop, axis=1, kind="stable")  # kept items first, in their order
    out = np.take_along_axis(topk, order, axis=1)
    out[np.take_along_axis(drop, order, axis=1)] = -1
    return out


def evaluate_recommendation_file(
    split_dir: str | Path,
    recs_file: str | Path,
    ks: Sequence[int] = (10, 20),
    strict: bool = True,
    metrics: Sequence[str] | None = None,
    history_items: str = "kept",
) -> dict[str, float]:
    """Metrics of a recommendation file against the test part of a split folder.

    Returns a flat JSON-ready dict, e.g. ``{"recall@20": 0.21, "ndcg@20": 0.18, ...}``: the accuracy
    metrics plus coverage, novelty, average popularity and Gini (popularity from the training
    part). ``history_items``: ``"kept"`` (lists as given) or ``"masked"`` (training and validation
    items removed from each list first). This is the function the command line calls.
    """
    from clarec.data.split import load_predefined_split

    if history_items not in HISTORY_ITEMS:
        raise ClarecError(f"history_items must be one of {HISTORY_ITEMS}, got {history_items!r}")
    try:
        ks = check_ks(ks)
    except ValueError as e:
        raise ClarecError(str(e)) from None
    split = load_predefined_split(split_dir)
    width = min(ks[-1], split.train.n_items)  # no list is longer than the catalogue
    if history_items == "kept":
        topk = read_recommendations(recs_file, split, width, strict=strict)
    else:  # the whole list: it is cut at the deepest K only once the history items are gone
        history = split.train.to_csr() + split.valid.to_csr()
        found = unreachable_targets(split.test.to_csr(), history)
        if found:
            warnings.warn(unreachable_note(found), stacklevel=2)
        topk = mask_history(read_recommendations(recs_file, split, None, strict=strict), history)
        topk = np.pad(topk, ((0, 0), (0, max(0, width - topk.shape[1]))), constant_values=-1)[:, :width]
    result = evaluate_rankings(
        topk,
        split.test.to_csr(),
        ks,
        train=split.train.to_csr(),
        metrics=metrics,
        cold_items=split.cold_items,
    )
    return {k: float(v) for k, v in result.metrics.items()}
