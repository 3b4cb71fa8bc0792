"""ease-lm: EASE whose item-item weights are pulled towards the language model's item similarity
(in the spirit of L3AE, a linear autoencoder with a language prior).

With the interaction matrix ``X``, ``G = XᵀX`` and ``S`` the language model's item-item similarity
(cosine of the item text vectors, each row cut to its ``neighbors`` most similar items, negatives
and the diagonal zeroed), the weights solve

    min_B ‖X − XB‖² + λ‖B‖² + μ‖B − S‖²   subject to diag(B) = 0,

in closed form: with ``P = (G + (λ + μ)I)⁻¹``, ``B̃ = P(G + μS) = I − (λ + μ)P + μPS`` and
``B = B̃ − P·diag(diag(B̃) / diag(P))``. ``μ = 0`` is EASE. An item without training interactions
is scored from its text alone (its column of ``B`` is ``μ/(λ + μ)`` times its column of ``S``), so
items of the catalogue that nobody has interacted with yet are recommendable.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from clarec.data.dataset import Dataset
from clarec.models._lm import ItemTextParams, model_text_vectors, unit_rows
from clarec.models.ease import EASE, check_dense_items
from clarec.models.params import param
from clarec.models.registry import register


def neighbour_similarity(vectors: np.ndarray, neighbors: int, batch: int = 2048) -> sp.csr_matrix:
    """Cosine similarity of unit ``vectors`` kept for each row's ``neighbors`` most similar other
    items (positive values only), as a sparse matrix."""
    n = len(vectors)
    k = min(neighbors, n - 1)
    rows, cols, vals = [], [], []
    v = vectors.astype(np.float32)
    for start in range(0, n, batch):
        sims = v[start : start + batch] @ v.T
        sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -np.inf  # not itself
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k > 0 else np.empty((len(sims), 0), int)
        values = np.take_along_axis(sims, top, axis=1)
        keep = values > 0
        rows.append(np.repeat(np.arange(start, start + len(sims)), k)[keep.ravel()])
        cols.append(top[keep])
        vals.append(values[keep])
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n), dtype=np.float64
    )


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
        vectors = unit_rows(vectors - vectors.mean(axis=0) if self.center else vectors)
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
