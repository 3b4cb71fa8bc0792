"""The serving logic behind the HTTP API: a fitted model, live histories, new items, the index.

:class:`RecService` loads a run folder (``split/`` for the id maps, the item table and the training
histories; ``models/<label>/`` for the model), opens the event store, and replays what the store
holds (added items, then events), so a restarted server answers as the one that was stopped.

Which path serves a user (reported in every answer):

- ``model``: a training user without new events — the model's own scores for that user;
- ``history``: a user with new events (or a new user with events) — the model scores the updated
  history without retraining (:meth:`Recommender.score_histories`; ``history_mode`` says whether
  that is the same computation, a fold-in, or history-independent);
- ``profile``: a user without history but with a profile (``PUT /v1/users/{id}/profile``), for a
  model that scores text (:meth:`Recommender.score_texts`: ``lm-content``, ``tfidf``, ``two-tower``
  trained with ``user_text``);
- ``popularity``: a user the server knows nothing about — the most popular items, counting the
  live events.

Why one file of this length: the serving paths, live events, added items and caches are one state
machine under one lock; it splits when a second serving mode arrives.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from clarec.data.split import load_predefined_split
from clarec.errors import ClarecError, UnknownIdError
from clarec.models.base import Recommender, checked_scores
from clarec.ranking import top_k, top_k_inner_product
from clarec.serve.explain import explain, item_attributes
from clarec.serve.index import EXACT_LIMIT, ItemIndex, hnsw_recall
from clarec.serve.store import Event, EventStore, default_url
from clarec.text.templates import user_text

log = logging.getLogger("clarec.serve")

#: Item vectors wider than this are not indexed (e.g. TF-IDF vocabularies): similar items then come
#: from the model's own item similarity.
MAX_INDEX_DIM = 4096
#: Candidates re-ranked by maximal marginal relevance, per requested item.
MMR_POOL_FACTOR = 5
#: Ranked lists (item indices and scores per user and query) kept for users whose state has not
#: changed since; least recently used dropped first.
RANKING_CACHE_SIZE = 50_000


class ConflictError(ClarecError):
    """The request conflicts with the stored state (e.g. an item id that already exists)."""


class UnsupportedError(ClarecError):
    """The served model cannot do what was asked (e.g. add items)."""


@dataclass
class Recommendations:
    user_id: str
    path: str
    items: list[dict[str, Any]]


def choose_model(run_dir: Path, label: str | None) -> str:
    """``label`` if given (must exist), else the best model of ``results.json`` by the run's main
    metric on validation (test figures choose nothing), else the only / first saved model."""
    models_dir = run_dir / "models"
    saved = (
        sorted(p.name for p in models_dir.iterdir() if (p / "model.json").is_file())
        if models_dir.is_dir()
        else []
    )
    if not saved:
        raise ClarecError(f"{run_dir}: no saved models under models/ (is it a clarec run folder?)")
    if label is not None:
        if label not in saved:
            raise ClarecError(f"{run_dir}: no model {label!r}; saved models: {saved}")
        return label
    results_path = run_dir / "results.json"
    if results_path.is_file():
        try:
            results = json.loads(results_path.read_text())
            metric = _main_metric(run_dir)
            scored = [(r.get("valid", {}).get(metric), name) for name, r in results.items() if name in saved]
            scored = [
                (float(v), name) for v, name in scored if isinstance(v, int | float) and math.isfinite(v)
            ]
            if scored:
                return max(scored)[1]
        except (ValueError, AttributeError):
            pass
    return saved[0]


def _run_config(run_dir: Path) -> dict:
    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    return cfg if isinstance(cfg, dict) else {}


def _main_metric(run_dir: Path) -> str:
    try:
        return str(_run_config(run_dir)["evaluation"]["main_metric"])
    except (KeyError, TypeError):
        return "ndcg@20"


def _json_value(v: Any) -> Any:
    """An item field as a JSON value: ``None`` for a missing one; lists of texts; numbers as numbers."""
    if isinstance(v, list | tuple | np.ndarray | pd.Series):
        values = [str(x) for x in v if x is not None and str(x).strip()]
        return values or None
    if v is None or v is pd.NA or (isinstance(v, float | np.floating) and not np.isfinite(v)):
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bool | int | float):
        return v
    text = str(v)
    return text if text.strip() else None


def _behavior_weights(run_dir: Path) -> dict[str, float] | None:
    """The run's ``data.behavior_weights`` (what each behaviour counted for in training), if any."""
    data = _run_config(run_dir).get("data")
    table = data.get("behavior_weights") if isinstance(data, dict) else None
    return {str(k): float(v) for k, v in table.items()} if isinstance(table, dict) and table else None


