"""Encoding speed: clarec TextEncoder vs SentenceTransformer.encode, same model, texts and batch size.

Texts are the ML-100K item texts built with ``clarec.text.templates.item_text`` (title and genres);
without ML-100K, the titles and genres of ml-latest-small are used. Both encoders run in one process,
alternating, so they see the same machine state; medians over the repetitions are reported. A last run
repeats the encoding through the on-disk cache.

    python benchmarks/encoder_speed.py --repeats 5
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
    """Time each encoder on ``texts`` in calls of ``chunk`` texts (0: one call), alternating call by call.

    Alternating which encoder goes first, with calls a second or a few apart, lets load from other
    processes hit both alike; the ratio of each pair of calls is the robust figure.
    """
    size = chunk or len(texts)
    chunks = [texts[i : i + size] for i in range(0, len(texts), size)]
    names = list(encoders)
    totals: dict[str, list[float]] = {name: [] for name in names}
    vectors: dict[str, list[np.ndarray]] = {name: [] for name in names}
    ratios = []
    for r in range(repeats):
        tot = dict.fromkeys(names, 0.0)
        for c, part in enumerate(chunks):
            sec = {}
            for name in names if (r + c) % 2 == 0 else names[::-1]:
                start = time.perf_counter()
                out = encoders[name](part)
                sec[name] = time.perf_counter() - start
                if r == 0:
                    vectors[name].append(out)
            for name in names:
                tot[name] += sec[name]
            ratios.append(sec[names[1]] / sec[names[0]])
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


def table(result: dict, n: int) -> list[str]:
    labels = {"ours": "clarec `TextEncoder.encode` (cache off)", "st": "`SentenceTransformer.encode`"}
    lines = [
        "| encoder | median s | sentences/s (median) | best s | sentences/s (best) | all runs (s) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, ts in result["totals"].items():
        med, best = statistics.median(ts), min(ts)
        runs = ", ".join(f"{t:.2f}" for t in ts)
        lines.append(f"| {labels[name]} | {med:.2f} | {n / med:.0f} | {best:.2f} | {n / best:.0f} | {runs} |")
    q1, q2, q3 = np.quantile(result["ratios"], [0.25, 0.5, 0.75])
    med = {k: statistics.median(v) for k, v in result["totals"].items()}
    lines += [
        "",
        f"Throughput ratio clarec / sentence-transformers: median over {len(result['ratios'])} paired calls "
        f"**{q2:.3f}** (quartiles {q1:.3f}-{q3:.3f}); ratio of median totals {med['st'] / med['ours']:.3f}.",
    ]
    return lines


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
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "encoder_speed.md")
    args = parser.parse_args(argv)

    import sentence_transformers
    import transformers
    from sentence_transformers import SentenceTransformer

    all_texts, source = load_texts(args.data_root)
    # TextEncoder encodes a repeated text once; drop repeats so both encoders do exactly the same work.
    texts = list(dict.fromkeys(all_texts))
    if args.limit:
        texts = texts[: args.limit]
    model_path = str(args.model or default_model_path())
    st = SentenceTransformer(model_path, device=args.device)
    # Same truncation as sentence-transformers, so both do the same work.
    ours = TextEncoder(
        model_path,
        max_length=st.max_seq_length,
        batch_size=args.batch_size,
        device=args.device,
        progress=False,
    )
    encoders = {
        "ours": ours.encode,
        "st": lambda part: st.encode(
            part, batch_size=args.batch_size, convert_to_numpy=True, show_progress_bar=False
        ),
    }
    # Warm-up: first calls pay for lazy initialisation in torch and the tokenizers.
    for fn in encoders.values():
        fn(texts[:128])

    load_before = os.getloadavg()[0]
    whole = measure(encoders, texts, 0, args.repeats)
    paired = measure(encoders, texts, args.chunk, args.repeats)
    load_after = os.getloadavg()[0]
    a, b = whole["vectors"]["ours"], whole["vectors"]["st"]
    cosine = (a * (b / np.linalg.norm(b, axis=1, keepdims=True))).sum(axis=1)

    with tempfile.TemporaryDirectory() as cache_dir:
        cached = TextEncoder(
            model_path,
            max_length=st.max_seq_length,
            batch_size=args.batch_size,
            device=args.device,
            progress=False,
            cache_dir=cache_dir,
        )
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
        f"- Machine: {machine_line()}; load average {load_before:.2f} before, {load_after:.2f} after "
        "(other processes shared the machine)",
        f"- Libraries: transformers {transformers.__version__}, "
        f"sentence-transformers {sentence_transformers.__version__}",
        f"- Model: all-MiniLM-L6-v2 (`{Path(model_path).name}` folder), device {args.device}, "
        f"batch size {args.batch_size}, max length {st.max_seq_length} tokens (both)",
        f'- Texts: {n} distinct item texts ({len(all_texts)} items) from {source}; example: "{texts[0]}"',
        f"- {args.repeats} repetitions per test, the two encoders alternating call by call",
        "",
        f"## All {n} texts in one `encode` call",
        "",
        *table(whole, n),
        "",
        f"## Calls of {paired['size']} texts (paired, less sensitive to other load)",
        "",
        *table(paired, n),
        "",
        f"Agreement of the two outputs: min cosine {cosine.min():.7f}.",
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


if __name__ == "__main__":
    main()
