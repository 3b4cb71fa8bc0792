"""Every loader × every kind of bad input: one clear DataError (strict, or whole-file) or a counted row."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from clarec.data.clean import BAD_ENCODING, MALFORMED
from clarec.data.sources import load_source
from clarec.errors import DataError


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _ml100k(tmp: Path) -> tuple[Path, Path, dict]:
    (tmp / "u.data").write_text(
        "1\t10\t4\t881250949\n2\t10\t3\t881250950\n2\t11\t5\t881250951\n3\t11\t4\t881250952\n"
    )
    return tmp, tmp / "u.data", {}


def _mlcsv(tmp: Path) -> tuple[Path, Path, dict]:
    (tmp / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,10,4.0,964982703\n2,10,3.5,964982704\n3,11,4.5,964982705\n"
    )
    return tmp, tmp / "ratings.csv", {}


def _ml1m(tmp: Path) -> tuple[Path, Path, dict]:
    (tmp / "ratings.dat").write_text("1::10::4::978300760\n2::10::3::978300761\n3::11::5::978300762\n")
    return tmp, tmp / "ratings.dat", {}


def _amazon2018(tmp: Path) -> tuple[Path, Path, dict]:
    rows = [
        {"reviewerID": f"U{i}", "asin": f"B{i % 2}", "overall": 5.0, "unixReviewTime": 1500000000 + i}
        for i in range(4)
    ]
    (tmp / "Cat_5.json").write_text(_jsonl(rows))
    return tmp, tmp / "Cat_5.json", {}


def _amazon2023(tmp: Path) -> tuple[Path, Path, dict]:
    rows = [
        {"user_id": f"U{i}", "parent_asin": f"P{i % 2}", "rating": 4.0, "timestamp": 1600000000000 + i}
        for i in range(4)
    ]
    (tmp / "Cat.jsonl").write_text(_jsonl(rows))
    return tmp, tmp / "Cat.jsonl", {}


def _s3rec(tmp: Path) -> tuple[Path, Path, dict]:
    (tmp / "Beauty.txt").write_text("1 1 2 3\n2 2 3 4\n3 1 4\n4 5\n")
    return tmp, tmp / "Beauty.txt", {"sequence_file": "Beauty.txt"}


def _lightgcn(tmp: Path) -> tuple[Path, Path, dict]:
    (tmp / "train.txt").write_text("0 1 2 3\n1 2 3 4\n2 1 4\n3 5\n")
    return tmp, tmp / "train.txt", {"test_file": None}


def _tab_csv(tmp: Path) -> tuple[Path, Path, dict]:
    (tmp / "log.csv").write_text("u,i,r,t\nA,x,4,100\nB,x,3,101\nC,y,5,102\n")
    return (
        tmp / "log.csv",
        tmp / "log.csv",
        {"columns": {"user": "u", "item": "i", "rating": "r", "timestamp": "t"}},
    )


def _tab_tsv(tmp: Path) -> tuple[Path, Path, dict]:
    (tmp / "log.tsv").write_text("u\ti\tt\nA\tx\t100\nB\tx\t101\nC\ty\t102\n")
    return tmp / "log.tsv", tmp / "log.tsv", {"columns": {"user": "u", "item": "i", "timestamp": "t"}}


def _tab_jsonl(tmp: Path) -> tuple[Path, Path, dict]:
    rows = [{"u": "A", "i": "x", "t": 100}, {"u": "B", "i": "x", "t": 101}, {"u": "C", "i": "y", "t": 102}]
    (tmp / "log.jsonl").write_text(_jsonl(rows))
    return tmp / "log.jsonl", tmp / "log.jsonl", {"columns": {"user": "u", "item": "i", "timestamp": "t"}}


LOADERS = {
    "movielens-100k": ("movielens-100k", _ml100k, "\t"),
    "movielens-csv": ("movielens-csv", _mlcsv, ","),
    "movielens-1m": ("movielens-1m", _ml1m, "::"),
    "amazon2018": ("amazon2018", _amazon2018, None),
    "amazon2023": ("amazon2023", _amazon2023, None),
    "s3rec": ("s3rec", _s3rec, " "),
    "lightgcn": ("lightgcn", _lightgcn, " "),
    "tabular-csv": ("tabular", _tab_csv, ","),
    "tabular-tsv": ("tabular", _tab_tsv, "\t"),
    "tabular-jsonl": ("tabular", _tab_jsonl, None),
}


def _setup(tmp_path: Path, loader: str):
    kind, build, sep = LOADERS[loader]
    path, main, options = build(tmp_path)
    return kind, path, main, options, sep


@pytest.mark.parametrize("loader", list(LOADERS))
def test_valid_synthetic_file_loads(tmp_path, loader):
    kind, path, _, options, _ = _setup(tmp_path, loader)
    for strict in (False, True):
        res = load_source(kind, path, strict=strict, **options)
        assert res.dataset.n_interactions >= 3
        assert res.report.issues == []


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("loader", list(LOADERS))
def test_empty_file_is_an_error(tmp_path, loader, strict):
    kind, path, main, options, _ = _setup(tmp_path, loader)
    main.write_bytes(b"")
    with pytest.raises(DataError, match="empty") as e:
        load_source(kind, path, strict=strict, **options)
    assert e.value.path == str(main)


@pytest.mark.parametrize("loader", list(LOADERS))
def test_truncated_last_line(tmp_path, loader):
    if loader == "lightgcn":
        pytest.skip(
            "a user line without items is legal in LightGCN files, so a cut line cannot be told apart"
        )
    kind, path, main, options, _ = _setup(tmp_path, loader)
    data = main.read_bytes()
    lines = data.rstrip(b"\n").split(b"\n")
    n_lines = len(lines)
    # Cut the last line to its first field (a user without items for the line-per-user formats).
    last = lines[-1]
    cut = last[: max(1, min(len(last) // 3, last.find(b" ") if b" " in last else len(last)))]
    main.write_bytes(b"\n".join(lines[:-1] + [cut]))
    with pytest.raises(DataError, match=MALFORMED) as e:
        load_source(kind, path, strict=True, **options)
    assert e.value.line == n_lines and e.value.path == str(main)
    res = load_source(kind, path, strict=False, **options)
    assert res.report.count(MALFORMED) == 1
    assert res.report.issues[0].first_line == n_lines


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("loader", list(LOADERS))
def test_truncated_gzip_is_an_error(tmp_path, loader, strict):
    kind, path, main, options, _ = _setup(tmp_path, loader)
    packed = gzip.compress(main.read_bytes() * 50)
    gz = main.with_name(main.name + ".gz")
    gz.write_bytes(packed[: len(packed) // 2])
    main.unlink()
    if path == main:
        path = gz
    with pytest.raises(DataError, match="truncated gzip") as e:
        load_source(kind, path, strict=strict, **options)
    assert e.value.path == str(gz) and e.value.line is not None


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("loader", list(LOADERS))
def test_wrong_delimiter_is_an_error(tmp_path, loader, strict):
    kind, path, main, options, sep = _setup(tmp_path, loader)
    if sep is None:
        pytest.skip("JSON lines have no delimiter")
    other = ";" if sep == "," else ","
    main.write_text(main.read_text().replace(sep, other))
    with pytest.raises(DataError) as e:
        load_source(kind, path, strict=strict, **options)
    assert e.value.path == str(main)
    assert e.value.line == 1 or "no usable rows" in str(e.value)


@pytest.mark.parametrize("loader", list(LOADERS))
def test_latin1_byte_in_utf8_file(tmp_path, loader):
    kind, path, main, options, _ = _setup(tmp_path, loader)
    data = main.read_bytes()
    start = data.index(b"\n") + 1  # line 2
    main.write_bytes(data[: start + 1] + b"\xe9" + data[start + 1 :])
    with pytest.raises(DataError, match="not valid utf-8") as e:
        load_source(kind, path, strict=True, **options)
    assert e.value.line == 2
    res = load_source(kind, path, strict=False, **options)
    assert res.report.count(BAD_ENCODING) + res.report.count(MALFORMED) == 1
    assert res.report.issues[0].first_line == 2


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("loader", list(LOADERS))
def test_utf16_file_is_an_error(tmp_path, loader, strict):
    kind, path, main, options, _ = _setup(tmp_path, loader)
    main.write_bytes(main.read_text().encode("utf-16"))
    with pytest.raises(DataError, match="UTF-16"):
        load_source(kind, path, strict=strict, **options)


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("loader", list(LOADERS))
def test_binary_junk_is_an_error(tmp_path, loader, strict):
    kind, path, main, options, _ = _setup(tmp_path, loader)
    main.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DataError, match="binary"):
        load_source(kind, path, strict=strict, **options)


@pytest.mark.parametrize("loader", ["movielens-100k", "movielens-csv", "amazon2018", "s3rec", "tabular-csv"])
def test_missing_file_is_an_error(tmp_path, loader):
    kind, path, main, options, _ = _setup(tmp_path, loader)
    main.unlink()
    with pytest.raises(DataError, match="not found"):
        load_source(kind, path, **options)


def test_a_bad_byte_in_a_row_with_a_quoted_separator_keeps_the_row(tmp_path):
    # the field count behind the "malformed" hint split the raw line on every comma, quotes or not:
    # a bad byte in a row whose quoted description holds a comma dropped the whole item
    (tmp_path / "log.csv").write_text("u,i,t\nA,x,100\nB,y,101\nC,y,102\n")
    (tmp_path / "items.csv").write_bytes(
        b'sku,title,description\nx,Winter B\xe4g,"warm, dry"\ny,Cap,"red, wool"\n'
    )
    options = {
        "columns": {"user": "u", "item": "i", "timestamp": "t"},
        "item_file": "items.csv",
        "item_columns": {"item": "sku", "title": "title"},
        "text_columns": ["description"],
    }
    res = load_source("tabular", tmp_path / "log.csv", **options)
    issues = [(Path(i.file).name, i.reason, i.count, i.first_line) for i in res.report.issues]
    assert issues == [("items.csv", BAD_ENCODING, 1, 2)]  # and no "malformed row" for the same line
    items = res.dataset.items.set_index("item_id")
    assert items.loc["x", "title"] == "Winter B\ufffdg" and items.loc["x", "description"] == "warm, dry"


def test_one_report_entry_per_file_and_reason(tmp_path):
    # three broken rows of three kinds were three "malformed row" entries, in reverse line order
    (tmp_path / "log.csv").write_text(
        "u,i,r,t\nA,x,4,100\nB,x,five,101\n,y,5,102\nC,y,5,103,extra\nD,x,3,104\n"
    )
    columns = {"user": "u", "item": "i", "rating": "r", "timestamp": "t"}
    res = load_source("tabular", tmp_path / "log.csv", columns=columns)
    malformed = [i for i in res.report.issues if i.reason == MALFORMED]
    assert [(i.count, i.first_line) for i in malformed] == [(3, 3)]
    assert res.report.rows_kept == 2
