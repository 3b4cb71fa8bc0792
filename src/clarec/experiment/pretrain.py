"""Pretraining runs: a config's ``pretrain`` section in, an adapted encoder and its report out.

Config → data → split → the training split only → :func:`clarec.text.adapt.adapt_encoder` → a folder::

    encoder/         the adapted encoder (TextEncoder.save); pass it as a text model's ``encoder``
    pretrain.json    the resolved config, losses per step and epoch, diagnostics before and after, seconds
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from clarec.config import ExperimentConfig
from clarec.data.split import Split
from clarec.errors import ConfigError, DataError
from clarec.experiment.runner import prepare_data
from clarec.models._lm import choose_fields
from clarec.models.base import ADAPTED_PAIRS
from clarec.text.adapt import AdaptReport, adapt_encoder
from clarec.text.encoder import TextEncoder

__all__ = ["ENCODER_FOLDER", "REPORT_FILE", "run_pretraining"]

#: Files written by :func:`run_pretraining` in its output folder.
ENCODER_FOLDER = "encoder"
REPORT_FILE = "pretrain.json"


def run_pretraining(
    cfg: ExperimentConfig, out: str | Path, split: Split | None = None, progress: bool | None = None
) -> AdaptReport:
    """Run a config's ``pretrain`` section on the training split and write the results to ``out``.
    ``progress``: progress bars (``None``: only when stderr is a terminal, not in a log).

    ``split`` None prepares the config's data and split (:func:`clarec.experiment.runner.prepare_data`);
    only ``split.train`` trains, ``split.valid`` serves the held-out diagnostics. Without
    ``pretrain.fields``, the texts are made of the item fields the text models (``lm-content``,
    ``two-tower``) encode by default.

    Writes ``out/encoder/`` (the adapted encoder, :meth:`TextEncoder.save`; read it back with
    :meth:`TextEncoder.load` or pass the folder as a model's ``encoder`` parameter) and ``out/pretrain.json``
    (the resolved config, losses per step and epoch, diagnostics before and after, seconds).
    """
    p = cfg.pretrain
    if p is None:
        raise ConfigError("the config has no 'pretrain' section")
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(out, f"cannot create the output folder: {e}") from None
    if split is None:
        split = prepare_data(cfg).split
    # the same default as the text models, so the encoder is adapted to the texts they will encode
    fields = choose_fields(split.train.items, p.fields, "pretrain")  # given fields must exist
    if progress is None:
        progress = sys.stderr.isatty()
    encoder = TextEncoder(p.encoder, max_length=p.max_length, device=p.device, progress=progress)
    report = adapt_encoder(
        encoder,
        split.train,
        method=p.method,
        epochs=p.epochs,
        batch_size=p.batch_size,
        lr=p.lr,
        temperature=p.temperature,
        max_steps=p.max_steps,
        fields=fields,
        seed=cfg.seed if p.seed is None else p.seed,
        valid=split.valid,
        warmup=p.warmup,
        progress=progress,
    )
    encoder.save(out / ENCODER_FOLDER)
    # the pairs it learned from: a run on a split that holds some of them out is refused
    np.save(out / ENCODER_FOLDER / ADAPTED_PAIRS, split.train.pair_hashes())
    payload = {"config": cfg.model_dump(mode="json", exclude_none=True), **report.to_dict()}
    try:
        (out / REPORT_FILE).write_text(json.dumps(payload, indent=2) + "\n")
    except OSError as e:
        raise DataError(out / REPORT_FILE, f"cannot write: {e}") from None
    return report
