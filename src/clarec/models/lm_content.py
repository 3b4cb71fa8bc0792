"""Content-based recommender over frozen language-model vectors of item text.

The language-model counterpart of ``tfidf``: every item's text (title, genres, brand, price range,
description... through :func:`clarec.text.templates.item_text`) becomes a sentence vector from a
:class:`~clarec.text.encoder.TextEncoder` (the bundled all-MiniLM-L6-v2 unless ``encoder`` names an
adapted one), cached on disk so a second run encodes nothing. A user's profile is the recency-weighted
mean of their history's vectors and an item's score is the cosine (or dot product) of profile and item.
Nothing is learned from interactions but the profiles, so items nobody has interacted with yet are
scored like any other.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from clarec.data.dataset import Dataset
from clarec.models._lm import build_encoder, choose_fields, item_texts, text_columns, unit_rows
from clarec.models.base import Recommender
from clarec.models.embedding import EmbeddingModel
from clarec.models.params import param, text_list
from clarec.models.registry import register
from clarec.text.fast import RUNTIMES

SIMILARITIES = ("cosine", "dot")


def recency_weights(train: Dataset, half_life: float | None) -> sp.csr_matrix:
    """User × item profile weights: interaction weight × ``0.5 ** (age / half_life)``, summed per pair.

    ``age`` counts interactions: the user's latest has age 0, the one before it 1, ... (ties in time
    keep file order). ``half_life=None`` gives every interaction its plain weight.
    """
    df = train.interactions.sort_values(["user", "timestamp"], kind="stable")
    users = df["user"].to_numpy().astype(np.int64)
    w = df["weight"].to_numpy(dtype=np.float64)
    if half_life is not None and len(users):
        ends = np.searchsorted(users, np.arange(train.n_users), side="right")
        age = ends[users] - 1 - np.arange(len(users))
        w = w * np.power(0.5, age / half_life)
    m = sp.csr_matrix((w, (users, df["item"].to_numpy())), shape=(train.n_users, train.n_items))
    m.sum_duplicates()
    return m


@register("lm-content")
class LMContentRecommender(EmbeddingModel, Recommender):
    """Content-based recommender over frozen, cached language-model item vectors.

    Args:
        fields: item-table columns rendered into the item text, in order; ``None`` uses those of
            ``title, genres, categories, brand, price, tags, description`` the table has (a column
            copying an earlier one is skipped).
        encoder: text model: a folder (e.g. an encoder adapted by contrastive pre-training and saved
            with ``TextEncoder.save``), a Hugging Face id, or ``None`` for the bundled all-MiniLM-L6-v2.
        cache_dir: embedding cache folder; ``None`` = ``$CLAREC_CACHE/embeddings`` or
            ``~/.cache/clarec/embeddings``; ``"none"`` disables the cache.
        half_life: recency decay of the profile, in interactions: the user's ``half_life``-th most
            recent interaction counts half as much as the latest. ``None``: plain mean.
        similarity: ``"cosine"`` (profile and items unit length) or ``"dot"`` (raw vectors).
        center: subtract the training catalogue's mean LM vector from every item (and text query)
            vector first. Sentence vectors share a large common direction, which otherwise dominates
            a profile's mean and makes every user's list alike.
        batch_size: texts per encoder forward pass.
        max_length: tokens per item text (longer texts are truncated).
        device: device of the encoder (``None`` picks CUDA when available).
        progress: show the encoding progress bar.
        encoder_runtime: ``"torch"``, ``"torch-bf16"``; ``"onnx"`` or ``"onnx-int8"`` (CPU, :mod:`clarec.text.fast`).

    A user without training history gets the unweighted mean of the vectors of the items that have
    training interactions (a "typical item" profile, not biased towards popular items).
    """

    supports_histories = True
    supports_new_items = True
    new_items_from_text = True
    supports_texts = True

    fields = param(None, text_list)
    encoder = param(None, str)
    cache_dir = param(None, str)
    half_life = param(None, float, gt=0)
    similarity = param("cosine", choices=SIMILARITIES)
    center = param(False)
    batch_size = param(64, ge=1)
    max_length = param(128, ge=2)
    device = param("cpu", nullable=True)
    progress = param(None, bool)
    encoder_runtime = param("torch", choices=RUNTIMES)

    # ------------------------------------------------------------------ fitting
    def encode_items(self, items, fields: Sequence[str] | None = None) -> np.ndarray:
        """LM vectors ``(len(items), dim)`` of an item table's texts (uses the disk cache)."""
        texts = item_texts(items, self.fields if fields is None else fields, "lm-content")
        return np.asarray(self._get_encoder().encode(texts), dtype=np.float32)

    def _get_encoder(self):
        enc = getattr(self, "_text_encoder", None)
        if enc is None:
            enc = build_encoder(
                self.encoder,
                self.cache_dir,
                self.batch_size,
                self.max_length,
                self.device,
                self.progress,
                self.encoder_runtime,
            )
            self._text_encoder = enc  # kept: a server adding items one at a time loads the model once
        return enc

    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        self.text_fields_ = choose_fields(train.items, self.fields, "lm-content")
        vectors = self.encode_items(train.items, self.text_fields_)
        self._text_encoder = None  # not kept after training; add_items loads it on first use
        self.center_ = vectors.mean(axis=0) if self.center else np.zeros(vectors.shape[1], np.float32)
        self.item_vecs = self._item_space(vectors)
        weights = recency_weights(train, self.half_life)
        totals = np.asarray(weights.sum(axis=1)).ravel()
        profiles = (
            np.asarray(weights @ self.item_vecs.astype(np.float64)) / np.maximum(totals, 1e-12)[:, None]
        )
        warm = np.flatnonzero(np.diff(weights.tocsc().indptr) > 0)
        fallback = self.item_vecs[warm].mean(axis=0) if len(warm) else self.item_vecs.mean(axis=0)
        profiles[totals <= 0] = fallback
        self.fallback_profile = np.asarray(fallback, dtype=np.float32)
        profiles = profiles.astype(np.float32)
        self.user_vecs = unit_rows(profiles) if self.similarity == "cosine" else profiles

    def _item_space(self, vectors: np.ndarray) -> np.ndarray:
        """LM vectors as items are scored: centred on the training catalogue's mean (``center``),
        then unit length for the cosine."""
        vectors = (vectors - self.center_).astype(np.float32)
        return unit_rows(vectors) if self.similarity == "cosine" else vectors

    # ------------------------------------------------------------------ inference
    def _history_vectors(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Profiles of ad-hoc users, recomputed from the history exactly as in training (recency
        weights by position, oldest first, latest = age 0), so a training user's own history gives
        :meth:`score` (with unit interaction weights); an empty history gets the "typical item"
        profile."""
        hists = self._check_histories(histories)
        out = np.empty((len(hists), self.item_vecs.shape[1]), dtype=np.float64)
        for r, h in enumerate(hists):
            if not len(h):
                out[r] = self.fallback_profile
                continue
            w = np.ones(len(h), dtype=np.float64)
            if self.half_life is not None:
                w = np.power(0.5, (len(h) - 1 - np.arange(len(h))) / self.half_life)
            out[r] = (w @ self.item_vecs[h].astype(np.float64)) / w.sum()
        out = out.astype(np.float32)
        return unit_rows(out) if self.similarity == "cosine" else out

    def score_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Cosine (or dot product) of each text's LM vector with every item (the text is encoded as
        given, by the same encoder as the items)."""
        self._check_fitted()
        texts = [str(t) for t in texts]
        vectors = np.asarray(self._get_encoder().encode(texts), dtype=np.float32)
        return self._scores(self._item_space(vectors.reshape(len(texts), self.item_vecs.shape[1])))

    def add_items(self, items: pd.DataFrame) -> np.ndarray:
        """Encode new items' text (the training text fields; missing columns count as empty) and
        append their vectors; they are scored at once. Returns their new indices."""
        self._check_fitted()
        fields = getattr(self, "text_fields_", None) or self.fields
        if fields is None:
            fields = choose_fields(items, None, "lm-content")
        vectors = self.encode_items(text_columns(items, fields, "lm-content", new=True), fields)
        vectors = self._item_space(vectors.reshape(len(items), self.item_vecs.shape[1]))
        n, m = self.n_items, len(items)
        self.item_vecs = np.vstack([self.item_vecs, vectors.astype(np.float32)])
        self._grow_items(m)
        return np.arange(n, n + m, dtype=np.int64)

    def _get_state(self) -> dict[str, np.ndarray]:
        return {
            **self._vector_state(),
            "fallback_profile": self.fallback_profile,
            "center": self.center_,
            "text_fields": np.asarray(getattr(self, "text_fields_", None) or [], dtype=str),
        }

    def _set_state(self, state: dict) -> None:
        # saved before 2026-12-03: the vectors were named user_profiles / item_matrix
        self._set_vector_state(state, "user_profiles", "item_matrix")
        # Saved by an older clarec: the mean item vector stands in for the "typical item" profile.
        self.fallback_profile = np.asarray(
            state.get("fallback_profile", self.item_vecs.mean(axis=0)), dtype=np.float32
        )
        self.center_ = np.asarray(state.get("center", np.zeros(self.item_vecs.shape[1])), dtype=np.float32)
        fields = [str(f) for f in state.get("text_fields", [])]
        self.text_fields_ = fields or None
