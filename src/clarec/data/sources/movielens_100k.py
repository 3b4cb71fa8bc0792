"""MovieLens 100K folder: ``u.data`` (ratings), ``u.item`` (movies, latin-1), ``u.user``, ``u.genre``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from clarec.data.clean import MALFORMED, CleanReport, check_unknown_ids, parse_ids
from clarec.data.sources._io import find_file, read_table
from clarec.data.sources.base import RawData, clean_interactions
from clarec.data.sources.text import title_year

#: The 19 genres of ``u.genre`` in flag order (used when u.genre is absent).
ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
]  # fmt: skip
_ITEM_FIELDS = ["item_id", "title", "release_date", "video_release_date", "imdb_url"]


def read(
    path: str | Path,
    strict: bool = False,
    ratings_file: str = "u.data",
    unknown_ids: str = "keep",
) -> RawData:
    """Read an ML-100K folder. ``ratings_file`` may name a split file (``u1.base``...).

    Interactions carry ``rating`` (1–5); items ``title``, ``year``, ``release_date``, ``imdb_url``,
    ``genres`` and ``categories`` (the same list), ``price`` (NaN); users ``age``, ``gender``,
    ``occupation``, ``zip_code``.
    """
    folder = Path(path)
    report = CleanReport()
    rpath = find_file(folder, ratings_file)
    p = read_table(
        rpath,
        sep="\t",
        names=["user_id", "item_id", "rating", "timestamp"],
        strict=strict,
        quoting=False,
    )
    inter = clean_interactions(p.frame, p.checks, rpath, report, strict, rating_range=(1, 5))

    items = None
    ipath = find_file(folder, "u.item", required=False)
    if ipath is not None:
        items = _read_items(ipath, _genre_names(folder, strict), strict, report)
    users = None
    upath = find_file(folder, "u.user", required=False)
    if upath is not None:
        users = _read_users(upath, strict, report)
    inter = check_unknown_ids(inter, items, "item_id", rpath, report, unknown_ids)
    inter = check_unknown_ids(inter, users, "user_id", rpath, report, unknown_ids)
    return RawData(inter.drop(columns="_line"), items, users, report=report, name="ml-100k")


def _genre_names(folder: Path, strict: bool) -> list[str]:
    gpath = find_file(folder, "u.genre", required=False)
    if gpath is None:
        return ML100K_GENRES
    p = read_table(
        gpath,
        sep="|",
        names=["name", "index"],
        encoding="latin-1",
        strict=strict,
        quoting=False,
    )
    idx = pd.to_numeric(p.frame["index"], errors="coerce")
    if idx.isna().any() or len(p.frame) != len(ML100K_GENRES):
        return ML100K_GENRES  # an odd u.genre is not worth failing for: the standard names are known
    return list(p.frame["name"].to_numpy()[np.argsort(idx.to_numpy())])


def _read_items(path: Path, genres: list[str], strict: bool, report: CleanReport) -> pd.DataFrame:
    names = _ITEM_FIELDS + [f"g{i}" for i in range(len(genres))]
    p = read_table(path, sep="|", names=names, encoding="latin-1", strict=strict, quoting=False)
    df = p.frame
    parse_ids(p.checks, df, ["item_id"])
    flags = df[[f"g{i}" for i in range(len(genres))]].to_numpy(dtype=object)
    bad_flags = ~np.isin(flags, ["0", "1"]).all(axis=1)
    p.checks.flag(MALFORMED, bad_flags, "genre flags must be 0 or 1")
    keep = p.checks.resolve(report, strict)
    df, flags = df.loc[keep].reset_index(drop=True), flags[keep] == "1"
    names_arr = np.asarray(genres, dtype=object)
    genre_lists = [list(names_arr[row]) for row in flags]
    title = df["title"].str.strip().replace("", pd.NA)
    out = pd.DataFrame(
        {
            "item_id": df["item_id"].str.strip().to_numpy(),
            "title": title.to_numpy(),
            "year": title_year(title),
            "release_date": df["release_date"].replace("", pd.NA).to_numpy(),
            "imdb_url": df["imdb_url"].replace("", pd.NA).to_numpy(),
            "genres": genre_lists,
            "categories": [list(g) for g in genre_lists],
            "price": np.full(len(df), np.nan),
        }
    )
    return out


def _read_users(path: Path, strict: bool, report: CleanReport) -> pd.DataFrame:
    p = read_table(
        path,
        sep="|",
        names=["user_id", "age", "gender", "occupation", "zip_code"],
        strict=strict,
        quoting=False,
    )
    parse_ids(p.checks, p.frame, ["user_id"])
    keep = p.checks.resolve(report, strict)
    df = p.frame.loc[keep].drop(columns="_line").reset_index(drop=True)
    df["user_id"] = df["user_id"].str.strip()
    df["age"] = pd.to_numeric(df["age"], errors="coerce").astype("Int64")
    return df
