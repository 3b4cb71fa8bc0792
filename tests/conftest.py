"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import data_root, make_random_dataset

from clarec.data.dataset import Dataset


@pytest.fixture
def real_data_root() -> Path:
    root = data_root()
    if root is None:
        pytest.skip("CLAREC_DATA not set")
    return root


@pytest.fixture
def small_dataset() -> Dataset:
    return make_random_dataset()
