"""Full-ranking evaluation of a recommender on a split.

For every user with at least one relevant item in the evaluated part, every item of the catalogue
is scored, the user's training items (and validation items, when testing) are masked out, and the
top ``max(ks)`` items are kept.

Next-item prediction (a leave-one-out split scored by a sequential model) has two conventions, and
both are in use: history items **masked** (as above; the S3-Rec / ICLRec family's code) or **kept**
as candidates (RecBole's default for sequential models: nothing is excluded), chosen by
``history_items``. With ``test_input="train+valid"`` the validation item is part of the input when
testing: a model that scores any history exactly (``history_mode == "exact"``: the sequential models,
EASE, ItemKNN, ...) is scored by :meth:`~clarec.models.base.Recommender.score_histories` on the user's
training and validation items in time order; other models keep scoring their training user. Users are scored in chunks, so memory is bounded by
``batch_size × n_items`` scores whatever the number of users. Metrics are then computed once over
the whole ranking matrix (see :mod:`clarec.evaluate.metrics` and :mod:`clarec.evaluate.beyond`).
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from clarec.errors import ClarecError, ConfigError
from clarec.evaluate import beyond
from clarec.evaluate.metrics import ACCURACY_METRICS, binary_csr, check_ks, mean_metrics, per_user_metrics
from clarec.ranking import top_k_tensor
from clarec.train.loop import resolve_device

#: Every metric base name the evaluator knows.
ALL_METRICS = ACCURACY_METRICS + beyond.BEYOND_METRICS
#: What happens to a user's history items in the ranking (see the module docstring).
HISTORY_ITEMS = ("masked", "kept")
#: What a model reads when the test part is scored.
TEST_INPUTS = ("train", "train+valid")

#: Default number of score cells (users × items) per chunk: 32M float32 = 128 MiB (670 users at
#: 50k items). Measured on 2 cores (benchmarks/eval_speed.py): 3M to 64M cells are within ~20%,
#: 16M-64M the fastest; memory grows with the chunk.
CHUNK_CELLS = 1 << 25


class _SplitLike(Protocol):
    train: Any
    valid: Any
    test: Any
    cold_items: np.ndarray


@dataclass
class EvalResult:
    """What an evaluation produced.

    Attributes:
        metrics: flat averages, e.g. ``{"ndcg@20": 0.31, "coverage@20": 0.12, ...}``.
        per_user: per-user arrays aligned with :attr:`users` (accuracy metrics, and ``novelty@k``,
            ``avg_pop@k``, ``diversity@k`` when computed), for significance tests.
        users: user indices that were evaluated (those with at least one relevant item).
        segments: the accuracy metrics on segments, each with ``users`` (how many were scored):
            ``cold_items`` and ``activity_q1`` (least active quarter) .. ``activity_q4``, the latter
            also with ``min_train`` / ``max_train`` interactions of the users in them.
        seconds: wall time of the evaluation.
        sample: when the users were sampled (``Evaluator(user_sample=...)``): ``{"users": n,
            "of": N, "seed": s}``; empty otherwise.
        ci95: with a sample, the half-width of the 95% confidence interval of each accuracy metric's
            mean over all ``N`` users (normal approximation, finite-population corrected).
        unreachable: with history items masked, when some relevant items are also history items
            (repeat interactions): :func:`unreachable_targets` of the scored users; empty otherwise.
    """

    metrics: dict[str, float]
    per_user: dict[str, np.ndarray] = field(default_factory=dict)
    users: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    segments: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0
    sample: dict[str, int] = field(default_factory=dict)
    ci95: dict[str, float] = field(default_factory=dict)
    unreachable: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no per-user arrays)."""
        out = {
            "metrics": dict(self.metrics),
            "segments": {k: dict(v) for k, v in self.segments.items()},
            "users": int(len(self.users)),
            "seconds": float(self.seconds),
        }
        if self.sample:
            out |= {"sample": dict(self.sample), "ci95": dict(self.ci95)}
        if self.unreachable:
            out["unreachable"] = dict(self.unreachable)
        return out


