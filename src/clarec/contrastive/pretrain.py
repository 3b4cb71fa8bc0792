"""Encoder adaptation: fine-tune a :class:`~clarec.text.encoder.TextEncoder` on item texts before a model uses it.

Three methods, all trained on the training split only (no leakage into validation or test):

- ``"simcse"`` (unsupervised SimCSE, Gao et al. 2021): every item text goes through the encoder twice
  with dropout on; the two vectors are a positive pair, the other texts of the batch are negatives
  (InfoNCE).
- ``"simcse-sup"`` (supervised SimCSE on collaborative pairs): two items consumed one after the other by
  the same user in the training split form a positive pair; batches never hold a text twice, so the
  in-batch negatives are real negatives (symmetric InfoNCE).
- ``"byol"`` (Grill et al. 2020): two augmented views of each item text; the online encoder plus a
  projector and a predictor regress an exponential-moving-average target. Projector, predictor and
  target are dropped afterwards; only the adapted encoder stays.

Before and after training, :func:`embedding_diagnostics` measures alignment (held-out positive pairs:
co-consumed pairs of the validation split; for the unsupervised methods also two views of a text) and
uniformity (item vectors), plus a retrieval check: the mean cosine of held-out co-consumed pairs against
the same items paired at random.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from clarec.contrastive.augment import Compose, FieldDropout, IdentityAugment, TextAugment, WordDropout
from clarec.contrastive.byol import BYOL
from clarec.contrastive.diagnostics import alignment, uniformity
from clarec.contrastive.infonce import InfoNCELoss
from clarec.contrastive.samplers import NoDuplicateBatchSampler
from clarec.data.dataset import Dataset
from clarec.errors import ConfigError, DataError
from clarec.text.templates import DEFAULT_ITEM_FIELDS, item_text

if TYPE_CHECKING:
    from clarec.config import ExperimentConfig
    from clarec.data.split import Split
    from clarec.text.encoder import TextEncoder

__all__ = [
    "METHODS",
    "PretrainReport",
    "collaborative_pairs",
    "default_augment",
    "embedding_diagnostics",
    "pretrain_encoder",
    "run_pretraining",
]

Method = Literal["simcse", "simcse-sup", "byol"]
#: The adaptation methods :func:`pretrain_encoder` knows.
METHODS: tuple[str, ...] = ("simcse", "simcse-sup", "byol")
#: Files written by :func:`run_pretraining` in its output folder.
ENCODER_FOLDER = "encoder"
REPORT_FILE = "pretrain.json"


# ---------------------------------------------------------------------------------------------- pairs
def collaborative_pairs(ds: Dataset, exclude: np.ndarray | None = None) -> np.ndarray:
    """Distinct pairs of different items consumed one right after the other by the same user in ``ds``.

    Returns an int64 array ``(n, 2)`` with ``a < b`` in every row (a pair is unordered), rows sorted.
    Pass only the training split when the pairs are used for training. ``exclude`` (pairs in the same
    form, e.g. the training pairs) removes those pairs, so held-out pairs are really unseen.
    """
    firsts, seconds = [], []
    for history in ds.user_histories():
        if len(history) > 1:
            firsts.append(history[:-1])
            seconds.append(history[1:])
    if not firsts:
        return np.empty((0, 2), dtype=np.int64)
    a, b = np.concatenate(firsts).astype(np.int64), np.concatenate(seconds).astype(np.int64)
    keep = a != b
    pairs = np.stack([np.minimum(a, b)[keep], np.maximum(a, b)[keep]], axis=1)
    pairs = np.unique(pairs, axis=0).reshape(-1, 2)
    if exclude is not None and len(exclude) and len(pairs):
        n = int(max(pairs.max(), np.max(exclude))) + 1
        drop = np.isin(
            pairs[:, 0] * n + pairs[:, 1], np.asarray(exclude)[:, 0] * n + np.asarray(exclude)[:, 1]
        )
        pairs = pairs[~drop]
    return pairs


# ------------------------------------------------------------------------------------------ texts
class _ItemTexts:
    """Item texts of a dataset, their distinct values, and (for augmentations) the field records."""

    def __init__(self, ds: Dataset, fields: Sequence[str]):
        self.fields = [fields] if isinstance(fields, str) else list(fields)
        self.texts = item_text(ds.items, self.fields)
        first: dict[str, int] = {}
        self.text_id = np.array([first.setdefault(t, len(first)) for t in self.texts], dtype=np.int64)
        self.unique = list(first)
        # One item per distinct text: its field values are what an augmentation changes.
        self.representative = np.zeros(len(self.unique), dtype=np.int64)
        self.representative[self.text_id[::-1]] = np.arange(len(self.texts))[::-1]
        present = [f for f in self.fields if f in ds.items.columns]
        self._columns = {f: ds.items[f].tolist() for f in present}

    def record(self, text_id: int) -> dict[str, Any]:
        item = int(self.representative[text_id])
        return {f: col[item] for f, col in self._columns.items()}

    def views(self, text_ids: np.ndarray, augment: TextAugment, rng: np.random.Generator) -> list[str]:
        """Texts of ``text_ids`` after ``augment`` (applied to the field record, then rendered)."""
        if isinstance(augment, IdentityAugment):
            return [self.unique[int(t)] for t in text_ids]
        out = []
        for t in text_ids:
            record = augment(self.record(int(t)), rng)
            if isinstance(record, str):  # an augmentation that renders text itself
                out.append(record)
            else:
                out.append(item_text(record, list(record) or self.fields)[0] if record else "")
        return out


def default_augment(method: str) -> TextAugment:
    """The views each method uses by default: identity for SimCSE (dropout makes the views); for BYOL
    field dropout (title kept) followed by word dropout."""
    if method == "byol":
        return Compose([FieldDropout(0.2, keep=("title",)), WordDropout(0.1)])
    return IdentityAugment()


# ------------------------------------------------------------------------------------------ diagnostics
def _seeded_sample(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= k else np.sort(rng.choice(n, size=k, replace=False))


@torch.no_grad()
def _view_vectors(encoder: TextEncoder, texts: list[str], batch_size: int) -> torch.Tensor:
    out = [
        encoder.embed_batch(texts[s : s + batch_size], train=True) for s in range(0, len(texts), batch_size)
    ]
    return torch.cat(out).float().cpu()


def embedding_diagnostics(
    encoder: TextEncoder,
    texts: Sequence[str],
    heldout_pairs: np.ndarray | None = None,
    view_text_ids: np.ndarray | None = None,
    item_texts: _ItemTexts | None = None,
    augment: TextAugment | None = None,
    max_uniformity_items: int = 4096,
    max_view_texts: int = 512,
    batch_size: int = 64,
    seed: int = 0,
) -> dict[str, float]:
    """How the encoder's item space is shaped (all measures on L2-normalised vectors).

    Keys:
        ``uniformity``: :func:`~clarec.contrastive.diagnostics.uniformity` of the distinct item texts'
            vectors (a seeded sample of ``max_uniformity_items`` when there are more); lower is more spread.
        ``alignment``, ``pair_cosine``, ``random_cosine``, ``cosine_gap`` (with ``heldout_pairs``, rows of
            item indices into ``texts``): alignment of the pairs, their mean cosine, the mean cosine of
            the same items re-paired at random (a seeded permutation of the second column, so both sides
            keep their popularity), and the difference. A useful encoder has a clearly positive gap.
        ``alignment_views`` (with ``view_text_ids`` and ``item_texts``): alignment of two views of the
            same text with dropout on (and ``augment``, if given), as the unsupervised methods see them.

    Vectors come from :meth:`TextEncoder.encode` (eval mode, no dropout); the encoder is left in eval mode.
    """
    rng = np.random.default_rng(seed)
    texts = list(texts)
    distinct = list(dict.fromkeys(texts))
    where = {t: i for i, t in enumerate(distinct)}
    vectors = torch.from_numpy(np.asarray(encoder.encode(distinct), dtype=np.float32))
    vectors = F.normalize(vectors, dim=-1)
    out: dict[str, float] = {}
    if len(distinct) >= 2:
        rows = _seeded_sample(len(distinct), max_uniformity_items, rng)
        out["uniformity"] = float(uniformity(vectors[torch.from_numpy(rows)]))
    if heldout_pairs is not None and len(heldout_pairs):
        ids = np.array([where[t] for t in texts], dtype=np.int64)
        a = vectors[torch.from_numpy(ids[heldout_pairs[:, 0]])]
        b = vectors[torch.from_numpy(ids[heldout_pairs[:, 1]])]
        shuffled = b[torch.from_numpy(rng.permutation(len(b)))]
        out["alignment"] = float(alignment(a, b))
        out["pair_cosine"] = float((a * b).sum(-1).mean())
        out["random_cosine"] = float((a * shuffled).sum(-1).mean())
        out["cosine_gap"] = out["pair_cosine"] - out["random_cosine"]
    if view_text_ids is not None and item_texts is not None and len(view_text_ids):
        chosen = view_text_ids[_seeded_sample(len(view_text_ids), max_view_texts, rng)]
        aug = augment or IdentityAugment()
        v1 = _view_vectors(encoder, item_texts.views(chosen, aug, rng), batch_size)
        v2 = _view_vectors(encoder, item_texts.views(chosen, aug, rng), batch_size)
        out["alignment_views"] = float(alignment(v1, v2))
    encoder.module.eval()
    return out


# ------------------------------------------------------------------------------------------ report
@dataclass
class PretrainReport:
    """What :func:`pretrain_encoder` did.

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
        keys = [k for k in _DIAGNOSTIC_ORDER if k in self.before or k in self.after]
        lines = ["| measure | before | after | change |", "|---|---:|---:|---:|"]
        for k in keys:
            b, a = self.before.get(k, math.nan), self.after.get(k, math.nan)
            lines.append(f"| {k} | {b:.4f} | {a:.4f} | {a - b:+.4f} |")
        return "\n".join(lines)


