"""Models whose fitted state is one vector per user and per item: scoring, fold-in, the server's
inner-product path, appended items and persistence, written once.

:class:`EmbeddingModel` serves every such model — ``bpr``, the graph models, ``two-tower`` and
``lm-content``: each sets ``user_vecs`` and ``item_vecs`` (float32, one space) when it is fitted and
says, through two small hooks, how it differs:

- :meth:`EmbeddingModel._history_vectors`: the query vector of an ad-hoc history (the default is the
  fold-in of matrix factorisation, the mean of the history's item vectors; ``two-tower`` runs its
  user tower, ``lm-content`` its recency-weighted profile);
- :meth:`EmbeddingModel._cold_items`: the items whose scores ``cold_affine`` maps (items scored from
  their text, see :mod:`clarec.models._cold`); ``None`` when there are none.

A score is ``float32(float64(q) @ item_vecs.T)`` — float64 first, since BLAS float32 sums depend on the
batch shape and a user's scores must not change with the users scored alongside — then the cold
items' affine map, then items nothing was learned about (``unknown_items_``) just below each row's
lowest other score. While either adjustment changes a score, :meth:`query_items` is ``None`` and the
server scores every item instead of taking the inner-product path.

:class:`CFEmbeddingRecommender` adds what the models trained on interactions alone share (``bpr`` and
the graph models): their common hyper-parameters, the language-model alignment and items appended
through it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from clarec.data.dataset import Dataset
from clarec.models._align import AlignedMixin, AlignSettings
from clarec.models._cold import apply_affine, calibrates
from clarec.models.params import param
from clarec.models.torch_base import TorchRecommender


class EmbeddingModel:
    """Mixin of a :class:`~clarec.models.base.Recommender` scored by inner products of ``user_vecs``
    and ``item_vecs`` (put it before the base class)."""

    user_vecs: np.ndarray
    item_vecs: np.ndarray
    #: ``(a, b)``: scores of :meth:`_cold_items` become ``a·s + b``
    cold_affine: tuple[float, float] = (1.0, 0.0)
    #: items nothing was learned about, ranked last (``None``: none)
    unknown_items_: np.ndarray | None = None

    # ------------------------------------------------------------------ hooks
    def _history_vectors(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Query vectors (float32) of ad-hoc users: the mean of each history's item vectors (zero for
        an empty history)."""
        hists = self._check_histories(histories)
        v = np.asarray(self.item_vecs, dtype=np.float64)
        users = np.zeros((len(hists), v.shape[1]))
        for r, h in enumerate(hists):
            if len(h):
                users[r] = v[h].mean(axis=0)
        return users.astype(np.float32)

    def _cold_items(self) -> np.ndarray | None:
        """Mask of the items whose scores :attr:`cold_affine` maps."""
        return None

    # ------------------------------------------------------------------ scoring
    def _scores(self, queries: np.ndarray) -> np.ndarray:
        """Scores (float32) of every item for query vectors ``(n, d)``."""
        scores = np.asarray(queries).astype(np.float64) @ self._inner_product_items(self.item_vecs)[1]
        return self._unknown_last(self._apply_cold(scores).astype(np.float32))

    def _apply_cold(self, scores: np.ndarray) -> np.ndarray:
        """``scores`` with the cold items' affine map applied (in place; returned)."""
        return apply_affine(scores, self._cold_items(), self.cold_affine)

    def _unknown_last(self, scores: np.ndarray) -> np.ndarray:
        """Each row's unknown items just below its lowest other score (in place; returned)."""
        unknown = self.unknown_items_
        if unknown is not None and unknown.any() and not unknown.all() and len(scores):
            scores[:, unknown] = scores[:, ~unknown].min(axis=1, keepdims=True) - 1.0
        return scores

    def _adjusted(self) -> bool:
        """Whether some score is not the plain inner product."""
        unknown = self.unknown_items_
        return calibrates(self._cold_items(), self.cold_affine) or bool(unknown is not None and unknown.any())

    def score(self, users) -> np.ndarray:
        users = self._check_users(users)  # first: a model not fitted has no vectors
        return self._scores(self.user_vecs[users])

    def score_histories(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        return self._scores(self._history_vectors(histories))

    # ------------------------------------------------------------------ the server's inner-product path
    def query_items(self) -> tuple[np.ndarray, np.ndarray, float] | None:
        """Item vectors for the server's inner-product ranking; ``None`` while a score is adjusted
        (cold items mapped, unknown items moved last)."""
        self._check_fitted()
        return None if self._adjusted() else self._inner_product_items(self.item_vecs)

    def user_queries(self, users) -> np.ndarray | None:
        if self.query_items() is None:
            return None
        return self.user_vecs[self._check_users(users)]

    def history_queries(self, histories: Sequence[np.ndarray]) -> np.ndarray | None:
        return None if self.query_items() is None else self._history_vectors(histories)

    def item_vectors(self) -> np.ndarray:
        """The item vectors as scored."""
        self._check_fitted()
        return self.item_vecs

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        """The vectors (a model with more arrays adds them to :meth:`_vector_state`'s)."""
        return self._vector_state()

    def _set_state(self, state: dict) -> None:
        self._set_vector_state(state)

    def _vector_state(self) -> dict[str, np.ndarray]:
        state = {"user_vecs": self.user_vecs, "item_vecs": self.item_vecs}
        if self.unknown_items_ is not None:
            state["unknown_items"] = self.unknown_items_
        return state

    def _set_vector_state(
        self, state: dict, user_key: str = "user_vecs", item_key: str = "item_vecs"
    ) -> None:
        """Read :meth:`_vector_state`; models saved by an older clarec under other names pass them."""
        user_key, item_key = ("user_vecs", "item_vecs") if "user_vecs" in state else (user_key, item_key)
        self.user_vecs = np.asarray(state[user_key], dtype=np.float32)
        self.item_vecs = np.asarray(state[item_key], dtype=np.float32)
        self.unknown_items_ = (
            np.asarray(state["unknown_items"], dtype=bool) if "unknown_items" in state else None
        )


class CFEmbeddingRecommender(AlignedMixin, EmbeddingModel, TorchRecommender):
    """Base of the models that learn user and item vectors from interactions (``bpr``, the graph
    models): their shared hyper-parameters, the optional language-model alignment (``align``, see
    :mod:`clarec.models._align`) and items appended through its text → CF map.

    Hyper-parameters (each model declares its own ``init_std`` and any others):
        embedding_dim: size of user and item vectors.
        lr: Adam learning rate.
        reg: L2 penalty on the batch's user, positive and negative embeddings (per example).
        n_negatives: negatives per positive.
        align: language-model alignment, e.g. ``{weight: 0.1, temperature: 0.2}``; also gives items
            without interactions a vector from their text.

    Training settings (``epochs`` 200 by default, ``batch_size`` 2048 (user, positive) pairs per step):
    see :class:`~clarec.models.torch_base.TorchRecommender`.
    """

    supports_histories = True
    history_mode = "fold-in"
    supports_new_items = True

    embedding_dim = param(64, ge=1)
    lr = param(1e-3, gt=0)
    reg = param(1e-4, ge=0)
    n_negatives = param(1, ge=1)
    align = param(None, AlignSettings.parse)
    epochs = TorchRecommender.epochs.with_default(200)
    batch_size = TorchRecommender.batch_size.with_default(2048)

    def _check_params(self) -> None:
        self._init_align()

    def _cold_items(self) -> np.ndarray | None:
        return getattr(self, "text_items_", None)

    def _set_vectors(self, user_vecs: np.ndarray, item_vecs: np.ndarray, valid: Dataset | None) -> None:
        """Keep the trained vectors: items without interactions get theirs from text (with
        ``align``), whose scores are then calibrated (``align.cold_calibration``)."""
        self.user_vecs = np.asarray(user_vecs, dtype=np.float32).copy()
        self.item_vecs = self._finish_align(np.asarray(item_vecs, dtype=np.float32).copy())
        self._calibrate_text_items(self.user_vecs, self.item_vecs, valid)

    def add_items(self, items: pd.DataFrame) -> np.ndarray:
        """New items get the text → CF map of their text with ``align``; otherwise zero vectors (no
        interactions, no text), ranked after every trained item until the model is refitted."""
        self._check_fitted()
        n, m = self.n_items, len(items)
        mapped = getattr(self, "text_map_", None) is not None
        self.item_vecs = np.vstack([self.item_vecs, self._new_item_vectors(items, self.item_vecs.shape[1])])
        before = np.zeros(n, dtype=bool) if self.unknown_items_ is None else self.unknown_items_
        self.unknown_items_ = np.concatenate([before, np.full(m, not mapped)])
        self._grow_items(m)
        return np.arange(n, n + m, dtype=np.int64)

    def _get_state(self) -> dict[str, np.ndarray]:
        return {**self._vector_state(), **self._align_state()}

    def _set_state(self, state: dict) -> None:
        self._set_vector_state(state)
        self._set_align_state(state)
