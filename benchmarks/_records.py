"""Records of finished benchmark pieces (a leaderboard cell, a next-item run, a sweep point), kept
as small committed JSON files so that benchmarks longer than a working session resume where they
stopped: a record names what its figures depend on under ``key_field``, and a record made under
another key is stale (the piece runs again)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_record(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")


def read_record(path: Path, key_field: str, key: Any) -> dict | None:
    """The record at ``path`` when it was made under ``key`` (compared as JSON), else ``None``."""
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return record if record.get(key_field) == json.loads(json.dumps(key)) else None
