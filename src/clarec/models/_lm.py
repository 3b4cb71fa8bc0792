"""Helpers shared by the language-model recommenders (``lm-content``, ``two-tower``).

Building the :class:`~clarec.text.encoder.TextEncoder` from a model's parameters, choosing the item
text fields, locating the embedding cache, and the vectorised "last ``L`` items of a history" index
arithmetic both models use.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from clarec.errors import ConfigError
from clarec.models.params import param, text_list
from clarec.text.fast import RUNTIMES
from clarec.text.templates import DEFAULT_ITEM_FIELDS, item_text

#: Environment variable whose folder holds clarec's caches (embeddings go to ``$CLAREC_CACHE/embeddings``).
CACHE_ENV = "CLAREC_CACHE"
DEFAULT_CACHE = Path("~/.cache/clarec")


def default_cache_dir() -> Path:
    """``$CLAREC_CACHE/embeddings`` when the variable is set, else ``~/.cache/clarec/embeddings``."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root) if root else DEFAULT_CACHE).expanduser() / "embeddings"


def resolve_cache_dir(cache_dir: str | None) -> Path | None:
    """The embedding-cache folder for a model's ``cache_dir`` parameter.

    ``None`` or ``"default"`` → :func:`default_cache_dir`; ``"none"`` / ``""`` → no cache; else the path.
    """
    if cache_dir is None or cache_dir == "default":
        return default_cache_dir()
    if str(cache_dir).strip().lower() in ("", "none", "off"):
        return None
    return Path(cache_dir).expanduser()


def build_encoder(
    encoder: str | None,
    cache_dir: str | None,
    batch_size: int = 64,
    max_length: int = 128,
    device: str | None = "cpu",
    progress: bool | None = None,
    runtime: str = "torch",
):
    """A :class:`TextEncoder` for ``encoder`` (a folder written by ``TextEncoder.save``, any model
    folder, a Hugging Face id, ``"smollm2"`` for the bundled generative LM, or ``None`` for the bundled
    MiniLM); ``runtime`` is the encoder's (``"torch"``, ``"torch-bf16"``, ``"onnx"``, ``"onnx-int8"``)."""
    from clarec.text.encoder import SETTINGS_FILE, TextEncoder

    show = bool(progress) if progress is not None else False
    cache = resolve_cache_dir(cache_dir)
    if encoder is not None and (Path(encoder).expanduser() / SETTINGS_FILE).is_file():
        # An adapted encoder saved by clarec keeps its own pooling / length settings.
        return TextEncoder.load(
            Path(encoder).expanduser(),
            device=device,
            batch_size=batch_size,
            cache_dir=cache,
            progress=show,
            runtime=runtime,
        )
    return TextEncoder(
        encoder,
        max_length=max_length,
        batch_size=batch_size,
        device=device,
        cache_dir=cache,
        progress=show,
        runtime=runtime,
    )


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _column_key(col: pd.Series) -> list[str]:
    return [repr(v.tolist() if isinstance(v, np.ndarray) else v) for v in col.tolist()]


def choose_fields(items: pd.DataFrame, fields: Sequence[str] | None, model: str) -> list[str]:
    """The item fields to render: ``fields`` as given (each must exist), or by default those of
    :data:`~clarec.text.templates.DEFAULT_ITEM_FIELDS` the table has, skipping a column that copies an
    earlier one (MovieLens has ``categories`` = ``genres``), which would say everything twice; a
    column with no value yet is kept (not a copy of another empty one: items added later may fill it)."""
    if fields is not None:
        fields = [str(f) for f in ([fields] if isinstance(fields, str) else fields)]
        missing = [f for f in fields if f not in items.columns]
        if missing:
            have = [str(c) for c in items.columns if c != "item_id"]
            raise ConfigError(f"{model}: item table has no column(s) {missing}; it has {have}")
        return fields
    chosen: list[str] = []
    keys: list[list[str]] = []
    for f in DEFAULT_ITEM_FIELDS:
        if f not in items.columns:
            continue
        if not any(item_text(items, [f])):  # nothing to say yet (added items may have it): never a copy
            chosen.append(f)
            continue
        key = _column_key(items[f])
        if key in keys:
            continue
        chosen.append(f)
        keys.append(key)
    if not chosen:
        raise ConfigError(
            f"{model}: no item text found; the item table needs one of {list(DEFAULT_ITEM_FIELDS)} "
            f"or pass fields=[...] (it has {[str(c) for c in items.columns]})"
        )
    return chosen


