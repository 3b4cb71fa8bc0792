"""Amazon 2018 and 2023 readers: synthetic files for every cleaning rule, real 2018 files when present."""

from __future__ import annotations

import gzip
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clarec.data.clean import DUPLICATE, UNKNOWN_ID
from clarec.data.sources import load_source, read_source
from clarec.data.sources.text import clean_text, clean_title, parse_price


def _gz(path: Path, rows: list[dict]) -> None:
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))


def _review(u, i, r=5.0, t=1500000000):
    return {"reviewerID": u, "asin": i, "overall": r, "unixReviewTime": t, "reviewText": "ok"}


def _amazon2018(tmp: Path) -> Path:
    _gz(
        tmp / "Cat_5.json.gz",
        [_review("A", "0345816021"), _review("A", "B2", 4.0, 1500000001), _review("B", "B2"), _review("B", "B2"),
         _review("C", "B9", 3.0)],
    )  # fmt: skip
    _gz(
        tmp / "meta_Cat.json.gz",
        [
            {"asin": "0345816021", "title": "Maggiano&#39;s Gift Card", "price": "$25.00", "brand": "M &amp; Co",
             "category": ["Gift Cards", "Gift Cards", "Restaurants"], "description": ["<div>Good <b>food</b></div>", "x"],
             "feature": ["one", "two"]},
            {"asin": "B2", "title": '<span class="a-size-medium a-color-secondary"', "price": ".a-box-inner{color:#fff}",
             "category": [], "description": [], "feature": []},
            {"asin": "B2", "title": "Second copy", "price": "$3.00"},
        ],
    )  # fmt: skip
    return tmp


def test_amazon2018_synthetic(tmp_path):
    res = load_source("amazon2018", _amazon2018(tmp_path))
    ds = res.dataset
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (3, 3, 4)
    assert res.report.count(DUPLICATE, "Cat_5.json.gz") == 1  # the repeated B/B2 review
    assert res.report.count(DUPLICATE, "meta_Cat.json.gz") == 1  # second B2 record, first wins
    assert res.report.count(UNKNOWN_ID) == 1  # B9 has no metadata but stays an item
    items = ds.items.set_index("item_id")
    gift = items.loc["0345816021"]  # an ISBN-like asin stays a string with its leading zero
    assert gift["title"] == "Maggiano's Gift Card" and gift["brand"] == "M & Co"
    assert gift["categories"] == ["Gift Cards", "Restaurants"] and gift["price"] == 25.0
    assert gift["description"] == "Good food x" and gift["features"] == "one; two"
    assert pd.isna(items.loc["B2", "title"]) and math.isnan(items.loc["B2", "price"])
    assert items.loc["B9", "categories"] == [] and pd.isna(items.loc["B9", "title"])
    raw = read_source("amazon2018", tmp_path)
    assert raw.interactions["rating"].tolist() == [5.0, 4.0, 5.0, 3.0]
    assert raw.interactions["timestamp"].tolist() == [1500000000, 1500000001, 1500000000, 1500000000]


def test_amazon2018_drop_unknown(tmp_path):
    res = load_source("amazon2018", _amazon2018(tmp_path), unknown_ids="drop")
    assert res.dataset.n_items == 2 and "B9" not in set(res.dataset.item_ids)


def test_price_and_title_rules():
    prices = parse_price(
        pd.Series(["$25.00", "$1,299.99", "$1.00 - $5.00", "", None, ".a-box{x}", 12.5, "7.5", "free"])
    )
    expected = [25.0, 1299.99, 1.0, np.nan, np.nan, np.nan, 12.5, 7.5, np.nan]
    np.testing.assert_array_equal(prices, np.asarray(expected))
    assert clean_title(' Magazines" />') is None and clean_title("&lt;b&gt;Bold&lt;/b&gt;") is None
    assert clean_title("Canoe &amp; Kayak") == "Canoe & Kayak" and clean_title("   ") is None
    # escaped comparison signs in a description are text, not a tag to strip; escaped tags go
    assert (
        clean_text("Fits ages 3 &lt; 5 years &amp; weights &gt; 10 lbs")
        == "Fits ages 3 < 5 years & weights > 10 lbs"
    )
    assert clean_text("&lt;b&gt;Bold&lt;/b&gt; text<br/>more") == "Bold text more"


def test_amazon2023_synthetic(tmp_path):
    rows = [
        {"user_id": "U1", "parent_asin": "P1", "asin": "A1", "rating": 5.0, "timestamp": 1600000000123},
        {"user_id": "U1", "parent_asin": "P2", "asin": "A2", "rating": 2.0, "timestamp": 1600000001999},
        {"user_id": "U2", "parent_asin": "P1", "asin": "A3", "rating": 4.0, "timestamp": 1600000002000},
    ]
    (tmp_path / "Cat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    meta = [
        {"parent_asin": "P1", "title": "Thing", "categories": ["A", "B"], "price": 9.99, "store": "S",
         "description": ["d1", "d2"], "features": ["f"], "main_category": "All"},
        {"parent_asin": "P2", "title": "Other", "categories": [], "price": None, "store": None,
         "description": [], "features": []},
    ]  # fmt: skip
    (tmp_path / "meta_Cat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in meta))
    res = load_source("amazon2023", tmp_path)
    ds = res.dataset
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 2, 3) and res.report.issues == []
    assert ds.interactions["timestamp"].tolist() == [1600000000, 1600000001, 1600000002]  # ms → s
    items = ds.items.set_index("item_id")
    assert items.loc["P1", "price"] == 9.99 and items.loc["P1", "store"] == "S"
    assert items.loc["P1", "description"] == "d1 d2" and items.loc["P1", "categories"] == ["A", "B"]
    assert math.isnan(items.loc["P2", "price"])
    by_asin = load_source("amazon2023", tmp_path, item_key="asin").dataset
    assert by_asin.n_items == 3


def _real(folder: str, file: str) -> Path:
    root = os.environ.get("CLAREC_DATA")
    if not root or not (Path(root) / folder / file).is_file():
        pytest.skip(f"{folder}/{file} not under $CLAREC_DATA")
    return Path(root) / folder


def test_real_gift_cards():
    res = load_source("amazon2018", _real("amazon2018-gift-cards", "Gift_Cards_5.json.gz"))
    ds = res.dataset
    assert (ds.n_users, ds.n_items) == (458, 148)
    assert res.report.rows_read == 2972 and res.report.count(DUPLICATE) == 3
    items = ds.items
    assert items["title"].notna().sum() == 148 and items["price"].notna().sum() == 107
    assert not items["title"].str.contains("&#39;", regex=False).any()
    assert items["title"].str.contains("'", regex=False).any()


def test_real_magazine_has_no_html_titles():
    res = load_source(
        "amazon2018", _real("amazon2018-magazine-subscriptions", "Magazine_Subscriptions_5.json.gz")
    )
    ds = res.dataset
    assert (ds.n_users, ds.n_items) == (348, 157)
    titles = ds.items["title"].dropna()
    assert len(titles) == 3 and not titles.str.contains("<|/>", regex=True).any()
    assert ds.items["brand"].notna().sum() == 148 and res.report.count(UNKNOWN_ID) == 61
