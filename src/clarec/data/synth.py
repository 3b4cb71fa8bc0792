"""Synthetic data sets with the shapes of large public ones, written in those sets' own file layout so
the real loaders read them (``clarec data synth``): for scale benchmarks and tests on machines that do
not have the real files.

A shape fixes users, items and interactions; what is drawn around it is what makes a catalogue look
real: item popularity with a long tail (a shifted power law: a few blockbusters, most items rated a
handful of times), user activity log-normal above the set's minimum (MovieLens keeps users with 20+
ratings), tastes (each user leans to a few of the item groups, each item belongs to one, so the data
has something to learn), MovieLens' half-star rating marginal, timestamps over the set's years, and
item text (a title with a year, genres from the group). Nothing here is real data: the figures of a
model trained on it say how fast and how big, not how good.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clarec.errors import ConfigError


@dataclass(frozen=True)
class Shape:
    users: int
    items: int
    interactions: int
    min_per_user: int
    first_year: int
    last_year: int
    description: str
    layout: str = "movielens"


SHAPES = {
    "ml-20m": Shape(138_493, 26_744, 20_000_263, 20, 1995, 2015, "MovieLens 20M"),
    "ml-25m": Shape(162_541, 59_047, 25_000_095, 20, 1995, 2019, "MovieLens 25M"),
    "ml-32m": Shape(200_948, 84_432, 32_000_204, 20, 1995, 2023, "MovieLens 32M"),
    # one large category of Amazon Reviews 2023: millions of users with a review or two each, a
    # million items with text (titles, descriptions, features); reviews + meta JSON lines
    "amazon2023": Shape(8_000_000, 1_000_000, 16_000_000, 1, 2005, 2023, "Amazon Reviews 2023", "amazon2023"),
}

GENRES = [
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
_WORDS = (
    "silent river night city last dark lost return empire star house garden winter summer king queen "
    "road ghost island secret love war storm blue red black golden broken little great wild iron glass "
    "shadow fire ocean mountain dream story journey stranger brother sister father mother child game "
    "heart moon sun time world legend machine hunter dancer soldier doctor thief angel devil paradise"
).split()
#: MovieLens' share of each half-star rating (0.5 .. 5), rounded
_RATING_SHARE = np.array([1.1, 3.3, 1.4, 7.2, 4.4, 21.4, 11.0, 27.7, 7.7, 14.5])
_N_GROUPS = 40
_TASTE = 0.6  # share of a user's picks drawn from their favourite groups


def shape(name: str) -> Shape:
    if name not in SHAPES:
        raise ConfigError(f"unknown shape {name!r}; known: {sorted(SHAPES)}")
    return SHAPES[name]


def _scaled(s: Shape, scale: float) -> Shape:
    if not 0 < scale <= 1:
        raise ConfigError(f"scale must be in (0, 1], got {scale}")
    users = max(10, round(s.users * scale))
    items = max(10, round(s.items * scale**0.5))
    cap = items // 2  # most items one user may have
    per_user = s.interactions / s.users
    return Shape(
        users,
        items,
        min(round(users * per_user), users * cap),
        min(s.min_per_user, cap),
        s.first_year,
        s.last_year,
        s.description,
        s.layout,
    )


def _user_counts(s: Shape, rng: np.random.Generator) -> np.ndarray:
    """Interactions per user: ``min_per_user`` plus a log-normal excess, summing to the shape's total,
    none above half the catalogue (:func:`_scaled` keeps the total within that)."""
    cap = s.items // 2
    excess = rng.lognormal(mean=0.0, sigma=1.3, size=s.users)
    budget = s.interactions - s.min_per_user * s.users
    counts = s.min_per_user + np.floor(excess / excess.sum() * budget).astype(np.int64)
    counts = np.minimum(counts, cap)
    short = s.interactions - counts.sum()
    while short > 0:  # hand out what rounding and the cap left over, one each to users below the cap
        room = np.flatnonzero(counts < cap)
        if room.size == 0:
            break
        take = rng.choice(room, size=min(short, room.size), replace=False)
        counts[take] += 1
        short -= take.size
    return counts


def _popularity(n: int, rng: np.random.Generator) -> np.ndarray:
    """Item weights, in random item order: a shifted power law, rank ``r`` gets ``(r + c)^-2.1`` with
    ``c`` 1.1% of the catalogue; at ML-20M's size the top item gets ~0.4% of the interactions and the
    median item ~20 (ML-20M: 0.34%, 18)."""
    w = (np.arange(n, dtype=np.float64) + max(1.0, 0.011 * n)) ** -2.1
    return rng.permutation(w / w.sum())


def _draw_pairs(s: Shape, counts: np.ndarray, pop: np.ndarray, group: np.ndarray, rng) -> np.ndarray:
    """Distinct (user, item) pairs, ``counts[u]`` per user: items drawn by popularity, a share
    :data:`_TASTE` of them from the user's two favourite groups."""
    users = np.repeat(np.arange(s.users, dtype=np.int64), counts)
    favourite = rng.integers(0, _N_GROUPS, size=(s.users, 2))
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(_N_GROUPS + 1))
    cdf_all = np.cumsum(pop)
    cdf_group = np.cumsum(pop[order])  # within group g: the slice bounds[g]:bounds[g+1]
    items = np.zeros(len(users), dtype=np.int64)
    need = np.ones(len(users), dtype=bool)
    rows = np.arange(len(users))  # rows whose user still has a duplicate: the only ones re-checked
    for _ in range(30):  # redraw the duplicates (by taste and popularity) a few times
        idx = np.flatnonzero(need)
        if idx.size == 0:
            break
        u = users[idx]
        taste = rng.random(idx.size) < _TASTE
        g = favourite[u, rng.integers(0, 2, size=idx.size)]
        lo = np.where(bounds[g] > 0, cdf_group[np.maximum(bounds[g] - 1, 0)], 0.0)
        hi = cdf_group[np.maximum(bounds[g + 1] - 1, 0)]
        x = lo + rng.random(idx.size) * (hi - lo)
        in_group = order[np.minimum(np.searchsorted(cdf_group, x, side="right"), bounds[g + 1] - 1)]
        anywhere = np.minimum(np.searchsorted(cdf_all, rng.random(idx.size) * cdf_all[-1]), s.items - 1)
        items[idx] = np.where(taste & (bounds[g + 1] > bounds[g]), in_group, anywhere)
        active = np.zeros(s.users, dtype=bool)
        active[u] = True
        rows = rows[active[users[rows]]]
        _, first = np.unique(users[rows] * s.items + items[rows], return_index=True)
        need[:] = False
        need[rows] = True
        need[rows[first]] = False
    # what is still duplicated (heavy users who have most of their groups): items they lack, uniformly
    starts = np.concatenate([[0], np.cumsum(counts)])  # users' rows are contiguous
    for user in np.unique(users[need]):
        mine = np.arange(starts[user], starts[user + 1])
        dup = mine[need[mine]]
        lacking = np.setdiff1d(np.arange(s.items), items[mine[~need[mine]]])
        items[dup] = rng.choice(lacking, size=dup.size, replace=False)
    return np.stack([users, items], axis=1)


