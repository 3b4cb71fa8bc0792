"""clarec data synth: a synthetic set with a public set's shape, read back by that set's real loader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clarec.cli import main
from clarec.data.loading import load_dataset
from clarec.data.synth import SHAPES, synthesize
from clarec.errors import ConfigError


def test_ml20m_shape_read_by_the_real_loader(tmp_path):
    info = synthesize("ml-20m", tmp_path / "ml-20m", scale=0.01, seed=3)
    full = SHAPES["ml-20m"]
    assert info["users"] == round(full.users * 0.01) and info["items"] == round(full.items * 0.1)
    # the per-user average of the full set, at most half of the (small) user x item matrix
    per_user = full.interactions / full.users
    assert info["interactions"] == min(round(info["users"] * per_user), info["users"] * (info["items"] // 2))
    loaded = load_dataset("ml-20m", root=tmp_path)
    ds = loaded.dataset
    assert ds.n_interactions == info["interactions"]  # nothing cleaned away: no duplicate, no bad row
    assert loaded.report.rows_read == info["interactions"]
    assert ds.n_users == info["users"] and ds.n_items <= info["items"]
    per_user = np.bincount(ds.interactions["user"].to_numpy())
    assert per_user.min() >= full.min_per_user
    popularity = np.sort(ds.item_popularity())[::-1]
    assert popularity[0] > 10 * np.median(popularity)  # a long tail
    ratings = ds.interactions["rating"].to_numpy()
    assert set(np.unique(ratings)) <= {x / 2 for x in range(1, 11)} and 3.0 < ratings.mean() < 4.0
    assert ds.items["title"].str.match(r".+ \(\d{4}\)$").all()
    assert all(len(g) >= 1 for g in ds.items["genres"])
    ts = ds.interactions["timestamp"].to_numpy()
    assert ts.min() >= 788918400 - 86400 and ts.max() < 1420070400 + 86400  # 1995 .. 2015


def test_same_seed_same_files_and_clear_errors(tmp_path):
    a = synthesize("ml-25m", tmp_path / "a", scale=0.002, seed=1)
    b = synthesize("ml-25m", tmp_path / "b", scale=0.002, seed=1)
    assert a["interactions"] == b["interactions"]
    assert (tmp_path / "a" / "ratings.csv").read_bytes() == (tmp_path / "b" / "ratings.csv").read_bytes()
    # and in another time zone (the years' bounds were local midnight)
    import os
    import time

    old = os.environ.get("TZ")
    try:
        os.environ["TZ"] = "America/New_York"
        time.tzset()
        synthesize("ml-25m", tmp_path / "ny", scale=0.002, seed=1)
    finally:
        os.environ.pop("TZ") if old is None else os.environ.__setitem__("TZ", old)
        time.tzset()
    assert (tmp_path / "ny" / "ratings.csv").read_bytes() == (tmp_path / "a" / "ratings.csv").read_bytes()
    with pytest.raises(ConfigError, match="not empty"):
        synthesize("ml-25m", tmp_path / "a", scale=0.002)
    with pytest.raises(ConfigError, match="unknown shape"):
        synthesize("netflix", tmp_path / "c")
    with pytest.raises(ConfigError, match="scale"):
        synthesize("ml-20m", tmp_path / "d", scale=2.0)


def test_cli(tmp_path, capsys):
    assert main(["data", "synth", "ml-32m", "--out", str(tmp_path / "s"), "--scale", "0.001"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["shape"] == "ml-32m" and (tmp_path / "s" / "movies.csv").is_file()
    # a refused command: one error line and a failing status, like every other clarec command
    assert main(["data", "synth", "ml-32m", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not empty" in err and len(err.strip().splitlines()) == 1


def test_amazon2023_shape_read_by_the_real_loader(tmp_path):
    from clarec.data.loading import load_from_config

    info = synthesize("amazon2023", tmp_path / "az", scale=0.0005, seed=2)
    assert info["files"] == ["Synthetic_Goods.jsonl", "meta_Synthetic_Goods.jsonl"]
    loaded = load_from_config({"source": "amazon2023", "path": str(tmp_path / "az")})
    ds = loaded.dataset
    assert ds.n_interactions == info["interactions"] == 2 * info["users"]  # two reviews per user on average
    assert loaded.report.rows_read == info["interactions"]
    assert ds.n_users == info["users"]
    assert set(np.unique(ds.interactions["rating"])) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    items = ds.items
    assert items["title"].notna().all() and items["description"].str.len().gt(10).all()
    assert all(len(c) == 3 for c in items["categories"]) and items["price"].gt(0).all()
    ts = ds.interactions["timestamp"].to_numpy()  # milliseconds in the file, seconds here
    assert ts.min() >= 1104537600 - 86400 and ts.max() < 1672531200 + 86400  # 2005 .. 2023
