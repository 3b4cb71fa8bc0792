"""Generic tables: CSV, TSV, Parquet and JSON lines with a column mapping, item and user tables."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from clarec.data.clean import BAD_TIMESTAMP, DUPLICATE, NO_INTERACTIONS, RATING_RANGE, UNKNOWN_ID
from clarec.data.sources import load_source, read_source
from clarec.errors import ConfigError, DataError

LOG = pd.DataFrame(
    {
        "uid": ["u1", "u1", "u2", "u3"],
        "iid": ["a", "b", "a", "c"],
        "stars": [5, 2, 4, 3],
        "ts": [100, 200, 150, 175],
        "event": ["view", "purchase", "cart", "view"],
    }
)
COLS = {"user": "uid", "item": "iid", "rating": "stars", "timestamp": "ts", "behavior": "event"}


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "jsonl", "csv.gz"])
def test_formats_give_the_same_data(tmp_path, fmt):
    path = tmp_path / f"log.{fmt}"
    if fmt == "parquet":
        LOG.to_parquet(path)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in LOG.to_dict("records")))
    else:
        LOG.to_csv(path, sep="\t" if fmt == "tsv" else ",", index=False)
    raw = read_source("tabular", path, columns=COLS)
    assert raw.interactions["user_id"].tolist() == ["u1", "u1", "u2", "u3"]
    assert raw.interactions["rating"].tolist() == [5.0, 2.0, 4.0, 3.0]
    assert raw.interactions["behavior"].tolist() == ["view", "purchase", "cart", "view"]
    ds = load_source("tabular", path, columns=COLS).dataset
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (3, 3, 4)


def test_item_and_user_tables(tmp_path):
    LOG.to_csv(tmp_path / "log.csv", index=False)
    pd.DataFrame(
        {
            "id": ["a", "b"],
            "name": ["Apple", ""],
            "tags": ["fruit|red", ""],
            "cost": ["$1.50", "n/a"],
            "blurb": ["x", "y"],
        }
    ).to_csv(tmp_path / "items.csv", index=False)
    pd.DataFrame({"who": ["u1", "u2", "u3"], "city": ["Oslo", "Rome", "Lima"]}).to_csv(
        tmp_path / "users.csv", index=False
    )
    res = load_source(
        "tabular",
        tmp_path / "log.csv",
        columns=COLS,
        item_file="items.csv",
        item_columns={"item": "id", "title": "name", "categories": "tags", "price": "cost"},
        text_columns=["blurb"],
        user_file="users.csv",
        user_columns={"user": "who"},
    )
    items = res.dataset.items.set_index("item_id")
    assert items.loc["a", "title"] == "Apple" and items.loc["a", "categories"] == ["fruit", "red"]
    assert (
        items.loc["a", "price"] == 1.5
        and pd.isna(items.loc["b", "price"])
        and pd.isna(items.loc["b", "title"])
    )
    assert items.loc["a", "blurb"] == "x" and items.loc["c", "categories"] == []
    assert res.report.count(UNKNOWN_ID) == 1  # item c
    assert res.dataset.users.set_index("user_id").loc["u3", "city"] == "Lima"


def test_item_file_without_a_mapping_keeps_every_column(tmp_path):
    LOG.to_csv(tmp_path / "log.csv", index=False)
    pd.DataFrame(
        {
            "item_id": ["a", "b", "c"],
            "title": ["Apple", "Banana", "Cherry"],
            "categories": ["fruit|red", "fruit", ""],
            "price": ["1.5", "", "2"],
            "blurb": ["crisp", "soft", "sour"],
        }
    ).to_csv(tmp_path / "items.csv", index=False)
    res = load_source("tabular", tmp_path / "log.csv", columns=COLS, item_file="items.csv")
    items = res.dataset.items.set_index("item_id")
    assert items.loc["a", "title"] == "Apple" and items.loc["a", "categories"] == ["fruit", "red"]
    assert items.loc["c", "price"] == 2.0 and items.loc["b", "blurb"] == "soft"
    assert "_line" not in items.columns
    # named text columns: only those are kept besides the known ones
    res = load_source("tabular", tmp_path / "log.csv", columns=COLS, item_file="items.csv", text_columns=[])
    assert "blurb" not in res.dataset.items.columns and "title" in res.dataset.items.columns


def test_prices_written_the_european_way_are_read(tmp_path):
    # a shop's item file with decimal commas: "12,99" was no price at all (NaN), so its price
    # bucket never reached the item text
    LOG.to_csv(tmp_path / "log.csv", index=False)
    pd.DataFrame({"item_id": ["a", "b", "c"], "price": ["12,99 €", "1.299,00 €", "EUR 4,50"]}).to_csv(
        tmp_path / "items.csv", index=False
    )
    res = load_source("tabular", tmp_path / "log.csv", columns=COLS, item_file="items.csv")
    prices = res.dataset.items.set_index("item_id")["price"]
    assert prices.to_dict() == {"a": 12.99, "b": 1299.0, "c": 4.5}


def test_item_rows_the_data_set_leaves_out_are_reported(tmp_path):
    LOG.to_csv(tmp_path / "log.csv", index=False)
    (tmp_path / "items.csv").write_text("item_id,title\na,Kaffee\na,Tee ANDERS\nb,B\nc,C\nd,D\ne,E\n")
    res = load_source("tabular", tmp_path / "log.csv", columns=COLS, item_file="items.csv")
    assert res.dataset.items.set_index("item_id").loc["a", "title"] == "Kaffee"  # the first row
    assert res.report.count(DUPLICATE) == 1 and res.report.count(NO_INTERACTIONS) == 2  # d, e
    assert "no interactions" in str(res.report) and "left out" in str(res.report)


def test_datetime_and_ms_timestamps(tmp_path):
    (tmp_path / "a.csv").write_text("u,i,t\nx,1,2020-01-01T00:00:10Z\ny,1,not a date\n")
    res = load_source(
        "tabular",
        tmp_path / "a.csv",
        columns={"user": "u", "item": "i", "timestamp": "t"},
        timestamp_unit="datetime",
    )
    assert (
        res.dataset.interactions["timestamp"].tolist() == [1577836810]
        and res.report.count(BAD_TIMESTAMP) == 1
    )
    (tmp_path / "b.csv").write_text("u,i,t\nx,1,1600000000999\n")
    ds = load_source(
        "tabular",
        tmp_path / "b.csv",
        columns={"user": "u", "item": "i", "timestamp": "t"},
        timestamp_unit="ms",
    ).dataset
    assert ds.interactions["timestamp"].tolist() == [1600000000]


def test_rating_range_and_missing_timestamp_column(tmp_path):
    (tmp_path / "a.csv").write_text("u,i,r\nx,1,5\ny,1,11\nz,2,1\n")
    res = load_source(
        "tabular", tmp_path / "a.csv", columns={"user": "u", "item": "i", "rating": "r"}, rating_range=(1, 10)
    )
    assert res.report.count(RATING_RANGE) == 1
    assert res.dataset.interactions["timestamp"].tolist() == [0, 1]  # file order when there are no times


def test_bad_mapping_and_missing_column(tmp_path):
    LOG.to_csv(tmp_path / "log.csv", index=False)
    with pytest.raises(ConfigError, match="columns must map"):
        load_source("tabular", tmp_path / "log.csv", columns={"user": "uid"})
    with pytest.raises(DataError, match="header lacks columns \\['nope'\\]") as e:
        load_source("tabular", tmp_path / "log.csv", columns={"user": "uid", "item": "nope"})
    assert e.value.line == 1
    with pytest.raises(ConfigError, match="unknown option"):
        load_source("tabular", tmp_path / "log.csv", colums=COLS)
    with pytest.raises(ConfigError, match="cannot tell the format"):
        load_source("tabular", tmp_path / "log.xyz", columns=COLS)


def test_corrupt_parquet(tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="cannot read parquet"):
        load_source("tabular", tmp_path / "x.parquet", columns=COLS)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_default_mapping_takes_the_optional_columns_the_file_names(tmp_path, fmt):
    log = LOG.rename(columns={"uid": "user_id", "iid": "item_id", "ts": "timestamp", "stars": "rating"})
    path = tmp_path / f"log.{fmt}"
    log.to_parquet(path) if fmt == "parquet" else log.to_csv(path, index=False)
    raw = read_source("tabular", path)
    assert raw.interactions["timestamp"].tolist() == [100, 200, 150, 175]  # not the file order
    assert raw.interactions["rating"].tolist() == [5.0, 2.0, 4.0, 3.0]
    assert "behavior" not in raw.interactions  # the file's `event` column is not a known name
    # the order of u1's items follows the times, whatever the file's order
    ds = load_source("tabular", path).dataset
    flipped = tmp_path / f"flipped.{fmt}"
    f = log.iloc[::-1]
    f.to_parquet(flipped) if fmt == "parquet" else f.to_csv(flipped, index=False)
    again = load_source("tabular", flipped).dataset
    u1 = [[d.item_ids[i] for i in d.user_histories()[d.user_index("u1")]] for d in (ds, again)]
    assert u1 == [["a", "b"], ["a", "b"]]


def test_a_date_column_has_one_format(tmp_path):
    def times(text, **kw):
        (tmp_path / "d.csv").write_text("user_id,item_id,timestamp\n" + text)
        res = load_source("tabular", tmp_path / "d.csv", timestamp_unit="datetime", **kw)
        return res.dataset.interactions["timestamp"].tolist(), res.report.count(BAD_TIMESTAMP)

    march_13, march_5, may_3 = 1710288000, 1709596800, 1714694400
    # day-first from the first value: 05.03 is the 5th of March (it was read as the 3rd of May)
    assert times("u,a,13.03.2024\nu,b,05.03.2024\n") == ([march_13, march_5], 0)
    # a value that does not follow the column's format is flagged, never read another way
    assert times("u,a,13.03.2024\nu,b,03/05/2024\n") == ([march_13], 1)
    with pytest.raises(
        DataError, match=r"'03/05/2024' does not follow the format '%d.%m.%Y'.*timestamp_format"
    ):
        times("u,a,13.03.2024\nu,b,03/05/2024\n", strict=True)
    # given: the format reads every value; 'mixed' reads each on its own
    assert times("u,a,05.03.2024\n", timestamp_format="%d.%m.%Y") == ([march_5], 0)
    assert times("u,a,13.03.2024\nu,b,05.03.2024\n", timestamp_format="mixed") == ([march_13, may_3], 0)
    # ISO 8601 with and without a time part is one format
    assert times("u,a,2024-03-05\nu,b,2024-03-05T00:00:10Z\n") == ([march_5, march_5 + 10], 0)
    with pytest.raises(ConfigError, match="timestamp_format is for timestamp_unit: datetime"):
        load_source("tabular", tmp_path / "d.csv", timestamp_format="%Y")


def test_a_timestamp_unit_that_does_not_fit_the_column_is_refused(tmp_path):
    def load(text, **kw):
        (tmp_path / "t.csv").write_text("user_id,item_id,timestamp\n" + text)
        return load_source("tabular", tmp_path / "t.csv", **kw).dataset

    with pytest.raises(DataError, match="past the year 5000 in seconds: set timestamp_unit: ms"):
        load("u,a,1709641500123\nu,b,1709641500999\n")
    with pytest.raises(DataError, match="past the year 5000 even as milliseconds"):
        load("u,a,1709641500123456789\n", timestamp_unit="ms")  # nanoseconds
    with pytest.raises(DataError, match="in early 1970 as milliseconds: set timestamp_unit: s"):
        load("u,a,1709641500\n", timestamp_unit="ms")
    with pytest.raises(DataError, match="does not hold numbers .*set timestamp_unit: datetime"):
        load("u,a,2024-03-05\nu,b,2024-03-06\n")
    with pytest.raises(DataError, match="holds numbers .*set timestamp_unit: s or ms"):
        load("u,a,1709641500\n", timestamp_unit="datetime")
    # numbers and dates in one column: either unit would drop the other kind's rows
    for unit in ("s", "datetime"):
        with pytest.raises(DataError, match="mixes numbers and dates .*'1709641500' and '2024-03-05'"):
            load("u,a,1709641500\nu,b,2024-03-05\nu,c,1709641502\n", timestamp_unit=unit)
    # a few bad values among good ones stay the row checks' business (flagged, not refused)
    assert load("u,a,1709641500\nu,b,1709641501\nu,c,soon\n").n_interactions == 2


def test_wrong_typed_options_and_timestamps_past_int64(tmp_path):
    LOG.to_csv(tmp_path / "log.csv", index=False)
    with pytest.raises(ConfigError, match="columns must map user and item"):
        load_source("tabular", tmp_path / "log.csv", columns=["uid", "iid"])
    with pytest.raises(ConfigError, match="unknown encoding 'nosuchenc'"):
        load_source("tabular", tmp_path / "log.csv", columns=COLS, encoding="nosuchenc")
    (tmp_path / "big.csv").write_text("user_id,item_id,timestamp\nu1,a,9223372036854775808\nu1,b,5\nu2,a,7\n")
    res = load_source("tabular", tmp_path / "big.csv")
    assert res.report.count(BAD_TIMESTAMP) == 1  # flagged and dropped, not wrapped to a negative time
    assert res.dataset.interactions["timestamp"].min() >= 0 and res.dataset.n_interactions == 2


def test_a_stray_quote_names_its_line(tmp_path):
    (tmp_path / "q.csv").write_text('user_id,item_id\nu1,a\nu2,"b\nu3,c\n')
    with pytest.raises(DataError, match="opens a double quote") as e:
        load_source("tabular", tmp_path / "q.csv")
    assert e.value.line == 3


def test_two_stray_quotes_do_not_swallow_the_rows_between(tmp_path):
    # the second quote closed the first: items 'b,4\nu3,c,3\nu4,d', rows u3 and u4 gone, and the
    # report said "no problems found"
    (tmp_path / "q.csv").write_text('user_id,item_id,rating\nu1,a,5\nu2,"b,4\nu3,c,3\nu4,"d,2\nu5,e,1\n')
    for strict in (True, False):
        with pytest.raises(DataError, match="'item_id' field runs over lines 3–5") as e:
            load_source("tabular", tmp_path / "q.csv", strict=strict)
        assert e.value.line == 3


def test_quoted_line_breaks_in_a_text_column_are_kept_and_lines_still_counted(tmp_path):
    LOG.to_csv(tmp_path / "log.csv", index=False)
    (tmp_path / "items.csv").write_text('item_id,title,blurb\na,Apple,"crisp\nand red"\nb,Banana,soft\nc,,\n')
    res = load_source("tabular", tmp_path / "log.csv", columns=COLS, item_file="items.csv")
    items = res.dataset.items.set_index("item_id")
    assert items.loc["a", "blurb"] == "crisp\nand red" and items.loc["b", "blurb"] == "soft"
    (tmp_path / "notes.csv").write_text(
        'user_id,item_id,rating,note\nu1,a,5,"two\nlines"\nu2,b,9,x\nu2,a,4,y\n'
    )
    res = load_source("tabular", tmp_path / "notes.csv", rating_range=(1, 5))
    (bad,) = [i for i in res.report.issues if i.reason == RATING_RANGE]
    assert bad.first_line == 4  # counted past the quoted line break (was 3)
