"""Helpers of the serving tests: a small run folder and a real server in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from factories import make_random_dataset

from clarec.data.split import random_split
from clarec.models import create

GENRES = ["Action", "Comedy", "Drama", "Sci-Fi", "Romance"]


def build_run(folder: Path, models: dict[str, dict]) -> Path:
    """A run folder as ``clarec run`` writes it (split/, models/<label>/, results.json, config.yaml)."""
    data = make_random_dataset(n_users=40, n_items=30, per_user=8, seed=3)
    data.items["genres"] = [[GENRES[i % 5], GENRES[(i * 2 + 1) % 5]] for i in range(data.n_items)]
    split = random_split(data, seed=0)
    split.save(folder / "split")
    results = {}
    for n, (label, (name, params)) in enumerate(models.items()):
        create(name, params).fit(split.train).save(folder / "models" / label)
        results[label] = {"test": {"ndcg@20": 0.5 - 0.1 * n}, "valid": {"ndcg@20": 0.4 - 0.1 * n}}
    (folder / "results.json").write_text(json.dumps(results))
    (folder / "config.yaml").write_text("evaluation: {main_metric: ndcg@20}\n")
    return folder


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``clarec serve`` in a subprocess on a free loopback port."""

    def __init__(self, run_dir: Path, db: str, model: str | None = None, port: int | None = None):
        self.run_dir, self.db, self.model = run_dir, db, model
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> Server:
        cmd = [sys.executable, "-m", "clarec.cli", "serve", str(self.run_dir), "--port", str(self.port)]
        cmd += ["--db", self.db, "--log-level", "warning"]
        if self.model:
            cmd += ["--model", self.model]
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
        self.log = open(self.run_dir / f"server-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.logs()}")
            try:
                if httpx.get(self.url + "/v1/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start in {timeout}s: {self.logs()}")

    def logs(self) -> str:
        if not self.log.closed:  # stop() closes it; what it wrote is still in the file
            self.log.flush()
        return (self.run_dir / f"server-{self.port}.log").read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def ids(payload: dict) -> list[str]:
    return [x["item_id"] for x in payload["items"]]