def _titles(n: int, years: np.ndarray, rng: np.random.Generator) -> list[str]:
    words = np.asarray(_WORDS)
    first = words[rng.integers(0, len(words), n)]
    second = words[rng.integers(0, len(words), n)]
    the = rng.random(n) < 0.4
    return [
        f"{'The ' if t else ''}{a.capitalize()} {b.capitalize()} ({y})"
        for t, a, b, y in zip(the, first, second, years, strict=True)
    ]


def synthesize(name: str, out: str | Path, scale: float = 1.0, seed: int = 0, progress=None) -> dict:
    """Write a data set of shape ``name`` into ``out`` in the real set's layout (MovieLens:
    ``ratings.csv`` and ``movies.csv``; Amazon 2023: reviews and meta JSON lines of one category,
    ``Synthetic_Goods``); returns what was written.

    ``scale`` < 1 shrinks the users by that share and the items by its square root, and keeps the
    interactions per user, never more than half the catalogue each: a catalogue shrunk as much as the
    users could not hold ML-20M's 144 per user with a long tail.

    ``progress(message)`` is called after each step (``None``: quiet).
    """
    s = _scaled(shape(name), scale)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty; synthesize into a new folder")
    out.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda message: None)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    pop = _popularity(s.items, rng)
    group = rng.integers(0, _N_GROUPS, size=s.items)
    counts = _user_counts(s, rng)
    pairs = _draw_pairs(s, counts, pop, group, rng)
    say(f"{len(pairs):,} interactions drawn ({time.perf_counter() - t0:.1f}s)")

    write = _write_movielens if s.layout == "movielens" else _write_amazon2023
    files = write(out, s, pairs, group, rng)
    say(f"{', '.join(files)} written ({time.perf_counter() - t0:.1f}s)")
    return {
        "shape": name,
        "scale": scale,
        "seed": seed,
        "users": s.users,
        "items": s.items,
        "interactions": int(len(pairs)),
        "files": files,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _timestamps(s: Shape, pairs: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Seconds of each interaction (each user active over a log-normal span inside the set's years)
    and the order of the rows by user, then time (how the files list them)."""
    # UTC: the same seed gives the same files on every machine, whatever its time zone
    first = calendar.timegm((s.first_year, 1, 1, 0, 0, 0, 0, 0, 0))
    last = calendar.timegm((s.last_year, 1, 1, 0, 0, 0, 0, 0, 0))
    start = rng.uniform(first, last, size=s.users)
    span = np.minimum(rng.lognormal(np.log(30 * 86400), 1.5, size=s.users), last - start)
    stamps = (start[pairs[:, 0]] + rng.random(len(pairs)) * span[pairs[:, 0]]).astype(np.int64)
    return stamps, np.lexsort((stamps, pairs[:, 0]))


def _write_movielens(out: Path, s: Shape, pairs, group, rng) -> list[str]:
    """``ratings.csv`` (userId, movieId, rating, timestamp) and ``movies.csv`` (movieId, title, genres)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    # MovieLens ids: users 1..n, items distinct ids below 6x the item count, in no particular order
    item_ids = np.sort(rng.choice(np.arange(1, 6 * s.items + 1), size=s.items, replace=False))
    ratings = (rng.choice(10, size=len(pairs), p=_RATING_SHARE / _RATING_SHARE.sum()) + 1) / 2.0
    stamps, order = _timestamps(s, pairs, rng)
    table = pa.table(
        {
            "userId": pa.array(pairs[:, 0] + 1, pa.int64()),
            "movieId": pa.array(item_ids[pairs[:, 1]], pa.int64()),
            "rating": pa.array(ratings, pa.float64()),
            "timestamp": pa.array(stamps, pa.int64()),
        }
    )
    pacsv.write_csv(
        table.take(pa.array(order)), out / "ratings.csv", pacsv.WriteOptions(quoting_style="none")
    )
    years = rng.integers(s.first_year - 60, s.last_year + 1, size=s.items)
    titles = _titles(s.items, years, rng)
    genre_of_group = np.stack([rng.choice(len(GENRES), size=2, replace=False) for _ in range(_N_GROUPS)])
    second = rng.random(s.items) < 0.5
    genres = [
        GENRES[genre_of_group[g, 0]] + (f"|{GENRES[genre_of_group[g, 1]]}" if two else "")
        for g, two in zip(group, second, strict=True)
    ]
    pacsv.write_csv(
        pa.table({"movieId": pa.array(item_ids, pa.int64()), "title": titles, "genres": genres}),
        out / "movies.csv",
    )
    return ["ratings.csv", "movies.csv"]


_CATEGORY = "Synthetic_Goods"
_AMAZON_STARS = np.array([8.0, 5.0, 8.0, 15.0, 64.0])  # 1..5 stars, the usual J shape of reviews
_KINDS = (
    "lamp kettle backpack tent jacket helmet bottle blender speaker charger cable mug notebook pen "
    "puzzle doll drone camera lens tripod glove scarf boot sandal mat towel pillow blanket clock"
).split()


def _write_amazon2023(out: Path, s: Shape, pairs, group, rng) -> list[str]:
    """``<Category>.jsonl`` (reviews: user_id, parent_asin, asin, rating, timestamp in ms, title,
    text) and ``meta_<Category>.jsonl`` (parent_asin, title, main_category, store, categories, price,
    description, features), as the 2023 release lays them out."""
    import json

    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
    users = ["A" + "".join(row) for row in alphabet[rng.integers(0, 36, size=(s.users, 27))]]
    asins = ["B0" + "".join(row) for row in alphabet[rng.integers(0, 36, size=(s.items, 8))]]
    asins = list(dict.fromkeys(asins))  # ids drawn twice (unlikely) would merge two items
    while len(asins) < s.items:
        asins.append("B1" + "".join(alphabet[rng.integers(0, 36, size=8)]))
        asins = list(dict.fromkeys(asins))
    stamps, order = _timestamps(s, pairs, rng)
    pairs, stamps = pairs[order], stamps[order]
    stars = rng.choice(5, size=len(pairs), p=_AMAZON_STARS / _AMAZON_STARS.sum()) + 1
    words = np.asarray(_WORDS)
    with open(out / f"{_CATEGORY}.jsonl", "w", encoding="utf-8") as f:
        for start in range(0, len(pairs), 500_000):
            rows = slice(start, start + 500_000)
            u, i, r, t = pairs[rows, 0], pairs[rows, 1], stars[rows], stamps[rows] * 1000
            w = words[rng.integers(0, len(words), size=(len(u), 2))]
            f.writelines(
                f'{{"rating": {float(rr)}, "title": "{a.capitalize()} {b}", "text": "It is {a} and {b}.", '
                f'"asin": "{asins[ii]}", "parent_asin": "{asins[ii]}", "user_id": "{users[uu]}", '
                f'"timestamp": {int(tt)}, "verified_purchase": true}}\n'
                for uu, ii, rr, tt, (a, b) in zip(u, i, r, t, w, strict=True)
            )
    kinds = np.asarray(_KINDS)[group % len(_KINDS)]
    adjectives = words[rng.integers(0, len(words), size=(s.items, 3))]
    prices = np.round(rng.lognormal(3.0, 0.9, size=s.items), 2)
    with open(out / f"meta_{_CATEGORY}.jsonl", "w", encoding="utf-8") as f:
        for n in range(s.items):
            a, b, c = adjectives[n]
            record = {
                "main_category": "Synthetic",
                "title": f"{a.capitalize()} {b} {kinds[n]}",
                "average_rating": 4.2,
                "rating_number": 0,
                "features": [f"{c.capitalize()} finish", f"Made for {a} days"],
                "description": [f"A {b} {kinds[n]} for the {c}."],
                "price": float(prices[n]),
                "store": f"{c.capitalize()} Co",
                "categories": ["Synthetic", f"Group {int(group[n])}", kinds[n].capitalize()],
                "details": {},
                "parent_asin": asins[n],
            }
            f.write(json.dumps(record) + "\n")
    return [f"{_CATEGORY}.jsonl", f"meta_{_CATEGORY}.jsonl"]