def unreachable_targets(relevant: sp.csr_matrix, history: sp.csr_matrix) -> dict[str, int]:
    """Relevant items that are also history items (rows aligned), which the masked convention can
    never recommend: a log with repeat interactions (view, then cart, then buy of one item) puts the
    same item in a user's history and in their test part. ``{}`` when there are none, else
    ``{"targets": n, "of": all relevant pairs, "users": users whose every relevant item is one,
    "of_users": users with a relevant item}``."""
    relevant = binary_csr(relevant)
    both = binary_csr(relevant.multiply(binary_csr(history)))
    n = int(both.nnz)
    if n == 0:
        return {}
    has = np.diff(relevant.indptr) > 0
    return {
        "targets": n,
        "of": int(relevant.nnz),
        "users": int(np.sum(has & (np.diff(both.indptr) == np.diff(relevant.indptr)))),
        "of_users": int(has.sum()),
    }


def unreachable_note(found: dict[str, int], part: str = "test") -> str:
    """One sentence for a log or a results file about :func:`unreachable_targets`' counts."""
    share = found["targets"] / max(1, found["of"])
    return (
        f"history items masked: {found['targets']:,} of {found['of']:,} {part} targets ({share:.0%}) are "
        f"items their user already has in the input (repeat interactions), which no model can "
        f"recommend under this convention ({found['users']:,} of {found['of_users']:,} users have no "
        "other target); history_items 'kept' scores them, or dedupe the data first"
    )


