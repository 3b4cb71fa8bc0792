"""Builders for the encoder-adaptation tests (tests/text/test_adapt.py, tests/test_pretrain.py): items
with a title and genres, data sets and splits from per-user histories, an encoder over the tiny BERT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from clarec.data.dataset import Dataset
from clarec.data.split import Split

WORDS = "red blue green space war love comedy drama night city star dark light river king queen".split()
N_ITEMS = 16


def make_encoder(folder: Path):
    """A CPU :class:`TextEncoder` over the model in ``folder`` (32 tokens, quiet)."""
    from clarec.text.encoder import TextEncoder

    return TextEncoder(str(folder), device="cpu", progress=False, max_length=32)


def items() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "item_id": [f"i{i:02d}" for i in range(N_ITEMS)],
            "title": [" ".join(rng.choice(WORDS, 3)) + f" {i}" for i in range(N_ITEMS)],
            "genres": [
                "|".join(rng.choice(["Action", "Comedy", "Drama", "Horror"], 2, replace=False))
                for _ in range(N_ITEMS)
            ],
        }
    )


def dataset(histories: dict[str, list[int]]) -> Dataset:
    rows, t = [], 0
    for user, history in histories.items():
        for i in history:
            t += 1
            rows.append((user, f"i{i:02d}", t))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return Dataset.from_frame(frame, items=items(), keep_all_items=True)


def split(parts: dict[str, dict[str, list[int]]]) -> Split:
    """Train/valid/test from per-part histories; timestamps increase train → valid → test."""
    rows, t = [], 0
    for part in ("train", "valid", "test"):
        for user, history in parts[part].items():
            for i in history:
                t += 1
                rows.append((user, f"i{i:02d}", t, part))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "part"])
    ds = Dataset.from_frame(frame, items=items(), keep_all_items=True)
    inter = ds.interactions
    datasets = [
        ds.with_interactions(inter[(frame["part"] == p).to_numpy()].reset_index(drop=True), name=p)
        for p in ("train", "valid", "test")
    ]
    return Split(*datasets, method="custom")
