"""Nearest-neighbour index over item vectors (FAISS, inner product on unit vectors = cosine).

Exact search (``IndexFlatIP``) up to :data:`EXACT_LIMIT` items — a brute-force scan of 100k 384-d
vectors is a few milliseconds — and HNSW above it, whose recall@20 against exact search
:func:`hnsw_recall` measures. New items are added at once; the index is saved with the run
(``RUN_DIR/serve/index-<model>.faiss`` + ``.json``) and reloaded when it still matches the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from clarec.errors import ClarecError

#: Largest catalogue searched exactly; above it the index is HNSW.
EXACT_LIMIT = 100_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 128


def _faiss():
    try:
        import faiss
    except ImportError:  # pragma: no cover - a declared dependency
        raise ClarecError("the server needs faiss-cpu: pip install faiss-cpu") from None
    return faiss


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    return np.ascontiguousarray(
        v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12), dtype=np.float32
    )


class ItemIndex:
    """Cosine search over item vectors; row ``i`` of the index is item index ``i``."""

    def __init__(self, dim: int, kind: str = "exact"):
        if kind not in ("exact", "hnsw"):
            raise ClarecError(f"index kind must be 'exact' or 'hnsw', got {kind!r}")
        faiss = _faiss()
        self.dim, self.kind = int(dim), kind
        if kind == "exact":
            self.index = faiss.IndexFlatIP(self.dim)
        else:
            self.index = faiss.IndexHNSWFlat(self.dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            self.index.hnsw.efSearch = HNSW_EF_SEARCH

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str | None = None) -> ItemIndex:
        """An index of ``vectors`` (normalised here); ``kind=None`` picks exact or HNSW by size."""
        vectors = np.asarray(vectors)
        if kind is None:
            kind = "exact" if len(vectors) <= EXACT_LIMIT else "hnsw"
        index = cls(vectors.shape[1], kind)
        index.add(vectors)
        return index

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def add(self, vectors: np.ndarray) -> None:
        """Append vectors (the next item indices); searchable at once."""
        v = unit_rows(np.asarray(vectors).reshape(-1, self.dim))
        if len(v):
            self.index.add(v)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item indices and cosines per query (``k`` cut to the index's size; ``-1`` where an
        approximate search finds fewer)."""
        q = unit_rows(np.asarray(queries).reshape(-1, self.dim))
        k = max(1, min(int(k), self.size))
        scores, ids = self.index.search(q, k)
        return ids.astype(np.int64), scores

    def vector(self, i: int) -> np.ndarray:
        return self.index.reconstruct(int(i))

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, meta: dict | None = None) -> Path:
        """Write ``path`` (FAISS) and ``path.json`` (kind, size, caller's ``meta``)."""
        faiss = _faiss()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(path))
        info = {"kind": self.kind, "dim": self.dim, "size": self.size, **(meta or {})}
        Path(f"{path}.json").write_text(json.dumps(info, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> tuple[ItemIndex, dict]:
        faiss = _faiss()
        path = Path(path)
        try:
            info = json.loads(Path(f"{path}.json").read_text())
            raw = faiss.read_index(str(path))
        except (OSError, ValueError, RuntimeError) as e:
            raise ClarecError(f"{path}: not a readable index ({e})") from None
        index = cls.__new__(cls)
        index.dim, index.kind, index.index = int(info["dim"]), info["kind"], raw
        if index.kind == "hnsw":
            raw.hnsw.efSearch = HNSW_EF_SEARCH
        return index, info


def hnsw_recall(
    vectors: np.ndarray, k: int = 20, n_queries: int = 1000, seed: int = 0, index: ItemIndex | None = None
) -> float:
    """Recall@``k`` of an HNSW index against exact search, with item vectors as queries.

    ``index`` is the HNSW index to measure (built from ``vectors`` when ``None``); the answer is the
    share of the exact top ``k`` that HNSW returns, averaged over ``n_queries`` sampled items.
    """
    vectors = unit_rows(vectors)
    rng = np.random.default_rng(seed)
    queries = vectors[rng.choice(len(vectors), size=min(n_queries, len(vectors)), replace=False)]
    exact = ItemIndex.build(vectors, kind="exact")
    approx = index if index is not None else ItemIndex.build(vectors, kind="hnsw")
    truth, _ = exact.search(queries, k)
    got, _ = approx.search(queries, k)
    hits = [
        len(set(t[t >= 0]) & set(g[g >= 0])) / max(1, (t >= 0).sum()) for t, g in zip(truth, got, strict=True)
    ]
    return float(np.mean(hits))