_DIAGNOSTIC_ORDER = (
    "alignment",
    "alignment_views",
    "uniformity",
    "pair_cosine",
    "random_cosine",
    "cosine_gap",
)


# ------------------------------------------------------------------------------------------ training
class _TextTower(nn.Module):
    """Transformer → pooling → projector, on tokenised input; the BYOL online network.

    Holds the encoder's module (not the encoder object), so BYOL's deep copy of it (the target) copies
    weights only, and parameter order matches between online and target.
    """

    def __init__(self, backbone: nn.Module, pooling: str, projector: nn.Module):
        super().__init__()
        self.backbone, self.pooling, self.projector = backbone, pooling, projector

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:  # mean over real tokens, as TextEncoder pools
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return self.projector(pooled)


def _tokenize(encoder: TextEncoder, texts: list[str]) -> dict[str, torch.Tensor]:
    limit = getattr(encoder.module.config, "max_position_embeddings", None)
    max_tokens = (
        min(encoder.max_length, limit) if isinstance(limit, int) and limit > 0 else encoder.max_length
    )
    batch = encoder.tokenizer(
        texts,
        truncation=True,
        max_length=max_tokens,
        padding=True,
        return_tensors="pt",
        return_token_type_ids=False,
    )
    return {
        "input_ids": batch["input_ids"].to(encoder.device),
        "attention_mask": batch["attention_mask"].to(encoder.device),
    }


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


