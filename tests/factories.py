"""Builders of small test data, importable from any test (tests/ is on pythonpath)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from clarec.data.dataset import Dataset


def data_root() -> Path | None:
    """The real data root from CLAREC_DATA, or None (tests that need it skip)."""
    root = os.environ.get("CLAREC_DATA")
    return Path(root) if root and Path(root).is_dir() else None


def make_random_dataset(n_users: int = 40, n_items: int = 30, per_user: int = 8, seed: int = 0) -> Dataset:
    """Random interactions, distinct items per user, increasing timestamps, titled items."""
    rng = np.random.default_rng(seed)
    rows = []
    t = 0
    for u in range(n_users):
        for i in rng.choice(n_items, size=per_user, replace=False):
            t += 1
            rows.append((f"u{u}", f"i{i}", t))
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    items = pd.DataFrame(
        {"item_id": [f"i{i}" for i in range(n_items)], "title": [f"item {i}" for i in range(n_items)]}
    )
    return Dataset.from_frame(df, items=items, name="random")


def write_events(ds: Dataset, path: Path) -> Path:
    """``ds``'s interactions as a CSV file the tabular source reads (``user_id,item_id,timestamp``)."""
    inter = ds.interactions
    rows = zip(inter["user"], inter["item"], inter["timestamp"], strict=True)
    lines = ["user_id,item_id,timestamp"] + [f"{ds.user_ids[u]},{ds.item_ids[i]},{t}" for u, i, t in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def load_benchmark(name: str):
    """A script of benchmarks/ as a module (its own helpers, e.g. ``_machine``, importable meanwhile)."""
    import importlib.util
    import sys

    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location(f"benchmark_{name}", folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module
