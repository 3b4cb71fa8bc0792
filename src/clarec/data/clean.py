"""Cleaning with a report: every dropped or repaired row is counted, never silently lost.

Loaders parse a file into a frame of raw string columns plus ``_line`` (the 1-based line number in
the file), flag bad rows per reason with :class:`RowChecks`, and either raise one
:class:`~clarec.errors.DataError` naming the first bad line (``strict``) or drop the rows and count
them in a :class:`CleanReport` (lenient, the default).

Reasons that make a row unusable (malformed row, bad encoding, out-of-range rating, missing/invalid
timestamp) raise in strict mode. Duplicates and unknown ids are facts of real data sets (Amazon
5-core files repeat reviews; some reviewed items have no metadata), so they are counted in both modes
and never raise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from clarec.errors import DataError

MALFORMED = "malformed row"
BAD_ENCODING = "bad encoding"
DUPLICATE = "duplicate"
UNKNOWN_ID = "unknown id"
RATING_RANGE = "out-of-range rating"
BAD_TIMESTAMP = "missing/invalid timestamp"
NO_INTERACTIONS = "no interactions"

#: Reasons that raise in strict mode (the others are only counted).
STRICT_REASONS = frozenset({MALFORMED, BAD_ENCODING, RATING_RANGE, BAD_TIMESTAMP})

DROPPED = "dropped"


@dataclass
class Issue:
    """One reason in one file: how many rows, the first line, and what was done with them."""

    file: str
    reason: str
    count: int
    first_line: int | None = None
    action: str = DROPPED


@dataclass
class FilterStep:
    """What one filter removed (see :mod:`clarec.data.filters`)."""

    name: str
    params: dict
    removed_interactions: int
    removed_users: int
    removed_items: int


@dataclass
class CleanReport:
    """Counts of what loading and filtering did to a data set.

    ``rows_read`` counts data rows of the interaction file(s) (headers and blank lines excluded);
    ``rows_kept`` the interactions that survived cleaning (before filters). ``issues`` lists each
    reason per file, ``steps`` each filter applied afterwards.
    """

    rows_read: int = 0
    rows_kept: int = 0
    issues: list[Issue] = field(default_factory=list)
    steps: list[FilterStep] = field(default_factory=list)

    def add(
        self,
        file: str | Path,
        reason: str,
        count: int,
        first_line: int | None = None,
        action: str = DROPPED,
    ) -> None:
        """Record ``count`` rows of ``file`` with ``reason`` (no-op when ``count`` is 0): one entry
        per file, reason and action, its first line the earliest recorded."""
        if not count:
            return
        for issue in self.issues:
            if (issue.file, issue.reason, issue.action) == (str(file), reason, action):
                issue.count += int(count)
                if first_line is not None:
                    lines = [x for x in (issue.first_line, first_line) if x is not None]
                    issue.first_line = min(lines)
                return
        self.issues.append(Issue(str(file), reason, int(count), first_line, action))

    def add_step(self, step: FilterStep) -> None:
        self.steps.append(step)

    def count(self, reason: str, file: str | None = None) -> int:
        """Total rows recorded for ``reason`` (optionally only in files whose name ends with ``file``)."""
        return sum(
            i.count for i in self.issues if i.reason == reason and (file is None or i.file.endswith(file))
        )

    @property
    def counts(self) -> dict[str, int]:
        """Rows per reason, summed over files."""
        out: dict[str, int] = {}
        for i in self.issues:
            out[i.reason] = out.get(i.reason, 0) + i.count
        return out

    def merge(self, other: CleanReport) -> None:
        """Add another report's counts (used when a data set is read from several files)."""
        self.rows_read += other.rows_read
        self.rows_kept += other.rows_kept
        for i in other.issues:
            self.add(i.file, i.reason, i.count, i.first_line, i.action)
        self.steps.extend(other.steps)

    def to_dict(self) -> dict:
        return {
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "issues": [vars(i).copy() for i in self.issues],
            "steps": [vars(s).copy() for s in self.steps],
        }

    def __str__(self) -> str:
        lines = [f"rows read {self.rows_read}, kept {self.rows_kept}"]
        if self.issues:
            rows = [("file", "reason", "rows", "first line", "action")]
            rows += [
                (
                    Path(i.file).name,
                    i.reason,
                    str(i.count),
                    "" if i.first_line is None else str(i.first_line),
                    i.action,
                )
                for i in self.issues
            ]
            lines += _table(rows)
        else:
            lines.append("no problems found")
        if self.steps:
            rows = [("filter", "params", "-interactions", "-users", "-items")]
            rows += [
                (
                    s.name,
                    ", ".join(f"{k}={v}" for k, v in s.params.items()),
                    str(s.removed_interactions),
                    str(s.removed_users),
                    str(s.removed_items),
                )
                for s in self.steps
            ]
            lines += _table(rows)
        return "\n".join(lines)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    return out


