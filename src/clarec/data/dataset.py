"""The one data type that flows through clarec.

A :class:`Dataset` holds interactions between users and items with contiguous integer indices
(``0..n_users-1``, ``0..n_items-1``), the maps between those indices and the original ids, and
optional item and user tables. Splits are three ``Dataset`` objects that share the same maps, so an
index means the same user or item in train, valid and test.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from clarec.errors import ConfigError, DataError, UnknownIdError

#: Columns of :attr:`Dataset.interactions`, with their dtypes.
INTERACTION_DTYPES = {
    "user": "int32",
    "item": "int32",
    "timestamp": "int64",
    "weight": "float32",
    "behavior": "string",
}
DEFAULT_BEHAVIOR = "interaction"


def _id_order(uniq) -> np.ndarray:
    """The order that sorts distinct string ids: numeric when every id is an integer (ids of one value,
    "1" and "01", or integers past float precision, by their text), else lexicographic — never by the
    order they first appear in."""
    as_num = pd.to_numeric(pd.Series(uniq), errors="coerce")
    if len(uniq) and as_num.notna().all() and (as_num % 1 == 0).all():
        return np.lexsort((np.asarray(uniq, dtype=str), as_num.to_numpy(dtype=float)))
    return np.argsort(np.asarray(uniq, dtype=object), kind="stable")


def _index_ids(values: pd.Series, extra: pd.Series | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The index of each of ``values`` among the distinct ids of ``values`` and ``extra`` (as strings,
    in :func:`_id_order`), and those ids. Works on the column's own storage (no Python string per
    row), so tens of millions of rows stay cheap."""
    pool = values.astype(str)
    if extra is not None:
        pool = pd.concat([pool, extra.astype(str)], ignore_index=True)
    codes, uniq = pd.factorize(pool)
    order = _id_order(uniq)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    ids = np.asarray(uniq, dtype=object)[order]
    return rank[codes[: len(values)]], ids


def _seconds(values: pd.Series) -> np.ndarray:
    """Timestamps as int64 seconds: datetimes converted (a time zone read as UTC; naive ones are UTC),
    integers as they are."""
    if pd.api.types.is_timedelta64_dtype(values):
        raise ConfigError("timestamp holds time differences (timedelta): give integer seconds or datetimes")
    if values.dtype == object and len(values) and all(isinstance(v, datetime) for v in values):
        # datetime objects, possibly of several time zones (pandas keeps them as objects)
        return _seconds(pd.to_datetime(values, utc=True))
    if pd.api.types.is_datetime64_any_dtype(values):
        if values.isna().any():
            raise ConfigError(
                f"timestamp: {int(values.isna().sum())} missing datetime(s) (NaT): drop or fill them"
            )
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        return values.to_numpy().astype("datetime64[s]").astype(np.int64)
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "iu":  # every source's: no per-row check
        if values.dtype.kind == "u" and len(values) and values.max() > np.iinfo(np.int64).max:
            raise ConfigError(f"timestamp {values.max()} is beyond the int64 seconds clarec keeps")
        return values.to_numpy().astype(np.int64)
    try:
        numbers = pd.to_numeric(values, errors="raise")
    except (ValueError, TypeError):
        raise ConfigError(
            f"timestamp holds {str(values.iloc[0])!r}: give integer seconds or datetimes (pd.to_datetime)"
        ) from None
    if numbers.isna().any() or (numbers % 1 != 0).any():
        raise ConfigError("timestamp must be whole seconds without gaps (or datetimes)")
    if (numbers.abs() >= 2.0**63).any():
        raise ConfigError(f"timestamp {numbers.abs().max()} is beyond the int64 seconds clarec keeps")
    return numbers.to_numpy().astype(np.int64)


def _side_table(path: Path) -> pd.DataFrame | None:
    """A saved side table; one without columns (a source with no user table) kept no row count, so
    it comes back as ``None`` (an empty row per id)."""
    table = pd.read_parquet(path)
    return table if len(table.columns) else None


