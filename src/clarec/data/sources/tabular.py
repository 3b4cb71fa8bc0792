"""Generic tables: CSV / TSV / Parquet / JSON lines with a column mapping, plus optional item and user tables."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from clarec.data.clean import BAD_TIMESTAMP, CleanReport, RowChecks, check_unknown_ids, parse_ids, to_float
from clarec.data.sources._io import read_jsonl, read_table
from clarec.data.sources.base import RawData, clean_interactions
from clarec.data.sources.text import parse_price
from clarec.errors import ConfigError, DataError

#: Keys of the ``columns`` mapping for interactions.
INTERACTION_KEYS = ("user", "item", "rating", "weight", "timestamp", "behavior")
TIMESTAMP_UNITS = ("s", "ms", "datetime")


def file_format(path: Path, fmt: str | None) -> str:
    """``csv``, ``tsv``, ``parquet`` or ``jsonl``, from ``fmt`` or the file name (``.gz`` ignored)."""
    if fmt is not None:
        if fmt not in ("csv", "tsv", "parquet", "jsonl"):
            raise ConfigError(f"format must be csv, tsv, parquet or jsonl, got {fmt!r}")
        return fmt
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    ext = suffixes[-1] if suffixes else ""
    known = {
        ".csv": "csv",
        ".tsv": "tsv",
        ".tab": "tsv",
        ".txt": "tsv",
        ".parquet": "parquet",
        ".pq": "parquet",
    }
    known |= {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}
    if ext not in known:
        raise ConfigError(f"cannot tell the format of {path.name}; pass format=csv|tsv|parquet|jsonl")
    return known[ext]


def read_any(
    path: Path,
    fmt: str,
    required: list[str],
    strict: bool,
    report: CleanReport,
    sep: str | None,
    encoding: str,
) -> tuple[pd.DataFrame, RowChecks]:
    """A table as string-ish columns plus ``_line`` (the row number for parquet), with pending checks."""
    if fmt in ("csv", "tsv"):
        p = read_table(
            path,
            sep=sep or ("," if fmt == "csv" else "\t"),
            required=required,
            encoding=encoding,
            strict=strict,
            quoting=fmt == "csv",
        )
        return p.frame, p.checks
    if fmt == "jsonl":
        df, checks = read_jsonl(path, strict=strict, encoding=encoding)
    else:
        if not path.is_file():
            raise DataError(path, "file not found")
        try:
            df = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises many types for a bad file
            raise DataError(path, f"cannot read parquet: {str(e).splitlines()[0]}") from None
        if not len(df):
            raise DataError(path, "no data rows")
        df["_line"] = np.arange(1, len(df) + 1, dtype=np.int64)
        checks = RowChecks(path, df["_line"].to_numpy())
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(
            path, f"lacks columns {missing}; found {[c for c in df.columns if c != '_line'][:8]}", line=1
        )
    return df, checks


#: Numbers at or above this read as seconds are past the year 5000: milliseconds, almost surely.
_MS_LIKE = 1e11


def _check_unit(raw: pd.Series, unit: str, path: Path) -> None:
    """Refuse a ``timestamp_unit`` the column plainly does not hold (judged on its typical value, so
    a few bad rows are still the row checks' business; 10,000 values spread over the file tell)."""
    text = raw.iloc[:: max(1, len(raw) // 10_000)].dropna().astype(str).str.strip()
    text = text[text != ""].reset_index(drop=True)
    if text.empty:
        return
    numbers = to_float(text)
    numeric = np.isfinite(numbers)
    _check_mixed(text, numbers, numeric, path)
    if unit == "datetime" and numeric.mean() > 0.5:
        raise DataError(
            path, f"the timestamp column holds numbers (e.g. {text.iloc[0]!r}): set timestamp_unit: s or ms"
        )
    if unit == "datetime":
        return
    if numeric.mean() < 0.5:
        raise DataError(
            path,
            f"the timestamp column does not hold numbers (e.g. {text.iloc[int(np.argmin(numeric))]!r}): "
            "for date strings set timestamp_unit: datetime",
        )
    typical = float(np.median(numbers[numeric]))
    if unit == "s" and typical >= _MS_LIKE:
        raise DataError(
            path,
            f"timestamps such as {text.iloc[0]!r} are past the year 5000 in seconds: set timestamp_unit: ms",
        )
    if unit == "ms" and typical >= _MS_LIKE * 1000:
        raise DataError(
            path,
            f"timestamps such as {text.iloc[0]!r} are past the year 5000 even as milliseconds "
            "(micro- or nanoseconds?): convert them to seconds or milliseconds first",
        )
    if unit == "ms" and 0 < typical < _MS_LIKE / 10:  # before May 1970 as milliseconds
        raise DataError(
            path,
            f"timestamps such as {text.iloc[0]!r} are in early 1970 as milliseconds: set timestamp_unit: s",
        )


def _check_mixed(text: pd.Series, numbers: np.ndarray, numeric: np.ndarray, path: Path) -> None:
    """Refuse a column of both epoch numbers and dates: whichever unit is set, the other kind's rows
    would be dropped as invalid timestamps."""
    epoch = numeric & (numbers >= 1e8)  # seconds after 1973 (or milliseconds): not a date's digits
    others = text[~numeric & text.str.contains(r"\d", regex=True)]
    if not epoch.any() or others.empty:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dates = pd.to_datetime(others, errors="coerce", format="mixed", utc=True).notna()
    if dates.any():
        raise DataError(
            path,
            f"the timestamp column mixes numbers and dates (e.g. {text[epoch].iloc[0]!r} and "
            f"{others[dates].iloc[0]!r}): write them all one way, then set timestamp_unit",
        )


def parse_dates(raw: pd.Series, timestamp_format: str | None = None) -> tuple[pd.Series, str]:
    """Date strings as UTC timestamps (NaT where a value does not parse), and what a NaT means.

    ``timestamp_format``: a ``strftime`` format (``"%d.%m.%Y"``), ``"ISO8601"`` or ``"mixed"`` (each
    value on its own: ``05.03.2024`` and ``13.03.2024`` are then read month-first and day-first). Left
    out: ISO 8601 when every value is (with or without a time), else the one format of the column's
    first value, which every value must follow — a column never mixes day-first and month-first.
    """
    if timestamp_format is None:
        iso = pd.to_datetime(raw, errors="coerce", utc=True, format="ISO8601")
        if not iso.isna().any():
            return iso, "is not a date"
        from pandas.tseries.api import guess_datetime_format

        first = next((v for v in raw if v.strip()), "")
        with warnings.catch_warnings():  # pandas says it read a day-first format: that is the point
            warnings.simplefilter("ignore", UserWarning)
            timestamp_format = guess_datetime_format(first) or guess_datetime_format(first, dayfirst=True)
        if timestamp_format is None:
            return pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]"), (
                f"is not a date in a format read from the first value ({first!r}): set timestamp_format"
            )
        why = (
            f"does not follow the format {timestamp_format!r} of the column's first value ({first!r}): "
            "set timestamp_format (e.g. '%d.%m.%Y', or 'mixed' to read each value on its own)"
        )
    else:
        why = f"is not a date in the format {timestamp_format!r}"
    try:
        return pd.to_datetime(raw, errors="coerce", utc=True, format=timestamp_format), why
    except ValueError as e:
        raise ConfigError(f"timestamp_format {timestamp_format!r}: {e}") from None


def read(
    path: str | Path,
    strict: bool = False,
    columns: dict | None = None,
    format: str | None = None,
    sep: str | None = None,
    encoding: str = "utf-8",
    rating_range: tuple[float, float] | None = None,
    timestamp_unit: str = "s",
    timestamp_format: str | None = None,
    item_file: str | None = None,
    item_columns: dict | None = None,
    text_columns: list[str] | None = None,
    category_sep: str = "|",
    user_file: str | None = None,
    user_columns: dict | None = None,
    unknown_ids: str = "keep",
) -> RawData:
    """Read interactions from any table with a column mapping.

    ``columns`` maps ``user``, ``item`` (required) and ``rating``, ``weight``, ``timestamp``,
    ``behavior`` to column names of the file; left out, it is ``user_id``, ``item_id`` and those of
    ``rating``, ``weight``, ``timestamp``, ``behavior`` the file has under these names.
    ``timestamp_unit`` is ``s`` or ``ms`` for numbers, or ``datetime`` for date strings (parsed as
    UTC; see :func:`parse_dates` for ``timestamp_format``); without a timestamp column the file order
    is used. A unit that does not fit the column (dates read as numbers, milliseconds as seconds) is
    refused with the unit to set.
    ``item_file`` (relative to the interaction file's folder, or absolute) is read with
    ``item_columns`` (``item`` required; ``title``, ``categories`` split on ``category_sep``,
    ``price``) and ``text_columns`` kept as they are. Without ``item_columns`` the item file's
    ``item_id`` column is the item, its ``title``, ``categories`` and ``price`` columns (where it has
    them) are read as such, and every other column is kept as text unless ``text_columns`` names the
    ones to keep — a first config loses none of the item file. ``user_file`` with ``user_columns``
    (``user`` required) keeps every other column as a profile field.
    """
    path = Path(path)
    mapped = columns is not None
    if mapped and not isinstance(columns, dict):
        raise ConfigError(
            f"columns must map user and item to the file's columns, e.g. {{user: uid, item: sku}}; got {columns!r}"
        )
    columns = dict(columns or {"user": "user_id", "item": "item_id"})
    bad = set(columns) - set(INTERACTION_KEYS)
    if bad or not {"user", "item"} <= set(columns):
        raise ConfigError(
            f"columns must map user and item (optionally {INTERACTION_KEYS[2:]}); got {sorted(columns)}"
        )
    if timestamp_unit not in TIMESTAMP_UNITS:
        raise ConfigError(f"timestamp_unit must be one of {TIMESTAMP_UNITS}, got {timestamp_unit!r}")
    report = CleanReport()
    fmt = file_format(path, format)
    df, checks = read_any(path, fmt, list(columns.values()), strict, report, sep, encoding)
    if not mapped:  # the default mapping takes the optional columns a file has under their own names
        columns |= {key: key for key in INTERACTION_KEYS[2:] if key in df.columns}
    frame = pd.DataFrame({"_line": df["_line"].to_numpy()})
    for key, col in columns.items():
        name = {"user": "user_id", "item": "item_id"}.get(key, key)
        frame[name] = df[col].to_numpy(dtype=object)
    frame = frame[[c for c in frame.columns if c != "_line"] + ["_line"]]
    has_ts = "timestamp" in frame.columns
    if timestamp_format is not None and timestamp_unit != "datetime":
        raise ConfigError("timestamp_format is for timestamp_unit: datetime (date strings)")
    if has_ts:
        _check_unit(frame["timestamp"], timestamp_unit, path)
    if has_ts and timestamp_unit == "datetime":
        raw = pd.Series(frame["timestamp"].astype(str), dtype=object)
        parsed, why = parse_dates(raw, timestamp_format)
        checks.flag(BAD_TIMESTAMP, parsed.isna().to_numpy(), lambda p: f"timestamp {raw.iloc[p]!r} {why}")
        epoch = pd.Timestamp("1970-01-01", tz="UTC")
        secs = ((parsed - epoch) // pd.Timedelta(seconds=1)).fillna(0).astype("int64")
        frame["timestamp"] = secs.to_numpy()
    inter = clean_interactions(
        frame,
        checks,
        path,
        report,
        strict,
        rating_range=tuple(rating_range) if rating_range else None,
        has_timestamp=has_ts and timestamp_unit != "datetime",
        timestamp_scale=1000 if timestamp_unit == "ms" else 1,
    )
    items = users = None
    if item_file is not None:
        items = _read_items(
            _side(path, item_file),
            item_columns,
            text_columns,
            category_sep,
            strict,
            report,
            sep,
            encoding,
        )
        inter = check_unknown_ids(inter, items, "item_id", path, report, unknown_ids)
    if user_file is not None:
        users = _read_users(
            _side(path, user_file), user_columns or {"user": "user_id"}, strict, report, sep, encoding
        )
        inter = check_unknown_ids(inter, users, "user_id", path, report, unknown_ids)
    return RawData(inter.drop(columns="_line"), items, users, report=report, name=path.stem.split(".")[0])


def _side(path: Path, name: str) -> Path:
    p = Path(name)
    return p if p.is_absolute() else path.parent / p


def _read_items(
    path: Path,
    mapping: dict | None,
    text_columns: list[str] | None,
    category_sep: str,
    strict: bool,
    report: CleanReport,
    sep: str | None,
    encoding: str,
) -> pd.DataFrame:
    """The item table; ``mapping`` None: the default names (see :func:`read`)."""
    given = mapping is not None
    mapping = dict(mapping) if given else {"item": "item_id"}
    bad = set(mapping) - {"item", "title", "categories", "price"}
    if bad or "item" not in mapping:
        raise ConfigError(
            f"item_columns must map item (optionally title, categories, price); got {sorted(mapping)}"
        )
    fmt = file_format(path, None)
    df, checks = read_any(
        path, fmt, list(mapping.values()) + list(text_columns or []), strict, report, sep, encoding
    )
    if not given:
        mapping |= {key: key for key in ("title", "categories", "price") if key in df.columns}
    if text_columns is None:
        text_columns = [] if given else [c for c in df.columns if c != "_line" and c not in mapping.values()]
    parse_ids(checks, df, [mapping["item"]])
    df = df.loc[checks.resolve(report, strict)].reset_index(drop=True)
    out = pd.DataFrame({"item_id": df[mapping["item"]].astype(str).str.strip().to_numpy()})
    if "title" in mapping:
        t = pd.Series(df[mapping["title"]].to_numpy(dtype=object)).astype(str).str.strip()
        out["title"] = t.where((t != "") & df[mapping["title"]].notna().to_numpy()).to_numpy()
    for col in text_columns:
        out[col] = df[col].to_numpy(dtype=object)
    if "categories" in mapping:
        out["categories"] = [
            _as_list(v, category_sep) for v in df[mapping["categories"]].to_numpy(dtype=object)
        ]
    else:
        out["categories"] = [[] for _ in range(len(out))]
    out["price"] = (
        parse_price(pd.Series(df[mapping["price"]].to_numpy(dtype=object))) if "price" in mapping else np.nan
    )
    return out


def _as_list(value, sep: str) -> list[str]:
    if isinstance(value, list | tuple | np.ndarray):
        return [str(v).strip() for v in value if str(v).strip()]
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return [x.strip() for x in str(value).split(sep) if x.strip()]


def _read_users(
    path: Path, mapping: dict, strict: bool, report: CleanReport, sep: str | None, encoding: str
) -> pd.DataFrame:
    if set(mapping) != {"user"}:
        raise ConfigError(f"user_columns must map user only (other columns are kept); got {sorted(mapping)}")
    fmt = file_format(path, None)
    df, checks = read_any(path, fmt, [mapping["user"]], strict, report, sep, encoding)
    parse_ids(checks, df, [mapping["user"]])
    df = df.loc[checks.resolve(report, strict)].drop(columns="_line").reset_index(drop=True)
    df = df.rename(columns={mapping["user"]: "user_id"})
    df["user_id"] = df["user_id"].astype(str).str.strip()
    return df
