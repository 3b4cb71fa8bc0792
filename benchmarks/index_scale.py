"""The serving index at catalogue scale: exact search vs the HNSW index the server switches to past
``clarec.serve.index.EXACT_LIMIT`` items, on a synthetic catalogue of a million item vectors.

The vectors are not from a trained model (no catalogue of that size is on this machine): unit vectors
drawn around cluster centres whose sizes follow a power law (a few large genres, a long tail of small
ones), the shape embedding catalogues have; uniform random vectors, with no structure at all, are the
hard case for any graph index and are measured with ``--uniform``. Two kinds of queries: an item's
own vector (the server's similar-items search) and user-like vectors (the normalised mean of 10
items drawn with a popularity skew). Per index: build seconds, memory per item (the serialised index
divided by the item count), recall@20 against exact search and one-query latency (one thread, as a
request is served: p50 / p99 over the timed queries).

    python benchmarks/index_scale.py --items 1000000 --dim 64 [--uniform]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _machine import REPO, command_line, machine_line

from clarec.serve.index import EXACT_LIMIT, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M, ItemIndex, unit_rows


def catalogue(n: int, dim: int, uniform: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors and their clusters: clustered with power-law cluster sizes, or uniform on the
    sphere (every item its own cluster)."""
    rng = np.random.default_rng(seed)
    if uniform:
        return unit_rows(rng.standard_normal((n, dim), dtype=np.float32)), np.arange(n)
    n_clusters = max(1, n // 1000)
    weights = 1.0 / np.arange(1, n_clusters + 1) ** 0.8
    cluster = rng.choice(n_clusters, size=n, p=weights / weights.sum())
    centres = unit_rows(rng.standard_normal((n_clusters, dim), dtype=np.float32))
    spread = rng.uniform(0.3, 0.8, size=n_clusters).astype(np.float32)  # tight and loose genres
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 200_000):
        rows = slice(start, min(n, start + 200_000))
        c = cluster[rows]
        noise = rng.standard_normal((len(c), dim), dtype=np.float32) / np.sqrt(dim)
        out[rows] = centres[c] + spread[c, None] * noise * 2.0
    return unit_rows(out), cluster


def queries(vectors: np.ndarray, cluster: np.ndarray, n: int, seed: int) -> dict[str, np.ndarray]:
    """Item vectors, and user-like vectors: the mean of 10 items, 6 from the clusters of two items
    the user picked (their tastes) and 4 from anywhere."""
    rng = np.random.default_rng(seed + 1)
    items = vectors[rng.choice(len(vectors), size=n, replace=False)]
    order = np.argsort(cluster, kind="stable")
    bounds = np.searchsorted(cluster[order], np.arange(cluster.max() + 2))
    users = np.empty((n, vectors.shape[1]), dtype=np.float32)
    for q in range(n):
        taste = cluster[rng.integers(0, len(vectors), size=2)]
        picks = [order[rng.integers(bounds[c], bounds[c + 1], size=3)] for c in taste]
        picks.append(rng.integers(0, len(vectors), size=4))
        users[q] = vectors[np.concatenate(picks)].mean(axis=0)
    return {"item vectors (similar items)": items, "user-like vectors (mean of 10 items)": unit_rows(users)}


def latency_ms(index: ItemIndex, q: np.ndarray, k: int) -> tuple[float, float]:
    times = []
    for row in q:
        start = time.perf_counter()
        index.search(row[None, :], k)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def recall(truth: np.ndarray, got: np.ndarray) -> float:
    return float(np.mean([len(set(t) & set(g)) / len(t) for t, g in zip(truth, got, strict=True)]))


def index_bytes(index: ItemIndex) -> int:
    with tempfile.TemporaryDirectory() as folder:
        path = index.save(Path(folder) / "index.faiss")
        return path.stat().st_size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--uniform", action="store_true", help="uniform random vectors (no structure)")
    parser.add_argument("--build-threads", type=int, default=0, help="FAISS threads for building (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--ef", type=int, nargs="+", default=[HNSW_EF_SEARCH], help="HNSW efSearch values to measure"
    )
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    import faiss

    kind = "uniform" if args.uniform else "clustered"
    output = args.output or REPO / "benchmarks" / "results" / f"index-scale-{kind}.md"
    t0 = time.perf_counter()
    vectors, cluster = catalogue(args.items, args.dim, args.uniform, args.seed)
    print(f"{args.items} {kind} vectors in {time.perf_counter() - t0:.1f}s", flush=True)
    qs = queries(vectors, cluster, args.queries, args.seed)

    if args.build_threads:
        faiss.omp_set_num_threads(args.build_threads)
    built = {}
    for name in ("exact", "hnsw"):
        start = time.perf_counter()
        built[name] = ItemIndex.build(vectors, kind=name)
        seconds = time.perf_counter() - start
        built[name].build_seconds = seconds
        print(f"{name}: built in {seconds:.1f}s", flush=True)
    faiss.omp_set_num_threads(1)  # a request is served on one thread

    rows = []
    for qname, q in qs.items():
        truth, _ = built["exact"].search(q, args.k)
        exact_ms = latency_ms(built["exact"], q, args.k)
        for ef in args.ef:
            built["hnsw"].index.hnsw.efSearch = ef
            got, _ = built["hnsw"].search(q, args.k)
            r, hnsw_ms = recall(truth, got), latency_ms(built["hnsw"], q, args.k)
            rows.append((qname, ef, r, exact_ms, hnsw_ms))
            print(f"{qname}, efSearch {ef}: recall@{args.k} {r:.4f}, ms {exact_ms} / {hnsw_ms}", flush=True)
    built["hnsw"].index.hnsw.efSearch = HNSW_EF_SEARCH
    size = {name: index_bytes(index) for name, index in built.items()}

    lines = [
        f"# Serving index at {args.items:,} items ({kind} synthetic vectors, d = {args.dim})",
        "",
        f"Command: `{command_line([os.path.relpath(__file__, REPO), *(argv or sys.argv[1:])])}`  ",
        f"Machine: {machine_line()}; build on {args.build_threads or faiss.omp_get_max_threads()} FAISS "
        "thread(s), queries on one (as a request is served)",
        "",
        f"The server (`clarec serve`) searches exactly up to {EXACT_LIMIT:,} items and with HNSW above "
        f"(`clarec.serve.index`: M = {HNSW_M}, efConstruction = {HNSW_EF_CONSTRUCTION}, efSearch = "
        f"{HNSW_EF_SEARCH}, inner product on unit vectors). "
        + (
            "Vectors: uniform on the sphere (no structure: the hard case)."
            if args.uniform
            else "Vectors: unit vectors around cluster centres with power-law cluster sizes (not from a "
            "trained model; see the script's doc string)."
        ),
        "",
        "| index | build s | memory per item (bytes) | index size (MiB) |",
        "|---|---:|---:|---:|",
        *(
            f"| {name} | {index.build_seconds:.1f} | {size[name] / args.items:.0f} | {size[name] / 2**20:.0f} |"
            for name, index in built.items()
        ),
        "",
        f"| queries ({args.queries} each) | HNSW efSearch | HNSW recall@{args.k} vs exact | "
        "exact p50 / p99 ms | HNSW p50 / p99 ms |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {qname} | {ef}{' (served)' if ef == HNSW_EF_SEARCH else ''} | **{r:.4f}** | "
            f"{ex[0]:.2f} / {ex[1]:.2f} | {hn[0]:.3f} / {hn[1]:.3f} |"
            for qname, ef, r, ex, hn in rows
        ),
        "",
    ]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
