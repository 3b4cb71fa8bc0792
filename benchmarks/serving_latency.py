"""Latency of ``GET /v1/users/{id}/recommendations`` under a fixed arrival rate, on loopback.

Starts ``clarec serve RUN_DIR`` in a subprocess (its own fresh SQLite store in a temp folder), then
for each rate sends requests on an open-loop schedule — request ``i`` leaves at ``t0 + i / rate``
whether or not earlier ones have returned, so a slow server is not hidden by a waiting client
(coordinated omission) — for random training users, and reports p50 / p90 / p99 / max. Latency is
measured from the scheduled send time. ``--event-share`` makes that share of the requests post an
event first (the figure then covers the POST and the GET), so users are also served by the history
path.

The load generator is httpx on asyncio in this process; on a 2-core machine it competes with the
server for the CPUs, so the figures are an upper bound (``wrk`` on another core set would be kinder).

Usage::

    # a run folder with the models to serve (ML-100K from $CLAREC_DATA; ease + lm-content only)
    .venv/bin/python benchmarks/serving_latency.py --build runs/serving-ml-100k
    # the measurement: 50, 100 and 200 requests/s, 20 s each, for the run's lm-content model
    .venv/bin/python benchmarks/serving_latency.py --run runs/serving-ml-100k --model lm-content \\
        --rates 50 100 200 --duration 20 --out benchmarks/results/serving.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from _machine import machine_line

ROOT = Path(__file__).resolve().parent.parent


def build_run(out: Path, config: Path, models: list[str]) -> None:
    """Fit ``models`` of ``config`` (e.g. configs/ml-100k.yaml) into the run folder ``out``."""
    from clarec.config import load_config
    from clarec.experiment.runner import run_experiment

    cfg = load_config(config)
    cfg.models = [m for m in cfg.models if m.name in models]
    if not cfg.models:
        raise SystemExit(f"none of {models} in {config}")
    run_experiment(cfg, out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run: Path, model: str | None, db: str, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "clarec.cli", "serve", str(run), "--port", str(port), "--db", db]
    cmd += ["--log-level", "warning"] + (["--model", model] if model else [])
    proc = subprocess.Popen(cmd)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start within 120 s")


async def load(
    base: str,
    users: list[str],
    items: list[str],
    rate: float,
    duration: float,
    k: int,
    event_share: float,
    seed: int,
) -> dict:
    """One open-loop phase; returns latency percentiles (ms) and error counts."""
    rng = np.random.default_rng(seed)
    n = int(rate * duration)
    latencies = np.full(n, np.nan)
    errors = 0
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

        async def one(i: int, at: float) -> None:
            nonlocal errors
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            user = users[int(rng.integers(len(users)))]
            try:
                if rng.random() < event_share:
                    item = items[int(rng.integers(len(items)))]
                    await client.post("/v1/events", json={"user_id": user, "item_id": item})
                r = await client.get(f"/v1/users/{user}/recommendations", params={"k": k})
                if r.status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies[i] = (time.perf_counter() - at) * 1000

        t0 = time.perf_counter() + 0.2
        await asyncio.gather(*(one(i, t0 + i / rate) for i in range(n)))
        wall = time.perf_counter() - t0
    done = latencies[~np.isnan(latencies)]
    return {
        "rate": rate,
        "requests": n,
        "achieved_rate": round(n / wall, 1),
        "errors": errors,
        "p50_ms": round(float(np.percentile(done, 50)), 2),
        "p90_ms": round(float(np.percentile(done, 90)), 2),
        "p99_ms": round(float(np.percentile(done, 99)), 2),
        "max_ms": round(float(done.max()), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="run folder to serve")
    ap.add_argument("--build", type=Path, help="fit a run folder here first (from --config)")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "ml-100k.yaml")
    ap.add_argument("--build-models", nargs="+", default=["ease", "lm-content"])
    ap.add_argument("--model", help="model label under RUN/models (default: the run's best)")
    ap.add_argument("--rates", type=float, nargs="+", default=[50, 100, 200])
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per rate")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds at the first rate, not reported")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--event-share", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="write the markdown table here")
    args = ap.parse_args()
    if args.build:
        build_run(args.build, args.config, args.build_models)
        if not args.run:
            print(f"run folder: {args.build}")
            return
    if not args.run:
        ap.error("--run RUN_DIR is required (or --build to create one)")

    from clarec.data.split import load_predefined_split

    train = load_predefined_split(args.run / "split").train
    users = [str(u) for u in train.user_ids]
    items = [str(i) for i in train.item_ids]
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_server(args.run, args.model, f"sqlite:///{Path(tmp) / 'events.db'}", port)
        base = f"http://127.0.0.1:{port}"
        try:
            health = httpx.get(base + "/v1/health").json()
            asyncio.run(
                load(base, users, items, args.rates[0], args.warmup, args.k, args.event_share, args.seed)
            )
            rows = [
                asyncio.run(
                    load(base, users, items, r, args.duration, args.k, args.event_share, args.seed + n)
                )
                for n, r in enumerate(args.rates)
            ]
        finally:
            proc.terminate()
            proc.wait(30)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    lines = [
        f"# Serving latency: {health['model']} ({health['model_name']}), {health['items']} items, "
        f"{health['users']} users",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine_line()}  ",
        f"k = {args.k}, {args.duration:g} s per rate, open-loop arrivals, event share {args.event_share:g}, "
        f"load generator in the same machine (httpx/asyncio).",
        "",
        "| requests/s | sent | achieved/s | errors | p50 ms | p90 ms | p99 ms | max ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['rate']:g} | {r['requests']} | {r['achieved_rate']} | {r['errors']} | {r['p50_ms']} | "
            f"{r['p90_ms']} | {r['p99_ms']} | {r['max_ms']} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    print(json.dumps(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
