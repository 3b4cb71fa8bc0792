"""Catalogue: data set names and patterns, known hashes, the data root."""

from __future__ import annotations

from pathlib import Path

import pytest

from clarec.data.catalogue import data_root, get_info, list_datasets
from clarec.errors import ConfigError


def test_names_and_patterns():
    names = list_datasets()
    for n in ["ml-100k", "ml-1m", "ml-latest-small", "ml-20m", "ml-25m", "ml-32m", "amazon2018-gift-cards",
              "amazon2018-magazine-subscriptions", "amazon2018-all-beauty", "amazon2014-beauty", "amazon2014-sports",
              "amazon2014-toys", "gowalla-lightgcn"]:  # fmt: skip
        assert n in names
    books = get_info("amazon2018-Books")
    assert books.folder == "amazon2018-books" and books.options == {"category": "Books"}
    assert books.downloads[0].url.endswith("/categoryFilesSmall/Books_5.json.gz")
    assert get_info("amazon2018-video-games").options["category"] == "Video_Games"
    assert (
        get_info("ml-100k").files["u.data"]
        == "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"
    )
    assert get_info("ml-100k").downloads[0].sha256 is None  # archive hash unknown, not invented
    with pytest.raises(ConfigError, match="unknown data set"):
        get_info("ml-7m")


def test_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("CLAREC_DATA", str(tmp_path))
    assert data_root() == tmp_path and data_root("/x") == Path("/x")
    monkeypatch.delenv("CLAREC_DATA")
    assert data_root() == Path("~/.cache/clarec/datasets").expanduser()
