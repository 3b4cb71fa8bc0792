"""MovieLens 1M ``::`` layout: ``ratings.dat``, ``movies.dat`` (latin-1), ``users.dat``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from clarec.data.clean import CleanReport, check_unknown_ids, parse_ids
from clarec.data.sources._io import find_file, read_table
from clarec.data.sources.base import RawData, clean_interactions
from clarec.data.sources.movielens_csv import split_genres
from clarec.data.sources.text import title_year

#: ``users.dat`` age codes → the range they stand for (from the ML-1M README).
AGE_GROUPS = {
    "1": "under 18",
    "18": "18-24",
    "25": "25-34",
    "35": "35-44",
    "45": "45-49",
    "50": "50-55",
    "56": "56+",
}


def read(
    path: str | Path,
    strict: bool = False,
    ratings_file: str = "ratings.dat",
    unknown_ids: str = "keep",
) -> RawData:
    """Read an ML-1M folder. Interactions carry ``rating`` (1–5); items ``title``, ``year``,
    ``genres``/``categories``, ``price`` (NaN); users ``gender``, ``age`` (code), ``age_group``,
    ``occupation`` (code), ``zip_code``."""
    folder = Path(path)
    report = CleanReport()
    rpath = find_file(folder, ratings_file)
    p = read_table(
        rpath,
        sep="::",
        names=["user_id", "item_id", "rating", "timestamp"],
        strict=strict,
        quoting=False,
    )
    inter = clean_interactions(p.frame, p.checks, rpath, report, strict, rating_range=(1, 5))

    items = None
    mpath = find_file(folder, "movies.dat", required=False)
    if mpath is not None:
        m = read_table(
            mpath,
            sep="::",
            names=["item_id", "title", "genres"],
            encoding="latin-1",
            strict=strict,
            quoting=False,
        )
        parse_ids(m.checks, m.frame, ["item_id", "title"])
        df = m.frame.loc[m.checks.resolve(report, strict)].reset_index(drop=True)
        title = df["title"].str.strip()
        genres = split_genres(df["genres"])
        items = pd.DataFrame(
            {
                "item_id": df["item_id"].str.strip().to_numpy(),
                "title": title.to_numpy(),
                "year": title_year(title),
                "genres": genres,
                "categories": [list(g) for g in genres],
                "price": np.full(len(df), np.nan),
            }
        )
    users = None
    upath = find_file(folder, "users.dat", required=False)
    if upath is not None:
        u = read_table(
            upath,
            sep="::",
            names=["user_id", "gender", "age", "occupation", "zip_code"],
            strict=strict,
            quoting=False,
        )
        parse_ids(u.checks, u.frame, ["user_id"])
        users = u.frame.loc[u.checks.resolve(report, strict)].drop(columns="_line").reset_index(drop=True)
        users["user_id"] = users["user_id"].str.strip()
        users["age_group"] = users["age"].map(AGE_GROUPS)
    inter = check_unknown_ids(inter, items, "item_id", rpath, report, unknown_ids)
    inter = check_unknown_ids(inter, users, "user_id", rpath, report, unknown_ids)
    return RawData(inter.drop(columns="_line"), items, users, report=report, name="ml-1m")
