"""S3-Rec sequence files and LightGCN adjacency files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clarec.data.clean import DUPLICATE, MALFORMED, UNKNOWN_ID
from clarec.data.sources import load_source
from clarec.data.split import make_split
from clarec.errors import DataError


def test_s3rec_positions_and_item_text(tmp_path):
    (tmp_path / "Beauty.txt").write_text("1 3 1 2\n2 2 3\n1 9 9\n")
    (tmp_path / "text.tsv").write_text(
        "s3rec_item_id\tasin\ttitle\n1\tB01\tLipstick Cr&egrave;me\n2\tB02\t\n"
    )
    res = load_source("s3rec", tmp_path / "Beauty.txt", item_text="text.tsv")
    ds = res.dataset
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 3, 5)
    # The second line of user 1 is a duplicate; item 3 (two rows) has no text but stays an item.
    assert res.report.count(DUPLICATE) == 1 and res.report.count(UNKNOWN_ID) == 2
    hist = ds.user_histories()
    assert [ds.item_ids[i] for i in hist[0]] == ["3", "1", "2"]
    assert ds.interactions["timestamp"].tolist() == [0, 1, 2, 0, 1]
    items = ds.items.set_index("item_id")
    assert items.loc["1", "title"] == "Lipstick Crème" and items.loc["1", "asin"] == "B01"  # decoded
    assert items.loc["2"].isna()["title"] and items.loc["3", "categories"] == []


def test_s3rec_item_attributes(tmp_path):
    (tmp_path / "Toys.txt").write_text("1 3 1 2\n2 2 3\n")
    (tmp_path / "attrs.json").write_text('{"1": [5, 7], "3": [7]}')
    items = load_source("s3rec", tmp_path / "Toys.txt", attributes="attrs.json").dataset.items.set_index(
        "item_id"
    )
    assert items.loc["1", "attributes"] == ["a5", "a7"] and items.loc["3", "attributes"] == ["a7"]
    assert items.loc["2", "attributes"] == []  # not in the file
    (tmp_path / "bad.json").write_text('["a", "b"]')
    with pytest.raises(DataError, match="bad.json.*JSON object mapping"):
        load_source("s3rec", tmp_path / "Toys.txt", attributes="bad.json")
    (tmp_path / "broken.json").write_text('{"1": [5,')
    with pytest.raises(DataError, match="broken.json.*not a JSON object"):
        load_source("s3rec", tmp_path / "Toys.txt", attributes="broken.json")


def test_s3rec_string_ids_need_the_option(tmp_path):
    (tmp_path / "seq.txt").write_text("A1 B1 B2\nA2 B2 B3\n")
    with pytest.raises(DataError, match="no usable rows"):
        load_source("s3rec", tmp_path / "seq.txt")
    ds = load_source("s3rec", tmp_path / "seq.txt", numeric_ids=False).dataset
    assert ds.n_items == 3


def test_s3rec_folder_needs_file_name(tmp_path):
    with pytest.raises(DataError, match="sequence_file"):
        load_source("s3rec", tmp_path)


def test_lightgcn_keeps_official_split(tmp_path):
    (tmp_path / "train.txt").write_text("0 1 2\n1 2\n2\n")
    (tmp_path / "test.txt").write_text("0 3\n1 1\n2 2\n")
    res = load_source("lightgcn", tmp_path)
    ds = res.dataset
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (3, 3, 6) and res.report.count(MALFORMED) == 0
    split = res.extras["official_split"]
    assert split["part"].value_counts().to_dict() == {"train": 3, "test": 3}
    assert split.query("part == 'test'")[["user_id", "item_id"]].values.tolist() == [
        ["0", "3"],
        ["1", "1"],
        ["2", "2"],
    ]


def _real(folder: str, file: str) -> Path:
    root = os.environ.get("CLAREC_DATA")
    if not root or not (Path(root) / folder / file).is_file():
        pytest.skip(f"{folder}/{file} not under $CLAREC_DATA")
    return Path(root) / folder


def test_real_beauty():
    folder = _real("amazon2014-beauty-sports-toys", "Beauty.txt")
    res = load_source("s3rec", folder, sequence_file="Beauty.txt", item_text="Beauty_item_text_derived.tsv")
    ds = res.dataset
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (22363, 12101, 198502)
    assert ds.items["title"].notna().sum() == 12094 and res.report.issues == []
    assert ds.items.set_index("item_id").loc["1", "asin"] == "B004756YJA"
    assert min(len(h) for h in ds.user_histories()) == 5


def test_real_gowalla():
    folder = _real("gowalla-lightgcn", "test.txt")
    res = load_source("lightgcn", folder)
    assert (res.dataset.n_users, res.dataset.n_items, res.dataset.n_interactions) == (29858, 40981, 1027370)
    assert (res.extras["official_split"]["part"] == "test").sum() == 217242


def test_real_gowalla_official_split():
    folder = _real("gowalla-lightgcn", "test.txt")
    res = load_source("lightgcn", folder)
    split = make_split(res.dataset, "official", res.extras)
    assert (split.train.n_interactions, split.valid.n_interactions, split.test.n_interactions) == (
        810128,
        0,
        217242,
    )
    with_valid = make_split(res.dataset, "official", res.extras, valid_share=0.1, seed=1)
    assert with_valid.test.n_interactions == 217242
    # per user: round(0.1 x training items), so users with few check-ins keep them all
    assert with_valid.valid.n_interactions == 73037
