"""Language-model text encoding: item/user text templates, the :class:`TextEncoder` and its disk cache,
and the adaptation of an encoder to item texts (:func:`adapt_encoder`: SimCSE, supervised SimCSE, BYOL).

The encoder pulls in torch and transformers, so it is imported on first use: ``clarec.text.templates``
stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clarec.text.templates import item_text, price_bucket, user_text

if TYPE_CHECKING:
    from clarec.text.adapt import AdaptReport, adapt_encoder
    from clarec.text.cache import EmbeddingCache
    from clarec.text.encoder import EncodeStats, TextEncoder, clean_text

_LAZY = {
    "AdaptReport": "clarec.text.adapt",
    "adapt_encoder": "clarec.text.adapt",
    "TextEncoder": "clarec.text.encoder",
    "EncodeStats": "clarec.text.encoder",
    "clean_text": "clarec.text.encoder",
    "EmbeddingCache": "clarec.text.cache",
}

__all__ = [
    "AdaptReport",
    "EmbeddingCache",
    "EncodeStats",
    "TextEncoder",
    "adapt_encoder",
    "clean_text",
    "item_text",
    "price_bucket",
    "user_text",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'clarec.text' has no attribute {name!r}")