def pretrain_encoder(
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
    byol_momentum: float = 0.99,
    diagnostics: bool = True,
    progress: bool = True,
) -> PretrainReport:
    """Adapt ``encoder`` in place to the item texts of ``train``; returns what happened.

    Args:
        encoder: the encoder to fine-tune (its weights change; its cache key changes with them).
        train: the training split; the only source of texts (items with a training interaction) and
            of collaborative pairs (:func:`collaborative_pairs`).
        method: ``"simcse"``, ``"simcse-sup"`` or ``"byol"`` (see the module docstring).
        epochs: passes over the examples (texts, or pairs for ``simcse-sup``).
        batch_size: examples per step (texts or pairs); the other examples of a batch are negatives.
        lr: AdamW peak learning rate, reached after a linear warm-up over ``warmup`` of the planned steps.
        temperature: InfoNCE temperature (unused by BYOL).
        max_steps: stop after this many optimiser steps (None: all epochs).
        fields: item fields rendered into each text (:func:`~clarec.text.templates.item_text`).
        seed: seeds batch order, augmentations, dropout and the BYOL heads; same seed, same result.
        augment: view augmentation applied to each item's field record before rendering; None uses
            :func:`default_augment` (identity for SimCSE, where dropout makes the views).
        valid: validation split, used only for the held-out diagnostics (co-consumed pairs not in train).
        warmup, weight_decay, max_grad_norm: optimiser schedule, AdamW decay and gradient clipping.
        byol_momentum: BYOL target EMA rate at the first step (cosine schedule to 1).
        diagnostics: measure :func:`embedding_diagnostics` before and after (costs two encodings of
            every item).
        progress: show a progress bar with the running loss.

    Raises:
        ConfigError: a bad parameter, or too few texts / collaborative pairs in ``train`` to form a batch.
    """
    _check(method, epochs, batch_size, lr, temperature, max_steps, warmup)
    start = time.perf_counter()
    texts = _ItemTexts(train, fields)
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
        if len(heldout) > 5000:  # enough for stable means; keeps the diagnostics quick
            heldout = heldout[_seeded_sample(len(heldout), 5000, np.random.default_rng(seed))]
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
            seed, warmup, weight_decay, max_grad_norm, byol_momentum, progress,
        )  # fmt: skip
        encoder.mark_weights_changed()  # BYOL trains the module directly, outside embed_batch
        encoder.module.eval()
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
        report.settings["byol_momentum"] = byol_momentum
    return report


