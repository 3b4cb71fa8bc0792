"""MovieLens CSV layout (latest-small, 20M, 25M, 32M): ``ratings.csv``, ``movies.csv``, ``tags.csv``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from clarec.data.clean import CleanReport, check_unknown_ids, parse_ids, parse_timestamp
from clarec.data.sources._io import find_file, read_table
from clarec.data.sources.base import RawData, clean_interactions
from clarec.data.sources.text import title_year

NO_GENRES = "(no genres listed)"


def split_genres(genres: pd.Series) -> list[list[str]]:
    """``"A|B"`` → ``["A", "B"]``; ``"(no genres listed)"`` or empty → ``[]``."""
    out = []
    for g in genres.astype(str):
        out.append([x for x in g.split("|") if x and x != NO_GENRES])
    return out


def read(
    path: str | Path,
    strict: bool = False,
    ratings_file: str = "ratings.csv",
    rating_range: tuple[float, float] = (0.5, 5.0),
    unknown_ids: str = "keep",
) -> RawData:
    """Read a MovieLens CSV folder.

    Interactions carry ``rating`` (0.5–5 in half stars). Items have ``title``, ``year`` (from the
    title), ``genres`` and ``categories`` (same list), ``price`` (NaN). Tags, when ``tags.csv`` exists,
    are returned in ``extras["tags"]`` (user_id, item_id, tag, timestamp) and not mixed into the
    interactions: a tag reveals that the user watched the movie.
    """
    folder = Path(path)
    report = CleanReport()
    rpath = find_file(folder, ratings_file)
    p = read_table(rpath, sep=",", required=["userId", "movieId", "rating", "timestamp"], strict=strict)
    frame = p.frame.rename(columns={"userId": "user_id", "movieId": "item_id"})
    inter = clean_interactions(frame, p.checks, rpath, report, strict, rating_range=tuple(rating_range))

    items = None
    mpath = find_file(folder, "movies.csv", required=False)
    if mpath is not None:
        m = read_table(mpath, sep=",", required=["movieId", "title", "genres"], strict=strict)
        parse_ids(m.checks, m.frame, ["movieId"])
        df = m.frame.loc[m.checks.resolve(report, strict)].reset_index(drop=True)
        title = df["title"].str.strip().replace("", pd.NA)
        genres = split_genres(df["genres"])
        items = pd.DataFrame(
            {
                "item_id": df["movieId"].str.strip().to_numpy(),
                "title": title.to_numpy(),
                "year": title_year(title),
                "genres": genres,
                "categories": [list(g) for g in genres],
                "price": np.full(len(df), np.nan),
            }
        )
    extras: dict = {}
    tpath = find_file(folder, "tags.csv", required=False)
    if tpath is not None:
        t = read_table(tpath, sep=",", required=["userId", "movieId", "tag", "timestamp"], strict=strict)
        parse_ids(t.checks, t.frame, ["userId", "movieId"])
        ts = parse_timestamp(t.checks, t.frame["timestamp"])
        keep = t.checks.resolve(report, strict)
        extras["tags"] = pd.DataFrame(
            {
                "user_id": t.frame["userId"].str.strip().to_numpy()[keep],
                "item_id": t.frame["movieId"].str.strip().to_numpy()[keep],
                "tag": t.frame["tag"].to_numpy()[keep],
                "timestamp": ts.to_numpy()[keep],
            }
        )
    inter = check_unknown_ids(inter, items, "item_id", rpath, report, unknown_ids)
    return RawData(inter.drop(columns="_line"), items, None, extras, report, name=folder.name or "movielens")
