"""A run's ranked lists as a file: ``clarec recommend``.

The lists are those the run's figures were computed from — the model saved in ``models/<label>/``
(the first seed's), the run's own split (``split/``), the same input and the same exclusions as its
evaluation of ``part`` under the main convention (``history_items``, ``test_input`` of the run's
``config.yaml``) — for every user of the split or the users asked for. The file is the one
``clarec evaluate`` reads (``user_id<TAB>item_id<TAB>rank<TAB>score``, a header line first), so
scoring it with ``--history-items kept`` gives the run's figures back.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from clarec.data.split import load_predefined_split
from clarec.errors import ClarecError, ConfigError
from clarec.evaluate.evaluator import Evaluator
from clarec.models.base import Recommender


def _convention(run_dir: Path) -> tuple[str, str]:
    """The run's main convention: ``(history_items, test_input)`` from its ``config.yaml``."""
    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ClarecError(f"{run_dir}: cannot read config.yaml ({e})") from None
    ev = (cfg.get("evaluation") or {}) if isinstance(cfg, dict) else {}
    history = ev.get("history_items", ["masked"])
    history = history[0] if isinstance(history, list) and history else history
    return str(history), str(ev.get("test_input", "train"))


def _users(split, user_ids: list[str] | None) -> np.ndarray:
    if user_ids is None:
        return np.arange(split.train.n_users, dtype=np.int64)
    ids = list(dict.fromkeys(u.strip() for u in user_ids if u.strip()))  # a repeated id: one list
    if not ids:
        raise ClarecError("no user ids given")
    index = pd.Index(np.asarray(split.train.user_ids).astype(str)).get_indexer(ids)
    unknown = [u for u, i in zip(ids, index, strict=True) if i < 0]
    if unknown:
        raise ClarecError(
            f"{len(unknown)} user id(s) not in the run's split, e.g. {unknown[0]!r} "
            "(a user the model has not seen is served by `clarec serve` from their events)"
        )
    return index.astype(np.int64)


def write_run_lists(
    run_dir: str | Path,
    out: str | Path,
    label: str | None = None,
    k: int = 20,
    part: str = "test",
    user_ids: list[str] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Write the top ``k`` of each user as the run ranked them for ``part`` (``test`` or ``valid``).

    ``label`` picks the model (default: the run's best on validation, as ``clarec serve``);
    ``user_ids`` the users (default: every user of the split). An existing ``out`` is refused unless
    ``force``; the file appears whole or not at all (``.gz``: gzipped). Returns what was written.
    """
    from clarec.serve.service import choose_model

    run_dir, out = Path(run_dir), Path(out)
    if not run_dir.is_dir():
        raise ClarecError(f"run folder not found: {run_dir}")
    if part not in ("test", "valid"):
        raise ConfigError(f"part must be 'test' or 'valid', got {part!r}")
    if int(k) < 1:
        raise ConfigError(f"k must be a positive integer, got {k}")
    if out.is_dir():
        raise ClarecError(f"{out} is a folder: give a file path (e.g. {out / 'lists.tsv.gz'})")
    if out.exists() and not force:
        raise ClarecError(f"{out} exists: give another path, or --force to replace it")
    label = choose_model(run_dir, label)
    history_items, test_input = _convention(run_dir)
    split = load_predefined_split(run_dir / "split")
    model = Recommender.load(run_dir / "models" / label)
    if model.n_items < split.train.n_items or model.n_users != split.train.n_users:
        raise ClarecError(f"{run_dir}: model {label!r} was not fitted on the run's split/")
    users = _users(split, user_ids)
    evaluator = Evaluator(split, ks=(int(k),), history_items=history_items, test_input=test_input)
    ids, scores = evaluator.ranked_lists(model, users, part)
    rows, ranks = np.nonzero(ids >= 0)
    frame = pd.DataFrame(
        {
            "user_id": np.asarray(split.train.user_ids, dtype=object)[users[rows]],
            "item_id": np.asarray(split.train.item_ids, dtype=object)[ids[rows, ranks]],
            "rank": ranks + 1,
            "score": scores[rows, ranks],
        }
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    text = frame.to_csv(sep="\t", index=False, float_format="%.7g", lineterminator="\n")
    data = gzip.compress(text.encode()) if out.suffix == ".gz" else text.encode()
    partial.write_bytes(data)
    os.replace(partial, out)
    return {
        "model": label,
        "part": part,
        "history_items": history_items,
        "test_input": test_input,
        "users": int(len(users)),
        "lines": int(len(frame)),
        "out": str(out),
    }