def item_texts(items: pd.DataFrame, fields: Sequence[str] | None, model: str) -> list[str]:
    """One text per item (row order = item index), rendered by :func:`clarec.text.templates.item_text`."""
    return item_text(items, choose_fields(items, fields, model))


def recent_positions(starts: np.ndarray, ends: np.ndarray, length: int, skip: np.ndarray | None = None):
    """Positions of the last ``length`` entries of each row range ``[start, end)``, most recent first.

    Returns ``(pos, valid)``, both ``(len(starts), length)``: ``pos[r, k]`` is the position of the
    ``k``-th most recent entry of row ``r`` (meaningful where ``valid``). With ``skip`` (one position
    per row), that position is left out and the next older entry takes its place — how a training
    target is kept out of its own history.
    """
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    extra = 0 if skip is None else 1
    pos = ends[:, None] - 1 - np.arange(length + extra, dtype=np.int64)[None, :]
    valid = pos >= starts[:, None]
    if skip is not None:
        keep = valid & (pos != np.asarray(skip, dtype=np.int64)[:, None])
        # Stable sort on "dropped" moves kept entries to the front in their recency order.
        order = np.argsort(~keep, axis=1, kind="stable")[:, :length]
        pos = np.take_along_axis(pos, order, axis=1)
        valid = np.take_along_axis(keep, order, axis=1)
    return np.where(valid, pos, 0), valid


class ItemTextParams:
    """The item-text hyper-parameters of the models that encode item texts themselves (mixin):
    ``fields`` rendered, text model ``encoder`` (``None``: the bundled MiniLM; ``"smollm2"``: the
    bundled generative LM, mean-pooled), its embedding ``cache_dir``, ``max_length`` tokens per text,
    ``encoder_runtime`` (``"torch"``, ``"torch-bf16"``; ``"onnx"`` or ``"onnx-int8"``: see
    :mod:`clarec.text.fast`)."""

    fields = param(None, text_list)
    encoder = param(None, str)
    cache_dir = param(None, str)
    max_length = param(128, ge=2)
    encoder_runtime = param("torch", choices=RUNTIMES)


def text_columns(items: pd.DataFrame, fields: Sequence[str], model: str, new: bool = False) -> pd.DataFrame:
    """``items``' columns ``fields`` (a column the rows lack counts as empty). ``new`` items (added
    after training) with nothing in any of them are refused: each would be scored as the empty text,
    placed among the others by nothing it says."""
    have = [str(c) for c in items.columns if c != "item_id"]
    if len(items) and not any(f in items.columns for f in fields):
        raise ConfigError(
            f"{model}: the new items have none of the fields the model reads {list(fields)}; they have {have}"
        )
    frame = items.reindex(columns=list(fields))
    if new and len(frame):
        empty = [i for i, text in enumerate(item_text(frame, list(fields))) if not text]
        if empty:
            ids = items["item_id"].iloc[empty].tolist() if "item_id" in items.columns else empty
            raise ConfigError(
                f"{model}: new item(s) {ids[:5]} have no text in the fields the model reads {list(fields)} "
                f"(their columns: {have}): an item is scored from its text"
            )
    return frame


def model_text_vectors(model, items: pd.DataFrame, new: bool = False) -> np.ndarray:
    """LM vectors ``(len(items), d)`` of an item table's texts, for a model with the parameters
    ``fields``, ``encoder``, ``cache_dir``, ``max_length`` and ``progress``. The fields chosen the first
    time are kept in ``model.text_fields_``, so items added later are rendered the same way (a column
    they lack counts as empty; ``new`` items with no text at all are refused: :func:`text_columns`)."""
    fields = getattr(model, "text_fields_", None) or choose_fields(items, model.fields, model.name)
    model.text_fields_ = list(fields)
    texts = item_texts(text_columns(items, fields, model.name, new=new), fields, model.name)
    encoder = build_encoder(
        model.encoder,
        model.cache_dir,
        max_length=model.max_length,
        progress=model.progress,
        runtime=model.encoder_runtime,
    )
    if not texts:  # no items: no vectors, of the encoder's width
        return np.empty((0, encoder.dim), dtype=np.float32)
    return np.asarray(encoder.encode(texts), dtype=np.float32).reshape(len(texts), -1)
