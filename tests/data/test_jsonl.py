"""JSON lines read by Arrow when it can, by pandas or line by line otherwise: the same values either way."""

from __future__ import annotations

import json

import pandas as pd

from clarec.data.sources._io import _arrow_jsonl, read_jsonl

RECORDS = [
    {"id": "0345816021", "date": "2019-01-01", "rating": 5, "tags": ["a", "b"], "details": {}, "n": None},
    {"id": "0000000001", "date": "2019-01-02", "rating": 3.5, "tags": [], "details": {"k": 1}, "n": 2},
]


def _as_records(df: pd.DataFrame) -> list[dict]:
    out = []
    for row in df.drop(columns="_line", errors="ignore").to_dict("records"):
        out.append({k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()})
    return out


def test_arrow_keeps_text_as_text_and_nesting_as_python(tmp_path):
    data = "".join(json.dumps(r) + "\n" for r in RECORDS).encode()
    df = _arrow_jsonl(data)
    assert df is not None
    got = _as_records(df)
    assert [r["id"] for r in got] == ["0345816021", "0000000001"]  # leading zeros kept
    assert [r["date"] for r in got] == ["2019-01-01", "2019-01-02"]  # ISO dates stay text
    assert got[0]["tags"] == ["a", "b"] and isinstance(got[0]["tags"], list) and got[1]["tags"] == []
    assert [r["rating"] for r in got] == [5, 3.5]
    path = tmp_path / "r.jsonl"
    path.write_bytes(data)
    frame, _ = read_jsonl(path)
    assert frame["_line"].tolist() == [1, 2] and _as_records(frame)[0]["id"] == "0345816021"


def test_a_type_that_changes_between_lines_falls_back(tmp_path):
    lines = [{"id": "a", "price": 12.5}, {"id": "b", "price": "$3.00"}]
    data = "".join(json.dumps(r) + "\n" for r in lines).encode()
    assert _arrow_jsonl(data) is None
    path = tmp_path / "m.jsonl"
    path.write_bytes(data)
    frame, _ = read_jsonl(path)
    assert frame["price"].tolist() == [12.5, "$3.00"]


def test_arrow_leaves_blank_lines_and_bad_bytes_to_the_careful_path(tmp_path):
    good = b'{"id": "a", "n": 1}\n'
    assert _arrow_jsonl(good + good) is not None and _arrow_jsonl(good + b"\n" + good) is None
    latin1 = b'{"id": "caf\xe9", "n": 1}\n' + good
    assert _arrow_jsonl(latin1) is None
    path = tmp_path / "l.jsonl"
    path.write_bytes(latin1)
    frame, checks = read_jsonl(path)  # lenient: the byte replaced, the row kept and flagged
    assert frame["id"].tolist() == ["caf\ufffd", "a"]


def _many(n: int) -> list[dict]:
    """Lines whose types change part-way (an int rating, then floats; a key that appears late)."""
    out = []
    for i in range(n):
        r = {
            "id": f"{i:010d}",
            "rating": 4 if i < n // 2 else 4.5,
            "tags": [str(i)] * (i % 3),
            "text": "x" * (i % 50),
        }
        if i > n - 5:
            r["late"] = i
        out.append(r)
    return out


def test_blocks_give_the_whole_file_reading(tmp_path):
    import gzip

    data = "".join(json.dumps(r) + "\n" for r in _many(300)).encode()
    for name, content in (("r.jsonl", data), ("r.jsonl.gz", gzip.compress(data)), ("t.jsonl", data[:-1])):
        path = tmp_path / name
        path.write_bytes(content)
        whole, _ = read_jsonl(path)
        blocks, checks = read_jsonl(path, block_bytes=512)  # about 60 blocks, cut inside lines
        assert blocks.columns.tolist() == whole.columns.tolist()
        assert _as_records(blocks) == _as_records(whole) and blocks["_line"].tolist() == list(range(1, 301))
        assert blocks["rating"].tolist()[148:152] == [4, 4, 4.5, 4.5]
        some, _ = read_jsonl(path, block_bytes=512, columns=["rating", "id", "absent"])
        assert (
            some.columns.tolist() == ["rating", "id", "_line"] and some["id"].tolist() == whole["id"].tolist()
        )


def test_a_block_the_fast_path_cannot_read_hands_the_whole_file_to_the_careful_path(tmp_path):
    lines = [json.dumps(r) for r in _many(100)]
    lines[70] = "{not json"
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines[:40]) + "\n\n" + "\n".join(lines[40:]) + "\n")
    blocks, checks = read_jsonl(path, block_bytes=300, columns=["id"])
    whole, whole_checks = read_jsonl(path, columns=["id"])
    assert blocks["id"].tolist() == whole["id"].tolist() and len(blocks) == 99  # the bad line dropped
    assert blocks["_line"].tolist() == whole["_line"].tolist() and 72 not in blocks["_line"].tolist()
    assert blocks.columns.tolist() == ["id", "_line"]


def test_a_truncated_gzip_read_in_blocks_is_the_same_clear_error(tmp_path):
    import gzip

    import pytest

    from clarec.errors import DataError

    data = gzip.compress("".join(json.dumps(r) + "\n" for r in _many(300)).encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated|ends|stops"):
        read_jsonl(path, block_bytes=256)
