"""Loading: data sets by name from the data root, config sections and their filters."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from clarec.data.catalogue import dataset_info
from clarec.data.loading import load_dataset, load_from_config
from clarec.errors import ConfigError, DataError


def test_missing_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match="clarec data fetch ml-100k"):
        load_dataset("ml-100k", root=tmp_path)
    info = dataset_info("ml-100k", root=tmp_path)
    assert info["installed"] is False and info["files"]["u.data"]["present"] is False


def test_load_from_config(tmp_path):
    (tmp_path / "log.csv").write_text("u,i,r\na,x,5\na,y,2\nb,x,4\nb,y,5\nc,x,5\n")
    cfg = {"source": "tabular", "path": str(tmp_path / "log.csv"), "columns": {"user": "u", "item": "i", "rating": "r"},
           "min_rating": 4, "k_core": 2}  # fmt: skip
    # ratings >= 4 leave a:x, b:x, b:y, c:x; the 2-core drops a, c and y, then b (one item left): nothing remains.
    with pytest.raises(ConfigError, match="removed every interaction") as e:
        load_from_config(cfg)
    assert "min_rating" in str(e.value) and "k_core" in str(e.value)
    res = load_from_config({**cfg, "k_core": 0, "min_user_interactions": 2, "min_item_interactions": 1})
    assert list(res.dataset.user_ids) == ["b"] and [s.name for s in res.report.steps] == [
        "min_rating",
        "k_core",
    ]
    with pytest.raises(ConfigError, match="unknown data config key\\(s\\) \\['min_ratings'\\]") as e:
        load_from_config({**cfg, "min_ratings": 4})
    assert "'min_ratings': did you mean 'min_rating'?" in str(e.value)
    # the keys other code reads (a run reads tags and profiles) are named among the allowed ones
    with pytest.raises(ConfigError, match="'profile': did you mean 'profiles'") as e:
        load_from_config({**cfg, "profile": "x"}, allow=["profiles", "tags"])
    assert "'tags'" in str(e.value)
    assert load_from_config({**cfg, "k_core": 1, "split": "loo"}, allow=["split"]).dataset.n_interactions == 4
    with pytest.raises(ConfigError, match="exactly one"):
        load_from_config({"path": "x"})
    with pytest.raises(ConfigError, match="needs 'path'"):
        load_from_config({"source": "tabular"})
    with pytest.raises(ConfigError, match="non-negative integer"):
        load_from_config({**cfg, "k_core": "5"})
    with pytest.raises(ConfigError, match="dedupe must be"):
        load_from_config({**cfg, "dedupe": "newest"})


def _real_root() -> Path:
    root = os.environ.get("CLAREC_DATA")
    if not root or not (Path(root) / "ml-100k" / "u.data").is_file():
        pytest.skip("ml-100k not under $CLAREC_DATA")
    return Path(root)


def test_real_ml100k_by_name_and_config():
    root = _real_root()
    assert load_dataset("ml-100k", root=root).dataset.n_interactions == 100000
    res = load_from_config({"name": "ml-100k", "min_rating": 4}, root=root)
    assert res.dataset.n_interactions == 55375 and res.report.steps[0].removed_interactions == 44625
    assert set(res.dataset.interactions["weight"]) == {1.0}
    with pytest.raises(ConfigError, match="unknown data config key"):
        load_from_config({"name": "ml-100k", "columns": {}}, root=root)


def test_real_catalogue_names_resolve():
    root = _real_root()
    for name in [
        "ml-latest-small",
        "amazon2014-beauty",
        "amazon2018-gift-cards",
        "amazon2018-magazine-subscriptions",
    ]:
        assert dataset_info(name, root)["installed"], name
    beauty = load_dataset("amazon2014-beauty", root=root).dataset
    assert beauty.items["title"].notna().sum() == 12094
    assert load_dataset("amazon2018-gift-cards", root=root).dataset.n_users == 458


def test_load_dataset_applies_filter_keys(real_data_root):
    res = load_dataset("ml-100k", min_rating=4)
    assert res.dataset.n_interactions == 55375
    assert set(res.dataset.interactions["weight"].unique()) == {1.0}


def test_combine_several_data_sets_with_domain_prefixed_ids(tmp_path):
    (tmp_path / "A.txt").write_text("1 1 2 3\n2 2 3\n")
    (tmp_path / "B.txt").write_text("1 1 2\n5 7 7 1\n")
    (tmp_path / "B_text.tsv").write_text("s3rec_item_id\tasin\ttitle\n1\ta1\tOne\n2\ta2\tTwo\n7\ta7\tSeven\n")
    cfg = {
        "combine": [
            {"source": "s3rec", "path": str(tmp_path / "A.txt"), "domain": "a"},
            {"source": "s3rec", "path": str(tmp_path / "B.txt"), "item_text": "B_text.tsv", "k_core": 0},
        ]
    }
    result = load_from_config(cfg)
    ds = result.dataset
    assert ds.n_interactions == 5 + 5 and ds.n_users == 4 and ds.n_items == 3 + 3
    assert sorted(ds.user_ids) == ["B:1", "B:5", "a:1", "a:2"]
    assert result.extras["domains"] == ["a", "B"]
    titles = dict(zip(ds.items["item_id"], ds.items["title"], strict=True))
    assert titles["B:7"] == "Seven" and pd.isna(titles["a:1"])  # A has no text: empty there
    assert set(ds.items["domain"]) == {"a", "B"}
    # each user's sequence keeps its order
    hist = ds.user_histories()[ds.user_index("B:5")]
    assert list(ds.item_ids[hist]) == ["B:7", "B:7", "B:1"]
    with pytest.raises(ConfigError, match="at least two"):
        load_from_config({"combine": [cfg["combine"][0]]})
    with pytest.raises(ConfigError, match="nothing beside it"):
        load_from_config({**cfg, "min_rating": 4})
    with pytest.raises(ConfigError, match="must differ"):
        load_from_config({"combine": [cfg["combine"][0], cfg["combine"][0]]})


def test_a_relative_path_that_is_not_there_says_where_it_was_looked_for(tmp_path, monkeypatch):
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "events.csv").write_text("user_id,item_id\na,x\nb,x\n")
    monkeypatch.chdir(tmp_path)
    cfg = {"source": "tabular", "path": "events.csv"}  # beside the config, not in the current folder
    with pytest.raises(DataError, match="relative path is read from the current folder") as e:
        load_from_config(cfg)
    assert str(tmp_path) in str(e.value)
    assert load_from_config(cfg | {"path": "shop/events.csv"}).dataset.n_interactions == 2