Detail = str | Callable[[int], str] | None


class RowChecks:
    """Collects per-row problems of one file, then raises (strict) or drops and counts (lenient).

    Args:
        path: the file, for messages.
        lines: 1-based file line of each row of the frame being checked.
    """

    def __init__(self, path: str | Path, lines: np.ndarray):
        self.path = str(path)
        self.lines = np.asarray(lines, dtype=np.int64)
        self._flags: list[tuple[str, np.ndarray, Detail, str]] = []
        self._outside: list[tuple[str, list[tuple[int, str]]]] = []
        #: Optional ``hint(position) -> str | None`` saying a row has the wrong number of fields;
        #: such rows are reported as malformed whatever value check flagged them first.
        self.row_hint: Callable[[int], str | None] | None = None

    def flag(self, reason: str, mask, detail: Detail = None, action: str = DROPPED) -> None:
        """Flag rows where ``mask`` is true; ``detail(position)`` explains the first one."""
        m = np.asarray(mask, dtype=bool)
        if m.any():
            self._flags.append((reason, m, detail, action))

    def flag_lines(self, reason: str, items: list[tuple[int, str]]) -> None:
        """Flag lines that never became rows (e.g. a parser skipped them): ``(line, detail)`` pairs."""
        if items:
            self._outside.append((reason, items))

    @property
    def n_outside(self) -> int:
        """Lines flagged without becoming rows (they still count as rows read)."""
        return sum(len(items) for _, items in self._outside)

    def resolve(self, report: CleanReport, strict: bool) -> np.ndarray:
        """Raise at the first bad line (strict) or record counts; returns the mask of rows to keep."""
        self._apply_hint()
        if strict:
            self._raise_first()
        keep = np.ones(len(self.lines), dtype=bool)
        for reason, items in self._outside:
            report.add(self.path, reason, len(items), min(line for line, _ in items))
        for reason, mask, _, action in self._flags:
            new = mask & keep if action == DROPPED else mask
            if new.any():
                report.add(self.path, reason, int(new.sum()), int(self.lines[new].min()), action)
            if action == DROPPED:
                keep &= ~mask
        return keep

    def _apply_hint(self) -> None:
        if self.row_hint is None or not self._flags:
            return
        flagged = np.zeros(len(self.lines), dtype=bool)
        for reason, mask, _, _ in self._flags:
            if reason in STRICT_REASONS:
                flagged |= mask
        wrong = np.zeros(len(self.lines), dtype=bool)
        for pos in np.flatnonzero(flagged):
            wrong[pos] = self.row_hint(int(pos)) is not None
        if wrong.any():
            hint = self.row_hint
            self._flags.insert(0, (MALFORMED, wrong, lambda p: hint(p) or "", DROPPED))

    def _raise_first(self) -> None:
        best: tuple[int, str] | None = None
        for reason, items in self._outside:
            if reason in STRICT_REASONS:
                line, detail = min(items)
                if best is None or line < best[0]:
                    best = (line, f"{reason}: {detail}" if detail else reason)
        for reason, mask, detail, _ in self._flags:
            if reason not in STRICT_REASONS:
                continue
            pos = np.flatnonzero(mask)
            first = pos[np.argmin(self.lines[pos])]
            line = int(self.lines[first])
            if best is None or line < best[0]:
                text = detail(int(first)) if callable(detail) else detail
                best = (line, f"{reason}: {text}" if text else reason)
        if best is not None:
            raise DataError(self.path, best[1], line=best[0])


