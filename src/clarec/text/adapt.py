"""Encoder adaptation: fine-tune a :class:`~clarec.text.encoder.TextEncoder` on item texts before a model uses it.

Three methods, all trained on the training split only (no leakage into validation or test), built from
:mod:`clarec.contrastive` pieces (:class:`InfoNCELoss`, :class:`BYOL`, text augmentations,
:class:`NoDuplicateBatchSampler`) and the encoder's public differentiable forward
(:meth:`TextEncoder.embed_batch`, :meth:`TextEncoder.tokenize`, :meth:`TextEncoder.pooled_module`):

- ``"simcse"`` (unsupervised SimCSE, Gao et al. 2021): every item text goes through the encoder twice
  with dropout on; the two vectors are a positive pair, the other texts of the batch are negatives
  (InfoNCE).
- ``"simcse-sup"`` (supervised SimCSE on collaborative pairs): two items consumed one after the other by
  the same user in the training split form a positive pair; batches never hold a text twice, so the
  in-batch negatives are real negatives (symmetric InfoNCE).
- ``"byol"`` (Grill et al. 2020): two augmented views of each item text; the online encoder plus a
  projector and a predictor regress an exponential-moving-average target. Projector, predictor and
  target are dropped afterwards; only the adapted encoder stays.

Before and after training, :func:`~clarec.text.diagnostics.embedding_diagnostics` measures alignment
(held-out positive pairs: co-consumed pairs of the validation split — where it gives each user one
item, each user's last training item with it; for the unsupervised methods also
two views of a text) and uniformity (item vectors), plus a retrieval check: the mean cosine of held-out
co-consumed pairs against the same items paired at random. The run-folder workflow around this (config,
data, split, files) is :func:`clarec.experiment.pretrain.run_pretraining`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from clarec.contrastive.augment import Compose, FieldDropout, IdentityAugment, TextAugment, WordDropout
from clarec.contrastive.byol import BYOL
from clarec.contrastive.infonce import InfoNCELoss
from clarec.contrastive.samplers import NoDuplicateBatchSampler
from clarec.errors import ConfigError
from clarec.text.adapt_data import ItemTexts, collaborative_pairs, crossing_pairs, seeded_sample
from clarec.text.diagnostics import DIAGNOSTIC_ORDER, embedding_diagnostics
from clarec.text.templates import DEFAULT_ITEM_FIELDS

if TYPE_CHECKING:
    from clarec.data.dataset import Dataset
    from clarec.text.encoder import TextEncoder

__all__ = ["METHODS", "AdaptReport", "adapt_encoder", "default_augment"]

Method = Literal["simcse", "simcse-sup", "byol"]
#: The adaptation methods :func:`adapt_encoder` knows.
METHODS: tuple[str, ...] = ("simcse", "simcse-sup", "byol")


@dataclass
class AdaptReport:
    """What :func:`adapt_encoder` did.

    ``step_losses`` has one training loss per optimiser step, ``epoch_losses`` the mean per epoch
    (started epochs only); ``before``/``after`` are :func:`embedding_diagnostics` results.
    """

    method: str
    steps: int
    epochs: int
    n_examples: int
    step_losses: list[float] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """Markdown table of the diagnostics before and after training."""
        keys = [k for k in DIAGNOSTIC_ORDER if k in self.before or k in self.after]
        lines = ["| measure | before | after | change |", "|---|---:|---:|---:|"]
        for k in keys:
            b, a = self.before.get(k, math.nan), self.after.get(k, math.nan)
            lines.append(f"| {k} | {b:.4f} | {a:.4f} | {a - b:+.4f} |")
        return "\n".join(lines)


def default_augment(method: str) -> TextAugment:
    """The views each method uses by default: identity for SimCSE (dropout makes the views); for BYOL
    field dropout (title kept) followed by word dropout."""
    if method == "byol":
        return Compose([FieldDropout(0.2, keep=("title",)), WordDropout(0.1)])
    return IdentityAugment()


class _ProjectedTower(nn.Module):
    """The encoder's pooled transformer followed by a projector: BYOL's online network.

    Holds modules only (not the encoder object), so BYOL's deep copy of it (the target) copies weights
    only, and parameter order matches between online and target.
    """

    def __init__(self, body: nn.Module, projector: nn.Module):
        super().__init__()
        self.body, self.projector = body, projector

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.projector(self.body(input_ids=input_ids, attention_mask=attention_mask))


def _check(
    method: str, epochs: int, batch_size: int, lr: float, temperature: float, max_steps, warmup
) -> None:
    if method not in METHODS:
        raise ConfigError(f"pretrain method must be one of {list(METHODS)}, got {method!r}")
    if not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"pretrain epochs must be an integer >= 1, got {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 2:
        raise ConfigError(
            f"pretrain batch_size must be an integer >= 2 (in-batch negatives), got {batch_size!r}"
        )
    if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
        raise ConfigError(f"pretrain lr must be a positive number, got {lr!r}")
    if not (isinstance(temperature, int | float) and math.isfinite(temperature) and temperature > 0):
        raise ConfigError(f"pretrain temperature must be a positive number, got {temperature!r}")
    if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 1):
        raise ConfigError(f"pretrain max_steps must be an integer >= 1 or None, got {max_steps!r}")
    if not 0 <= warmup < 1:
        raise ConfigError(f"pretrain warmup must be a fraction in [0, 1), got {warmup!r}")


def _epoch_batches(
    method: str, examples: np.ndarray, batch_size: int, epoch: int, seed: int, sampler
) -> list[np.ndarray]:
    if method == "simcse-sup":
        batches = [examples[b] for b in sampler.batches(epoch)]
    else:
        order = np.random.default_rng([seed, epoch]).permutation(len(examples))
        batches = [examples[order[s : s + batch_size]] for s in range(0, len(order), batch_size)]
    # a lone example has no in-batch negative (and BYOL's batch norm needs two rows)
    return [b for b in batches if len(b) >= 2]


def adapt_encoder(
    encoder: TextEncoder,
    train: Dataset,
    method: Method = "simcse-sup",
    epochs: int = 1,
    batch_size: int = 64,
    lr: float = 2e-5,
    temperature: float = 0.05,
    max_steps: int | None = None,
    fields: Sequence[str] = DEFAULT_ITEM_FIELDS,
    seed: int = 0,
    augment: TextAugment | None = None,
    valid: Dataset | None = None,
    warmup: float = 0.1,
    weight_decay: float = 0.01,
    max_grad_norm: float = 1.0,
    momentum: float = 0.99,
    diagnostics: bool = True,
    progress: bool = True,
) -> AdaptReport:
    """Adapt ``encoder`` in place to the item texts of ``train``; returns what happened.

    Args:
        encoder: the encoder to fine-tune (its weights change; its cache key changes with them).
        train: the training split; the only source of texts (items with a training interaction) and
            of collaborative pairs (:func:`~clarec.text.adapt_data.collaborative_pairs`).
        method: ``"simcse"``, ``"simcse-sup"`` or ``"byol"`` (see the module docstring).
        epochs: passes over the examples (texts, or pairs for ``simcse-sup``).
        batch_size: examples per step (texts or pairs); the other examples of a batch are negatives.
        lr: AdamW peak learning rate, reached after a linear warm-up over ``warmup`` of the planned steps.
        temperature: InfoNCE temperature (unused by BYOL).
        max_steps: stop after this many optimiser steps (None: all epochs).
        fields: item fields rendered into each text (:func:`~clarec.text.templates.item_text`);
            ``clarec pretrain`` passes the fields the text models encode by default.
        seed: seeds batch order, augmentations, dropout and the BYOL heads; same seed, same result.
        augment: view augmentation applied to each item's field record before rendering; None uses
            :func:`default_augment` (identity for SimCSE, where dropout makes the views).
        valid: validation split, used only for the held-out diagnostics (co-consumed pairs not in train;
            with one validation item per user, each user's last training item and it).
        warmup, weight_decay, max_grad_norm: optimiser schedule, AdamW decay and gradient clipping.
        momentum: BYOL only: the target's EMA rate at the first step (cosine schedule to 1).
        diagnostics: measure :func:`embedding_diagnostics` before and after (costs two encodings of
            every item).
        progress: show a progress bar with the running loss.

    Raises:
        ConfigError: a bad parameter, or too few texts / collaborative pairs in ``train`` to form a batch.
    """
    _check(method, epochs, batch_size, lr, temperature, max_steps, warmup)
    start = time.perf_counter()
    texts = ItemTexts(train, fields)
    aug = augment if augment is not None else default_augment(method)
    train_items = np.unique(train.interactions["item"].to_numpy())
    train_text_ids = np.unique(texts.text_id[train_items])
    train_text_ids = train_text_ids[[texts.unique[t] != "" for t in train_text_ids]]
    pairs = collaborative_pairs(train)
    sampler = None
    if method == "simcse-sup":
        tp = texts.text_id[pairs] if len(pairs) else np.empty((0, 2), dtype=np.int64)
        tp = tp[tp[:, 0] != tp[:, 1]]  # two items with the same text make a trivial pair
        examples = np.unique(np.sort(tp, axis=1), axis=0).reshape(-1, 2)
        if len(examples) < 2:
            raise ConfigError(
                f"simcse-sup needs at least 2 collaborative pairs in the training split, found {len(examples)}"
            )
        sampler = NoDuplicateBatchSampler(examples, batch_size, seed=seed)
    else:
        examples = train_text_ids
        if len(examples) < 2:
            raise ConfigError(f"{method} needs at least 2 distinct non-empty item texts in training")
    heldout = None
    if valid is not None:
        heldout = collaborative_pairs(valid, exclude=pairs)
        if not len(heldout):  # one validation item per user (leave-one-out): the step into it
            heldout = crossing_pairs(train, valid, exclude=pairs)
        if len(heldout) > 5000:  # enough for stable means; keeps the diagnostics quick
            heldout = heldout[seeded_sample(len(heldout), 5000, np.random.default_rng(seed))]
    view_ids = train_text_ids if method in ("simcse", "byol") else None

    def measure() -> dict[str, float]:
        if not diagnostics:
            return {}
        return embedding_diagnostics(
            encoder,
            texts.texts,
            heldout,
            view_text_ids=view_ids,
            item_texts=texts,
            augment=aug,
            batch_size=batch_size,
            seed=seed,
        )

    devices = [encoder.device.index or 0] if encoder.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # seed dropout without touching the caller's RNG
        torch.manual_seed(seed)
        before = measure()
        torch.manual_seed(seed)
        report = _train(
            encoder, texts, method, examples, sampler, aug, epochs, batch_size, lr, temperature, max_steps,
            seed, warmup, weight_decay, max_grad_norm, momentum, progress,
        )  # fmt: skip
        encoder.mark_weights_changed()  # BYOL trains the module directly, outside embed_batch
        encoder.eval()
        report.before = before
        report.after = measure()
    report.seconds = time.perf_counter() - start
    report.settings = {
        "method": method,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "temperature": temperature,
        "max_steps": max_steps,
        "fields": list(texts.fields),
        "seed": seed,
        "augment": repr(aug),
        "warmup": warmup,
        "weight_decay": weight_decay,
        "max_grad_norm": max_grad_norm,
        "n_train_pairs": int(len(pairs)),
        "n_train_texts": int(len(train_text_ids)),
        "n_heldout_pairs": 0 if heldout is None else int(len(heldout)),
        "encoder": encoder.model_name_or_path,
        "max_length": encoder.max_length,
    }
    if method == "byol":
        report.settings["momentum"] = momentum
    return report


def _train(
    encoder: TextEncoder,
    texts: ItemTexts,
    method: str,
    examples: np.ndarray,
    sampler: NoDuplicateBatchSampler | None,
    aug: TextAugment,
    epochs: int,
    batch_size: int,
    lr: float,
    temperature: float,
    max_steps: int | None,
    seed: int,
    warmup: float,
    weight_decay: float,
    max_grad_norm: float,
    momentum: float,
    progress: bool,
) -> AdaptReport:
    rng = np.random.default_rng(seed)
    per_epoch = math.ceil(len(examples) / batch_size)
    planned = epochs * per_epoch if max_steps is None else min(max_steps, epochs * per_epoch)
    warmup_steps = int(warmup * planned)
    byol = None
    if method == "byol":
        dim = encoder.dim
        projector = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.BatchNorm1d(4 * dim), nn.ReLU(), nn.Linear(4 * dim, dim)
        )
        tower = _ProjectedTower(encoder.pooled_module(), projector)
        byol = BYOL(
            tower, projector_dim=dim, predictor_hidden=4 * dim, momentum=momentum, total_steps=planned
        )
        byol.to(encoder.device)
        params = [p for p in byol.parameters() if p.requires_grad]
    else:
        params = [p for p in encoder.parameters() if p.requires_grad]
        criterion = InfoNCELoss(temperature, symmetric=method == "simcse-sup")
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
    )
    report = AdaptReport(method=method, steps=0, epochs=0, n_examples=int(len(examples)))
    bar = tqdm(total=planned, desc=f"pretrain {method}", unit="step", disable=not progress)
    with bar:
        for epoch in range(epochs):
            if max_steps is not None and report.steps >= max_steps:
                break
            report.epochs += 1
            losses: list[float] = []
            for batch in _epoch_batches(method, examples, batch_size, epoch, seed, sampler):
                if max_steps is not None and report.steps >= max_steps:
                    break
                if byol is not None:
                    byol.train()
                    # the target gives stable regression targets: no dropout, and a batch norm would
                    # use its EMA-copied running statistics, not the batch's (as Grill et al. do); the
                    # text encoders here use layer norm, which does not depend on the mode
                    byol.target.eval()
                    v1 = encoder.tokenize(texts.views(batch, aug, rng))
                    v2 = encoder.tokenize(texts.views(batch, aug, rng))
                    loss = byol.loss(v1, v2)
                else:
                    first, second = (batch, batch) if method == "simcse" else (batch[:, 0], batch[:, 1])
                    # one forward pass for both sides; dropout differs per row, so a text twice gives two views
                    vectors = encoder.embed_batch(
                        texts.views(first, aug, rng) + texts.views(second, aug, rng)
                    )
                    q, p = vectors[: len(batch)], vectors[len(batch) :]
                    ids1 = torch.from_numpy(np.asarray(first)).to(vectors.device)
                    ids2 = torch.from_numpy(np.asarray(second)).to(vectors.device)
                    loss = criterion(q, p, query_ids=ids1, positive_ids=ids2)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if max_grad_norm and max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
                optimizer.step()
                scheduler.step()
                if byol is not None:
                    byol.update_target()
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise ConfigError(f"pretrain: loss became {value} at step {report.steps + 1}; lower lr")
                losses.append(value)
                report.step_losses.append(value)
                report.steps += 1
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4f}")
            if losses:
                report.epoch_losses.append(float(np.mean(losses)))
    return report
