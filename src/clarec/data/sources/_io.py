"""Reading files safely: whole-file checks (missing, empty, binary, UTF-16, truncated gzip) and
delimited / JSON-lines parsing that keeps the file line of every row for error messages."""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import re
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from clarec.data.clean import BAD_ENCODING, MALFORMED, CleanReport, RowChecks
from clarec.errors import ConfigError, DataError

_SKIP_RE = re.compile(r"Skipping line (\d+): (.*)")
_GZIP_MAGIC = b"\x1f\x8b"


def find_file(folder: Path, name: str, required: bool = True) -> Path | None:
    """``folder/name``, or ``folder/name.gz`` when only the compressed copy exists."""
    for cand in (folder / name, folder / f"{name}.gz"):
        if cand.is_file():
            return cand
    if required:
        raise DataError(folder / name, "file not found")
    return None


def read_bytes(path: Path) -> bytes:
    """File content, gunzipped when it is gzip; raises :class:`DataError` for whole-file problems."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found" if not path.exists() else "not a regular file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(path, f"cannot read file: {e.strerror or e}") from None
    if data[:2] == _GZIP_MAGIC:
        data = _gunzip(path, data)
    elif path.suffix == ".gz" and data:
        raise DataError(path, "not a gzip file although the name ends in .gz")
    if not data.strip():
        raise DataError(path, "file is empty")
    return data


def _gunzip(path: Path, data: bytes) -> bytes:
    try:
        return gzip.decompress(data)
    except EOFError:
        # Decompress what is there, to say where the data stops.
        partial = zlib.decompressobj(wbits=31).decompress(data)
        line = partial.count(b"\n") + 1
        raise DataError(
            path, "truncated gzip file: the compressed stream ends early (incomplete download?)", line
        ) from None
    except (gzip.BadGzipFile, zlib.error) as e:
        raise DataError(path, f"corrupt gzip file: {e}") from None


def decode(data: bytes, path: Path, encoding: str, strict: bool) -> tuple[str, bool]:
    """Decode ``data``; returns the text and whether undecodable bytes were replaced (lenient mode).

    UTF-16/32 and binary files (NUL bytes) are whole-file errors; a stray byte that is not valid in
    ``encoding`` is a per-row error (strict: raises naming its line).
    """
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or data[:4] in (b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00"):
        raise DataError(path, "file is UTF-16/UTF-32 encoded (byte-order mark); convert it to UTF-8")
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise DataError(
            path, "binary data (NUL byte): not a text file, or UTF-16 without byte-order mark", line
        )
    if not isinstance(encoding, str):
        raise ConfigError(f"encoding must be a text encoding's name (e.g. utf-8, latin-1), got {encoding!r}")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ConfigError(f"unknown encoding {encoding!r} (e.g. utf-8, latin-1, cp1252)") from None
    enc = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        return data.decode(enc), False
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        if strict:
            raise DataError(
                path,
                f"{BAD_ENCODING}: byte 0x{data[e.start]:02x} is not valid {encoding} (file saved as latin-1?)",
                line,
            ) from None
        return data.decode(enc, errors="replace"), True


def _line_numbers(n_rows: int, first: int, skipped: list[int]) -> np.ndarray:
    """File line of each parsed row, assuming one record per line (``_spanned_lines`` then adds
    the line breaks inside quoted fields)."""
    lines = np.arange(first, first + n_rows + len(skipped), dtype=np.int64)
    if skipped:
        lines = lines[~np.isin(lines, np.asarray(skipped, dtype=np.int64))]
    return lines[:n_rows]


def _spanned_lines(df: pd.DataFrame, path: Path, required: list[str]) -> None:
    """Line numbers past quoted fields that hold line breaks (a description may); a key field that
    holds one is a stray quote that swallowed the lines up to the next quote, refused."""
    counts = {col: df[col].str.count("\n").to_numpy() for col in df.columns[:-1]}
    breaks = sum(counts.values(), np.zeros(len(df), dtype=np.int64))
    if not breaks.any():
        return
    df["_line"] += np.concatenate([[0], np.cumsum(breaks)[:-1]])
    for col in required:
        if col in counts and counts[col].any():
            i = int(np.flatnonzero(counts[col])[0])
            first = int(df["_line"].iat[i])
            raise DataError(
                path,
                f"the {col!r} field runs over lines {first}–{first + int(counts[col][i])}: a double quote "
                '(") opens it and a later one closes it, so those lines are read as one value; quote the '
                'whole field ("a ""quoted"" word") or remove the stray quote',
                first,
            )


def read_table(
    path: Path,
    *,
    sep: str,
    names: list[str] | None = None,
    required: list[str] | None = None,
    encoding: str = "utf-8",
    strict: bool = False,
    quoting: bool = True,
) -> Parsed:
    """Parse a delimited text file into string columns plus ``_line``.

    ``names`` gives the columns of a file without header; otherwise the first line is the header and
    must contain ``required``. Rows with too many fields are flagged as malformed; rows with too few
    get empty strings in the missing fields (the caller's value checks catch them). Blank lines are
    skipped without being counted.
    """
    data = read_bytes(path)
    text, replaced = decode(data, path, encoding, strict)
    del data
    parse_sep = sep
    if len(sep) > 1:  # the fast C parser takes one-character separators only
        text = text.replace(sep, "\x1f")
        parse_sep = "\x1f"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            df = pd.read_csv(
                io.StringIO(text),
                sep=parse_sep,
                header=None if names else 0,
                names=names,
                index_col=False,
                dtype=str,
                na_filter=False,
                skip_blank_lines=False,
                quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE,
                engine="c",
                on_bad_lines="warn",
            )
        except pd.errors.EmptyDataError:
            raise DataError(path, "file is empty") from None
        except (pd.errors.ParserError, ValueError) as e:
            quote = re.search(r"EOF inside string starting at row (\d+)", str(e))
            if quote:  # its rows count from 0 at the first line
                raise DataError(
                    path,
                    'a field opens a double quote (") that no later quote closes: quote the whole field '
                    '("a ""quoted"" word") or remove the stray quote',
                    int(quote.group(1)) + 1,
                ) from None
            m = re.search(r"line (\d+)", str(e))
            raise DataError(path, f"cannot parse: {str(e).strip()}", int(m.group(1)) if m else None) from None
    skipped: list[tuple[int, str]] = []
    for w in caught:
        for m in _SKIP_RE.finditer(str(w.message)):
            skipped.append((int(m.group(1)), m.group(2).strip().replace("saw", "found")))
    if names is None:
        df.columns = [str(c).strip() for c in df.columns]
        missing = [c for c in (required or []) if c not in df.columns]
        if missing:
            hint = " (wrong delimiter?)" if len(df.columns) == 1 else ""
            raise DataError(
                path, f"header lacks columns {missing}; found {list(df.columns)[:8]}{hint}", line=1
            )
    df["_line"] = _line_numbers(len(df), 1 if names else 2, [s[0] for s in skipped])
    if quoting:
        _spanned_lines(df, path, required or [])
    blank = (df.drop(columns="_line") == "").all(axis=1).to_numpy()
    if blank.any():
        df = df.loc[~blank].reset_index(drop=True)
    if not len(df) and not skipped:
        raise DataError(path, "no data rows")
    checks = RowChecks(path, df["_line"].to_numpy())
    checks.flag_lines(MALFORMED, [(ln, f"{d} (separator {sep!r})") for ln, d in skipped])
    if replaced:
        has_bad = np.zeros(len(df), dtype=bool)
        for col in df.columns[:-1]:
            has_bad |= df[col].str.contains("\ufffd", regex=False).to_numpy()
        checks.flag(BAD_ENCODING, has_bad, action="kept (bytes replaced by U+FFFD)")
    parsed = Parsed(df, checks, text, sep, parse_sep, len(df.columns) - 1, quoting)
    checks.row_hint = parsed.field_count_hint
    return parsed


@dataclass
class Parsed:
    """A parsed delimited file: string columns plus ``_line``, its pending checks, and the text."""

    frame: pd.DataFrame
    checks: RowChecks
    text: str
    sep: str
    parse_sep: str
    n_fields: int
    quoting: bool = True
    _lines: list[str] | None = None

    def field_count_hint(self, pos: int) -> str | None:
        """``"expected N fields ..., found M"`` when row ``pos`` has the wrong field count, else None.
        Fields are counted as the parser reads them: a separator inside a quoted field is text."""
        if self._lines is None:
            self._lines = self.text.split("\n")  # error path only
        line = int(self.frame["_line"].iat[pos])
        rest = (raw.rstrip("\r") for raw in self._lines[line - 1 :]) if line > 0 else iter(())
        quoting = csv.QUOTE_MINIMAL if self.quoting else csv.QUOTE_NONE
        try:  # a quoted field may run over lines: the reader takes what the record needs
            found = len(next(csv.reader(rest, delimiter=self.parse_sep, quoting=quoting), [""]))
        except csv.Error:
            return None
        if found != self.n_fields:
            return f"expected {self.n_fields} fields separated by {self.sep!r}, found {found}"
        return None


#: bytes of JSON lines parsed at a time by :func:`read_jsonl` (a larger file is read in blocks)
JSONL_BLOCK = 64 << 20


def read_jsonl(
    path: Path,
    *,
    strict: bool = False,
    encoding: str = "utf-8",
    columns: list[str] | None = None,
    block_bytes: int = JSONL_BLOCK,
) -> tuple[pd.DataFrame, RowChecks]:
    """Parse JSON lines into a frame (one column per key, or only ``columns``) plus ``_line``.

    Fast paths, for files of one JSON object per line and no blank line: Arrow's reader on the
    bytes (no text copy of the file; valid UTF-8 only) — a file larger than ``block_bytes`` is read,
    gunzipped and parsed a block of lines at a time, keeping only ``columns`` of each block, so a
    review file's texts are never all in memory at once — then ``pandas.read_json(lines=True)``
    without type inference (ids like ``"0345816021"`` stay strings). When both fail, every line is
    parsed on its own so the bad ones can be named and counted. ``columns`` a line lacks are missing
    (NaN) in its row; a column no line has is absent.
    """
    utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    if utf8 and _size(path) > block_bytes:
        df = _arrow_jsonl_blocks(path, block_bytes, columns)
        if df is not None:
            df["_line"] = np.arange(1, len(df) + 1, dtype=np.int64)
            return df, RowChecks(path, df["_line"].to_numpy())
    data = read_bytes(path)
    utf8 = utf8 and not data.startswith(b"\xef\xbb\xbf")
    df = _arrow_jsonl(data, columns) if utf8 else None
    text = ""
    if df is None:
        text, replaced = decode(data, path, encoding, strict)
        body = text.rstrip("\n\r ")
        if not replaced and "\n\n" not in body and "\n\r\n" not in body and not text.startswith(("\n", "\r")):
            try:
                df = pd.read_json(io.StringIO(body), lines=True, dtype=False)
                if len(df) != body.count("\n") + 1:
                    df = None
            except ValueError:
                df = None
    del data
    if df is not None:
        if columns is not None:
            df = df[[c for c in columns if c in df.columns]]
        df["_line"] = np.arange(1, len(df) + 1, dtype=np.int64)
        return df, RowChecks(path, df["_line"].to_numpy())
    records: list[dict] = []
    lines: list[int] = []
    bad: list[tuple[int, str]] = []
    encoding_bad: list[int] = []
    for n, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            bad.append((n, f"invalid JSON ({e.msg} at column {e.colno})"))
            continue
        if not isinstance(obj, dict):
            bad.append((n, f"expected a JSON object, found {type(obj).__name__}"))
            continue
        if "\ufffd" in raw:
            encoding_bad.append(len(records))
        records.append(obj)
        lines.append(n)
    if strict and bad:
        raise DataError(path, f"{MALFORMED}: {bad[0][1]}", line=bad[0][0])
    if not records:
        first = f"; line {bad[0][0]}: {bad[0][1]}" if bad else ""
        raise DataError(path, f"no valid JSON lines{first}")
    df = pd.DataFrame.from_records(records)
    if columns is not None:
        df = df[[c for c in columns if c in df.columns]]
    df["_line"] = np.asarray(lines, dtype=np.int64)
    checks = RowChecks(path, df["_line"].to_numpy())
    checks.flag_lines(MALFORMED, bad)
    if encoding_bad:
        mask = np.zeros(len(df), dtype=bool)
        mask[encoding_bad] = True
        checks.flag(BAD_ENCODING, mask, action="kept (bytes replaced by U+FFFD)")
    return df, checks


def _size(path: Path) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0  # read_bytes says what is wrong


def _blocks(path: Path, size: int):
    """The file's bytes, gunzipped when it is gzip, in pieces of about ``size`` bytes that end where
    a line ends (the last piece may lack its final newline)."""
    with open(path, "rb") as raw:
        gz = raw.read(2) == _GZIP_MAGIC
    with (gzip.open if gz else open)(path, "rb") as f:
        rest = b""
        while chunk := f.read(size):
            chunk = rest + chunk
            cut = chunk.rfind(b"\n") + 1
            if cut:
                yield chunk[:cut]
            rest = chunk[cut:]
        if rest:
            yield rest


def _arrow_jsonl_blocks(path: Path, size: int, columns: list[str] | None) -> pd.DataFrame | None:
    """:func:`_arrow_jsonl` block by block (``columns`` kept of each), or ``None`` as soon as a block
    needs the careful path (which then reads the whole file and says what is wrong)."""
    frames = []
    try:
        for n, block in enumerate(_blocks(path, size)):
            if n == 0 and block.startswith(b"\xef\xbb\xbf"):
                return None
            lines = block.count(b"\n") + (not block.endswith(b"\n"))
            df = _arrow_jsonl(block, columns)
            if df is None or len(df) != lines:  # a blank line at a block's end
                return None
            frames.append(df)
    except (OSError, EOFError, zlib.error):
        return None
    if not frames:
        return None
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _arrow_jsonl(data: bytes, columns: list[str] | None = None) -> pd.DataFrame | None:
    """JSON lines parsed by Arrow (several times faster than pandas on millions of lines, and typed),
    or ``None`` when Arrow cannot or should not: blank lines (line numbers would shift), bytes that
    are not UTF-8, a value whose type changes between lines, an invalid line — for the careful path
    to handle. Strings stay strings; nested values (lists, objects) become Python lists and dicts, as
    ``json.loads`` gives them. Works on the bytes: no text copy of the file is made. ``columns``:
    only these (those the lines have) are converted."""
    import pyarrow as pa
    import pyarrow.json as pajson

    end = len(data)
    while end and data[end - 1] in b"\n\r ":
        end -= 1
    if (
        not end
        or data[:1] in (b"\n", b"\r")
        or data.find(b"\n\n", 0, end) >= 0
        or data.find(b"\n\r\n", 0, end) >= 0
    ):
        return None
    n_lines = data.count(b"\n", 0, end) + 1
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64).tobytes())
    whole = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        whole.cast(pa.large_string())  # validates UTF-8 without decoding into a str
    except pa.ArrowInvalid:
        return None
    try:
        table = pajson.read_json(pa.py_buffer(data))
        # Arrow reads ISO dates as timestamps; the text is what the sources parse
        dated = [f for f in table.schema if pa.types.is_temporal(f.type)]
        if dated:
            strings = pa.schema([(f.name, pa.string()) for f in dated])
            table = pajson.read_json(
                pa.py_buffer(data), parse_options=pajson.ParseOptions(explicit_schema=strings)
            )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_rows != n_lines:
        return None
    if columns is not None:
        table = table.select([c for c in columns if c in table.column_names])
    out = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_nested(column.type):
            out[name] = pd.Series(column.to_pylist(), dtype=object)
        else:
            out[name] = column.to_pandas()
    return pd.DataFrame(out, index=pd.RangeIndex(n_lines))


def require_rows(frame: pd.DataFrame, path: Path, report: CleanReport, n_read: int) -> None:
    """Whole-file check after cleaning: a file without one usable row is an error, not an empty data set."""
    if len(frame):
        return
    problems = [i for i in report.issues if i.file == str(path)]
    summary = ", ".join(f"{i.reason}: {i.count} (first at line {i.first_line})" for i in problems[:3])
    raise DataError(
        path, f"no usable rows among {n_read}: {summary or 'none parsed'} (wrong delimiter or format?)"
    )
