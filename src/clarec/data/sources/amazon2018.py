"""Amazon Review Data 2018 (McAuley lab): ``<Category>_5.json.gz`` reviews + ``meta_<Category>.json.gz``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from clarec.data.clean import DUPLICATE, CleanReport, check_unknown_ids, parse_ids
from clarec.data.sources._io import find_file, read_jsonl
from clarec.data.sources.base import RawData, clean_interactions
from clarec.data.sources.text import clean_text, clean_title, parse_price, text_list
from clarec.errors import DataError


def require_fields(df: pd.DataFrame, path: Path, fields: list[str]) -> None:
    """Whole-file check: a JSON-lines file whose records lack a needed key is the wrong file."""
    missing = [f for f in fields if f not in df.columns]
    if missing:
        found = [c for c in df.columns if c != "_line"][:8]
        raise DataError(path, f"records lack fields {missing}; found {found} (wrong file?)", line=1)


def find_pair(
    folder: Path, category: str | None, review_suffix: str, meta_suffix: str
) -> tuple[Path, Path | None]:
    """Review and meta files of ``category`` in ``folder`` (category guessed when only one is there)."""
    if category is None:
        cands = sorted(
            p
            for p in folder.glob(f"*{review_suffix}*")
            if not p.name.startswith("meta_") and p.name.endswith((review_suffix, review_suffix + ".gz"))
        )
        if not cands:
            raise DataError(folder, f"review file not found (*{review_suffix} or *{review_suffix}.gz)")
        if len(cands) != 1:
            names = [p.name for p in cands]
            raise DataError(folder, f"cannot tell the category: found review files {names}; pass category=")
        name = cands[0].name
        category = name[: name.index(review_suffix)]
    reviews = find_file(folder, f"{category}{review_suffix}")
    meta = find_file(folder, f"meta_{category}{meta_suffix}", required=False)
    return reviews, meta


def read(
    path: str | Path,
    strict: bool = False,
    category: str | None = None,
    reviews_file: str | None = None,
    meta_file: str | None = None,
    unknown_ids: str = "keep",
) -> RawData:
    """Read one category of the 2018 release.

    Reviews: ``reviewerID`` → user_id, ``asin`` → item_id, ``overall`` → rating (1–5),
    ``unixReviewTime`` → timestamp. Meta (optional): deduplicated by asin (first wins); ``title``
    (entities decoded; a title that is HTML markup counts as missing), ``brand``, ``categories``
    (from ``category``), ``price`` (``"$25.00"`` → 25.0, a range → its lower bound, else NaN),
    ``description`` (list joined, tags stripped), ``features`` (``feature`` joined with ``"; "``),
    ``main_cat``. Reviews of items without metadata are kept (``unknown_ids="drop"`` drops them).
    """
    folder = Path(path)
    if reviews_file is not None:
        rpath = find_file(folder, reviews_file)
        mpath = find_file(folder, meta_file, required=True) if meta_file else None
    else:
        rpath, mpath = find_pair(folder, category, "_5.json", ".json")
        if meta_file:
            mpath = find_file(folder, meta_file)
    report = CleanReport()
    needed = ["reviewerID", "asin", "overall", "unixReviewTime"]
    df, checks = read_jsonl(rpath, strict=strict, columns=needed)
    require_fields(df, rpath, needed)
    frame = pd.DataFrame(
        {
            "user_id": df["reviewerID"],
            "item_id": df["asin"],
            "rating": df["overall"],
            "timestamp": df["unixReviewTime"],
            "_line": df["_line"],
        }
    )
    inter = clean_interactions(frame, checks, rpath, report, strict, rating_range=(1, 5))
    items = None
    if mpath is not None:
        items = read_meta(mpath, strict, report, key="asin", fields=META_2018, only=inter["item_id"])
    inter = check_unknown_ids(inter, items, "item_id", rpath, report, unknown_ids)
    return RawData(inter.drop(columns="_line"), items, None, report=report, name=folder.name or "amazon2018")


#: meta key → (output column, kind) for the 2018 release.
META_2018 = {
    "title": ("title", "title"),
    "brand": ("brand", "text"),
    "category": ("categories", "list"),
    "price": ("price", "price"),
    "description": ("description", "text"),
    "feature": ("features", "join"),
    "main_cat": ("main_cat", "text"),
}


def read_meta(
    path: Path, strict: bool, report: CleanReport, key: str, fields: dict, only: pd.Series | None = None
) -> pd.DataFrame:
    """Item table from a meta JSON-lines file: one row per ``key`` (first wins), cleaned text.

    ``only``: the item ids the reviews name; other rows are dropped before their text is cleaned
    (a data set keeps the items that have interactions, and a large category's meta lists millions
    of items nobody reviewed)."""
    df, checks = read_jsonl(path, strict=strict, columns=[key, *fields])
    require_fields(df, path, [key])
    parse_ids(checks, df, [key])
    keep = checks.resolve(report, strict)
    df = df.loc[keep]
    ids = df[key].astype(str).str.strip()
    dup = ids.duplicated(keep="first").to_numpy()
    if dup.any():
        report.add(
            path, DUPLICATE, int(dup.sum()), int(df["_line"].to_numpy()[dup].min()), "dropped (first kept)"
        )
    df, ids = df.loc[~dup], ids.loc[~dup]
    if only is not None:
        named = ids.isin(pd.unique(only)).to_numpy()
        df, ids = df.loc[named], ids.loc[named]
    out = pd.DataFrame({"item_id": ids.to_numpy()})
    n = len(df)
    for src, (dst, kind) in fields.items():
        col = df[src] if src in df.columns else pd.Series([None] * n, dtype=object)
        vals = col.to_numpy(dtype=object)
        if kind == "title":
            out[dst] = [clean_title(v) for v in vals]
        elif kind == "text":
            out[dst] = [clean_text(v) for v in vals]
        elif kind == "list":
            out[dst] = [text_list(v) for v in vals]
        elif kind == "join":
            out[dst] = [("; ".join(text_list(v)) or None) for v in vals]
        elif kind == "price":
            out[dst] = parse_price(pd.Series(vals, dtype=object))
        else:  # pragma: no cover - a programming error in a field table
            raise ValueError(kind)
    if "price" not in out.columns:
        out["price"] = np.nan
    if "categories" not in out.columns:
        out["categories"] = [[] for _ in range(n)]
    return out
