"""Encoding speed: clarec TextEncoder (runtimes torch, torch-bf16, onnx, onnx-int8) vs SentenceTransformer.encode,
same model, texts, batch size and threads, and how far each runtime's vectors agree with
sentence-transformers' (min cosine, top-20 neighbour overlap over the catalogue).

Texts are the ML-100K item texts built with ``clarec.text.templates.item_text`` (title and genres);
without ML-100K, the titles and genres of ml-latest-small are used. All encoders run in one process,
taking turns, so they see the same machine state; medians over the repetitions are reported. A last run
repeats the encoding through the on-disk cache.

    python benchmarks/encoder_speed.py --repeats 5 [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _machine import REPO, command_line, machine_line

from clarec.text.encoder import TextEncoder, default_model_path
from clarec.text.templates import item_text

ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip


def load_texts(data_root: Path) -> tuple[list[str], str]:
    """Item texts of ML-100K (u.item), or of ml-latest-small (movies.csv) when ML-100K is missing."""
    u_item = data_root / "ml-100k" / "u.item"
    if u_item.is_file():
        names = ["item_id", "title", "release_date", "video_release_date", "url", *ML100K_GENRES]
        df = pd.read_csv(u_item, sep="|", encoding="latin-1", header=None, names=names, dtype=str)
        flags = df[ML100K_GENRES].astype(int).to_numpy().astype(bool)
        df["genres"] = [[g for g, on in zip(ML100K_GENRES, row, strict=True) if on] for row in flags]
        return item_text(df, fields=("title", "genres")), "ML-100K u.item (title, genres)"
    movies = data_root / "ml-latest-small" / "movies.csv"
    if movies.is_file():
        df = pd.read_csv(movies)
        return item_text(df, fields=("title", "genres")), "ml-latest-small movies.csv (title, genres)"
    sys.exit(f"no ML-100K or ml-latest-small under {data_root}; set --data-root or CLAREC_DATA")


def timed(fn) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def measure(encoders: dict, texts: list[str], chunk: int, repeats: int) -> dict:
    """Time each encoder on ``texts`` in calls of ``chunk`` texts (0: one call), taking turns call by call.

    The order of the encoders rotates from call to call, with calls a second or a few apart, so load
    from other processes hits all alike; the ratio of each encoder's call to sentence-transformers' call
    on the same texts is the robust figure.
    """
    size = chunk or len(texts)
    chunks = [texts[i : i + size] for i in range(0, len(texts), size)]
    names = list(encoders)
    totals: dict[str, list[float]] = {name: [] for name in names}
    vectors: dict[str, list[np.ndarray]] = {name: [] for name in names}
    ratios: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        tot = dict.fromkeys(names, 0.0)
        for c, part in enumerate(chunks):
            shift = (r + c) % len(names)
            sec = {}
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                out = encoders[name](part)
                sec[name] = time.perf_counter() - start
                if r == 0:
                    vectors[name].append(out)
            for name in names:
                tot[name] += sec[name]
                ratios[name].append(sec["st"] / sec[name])
        for name in names:
            totals[name].append(tot[name])
        print(
            f"calls of {size}, repeat {r + 1}: " + ", ".join(f"{k} {v:.2f}s" for k, v in tot.items()),
            flush=True,
        )
    return {
        "size": size,
        "totals": totals,
        "ratios": ratios,
        "vectors": {k: np.vstack(v) for k, v in vectors.items()},
    }


LABELS = {
    "st": "`SentenceTransformer.encode`",
    "torch": "clarec `TextEncoder.encode` (runtime torch)",
    "torch-bf16": "clarec `TextEncoder.encode` (runtime torch-bf16)",
    "onnx": "clarec `TextEncoder.encode` (runtime onnx)",
    "onnx-int8": "clarec `TextEncoder.encode` (runtime onnx-int8)",
}


def table(result: dict, n: int) -> list[str]:
    lines = [
        "| encoder | median s | sentences/s (median) | best s | throughput / sentence-transformers "
        "(median of paired calls, quartiles) | all runs (s) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, ts in result["totals"].items():
        med, best = statistics.median(ts), min(ts)
        runs = ", ".join(f"{t:.2f}" for t in ts)
        q1, q2, q3 = np.quantile(result["ratios"][name], [0.25, 0.5, 0.75])
        ratio = "1 (reference)" if name == "st" else f"**{q2:.3f}** ({q1:.3f}-{q3:.3f})"
        lines.append(f"| {LABELS[name]} | {med:.2f} | {n / med:.0f} | {best:.2f} | {ratio} | {runs} |")
    return lines


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def neighbour_overlap(reference: np.ndarray, other: np.ndarray, k: int = 20) -> float:
    """Mean share of each item's top-``k`` cosine neighbours (itself left out) under ``reference``
    that ``other`` also puts in its top ``k``."""
    a, b = unit(reference), unit(other)
    overlaps = []
    for start in range(0, len(a), 1024):
        rows = np.arange(start, min(start + 1024, len(a)))
        top = []
        for v in (a, b):
            sim = v[rows] @ v.T
            sim[np.arange(len(rows)), rows] = -np.inf
            top.append(np.argpartition(-sim, k, axis=1)[:, :k])
        overlaps += [len(set(x) & set(y)) / k for x, y in zip(*top, strict=True)]
    return float(np.mean(overlaps))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data-root", type=Path, default=Path(os.environ.get("CLAREC_DATA", "../shared/datasets"))
    )
    parser.add_argument("--model", default=None, help="model folder (default: bundled all-MiniLM-L6-v2)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=256, help="texts per call in the second, paired test")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N texts (0: all)")
    parser.add_argument("--threads", type=int, default=0, help="torch / ONNX Runtime threads (0: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "encoder_speed.md")
    args = parser.parse_args(argv)

    import sentence_transformers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    if args.threads:
        torch.set_num_threads(args.threads)
    all_texts, source = load_texts(args.data_root)
    # TextEncoder encodes a repeated text once; drop repeats so every encoder does exactly the same work.
    texts = list(dict.fromkeys(all_texts))
    if args.limit:
        texts = texts[: args.limit]
    model_path = str(args.model or default_model_path())
    st = SentenceTransformer(model_path, device=args.device)

    def clarec_encoder(runtime: str, cache_dir=None) -> TextEncoder:
        # Same truncation as sentence-transformers, so all do the same work.
        return TextEncoder(
            model_path,
            max_length=st.max_seq_length,
            batch_size=args.batch_size,
            device=args.device,
            progress=False,
            runtime=runtime,
            cache_dir=cache_dir,
        )

    runtimes = ["torch", "torch-bf16"] + (["onnx", "onnx-int8"] if args.device == "cpu" else [])
    encoders = {
        "st": lambda part: st.encode(
            part, batch_size=args.batch_size, convert_to_numpy=True, show_progress_bar=False
        )
    }
    # No cache folder: every call encodes (the ONNX files go to a temporary folder of their own).
    encoders |= {runtime: clarec_encoder(runtime).encode for runtime in runtimes}
    # Warm-up: first calls pay for lazy initialisation (torch, the tokenizers, the ONNX export).
    for fn in encoders.values():
        fn(texts[:128])

    load_before = os.getloadavg()[0]
    whole = measure(encoders, texts, 0, args.repeats)
    paired = measure(encoders, texts, args.chunk, args.repeats)
    load_after = os.getloadavg()[0]
    vectors = whole["vectors"]
    agreement = [
        "| encoder | min cosine to sentence-transformers | top-20 neighbour overlap with sentence-transformers |",
        "|---|---:|---:|",
    ]
    for runtime in runtimes:
        cosine = (unit(vectors[runtime]) * unit(vectors["st"])).sum(axis=1)
        overlap = neighbour_overlap(vectors["st"], vectors[runtime])
        agreement.append(f"| {LABELS[runtime]} | {cosine.min():.7f} | {overlap:.4f} |")

    with tempfile.TemporaryDirectory() as cache_dir:
        cached = clarec_encoder("torch", cache_dir)
        t_fill, v_fill = timed(lambda: cached.encode(all_texts))
        fill_stats = cached.last_stats
        t_hit, v_hit = timed(lambda: cached.encode(all_texts))
        hit_stats = cached.last_stats
    assert hit_stats.n_encoded == 0

    n = len(texts)
    lines = [
        "# Text encoder speed",
        "",
        "Command:",
        "",
        "```",
        command_line([os.path.relpath(__file__, REPO), *(argv or sys.argv[1:])]),
        "```",
        "",
        f"- Machine: {machine_line()}; {torch.get_num_threads()} torch / ONNX Runtime thread(s); load average "
        f"{load_before:.2f} before, {load_after:.2f} after; CPU instructions: {cpu_flags()}",
        f"- Libraries: transformers {transformers.__version__}, "
        f"sentence-transformers {sentence_transformers.__version__}, {runtime_versions()}",
        f"- Model: all-MiniLM-L6-v2 (`{Path(model_path).name}` folder), device {args.device}, "
        f"batch size {args.batch_size}, max length {st.max_seq_length} tokens (all)",
        f'- Texts: {n} distinct item texts ({len(all_texts)} items) from {source}; example: "{texts[0]}"',
        f"- {args.repeats} repetitions per test, the encoders taking turns call by call (the order rotates)",
        "",
        f"## All {n} texts in one `encode` call",
        "",
        *table(whole, n),
        "",
        f"## Calls of {paired['size']} texts (paired, less sensitive to other load)",
        "",
        *table(paired, n),
        "",
        "## Agreement of the vectors (the one-call outputs)",
        "",
        *agreement,
        "",
        f"## Cache (SQLite in a temporary folder, all {len(all_texts)} item texts)",
        "",
        f"- first call: {fill_stats.n_encoded} texts encoded, {t_fill:.2f}s (encoding + writing the cache)",
        f"- second call: {hit_stats.n_encoded} texts encoded, {hit_stats.n_cached} distinct texts read from "
        f"the cache, {t_hit * 1000:.1f} ms; identical to the first call's vectors: "
        f"{bool(np.array_equal(v_hit, v_fill))}",
        "",
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines))
    print("\n".join(lines))


def cpu_flags() -> str:
    """Which of the CPU's instruction sets that int8 and bf16 speed depend on it has (Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []
    )
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    return ", ".join(f for f in wanted if f in flags) or "none of avx2, avx512, vnni, bf16, amx"


def runtime_versions() -> str:
    try:
        import onnxruntime
    except ImportError:
        return "onnxruntime not installed"
    return f"onnxruntime {onnxruntime.__version__}"


if __name__ == "__main__":
    main()
