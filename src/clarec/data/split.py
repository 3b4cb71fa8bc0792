"""Train / validation / test splits.

Every split is deterministic given its seed, returns three :class:`~clarec.data.dataset.Dataset`
objects sharing one set of id maps, and can be written to (and read back from) a folder of TSV
files, the *predefined split* format that other toolkits can read too::

    train.tsv  valid.tsv  test.tsv   header "user_id<TAB>item_id[<TAB>timestamp][<TAB>weight]", original ids
    items.tsv                        optional: item_id and text columns
    users.tsv                        optional: user_id (every user, those with no interaction left too)
    split.json                       optional: method, parameters, cold items

Splits assume (user, item) pairs are already deduplicated (the default data pipeline does it);
otherwise a pair could sit in train and in test and could never be recommended.

Why one file of this length: every split method shares the conventions written here (per-user
ratios, at least one training item per user, the predefined-folder format), and they read best side by side.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clarec.data.dataset import DEFAULT_BEHAVIOR, Dataset
from clarec.errors import ConfigError, DataError, UnknownIdError

PARTS = ("train", "valid", "test")


@dataclass
class Split:
    """Three datasets over the same users and items, plus the items held out as cold."""

    train: Dataset
    valid: Dataset
    test: Dataset
    cold_items: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    method: str = "custom"
    params: dict[str, Any] = field(default_factory=dict)

    def part(self, name: str) -> Dataset:
        if name not in PARTS:
            raise ValueError(f"unknown split part {name!r}; expected one of {PARTS}")
        return getattr(self, name)

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.method,
            **{p: self.part(p).n_interactions for p in PARTS},
            "users": self.train.n_users,
            "items": self.train.n_items,
            "cold_items": len(self.cold_items),
        }

    def save(self, folder: str | Path) -> Path:
        """Write the split as a predefined-split folder (see module docstring)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        # weights other than 1 (behaviour weights, a weight column) travel too: models read them;
        # so do behaviours other than the default (what each event was: view, cart, purchase)
        weighted = any((self.part(p).interactions["weight"] != 1).any() for p in PARTS)
        typed = any((self.part(p).interactions["behavior"] != DEFAULT_BEHAVIOR).any() for p in PARTS)
        for name in PARTS:
            ds = self.part(name)
            df = ds.interactions
            columns = {
                "user_id": ds.user_ids[df["user"].to_numpy()].astype(str),
                "item_id": ds.item_ids[df["item"].to_numpy()].astype(str),
                "timestamp": df["timestamp"].to_numpy(),
            }
            if weighted:
                columns["weight"] = df["weight"].to_numpy()
            if typed:
                columns["behavior"] = df["behavior"].to_numpy()
            pd.DataFrame(columns).to_csv(folder / f"{name}.tsv", sep="\t", index=False)
        _side_table(self.train.items, self.train.item_ids, "item_id").to_csv(
            folder / "items.tsv", sep="\t", index=False
        )
        # every user, so that the split read back indexes them as the models fitted on it do: a user
        # can be in no part (leave-one-out with new items drops the training item of a one-item user)
        _side_table(self.train.users, self.train.user_ids, "user_id").to_csv(
            folder / "users.tsv", sep="\t", index=False
        )
        meta = {
            "method": self.method,
            "params": self.params,
            "cold_items": self.train.item_ids[self.cold_items].astype(str).tolist(),
        }
        (folder / "split.json").write_text(json.dumps(meta, indent=2))
        return folder


def _side_table(table: pd.DataFrame, ids: np.ndarray, key: str) -> pd.DataFrame:
    """Every id with its side columns (an item's text); lists are joined with '|'."""
    out = pd.DataFrame({key: ids.astype(str)})
    for col in table.columns:
        if col == key:
            continue
        values = table[col]
        sample = values.dropna()
        if len(sample) and isinstance(sample.iloc[0], list | tuple | np.ndarray):
            out[col] = values.map(
                lambda v: "|".join(map(str, v)) if isinstance(v, list | tuple | np.ndarray) else ""
            )
        else:
            out[col] = values.to_numpy()
    return out


