"""Acknowledged events and items survive a SIGKILL: the restarted server replays the store."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from clarec.serve.store import EventStore

from .helpers import Server, free_port, ids


def _post_and_kill(server: Server, user: str, n_batches: int = 6) -> tuple[list[tuple[str, str]], dict]:
    """Add an item, post events (single and batched), SIGKILL right after the last 200."""
    acked: list[tuple[str, str]] = []
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert (
            c.post("/v1/items", json={"item_id": "late-item", "title": "item 7 reissue"}).status_code == 201
        )
        assert c.put("/v1/users/ghost/profile", json={"text": "item 3"}).status_code == 200
        items = [f"i{n}" for n in range(30)] + ["late-item"]
        for b in range(n_batches):
            batch = [
                {"user_id": user, "item_id": items[(5 * b + j) % len(items)], "timestamp": 10_000 + 5 * b + j}
                for j in range(b % 3 + 1)
            ]
            r = c.post("/v1/events", json=batch if len(batch) > 1 else batch[0])
            assert r.status_code == 200 and r.json()["accepted"] == len(batch)
            acked += [(e["user_id"], e["item_id"]) for e in batch]
        r = c.post("/v1/events", json={"user_id": user, "item_id": "late-item"})
        assert r.status_code == 200
        acked.append((user, "late-item"))
        before = c.get(f"/v1/users/{user}/recommendations", params={"k": 10}).json()
    server.kill()
    return acked, before


def _check_back(server: Server, user: str, acked: list, before: dict, n_events: int) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        health = c.get("/v1/health").json()
        assert health["events"] == n_events and health["added_items"] == 1
        hist = c.get(f"/v1/users/{user}/history", params={"limit": 1000}).json()["items"]
        events = [x["item_id"] for x in hist if x["source"] == "event"][::-1]  # oldest first
        assert events == [item for _, item in acked]
        after = c.get(f"/v1/users/{user}/recommendations", params={"k": 10}).json()
        assert after["path"] == "history"
        assert ids(after) == ids(before)
        assert not {item for _, item in acked} & set(ids(after))
        assert c.get("/v1/items", params={"q": "late-item"}).json()["items"][0]["item_id"] == "late-item"
        assert c.get("/v1/users/ghost/recommendations").json()["path"] == "profile"


def test_acknowledged_events_survive_sigkill(start_server, tmp_path):
    db = f"sqlite:///{tmp_path / 'kill.db'}"
    server = start_server(db=db)
    acked, before = _post_and_kill(server, "u11")
    # the store itself holds every acknowledged event, in order, and is in WAL mode
    store = EventStore(db)
    assert [(e.user_id, e.item_id) for e in store.events()] == acked
    assert store.journal_mode() == "wal"
    store.close()
    restarted = start_server(db=db, port=server.port)
    _check_back(restarted, "u11", acked, before, len(acked))


def test_itemknn_server_events_and_new_items(start_server):
    server = start_server(model="knn")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        h = c.get("/v1/health").json()
        assert h["model"] == "knn" and h["index"] is None and h["new_items_from_text"] is False
        first = c.get("/v1/users/u5/recommendations", params={"k": 5}).json()
        assert first["path"] == "model"
        top = first["items"][0]
        assert top["explanation"]["because"], "itemknn explains by its neighbour weights"
        sim = c.get(f"/v1/items/{top['item_id']}/similar", params={"k": 3}).json()["items"]
        assert len(sim) == 3 and sim[0]["similarity"] >= sim[-1]["similarity"] > 0
        assert c.post("/v1/events", json={"user_id": "u5", "item_id": top["item_id"]}).status_code == 200
        second = c.get("/v1/users/u5/recommendations", params={"k": 5}).json()
        assert second["path"] == "history" and top["item_id"] not in ids(second)
        r = c.post("/v1/items", json={"item_id": "knn-new", "title": "no evidence yet"})
        assert r.status_code == 201 and r.json()["scored_from_text"] is False
        assert c.get("/v1/items/knn-new/similar").json()["items"] == []
        assert c.post("/v1/events", json={"user_id": "u5", "item_id": "knn-new"}).status_code == 200


def _pg_bin() -> Path | None:
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and shutil.which("initdb") else None


@pytest.fixture
def postgres_url():
    """A throwaway PostgreSQL server in a temp folder on a free port (skips without the binaries)."""
    pytest.importorskip("psycopg")
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not installed")
    folder = Path(tempfile.mkdtemp(prefix="clarec-pg-", dir="/tmp"))
    data = folder / "data"
    port = free_port()
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL")
        shutil.chown(folder, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    os.chmod(folder, 0o755)

    def run(*cmd: str) -> None:
        subprocess.run([*prefix, *cmd], check=True, capture_output=True, timeout=60)

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
        run(
            str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-t", "30", "-l", str(folder / "log"),
            "-o", f"-p {port} -k {folder} -h 127.0.0.1 -F", "start",
        )  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, KeyError) as e:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"cannot start a throwaway PostgreSQL: {e}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(folder, ignore_errors=True)


def test_postgres_store_survives_sigkill(start_server, postgres_url):
    server = start_server(db=postgres_url)
    assert httpx.get(server.url + "/v1/health").json()["store"] == "postgresql"
    t0 = time.monotonic()
    acked, before = _post_and_kill(server, "u12", n_batches=3)
    assert time.monotonic() - t0 < 30
    restarted = start_server(db=postgres_url, port=server.port)
    _check_back(restarted, "u12", acked, before, len(acked))
