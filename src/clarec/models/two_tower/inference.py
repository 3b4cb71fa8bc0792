"""How a trained two-tower model computes: item- and user-tower vectors from its towers and the
cold-item calibration of their scores (the scores themselves: :class:`~clarec.models.embedding.EmbeddingModel`)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from clarec.models._cold import match_scores, validated_shift
from clarec.models._lm import recent_positions
from clarec.models.two_tower.features import token_bags
from clarec.models.two_tower.module import TwoTowerModule
from clarec.train.loop import to_device
from clarec.train.validation import RankingValidator


class TwoTowerInference:
    """Vectors and cold calibration of :class:`~clarec.models.two_tower.TwoTowerRecommender` (a
    mixin: it reads that class's settings — ``similarity``, ``max_history``, ``cold_calibration``,
    ``seed`` — and fitted attributes: ``_towers``, ``lm_item``, ``lm_user``, ``warm_items``,
    ``item_tokens``, ``_seq``)."""

    # ------------------------------------------------------------------ inference helpers
    def _bags(self, items: np.ndarray, drop: float = 0.0):
        """``items``' words as EmbeddingBag input (:func:`~clarec.models.two_tower.features.token_bags`
        of ``item_tokens``); ``drop`` drops a share of them (training)."""
        return token_bags(self.item_tokens, items, drop)

    def _infer(self, towers: TwoTowerModule, lm_of) -> tuple[np.ndarray, torch.Tensor]:
        """Scored (see :meth:`_finish`) and raw item-tower vectors of every item (cold items: text path
        only); the raw ones on the towers' device."""
        device = _device(towers)
        chunks = []
        for s in range(0, self.n_items, 4096):
            items = np.arange(s, min(s + 4096, self.n_items))
            ids = torch.from_numpy(items).to(device)
            warm = torch.from_numpy(self.warm_items[items]).to(device)
            chunks.append(towers.items(lm_of(items, False), ids, warm, to_device(self._bags(items), device)))
        raw = torch.cat(chunks) if chunks else torch.zeros((0, self.embedding_dim), device=device)
        return self._finish(raw).cpu().numpy(), raw

    def _user_vectors(
        self, towers: TwoTowerModule, raw_items: torch.Tensor, users: np.ndarray, lm_user
    ) -> np.ndarray:
        ex_item, starts, ends = self._seq
        users = np.asarray(users, dtype=np.int64)
        user_lm = None
        if lm_user is not None:
            user_lm = torch.as_tensor(lm_user, device=_device(towers))[torch.from_numpy(users)]
        return self._pool(towers, raw_items, ex_item, starts[users], ends[users], user_lm)

    def _pool(
        self,
        towers: TwoTowerModule,
        raw_items: torch.Tensor,
        seq_items: np.ndarray,
        starts: np.ndarray,
        ends: np.ndarray,
        user_lm: torch.Tensor | None,
    ) -> np.ndarray:
        """User-tower vectors of the histories ``seq_items[starts[r]:ends[r]]`` (oldest first)."""
        pos, ok = recent_positions(starts, ends, self.max_history)
        device = _device(towers)
        hist = raw_items[
            torch.from_numpy(seq_items[pos] if len(seq_items) else np.zeros_like(pos)).to(device)
        ]
        return self._finish(towers.users(hist, torch.from_numpy(ok).to(device), user_lm)).cpu().numpy()

    def _finish(self, vectors: torch.Tensor) -> torch.Tensor:
        """Tower outputs as scored: unit length for cosine similarity, as they are for dot."""
        return F.normalize(vectors, dim=-1) if self.similarity == "cosine" else vectors

    def _set_vectors(self) -> None:
        towers = self._towers
        towers.eval()
        lm = torch.from_numpy(self.lm_item)
        with torch.no_grad():
            self.item_vecs, raw = self._infer(towers, lambda items, _train=False: lm[items])
            self.user_vecs = self._user_vectors(towers, raw, np.arange(self.n_users), self.lm_user)
        self._raw_items = raw
        self.item_vecs = self.item_vecs.astype(np.float32)
        self.user_vecs = self.user_vecs.astype(np.float32)
        self.cold_affine = (1.0, 0.0)
        self.cold_spread_ = 1.0
        if self.cold_calibration != "none":
            a, b, self.cold_spread_ = self._match_cold_scores(lm)
            self.cold_affine = (a, b)

    def _validate_cold_shift(self, validator: RankingValidator) -> None:
        """Shift the matched cold scores by the validation-best amount (``cold_calibration="validate"``)."""
        shift, self.cold_shift_curve_ = validated_shift(
            "two-tower",
            validator,
            lambda users: self._scores(self.user_vecs[users]),
            ~self.warm_items,
            self.cold_spread_,
        )
        a, b = self.cold_affine
        self.cold_affine = (a, b + shift)
        self.cold_shift_ = shift / self.cold_spread_

    def _match_cold_scores(self, lm: torch.Tensor, sample: int = 2000) -> tuple[float, float, float]:
        """``(a, b, spread)`` of :func:`clarec.models._cold.match_scores` for the items without
        interactions. Without such items in the catalogue, the trained items' text-only vectors (what
        they would be if they were new) stand in for them."""
        warm = np.flatnonzero(self.warm_items)
        cold = np.flatnonzero(~self.warm_items)
        if len(cold):
            ref = self.item_vecs[cold]
        else:
            with torch.no_grad():
                raw = self._towers.items(lm[warm], torch.from_numpy(warm), None, self._bags(warm))
            ref = self._finish(raw).numpy()
        return match_scores(self.user_vecs, self.item_vecs[warm], ref, sample, self.seed)

    # ------------------------------------------------------------------ scoring (EmbeddingModel's hook)
    def _cold_items(self) -> np.ndarray:
        """Items without training interactions: their scores go through ``cold_affine``."""
        return ~self.warm_items


def _device(towers: TwoTowerModule) -> torch.device:
    """Where the towers' weights are (the training device while training, the CPU after)."""
    return next(towers.parameters()).device