# ---------------------------------------------------------------------- helpers
def _parts_from_labels(ds: Dataset, labels: np.ndarray, method: str, params: dict, cold=None) -> Split:
    """Build a Split from a per-interaction label array (0 train, 1 valid, 2 test)."""
    inter = ds.interactions
    parts = [
        ds.with_interactions(inter[labels == code].reset_index(drop=True), name=f"{ds.name}/{p}")
        for code, p in enumerate(PARTS)
    ]
    cold_items = np.asarray([] if cold is None else cold, dtype=np.int64)
    return Split(*parts, cold_items=np.sort(cold_items), method=method, params=params)


def _check_ratios(ratios) -> np.ndarray:
    """Three proportions (train, valid, test), scaled to sum to 1: ``[8, 1, 1]`` is ``[0.8, 0.1, 0.1]``."""
    try:
        r = np.asarray(ratios, dtype=float)
    except (TypeError, ValueError):
        r = np.zeros(0)
    if r.shape != (3,) or not np.isfinite(r).all() or (r < 0).any() or r[0] <= 0:
        raise ConfigError(
            f"split ratios must be three finite non-negative numbers with train > 0, got {ratios!r}"
        )
    return r / r.sum()


def _per_user_counts(sizes: np.ndarray, ratios: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validation and test counts per user for a ratio split.

    ``floor(ratio * n)`` each, and a user whose share would round to zero still gives one
    interaction to test, then to validation, as long as at least one stays in training.
    """
    n_test = np.floor(ratios[2] * sizes + 1e-9).astype(np.int64)
    n_valid = np.floor(ratios[1] * sizes + 1e-9).astype(np.int64)
    for counts, r in ((n_test, ratios[2]), (n_valid, ratios[1])):
        bump = (counts == 0) & (r * sizes > 0) & (sizes - n_test - n_valid > 1)
        counts[bump] += 1
    return n_valid, n_test


def _rank_within_user(users: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Given interactions sorted by ``order`` (user-major), each one's position in its user's list
    and the user's list length, both aligned with the original interaction order."""
    u_sorted = users[order]
    starts = np.r_[0, np.flatnonzero(np.diff(u_sorted)) + 1]
    lengths = np.diff(np.r_[starts, len(order)])
    pos_sorted = np.arange(len(order)) - np.repeat(starts, lengths)
    pos = np.empty(len(order), dtype=np.int64)
    size = np.empty(len(order), dtype=np.int64)
    pos[order] = pos_sorted
    size[order] = np.repeat(lengths, lengths)
    return pos, size


def _ratio_labels(users: np.ndarray, order: np.ndarray, ratios: np.ndarray) -> np.ndarray:
    """Labels for per-user ratio splits: the last positions of each user's ordered list go to test,
    the ones before to validation."""
    if len(users) == 0:
        return np.zeros(0, dtype=np.int8)
    pos, size = _rank_within_user(users, order)
    n_valid, n_test = _per_user_counts(size, ratios)
    labels = np.zeros(len(users), dtype=np.int8)
    labels[pos >= size - n_test - n_valid] = 1
    labels[pos >= size - n_test] = 2
    return labels


# ---------------------------------------------------------------------- split methods
def random_split(ds: Dataset, ratios=(0.8, 0.1, 0.1), seed: int = 2024) -> Split:
    """Per-user random ratio split ("RO 8:1:1" in RecBole's terms)."""
    r = _check_ratios(ratios)
    rng = np.random.default_rng(seed)
    users = ds.interactions["user"].to_numpy()
    order = np.lexsort((rng.permutation(len(users)), users))
    labels = _ratio_labels(users, order, r)
    return _parts_from_labels(ds, labels, "random", {"ratios": r.tolist(), "seed": seed})


def user_temporal_split(ds: Dataset, ratios=(0.8, 0.1, 0.1)) -> Split:
    """Per-user temporal ratio split: each user's latest interactions go to validation and test."""
    r = _check_ratios(ratios)
    inter = ds.interactions
    users = inter["user"].to_numpy()
    order = np.lexsort((np.arange(len(users)), inter["timestamp"].to_numpy(), users))
    labels = _ratio_labels(users, order, r)
    return _parts_from_labels(ds, labels, "user_temporal", {"ratios": r.tolist()})


def global_temporal_split(ds: Dataset, ratios=(0.8, 0.1, 0.1)) -> Split:
    """One global time line: the oldest share trains, the next validates, the newest tests.

    Users who appear only after the cut have no training history (they are cold users). Interactions
    at the same time go to one part: a cut that falls among them moves back to their first (so a
    part ends before the next begins, whatever the file order; the shares are then near the ratios).
    """
    r = _check_ratios(ratios)
    n = ds.n_interactions
    ts = ds.interactions["timestamp"].to_numpy()
    order = np.lexsort((np.arange(n), ts))
    times = ts[order]
    cut1, cut2 = (
        int(np.searchsorted(times, times[c], side="left")) if c < n else n
        for c in (int(round(r[0] * n)), int(round((r[0] + r[1]) * n)))
    )
    labels = np.zeros(n, dtype=np.int8)
    labels[order[cut1:cut2]] = 1
    labels[order[cut2:]] = 2
    return _parts_from_labels(ds, labels, "global_temporal", {"ratios": r.tolist()})


def leave_one_out_split(ds: Dataset, cold_share: float = 0.0, seed: int = 2024) -> Split:
    """Each user's last interaction is the test item and the one before the validation item.

    Users with two interactions give one to test; users with one keep it in training. With
    ``cold_share > 0`` that share of the items (drawn with ``seed``) is new: their training
    interactions are dropped (validation and test keep theirs), so next-item models are tested on
    items they never saw — only a model that reads item text can rank them.
    """
    if not 0.0 <= float(cold_share) < 1.0:
        raise ConfigError(f"cold_share must be in [0, 1), got {cold_share}")
    params = {"cold_share": float(cold_share), "seed": seed} if cold_share else {}
    inter = ds.interactions
    users = inter["user"].to_numpy()
    if len(users) == 0:
        return _parts_from_labels(ds, np.zeros(0, dtype=np.int8), "leave_one_out", params)
    order = np.lexsort((np.arange(len(users)), inter["timestamp"].to_numpy(), users))
    pos, size = _rank_within_user(users, order)
    labels = np.zeros(len(users), dtype=np.int8)
    labels[(pos == size - 1) & (size >= 2)] = 2
    labels[(pos == size - 2) & (size >= 3)] = 1
    cold = None
    if cold_share:
        active = np.unique(inter["item"].to_numpy())
        cold = np.random.default_rng(seed).permutation(active)[: int(round(cold_share * len(active)))]
        labels[(labels == 0) & np.isin(inter["item"].to_numpy(), cold)] = -1  # dropped
    return _parts_from_labels(ds, labels, "leave_one_out", params, cold=cold)


def cold_start_split(
    ds: Dataset, cold_share: float = 0.2, ratios=(0.8, 0.1, 0.1), seed: int = 2024, stratify: bool = False
) -> Split:
    """Hold a share of items out of training entirely.

    A random ``cold_share`` of the items that have interactions is chosen; half of them (by item)
    put all their interactions into validation, the other half into test, so model selection and
    the final score see different cold items. The remaining (warm) interactions are split per user
    at random with ``ratios``.

    ``stratify``: draw the cold items across popularity rather than uniformly — the items, ordered by
    their number of interactions (ties in random order), are cut into as many equal strata as there
    are cold items and one item is drawn from each; consecutive strata pair up and a coin decides
    which of the two goes to validation. Every draw then holds out items of the same popularity
    profile, so the share of interactions that become cold varies much less from one seed to
    another, and validation's new items resemble test's (how much a model's figure still varies:
    ``benchmarks/results/cold-split-draws.md``).
    """
    if not 0 < cold_share < 1:
        raise ConfigError(f"cold_share must be between 0 and 1, got {cold_share}")
    if not isinstance(stratify, bool):
        raise ConfigError(f"stratify must be true or false, got {stratify!r}")
    r = _check_ratios(ratios)
    rng = np.random.default_rng(seed)
    inter = ds.interactions
    items = inter["item"].to_numpy()
    active, counts = np.unique(items, return_counts=True)
    n_cold = int(round(cold_share * len(active)))
    if stratify:
        cold_valid, cold_test = _stratified_cold(active, counts, n_cold, rng)
        cold = np.concatenate([cold_valid, cold_test])
    else:
        cold = rng.permutation(active)[:n_cold]
        cold_valid, cold_test = cold[: n_cold // 2], cold[n_cold // 2 :]
    is_cold = np.isin(items, cold)
    users = inter["user"].to_numpy()
    labels = np.zeros(len(users), dtype=np.int8)
    warm_idx = np.flatnonzero(~is_cold)
    warm_users = users[warm_idx]
    order = np.lexsort((rng.permutation(len(warm_idx)), warm_users))
    labels[warm_idx] = _ratio_labels(warm_users, order, r)
    labels[np.isin(items, cold_valid)] = 1
    labels[np.isin(items, cold_test)] = 2
    params = {"cold_share": cold_share, "ratios": r.tolist(), "seed": seed} | (
        {"stratify": True} if stratify else {}
    )
    return _parts_from_labels(ds, labels, "cold_start", params, cold=cold)


def _stratified_cold(
    active: np.ndarray, counts: np.ndarray, n_cold: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(validation, test) cold items: one item from each of ``n_cold`` equal popularity strata; of
    each pair of neighbouring strata, one item to each part (a coin says which); an odd last one goes
    to test, as the uniform draw's odd item does."""
    shuffled = rng.permutation(len(active))  # ties in popularity broken at random
    order = shuffled[np.argsort(-counts[shuffled], kind="stable")]
    edges = np.linspace(0, len(active), n_cold + 1).round().astype(np.int64)
    picked = active[order[edges[:-1] + (rng.random(n_cold) * np.diff(edges)).astype(np.int64)]]
    pairs = picked[: n_cold // 2 * 2].reshape(-1, 2)
    flip = rng.random(len(pairs)) < 0.5
    pairs[flip] = pairs[flip][:, ::-1]
    return pairs[:, 0], np.concatenate([pairs[:, 1], picked[n_cold // 2 * 2 :]])


def official_split(ds: Dataset, parts: pd.DataFrame, valid_share: float = 0.0, seed: int = 2024) -> Split:
    """The split a data source ships (``extras["official_split"]``: ``user_id``, ``item_id``, ``part`` =
    ``train`` / ``valid`` / ``test``), e.g. the LightGCN Gowalla/Yelp2018 files, used verbatim so results
    compare with published ones.

    ``valid_share > 0`` moves that share of each user's training interactions (at random, ``seed``) to
    validation, for early stopping without looking at the test part (the official files have none).
    """
    if not 0.0 <= float(valid_share) < 1.0:
        raise ConfigError(f"split method 'official': valid_share must be in [0, 1), got {valid_share}")
    codes = {p: c for c, p in enumerate(PARTS)}
    bad = sorted(set(parts["part"].astype(str)) - set(codes))
    if bad:
        raise ConfigError(f"official split: unknown part(s) {bad}; expected {list(PARTS)}")
    users = pd.Series(np.arange(ds.n_users), index=pd.Index(ds.user_ids.astype(str)))
    items = pd.Series(np.arange(ds.n_items), index=pd.Index(ds.item_ids.astype(str)))
    u = users.reindex(parts["user_id"].astype(str).to_numpy()).to_numpy()
    i = items.reindex(parts["item_id"].astype(str).to_numpy()).to_numpy()
    known = ~(np.isnan(u) | np.isnan(i))  # rows the cleaning dropped are not in the data set
    key = u[known].astype(np.int64) * ds.n_items + i[known].astype(np.int64)
    label = parts["part"].astype(str).map(codes).to_numpy()[known].astype(np.int8)
    table = pd.DataFrame({"key": key, "label": label}).drop_duplicates()
    clash = table["key"].duplicated(keep=False)
    if clash.any():
        raise DataError(
            None, f"official split: {int(clash.sum()) // 2} (user, item) pair(s) are in more than one part"
        )
    inter = ds.interactions
    ds_key = inter["user"].to_numpy(np.int64) * ds.n_items + inter["item"].to_numpy(np.int64)
    labels = pd.Series(table["label"].to_numpy(), index=table["key"].to_numpy()).reindex(ds_key).to_numpy()
    if np.isnan(labels).any():
        raise DataError(None, f"official split: {int(np.isnan(labels).sum())} interaction(s) are in no part")
    labels = labels.astype(np.int8)
    if valid_share > 0:
        train_idx = np.flatnonzero(labels == 0)
        train_users = inter["user"].to_numpy()[train_idx]
        rng = np.random.default_rng(seed)
        order = np.lexsort((rng.permutation(len(train_idx)), train_users))
        ratios = np.array([1.0 - valid_share, valid_share, 0.0])
        labels[train_idx] = _ratio_labels(train_users, order, ratios)
    return _parts_from_labels(ds, labels, "official", {"valid_share": float(valid_share), "seed": seed})


# ---------------------------------------------------------------------- predefined folders
def _read_part(path: Path, required: bool = True) -> pd.DataFrame | None:
    if not path.is_file():
        if required:
            raise DataError(path, "file not found (a predefined split needs train.tsv, valid.tsv, test.tsv)")
        return None
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except pd.errors.EmptyDataError:
        raise DataError(path, "empty file (expected a header 'user_id<TAB>item_id')", line=1) from None
    except pd.errors.ParserError as e:
        raise DataError(path, f"malformed TSV: {e}") from None
    return df


def load_predefined_split(folder: str | Path) -> Split:
    """Read a split folder (``train.tsv``, ``valid.tsv``, ``test.tsv``, optional ``items.tsv``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "split folder not found")
    frames = {}
    for name in PARTS:
        path = folder / f"{name}.tsv"
        df = _read_part(path)
        missing = {"user_id", "item_id"} - set(df.columns)
        if missing:
            raise DataError(
                path, f"header lacks {sorted(missing)} (found {list(df.columns)}; tab-separated?)", line=1
            )
        if "timestamp" in df.columns:
            ts = pd.to_numeric(df["timestamp"], errors="coerce")
            bad = np.flatnonzero(ts.isna().to_numpy() | (ts % 1 != 0).to_numpy())
            if len(bad):
                raise DataError(
                    path, f"invalid timestamp {df['timestamp'].iloc[bad[0]]!r}", line=int(bad[0]) + 2
                )
            df["timestamp"] = ts.astype("int64")
        if "weight" in df.columns:
            weight = pd.to_numeric(df["weight"], errors="coerce")
            bad = np.flatnonzero(~np.isfinite(weight.to_numpy(dtype=float)))
            if len(bad):
                raise DataError(path, f"invalid weight {df['weight'].iloc[bad[0]]!r}", line=int(bad[0]) + 2)
            df["weight"] = weight.astype("float32")
        empty = np.flatnonzero(((df["user_id"] == "") | (df["item_id"] == "")).to_numpy())
        if len(empty):
            raise DataError(path, "empty user_id or item_id", line=int(empty[0]) + 2)
        if name == "train" and not len(df):
            raise DataError(path, "the training part holds no interactions: nothing to learn from")
        df["part"] = name
        frames[name] = df
    side = {}
    for name, key in (("items", "item_id"), ("users", "user_id")):
        table = _read_part(folder / f"{name}.tsv", required=False)
        if table is not None and key not in table.columns:
            raise DataError(folder / f"{name}.tsv", f"header lacks {key!r}", line=1)
        if table is not None:  # the list columns Split.save joined with '|' are lists again
            from clarec.data.sources.base import LIST_COLUMNS

            for col in set(LIST_COLUMNS) & set(table.columns):
                table[col] = [[x for x in str(v).split("|") if x] for v in table[col].to_numpy(dtype=object)]
        side[name] = table
    for col in ("timestamp", "weight", "behavior"):  # filled in for the other parts, they would be made up
        having = [name for name, df in frames.items() if col in df.columns]
        if having and len(having) < len(frames):
            lacking = [f"{name}.tsv" for name in frames if name not in having]
            raise DataError(
                folder,
                f"{', '.join(f'{n}.tsv' for n in having)} give a {col} column and {', '.join(lacking)} "
                "do not: give it in every part or in none",
            )
    all_inter = pd.concat(frames.values(), ignore_index=True)
    if "timestamp" not in all_inter.columns:
        # Without times, the file order is the time line.
        all_inter["timestamp"] = np.arange(len(all_inter), dtype=np.int64)
    ds = Dataset.from_frame(
        all_inter,
        items=side["items"],
        users=side["users"],
        name=folder.name,
        keep_all_items=True,
        keep_all_users=True,
    )
    inter = ds.interactions
    labels = all_inter["part"].map({p: i for i, p in enumerate(PARTS)}).to_numpy().astype(np.int8)
    meta_path = folder / "split.json"
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DataError(meta_path, f"not readable JSON ({e})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("cold_items", []), list):
        raise DataError(meta_path, "must be a JSON object (with cold_items a list of item ids, if given)")
    if "cold_items" in meta:
        try:
            cold = ds.item_index([c for c in meta["cold_items"]]) if meta["cold_items"] else []
        except UnknownIdError as e:
            raise DataError(meta_path, f"cold_items: {e} (in none of the parts)") from None
        trained = np.intersect1d(cold, inter["item"].to_numpy()[labels == 0])
        if len(trained):
            raise DataError(
                meta_path,
                f"cold_items: {ds.item_ids[trained[0]]!r} has training interactions: not a cold item",
            )
    else:
        # Items never seen in training but present in valid/test are the cold items.
        train_items = np.unique(inter["item"].to_numpy()[labels == 0])
        cold = np.setdiff1d(np.unique(inter["item"].to_numpy()), train_items)
    split = _parts_from_labels(ds, labels, meta.get("method", "predefined"), {"path": str(folder)}, cold=cold)
    return split


# ---------------------------------------------------------------------- dispatch
SPLIT_METHODS = {
    "random": random_split,
    "ro": random_split,
    "user_temporal": user_temporal_split,
    "global_temporal": global_temporal_split,
    "leave_one_out": leave_one_out_split,
    "loo": leave_one_out_split,
    "cold_start": cold_start_split,
    "official": official_split,
}


def inject_noise(split: Split, share: float, seed: int = 2024) -> Split:
    """Add ``round(share × |train|)`` random false interactions to the training part only.

    Each is a uniformly drawn (user, item) pair among the users and items that have training
    interactions and that the user has in no part (train, valid or test), so test relevance is
    untouched and no true interaction is duplicated. A noisy interaction takes a timestamp drawn from
    its user's training interactions (temporal models see it inside the user's period), weight 1 and
    the training part's most common behaviour. Deterministic by ``seed``.
    """
    share = float(share)
    if not 0.0 <= share < 1.0:
        raise ConfigError(f"split noise must be in [0, 1), got {share}")
    train = split.train.interactions
    n_noise = int(round(share * len(train)))
    if n_noise == 0:
        return split
    rng = np.random.default_rng(seed)
    n_items = split.train.n_items
    users = np.unique(train["user"].to_numpy())
    items = np.unique(train["item"].to_numpy())
    taken = np.concatenate(
        [
            p.interactions["user"].to_numpy().astype(np.int64) * n_items + p.interactions["item"].to_numpy()
            for p in (split.train, split.valid, split.test)
        ]
    )
    taken = np.unique(taken)
    inside = np.isin(taken // n_items, users) & np.isin(taken % n_items, items)  # pairs noise could draw
    if len(users) * len(items) - inside.sum() < n_noise:
        raise ConfigError(f"split noise {share}: not enough free user-item pairs for {n_noise} interactions")
    chosen = np.empty(0, dtype=np.int64)
    while len(chosen) < n_noise:  # rejection: draws are rarely taken on sparse data
        draw = rng.choice(users, 2 * n_noise) * n_items + rng.choice(items, 2 * n_noise)
        draw = draw[~np.isin(draw, taken) & ~np.isin(draw, chosen)]
        _, first = np.unique(draw, return_index=True)
        chosen = np.concatenate([chosen, draw[np.sort(first)]])[:n_noise]
    u, i = chosen // n_items, chosen % n_items
    by_user = train.groupby("user")["timestamp"]
    starts = by_user.min().reindex(u).to_numpy()
    ends = by_user.max().reindex(u).to_numpy()
    stamps = starts + np.floor(rng.random(len(u)) * (ends - starts + 1))
    noise = pd.DataFrame(
        {"user": u, "item": i, "timestamp": stamps.astype(train["timestamp"].dtype), "weight": 1.0}
    )
    if "behavior" in train.columns:
        noise["behavior"] = train["behavior"].mode().iloc[0] if len(train) else ""
    noisy = pd.concat([train, noise[[c for c in train.columns if c in noise.columns]]], ignore_index=True)
    return Split(
        split.train.with_interactions(noisy),
        split.valid,
        split.test,
        cold_items=split.cold_items,
        method=split.method,
        params={**split.params, "noise": share, "noise_interactions": n_noise, "noise_seed": seed},
    )


def make_split(ds: Dataset | None, method: str, extras: dict | None = None, **params) -> Split:
    """Split by method name with keyword parameters, as in a config's ``split`` section.

    ``extras`` are the data source's extras (method ``official`` reads its ``official_split``).
    ``noise`` (a share, with ``noise_seed``) adds random false interactions to the training part
    afterwards (:func:`inject_noise`), for robustness comparisons."""
    noise = params.pop("noise", 0.0)
    noise_seed = params.pop("noise_seed", params.get("seed", 2024))
    split = _make_split(ds, method, extras or {}, **params)
    if not noise:
        return split
    try:
        return inject_noise(split, noise, noise_seed)
    except (TypeError, ValueError) as e:  # a share or seed of the wrong type or range
        raise ConfigError(f"split noise {noise!r} / noise_seed {noise_seed!r}: {e}") from None


def _make_split(ds: Dataset | None, method: str, extras: dict, **params) -> Split:
    if method == "predefined":
        if "path" not in params:
            raise ConfigError("split method 'predefined' needs a 'path' to a split folder")
        unknown = sorted(set(params) - {"path"})
        if unknown:
            raise ConfigError(f"split method 'predefined': unknown parameter(s) {unknown}; allowed: ['path']")
        return load_predefined_split(params["path"])
    if method not in SPLIT_METHODS:
        raise ConfigError(
            f"unknown split method {method!r}; available: predefined, {', '.join(SPLIT_METHODS)}"
        )
    if method == "official" and ds is not None:
        if "official_split" not in extras:
            raise ConfigError(
                "split method 'official' needs a data source that ships its split (e.g. gowalla-lightgcn)"
            )
        params = {"parts": extras["official_split"], **params}
    if ds is None:
        raise ConfigError(f"split method {method!r} needs a 'data' section")
    fn = SPLIT_METHODS[method]
    allowed = [p for p in inspect.signature(fn).parameters if p != "ds"]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(f"split method {method!r}: unknown parameter(s) {unknown}; allowed: {allowed}")
    try:
        return fn(ds, **params)
    except (TypeError, ValueError) as e:  # a parameter of the wrong type (seed: abc, ratios: abc)
        raise ConfigError(f"split method {method!r} with {params}: {e}") from None