class Dataset:
    """Interactions, id maps and side tables.

    Args:
        interactions: frame with integer columns ``user`` and ``item`` (indices) and optional
            ``timestamp`` (int64 seconds, or the position in a sequence when the source has no
            times), ``weight`` (float), ``behavior`` (string) and ``rating`` (float, explicit
            feedback, kept only when the source has it).
        user_ids: original user id of each user index.
        item_ids: original item id of each item index.
        items: item table indexed by item index (``title``, text fields, ``categories``, ``price``...).
        users: user table indexed by user index (profile fields).
        name: a short name used in reports.
    """

    def __init__(
        self,
        interactions: pd.DataFrame,
        user_ids: Sequence,
        item_ids: Sequence,
        items: pd.DataFrame | None = None,
        users: pd.DataFrame | None = None,
        name: str = "dataset",
    ):
        self.user_ids = np.asarray(user_ids, dtype=object)
        self.item_ids = np.asarray(item_ids, dtype=object)
        self.interactions = self._normalise(interactions, len(self.user_ids), len(self.item_ids))
        self.items = self._table(items, len(self.item_ids))
        self.users = self._table(users, len(self.user_ids))
        self.name = name
        self._user_map: dict[str, int] | None = None
        self._item_map: dict[str, int] | None = None

    # ------------------------------------------------------------------ construction
    @staticmethod
    def _normalise(df: pd.DataFrame, n_users: int, n_items: int) -> pd.DataFrame:
        missing = {"user", "item"} - set(df.columns)
        if missing:
            raise ValueError(f"interactions lack columns {sorted(missing)}")
        out = pd.DataFrame(index=pd.RangeIndex(len(df)))
        out["user"] = df["user"].to_numpy().astype("int32")
        out["item"] = df["item"].to_numpy().astype("int32")
        if "timestamp" in df.columns:
            out["timestamp"] = df["timestamp"].to_numpy().astype("int64")
        else:
            out["timestamp"] = np.arange(len(df), dtype="int64")
        out["weight"] = (
            df["weight"].to_numpy().astype("float32") if "weight" in df.columns else np.float32(1.0)
        )
        if "behavior" in df.columns:
            out["behavior"] = df["behavior"].astype("string").to_numpy()
        else:
            out["behavior"] = DEFAULT_BEHAVIOR
        out = out.astype(INTERACTION_DTYPES)
        if "rating" in df.columns:  # optional: explicit feedback before it is made implicit
            out["rating"] = pd.to_numeric(df["rating"], errors="coerce").to_numpy().astype("float32")
        if len(out):
            if out["user"].min() < 0 or out["user"].max() >= n_users:
                raise ValueError("interaction user index out of range")
            if out["item"].min() < 0 or out["item"].max() >= n_items:
                raise ValueError("interaction item index out of range")
        return out

    @staticmethod
    def _table(table: pd.DataFrame | None, n: int) -> pd.DataFrame:
        if table is None:
            return pd.DataFrame(index=pd.RangeIndex(n))
        if len(table) != n:
            raise ValueError(f"side table has {len(table)} rows for {n} ids")
        return table.reset_index(drop=True)

    @classmethod
    def from_frame(
        cls,
        interactions: pd.DataFrame,
        items: pd.DataFrame | None = None,
        users: pd.DataFrame | None = None,
        name: str = "dataset",
        keep_all_items: bool = False,
        keep_all_users: bool = False,
    ) -> Dataset:
        """Build a dataset from frames with original ids.

        ``interactions`` has columns ``user_id``, ``item_id`` and optionally ``timestamp``,
        ``weight``, ``behavior``. ``items`` (column ``item_id``) and ``users`` (column ``user_id``)
        are side tables; rows for ids without interactions are dropped unless ``keep_all_items``
        / ``keep_all_users`` is set (useful for catalogues with items not yet interacted with).
        Ids are compared as text (``10`` and ``"10"`` are one id, ``10.0`` another). ``timestamp`` is
        integer seconds, or datetimes (converted to seconds). Remove repeated (user, item) pairs
        first (:func:`clarec.data.filters.dedupe`): a split could put a pair in train and test.

        Raises:
            ConfigError: a missing id column, a missing id (row named), timestamps that are neither,
                or a side table none of whose ids are in the interactions (ids spelled otherwise).
        """
        for col in ("user_id", "item_id"):
            if col not in interactions.columns:
                raise ConfigError(f"interactions lack column {col!r}")
            missing = np.flatnonzero(interactions[col].isna().to_numpy())
            if len(missing):
                raise ConfigError(
                    f"interactions: {len(missing)} row(s) without a {col}, e.g. row {int(missing[0])}: "
                    "drop or fill them first"
                )
        for table, key in ((items, "item_id"), (users, "user_id")):
            if table is not None and key not in table.columns:
                raise ConfigError(
                    f"the {key[:4]} table lacks column {key!r} (it has {[str(c) for c in table.columns]})"
                )
        inter = pd.DataFrame(
            {c: interactions[c].to_numpy() for c in interactions.columns if c not in ("user_id", "item_id")},
            index=pd.RangeIndex(len(interactions)),
        )
        if "timestamp" in inter.columns:
            inter["timestamp"] = _seconds(interactions["timestamp"])
        inter["user"], user_ids = _index_ids(
            interactions["user_id"], users["user_id"] if keep_all_users and users is not None else None
        )
        inter["item"], item_ids = _index_ids(
            interactions["item_id"], items["item_id"] if keep_all_items and items is not None else None
        )
        for table, key, ids in ((items, "item_id", item_ids), (users, "user_id", user_ids)):
            if table is not None and len(table) and not table[key].astype(str).isin(ids).any():
                raise ConfigError(
                    f"none of the {len(table)} ids of the {key[:-3]} table is in the interactions (e.g. "
                    f"{str(table[key].iloc[0])!r} in the table, {str(ids[0])!r} in the interactions): "
                    "write them alike (ids are compared as text)"
                )
        return cls(
            inter,
            user_ids,
            item_ids,
            items=cls._align(items, "item_id", item_ids),
            users=cls._align(users, "user_id", user_ids),
            name=name,
        )

    @staticmethod
    def _align(table: pd.DataFrame | None, key: str, ids: np.ndarray) -> pd.DataFrame | None:
        """Reorder a side table to index order; ids without a row get an empty row."""
        if table is None:
            return None
        t = table.copy()
        t[key] = t[key].astype(str)
        t = t.drop_duplicates(key, keep="first").set_index(key)
        t = t.reindex(pd.Index(ids, name=key))
        return t.reset_index()

    def with_interactions(self, interactions: pd.DataFrame, name: str | None = None) -> Dataset:
        """A dataset with other interactions (index columns) but the same maps and side tables."""
        ds = Dataset.__new__(Dataset)
        ds.user_ids, ds.item_ids = self.user_ids, self.item_ids
        ds.interactions = self._normalise(interactions, self.n_users, self.n_items)
        ds.items, ds.users = self.items, self.users
        ds.name = name or self.name
        ds._user_map, ds._item_map = self._user_map, self._item_map
        return ds

    # ------------------------------------------------------------------ sizes and maps
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_interactions(self) -> int:
        return len(self.interactions)

    def __len__(self) -> int:
        return self.n_interactions

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, users={self.n_users}, items={self.n_items}, "
            f"interactions={self.n_interactions})"
        )

    def _maps(self) -> tuple[dict[str, int], dict[str, int]]:
        if self._user_map is None:
            self._user_map = {str(u): i for i, u in enumerate(self.user_ids)}
        if self._item_map is None:
            self._item_map = {str(u): i for i, u in enumerate(self.item_ids)}
        return self._user_map, self._item_map

    def user_index(self, ids) -> np.ndarray | int:
        """Index of one user id or an array of ids; raises :class:`UnknownIdError`."""
        return self._lookup(self._maps()[0], ids, "user")

    def item_index(self, ids) -> np.ndarray | int:
        """Index of one item id or an array of ids; raises :class:`UnknownIdError`."""
        return self._lookup(self._maps()[1], ids, "item")

    @staticmethod
    def _lookup(mapping: dict[str, int], ids, kind: str):
        if isinstance(ids, str | int | float | np.integer | np.floating):  # one id
            try:
                return mapping[str(ids)]
            except KeyError:
                raise UnknownIdError(f"unknown {kind} id {ids!r}") from None
        out = np.empty(len(ids), dtype=np.int64)
        for n, i in enumerate(ids):
            try:
                out[n] = mapping[str(i)]
            except KeyError:
                raise UnknownIdError(f"unknown {kind} id {i!r}") from None
        return out

    # ------------------------------------------------------------------ views
    def to_csr(self, weighted: bool = False) -> sp.csr_matrix:
        """User × item matrix; binary by default, summed weights when ``weighted``."""
        u = self.interactions["user"].to_numpy()
        i = self.interactions["item"].to_numpy()
        w = self.interactions["weight"].to_numpy() if weighted else np.ones(len(u), dtype=np.float32)
        m = sp.csr_matrix((w, (u, i)), shape=(self.n_users, self.n_items), dtype=np.float32)
        m.sum_duplicates()
        if not weighted:
            m.data[:] = 1.0
        return m

    def item_popularity(self) -> np.ndarray:
        """Number of distinct users per item (length ``n_items``)."""
        return np.asarray(self.to_csr().sum(axis=0)).ravel()

    def user_histories(self, column: str = "item") -> list[np.ndarray]:
        """Each user's items in time order (ties kept in file order); with ``column="weight"``, the
        interactions' weights in the same order."""
        df = self.interactions.sort_values(["user", "timestamp"], kind="stable")
        values = df[column].to_numpy()
        bounds = np.searchsorted(df["user"].to_numpy(), np.arange(self.n_users + 1))
        return [values[bounds[u] : bounds[u + 1]] for u in range(self.n_users)]

    def pair_hashes(self) -> np.ndarray:
        """Sorted distinct uint64 hashes of the (user id, item id) pairs, whatever the indexing: to
        tell whether two parts share pairs (an encoder adapted on one split's training pairs, a run on
        another split)."""
        inter = self.interactions
        frame = pd.DataFrame(
            {
                "user": np.asarray(self.user_ids).astype(str)[inter["user"].to_numpy()],
                "item": np.asarray(self.item_ids).astype(str)[inter["item"].to_numpy()],
            }
        )
        return np.unique(pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64))

    def fingerprint(self) -> str:
        """A short digest of the interactions (every column, in order) and of the user and item id
        lists: two parts that differ in any pair, time or weight, or index their ids otherwise, have
        different fingerprints (a resumed fit refuses another split of the same shape)."""
        h = hashlib.blake2b(digest_size=8)
        h.update(pd.util.hash_pandas_object(self.interactions, index=False).to_numpy().tobytes())
        for ids in (self.user_ids, self.item_ids):
            h.update(pd.util.hash_array(np.asarray(ids).astype(str)).tobytes())
        return f"{self.n_users}x{self.n_items}:{self.n_interactions}:{h.hexdigest()}"

    def describe(self) -> dict:
        """Counts and density, for reports."""
        n_pairs = self.to_csr().nnz
        return {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": self.n_interactions,
            "density": n_pairs / max(1, self.n_users * self.n_items),
            "item_columns": [c for c in self.items.columns if c != "item_id"],
            "user_columns": [c for c in self.users.columns if c != "user_id"],
        }

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the dataset to a folder of parquet files."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.interactions.to_parquet(path / "interactions.parquet", index=False)
        pd.DataFrame({"user_id": self.user_ids.astype(str)}).to_parquet(
            path / "user_ids.parquet", index=False
        )
        pd.DataFrame({"item_id": self.item_ids.astype(str)}).to_parquet(
            path / "item_ids.parquet", index=False
        )
        self.items.to_parquet(path / "items.parquet", index=False)
        self.users.to_parquet(path / "users.parquet", index=False)
        (path / "dataset.json").write_text(json.dumps({"name": self.name, "format": 1}))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Dataset:
        """Read a folder written by :meth:`save`."""
        path = Path(path)
        meta_file = path / "dataset.json"
        if not meta_file.is_file():
            raise DataError(path, "not a saved clarec dataset (dataset.json missing)")
        try:
            meta = json.loads(meta_file.read_text())
            return cls(
                pd.read_parquet(path / "interactions.parquet"),
                pd.read_parquet(path / "user_ids.parquet")["user_id"].to_numpy(dtype=object),
                pd.read_parquet(path / "item_ids.parquet")["item_id"].to_numpy(dtype=object),
                items=_side_table(path / "items.parquet"),
                users=_side_table(path / "users.parquet"),
                name=meta.get("name", path.name),
            )
        except (OSError, ValueError, KeyError) as e:
            raise DataError(path, f"cannot read saved dataset: {e}") from None
