"""MovieLens readers: synthetic folders for each layout, and the real files when CLAREC_DATA has them."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from clarec.data.clean import DUPLICATE, MALFORMED, RATING_RANGE, UNKNOWN_ID
from clarec.data.sources import load_source, read_source
from clarec.errors import DataError


def _real(folder: str, file: str) -> Path:
    root = os.environ.get("CLAREC_DATA")
    if not root or not (Path(root) / folder / file).is_file():
        pytest.skip(f"{folder}/{file} not under $CLAREC_DATA")
    return Path(root) / folder


def _ml100k(tmp: Path) -> Path:
    (tmp / "u.data").write_text("1\t1\t5\t100\n1\t2\t3\t101\n2\t1\t4\t102\n2\t3\t9\t103\n2\t1\t4\t102\n")
    flags = ["0"] * 19
    f1, f2 = flags.copy(), flags.copy()
    f1[1] = f1[5] = "1"
    f2[0] = "1"
    (tmp / "u.item").write_bytes(
        (
            "1|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join(f1) + "\n"
            "2|Caf\xe9 (1994)|01-Jan-1994||http://y|" + "|".join(f2) + "\n"
            "3|Third (1990)|||http://z|" + "|".join(flags) + "\n"
        ).encode("latin-1")
    )
    (tmp / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    return tmp


def test_ml100k_synthetic(tmp_path):
    res = load_source("movielens-100k", _ml100k(tmp_path))
    ds = res.dataset
    # The rating 9 is out of range and the last row repeats row 3 exactly.
    assert res.report.count(RATING_RANGE) == 1 and res.report.count(DUPLICATE) == 1
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 2, 3)
    assert res.report.rows_read == 5 and res.report.rows_kept == 3
    items = ds.items.set_index("item_id")
    assert items.loc["1", "genres"] == ["Action", "Comedy"] and items.loc["1", "categories"] == [
        "Action",
        "Comedy",
    ]
    assert items.loc["2", "title"] == "Café (1994)" and items.loc["2", "genres"] == ["unknown"]
    assert items.loc["1", "year"] == 1995 and math.isnan(items.loc["1", "price"])
    users = ds.users.set_index("user_id")
    assert users.loc["2", "occupation"] == "other" and users.loc["1", "age"] == 24
    raw = read_source("movielens-100k", tmp_path)
    assert list(raw.interactions["rating"]) == [5.0, 3.0, 4.0]
    assert list(ds.interactions["rating"]) == [5.0, 3.0, 4.0]  # kept beside weight until to_implicit
    assert list(ds.interactions["weight"]) == [1.0, 1.0, 1.0]


def test_ml100k_uses_u_genre_names(tmp_path):
    _ml100k(tmp_path)
    names = [f"G{i}" for i in range(19)]
    (tmp_path / "u.genre").write_text("".join(f"{n}|{i}\n" for i, n in enumerate(names)) + "\n")
    items = load_source("movielens-100k", tmp_path).dataset.items.set_index("item_id")
    assert items.loc["1", "genres"] == ["G1", "G5"]


def test_ml100k_strict_names_first_bad_line(tmp_path):
    with pytest.raises(DataError) as e:
        load_source("movielens-100k", _ml100k(tmp_path), strict=True)
    assert e.value.line == 4 and RATING_RANGE in e.value.reason and e.value.path.endswith("u.data")


def test_ml100k_unknown_item_kept_or_dropped(tmp_path):
    _ml100k(tmp_path)
    (tmp_path / "u.data").write_text("1\t1\t5\t100\n1\t7\t3\t101\n")
    res = load_source("movielens-100k", tmp_path)
    assert res.report.count(UNKNOWN_ID) == 1 and res.dataset.n_items == 2
    assert res.dataset.items.set_index("item_id").loc["7"].isna()["title"]
    res = load_source("movielens-100k", tmp_path, unknown_ids="drop")
    assert res.dataset.n_items == 1


def test_movielens_csv_synthetic(tmp_path):
    (tmp_path / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,1,4.5,10\n1,2,0.5,11\n2,2,6.0,12\n"
    )
    (tmp_path / "movies.csv").write_text(
        'movieId,title,genres\n1,"American President, The (1995)",Comedy|Drama|Romance\n'
        "2,Some Film (2010-2012),(no genres listed)\n3,No Year,Drama\n"
    )
    (tmp_path / "tags.csv").write_text('userId,movieId,tag,timestamp\n1,1,"funny, smart",20\n')
    res = load_source("movielens-csv", tmp_path)
    ds = res.dataset
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (1, 2, 2) and res.report.count(RATING_RANGE) == 1
    items = ds.items.set_index("item_id")
    assert items.loc["1", "title"] == "American President, The (1995)"
    assert items.loc["1", "genres"] == ["Comedy", "Drama", "Romance"] and items.loc["2", "genres"] == []
    assert items.loc["1", "year"] == 1995 and items.loc["2", "year"] == 2010
    tags = res.extras["tags"]
    assert tags.to_dict("records") == [
        {"user_id": "1", "item_id": "1", "tag": "funny, smart", "timestamp": 20}
    ]


def test_movielens_csv_too_many_fields_is_malformed(tmp_path):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.5,10\n1,2,0.5,11,99\n")
    res = load_source("movielens-csv", tmp_path)
    assert res.report.count(MALFORMED) == 1 and res.report.issues[0].first_line == 3
    with pytest.raises(DataError, match="expected 4 fields") as e:
        load_source("movielens-csv", tmp_path, strict=True)
    assert e.value.line == 3


def test_ml1m_synthetic(tmp_path):
    (tmp_path / "ratings.dat").write_text("1::1::5::978300760\n2::1::3::978300761\n2::2::4::978300762\n")
    (tmp_path / "movies.dat").write_bytes(
        "1::Toy Story (1995)::Animation|Children's|Comedy\n2::Caf\xe9 (1999)::Drama\n".encode("latin-1")
    )
    (tmp_path / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    ds = load_source("movielens-1m", tmp_path).dataset
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 2, 3)
    items = ds.items.set_index("item_id")
    assert items.loc["2", "title"] == "Café (1999)" and items.loc["1", "genres"] == [
        "Animation",
        "Children's",
        "Comedy",
    ]
    users = ds.users.set_index("user_id")
    assert users.loc["2", "age_group"] == "56+" and users.loc["1", "gender"] == "F"


def test_real_ml100k():
    folder = _real("ml-100k", "u.data")
    res = load_source("movielens-100k", folder)
    ds = res.dataset
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (943, 1682, 100000)
    assert res.report.issues == [] and res.report.rows_kept == 100000
    items = ds.items.set_index("item_id")
    assert items.loc["1", "title"] == "Toy Story (1995)"
    assert items.loc["1", "genres"] == ["Animation", "Children's", "Comedy"]
    assert items.loc["267", "title"] == "unknown"
    assert ds.users.set_index("user_id").loc["1", "occupation"] == "technician"


def test_real_ml_latest_small():
    folder = _real("ml-latest-small", "ratings.csv")
    res = load_source("movielens-csv", folder)
    ds = res.dataset
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (610, 9724, 100836)
    assert len(res.extras["tags"]) == 3683
    # movies.csv lists 9,742 movies; the 18 nobody rated are not in the data set, and the report says so
    assert [(i.reason, i.count, i.action) for i in res.report.issues] == [("no interactions", 18, "left out")]
    assert ds.items["year"].notna().sum() > 9600


def test_real_ml1m_without_ratings_says_so():
    folder = _real("ml-1m", "movies.dat")
    if (folder / "ratings.dat").exists():
        pytest.skip("ratings.dat is present")
    with pytest.raises(DataError, match="not found") as e:
        load_source("movielens-1m", folder)
    assert e.value.path.endswith("ratings.dat")
