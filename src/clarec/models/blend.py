"""``blend``: several models' scores combined into one ranking, the weights chosen on validation.

Models of different kinds are often good at different cases — on Amazon Beauty's next-item task
``sasrec`` (order) is ahead on popular items and active users, ``ease-lm`` (a bag of items pulled
towards their text) on the long tail and the least active users (``benchmarks/results/beauty-seq.md``).
A blend fits each member on the same data, standardises each member's scores per user over the
catalogue (mean 0, standard deviation 1: members' scales differ by orders of magnitude) and ranks by
their weighted sum. Unless the weights are given, they are chosen on the validation data passed to
``fit`` — every point of a grid on the simplex, each member scored once per block of users — by
NDCG@``eval_k`` with training items excluded, as the torch models' early stopping is; the grid's
corners are the members alone, so a blend that does not help is not chosen. A member that is also a
model of the same run (same name and settings, ``fit_key``) is not fitted twice: the run hands the
blend that model's fit of the same seed (``fitted_members``).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clarec.data.dataset import Dataset
from clarec.errors import ClarecError, ConfigError
from clarec.models.base import Recommender, check_settings
from clarec.models.params import param
from clarec.models.registry import create, fit_key, get_model_class, inner_params, register
from clarec.train.validation import RankingValidator

log = logging.getLogger("clarec.models")


def _members(value: Any) -> list[dict]:
    """The ``members`` setting: a list of at least two ``{"name": ..., "params": {...}}``."""
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) < 2:
        raise ConfigError(f"members must list at least two models, got {value!r}")
    out = []
    for i, m in enumerate(value):
        if isinstance(m, str):
            m = {"name": m}
        if not isinstance(m, dict) or set(m) - {"name", "params"} or not isinstance(m.get("name"), str):
            raise ConfigError(f"members[{i}] must be {{name: MODEL, params: {{...}}}}, got {m!r}")
        if m["name"] == "blend":
            raise ConfigError(f"members[{i}]: a blend cannot be a member of a blend")
        params = m.get("params") or {}
        if not isinstance(params, dict):
            raise ConfigError(f"members[{i}].params must be a mapping, got {params!r}")
        get_model_class(m["name"])  # an unknown name fails here, with the list of models
        out.append({"name": m["name"], "params": dict(params)})
    return out


def _weights(value: Any) -> list[float]:
    w = [float(x) for x in value]
    if any(not np.isfinite(x) or x < 0 for x in w) or sum(w) <= 0:
        raise ConfigError(f"weights must be non-negative numbers with a positive sum, got {value!r}")
    return w


_weights.__name__ = "a list of numbers"


def standardize(scores: np.ndarray) -> np.ndarray:
    """Each row of ``scores`` to mean 0 and standard deviation 1 over its items (float64 statistics;
    a constant row becomes zeros). Row by row: a user's blended scores do not depend on who else is
    scored with them."""
    s = np.asarray(scores, dtype=np.float64)
    mean = s.mean(axis=1, keepdims=True)
    std = s.std(axis=1, keepdims=True)
    return ((s - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)


def simplex_grid(n: int, steps: int) -> np.ndarray:
    """Every weight vector of ``n`` non-negative multiples of ``1 / steps`` summing to 1, ``(G, n)``."""
    points = [c for c in itertools.product(range(steps + 1), repeat=n) if sum(c) == steps]
    return np.asarray(points, dtype=np.float64) / steps


@register("blend")
class Blend(Recommender):
    """See the module docstring.

    Hyper-parameters:
        members: the models blended, each ``{name: MODEL, params: {...}}`` (at least two; a bare name
            takes the model's defaults).
        weights: one weight per member (scaled to sum to 1); ``None``: chosen on validation over the
            grid (equal weights when ``fit`` is given no validation data).
        grid: steps per unit of that grid (10: weights in multiples of 0.1).
        eval_k: cut-off of the validation NDCG.
        eval_history: ``masked`` (training items left out of the validation ranking) or ``kept``.
        seed, run_dir, resume, eval_history, eval_k: handed to each member that takes them and does
            not set them itself (``run_dir`` as ``RUN_DIR/<index>-<name>``), as a run hands them to a
            model.

    A blend scores histories when every member does: ``history_mode`` is ``"fold-in"`` when a member's
    is, ``"constant"`` when every member's is, else ``"exact"`` — read from the member classes until
    the blend is fitted, then from the fitted members (a model's own mode may depend on its settings
    or its fit). It is ``weighted`` when a fitted member is: history weights reach the members that
    read them. It takes no new items or texts.
    """

    supports_histories = True
    history_mode = "exact"

    members = param([{"name": "ease"}, {"name": "itemknn"}], _members)
    weights = param(None, _weights, nullable=True)
    grid = param(10, ge=1, le=100)
    eval_k = param(20, ge=1)
    eval_history = param("masked", choices=("masked", "kept"))
    seed = param(None, int, nullable=True, ge=0)
    run_dir = param(None, str)
    resume = param(False)

    #: Members already fitted on the data ``fit`` is given, by index (not a hyper-parameter: a run
    #: sets it for a member that is also one of its models, :meth:`member_fit_keys`); ``fit`` takes
    #: them as they are, fits the others, and lets go of this mapping.
    fitted_members: dict[int, Recommender] | None = None

    def _check_params(self) -> None:
        if self.weights is not None and len(self.weights) != len(self.members):
            raise ConfigError(f"blend: {len(self.weights)} weights for {len(self.members)} members")
        classes = [get_model_class(m["name"]) for m in self.members]
        for i, (cls, m) in enumerate(zip(classes, self.members, strict=True)):
            try:  # a member's bad setting fails now, not once the data is read
                cls(**m["params"])
            except ConfigError as e:
                raise ConfigError(f"members[{i}]: {e}") from None
        self._set_flags(classes)

    def _set_flags(self, members: list) -> None:
        """The instance flags the server and the evaluator read, from the members (classes or
        fitted models)."""
        self.supports_histories = all(m.supports_histories for m in members)
        modes = {m.history_mode for m in members}
        self.history_mode = (
            "fold-in" if "fold-in" in modes else "constant" if modes == {"constant"} else "exact"
        )
        self.weighted = any(getattr(m, "weighted", False) is True for m in members)

    def _member_params(self, i: int) -> dict:
        m = self.members[i]
        run_dir = None if self.run_dir is None else str(Path(self.run_dir) / f"{i}-{m['name']}")
        return inner_params(
            m["name"],
            m["params"],
            seed=self.seed,
            run_dir=run_dir,
            resume=self.resume,
            eval_history=self.eval_history,
            eval_k=self.eval_k,
        )

    def check_split(self, split) -> None:
        for i, m in enumerate(self.members):
            check_settings(f"blend member {i} ({m['name']})", dict(m.get("params") or {}), split)

    def trains_torch(self) -> bool:
        return any(create(m["name"], m["params"]).trains_torch() for m in self.members)

    def member_fit_keys(self) -> list[str]:
        """Each member's :func:`~clarec.models.registry.fit_key` as this blend would fit it."""
        return [
            fit_key(m["name"], create(m["name"], self._member_params(i)).get_params())
            for i, m in enumerate(self.members)
        ]

    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        given, self.fitted_members = self.fitted_members or {}, None
        self.members_ = [
            given[i] if i in given else create(m["name"], self._member_params(i)).fit(train, valid)
            for i, m in enumerate(self.members)
        ]
        self._set_flags(self.members_)
        if self.weighted:  # the history a server hands back with its weights (as the members read it)
            self.seen = train.to_csr(weighted=True)
        self.validation_, self.chosen_ = {}, {}
        if self.weights is not None:
            self.weights_ = np.asarray(self.weights, dtype=np.float64) / sum(self.weights)
        elif valid is None or valid.n_interactions == 0:
            self.weights_ = np.full(len(self.members_), 1.0 / len(self.members_))
        else:
            validator = RankingValidator(
                self.seen, valid.to_csr(), k=self.eval_k, exclude_seen=self.eval_history == "masked"
            )
            self.weights_ = self._choose(validator)
            names = [m["name"] for m in self.members]  # which weight is whose
            self.chosen_ = {"members": names, "weights": [round(float(w), 6) for w in self.weights_]}

    def _choose(self, validator: RankingValidator) -> np.ndarray:
        """The grid point with the best validation NDCG (ties: the most even weights); every point's
        NDCG is kept in ``validation_``."""
        grid = simplex_grid(len(self.members_), self.grid)
        totals = np.zeros(len(grid))
        for chunk in validator.batches():
            z = [standardize(m.score(chunk)) for m in self.members_]
            for g, w in enumerate(grid):
                totals[g] += validator.batch_total(chunk, _combine(w, z))
        curve = totals / max(1, len(validator.users))
        best = np.flatnonzero(curve >= curve.max() - 1e-12)
        even = np.abs(grid[best] - 1.0 / len(self.members_)).sum(axis=1)
        self.validation_ = {
            "metric": f"ndcg@{self.eval_k}",
            "weights": grid.tolist(),
            "values": curve.tolist(),
        }
        chosen = best[np.argmin(even)]
        alone = [float(curve[np.flatnonzero(grid[:, i] == 1)[0]]) for i in range(len(self.members_))]
        log.info(
            "blend: weights %s chosen on validation %s %.4f (each member alone: %s)",
            [round(float(w), 3) for w in grid[chosen]],
            self.validation_["metric"],
            curve[chosen],
            ", ".join(f"{m['name']} {v:.4f}" for m, v in zip(self.members, alone, strict=True)),
        )
        return grid[chosen]

    def score(self, users) -> np.ndarray:
        self._check_fitted()
        users = self._check_users(users)
        return _combine(self.weights_, [standardize(m.score(users)) for m in self.members_])

    def score_histories(self, histories, weights=None) -> np.ndarray:
        """Each member's scores of the histories, standardised and combined; ``weights`` (one per
        history item) reach the members that are ``weighted``."""
        self._check_fitted()
        if not self.supports_histories:
            return super().score_histories(histories)
        histories = self._check_histories(histories)
        return _combine(
            self.weights_,
            [
                standardize(
                    m.score_histories(histories, weights=weights)
                    if weights is not None and getattr(m, "weighted", False) is True
                    else m.score_histories(histories)
                )
                for m in self.members_
            ],
        )

    def _by_weight(self) -> list[Recommender]:
        return [self.members_[i] for i in np.argsort(-self.weights_, kind="stable")]

    def item_similarity(self, items: np.ndarray) -> np.ndarray:
        """The item similarity of the heaviest member that has one (for explanations)."""
        for m in self._by_weight():
            try:
                return m.item_similarity(items)
            except NotImplementedError:
                continue
        raise NotImplementedError("no member of this blend defines an item similarity")

    def item_pair_similarity(self, rows, cols) -> np.ndarray:
        for m in self._by_weight():
            try:
                return m.item_pair_similarity(rows, cols)
            except NotImplementedError:
                continue
        raise NotImplementedError("no member of this blend defines an item similarity")

    def _get_state(self) -> dict[str, np.ndarray]:
        state = {"weights": self.weights_}
        if self.validation_:
            state |= {
                "validation_weights": np.asarray(self.validation_["weights"]),
                "validation_values": np.asarray(self.validation_["values"]),
            }
        return state

    def _set_state(self, state: dict) -> None:
        self.weights_ = np.asarray(state["weights"], dtype=np.float64)
        self.validation_ = {}
        if "validation_values" in state:
            self.validation_ = {
                "metric": f"ndcg@{self.eval_k}",
                "weights": np.asarray(state["validation_weights"]).tolist(),
                "values": np.asarray(state["validation_values"]).tolist(),
            }

    def _save_files(self, path: Path) -> None:
        for i, m in enumerate(self.members_):
            m.save(path / "members" / str(i))

    def _load_files(self, path: Path) -> None:
        self.members_ = [Recommender.load(path / "members" / str(i)) for i in range(len(self.members))]
        found, named = [m.name for m in self.members_], [m["name"] for m in self.members]
        if found != named:  # model.json's members edited, or another folder
            raise ClarecError(f"{path}: its members are {found}, its parameters name {named}")
        self._set_flags(self.members_)


def _combine(weights: np.ndarray, standardized: list[np.ndarray]) -> np.ndarray:
    """``Σ w_i z_i`` in float32, members of weight 0 left out."""
    out = np.zeros_like(standardized[0])
    for w, z in zip(weights, standardized, strict=True):
        if w > 0:
            out += np.float32(w) * z
    return out
