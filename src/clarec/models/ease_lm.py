"""ease-lm: EASE whose item-item weights are pulled towards the language model's item similarity
(in the spirit of L3AE, a linear autoencoder with a language prior).

With the interaction matrix ``X``, ``G = XᵀX`` and ``S`` the language model's item-item similarity
(cosine of the item text vectors, each row cut to its ``neighbors`` most similar items, negatives
and the diagonal zeroed), the weights solve

    min_B ‖X − XB‖² + λ‖B‖² + μ‖B − S‖²   subject to diag(B) = 0,

in closed form: with ``P = (G + (λ + μ)I)⁻¹``, ``B̃ = P(G + μS) = I − (λ + μ)P + μPS`` and
``B = B̃ − P·diag(diag(B̃) / diag(P))``. ``μ = 0`` is EASE. An item without training interactions
is scored from its text alone (its column of ``B`` is ``μ·P`` times its column of ``S``; as a history
item its row is ``μ/(λ + μ)`` times its row of ``S``), so items of the catalogue that nobody has
interacted with yet are recommendable. Items added after training (``add_items``) get the rows and
columns of ``B`` a refit would give them, without one (their columns by conjugate gradients on
``G + (λ + μ)I``), except that the trained items' weights stay as they are: a refit would also let a
new item push the least similar neighbour out of each trained item's list of ``S`` it enters.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse as sp

from clarec.data.dataset import Dataset
from clarec.models._lm import ItemTextParams, model_text_vectors, unit_rows
from clarec.models.ease import EASE, check_dense_items, grow_item_item
from clarec.models.params import param
from clarec.models.registry import register


def neighbour_rows(
    queries: np.ndarray, vectors: np.ndarray, neighbors: int, offset: int = 0, batch: int = 2048
):
    """Cosine similarity of unit ``queries`` (rows ``offset``, ``offset + 1``, … of ``vectors``) with
    every row of ``vectors``, kept for each query's ``neighbors`` most similar other items (positive
    values only), as a sparse ``(len(queries), len(vectors))`` matrix."""
    n = len(vectors)
    k = min(neighbors, n - 1)
    rows, cols, vals = [], [], []
    v = vectors.astype(np.float32)
    for start in range(0, len(queries), batch):
        sims = queries[start : start + batch].astype(np.float32) @ v.T
        own = np.arange(offset + start, offset + start + len(sims))
        sims[np.arange(len(sims)), own] = -np.inf  # not itself
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k > 0 else np.empty((len(sims), 0), int)
        values = np.take_along_axis(sims, top, axis=1)
        keep = values > 0
        rows.append(np.repeat(np.arange(start, start + len(sims)), k)[keep.ravel()])
        cols.append(top[keep])
        vals.append(values[keep])
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(len(queries), n),
        dtype=np.float64,
    )


def neighbour_similarity(vectors: np.ndarray, neighbors: int) -> sp.csr_matrix:
    """Cosine similarity of unit ``vectors`` kept for each row's ``neighbors`` most similar other
    items (positive values only), as a sparse matrix."""
    return neighbour_rows(vectors, vectors, neighbors)


def neighbour_floor(similarity: sp.csr_matrix, neighbors: int) -> np.ndarray:
    """Per row of a :func:`neighbour_rows` matrix, the similarity another item must beat to enter its
    neighbours: the least kept one when the row is full, else 0 (every positive one was kept)."""
    s = similarity.tocsr()
    counts = np.diff(s.indptr)
    floor = np.zeros(s.shape[0], dtype=np.float32)
    full = counts >= neighbors
    mins = np.minimum.reduceat(s.data, s.indptr[:-1][counts > 0]) if s.nnz else np.empty(0)
    floor[np.flatnonzero(counts > 0)] = mins
    floor[~full] = 0.0
    return floor


def solve_gram(x: sp.csr_matrix, shift: float, rhs: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
    """``(XᵀX + shift·I)⁻¹ rhs`` for each column of ``rhs`` by conjugate gradients (the matrix is
    symmetric positive definite for ``shift > 0``; ``X`` is only multiplied, never densified)."""
    xt = x.T.tocsr()
    out = np.zeros_like(rhs)
    r = rhs.copy()
    p = r.copy()
    rs = np.einsum("ij,ij->j", r, r)
    stop = rtol * rtol * np.maximum(rs, np.finfo(np.float64).tiny)
    for _ in range(max(1, rhs.shape[0])):
        if (rs <= stop).all():
            break
        ap = xt @ (x @ p) + shift * p
        pap = np.einsum("ij,ij->j", p, ap)
        alpha = np.divide(rs, pap, out=np.zeros_like(rs), where=pap > 0)
        out += alpha * p
        r -= alpha * ap
        new = np.einsum("ij,ij->j", r, r)
        p = r + np.divide(new, rs, out=np.zeros_like(rs), where=rs > 0) * p
        rs = new
    return out


@register("ease-lm")
class EASELM(ItemTextParams, EASE):
    """EASE with a language-model prior on its item-item weights; see the module docstring.

    Args (besides EASE's ``reg`` = ``λ`` and ``max_items``):
        lm_weight: ``μ``, how strongly the weights are pulled towards the text similarity (``S``'s
            cosines are far larger than EASE's weights: a few units suit, a hundred drowns the data).
        neighbors: most similar items kept in each row of ``S``.
        center: the cosine of the text vectors less the catalogue's mean vector (the direction every
            sentence vector shares otherwise makes most items look alike).

    The defaults are where every validation search of the leaderboard landed (five data sets,
    ``benchmarks/results/leaderboard.md``: ``center`` on, ``neighbors`` 200, ``lm_weight`` 1.4–14).
        fields, encoder, cache_dir, max_length: the item text and its model, as for ``lm-content``.
    """

    new_items_from_text = True

    lm_weight = param(5.0, ge=0)
    neighbors = param(200, ge=1)
    center = param(True)
    progress = param(None, bool)

    def _check_size(self) -> None:
        check_dense_items(self, "inversion", ", or use itemknn", matrices=3)

    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        self._check_size()
        self.text_fields_ = None  # chosen anew from this training table
        vectors = model_text_vectors(self, train.items)
        self.text_mean_ = vectors.mean(axis=0) if self.center else np.zeros(vectors.shape[1], np.float32)
        vectors = unit_rows(vectors - self.text_mean_)
        prior = neighbour_similarity(vectors, self.neighbors)
        n = self.n_items
        x = self.seen
        gram = (x.T @ x).toarray().astype(np.float64)
        gram[np.diag_indices(n)] += self.reg + self.lm_weight
        p = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
        # B̃ = I − (λ + μ)P + μ P S, and P S = (Sᵀ P)ᵀ since P is symmetric
        b = np.asarray((prior.T @ p).T) * self.lm_weight - (self.reg + self.lm_weight) * p
        b[np.diag_indices(n)] += 1.0
        b -= p * (np.diag(b) / np.diag(p))[None, :]
        np.fill_diagonal(b, 0.0)
        self.weights = b.astype(np.float32)
        # what add_items needs to give new items their rows and columns of S
        self.text_vectors_, self.text_floor_ = (
            vectors.astype(np.float32),
            neighbour_floor(prior, self.neighbors),
        )

    def add_items(self, items: pd.DataFrame) -> np.ndarray:
        """New items scored from their text at once (the training text fields; a column they lack counts
        as empty): their cosines with every item, cut as in training — a new item keeps its
        ``neighbors`` most similar items, and enters a trained item's neighbours where it beats that
        item's least similar kept one — make their rows and columns of ``B`` as a refit would (see the
        module docstring). A model saved by an older clarec, without the text vectors, gives them
        zero rows and columns as EASE does."""
        self._check_fitted()
        if getattr(self, "text_vectors_", None) is None or not len(items):
            return super().add_items(items)
        vectors = model_text_vectors(self, items, new=True)
        vectors = unit_rows(vectors - self.text_mean_).astype(np.float32)  # the mean is 0 without center
        n, m = self.n_items, len(items)
        both = np.vstack([self.text_vectors_, vectors])
        # rows of the new items: their neighbours among all items (the other new ones included); a
        # new item has no interactions, so its row of P is 1/(λ + μ) on the diagonal alone
        rows = neighbour_rows(vectors, both, self.neighbors, offset=n)
        # columns: S's column (a trained item takes a new one where it beats its least similar kept
        # neighbour) through μ·P, solved rather than inverted again
        cols = vectors @ self.text_vectors_.T
        cols[cols <= self.text_floor_[None, :]] = 0.0
        through_p = solve_gram(
            self.seen, self.reg + self.lm_weight, self.lm_weight * cols.T.astype(np.float64)
        )
        grow_item_item(self, m)
        self.weights[n:] = self.lm_weight / (self.reg + self.lm_weight) * rows.toarray()
        self.weights[:n, n:] = through_p
        self.text_vectors_ = both
        self.text_floor_ = np.concatenate([self.text_floor_, neighbour_floor(rows, self.neighbors)])
        return np.arange(n, n + m, dtype=np.int64)

    def _get_state(self) -> dict[str, np.ndarray]:
        state = super()._get_state()
        if getattr(self, "text_vectors_", None) is not None:
            state |= {
                "text_vectors": self.text_vectors_,
                "text_floor": self.text_floor_,
                "text_mean": self.text_mean_,
                "text_fields": np.asarray(self.text_fields_, dtype=str),
            }
        return state

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        super()._set_state(state)
        if "text_vectors" in state:  # saved before 2026-12-07: new items get EASE's zero rows
            self.text_vectors_ = state["text_vectors"].astype(np.float32)
            self.text_floor_ = state["text_floor"].astype(np.float32)
            self.text_mean_ = state["text_mean"].astype(np.float32)
            self.text_fields_ = [str(f) for f in state["text_fields"]]