def _held_out(split) -> dict[int, np.ndarray]:
    """User index → items of the split's validation and test parts, oldest first."""
    frame = pd.concat([split.valid.interactions, split.test.interactions], ignore_index=True)
    if not len(frame):
        return {}
    frame = frame.sort_values(["user", "timestamp"], kind="stable")
    return {int(u): g.to_numpy(dtype=np.int64) for u, g in frame.groupby("user", sort=False)["item"]}


class RecService:
    """Everything a request needs; thread-safe (one lock around state changes and scoring)."""

    def __init__(
        self,
        run_dir: str | Path,
        db_url: str | None = None,
        model_label: str | None = None,
        build_index: bool = True,
    ):
        t0 = time.perf_counter()
        self.run_dir = Path(run_dir)
        if not self.run_dir.is_dir():
            raise ClarecError(f"{self.run_dir}: run folder not found")
        self.label = choose_model(self.run_dir, model_label)
        self.model = Recommender.load(self.run_dir / "models" / self.label)
        split = load_predefined_split(self.run_dir / "split")
        train = split.train
        if (self.model.n_users, self.model.n_items) != (train.n_users, train.n_items):
            raise ClarecError(
                f"{self.run_dir}: model {self.label!r} has {self.model.n_users} users / {self.model.n_items} items "
                f"but the split has {train.n_users} / {train.n_items}"
            )
        self.lock = threading.RLock()  # the in-memory state: held briefly by readers and writers
        # one write at a time, in the store's order; a write waiting on the store (a locked SQLite
        # file waits up to 30 s) holds this one only, so recommendations go on meanwhile
        self.write_lock = threading.Lock()
        self.user_ids: list[str] = [str(u) for u in train.user_ids]
        self.user_pos = {u: i for i, u in enumerate(self.user_ids)}
        self.item_ids: list[str] = [str(i) for i in train.item_ids]
        self.item_pos = {i: n for n, i in enumerate(self.item_ids)}
        table = train.items
        self.titles: list[str | None] = (
            [None if pd.isna(t) else str(t) for t in table["title"]]
            if "title" in table.columns
            else [None] * len(self.item_ids)
        )
        self.attributes = [item_attributes(row) for row in table.to_dict("records")]
        self.item_table = table  # the catalogue's own fields, shown by item_info
        self.item_fields: list[dict[str, Any]] = [{} for _ in self.item_ids]  # text of added items
        self.n_trained_items = len(self.item_ids)
        self.skipped_items: list[str] = []  # stored items this model cannot add (see _replay)
        self.base_history = train.user_histories()
        # the run's validation and test interactions: no model trained on them, but the user did them,
        # so they are left out of the user's lists (exclude_seen) and shown in their history
        self.held_out = _held_out(split)
        self.events: dict[str, list[int]] = {}  # user id -> items of accepted events, oldest first
        self.event_times: dict[str, list[int]] = {}  # their timestamps, in the same order
        # a model fitted ``weighted`` scores a history with its weights: the training part's from the
        # fitted matrix, each event's from the run's behavior_weights (1 without them)
        self.weighted = bool(getattr(self.model, "weighted", False))
        self.behavior_weights = _behavior_weights(self.run_dir)
        self.event_weights: dict[str, list[float]] = {}  # in the same order as events
        self.profiles: dict[str, str] = {}  # user id -> profile text
        self.seen_sets: dict[str, set[int]] = {}
        self.popularity = np.asarray(self.model.seen.sum(axis=0), dtype=np.float64).ravel()
        self.n_events = 0
        # what a user's ranking depends on: their version (events, profile), the catalogue's version
        # (added items), and for the popularity path every event
        self.user_versions: dict[str, int] = {}
        self.catalogue_version = 0
        self.ranking_cache: OrderedDict[tuple, tuple] = OrderedDict()
        self.ranking_cache_size = RANKING_CACHE_SIZE
        self.cache_hits = self.cache_misses = 0
        self._ip_index: tuple[np.ndarray, Any] | None = None  # (vectors, FAISS index over them)
        self.index: ItemIndex | None = None
        self.index_info: dict[str, Any] = {}
        if build_index:
            self._open_index()
        self.store = EventStore(db_url or default_url(self.run_dir))
        self._replay()
        #: a :class:`~clarec.llm.Generator` for explanations in words (``serve(explain_words=...)``), or None
        self.explainer = None
        self.startup_seconds = time.perf_counter() - t0

    # ------------------------------------------------------------------ start-up
    def _index_vectors(self) -> np.ndarray | None:
        vecs = self.model.item_vectors()
        if vecs is None:
            return None
        vecs = np.asarray(vecs, dtype=np.float32)
        return vecs if vecs.ndim == 2 and vecs.shape[1] <= MAX_INDEX_DIM else None

    def _open_index(self) -> None:
        vecs = self._index_vectors()
        if vecs is None:
            return
        path = self.run_dir / "serve" / f"index-{self.label}.faiss"
        kind = "exact" if len(vecs) <= EXACT_LIMIT else "hnsw"
        digest = hashlib.blake2b(np.ascontiguousarray(vecs).tobytes(), digest_size=16).hexdigest()
        if path.is_file():  # kept from an earlier start when built from these very vectors
            try:
                index, info = ItemIndex.load(path)
                if (
                    info.get("model") == self.label
                    and info.get("size") == len(vecs)
                    and info.get("kind") == kind
                    and info.get("vectors") == digest
                ):
                    self.index, self.index_info = index, info
                    return
            except ClarecError:
                pass
        index = ItemIndex.build(vecs, kind=kind)
        recall = 1.0 if kind == "exact" else hnsw_recall(vecs, k=20, index=index)
        info = {"model": self.label, "vectors": digest, "recall@20": recall}
        index.save(path, info)
        self.index, self.index_info = index, {"kind": kind, "dim": index.dim, "size": index.size, **info}

    def _replay(self) -> None:
        items = [(i, f) for i, f in self.store.items() if i not in self.item_pos]
        if items and not self.model.supports_new_items:
            # added while another model of the run was served: this one cannot take them (their
            # events are ignored like those of any unknown item); the store keeps them
            self.skipped_items = [i for i, _ in items]
        else:
            for item_id, fields in items:  # one at a time, as they were accepted (the same vectors)
                try:
                    self._add_items_in_memory([(item_id, fields)])
                except ClarecError as e:  # accepted by an older clarec, refused by this model now
                    log.warning("stored item %r not added: %s", item_id, e)
                    self.skipped_items.append(item_id)
        for user_id, fields in self.store.profiles().items():
            self.profiles[user_id] = profile_text(fields, getattr(self.model, "user_fields_", None))
        for e in self.store.events():
            if e.item_id in self.item_pos and self._weight(e.behavior) is not None:
                self._apply_event(e)

    # ------------------------------------------------------------------ state
    def history(self, user_id: str) -> np.ndarray:
        """The user's items, oldest first: training history, then accepted events in the order of
        their timestamps (arrival order among equal timestamps)."""
        u = self.user_pos.get(user_id)
        base = self.base_history[u] if u is not None else np.empty(0, dtype=np.int64)
        new = self.events.get(user_id)
        if not new:
            return np.asarray(base, dtype=np.int64)
        return np.concatenate([np.asarray(base, dtype=np.int64), np.asarray(new, dtype=np.int64)])

    def _weight(self, behavior: str) -> float | None:
        """What an event of ``behavior`` counts for (as in training); None for a behaviour the run's
        ``behavior_weights`` leave out (training dropped those)."""
        if self.behavior_weights is None:
            return 1.0
        return self.behavior_weights.get(behavior)

    def _apply_event(self, e: Event) -> None:
        i = self.item_pos[e.item_id]
        w = self._weight(e.behavior)
        seen = self.seen_sets.get(e.user_id)
        if seen is None:
            u = self.user_pos.get(e.user_id)
            seen = set(self.base_history[u].tolist()) if u is not None else set()
            self.seen_sets[e.user_id] = seen
        if self.weighted:  # popularity as a weighted model counts it: the sum of the weights
            self.popularity[i] += w
        elif i not in seen:
            self.popularity[i] += 1.0
        seen.add(i)
        # an event that arrives late (an older timestamp) takes its place among the user's events
        times = self.event_times.setdefault(e.user_id, [])
        at = bisect.bisect_right(times, e.timestamp)
        times.insert(at, e.timestamp)
        self.events.setdefault(e.user_id, []).insert(at, i)
        self.event_weights.setdefault(e.user_id, []).insert(at, w)
        self.n_events += 1
        self.user_versions[e.user_id] = self.user_versions.get(e.user_id, 0) + 1

    def _add_items_in_memory(self, rows: list[tuple[str, dict[str, Any]]]) -> np.ndarray:
        frame = pd.DataFrame([{"item_id": item_id, **fields} for item_id, fields in rows])
        new = self.model.add_items(frame)
        for (item_id, fields), idx in zip(rows, new, strict=True):
            if int(idx) != len(self.item_ids):
                raise ClarecError(f"model gave index {idx} to a new item, expected {len(self.item_ids)}")
            self.item_pos[item_id] = len(self.item_ids)
            self.item_ids.append(item_id)
            title = fields.get("title")
            self.titles.append(None if title is None else str(title))
            self.attributes.append(item_attributes(fields))
            self.item_fields.append(dict(fields))
        self.popularity = np.concatenate([self.popularity, np.zeros(len(rows))])
        self.catalogue_version += 1
        if self.index is not None:
            vecs = np.asarray(self.model.item_vectors(), dtype=np.float32)
            self.index.add(vecs[np.asarray(new, dtype=np.int64)])
        return new

    # ------------------------------------------------------------------ requests
    def item_index(self, item_id: str) -> int:
        i = self.item_pos.get(item_id)
        if i is None:
            raise UnknownIdError(f"unknown item id {item_id!r}")
        return i

    def add_events(self, events: list[Event]) -> int:
        """Validate, store durably, then apply: the user's next recommendations reflect them."""
        with self.write_lock:  # only writers change what is checked here, so it holds until applied
            with self.lock:
                for e in events:
                    self.item_index(e.item_id)
                    if self._weight(e.behavior) is None:
                        raise ClarecError(
                            f"behavior {e.behavior!r} is not one the model was trained on: the run's "
                            f"behavior_weights name {sorted(self.behavior_weights or {})}"
                        )
            n = self.store.add_events(events)
            with self.lock:
                for e in events:
                    self._apply_event(e)
        return n

    def add_item(self, item_id: str, fields: dict[str, Any]) -> int:
        """Add an item from its text: scored, recommendable and searchable at once; stored durably."""
        if not self.model.supports_new_items:
            raise UnsupportedError(
                f"model {self.label!r} ({self.model.name}) cannot add items without retraining"
            )
        with self.write_lock:
            if item_id in self.item_pos:
                raise ConflictError(f"item id {item_id!r} already exists")

            def add_in_memory() -> np.ndarray:
                with self.lock:
                    return self._add_items_in_memory([(item_id, fields)])

            # written, then added to the model, then committed: a store that refuses the row (locked,
            # read-only, another server's item) leaves the model as it was, and a model that refuses
            # the item leaves nothing stored
            (idx,) = self.store.add_item(item_id, fields, then=add_in_memory)
        return int(idx)

    def set_profile(self, user_id: str, fields: dict[str, Any]) -> str:
        """Store a user's profile durably; users without history are then served from its text."""
        read = getattr(self.model, "user_fields_", None)
        text = profile_text(fields, read)
        if not text:
            raise ClarecError(
                "the profile has no text" + (f" in the fields the model reads {read}" if read else "")
            )
        with self.write_lock:
            self.store.set_profile(user_id, fields)
            with self.lock:
                self.profiles[user_id] = text
                self.user_versions[user_id] = self.user_versions.get(user_id, 0) + 1
        return text

    def _path(self, user_id: str, hist: np.ndarray) -> str:
        u = self.user_pos.get(user_id)
        if u is not None and not self.events.get(user_id):
            return "model"
        if len(hist) and self.model.supports_histories:
            return "history"
        if u is not None:
            return "model"
        if self.profiles.get(user_id) and self.model.supports_texts:
            return "profile"
        return "popularity"

    def _scores(self, user_id: str, hist: np.ndarray, path: str) -> np.ndarray:
        if path == "model":
            scores = self.model.score([self.user_pos[user_id]])
        elif path == "history" and self.weighted:
            items, weights = self._weighted_history(user_id)
            scores = self.model.score_histories([items], weights=[weights])
        elif path == "history":
            scores = self.model.score_histories([hist])
        elif path == "profile":
            scores = self.model.score_texts([self.profiles[user_id]])
        else:
            return self.popularity.copy()
        return np.asarray(checked_scores(self.model, scores, 1)[0], dtype=np.float64)

    def _weighted_history(self, user_id: str) -> tuple[np.ndarray, np.ndarray]:
        """A weighted model's history: the training items with their summed weights, then the events
        with what each counts for."""
        u = self.user_pos.get(user_id)
        row = self.model.seen[u] if u is not None else None
        base_items = row.indices if row is not None else np.empty(0, dtype=np.int64)
        base_weights = row.data if row is not None else np.empty(0)
        items = np.concatenate([base_items, np.asarray(self.events.get(user_id, []), dtype=np.int64)])
        return items, np.concatenate([base_weights, np.asarray(self.event_weights.get(user_id, []))])

    def _seen(self, user_id: str, hist: np.ndarray) -> np.ndarray:
        """What ``exclude_seen`` leaves out: the history and the user's held-out interactions."""
        u = self.user_pos.get(user_id)
        held = self.held_out.get(u) if u is not None else None
        return hist if held is None else np.concatenate([hist, held])

    def _inner_product_top(
        self, user_id: str, hist: np.ndarray, path: str, k: int, exclude: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The top ``k`` of an inner-product model without its float64 scores of every item
        (:func:`top_k_inner_product`: the same items and scores); ``None`` where that does not apply."""
        if path not in ("model", "history"):
            return None
        items = self.model.query_items()
        if items is None:
            return None
        if path == "model":
            q = self.model.user_queries([self.user_pos[user_id]])
        else:
            q = self.model.history_queries([hist])
        if q is None:
            return None
        vectors, vectors_t64, max_norm = items
        return top_k_inner_product(
            q[0],
            vectors,
            vectors_t64,
            k,
            exclude if len(exclude) else None,
            max_norm,
            search=self._inner_product_search(vectors),
        )

    def _inner_product_search(self, vectors: np.ndarray):
        """``search(query, n)`` over ``vectors`` (FAISS ``IndexFlatIP``, rebuilt when they change):
        the float32 ranking behind :func:`top_k_inner_product`, about twice as fast as numpy's."""
        try:
            import faiss
        except ImportError:  # pragma: no cover - a declared dependency
            return None
        if self._ip_index is None or self._ip_index[0] is not vectors:
            index = faiss.IndexFlatIP(vectors.shape[1])
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
            self._ip_index = (vectors, index)
        index = self._ip_index[1]

        def search(query: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
            _one_openmp_thread()
            values, ids = index.search(np.ascontiguousarray(query, dtype=np.float32)[None, :], int(n))
            return ids[0], values[0]

        return search

    def recommend(
        self,
        user_id: str,
        k: int = 20,
        exclude_seen: bool = True,
        diversity: float = 0.0,
        words: bool = False,
    ) -> Recommendations:
        """The user's top ``k`` with their explanations; ``words`` adds a sentence per item from the
        service's :attr:`explainer` (written outside the lock: other requests are not held up)."""
        if words and self.explainer is None:
            raise UnsupportedError(
                "explanations in words need a generative model: start the server with --explain-words"
            )
        recs = self._recommend(user_id, k, exclude_seen, diversity)
        if words:
            from clarec.llm.explain import explain_in_words

            for item, (sentence, source) in zip(
                recs.items, explain_in_words(self.explainer, recs.items, recs.path), strict=True
            ):
                item["explanation"] = item["explanation"] | {"sentence": sentence, "sentence_source": source}
        return recs

    def _recommend(self, user_id: str, k: int, exclude_seen: bool, diversity: float) -> Recommendations:
        with self.lock:
            hist = self.history(user_id)
            ids, values, path = self._ranking(user_id, hist, k, exclude_seen, diversity)
            if path == "popularity":
                reasons = [{"because": [], "shared": {}} for _ in ids]
            else:  # weighted and windowed item-item models: each history item's part of the score
                items, weights = self._weighted_history(user_id) if self.weighted else (hist, None)
                inputs = self.model.history_input(items, weights) if len(items) else None
                reasons = explain(
                    self.model, hist, ids, self.item_ids, self.attributes, self.titles, inputs=inputs
                )
            items = [
                {
                    "item_id": self.item_ids[j],
                    "title": self.titles[j],
                    "score": v,
                    "explanation": reason,
                }
                for j, v, reason in zip(ids.tolist(), values.tolist(), reasons, strict=True)
            ]
        return Recommendations(user_id, path, items)

    def _ranking(
        self, user_id: str, hist: np.ndarray, k: int, exclude_seen: bool, diversity: float
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """Item indices, their scores and the path for one query; kept in :attr:`ranking_cache` until
        the user's next event or profile, an added item, or (popularity path) anyone's next event."""
        key = (user_id, int(k), bool(exclude_seen), float(diversity))
        stamp = (self.catalogue_version, self.user_versions.get(user_id, 0))
        hit = self.ranking_cache.get(key)
        if hit is not None and hit[0] == stamp and (hit[3] != "popularity" or hit[4] == self.n_events):
            self.ranking_cache.move_to_end(key)
            self.cache_hits += 1
            return hit[1], hit[2], hit[3]
        self.cache_misses += 1
        path = self._path(user_id, hist)
        exclude = self._seen(user_id, hist) if exclude_seen else np.empty(0, dtype=np.int64)
        fast = None if diversity > 0 else self._inner_product_top(user_id, hist, path, k, exclude)
        if fast is not None:
            ids, values = np.asarray(fast[0], dtype=np.int64), np.asarray(fast[1], dtype=np.float64)
        else:
            scores = self._scores(user_id, hist, path)
            scores[exclude] = -np.inf
            if diversity > 0:
                ids = self._mmr(scores, k, diversity)
            else:
                i, v = top_k(scores[None, :], k)
                ids = i[0][np.isfinite(v[0])]
            ids = np.asarray(ids, dtype=np.int64)
            values = np.asarray(scores[ids], dtype=np.float64)
        if self.ranking_cache_size > 0:
            self.ranking_cache[key] = (stamp, ids, values, path, self.n_events)
            self.ranking_cache.move_to_end(key)
            while len(self.ranking_cache) > self.ranking_cache_size:
                self.ranking_cache.popitem(last=False)
        return ids, values, path

    def _similarity_among(self, cand: np.ndarray) -> np.ndarray:
        """Item-item similarity among candidates in [-1, 1], for the diversity re-ranking."""
        if self.index is not None:
            v = np.stack([self.index.vector(int(i)) for i in cand])
            return v @ v.T
        if self.model.history_mode != "constant":
            try:
                s = np.asarray(self.model.item_similarity(cand)[:, cand], dtype=np.float64)
                s = (s + s.T) / 2
                top = np.abs(s).max()
                return s / top if top > 0 else s
            except NotImplementedError:
                pass
        # attributes' Jaccard overlap
        sets = [
            set().union(*self.attributes[int(i)].values()) if self.attributes[int(i)] else set() for i in cand
        ]
        return np.array([[len(a & b) / max(1, len(a | b)) for b in sets] for a in sets])

    def _mmr(self, scores: np.ndarray, k: int, diversity: float) -> np.ndarray:
        """Maximal marginal relevance: greedily pick ``argmax (1-d)·rel - d·max_sim_to_picked``."""
        pool, v = top_k(scores[None, :], max(k * MMR_POOL_FACTOR, 50))
        cand = pool[0][np.isfinite(v[0])]
        if len(cand) == 0:
            return cand
        rel = scores[cand]
        span = rel.max() - rel.min()
        rel = (rel - rel.min()) / span if span > 0 else np.ones_like(rel)
        sim = self._similarity_among(cand)
        lam = 1.0 - float(diversity)
        picked: list[int] = []
        max_sim = np.zeros(len(cand))
        free = np.ones(len(cand), dtype=bool)
        for _ in range(min(k, len(cand))):
            value = lam * rel - (1 - lam) * max_sim if picked else rel.copy()
            value[~free] = -np.inf
            j = int(np.argmax(value))
            picked.append(j)
            free[j] = False
            max_sim = np.maximum(max_sim, sim[j])
        return cand[picked]

    def similar(self, item_id: str, k: int = 20) -> list[dict[str, Any]]:
        with self.lock:
            i = self.item_index(item_id)
            if self.index is not None:
                _one_openmp_thread()  # one query (see _inner_product_search)
                ids, vals = self.index.search(self.index.vector(i)[None, :], k + 1)
                # as the model's own: no similarity is no evidence (a zero vector: an item added
                # without text), and ties go to the lower index
                pairs = sorted(
                    (
                        (int(j), float(s))
                        for j, s in zip(ids[0], vals[0], strict=True)
                        if j >= 0 and j != i and s > 0
                    ),
                    key=lambda p: (-p[1], p[0]),
                )[:k]
            else:
                ids, vals = self.model.similar_items([i], k=k)
                # no evidence (e.g. an item added after training) is no similarity
                pairs = [(int(j), float(s)) for j, s in zip(ids[0], vals[0], strict=True) if j >= 0 and s > 0]
            return [{"item_id": self.item_ids[j], "title": self.titles[j], "similarity": s} for j, s in pairs]

    def item_info(self, item_id: str) -> dict[str, Any]:
        with self.lock:  # an item being added is in item_pos before its title and popularity
            i = self.item_index(item_id)
            if i < self.n_trained_items:
                row = self.item_table.iloc[i].to_dict()
            else:
                row = self.item_fields[i]
            # every field the item has (a description, or a field posted that no model reads), as
            # JSON values; item_id and title are given above
            fields = {
                str(f): v
                for f, v in ((f, _json_value(v)) for f, v in row.items() if f not in ("item_id", "title"))
                if v is not None
            }
            return {
                "item_id": item_id,
                "title": self.titles[i],
                "attributes": {f: sorted(v) for f, v in self.attributes[i].items()},
                "fields": fields,
                "added": i >= self.n_trained_items,
                "popularity": int(self.popularity[i]),
            }

    def search_items(self, q: str, limit: int = 20) -> list[dict[str, Any]]:
        q = q.strip().lower()
        out = []
        with self.lock:
            for i in range(len(self.item_ids) - 1, -1, -1):  # newest first
                title = self.titles[i] or ""
                if not q or q in title.lower() or q in self.item_ids[i].lower():
                    out.append({"item_id": self.item_ids[i], "title": self.titles[i]})
                    if len(out) >= limit:
                        break
        return out

    def list_users(self, limit: int = 50, offset: int = 0) -> list[str]:
        with self.lock:
            extra = [u for u in self.events if u not in self.user_pos]
            return (self.user_ids + extra)[offset : offset + limit]

    def history_items(self, user_id: str, limit: int = 50) -> list[dict[str, Any]]:
        with self.lock:
            u = self.user_pos.get(user_id)
            base = self.base_history[u].tolist() if u is not None else []
            held = self.held_out[u].tolist() if u in self.held_out else []
            sources = [("train", base), ("held out", held), ("event", self.events.get(user_id, []))]
            rows = [
                {"item_id": self.item_ids[j], "title": self.titles[j], "source": source}
                for source, items in sources
                for j in items
            ]
        return rows[::-1][:limit]  # most recent first

    def health(self) -> dict[str, Any]:
        with self.lock:  # one moment's figures (an item being added is in the catalogue and the index)
            return self._health()

    def _health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "model": self.label,
            "model_name": self.model.name,
            "history_mode": self.model.history_mode if self.model.supports_histories else None,
            "new_items_from_text": bool(self.model.new_items_from_text),
            "profiles_from_text": bool(self.model.supports_texts),
            "users": len(self.user_ids),
            "items": len(self.item_ids),
            "added_items": len(self.item_ids) - self.n_trained_items,
            "skipped_items": len(self.skipped_items),
            "events": self.n_events,
            "store": self.store.dialect,
            "index": None if self.index is None else {**self.index_info, "size": self.index.size},
            "ranking_cache": {
                "entries": len(self.ranking_cache),
                "hits": self.cache_hits,
                "misses": self.cache_misses,
            },
        }

    def close(self) -> None:
        self.store.close()


def _one_openmp_thread() -> None:
    """Search with one OpenMP thread in the calling thread (the setting is per thread: a request's
    worker thread has the default). For one query FAISS splits the catalogue over an OpenMP team,
    whose threads wait for each other on a busy machine: 20 ms instead of 0.5 ms for a flat search
    of 12,101 vectors on 2 shared cores."""
    try:
        import faiss
    except ImportError:  # pragma: no cover - a declared dependency
        return
    faiss.omp_set_num_threads(1)


def profile_text(fields: dict[str, Any], read: Sequence[str] | None = None) -> str:
    """A profile as one text ("Age: 24. Occupation: engineer. Likes: space operas.") by the same
    template as the language-model user texts; a lone ``text`` field is taken as it is. With
    ``read``, the profile fields a model was trained on (``user_fields_``), only those, in that
    order, as its training profiles were rendered."""
    fields = {k: v for k, v in fields.items() if v not in (None, "", [])}
    if set(fields) == {"text"}:
        return str(fields["text"]).strip()
    if read is not None:
        fields = {k: fields[k] for k in read if k in fields}
    if not fields:
        return ""
    return user_text(pd.DataFrame([fields]), [np.empty(0, dtype=np.int64)], [], n_recent=0)[0]
