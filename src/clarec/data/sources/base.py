"""What every source returns, and the interaction cleaning every source shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from clarec.data.clean import (
    DUPLICATE,
    MALFORMED,
    NO_INTERACTIONS,
    CleanReport,
    RowChecks,
    drop_exact_duplicates,
    parse_ids,
    parse_rating,
    parse_timestamp,
)
from clarec.data.dataset import Dataset
from clarec.data.sources._io import require_rows

#: Columns a source may put in its interactions frame (original ids), in this order.
INTERACTION_COLUMNS = ["user_id", "item_id", "timestamp", "rating", "weight", "behavior"]


@dataclass
class RawData:
    """Frames with original ids, as read from the files, before indexing.

    ``interactions`` has ``user_id``, ``item_id``, ``timestamp`` and, when the format has them,
    ``rating`` (float), ``weight``, ``behavior``. ``items`` has ``item_id`` plus ``title``, text
    fields, ``categories`` (list of str) and ``price`` (float, NaN if unknown); ``users`` has
    ``user_id`` plus profile fields. ``extras`` holds tables that later code may choose to use
    (e.g. MovieLens tags, which reveal who watched what).
    """

    interactions: pd.DataFrame
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    extras: dict = field(default_factory=dict)
    report: CleanReport = field(default_factory=CleanReport)
    name: str = "dataset"


@dataclass
class LoadResult:
    """A loaded data set, what cleaning and filtering did to it, and side tables."""

    dataset: Dataset
    report: CleanReport
    extras: dict = field(default_factory=dict)


def to_frame_for_dataset(inter: pd.DataFrame) -> pd.DataFrame:
    """Interactions ready for :meth:`Dataset.from_frame`.

    An explicit rating stays in the dataset's optional ``rating`` column (weight stays 1) until
    :func:`clarec.data.filters.to_implicit` turns it into implicit feedback.
    """
    cols = [c for c in INTERACTION_COLUMNS if c in inter.columns]
    return inter[cols].reset_index(drop=True)


def _report_side_rows(raw: RawData, ds: Dataset) -> None:
    """Count the item and user rows the data set does not hold: repeated ids (the first row is
    kept) and ids without interactions (an offline data set is made of interactions; such an item
    joins a served model through its text, ``POST /v1/items``). Compared with the data set's
    distinct ids, not its rows."""
    for table, key, label, ids in (
        (raw.items, "item_id", "item", ds.item_ids),
        (raw.users, "user_id", "user", ds.user_ids),
    ):
        if table is None or key not in table.columns:
            continue
        given = table[key].astype(str)
        repeated = given.duplicated(keep="first")
        raw.report.add(f"{raw.name} {label} table", DUPLICATE, int(repeated.sum()), action="first row kept")
        unused = ~given[~repeated].isin(ids)
        raw.report.add(f"{raw.name} {label} table", NO_INTERACTIONS, int(unused.sum()), action="left out")


def build_result(raw: RawData) -> LoadResult:
    """Index a :class:`RawData` into a :class:`Dataset`."""
    inter = to_frame_for_dataset(raw.interactions)
    ds = Dataset.from_frame(inter, items=raw.items, users=raw.users, name=raw.name)
    _report_side_rows(raw, ds)
    fill_list_columns(ds.items)
    raw.report.rows_kept = ds.n_interactions
    return LoadResult(ds, raw.report, raw.extras)


def clean_interactions(
    frame: pd.DataFrame,
    checks: RowChecks,
    path: Path,
    report: CleanReport,
    strict: bool,
    *,
    rating_range: tuple[float, float] | None = None,
    has_rating: bool = True,
    has_timestamp: bool = True,
    timestamp_scale: int = 1,
) -> pd.DataFrame:
    """Type and check raw interaction columns (strings) named by :data:`INTERACTION_COLUMNS`.

    Empty ids are malformed; ratings must be numbers (inside ``rating_range`` when given);
    timestamps must be non-negative integers. Exact duplicate rows are dropped and counted. Returns
    the kept rows with typed columns and ``_line``; raises when no row is usable.
    """
    n_read = len(frame) + checks.n_outside
    report.rows_read += n_read
    parse_ids(checks, frame, ["user_id", "item_id"])
    # ``.array``, not ``.to_numpy()``: Arrow-backed strings stay Arrow (no Python object per row)
    out = pd.DataFrame(
        {
            "user_id": frame["user_id"].astype(str).str.strip().array,
            "item_id": frame["item_id"].astype(str).str.strip().array,
        }
    )
    if has_timestamp and "timestamp" in frame.columns:
        out["timestamp"] = parse_timestamp(checks, frame["timestamp"], scale=timestamp_scale).to_numpy()
    elif "timestamp" in frame.columns:
        out["timestamp"] = frame["timestamp"].to_numpy()
    if has_rating and "rating" in frame.columns:
        out["rating"] = parse_rating(checks, frame["rating"], rating_range).to_numpy()
    if "weight" in frame.columns:
        out["weight"] = parse_rating(checks, frame["weight"], None, column="weight").to_numpy()
    if "behavior" in frame.columns:
        b = frame["behavior"].astype(str).str.strip()
        checks.flag(MALFORMED, (b == "").to_numpy(), "empty behavior")
        out["behavior"] = b.to_numpy()
    out["_line"] = frame["_line"].to_numpy()
    keep = checks.resolve(report, strict)
    out = out.loc[keep].reset_index(drop=True)
    out = drop_exact_duplicates(out, path, report)
    require_rows(out, path, report, n_read)
    return out.reset_index(drop=True)


#: Side-table columns holding lists; an id without a row gets ``[]`` there, not NaN.
LIST_COLUMNS = ("categories", "genres")


def fill_list_columns(table: pd.DataFrame) -> None:
    """Replace missing values in list columns by empty lists (in place)."""
    for col in LIST_COLUMNS:
        if col in table.columns:
            table[col] = [v if isinstance(v, list) else [] for v in table[col].to_numpy(dtype=object)]
