"""How a text encoder's item space is shaped: alignment of held-out positive pairs, uniformity of the
item vectors, and whether co-consumed items sit closer than random pairs (before and after adaptation)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from clarec.contrastive.augment import IdentityAugment, TextAugment
from clarec.contrastive.diagnostics import alignment, uniformity
from clarec.text.adapt_data import ItemTexts, seeded_sample

if TYPE_CHECKING:
    from clarec.text.encoder import TextEncoder

__all__ = ["DIAGNOSTIC_ORDER", "embedding_diagnostics"]

#: The keys :func:`embedding_diagnostics` may return, in the order reports list them.
DIAGNOSTIC_ORDER = (
    "alignment",
    "alignment_views",
    "uniformity",
    "pair_cosine",
    "random_cosine",
    "cosine_gap",
)


@torch.no_grad()
def _view_vectors(encoder: TextEncoder, texts: list[str], batch_size: int) -> torch.Tensor:
    out = [
        encoder.embed_batch(texts[s : s + batch_size], train=True) for s in range(0, len(texts), batch_size)
    ]
    return torch.cat(out).float().cpu()


def embedding_diagnostics(
    encoder: TextEncoder,
    texts: Sequence[str],
    heldout_pairs: np.ndarray | None = None,
    view_text_ids: np.ndarray | None = None,
    item_texts: ItemTexts | None = None,
    augment: TextAugment | None = None,
    max_uniformity_items: int = 4096,
    max_view_texts: int = 512,
    batch_size: int = 64,
    seed: int = 0,
) -> dict[str, float]:
    """How the encoder's item space is shaped (all measures on L2-normalised vectors).

    Keys:
        ``uniformity``: :func:`~clarec.contrastive.diagnostics.uniformity` of the distinct item texts'
            vectors (a seeded sample of ``max_uniformity_items`` when there are more); lower is more spread.
        ``alignment``, ``pair_cosine``, ``random_cosine``, ``cosine_gap`` (with ``heldout_pairs``, rows of
            item indices into ``texts``): alignment of the pairs, their mean cosine, the mean cosine of
            the same items re-paired at random (a seeded permutation of the second column, so both sides
            keep their popularity), and the difference. A useful encoder has a clearly positive gap.
        ``alignment_views`` (with ``view_text_ids`` and ``item_texts``): alignment of two views of the
            same text with dropout on (and ``augment``, if given), as the unsupervised methods see them.

    Vectors come from :meth:`TextEncoder.encode` (eval mode, no dropout); the encoder is left in eval mode.
    """
    rng = np.random.default_rng(seed)
    texts = list(texts)
    distinct = list(dict.fromkeys(texts))
    where = {t: i for i, t in enumerate(distinct)}
    vectors = torch.from_numpy(np.asarray(encoder.encode(distinct), dtype=np.float32))
    vectors = F.normalize(vectors, dim=-1)
    out: dict[str, float] = {}
    if len(distinct) >= 2:
        rows = seeded_sample(len(distinct), max_uniformity_items, rng)
        out["uniformity"] = float(uniformity(vectors[torch.from_numpy(rows)]))
    if heldout_pairs is not None and len(heldout_pairs):
        ids = np.array([where[t] for t in texts], dtype=np.int64)
        a = vectors[torch.from_numpy(ids[heldout_pairs[:, 0]])]
        b = vectors[torch.from_numpy(ids[heldout_pairs[:, 1]])]
        shuffled = b[torch.from_numpy(rng.permutation(len(b)))]
        out["alignment"] = float(alignment(a, b))
        out["pair_cosine"] = float((a * b).sum(-1).mean())
        out["random_cosine"] = float((a * shuffled).sum(-1).mean())
        out["cosine_gap"] = out["pair_cosine"] - out["random_cosine"]
    if view_text_ids is not None and item_texts is not None and len(view_text_ids):
        chosen = view_text_ids[seeded_sample(len(view_text_ids), max_view_texts, rng)]
        aug = augment or IdentityAugment()
        v1 = _view_vectors(encoder, item_texts.views(chosen, aug, rng), batch_size)
        v2 = _view_vectors(encoder, item_texts.views(chosen, aug, rng), batch_size)
        out["alignment_views"] = float(alignment(v1, v2))
    encoder.eval()
    return out
