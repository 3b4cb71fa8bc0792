"""Records of finished benchmark pieces (a leaderboard cell, a next-item run, a sweep point), kept
as small committed JSON files so that benchmarks longer than a working session resume where they
stopped: a record names what its figures depend on under ``key_field``, and a record made under
another key is stale (the piece runs again). A piece's scratch run folder is stamped with the same
key (``start_folder``), so that results left in it under another key are never recorded."""

from __future__ import annotations

import json
import shutil
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


#: hidden, so that ``clarec run`` takes the stamped folder as a run's (it refuses folders holding
#: what a run does not write); folders stamped before under the visible name are still read
STAMP, OLD_STAMP = ".stamp.json", "stamp.json"


def stamped(out: Path, key: Any) -> bool:
    """Whether run folder ``out`` was started under ``key`` (compared as JSON)."""
    stamp = next((out / s for s in (STAMP, OLD_STAMP) if (out / s).is_file()), None)
    return stamp is not None and json.loads(stamp.read_text()) == json.loads(json.dumps(key))


def start_folder(out: Path, key: Any) -> None:
    """Make ``out`` the run folder of a piece under ``key``: a folder left under another key (an edited
    model, search space, data set or budget; or from before folders were stamped) is emptied, so
    that neither a search study nor results in it are taken for this key's."""
    if out.exists() and not stamped(out, key):
        print(f"{out}: made under another config, starting afresh", flush=True)
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / OLD_STAMP).unlink(missing_ok=True)
    (out / STAMP).write_text(json.dumps(key, indent=2, sort_keys=True))
