"""S3-Rec sequence files (``Beauty.txt``: ``user item item ...``, chronological) with optional item text."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from clarec.data.clean import CleanReport, check_unknown_ids, parse_ids
from clarec.data.sources._io import find_file, read_bytes, read_table
from clarec.data.sources.base import RawData
from clarec.data.sources.sequences import read_user_lines
from clarec.data.sources.text import clean_title
from clarec.errors import DataError


def read(
    path: str | Path,
    strict: bool = False,
    sequence_file: str | None = None,
    item_text: str | None = None,
    numeric_ids: bool = True,
    unknown_ids: str = "keep",
    attributes: str | None = None,
) -> RawData:
    """Read an S3-Rec sequence file; ``path`` is the file, or its folder with ``sequence_file``.

    ``timestamp`` is the position in the user's sequence (the files have no times). ``item_text``
    names a TSV with header ``s3rec_item_id  asin  title`` (e.g. ``Beauty_item_text_derived.tsv``);
    it gives items ``asin`` and ``title`` (empty → missing). ``attributes`` names the JSON file
    ``{"item_id": [attribute id, ...]}`` (e.g. ``Beauty_item2attributes.json``: category and brand ids);
    it gives items an ``attributes`` list column (``"a<id>"`` tokens; empty for items it lacks).
    ``numeric_ids=False`` accepts raw string ids (``Beauty_user_sequence_asin.txt``).
    """
    path = Path(path)
    if path.is_dir():
        if sequence_file is None:
            raise DataError(path, "a folder needs sequence_file= (e.g. Beauty.txt)")
        folder, spath = path, find_file(path, sequence_file)
    else:
        folder, spath = path.parent, path
    report = CleanReport()
    inter = read_user_lines(spath, report, strict, numeric_ids=numeric_ids)
    items = None
    if item_text is not None:
        tpath = find_file(folder, item_text)
        t = read_table(tpath, sep="\t", required=["s3rec_item_id", "title"], strict=strict, quoting=False)
        parse_ids(t.checks, t.frame, ["s3rec_item_id"])
        df = t.frame.loc[t.checks.resolve(report, strict)].reset_index(drop=True)
        items = pd.DataFrame(
            {
                "item_id": df["s3rec_item_id"].str.strip().to_numpy(),
                "title": df["title"].map(clean_title).to_numpy(),  # entities decoded (Cr&egrave;me)
            }
        )
        if "asin" in df.columns:
            items.insert(1, "asin", df["asin"].str.strip().to_numpy())
        items["categories"] = [[] for _ in range(len(items))]
        items["price"] = np.nan
    if attributes is not None:
        items = _with_attributes(items, inter, find_file(folder, attributes))
    inter = check_unknown_ids(inter, items, "item_id", spath, report, unknown_ids)
    return RawData(inter.drop(columns="_line"), items, None, report=report, name=spath.stem)


def _with_attributes(items: pd.DataFrame | None, inter: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``items`` (or a table of the sequences' items) with an ``attributes`` list column from ``path``."""
    try:
        table = json.loads(read_bytes(path).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(path, f"not a JSON object of item id -> attribute ids ({e})") from None
    if not isinstance(table, dict) or not all(isinstance(v, list) for v in table.values()):
        raise DataError(path, "expected a JSON object mapping each item id to a list of attribute ids")
    if items is None:
        items = pd.DataFrame({"item_id": pd.unique(inter["item_id"].astype(str))})
    items = items.copy()
    items["attributes"] = [[f"a{a}" for a in table.get(str(i), [])] for i in items["item_id"].astype(str)]
    return items
