"""Written profiles of every item and user of a config's split by the bundled generative model:
seconds, generated tokens and tokens per second, then the same call again, which must generate
nothing (every answer comes from the cache).

Usage:
    CLAREC_DATA=../shared/datasets python benchmarks/llm_profiles.py configs/ml-100k.yaml \\
        benchmarks/results/llm-profiles-ml-100k.md --out runs/profiles-ml-100k [--threads 2] \\
        [--batch-size 32] [--max-new-tokens 64]

The profiles land in ``--out`` (items.tsv, users.tsv, profiles.json); a config reads them with
``data: {profiles: FOLDER}`` for the same split.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _machine import write_result

from clarec.config import load_config
from clarec.experiment.runner import prepare_data
from clarec.llm import LocalGenerator
from clarec.llm.profiles import write_profiles


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("result_md", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    args = ap.parse_args()
    t0 = time.perf_counter()
    split = prepare_data(load_config(args.config)).split
    settings = {
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "num_threads": args.threads,
    }
    load_start = time.perf_counter()
    generator = LocalGenerator(**settings)
    load_s = time.perf_counter() - load_start
    first = write_profiles(split, generator, args.out)
    again = write_profiles(split, LocalGenerator(**settings), args.out)
    items = (args.out / "items.tsv").read_text(encoding="utf-8").splitlines()[1:4]
    users = (args.out / "users.tsv").read_text(encoding="utf-8").splitlines()[1:4]
    rate = first["tokens"] / first["seconds"] if first["seconds"] else float("nan")
    lines = [
        f"# Written profiles: `{args.config}`, bundled SmolLM2-135M-Instruct",
        "",
        f"Every item (from its text: {', '.join(first['item_fields'])}) and every training user (the titles "
        f"of their {first['n_recent']} most recent training items) of the config's split, greedy, at most "
        f"{args.max_new_tokens} new tokens, batches of {args.batch_size}, {args.threads} torch threads, in process "
        "(transformers).",
        "",
        "| run | items | users | prompts generated | seconds | generated tokens | tokens / s |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| first | {first['items']} | {first['users']} | {first['generated']} | {first['seconds']:.0f} | "
        f"{first['tokens']} | {rate:.1f} |",
        f"| again (cached) | {again['items']} | {again['users']} | {again['generated']} | {again['seconds']:.1f} | "
        f"{again['tokens']} | — |",
        "",
        f"Model load: {load_s:.1f} s (includes the one-time conversion of the GGUF file, about a minute, when "
        "the cache did not hold it yet).",
        "",
        "First profiles (id, profile):",
        "",
        "```",
        *items,
        *users,
        "```",
    ]
    write_result(
        args.result_md, lines, time.perf_counter() - t0, note=f"whole run {time.perf_counter() - t0:.0f} s"
    )


if __name__ == "__main__":
    main()