def _train(
    encoder: TextEncoder,
    texts: _ItemTexts,
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
    byol_momentum: float,
    progress: bool,
) -> PretrainReport:
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
        tower = _TextTower(encoder.module, encoder.pooling, projector)
        byol = BYOL(
            tower, projector_dim=dim, predictor_hidden=4 * dim, momentum=byol_momentum, total_steps=planned
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
    report = PretrainReport(method=method, steps=0, epochs=0, n_examples=int(len(examples)))
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
                    byol.target.eval()  # the target gives stable regression targets: no dropout
                    v1 = _tokenize(encoder, texts.views(batch, aug, rng))
                    v2 = _tokenize(encoder, texts.views(batch, aug, rng))
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


# ------------------------------------------------------------------------------------------ config entry
def run_pretraining(
    cfg: ExperimentConfig, split: Split, out: str | Path, progress: bool = True
) -> PretrainReport:
    """Run a config's ``pretrain`` section on ``split.train`` and write the results to ``out``.

    Writes ``out/encoder/`` (the adapted encoder, :meth:`TextEncoder.save`; read it back with
    :meth:`TextEncoder.load` or pass the folder as a model's ``encoder`` parameter) and ``out/pretrain.json``
    (the resolved config, losses per step and epoch, diagnostics before and after, seconds).
    """
    from clarec.text.encoder import TextEncoder

    p = cfg.pretrain
    if p is None:
        raise ConfigError("the config has no 'pretrain' section")
    out = Path(out)
    encoder = TextEncoder(p.encoder, max_length=p.max_length, device=p.device, progress=progress)
    report = pretrain_encoder(
        encoder,
        split.train,
        method=p.method,
        epochs=p.epochs,
        batch_size=p.batch_size,
        lr=p.lr,
        temperature=p.temperature,
        max_steps=p.max_steps,
        fields=DEFAULT_ITEM_FIELDS if p.fields is None else p.fields,
        seed=cfg.seed if p.seed is None else p.seed,
        valid=split.valid,
        warmup=p.warmup,
        progress=progress,
    )
    encoder.save(out / ENCODER_FOLDER)
    payload = {"config": cfg.model_dump(mode="json", exclude_none=True), **report.to_dict()}
    try:
        (out / REPORT_FILE).write_text(json.dumps(payload, indent=2) + "\n")
    except OSError as e:
        raise DataError(out / REPORT_FILE, f"cannot write: {e}") from None
    return report
