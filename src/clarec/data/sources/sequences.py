"""Line-per-user files: ``user item item ...`` (S3-Rec sequences, LightGCN/NGCF adjacency lists)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from clarec.data.clean import DUPLICATE, MALFORMED, CleanReport, RowChecks
from clarec.data.sources._io import decode, read_bytes, require_rows


def read_user_lines(
    path: Path,
    report: CleanReport,
    strict: bool,
    numeric_ids: bool = True,
    allow_empty: bool = False,
) -> pd.DataFrame:
    """Parse ``user item item ...`` lines (space or tab separated) into user_id, item_id, timestamp, _line.

    ``timestamp`` is the position of the item in its line (0, 1, ...): S3-Rec files list items in
    chronological order without times. A line with a user and no item is malformed unless
    ``allow_empty`` (LightGCN test files may list users without test items). A user appearing on a
    second line is a duplicate: the later line is dropped and counted.
    """
    text, replaced = decode(read_bytes(path), path, "utf-8", strict)
    lines = pd.Series(text.split("\n"), dtype=object).str.strip()
    line_no = np.arange(1, len(lines) + 1, dtype=np.int64)
    nonblank = (lines != "").to_numpy()
    lines, line_no = lines[nonblank].reset_index(drop=True), line_no[nonblank]
    tokens = lines.str.split()
    n_tok = tokens.str.len().to_numpy()
    checks = RowChecks(path, line_no)
    report.rows_read += int(np.maximum(n_tok - 1, 0).sum())
    empty = n_tok < 2
    if not allow_empty:
        checks.flag(MALFORMED, empty, "a user without items")
    if numeric_ids:
        ok = lines.str.fullmatch(r"\d+(?:\s+\d+)*").to_numpy(dtype=bool, na_value=False)
        checks.flag(MALFORMED, ~ok, lambda p: f"ids must be non-negative integers: {lines.iloc[p][:60]!r}")
    if replaced:
        checks.flag(
            MALFORMED, lines.str.contains("\ufffd", regex=False).to_numpy(), "bytes that are not UTF-8"
        )
    keep = checks.resolve(report, strict) & ~empty
    users = tokens.str[0]
    dup = users.duplicated(keep="first").to_numpy() & keep
    if dup.any():
        report.add(
            path, DUPLICATE, int(dup.sum()), int(line_no[dup].min()), "dropped (later line of the same user)"
        )
        keep &= ~dup
    tokens, line_no = tokens[keep].reset_index(drop=True), line_no[keep]
    items = tokens.str[1:]
    counts = items.str.len().to_numpy()
    flat = items.explode()
    out = pd.DataFrame(
        {
            "user_id": np.repeat(users[keep].to_numpy(), counts).astype(str),
            "item_id": flat.to_numpy().astype(str),
            "timestamp": (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)).astype(
                np.int64
            ),
            "_line": np.repeat(line_no, counts),
        }
    )
    require_rows(out, path, report, len(lines))
    return out
