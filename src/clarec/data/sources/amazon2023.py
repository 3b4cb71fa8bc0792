"""Amazon Reviews 2023 (McAuley lab): ``<Category>.jsonl[.gz]`` reviews + ``meta_<Category>.jsonl[.gz]``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from clarec.data.clean import CleanReport, check_unknown_ids
from clarec.data.sources._io import find_file, read_jsonl
from clarec.data.sources.amazon2018 import find_pair, read_meta, require_fields
from clarec.data.sources.base import RawData, clean_interactions
from clarec.errors import ConfigError

#: meta key → (output column, kind) for the 2023 release.
META_2023 = {
    "title": ("title", "title"),
    "store": ("store", "text"),
    "categories": ("categories", "list"),
    "price": ("price", "price"),
    "description": ("description", "text"),
    "features": ("features", "join"),
    "main_category": ("main_category", "text"),
}


def read(
    path: str | Path,
    strict: bool = False,
    category: str | None = None,
    reviews_file: str | None = None,
    meta_file: str | None = None,
    item_key: str = "parent_asin",
    unknown_ids: str = "keep",
) -> RawData:
    """Read one category of the 2023 release.

    Reviews: ``user_id``, ``parent_asin`` (or ``asin`` with ``item_key="asin"``) → item_id,
    ``rating`` (1–5), ``timestamp`` in milliseconds → seconds. Meta (optional, keyed by
    ``parent_asin``): ``title``, ``store``, ``categories``, ``price``, ``description``, ``features``,
    ``main_category``, cleaned as for 2018.
    """
    if item_key not in ("parent_asin", "asin"):
        raise ConfigError(f"item_key must be 'parent_asin' or 'asin', got {item_key!r}")
    folder = Path(path)
    if reviews_file is not None:
        rpath = find_file(folder, reviews_file)
        mpath = find_file(folder, meta_file) if meta_file else None
    else:
        rpath, mpath = find_pair(folder, category, ".jsonl", ".jsonl")
        if meta_file:
            mpath = find_file(folder, meta_file)
    report = CleanReport()
    needed = ["user_id", item_key, "rating", "timestamp"]
    df, checks = read_jsonl(rpath, strict=strict, columns=needed)
    require_fields(df, rpath, needed)
    frame = pd.DataFrame(
        {
            "user_id": df["user_id"],
            "item_id": df[item_key],
            "rating": df["rating"],
            "timestamp": df["timestamp"],
            "_line": df["_line"],
        }
    )
    inter = clean_interactions(
        frame, checks, rpath, report, strict, rating_range=(1, 5), timestamp_scale=1000
    )
    items = None
    if mpath is not None:
        reviewed = inter["item_id"] if item_key == "parent_asin" else None
        items = read_meta(mpath, strict, report, key="parent_asin", fields=META_2023, only=reviewed)
    if item_key == "parent_asin":
        inter = check_unknown_ids(inter, items, "item_id", rpath, report, unknown_ids)
    else:
        items = None  # meta is keyed by parent_asin; it cannot describe variant asins
    return RawData(inter.drop(columns="_line"), items, None, report=report, name=folder.name or "amazon2023")