def parse_ids(checks: RowChecks, frame: pd.DataFrame, columns: list[str], detail: Detail = None) -> None:
    """Flag rows whose id columns are empty as malformed (``detail`` may explain better, e.g. field count)."""
    for col in columns:
        s = frame[col]
        bad = (s.isna() | (s.astype(str).str.strip() == "")).to_numpy()
        checks.flag(MALFORMED, bad, detail or f"empty {col}")


def to_float(raw: pd.Series) -> np.ndarray:
    """``raw`` as float64, NaN where a value is not a number (``pd.to_numeric(errors="coerce")``).

    A column read into Arrow strings is first cast by Arrow, which takes a fraction of the time on
    millions of rows; any value Arrow does not read as a plain number (spaces, empty, words) sends the
    whole column to pandas, so both paths give the same answer.
    """
    if isinstance(raw.dtype, pd.StringDtype) and raw.dtype.storage == "pyarrow":
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            cast = pc.cast(pa.array(raw.array), pa.float64())
            return cast.to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):
            pass
    return pd.to_numeric(raw, errors="coerce").astype("float64").to_numpy(na_value=np.nan)


def parse_rating(
    checks: RowChecks, raw: pd.Series, rating_range: tuple[float, float] | None, column: str = "rating"
) -> pd.Series:
    """Ratings as float; non-numeric → malformed, outside ``rating_range`` → out-of-range."""
    values = pd.Series(to_float(raw), index=raw.index)
    bad = ~np.isfinite(values.to_numpy())
    checks.flag(MALFORMED, bad, lambda p: f"{column} {raw.iloc[p]!r} is not a number")
    if rating_range is not None:
        lo, hi = rating_range
        v = values.to_numpy(na_value=np.nan)
        out = ~bad & ((v < lo) | (v > hi))
        checks.flag(RATING_RANGE, out, lambda p: f"{column} {v[p]:g} outside [{lo:g}, {hi:g}]")
    return values


def parse_timestamp(
    checks: RowChecks, raw: pd.Series, column: str = "timestamp", scale: int = 1
) -> pd.Series:
    """Integer timestamps (seconds; ``scale`` divides, e.g. 1000 for milliseconds).

    Missing, non-numeric, fractional, negative or too large (2^63 and above, past what int64 holds)
    values are flagged as invalid timestamps.
    """
    values = to_float(raw)
    bad = ~np.isfinite(values) | (values < 0) | (values % 1 != 0) | (values >= 2.0**63)
    checks.flag(
        BAD_TIMESTAMP, bad, lambda p: f"{column} {raw.iloc[p]!r} is not a non-negative integer below 2^63"
    )
    out = np.where(bad, 0, values).astype(np.int64)
    if scale != 1:
        out = out // scale
    return pd.Series(out, index=raw.index)


def drop_exact_duplicates(frame: pd.DataFrame, path: str | Path, report: CleanReport) -> pd.DataFrame:
    """Drop rows repeating an earlier row exactly (same user, item, time, rating...); counted."""
    cols = [c for c in frame.columns if c != "_line"]
    dup = frame.duplicated(cols, keep="first").to_numpy()
    if dup.any():
        report.add(path, DUPLICATE, int(dup.sum()), int(frame["_line"].to_numpy()[dup].min()))
        frame = frame.loc[~dup]
    return frame


def check_unknown_ids(
    interactions: pd.DataFrame,
    table: pd.DataFrame | None,
    key: str,
    path: str | Path,
    report: CleanReport,
    policy: str = "keep",
) -> pd.DataFrame:
    """Count interactions whose ``key`` has no row in ``table``; keep them (default) or drop them.

    Kept rows get an empty row in the side table: a reviewed item without metadata is still an item.
    """
    if policy not in ("keep", "drop"):
        from clarec.errors import ConfigError

        raise ConfigError(f"unknown_ids must be 'keep' or 'drop', got {policy!r}")
    if table is None or not len(interactions):
        return interactions
    known = interactions[key].isin(set(table[key].astype(str)))
    unknown = ~known.to_numpy()
    if unknown.any():
        first = int(interactions["_line"].to_numpy()[unknown].min()) if "_line" in interactions else None
        action = "kept" if policy == "keep" else DROPPED
        report.add(path, UNKNOWN_ID, int(unknown.sum()), first, action)
        if policy == "drop":
            interactions = interactions.loc[~unknown]
    return interactions
