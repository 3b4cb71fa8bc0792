"""Score calibration of items scored from their text alone (items without training interactions, items
added later), shared by ``two-tower`` (``cold_calibration``) and the aligned embedding models
(``align.cold_calibration``).

A model learns from interactions what its trained items are worth, so the vectors it derives from text
for new items sit on another scale: two-tower's trained items carry an ID vector and words seen as
targets, a ridge text → CF map shrinks towards the mean. Two steps put them back in the lists:

- **match**: an affine map ``a·s + b`` of the new items' scores so that, over a sample of training
  users, their mean and spread equal those of the trained items' scores (no reordering in either group);
- **validate**: then the shift that maximises validation NDCG@k over the whole catalogue, tried in
  steps of a quarter of the trained items' score spread (:data:`COLD_SHIFTS`); how far new items reach
  into lists is learned from held-out interactions. It needs validation interactions on such items.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from clarec.train.validation import RankingValidator, best_offset

log = logging.getLogger("clarec.cold")

CALIBRATIONS = ("none", "match", "validate")
#: Shifts tried by ``validate``, in spreads of the trained items' scores (the top of a list sits about 3
#: spreads above the mean).
COLD_SHIFTS = np.arange(-3.0, 6.01, 0.25)


def match_scores(
    user_vecs: np.ndarray,
    warm_vecs: np.ndarray,
    cold_vecs: np.ndarray,
    sample: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(a, b, spread)``: ``a·s + b`` gives the scores (dot products) of ``cold_vecs`` the mean and
    spread of those of ``warm_vecs`` over up to ``sample`` users and items of each group; ``spread`` is
    the standard deviation of the warm scores."""
    if len(warm_vecs) == 0 or len(user_vecs) == 0 or len(cold_vecs) == 0:
        return 1.0, 0.0, 1.0
    rng = np.random.default_rng(seed)

    def pick(x: np.ndarray) -> np.ndarray:
        return x if len(x) <= sample else x[rng.choice(len(x), sample, replace=False)]

    users = pick(user_vecs).astype(np.float64)
    s_warm = users @ pick(warm_vecs).T.astype(np.float64)
    s_cold = users @ pick(cold_vecs).T.astype(np.float64)
    spread = float(s_warm.std()) or 1.0
    if s_cold.std() < 1e-12:
        return 1.0, float(s_warm.mean() - s_cold.mean()), spread
    a = float(s_warm.std() / s_cold.std())
    return a, float(s_warm.mean() - a * s_cold.mean()), spread


def validated_shift(
    name: str,
    validator: RankingValidator,
    score_fn: Callable[[np.ndarray], np.ndarray],
    cold: np.ndarray,
    spread: float,
) -> tuple[float, dict[float, float] | None]:
    """``(shift, curve)``: the shift of the ``cold`` items' scores (``score_fn`` already matched) that
    maximises the validator's NDCG, and NDCG per shift in spreads; ``(0, None)`` without validation
    interactions on ``cold`` items."""
    cold = np.asarray(cold, dtype=bool)
    if not cold.any() or not validator.truth[:, cold].nnz:
        return 0.0, None
    shift, curve = best_offset(validator, score_fn, cold, COLD_SHIFTS * spread)
    table = dict(zip(COLD_SHIFTS.round(2).tolist(), curve.round(5).tolist(), strict=True))
    log.info(
        "%s: cold scores shifted by %+.2f spreads; validation ndcg@%d %.4f (matched: %.4f)",
        name,
        shift / spread,
        validator.k,
        curve.max(),
        table[0.0],
    )
    return shift, table


def calibrates(cold: np.ndarray | None, affine: tuple[float, float]) -> bool:
    """Whether ``affine`` changes the scores of any item of the mask ``cold``."""
    return cold is not None and bool(np.any(cold)) and tuple(affine) != (1.0, 0.0)


def apply_affine(scores: np.ndarray, cold: np.ndarray | None, affine: tuple[float, float]) -> np.ndarray:
    """``scores`` with the columns of ``cold`` mapped by ``a·s + b`` (in place; returned)."""
    if calibrates(cold, affine) and len(scores):
        a, b = affine
        scores[:, cold] = a * scores[:, cold] + b
    return scores
