from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clarec.data.dataset import Dataset
from clarec.errors import DataError, UnknownIdError


def build() -> Dataset:
    inter = pd.DataFrame(
        {
            "user_id": ["10", "2", "2", "10", "2"],
            "item_id": ["b", "a", "c", "a", "a"],
            "timestamp": [5, 1, 3, 2, 4],
            "weight": [1.0, 2.0, 1.0, 1.0, 3.0],
            "behavior": ["view", "view", "buy", "view", "buy"],
        }
    )
    items = pd.DataFrame(
        {
            "item_id": ["c", "a", "b", "z"],
            "title": ["C", "A", "B", "Z"],
            "categories": [["x"], ["y"], [], ["q"]],
        }
    )
    users = pd.DataFrame({"user_id": [2, 10], "age": [30, 40]})
    return Dataset.from_frame(inter, items=items, users=users, name="t")


def test_from_frame_maps_and_tables():
    ds = build()
    # numeric ids sort numerically: "2" before "10"
    assert ds.user_ids.tolist() == ["2", "10"]
    assert ds.item_ids.tolist() == ["a", "b", "c"]  # "z" has no interactions
    assert ds.user_index("10") == 1 and ds.item_index(["c", "a"]).tolist() == [2, 0]
    assert ds.items["title"].tolist() == ["A", "B", "C"]
    assert ds.users["age"].tolist() == [30, 40]
    assert ds.interactions.dtypes["user"] == np.int32 and ds.interactions.dtypes["timestamp"] == np.int64
    with pytest.raises(UnknownIdError, match="unknown item id 'zz'"):
        ds.item_index("zz")


def test_keep_all_items():
    inter = pd.DataFrame({"user_id": ["u"], "item_id": ["a"]})
    items = pd.DataFrame({"item_id": ["a", "b"], "title": ["A", "B"]})
    ds = Dataset.from_frame(inter, items=items, keep_all_items=True)
    assert ds.n_items == 2 and ds.item_popularity().tolist() == [1, 0]


def test_ids_indexed_in_order_with_side_tables_first_seen_anywhere():
    # integer ids (also as ints) sort numerically; ids only in the side tables come in with keep_all_*
    inter = pd.DataFrame({"user_id": [30, 4, 30, 100], "item_id": ["x", "b", "a", "b"]})
    items = pd.DataFrame({"item_id": ["c", "b", "a", "x"], "title": ["C", "B", "A", "X"]})
    users = pd.DataFrame({"user_id": ["7", "4"]})
    ds = Dataset.from_frame(inter, items=items, users=users, keep_all_items=True, keep_all_users=True)
    assert ds.user_ids.tolist() == ["4", "7", "30", "100"]
    assert ds.item_ids.tolist() == ["a", "b", "c", "x"]
    assert ds.interactions["user"].tolist() == [2, 0, 2, 3]
    assert ds.interactions["item"].tolist() == [3, 1, 0, 1]
    assert ds.items["title"].tolist() == ["A", "B", "C", "X"]
    assert ds.item_popularity().tolist() == [1, 2, 0, 1]


def test_csr_histories_popularity():
    ds = build()
    m = ds.to_csr()
    assert m.shape == (2, 3)
    assert m.toarray().tolist() == [[1, 0, 1], [1, 1, 0]]
    w = ds.to_csr(weighted=True).toarray()
    assert w[0].tolist() == [5.0, 0.0, 1.0]  # duplicates summed
    assert [h.tolist() for h in ds.user_histories()] == [[0, 2, 0], [0, 1]]
    assert ds.item_popularity().tolist() == [2, 1, 1]
    assert ds.describe()["interactions"] == 5


def test_with_interactions_shares_maps():
    ds = build()
    sub = ds.with_interactions(ds.interactions.iloc[:2])
    assert sub.n_users == ds.n_users and sub.n_items == ds.n_items and len(sub) == 2
    assert sub.items is ds.items


def test_save_load_roundtrip(tmp_path):
    ds = build()
    ds.save(tmp_path / "d")
    back = Dataset.load(tmp_path / "d")
    pd.testing.assert_frame_equal(back.interactions, ds.interactions)
    assert back.user_ids.tolist() == ds.user_ids.tolist()
    assert back.items["categories"].map(list).tolist() == [["y"], [], ["x"]]
    assert back.name == "t"
    with pytest.raises(DataError, match="not a saved clarec dataset"):
        Dataset.load(tmp_path)


def test_save_load_without_side_tables(tmp_path):
    ds = Dataset.from_frame(pd.DataFrame({"user_id": ["u", "v"], "item_id": ["a", "b"]}))
    back = Dataset.load(ds.save(tmp_path / "d"))
    assert back.n_users == 2 and len(back.users) == 2 and len(back.items) == 2
    assert back.interactions["item"].tolist() == [0, 1]