def resolve_metrics(metrics: Sequence[str] | None, has_features: bool) -> tuple[str, ...]:
    """Validated metric base names; ``None`` means all (diversity only with item features)."""
    if metrics is None:
        return tuple(m for m in ALL_METRICS if m != "diversity" or has_features)
    if isinstance(metrics, str):
        metrics = [metrics]
    names = []
    for m in metrics:
        name = str(m).lower()
        if name not in ALL_METRICS:
            close = difflib.get_close_matches(name, ALL_METRICS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown metric {m!r}{hint}; known: {', '.join(ALL_METRICS)}")
        if name == "diversity" and not has_features:
            raise ConfigError("metric 'diversity' needs item_features (genre one-hot or embeddings)")
        if name not in names:
            names.append(name)
    return tuple(names)


def _checked_ks(ks: Sequence[int]) -> tuple[int, ...]:
    try:
        return check_ks(ks)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _segment(per_user: dict[str, np.ndarray], rows: np.ndarray | None = None) -> dict[str, float]:
    sub = per_user if rows is None else {k: v[rows] for k, v in per_user.items()}
    n = len(next(iter(sub.values()))) if sub else 0
    return {**mean_metrics(sub), "users": float(n)}


def popularity_buckets(popularity: np.ndarray) -> dict[str, np.ndarray]:
    """Items in three buckets by training popularity, each holding about a third of the training
    interactions: ``items_head`` (the few most popular), ``items_mid``, ``items_tail`` (the long
    tail, items never seen in training included). Ties in popularity stay in one bucket."""
    pop = np.asarray(popularity, dtype=np.float64)
    order = np.argsort(-pop, kind="stable")
    ranked = pop[order]
    before = (np.cumsum(ranked) - ranked) / ranked.sum()  # share of interactions before each item
    bucket_ranked = np.minimum((3 * before + 1e-9).astype(np.int64), 2)
    # ties: every item takes the bucket of the first item with its popularity
    group = np.concatenate([[0], np.cumsum(np.diff(ranked) != 0)])
    starts = np.concatenate([[0], np.flatnonzero(np.diff(ranked) != 0) + 1])
    bucket = np.empty(len(pop), dtype=np.int64)
    bucket[order] = bucket_ranked[starts][group]
    return {f"items_{name}": bucket == b for b, name in enumerate(("head", "mid", "tail"))}


def _score_rankings(
    topk: np.ndarray,
    relevant: sp.csr_matrix,
    ks: tuple[int, ...],
    names: tuple[str, ...],
    users: np.ndarray,
    *,
    n_items: int,
    popularity: np.ndarray | None = None,
    n_train_users: int | None = None,
    activity: np.ndarray | None = None,
    cold_items: np.ndarray | None = None,
    item_features=None,
) -> EvalResult:
    """Metrics of rankings whose rows all have at least one relevant item."""
    accuracy = [m for m in names if m in ACCURACY_METRICS]
    per_user = per_user_metrics(topk, relevant, ks, accuracy) if accuracy else {}
    metrics = mean_metrics(per_user)
    extra: dict[str, np.ndarray] = {}
    for k in ks:
        if "coverage" in names:
            metrics[f"coverage@{k}"] = beyond.item_coverage(topk, n_items, k)
        if "diversity" in names:
            extra[f"diversity@{k}"] = beyond.intra_list_diversity(topk, item_features, k)
        if "novelty" in names and popularity is not None:
            extra[f"novelty@{k}"] = beyond.novelty(topk, popularity, n_train_users, k)
        if "avg_pop" in names and popularity is not None:
            extra[f"avg_pop@{k}"] = beyond.average_popularity(topk, popularity, k)
        if "gini" in names:
            metrics[f"gini@{k}"] = beyond.gini_index(beyond.recommendation_counts(topk, n_items, k))
    metrics |= mean_metrics(extra)
    # Keep the order of the names asked for, cut-off by cut-off.
    order = [f"{m}@{k}" for k in ks for m in names]
    metrics = {key: metrics[key] for key in order if key in metrics}

    segments: dict[str, dict[str, float]] = {}

    def item_segment(chosen: np.ndarray) -> dict[str, float]:
        """Accuracy on the relevant items of ``chosen`` (a mask over items) alone, for the users
        with at least one of them."""
        rel = relevant.copy()
        rel.data = np.where(chosen[rel.indices], rel.data, 0).astype(rel.data.dtype)
        rel.eliminate_zeros()
        rows = np.flatnonzero(np.diff(rel.indptr))
        return _segment(per_user_metrics(topk[rows], rel[rows], ks, accuracy))

    if accuracy and cold_items is not None and len(cold_items):
        cold = np.zeros(n_items, dtype=bool)
        cold[np.asarray(cold_items, dtype=np.int64)] = True
        segments["cold_items"] = item_segment(cold)
    if accuracy and popularity is not None and popularity.sum() > 0:
        for name, chosen in popularity_buckets(popularity).items():
            seg = item_segment(chosen)
            if seg["users"]:
                segments[name] = seg | {"items": float(chosen.sum())}
    if accuracy and activity is not None and len(users):
        # Equal-size groups by training activity (ties by user index), robust to heavily tied
        # counts where quantile edges would leave a group empty.
        order_users = np.lexsort((users, activity))
        for q, rows in enumerate(np.array_split(order_users, 4), start=1):
            if len(rows) == 0:
                continue
            seg = _segment(per_user, rows)
            seg["min_train"] = float(activity[rows].min())
            seg["max_train"] = float(activity[rows].max())
            segments[f"activity_q{q}"] = seg
    return EvalResult(metrics=metrics, per_user=per_user | extra, users=users, segments=segments)


def evaluate_rankings(
    topk: np.ndarray,
    relevant: sp.spmatrix,
    ks: Sequence[int] = (10, 20),
    train: sp.spmatrix | None = None,
    metrics: Sequence[str] | None = None,
    item_features=None,
    cold_items: np.ndarray | None = None,
) -> EvalResult:
    """Evaluate given rankings, e.g. recommendations produced outside clarec.

    Args:
        topk: ``(n_users, Kmax)`` item indices, best first, ``-1`` for an empty slot.
        relevant: binary ``(n_users, n_items)`` ground truth, same rows as ``topk``. Rows without a
            relevant item are left out of every metric.
        ks: cut-offs.
        train: training interactions ``(n_users, n_items)`` with the same rows, covering every
            training user: gives item popularity (novelty, avg_pop) and user activity (the
            ``activity_q*`` segments). Without it those are skipped.
        metrics: base names (see :data:`ALL_METRICS`); default all that the inputs allow.
        item_features: ``(n_items, d)`` vectors for intra-list diversity.
        cold_items: item indices for the ``cold_items`` segment.

    Nothing is excluded here: items of ``train`` found in a list simply count as non-relevant.
    """
    start = time.perf_counter()
    ks = _checked_ks(ks)
    topk = np.asarray(topk, dtype=np.int64)
    if topk.ndim != 2:
        raise ClarecError(f"rankings must be a 2-d array (users × ranks), got shape {topk.shape}")
    rel = binary_csr(relevant)
    if rel.shape[0] != topk.shape[0]:
        raise ClarecError(f"{topk.shape[0]} rankings for {rel.shape[0]} rows of relevance")
    if topk.size and topk.max() >= rel.shape[1]:
        raise ClarecError(f"rankings hold item index {int(topk.max())} but there are {rel.shape[1]} items")
    names = resolve_metrics(metrics, item_features is not None)
    needs_train = set(names) & {"novelty", "avg_pop"}
    if train is None and needs_train:
        if metrics is not None:
            raise ConfigError("metrics 'novelty' and 'avg_pop' need the training interactions (train=)")
        names = tuple(m for m in names if m not in needs_train)
    rows = np.flatnonzero(np.diff(rel.indptr))
    popularity = n_train = activity = None
    if train is not None:
        tr = binary_csr(train)
        if tr.shape != rel.shape:
            raise ClarecError(f"train has shape {tr.shape}, relevance {rel.shape}")
        popularity = np.diff(tr.tocsc().indptr).astype(np.float64)
        n_train = tr.shape[0]
        activity = np.diff(tr.indptr)[rows]
    result = _score_rankings(
        topk[rows],
        rel[rows],
        ks,
        names,
        rows,
        n_items=rel.shape[1],
        popularity=popularity,
        n_train_users=n_train,
        activity=activity,
        cold_items=cold_items,
        item_features=item_features,
    )
    result.seconds = time.perf_counter() - start
    return result


def _ci95(values: np.ndarray, population: int) -> float:
    """Half-width of the 95% interval of the mean over ``population`` users from a simple random
    sample ``values`` of them (normal approximation with the finite-population correction)."""
    n = len(values)
    if n < 2:
        return float("nan")
    fpc = (population - n) / max(population - 1, 1)
    return float(1.96 * np.std(values, ddof=1) / np.sqrt(n) * np.sqrt(fpc))


def _owned_float32(scores) -> np.ndarray:
    """The model's scores as a float32 array we may write into.

    A fresh array (e.g. a matrix product) is used in place; anything that may be a view of the
    model's own state (``base`` set, read-only, another dtype) is copied first.
    """
    s = np.asarray(scores)
    if s.dtype != np.float32 or s.base is not None or not s.flags.writeable or not s.flags.c_contiguous:
        s = np.array(s, dtype=np.float32, order="C", copy=True)
    return s


class Evaluator:
    """Full-ranking evaluation on a split.

    Args:
        split: has ``train``, ``valid``, ``test`` datasets sharing id maps, and ``cold_items``.
        ks: cut-offs; the top ``max(ks)`` items are ranked.
        metrics: metric base names (see :data:`ALL_METRICS`); default all (``diversity`` only when
            ``item_features`` is given).
        item_features: ``(n_items, d)`` dense or sparse item vectors for intra-list diversity.
        batch_size: users scored at once; default keeps a chunk near :data:`CHUNK_CELLS` scores.
        history_items: ``"masked"`` (a user's training items, and validation items when testing,
            are never recommended) or ``"kept"`` (every item is a candidate).
        test_input: ``"train"`` (models score their training users) or ``"train+valid"`` (when
            testing, models with exact history scoring read the training and validation items).
        user_sample: score a random sample of this many of the users with a relevant item (the same
            users for every model and call: drawn with ``sample_seed``), with a 95% confidence
            interval of each accuracy metric (:attr:`EvalResult.ci95`); ``None``: every user. For
            catalogues too large to rank for everyone; coverage and the other list metrics are then
            those of the sampled users' lists.
        sample_seed: seed of the user sample.
        device: where chunks are scored and ranked. ``"cpu"`` (default): as the model scores. ``"auto"``
            (CUDA where available) or ``"cuda"``: a model with the inner-product path
            (``query_items``: the embedding models) is scored there, its float64 product of query and
            item vectors rounded to float32 as on the CPU (the same rankings but for float64 rounding
            in the last bit), and the top-k runs there; other models' scores are ranked on the CPU.
    """

    def __init__(
        self,
        split: _SplitLike,
        ks: Sequence[int] = (10, 20),
        metrics: Sequence[str] | None = None,
        item_features=None,
        batch_size: int | None = None,
        history_items: str = "masked",
        test_input: str = "train",
        user_sample: int | None = None,
        sample_seed: int = 0,
        device: str = "cpu",
    ):
        self.device = device
        self.device_ = resolve_device(device)  # a clear error now when no such GPU is here
        self._items_on_device: tuple[np.ndarray, torch.Tensor] | None = None
        if user_sample is not None and int(user_sample) < 2:
            raise ConfigError(f"user_sample must be at least 2 users (or None), got {user_sample}")
        self.user_sample = None if user_sample is None else int(user_sample)
        self.sample_seed = int(sample_seed)
        if history_items not in HISTORY_ITEMS:
            raise ConfigError(f"history_items must be one of {HISTORY_ITEMS}, got {history_items!r}")
        if test_input not in TEST_INPUTS:
            raise ConfigError(f"test_input must be one of {TEST_INPUTS}, got {test_input!r}")
        self.history_items = history_items
        self.test_input = test_input
        self._test_histories: dict[str, list[np.ndarray]] | None = None
        self.split = split
        self.ks = _checked_ks(ks)
        self.metrics = resolve_metrics(metrics, item_features is not None)
        self.n_users, self.n_items = split.train.n_users, split.train.n_items
        if item_features is not None and not sp.issparse(item_features):
            item_features = np.asarray(item_features)
        if item_features is not None and item_features.shape[0] != self.n_items:
            raise ConfigError(f"item_features has {item_features.shape[0]} rows for {self.n_items} items")
        self.item_features = item_features
        if batch_size is not None and int(batch_size) < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size}")
        self.batch_size = int(batch_size) if batch_size else max(1, CHUNK_CELLS // max(1, self.n_items))
        # Everything learned from training only: seen items, popularity, user activity.
        self._train = split.train.to_csr()
        self._valid = split.valid.to_csr()
        self._popularity = np.diff(self._train.tocsc().indptr).astype(np.float64)
        self._activity = np.diff(self._train.indptr)

    def evaluate(self, model, part: str = "test", progress: bool = False) -> EvalResult:
        """Rank the whole catalogue for every user with a relevant item in ``part`` and score it.

        With ``history_items="masked"`` training items are excluded from each user's ranking, and
        validation items too when ``part == "test"``. ``model.score(user_indices)`` must return
        ``(n, n_items)`` float scores (``score_histories`` for the test input ``"train+valid"``).
        """
        if part not in ("test", "valid"):
            raise ConfigError(f"part must be 'test' or 'valid', got {part!r}")
        start = time.perf_counter()
        relevant = binary_csr((self.split.test if part == "test" else self.split.valid).to_csr())
        users = np.flatnonzero(np.diff(relevant.indptr)).astype(np.int64)
        if len(users) == 0:
            raise ClarecError(f"no user has an interaction in the {part} part: nothing to evaluate")
        population = len(users)
        if self.user_sample is not None and population > self.user_sample:
            rng = np.random.default_rng(self.sample_seed)
            users = np.sort(rng.choice(users, size=self.user_sample, replace=False))
        excluded = self._excluded(users, part)
        unreachable = unreachable_targets(relevant[users], excluded) if self.history_items == "masked" else {}
        histories = self._input(model, part)
        topk = self.rank(model, users, excluded, progress=progress, histories=histories)
        cold_items = np.asarray(getattr(self.split, "cold_items", []), dtype=np.int64)
        result = _score_rankings(
            topk,
            relevant[users],
            self.ks,
            self.metrics,
            users,
            n_items=self.n_items,
            popularity=self._popularity,
            n_train_users=self.n_users,
            activity=self._activity[users],
            cold_items=cold_items,
            item_features=self.item_features,
        )
        accuracy = [m for m in self.metrics if m in ACCURACY_METRICS]
        if accuracy and len(cold_items):
            result.segments["cold_only"] = self._cold_only(
                model, relevant, excluded, users, cold_items, accuracy, histories
            )
        if len(users) < population:
            result.sample = {"users": len(users), "of": population, "seed": self.sample_seed}
            result.ci95 = {
                key: _ci95(values, population)
                for key, values in result.per_user.items()
                if key.split("@")[0] in ACCURACY_METRICS
            }
        result.unreachable = unreachable
        result.seconds = time.perf_counter() - start
        return result

    def _excluded(self, users: np.ndarray, part: str) -> sp.csr_matrix:
        """Items left out of each user's ranking (rows aligned with ``users``): training items under
        ``masked``, and validation items too for ``test``; none under ``kept``."""
        if self.history_items == "masked":
            excluded = self._train + self._valid if part == "test" else self._train
            return binary_csr(excluded[users])  # rows aligned with `users`: chunks slice cheaply
        return sp.csr_matrix((len(users), self.n_items), dtype=np.float32)

    def _input(self, model, part: str) -> list[np.ndarray] | None:
        """The histories ``model`` is scored from for ``part`` (``None``: its training users)."""
        return self.test_histories() if part == "test" and self.reads_test_input(model) else None

    def ranked_lists(
        self, model, users: np.ndarray, part: str = "test", progress: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each user's top ``max(ks)`` items and their scores, exactly as :meth:`evaluate` ranks them
        for ``part`` (the same input and exclusions; ``-1`` / ``-inf`` where fewer are eligible)."""
        if part not in ("test", "valid"):
            raise ConfigError(f"part must be 'test' or 'valid', got {part!r}")
        users = np.asarray(users, dtype=np.int64)
        return self.rank(
            model,
            users,
            self._excluded(users, part),
            progress,
            histories=self._input(model, part),
            scores=True,
        )

    def unreachable(self, part: str = "test") -> dict[str, int]:
        """:func:`unreachable_targets` of ``part`` over every user with a relevant item (``{}`` with
        history items kept, or when no relevant item is a history item)."""
        if self.history_items != "masked":
            return {}
        relevant = (self.split.test if part == "test" else self.split.valid).to_csr()
        return unreachable_targets(relevant, self._train + self._valid if part == "test" else self._train)

    def reads_test_input(self, model) -> bool:
        """Whether ``model`` is scored from the training and validation items when testing."""
        return (
            self.test_input == "train+valid"
            and bool(getattr(model, "supports_histories", False))
            and getattr(model, "history_mode", None) == "exact"
        )

    def test_histories(self, column: str = "item") -> list[np.ndarray]:
        """Each user's training then validation items in time order (the test input); with
        ``column="weight"`` their weights (what a ``weighted`` model reads with them)."""
        if self._test_histories is None:
            train, valid = self.split.train, self.split.valid
            both = train.with_interactions(
                pd.concat([train.interactions, valid.interactions], ignore_index=True)
            )
            self._test_histories = {c: both.user_histories(c) for c in ("item", "weight")}
        return self._test_histories[column]

    def _cold_only(
        self, model, relevant, excluded, users, cold_items, accuracy, histories=None
    ) -> dict[str, float]:
        """The item cold-start protocol: rank only the cold items, for users with a relevant one."""
        cold = np.zeros(self.n_items, dtype=bool)
        cold[cold_items] = True
        rel = relevant[users]
        rel = binary_csr(rel.multiply(cold[None, :].astype(rel.dtype)))
        rows = np.flatnonzero(np.diff(rel.indptr))
        topk = self.rank(model, users[rows], excluded[rows], allowed=cold, histories=histories)
        return _segment(per_user_metrics(topk, rel[rows], self.ks, accuracy))

    def rank(
        self,
        model,
        users: np.ndarray,
        excluded: sp.csr_matrix,
        progress: bool = False,
        allowed: np.ndarray | None = None,
        histories: Sequence[np.ndarray] | None = None,
        scores: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Top ``max(ks)`` items per user (``-1`` where fewer items are eligible), and with ``scores``
        their scores too (``-inf`` in the empty slots).

        ``excluded`` has one row per entry of ``users``; its items get ``-inf`` before the top-k, and
        so do the items outside ``allowed`` (a boolean mask over items) when it is given. With
        ``histories`` (the test input, :meth:`test_histories`, one item array per user index) the model
        scores ``histories[u]`` through ``score_histories`` instead of training user ``u`` (a
        ``weighted`` model with the histories' weights).
        """
        kmax = self.ks[-1]
        out = np.full((len(users), min(kmax, self.n_items)), -1, dtype=np.int64)
        out_scores = np.full(out.shape, -np.inf, dtype=np.float32)
        starts = range(0, len(users), self.batch_size)
        for lo in tqdm(starts, desc="evaluating", unit="chunk", disable=not progress):
            hi = min(lo + self.batch_size, len(users))
            chunk = users[lo:hi]
            sub = excluded[lo:hi]
            chunk_histories = None if histories is None else [histories[u] for u in chunk]
            if chunk_histories is None and hasattr(model, "score_excluding"):
                # a model whose scores depend on which items can be recommended (a re-ranker
                # prompts with its top candidates): told the items this ranking leaves out
                s = torch.from_numpy(_owned_float32(model.score_excluding(chunk, sub, allowed)))
            else:
                s = self._chunk_scores(model, chunk, chunk_histories)
            if tuple(s.shape) != (hi - lo, self.n_items):
                raise ClarecError(
                    f"model scores have shape {tuple(s.shape)}, expected {(hi - lo, self.n_items)}: "
                    "was the model fitted on this split?"
                )
            rows = np.repeat(np.arange(hi - lo), np.diff(sub.indptr))
            on = s.device
            s[
                torch.from_numpy(rows).to(on), torch.from_numpy(sub.indices.astype(np.int64)).to(on)
            ] = -torch.inf
            if allowed is not None:
                s[:, torch.from_numpy(~allowed).to(on)] = -torch.inf
            idx, vals = top_k_tensor(s, kmax)
            # torch.topk ranks NaN above everything, so a NaN score anywhere shows up here.
            bad = np.isnan(vals).any(axis=1)
            if bad.any():
                user = int(users[lo + int(np.argmax(bad))])
                raise ClarecError(f"model {type(model).__name__} returned NaN scores (user index {user})")
            idx[vals == -np.inf] = -1  # an excluded item is never a recommendation
            out[lo:hi] = idx
            out_scores[lo:hi] = vals
        return (out, out_scores) if scores else out

    def _chunk_scores(self, model, chunk: np.ndarray, histories: list[np.ndarray] | None) -> torch.Tensor:
        """float32 scores ``(len(chunk), n_items)`` of one chunk, a tensor we may write into: on the
        evaluation device for an inner-product model (see ``device``), else the model's own."""
        if self.device != "cpu" and getattr(model, "query_items", lambda: None)() is not None:
            queries = model.user_queries(chunk) if histories is None else model.history_queries(histories)
            if queries is not None:
                items_t64 = model.query_items()[1]
                if self._items_on_device is None or self._items_on_device[0] is not items_t64:
                    self._items_on_device = (items_t64, torch.from_numpy(items_t64).to(self.device_))
                q = torch.from_numpy(np.asarray(queries, dtype=np.float64)).to(self.device_)
                return (q @ self._items_on_device[1]).float()
        if histories is None:
            scores = model.score(chunk)
        elif getattr(model, "weighted", False):  # the test input's weights, as training read them
            weights = self.test_histories("weight")
            scores = model.score_histories(histories, weights=[weights[u] for u in chunk])
        else:
            scores = model.score_histories(histories)
        return torch.from_numpy(_owned_float32(scores))
