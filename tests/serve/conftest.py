"""Fixtures of the serving tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import Server, build_run


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """Run folder with lm-content (the default: best result), itemknn, ease and popularity."""
    folder = tmp_path_factory.mktemp("run")
    lm = {"encoder": str(tiny_model_dir), "cache_dir": "none", "half_life": 3.0}
    return build_run(
        folder,
        {
            "lm": ("lm-content", lm),
            "knn": ("itemknn", {}),
            "ease": ("ease", {"reg": 10.0}),
            "pop": ("popularity", {}),
        },
    )


@pytest.fixture(scope="session")
def server(run_dir, tmp_path_factory) -> Server:
    """One server on ``run_dir`` (the lm-content model, its own SQLite store) shared by the tests that
    only add their own users, events and items."""
    db = tmp_path_factory.mktemp("db") / "events.db"
    s = Server(run_dir, f"sqlite:///{db}").start()
    yield s
    s.stop()


@pytest.fixture
def start_server(run_dir, tmp_path):
    """Start servers on ``run_dir`` (each with a fresh SQLite store unless ``db`` is given)."""
    servers: list[Server] = []

    def start(model: str | None = None, db: str | None = None, port: int | None = None) -> Server:
        server = Server(run_dir, db or f"sqlite:///{tmp_path / 'events.db'}", model, port).start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()