def test_index_out_of_range_rejected():
    with pytest.raises(ValueError, match="out of range"):
        Dataset(pd.DataFrame({"user": [0], "item": [5]}), ["u"], ["a"])


def test_from_frame_refuses_what_it_would_misread():
    from clarec.errors import ConfigError

    inter = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [10, 20, 10, 30, 20]})
    holed = inter.astype({"user_id": float})
    holed.loc[0, "user_id"] = np.nan
    # a missing id went to the last user ("3.0") and every id became "1.0"
    with pytest.raises(ConfigError, match="1 row\\(s\\) without a user_id, e.g. row 0"):
        Dataset.from_frame(holed)
    # ids spelled otherwise in a side table matched nothing: every title was empty
    items = pd.DataFrame({"item_id": [10.0, 20.0, 30.0], "title": ["a", "b", "c"]})
    with pytest.raises(ConfigError, match="none of the 3 ids of the item table.*'10.0' in the table, '10'"):
        Dataset.from_frame(inter, items=items)
    titled = Dataset.from_frame(inter, items=items.astype({"item_id": int}))
    assert titled.items["title"].tolist() == ["a", "b", "c"]
    with pytest.raises(ConfigError, match="interactions lack column 'item_id'"):
        Dataset.from_frame(inter.drop(columns="item_id"))


def test_from_frame_reads_datetimes_as_seconds():
    from clarec.errors import ConfigError

    inter = pd.DataFrame({"user_id": ["a", "a"], "item_id": ["x", "y"]})
    when = pd.to_datetime(["2024-01-01 00:00:10", "2024-01-01 00:00:20"])
    for stamps in (when, when.tz_localize("UTC").tz_convert("Europe/Berlin"), when.astype("datetime64[us]")):
        ds = Dataset.from_frame(inter.assign(timestamp=stamps))
        assert ds.interactions["timestamp"].tolist() == [1704067210, 1704067220]
    with pytest.raises(ConfigError, match="missing datetime"):
        Dataset.from_frame(inter.assign(timestamp=[when[0], pd.NaT]))
    with pytest.raises(ConfigError, match="give integer seconds or datetimes"):
        Dataset.from_frame(inter.assign(timestamp=["2024-01-01", "2024-01-02"]))
    assert Dataset.from_frame(inter.assign(timestamp=[5, 7])).interactions["timestamp"].tolist() == [5, 7]


def test_a_float_id_is_unknown_and_a_side_table_needs_its_key():
    from clarec.errors import ConfigError

    ds = Dataset.from_frame(pd.DataFrame({"user_id": ["a"], "item_id": ["10"]}))
    assert ds.item_index(10) == 0
    with pytest.raises(UnknownIdError, match="10.0"):  # was a TypeError (len of a float)
        ds.item_index(10.0)
    with pytest.raises(ConfigError, match="item table lacks column 'item_id'"):  # was a bare KeyError
        Dataset.from_frame(
            pd.DataFrame({"user_id": ["a"], "item_id": ["10"]}), items=pd.DataFrame({"id": ["x"]})
        )


def test_timestamps_of_several_time_zones_and_out_of_range_values():
    from clarec.errors import ConfigError

    # datetimes of two zones stay objects in pandas: they were refused as "not datetimes"
    paris = pd.Timestamp("2020-01-01 01:00", tz="Europe/Paris")
    f = pd.DataFrame(
        {
            "user_id": ["a", "a"],
            "item_id": ["x", "y"],
            "timestamp": [paris, pd.Timestamp("2020-01-01", tz="UTC")],
        }
    )
    assert Dataset.from_frame(f).interactions["timestamp"].tolist() == [1577836800, 1577836800]
    for bad in (
        [np.uint64(2**63 + 5)] * 2,
        [1e19, 1.0],
        pd.to_timedelta([1, 2], unit="s"),
    ):  # wrapped or unit-less
        with pytest.raises(ConfigError, match="beyond the int64|time differences"):
            Dataset.from_frame(f.assign(timestamp=bad))


def test_ids_of_one_numeric_value_are_indexed_whatever_the_row_order():
    # "1" and "01" tied in the numeric sort and kept their first-appearance order
    f = pd.DataFrame({"user_id": ["a", "b", "c"], "item_id": ["1", "01", "2"]})
    for rows in (f, f.iloc[::-1]):
        assert Dataset.from_frame(rows).item_ids.tolist() == ["01", "1", "2"]
    big = ["123456789012345678901234567891", "123456789012345678901234567892"]
    for order in (big, big[::-1]):
        ds = Dataset.from_frame(pd.DataFrame({"user_id": ["a", "b"], "item_id": order}))
        assert ds.item_ids.tolist() == big
