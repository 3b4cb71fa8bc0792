"""The one interface every recommender implements.

The evaluator, the experiment runner and the server only ever call these methods, so they never
special-case a model. A subclass implements ``_fit`` and ``score`` (and, where it has them,
``item_vectors`` or ``item_similarity``); the base class gives ``recommend`` with seen-item
exclusion, ``similar_items`` and safe ``save``/``load`` (JSON parameters + ``.npz`` arrays, never
pickle).

Why one file of this length: it is the whole contract every model meets (scoring, ranking, real
time, inner-product queries, persistence), and the evaluator, runner and server read only this.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import shutil
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from clarec.data.dataset import Dataset
from clarec.errors import ClarecError, ConfigError, UnknownIdError
from clarec.models.params import Param
from clarec.ranking import top_k

MODEL_FORMAT = 1
#: subfolders a model writes beside its arrays (:meth:`Recommender._save_files`): a fine-tuned
#: encoder, a blend's members, a reranker's base; a save over an earlier model clears them first
MODEL_SUBFOLDERS = ("encoder", "members", "base")


class NotFittedError(ClarecError):
    """A model was used before ``fit``."""


class Recommender(ABC):
    """Base class of all recommenders.

    Hyper-parameters are declared once as class attributes made with
    :func:`clarec.models.params.param` (default, type, range). The constructor takes them as keyword
    arguments, checks each one and stores it as an attribute of the same name, so :meth:`get_params`
    can read them back (as in scikit-learn) and :meth:`save` can write them as JSON. Checks that
    involve several parameters go in :meth:`_check_params`. Attributes learned by ``fit`` end in
    ``_`` or are arrays the model scores with.
    """

    #: Registry name, set by :func:`clarec.models.registry.register`.
    name: ClassVar[str] = ""
    #: The declared hyper-parameters (filled in for every subclass).
    params: ClassVar[dict[str, Param]] = {}

    # Capabilities are declared by each model class (never inferred from which methods it defines:
    # a method inherited from a mixin is as real as one written in the class);
    # tests/models/test_capabilities.py checks every registered model's flags against what it does.

    #: Whether :meth:`score_histories` works (scores for ad-hoc users from their item histories).
    supports_histories: ClassVar[bool] = False
    #: How :meth:`score_histories` relates to :meth:`score` for a training user's own history:
    #: ``"exact"`` (the same computation), ``"fold-in"`` (a user vector estimated from the history,
    #: which ranks close to the trained one) or ``"constant"`` (scores do not depend on the history).
    history_mode: ClassVar[str] = "exact"
    #: Whether :meth:`add_items` works (new items appended after the last index).
    supports_new_items: ClassVar[bool] = False
    #: Whether added items are scored from their text (cold start); otherwise they enter the catalogue
    #: with no evidence (score 0, or the model's equivalent) until the model is retrained.
    new_items_from_text: ClassVar[bool] = False
    #: Whether :meth:`score_texts` works (users described only by a profile text).
    supports_texts: ClassVar[bool] = False

    n_users: int
    n_items: int
    seen: sp.csr_matrix

    # ------------------------------------------------------------------ parameters
    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        # The most derived declaration of a name counts; names are listed by the class that introduced
        # them, the model's own before its parents' (a subclass's parameters, then shared settings).
        spec: dict[str, Param] = {}
        introduced: dict[str, tuple[int, int]] = {}
        for depth, klass in enumerate(cls.__mro__):
            for position, (k, v) in enumerate(kv for kv in vars(klass).items() if isinstance(kv[1], Param)):
                spec.setdefault(k, v)
                introduced[k] = (depth, position)
        declared = {k: spec[k] for k in sorted(spec, key=introduced.__getitem__)}
        cls.params = declared
        cls.__signature__ = inspect.Signature(
            [
                inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=p.default)
                for k, p in declared.items()
            ]
        )

    def __init__(self, **params: Any):
        owner = self.name or type(self).__name__
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise ConfigError(f"{owner}: unknown parameter(s) {unknown}; allowed: {list(self.params)}")
        for key, spec in self.params.items():
            setattr(self, key, spec.check(owner, key, params.get(key, spec.default)))
        self._check_params()

    def _check_params(self) -> None:  # noqa: B027 - a hook: most models need no joint checks
        """Checks that involve several parameters (each one alone was checked by its declaration)."""

    @classmethod
    def param_names(cls) -> list[str]:
        return list(cls.params)

    def get_params(self) -> dict[str, Any]:
        return {p: getattr(self, p) for p in self.param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ fitting
    def check_split(self, split) -> None:
        """Refuse settings that name what the data lacks — item columns (``fields``, ``attributes``),
        user columns (``user_fields`` with ``user_text``), a text model folder (``encoder``) — with the
        message the fit would give, and an ``encoder`` adapted (``clarec pretrain``) on pairs ``split``
        holds out: ``clarec run`` calls it for every model and split before the
        first fit, so a typo is not found after hours of training the models before it."""
        check_settings(self.name or type(self).__name__, self.get_params(), split)

    def trains_torch(self) -> bool:
        """Whether fitting this model trains a torch model (itself, a blend's member, a re-ranker's
        base): under ``torchrun`` every rank must take part in such a fit, in the same order."""
        return False

    def fit(self, train: Dataset, valid: Dataset | None = None) -> Self:
        """Learn from ``train``; ``valid`` may be used for early stopping, never for learning."""
        self.n_users, self.n_items = train.n_users, train.n_items
        # a model with a ``weighted`` setting (popularity, itemknn, ease, ease-lm) may read the
        # interactions' weights (behaviour weights, a weight column); every other model reads 0/1
        self.seen = train.to_csr(weighted=bool(getattr(self, "weighted", False)))
        try:
            self._fit(train, valid)
        except BaseException:
            del self.seen  # a failed fit must not leave the model looking fitted
            raise
        return self

    @abstractmethod
    def _fit(self, train: Dataset, valid: Dataset | None) -> None: ...

    def _check_fitted(self) -> None:
        if not hasattr(self, "seen"):
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() first")

    def _grow_items(self, n_new: int) -> None:
        """Make room for ``n_new`` items appended after the last index (models' ``add_items`` call it)."""
        self.n_items += int(n_new)
        self.seen = sp.csr_matrix(
            (self.seen.data, self.seen.indices, self.seen.indptr), shape=(self.n_users, self.n_items)
        )

    # ------------------------------------------------------------------ scoring
    @abstractmethod
    def score(self, users: np.ndarray) -> np.ndarray:
        """Scores of every item for each user index: float32 array ``(len(users), n_items)``."""

    def _check_users(self, users) -> np.ndarray:
        self._check_fitted()
        users = _as_indices(users, "user")
        if users.size and (users.min() < 0 or users.max() >= self.n_users):
            bad = users[(users < 0) | (users >= self.n_users)][0]
            raise UnknownIdError(f"user index {int(bad)} out of range (model has {self.n_users} users)")
        return users

    def _check_items(self, items) -> np.ndarray:
        self._check_fitted()
        items = _as_indices(items, "item")
        if items.size and (items.min() < 0 or items.max() >= self.n_items):
            bad = items[(items < 0) | (items >= self.n_items)][0]
            raise UnknownIdError(f"item index {int(bad)} out of range (model has {self.n_items} items)")
        return items

    # ------------------------------------------------------------------ real time
    def score_histories(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Scores of every item ``(len(histories), n_items)`` for ad-hoc users given by their
        item-index histories (oldest first), without retraining: how a server reacts to new events
        and serves users the model never saw. Models that support it set :attr:`supports_histories`;
        :attr:`history_mode` says how close it is to :meth:`score` for a training user's own history.
        Models with a ``weighted`` setting also take ``weights=`` (one per history item).
        """
        raise ClarecError(
            f"model {self.name or type(self).__name__!r} cannot score users from their histories "
            "(no fold-in); retrain it to include new interactions"
        )

    def add_items(self, items: pd.DataFrame) -> np.ndarray:
        """Append new items (rows of text columns such as ``title``, the fields the model was fitted
        on) after the last index and return their indices; they can be scored and recommended at
        once. Every row is a new item: a model holds indices, not ids, so the caller keeps the
        id of each returned index (``Dataset.item_ids`` covers the fitted ones) and does not add an
        item twice (``clarec serve`` refuses a known id). Models that support it set
        :attr:`supports_new_items` (and :attr:`new_items_from_text` when the text is what scores them)."""
        raise ClarecError(f"model {self.name or type(self).__name__!r} cannot add items without retraining")

    def score_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Scores of every item ``(len(texts), n_items)`` for users described only by a text (a
        profile such as "Occupation: engineer. Likes: space operas"): cold-start users without
        history. Text models implement it; they set :attr:`supports_texts`."""
        raise ClarecError(f"model {self.name or type(self).__name__!r} cannot score users from a text")

    def _check_histories(self, histories: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Histories as int64 arrays with every index checked (raises :class:`UnknownIdError`)."""
        self._check_fitted()
        out = []
        for n, h in enumerate(histories):
            if isinstance(h, int | float | np.number) or (isinstance(h, np.ndarray) and h.ndim == 0):
                # [1, 2, 3]: one user's items, not three one-item users
                raise ClarecError(
                    "histories is a sequence of histories, one per user (each a sequence of item "
                    f"indices); got a flat sequence ({h!r} as history {n}): wrap one history as [history]"
                )
            try:
                h = np.asarray(h)
            except ValueError:  # ragged nesting
                raise ClarecError(f"history {n} is not a flat sequence of item indices") from None
            if h.ndim > 1:
                raise ClarecError(f"history {n} is not a flat sequence of item indices (shape {h.shape})")
            out.append(self._check_items(h) if h.size else np.empty(0, dtype=np.int64))
        return out

    def _history_matrix(
        self,
        histories: Sequence[np.ndarray],
        binary: bool = True,
        weights: Sequence[np.ndarray] | None = None,
    ) -> sp.csr_matrix:
        """``(len(histories), n_items)`` matrix of the (checked) histories' items: 1 per item, with
        ``binary=False`` the number of times the item occurs; for a model fitted ``weighted``, with
        ``weights`` (one per history item) the sum of the item's weights, as training read them
        (left out: 1 each; a model fitted without reads 0/1 and ignores them)."""
        hists = self._check_histories(histories)
        rows = np.repeat(np.arange(len(hists)), [len(h) for h in hists])
        cols = np.concatenate(hists) if hists else np.empty(0, dtype=np.int64)
        data = np.ones(len(cols), dtype=np.float32)
        if weights is not None and getattr(self, "weighted", False):
            w = [np.asarray(x, dtype=np.float64).ravel() for x in weights]
            if len(w) != len(hists) or any(len(a) != len(h) for a, h in zip(w, hists, strict=False)):
                raise ClarecError("weights must give one number per history item")
            data = np.concatenate(w).astype(np.float32) if w else data
            if not np.isfinite(data).all():
                raise ClarecError("history weights must be finite numbers")
            binary = False
        m = sp.csr_matrix((data, (rows, cols)), shape=(len(hists), self.n_items))
        m.sum_duplicates()
        if binary:
            m.data[:] = 1.0
        return m

    def recommend(
        self,
        users,
        k: int = 10,
        exclude_seen: bool = True,
        candidates: np.ndarray | None = None,
        batch_size: int = 1024,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item indices and scores per user, best first.

        Items the user interacted with in training are excluded when ``exclude_seen``; when
        ``candidates`` (item indices) is given only those are ranked. Fewer than ``k`` eligible
        items leave ``-1`` indices with ``-inf`` scores at the end.
        """
        users = self._check_users(users)
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ClarecError(f"k must be a whole number of items, at least 1; got {k!r}")
        allowed = None
        if candidates is not None:
            allowed = np.zeros(self.n_items, dtype=bool)
            allowed[self._check_items(candidates)] = True
        ids = np.full((len(users), k), -1, dtype=np.int64)
        vals = np.full((len(users), k), -np.inf, dtype=np.float32)
        for start in range(0, len(users), batch_size):
            chunk = users[start : start + batch_size]
            s = np.array(checked_scores(self, self.score(chunk), len(chunk)), dtype=np.float32, copy=True)
            if exclude_seen:
                sub = self.seen[chunk]
                s[np.repeat(np.arange(len(chunk)), np.diff(sub.indptr)), sub.indices] = -np.inf
            if allowed is not None:
                s[:, ~allowed] = -np.inf
            i, v = top_k(s, k)
            ids[start : start + len(chunk), : i.shape[1]] = i
            vals[start : start + len(chunk), : v.shape[1]] = v
        ids[~np.isfinite(vals)] = -1
        return ids, vals

    # ------------------------------------------------------------------ inner-product scoring
    def user_queries(self, users) -> np.ndarray | None:
        """For a model whose scores are an inner product: float32 query vectors ``q`` of the users,
        ``(len(users), d)``, with ``score(users)`` equal, bit for bit, to
        ``float32(float64(q) @ query_items()[1])``; ``None`` (the default) for other models. The
        server then ranks with :func:`clarec.ranking.top_k_inner_product` instead of scoring every
        item in float64."""
        return None

    def history_queries(self, histories: Sequence[np.ndarray]) -> np.ndarray | None:
        """:meth:`user_queries` for ad-hoc users: the same relation to :meth:`score_histories`."""
        return None

    def query_items(self) -> tuple[np.ndarray, np.ndarray, float] | None:
        """The other side of :meth:`user_queries`: item vectors ``(n_items, d)`` as a C-ordered
        float32 array, their transpose in float64 (what the scores are computed with) and the largest
        item-vector norm; ``None`` for models without query vectors."""
        return None

    def _inner_product_items(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """:meth:`query_items` of the item matrix ``vectors``, kept until the model replaces that
        matrix (a server scoring one user per request would otherwise convert the whole catalogue
        to float64 each time). Scores are ``float32(float64(q) @ ...[1])`` for every such model."""
        cached = getattr(self, "_query_items_cache", None)
        if cached is None or cached[0] is not vectors:
            items = np.ascontiguousarray(vectors, dtype=np.float32)
            norm = float(np.sqrt((items.astype(np.float64) ** 2).sum(axis=1).max())) if len(items) else 0.0
            cached = (vectors, (items, vectors.T.astype(np.float64), norm))
            self._query_items_cache = cached
        return cached[1]

    # ------------------------------------------------------------------ item similarity
    def item_vectors(self) -> np.ndarray | None:
        """Item representations ``(n_items, d)`` if the model has them, else ``None``."""
        return None

    def item_similarity(self, items: np.ndarray) -> np.ndarray:
        """Similarity of the given items to every item ``(len(items), n_items)``.

        The default is the cosine of :meth:`item_vectors`; models without vectors override it.
        """
        vecs = self.item_vectors()
        if vecs is None:
            raise NotImplementedError(f"{type(self).__name__} defines no item similarity")
        items = self._check_items(items)  # -1 read the last item's row
        unit = _unit(vecs)
        # float64 then float32: a row must not depend on the other items asked for with it
        return (unit[items] @ unit.T).astype(np.float32)

    def history_input(self, history: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray | None:
        """For a model that scores a history as ``x·M`` (an item-item matrix): ``x``, how much each
        item (``n_items``,) counts in the scores of ``history`` (with ``weights`` for a ``weighted``
        model), so an item's contribution to a score is ``x[h]·M[h, j]``; ``None`` for other models."""
        return None

    def item_pair_similarity(self, rows, cols) -> np.ndarray:
        """``item_similarity(rows)[:, cols]``: similarity of items ``rows`` to items ``cols``,
        ``(len(rows), len(cols))``. With the default cosine of :meth:`item_vectors` only the rows and
        columns asked for are normalised and multiplied (the server explains 20 items against a
        history this way instead of scoring the history against the whole catalogue)."""
        rows = np.asarray(rows, dtype=np.int64).ravel()
        cols = np.asarray(cols, dtype=np.int64).ravel()
        if type(self).item_similarity is not Recommender.item_similarity:
            return np.asarray(self.item_similarity(rows))[:, cols]
        vecs = self.item_vectors()
        if vecs is None:
            raise NotImplementedError(f"{type(self).__name__} defines no item similarity")
        return (_unit(vecs[rows]) @ _unit(vecs[cols]).T).astype(np.float32)

    def similar_items(self, items, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar to each given item, the item itself excluded. An item whose
        similarity to every other item is 0 (one added without data the model reads, an item no
        training user shares) gets no items (``-1``) rather than the first ``k`` by index."""
        items = self._check_items(items)
        s = np.array(self.item_similarity(items), dtype=np.float32, copy=True)
        s[np.arange(len(items)), items] = -np.inf
        s[~((s != 0) & np.isfinite(s)).any(axis=1)] = -np.inf
        i, v = top_k(s, k)
        ids = np.full((len(items), k), -1, dtype=np.int64)
        vals = np.full((len(items), k), -np.inf, dtype=np.float32)
        ids[:, : i.shape[1]], vals[:, : v.shape[1]] = i, v
        ids[~np.isfinite(vals)] = -1
        return ids, vals

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, np.ndarray | sp.spmatrix]:
        """Learned arrays (dense or scipy sparse) to save; subclasses extend."""
        return {}

    def _set_state(self, state: dict[str, np.ndarray | sp.csr_matrix]) -> None:
        """Restore what :meth:`_get_state` returned (sparse matrices come back as CSR)."""
        return None

    def save(self, path: str | Path) -> Path:
        """Save to a folder: ``model.json`` (name, parameters) and ``state.npz`` (arrays)."""
        self._check_fitted()
        from clarec.models.registry import get_model_class

        if get_model_class(self.name) is not type(self):  # it would load as the class holding the name
            raise ClarecError(
                f"{type(self).__qualname__} has the name {self.name!r} of {get_model_class(self.name).__qualname__}, "
                "which it subclasses: register it under its own name (@register('...')) to save it"
            )
        path = Path(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # a file in the way, no permission
            raise ClarecError(f"{path}: cannot save a model there ({type(e).__name__}: {e})") from None
        meta = {
            "format": MODEL_FORMAT,
            "model": self.name,
            "params": self.get_params(),
            "n_users": self.n_users,
            "n_items": self.n_items,
        }
        # model.json goes last: a save that stops half-way leaves a folder without it, which is
        # never taken for a model (the arrays are written whole or not at all)
        if (path / "model.json").is_file() or (path / "state.npz").is_file():
            # an earlier model's subfolders would mix with this one's (another encoder's files, a
            # blend's extra members); only in a folder that held a model, so a user's files stay
            for sub in MODEL_SUBFOLDERS:
                if (path / sub).is_dir():
                    shutil.rmtree(path / sub)
        (path / "model.json").unlink(missing_ok=True)
        arrays: dict[str, np.ndarray] = {}
        for key, value in self._get_state().items():
            if sp.issparse(value):
                arrays |= _sparse_to_arrays(f"sparse.{key}", value)
            else:
                arrays[f"state.{key}"] = np.asarray(value)
        arrays |= _sparse_to_arrays("seen", self.seen)
        arrays["meta.model"] = np.asarray(self.name)  # which model the arrays are (model.json can be edited)
        partial = path / ".state.npz.partial"
        with open(partial, "wb") as f:
            np.savez(f, **arrays)
        os.replace(partial, path / "state.npz")
        self._save_files(path)
        partial = path / ".model.json.partial"
        partial.write_text(json.dumps(meta, indent=2, default=_json_default))
        os.replace(partial, path / "model.json")
        return path

    def _save_files(self, path: Path) -> None:
        """Write what does not fit in arrays (e.g. a fine-tuned text encoder) into the model folder."""
        return None

    def _load_files(self, path: Path) -> None:
        """Read back what :meth:`_save_files` wrote (called by :meth:`load` after ``_set_state``)."""
        return None

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load a model saved by :meth:`save`; reads no pickles."""
        from clarec.models.registry import get_model_class

        path = Path(path)
        try:
            meta = json.loads((path / "model.json").read_text())
            name, params, version = meta["model"], meta["params"], int(meta.get("format", MODEL_FORMAT))
            n_users, n_items = int(meta["n_users"]), int(meta["n_items"])
            with np.load(path / "state.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            seen = _sparse_from_arrays("seen", arrays)
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as e:
            raise ClarecError(
                f"{path}: not a readable saved clarec model ({type(e).__name__}: {e})"
            ) from None
        if version > MODEL_FORMAT:
            raise ClarecError(
                f"{path}: saved by a newer clarec (model format {version}; this one reads {MODEL_FORMAT})"
            )
        saved_as = str(arrays.pop("meta.model", name))  # absent from folders saved before it was written
        if saved_as != name:
            raise ClarecError(f"{path}: model.json names {name!r}, but its arrays are a {saved_as!r} model's")
        try:
            model_cls = get_model_class(name)
        except ClarecError as e:
            raise ClarecError(
                f"{path}: {e} (a model written outside clarec loads once its plugin is named: "
                "CLAREC_PLUGINS or a clarec.models entry point)"
            ) from None
        if cls is not Recommender and not issubclass(model_cls, cls):
            raise ClarecError(f"{path}: holds a {name!r} model, not a {cls.__qualname__}")
        if seen.shape != (n_users, n_items):
            raise ClarecError(
                f"{path}: model.json says {n_users} users and {n_items} items, its arrays hold "
                f"{seen.shape[0]} and {seen.shape[1]}"
            )
        unknown = sorted(set(params) - set(model_cls.param_names()))
        if unknown:
            raise ClarecError(
                f"{path}: saved with {name!r} parameter(s) {unknown} that this clarec does not have "
                f"(renamed or removed since); refit the model (its parameters: {model_cls.param_names()})"
            )
        model = model_cls(**params)
        model.n_users, model.n_items, model.seen = n_users, n_items, seen
        state: dict = {k[len("state.") :]: v for k, v in arrays.items() if k.startswith("state.")}
        try:
            for key in {k[len("sparse.") :].rsplit(".", 1)[0] for k in arrays if k.startswith("sparse.")}:
                state[key] = _sparse_from_arrays(f"sparse.{key}", arrays)
            model._set_state(state)
            model._load_files(path)
        except ClarecError:
            raise
        except Exception as e:  # an array missing or of another shape, a damaged file beside them
            raise ClarecError(
                f"{path}: the saved {name!r} model cannot be restored ({type(e).__name__}: {e}); "
                "save it again from a fitted model"
            ) from None
        return model


def checked_scores(model: Recommender, scores, rows: int) -> np.ndarray:
    """``scores`` as an array, refused in one error unless it has one row per user asked for and one
    column per item, and no NaN (a model of one's own may get either wrong)."""
    s = np.asarray(scores)
    if s.shape != (rows, model.n_items):
        raise ClarecError(
            f"model {model.name!r} scored {rows} user(s) {model.n_items} items as an array of shape "
            f"{s.shape}; expected {(rows, model.n_items)}"
        )
    if np.isnan(s).any():
        raise ClarecError(f"model {model.name!r} returned NaN scores")
    return s


def _unit(vectors: np.ndarray) -> np.ndarray:
    """Rows of ``vectors`` (rounded to float32, as models store them) scaled to unit length, in float64."""
    v = np.asarray(vectors, dtype=np.float32).astype(np.float64)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


#: in an encoder folder written by ``clarec pretrain``: the hashes of the pairs it was adapted on
#: (:meth:`Dataset.pair_hashes` of its split's training part)
ADAPTED_PAIRS = "adapted_pairs.npy"


def check_settings(model: str, params: dict[str, Any], split) -> None:
    """See :meth:`Recommender.check_split` (``params``: a model's settings; ``model`` names it in errors)."""
    train = split.train

    def missing_columns(table: pd.DataFrame, names: Any, what: str) -> None:
        if names is None:
            return
        names = [names] if isinstance(names, str) else list(names)
        missing = [str(n) for n in names if n not in table.columns]
        if missing:
            have = [str(c) for c in table.columns if c not in ("item_id", "user_id")]
            raise ConfigError(f"{model}: {what} table has no column(s) {missing}; it has {have}")

    missing_columns(train.items, params.get("fields"), "item")
    missing_columns(train.items, params.get("attributes"), "item")
    if params.get("user_text"):
        missing_columns(train.users, params.get("user_fields"), "user")
    encoder = params.get("encoder")
    if isinstance(encoder, str):
        # a hub id is "name" or "org/name" (not checked offline); anything else is a folder
        path_like = encoder.startswith((".", "/", "~")) or encoder.count("/") > 1 or "\\" in encoder
        if path_like and not Path(encoder).expanduser().is_dir():
            raise ConfigError(f"{model}: text model folder not found: {encoder}")
    # an encoder adapted by `clarec pretrain` on pairs this split holds out as validation or test:
    # its figures would count what it learned of them
    pairs = Path(encoder).expanduser() / ADAPTED_PAIRS if isinstance(encoder, str) else None
    if pairs is None or not pairs.is_file():
        return
    learned = np.load(pairs)
    held = np.setdiff1d(  # a pair also in training (a repeat) is no leak
        np.concatenate([split.valid.pair_hashes(), split.test.pair_hashes()]), split.train.pair_hashes()
    )
    shared = int(np.isin(held, learned).sum())
    if shared:
        raise ConfigError(
            f"{model}: the encoder {encoder} was adapted (clarec pretrain) on {shared} of this split's "
            f"{len(held)} validation and test pairs, so its figures would count what it learned of them: "
            "adapt one on this split's training part (clarec pretrain with this config's data and split)"
        )


def _sparse_to_arrays(prefix: str, m: sp.spmatrix) -> dict[str, np.ndarray]:
    m = sp.csr_matrix(m)
    return {
        f"{prefix}.data": m.data,
        f"{prefix}.indices": m.indices,
        f"{prefix}.indptr": m.indptr,
        f"{prefix}.shape": np.asarray(m.shape, dtype=np.int64),
    }


def _sparse_from_arrays(prefix: str, arrays: dict[str, np.ndarray]) -> sp.csr_matrix:
    shape = tuple(int(x) for x in arrays[f"{prefix}.shape"])
    return sp.csr_matrix(
        (arrays[f"{prefix}.data"], arrays[f"{prefix}.indices"], arrays[f"{prefix}.indptr"]), shape=shape
    )


def _json_default(o):
    if dataclasses.is_dataclass(o) and not isinstance(o, type):  # typed settings such as ``align``
        return dataclasses.asdict(o)
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"parameter of type {type(o).__name__} is not JSON-serialisable")


def _as_indices(values, what: str) -> np.ndarray:
    """``values`` (at least 1-d) as int64 indices: integers, or floats holding whole numbers; anything
    else (1.5, "3", True) is refused rather than cast."""
    arr = np.atleast_1d(np.asarray(values))
    flat = arr.ravel()
    if arr.dtype.kind in "iu" or not flat.size:
        return arr.astype(np.int64)
    whole = (
        np.isfinite(flat) & (flat == np.round(flat)) if arr.dtype.kind == "f" else np.zeros(flat.size, bool)
    )
    if whole.all():
        return arr.astype(np.int64)
    raise ClarecError(f"{what} indices must be whole numbers, got {flat[~whole][0].item()!r}")
