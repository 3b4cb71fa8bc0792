"""Latency of ``GET /v1/users/{id}/recommendations`` under a fixed arrival rate, on loopback.

Starts ``clarec serve RUN_DIR`` in a subprocess (its own fresh SQLite store in a temp folder), then
for each rate sends requests on an open-loop schedule — request ``i`` is due at ``t0 + i / rate``
whether or not earlier ones have returned, so a slow server is not hidden by a waiting client
(coordinated omission) — for random training users, and reports p50 / p90 / p99 / max. Latency is
measured from the scheduled send time. ``--event-share`` makes that share of the requests post an
event first (the figure then covers the POST and the GET), so users are also served by the history
path.

A rate beyond the server's capacity cannot hang the run: at most ``--max-outstanding`` requests
are in flight (a request due while that many are open is *dropped*), each request has
``--timeout`` seconds from its scheduled time (then it is *timed out* and its connection closed),
and a phase ends at most ``--timeout`` + 1 s after its last scheduled request. Dropped and timed-out
requests count as errors and as infinitely slow in the percentiles (a percentile they reach prints
as ``>TIMEOUT``).

The load generator is a small HTTP/1.1 keep-alive client on asyncio streams in this process, with
Python's garbage collector off during a phase (its full passes had paused the measurement); on a
2-core machine it still competes with the server for the CPUs. Each row also gives the server's CPU time per request (``/proc``), the load generator's,
the share of rankings the server answered from its cache (``/v1/health``) and the 1-minute load
average at the end of the phase.

Usage::

    # a run folder with the models to serve (ML-100K from $CLAREC_DATA; ease + lm-content only)
    .venv/bin/python benchmarks/serving_latency.py --build runs/serving-ml-100k
    # the measurement: 50, 100 and 200 requests/s, 20 s each, for the run's lm-content model
    .venv/bin/python benchmarks/serving_latency.py --run runs/serving-ml-100k --model lm-content \\
        --rates 50 100 200 --duration 20 --out runs/serving-ml-100k.md
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
from _machine import command_line, machine_line

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


def start_server(
    run: Path, model: str | None, db: str, port: int, extra: list[str] | None = None
) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "clarec.cli", "serve", str(run), "--port", str(port), "--db", db]
    cmd += ["--log-level", "warning"] + (["--model", model] if model else []) + list(extra or [])
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


class Connections:
    """Keep-alive HTTP/1.1 connections to one server, opened on demand (at most one per request in
    flight: the caller bounds those). A connection idle for ``max_idle`` seconds is not reused
    (uvicorn closes idle ones after 5 s), and a GET whose reused connection turns out closed before
    any answer is sent again on a new one."""

    def __init__(self, host: str, port: int, max_idle: float = 3.0):
        self.host, self.port, self.max_idle = host, port, max_idle
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        now = time.monotonic()
        while self.idle:
            reader, writer, since = self.idle.pop()
            if now - since < self.max_idle and not reader.at_eof():
                return reader, writer, True
            writer.close()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return reader, writer, False

    async def request(self, method: str, path: str, body: bytes | None = None) -> int:
        """Send one request and read the whole answer; returns its status. A connection that fails
        or is cancelled half-way (a timeout) is closed, never reused."""
        reader, writer, reused = await self._connection()
        try:
            head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            if body is not None:
                head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            writer.write(head.encode() + b"\r\n" + (body or b""))
            try:
                header = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError) as e:
                stale = reused and method == "GET" and not getattr(e, "partial", b"")
                if not stale:
                    raise
                writer.close()
                return await self.request(method, path, body)  # the server had closed it: no answer
            status = int(header[9:12])
            length, close = 0, False
            for line in header.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding":
                    raise ValueError("chunked answers are not read by this client")
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        if close:
            writer.close()
        else:
            self.idle.append((reader, writer, time.monotonic()))
        return status

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux ``/proc``; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


async def load(
    conns: Connections,
    users: list[str],
    items: list[str],
    rate: float,
    duration: float,
    k: int,
    event_share: float,
    seed: int,
    timeout: float = 2.0,
    max_outstanding: int = 256,
) -> dict:
    """One open-loop phase; returns latency percentiles (ms) and error counts. Ends at most
    ``timeout + 1`` s after the last scheduled request."""
    loop = asyncio.get_running_loop()
    rng = np.random.default_rng(seed)
    n = int(rate * duration)
    who = rng.integers(len(users), size=n)
    post = rng.random(n) < event_share
    what = rng.integers(len(items), size=n)
    latencies = np.full(n, np.inf)  # not answered in time: infinitely slow
    counts = {"ok": 0, "errors": 0, "timed_out": 0, "dropped": 0}
    kinds: dict[str, int] = {}  # what the errors were
    outstanding: set[asyncio.Task] = set()
    last_done = 0.0

    async def one(i: int, at: float) -> None:
        nonlocal last_done
        user = quote(users[int(who[i])], safe="")
        try:
            async with asyncio.timeout_at(at + timeout):
                statuses = []
                if post[i]:
                    event = {"user_id": users[int(who[i])], "item_id": items[int(what[i])]}
                    statuses.append(await conns.request("POST", "/v1/events", json.dumps(event).encode()))
                statuses.append(await conns.request("GET", f"/v1/users/{user}/recommendations?k={k}"))
        except TimeoutError:
            counts["timed_out"] += 1
            return
        except (OSError, ValueError, asyncio.IncompleteReadError) as e:
            counts["errors"] += 1
            kinds[type(e).__name__] = kinds.get(type(e).__name__, 0) + 1
            return
        last_done = loop.time()
        latencies[i] = (last_done - at) * 1000
        bad = [f"HTTP {code}" for code in statuses if code != 200]
        counts["errors" if bad else "ok"] += 1
        for b in bad:
            kinds[b] = kinds.get(b, 0) + 1

    gc.disable()  # no collector pause in this process while it measures (re-enabled below)
    t0 = loop.time() + 0.2
    for i in range(n):
        at = t0 + i / rate
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(outstanding) >= max_outstanding:
            counts["dropped"] += 1
            continue
        task = asyncio.create_task(one(i, at))
        outstanding.add(task)
        task.add_done_callback(outstanding.discard)
    if outstanding:
        # every request times out on its own by then; the extra second is a guard against a loop
        # too starved to run the timeouts
        await asyncio.wait(
            set(outstanding), timeout=max(0.0, t0 + (n - 1) / rate + timeout + 1 - loop.time())
        )
    for task in list(outstanding):
        task.cancel()
        counts["timed_out"] += 1
    gc.enable()
    end = max(last_done, t0 + n / rate)
    cap = 1e12  # stands for "never answered" in the percentiles
    lat = np.minimum(latencies, cap)

    def pct(q: float) -> float | str:
        v = float(np.percentile(lat, q)) if n else float("nan")
        return f">{timeout * 1000:g}" if v > timeout * 1000 else round(v, 2)

    answered = latencies[np.isfinite(latencies)]
    return {
        "rate": rate,
        "requests": n,
        **counts,
        "achieved_rate": round(counts["ok"] / max(end - t0, 1e-9), 1),
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "max_ms": pct(100) if len(answered) < n else round(float(answered.max()), 2) if n else "",
        "error_kinds": kinds,
        "latencies_ms": latencies,
    }


async def measure(
    base: str,
    port: int,
    pid: int,
    users: list[str],
    items: list[str],
    args: argparse.Namespace,
) -> list[dict]:
    """A warm-up phase at the first rate, then one phase per rate, with the server's CPU time, the
    load generator's, the ranking-cache share and the load average of each phase."""
    conns = Connections("127.0.0.1", port)
    opts = {"timeout": args.timeout, "max_outstanding": args.max_outstanding}
    rows = []
    try:
        await load(
            conns, users, items, args.rates[0], args.warmup, args.k, args.event_share, args.seed, **opts
        )
        async with httpx.AsyncClient(base_url=base) as client:
            for n, rate in enumerate(args.rates):
                cache0 = (await client.get("/v1/health")).json().get("ranking_cache") or {}
                cpu0, own0 = server_cpu_seconds(pid), time.process_time()
                row = await load(
                    conns, users, items, rate, args.duration, args.k, args.event_share, args.seed + n, **opts
                )
                if args.latencies:
                    path = args.latencies.with_name(f"{args.latencies.stem}-{rate:g}{args.latencies.suffix}")
                    np.savetxt(path, row["latencies_ms"], fmt="%.3f")
                del row["latencies_ms"]
                sent = max(1, row["requests"] - row["dropped"])
                row["server_cpu_ms"] = round((server_cpu_seconds(pid) - cpu0) * 1000 / sent, 2)
                row["client_cpu_ms"] = round((time.process_time() - own0) * 1000 / sent, 2)
                cache1 = (await client.get("/v1/health")).json().get("ranking_cache") or {}
                hits = cache1.get("hits", 0) - cache0.get("hits", 0)
                misses = cache1.get("misses", 0) - cache0.get("misses", 0)
                row["cache_hits"] = f"{100 * hits / max(1, hits + misses):.0f}%" if cache1 else "n/a"
                row["load_avg"] = round(os.getloadavg()[0], 2)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        conns.close()
    return rows


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
    ap.add_argument("--timeout", type=float, default=2.0, help="seconds a request may take from its due time")
    ap.add_argument(
        "--max-outstanding", type=int, default=256, help="requests in flight at most (then dropped)"
    )
    ap.add_argument(
        "--latencies", type=Path, help="write each request's latency (ms, in due order) to FILE-RATE.txt"
    )
    ap.add_argument("--server-arg", action="append", default=[], help="extra argument of clarec serve")
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
        proc = start_server(
            args.run, args.model, f"sqlite:///{Path(tmp) / 'events.db'}", port, args.server_arg
        )
        base = f"http://127.0.0.1:{port}"
        try:
            health = httpx.get(base + "/v1/health").json()
            # the data and libraries loaded so far live to the end: kept out of the collector's full
            # passes, which paused this process (and so the measured latencies) by 100-170 ms; during
            # a phase the collector is off altogether
            gc.collect()
            gc.freeze()
            rows = asyncio.run(measure(base, port, proc.pid, users, items, args))
        finally:
            proc.terminate()
            proc.wait(30)
    command = command_line()
    lines = [
        f"# Serving latency: {health['model']} ({health['model_name']}), {health['items']} items, "
        f"{health['users']} users",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine_line()}  ",
        f"k = {args.k}, {args.duration:g} s per rate, open-loop arrivals, event share {args.event_share:g}, "
        f"timeout {args.timeout:g} s, at most {args.max_outstanding} in flight, load generator on the same "
        "machine (asyncio streams).",
        "",
        "| requests/s | sent | achieved/s | errors | timed out | dropped | p50 ms | p90 ms | p99 ms | max ms "
        "| server CPU ms/req | client CPU ms/req | cache hits | load avg |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['rate']:g} | {r['requests']} | {r['achieved_rate']} | {r['errors']} | {r['timed_out']} | "
            f"{r['dropped']} | {r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} | {r['max_ms']} | "
            f"{r['server_cpu_ms']} | {r['client_cpu_ms']} | {r['cache_hits']} | {r['load_avg']} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    print(json.dumps(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
