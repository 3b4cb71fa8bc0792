"""Item and user text templates: exact strings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clarec.errors import ConfigError, DataError
from clarec.text.templates import item_text, parse_price, price_bucket, truncate_words, user_text


@pytest.fixture
def items() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": ["1", "2", "3", "4"],
            "title": ["Toy Story (1995)", "GoldenEye (1995)", None, "  "],
            "genres": [["Animation", "Children's", "Comedy"], "Action|Adventure|Thriller", [], np.nan],
            "price": [12.5, "$1,200.00", float("nan"), "n/a"],
            "brand": [None, "MGM", "", pd.NA],
            "description": [
                "<p>A cowboy doll is   profoundly\nthreatened</p> by a new spaceman figure.",
                None,
                ["Line one.", "Line two"],
                "",
            ],
        }
    )


def test_item_text_default_fields(items):
    assert item_text(items, max_description_chars=40) == [
        "Title: Toy Story (1995). Genres: Animation, Children's, Comedy. Price: $10-25. "
        "Description: A cowboy doll is profoundly threatened...",
        "Title: GoldenEye (1995). Genres: Action, Adventure, Thriller. Brand: MGM. Price: $500 and up.",
        "Description: Line one. Line two.",
        "",
    ]


def test_item_text_field_order_labels_and_single_rows(items):
    assert item_text(items, fields=["genres", "title"], labels={"genres": "Kind"})[:2] == [
        "Kind: Animation, Children's, Comedy. Title: Toy Story (1995).",
        "Kind: Action, Adventure, Thriller. Title: GoldenEye (1995).",
    ]
    assert item_text(items.iloc[1], fields=("title", "brand")) == ["Title: GoldenEye (1995). Brand: MGM."]
    assert item_text(
        {"title": "X", "release_year": 1995.0, "is_new": True}, fields=["title", "release_year", "is_new"]
    ) == ["Title: X. Release year: 1995. Is new: yes."]
    # Nested category lists (Amazon) are flattened, duplicates dropped.
    assert item_text({"categories": [["Beauty", "Skin Care"], ["Beauty", "Face"]]}) == [
        "Categories: Beauty, Skin Care, Face."
    ]


def test_item_text_errors():
    with pytest.raises(ConfigError, match="none of the fields"):
        item_text(pd.DataFrame({"name": ["a"]}))
    with pytest.raises(ConfigError, match="fields is empty"):
        item_text(pd.DataFrame({"title": ["a"]}), fields=[])
    with pytest.raises(ConfigError, match="max_description_chars"):
        item_text({"title": "a"}, max_description_chars=-1)
    with pytest.raises(ConfigError, match="expected a DataFrame"):
        item_text(["a"])
    assert item_text(pd.DataFrame({"title": []})) == []


@pytest.mark.parametrize(
    ("price", "bucket"),
    [
        (0, "under $5"),
        (4.99, "under $5"),
        (5, "$5-10"),
        (24.99, "$10-25"),
        (25, "$25-50"),
        (499, "$250-500"),
        (500, "$500 and up"),
        ("$1,234.50", "$500 and up"),
        ("$10.00 - $15.00", "$10-25"),
        (-3, ""),
        ("n/a", ""),
        (None, ""),
        (float("inf"), ""),
        (True, ""),
    ],
)
def test_price_bucket(price, bucket):
    assert price_bucket(price) == bucket


@pytest.mark.parametrize(
    "text, value",
    [
        ("12,99", 12.99),  # a decimal comma: was read as 1299 ("$500 and up")
        ("12,99 €", 12.99),
        ("EUR 1.299,00", 1299.0),
        ("1,299.00", 1299.0),
        ("$1,299", 1299.0),
        ("1 299,00", 1299.0),
        ("CHF 1'299.50", 1299.5),
        ("1,299,000", 1299000.0),
        ("0,500", 0.5),
        ("1.299", 1.299),
        ("$10.00 - $15.00", 10.0),
        ("10–15 €", 10.0),
        ("-5", None),
        ("-$5", None),
        ("1,2,3", None),
        (".a-box-inner{color:#fff}", None),
        ("free", None),
    ],
)
def test_parse_price_reads_the_usual_formats(text, value):
    assert parse_price(text) == value


def test_price_bucket_custom_bins():
    assert price_bucket(7, bins=(1, 2.5)) == "$2.5 and up"
    assert price_bucket(2, bins=(1, 2.5)) == "$1-2.5"
    assert parse_price("3.5 dollars") == 3.5
    assert parse_price("US$ 12") == 12.0


@pytest.mark.parametrize("text", ["about 3.5 dollars", "size 10", "pack 12", "Model 2000"])
def test_parse_price_refuses_a_number_with_other_words(text):
    # any word was taken for a currency: a "size 10" in a price column became a price of 10
    assert parse_price(text) is None


def test_truncate_words():
    assert truncate_words("one two three four", 9) == "one two..."
    assert truncate_words("one two three four", 7) == "one two..."
    assert truncate_words("one two three four", 100) == "one two three four"
    assert truncate_words("abcdefghij", 4) == "abcd..."
    assert truncate_words("one, two", 5) == "one..."
    assert truncate_words("anything", 0) == "anything"


def test_user_text_profile_and_recent_titles():
    users = pd.DataFrame(
        {"user_id": ["a", "b", "c"], "age": [24, np.nan, 31], "occupation": ["technician", "", "writer"]}
    )
    titles = ["Toy Story (1995)", "GoldenEye (1995)", None, "Fargo (1996)"]
    histories = [np.array([0, 1, 2, 3]), np.array([], dtype=np.int64), np.array([3, 2])]
    assert user_text(users, histories, titles, n_recent=2) == [
        "Age: 24. Occupation: technician. Recent items: Fargo (1996); GoldenEye (1995).",
        "",
        "Age: 31. Occupation: writer. Recent items: Fargo (1996).",
    ]
    assert user_text(users, histories, pd.Series(titles), profile_fields=["occupation"], n_recent=0) == [
        "Occupation: technician.",
        "",
        "Occupation: writer.",
    ]
    assert user_text(None, histories[:1], np.array(titles, dtype=object), history_label="Watched") == [
        "Watched: Fargo (1996); GoldenEye (1995); Toy Story (1995)."
    ]


def test_user_text_errors():
    users = pd.DataFrame({"age": [1]})
    with pytest.raises(ConfigError, match="1 rows for 2 histories"):
        user_text(users, [np.array([0]), np.array([0])], ["t"])
    with pytest.raises(ConfigError, match="lacks \\['zip'\\]"):
        user_text(users, [np.array([0])], ["t"], profile_fields=["zip"])
    with pytest.raises(ConfigError, match="n_recent"):
        user_text(users, [np.array([0])], ["t"], n_recent=-1)
    with pytest.raises(DataError, match="item index 5 but only 1 titles"):
        user_text(users, [np.array([0, 5])], ["t"])


def test_markup_is_stripped_and_entities_decoded_but_comparisons_stay():
    items = pd.DataFrame(
        {
            "title": [
                "Cable, length <2m, weight >5kg",
                "Tom &amp; Jerry &quot;Best&quot;",
                "<b>Bold</b> pick",
            ],
            "description": [
                "if a < b and c > d then",
                "<p>Two<br/>lines</p>",
                "x &lt; y &lt;i&gt;z&lt;/i&gt;",
            ],
        }
    )
    assert item_text(items, ["title", "description"]) == [
        "Title: Cable, length <2m, weight >5kg. Description: if a < b and c > d then.",
        'Title: Tom & Jerry "Best". Description: Two lines.',
        "Title: Bold pick. Description: x < y z.",
    ]
