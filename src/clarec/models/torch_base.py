"""What every model trained with torch shares: the training settings, declared once, and the
plumbing from them to :class:`~clarec.train.loop.Trainer` and the validation metric.

A torch model subclasses :class:`TorchRecommender`, declares its own hyper-parameters (and, where it
wants other defaults, re-declares a setting: ``epochs = TorchRecommender.epochs.with_default(200)``),
and in ``_fit`` builds its module, batches and loss, then calls :meth:`TorchRecommender._train`.
Randomness: :meth:`fit` seeds the global generators (dropout and other layers draw from them), and
:meth:`_generators` gives the model its own NumPy and torch generators for everything else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Self

import numpy as np
import torch
from torch import nn

from clarec.data.dataset import Dataset
from clarec.models.base import Recommender
from clarec.models.params import param
from clarec.train.loop import Trainer, TrainHistory, device_name, resolve_device, seed_everything
from clarec.train.validation import RankingValidator


class TorchRecommender(Recommender):
    """Base of the torch models.

    Training settings (every torch model takes them):
        epochs: maximum number of epochs.
        batch_size: training examples per step.
        patience: validations without improvement before stopping (with ``valid`` only).
        min_epochs: no early stop before this epoch (for validation curves that dip at the start).
        max_steps: stop after this many optimiser steps (``None``: no limit).
        eval_every: validate every this many epochs.
        eval_k: cut-off of the validation NDCG that early stopping follows.
        eval_history: ``masked`` (default): training items are left out of the validation ranking;
            ``kept``: every item is ranked — set to the run's convention (the main table's
            ``history_items``) by ``clarec run`` and ``clarec tune``.
        eval_max_users: validate on at most this many users (``None``: all).
        seed: seeds initialisation, shuffling, sampling and dropout; same seed, same model (CPU).
        run_dir: folder for the training log, history and best checkpoint.
        progress: progress bar; ``None`` shows it only on a terminal.
        num_threads: torch threads (``None``: every core; on a machine shared with other jobs, 1 can
            be much faster than oversubscribed cores).
        device: where training runs: ``cpu`` (default), ``cuda`` / ``cuda:N``, or ``auto`` (a GPU
            where torch sees one). A model keeps the tensors its loss reads on ``device_`` and brings
            its fitted vectors back to the CPU, where scoring and serving run.
        precision: ``fp32`` (default) or ``bf16`` (mixed precision: the training steps' forward pass
            under bfloat16 autocast; worth it on GPUs with bf16 units, slow on most CPUs).
        resume: continue an interrupted fit from ``run_dir``'s last finished epoch (the Trainer
            saves its state after every epoch; ``clarec run --resume``); a finished one is not
            redone. The same settings and data are required (an error otherwise), and the fitted
            model is the one an uninterrupted fit gives (CPU).
    """

    epochs = param(100, ge=1)
    batch_size = param(256, ge=2)
    patience = param(10, ge=1)
    min_epochs = param(0, ge=0)
    max_steps = param(None, int, ge=1)
    eval_every = param(1, ge=1)
    eval_k = param(20, ge=1)
    eval_history = param("masked", choices=("masked", "kept"))
    eval_max_users = param(None, int, ge=1)
    seed = param(0, ge=0)
    run_dir = param(None, str)
    progress = param(None, bool)
    num_threads = param(None, int, ge=1)
    device = param("cpu", device_name)
    precision = param("fp32", choices=("fp32", "bf16"))
    resume = param(False)

    #: Settings that say where and how a fit runs, not what it computes (left out of a resumable
    #: run's signature).
    _RUN_SETTINGS: ClassVar[frozenset[str]] = frozenset(
        {"run_dir", "progress", "num_threads", "device", "resume"}
    )

    #: What :meth:`_train` returns, kept after fitting: epochs, losses, validation metric, times.
    history_: TrainHistory
    #: Called with ``(epoch, metric)`` after each validation while fitting (not a hyper-parameter:
    #: ``clarec tune`` sets it on a trial's model to report the curve and prune).
    validation_callback: Callable[[int, float], None] | None = None
    #: Under torchrun, whether the model's loss splits each batch over the ranks itself (the
    #: two-tower: its in-batch negatives are gathered from every rank); otherwise the Trainer gives
    #: each rank its slice.
    splits_batches_itself: ClassVar[bool] = False
    #: Where :meth:`fit` trains (resolved from ``device``).
    device_: torch.device = torch.device("cpu")

    def fit(self, train: Dataset, valid: Dataset | None = None) -> Self:
        self.device_ = resolve_device(self.device)
        seed_everything(self.seed)  # dropout and other layers draw from the global generators
        self._rngs: list[np.random.Generator | torch.Generator] = []
        self._data_print = (train.fingerprint(), None if valid is None else valid.fingerprint())
        return super().fit(train, valid)

    def trains_torch(self) -> bool:
        return True

    def _generators(self) -> tuple[np.random.Generator, torch.Generator]:
        """Fresh NumPy and torch generators seeded with ``seed`` (kept, so that a resumed fit
        restores their state)."""
        rngs = np.random.default_rng(self.seed), torch.Generator().manual_seed(self.seed)
        for g in rngs:
            self._track(g)
        return rngs

    def _track(self, generator: np.random.Generator | torch.Generator) -> None:
        """Save and restore ``generator``'s state with a resumable fit's (one the model made itself)."""
        getattr(self, "_rngs", []).append(generator)

    def _signature(self) -> str:
        """What a fit computes: the class, its settings (not where or how it runs; those at their
        defaults left out, so that a setting added to a model later does not make older run folders
        unreadable) and the data it learns from (a fingerprint of the training and validation
        interactions: another split of the same shape is other data)."""
        settings = {
            k: v
            for k, v in self.get_params().items()
            if k not in self._RUN_SETTINGS and v != self.params[k].default
        }
        return f"{type(self).__name__} {settings!r} data {getattr(self, '_data_print', None)}"

    def _validator(self, valid: Dataset | None) -> RankingValidator | None:
        """NDCG@``eval_k`` on ``valid`` (training items excluded unless ``eval_history`` is ``kept``);
        ``None`` without validation data."""
        if valid is None or valid.n_interactions == 0:
            return None
        return RankingValidator(
            self.seen,
            valid.to_csr(),
            k=self.eval_k,
            max_users=self.eval_max_users,
            seed=self.seed,
            exclude_seen=self.eval_history == "masked",
        )

    def _train(
        self,
        module: nn.Module,
        batches: Callable[[int], Iterable[Any]],
        loss_fn: Callable[[Any], torch.Tensor],
        optimizer: torch.optim.Optimizer,
        validate: Callable[[], float] | None = None,
        after_step: Sequence[Callable[[], None]] = (),
    ) -> TrainHistory:
        """Run :class:`~clarec.train.loop.Trainer` with this model's settings; sets ``history_``."""
        trainer = Trainer(
            epochs=self.epochs,
            patience=self.patience,
            min_epochs=self.min_epochs,
            max_steps=self.max_steps,
            eval_every=self.eval_every,
            metric_name=f"ndcg@{self.eval_k}",
            run_dir=self.run_dir,
            progress=self.progress,
            num_threads=self.num_threads,
            on_validate=self.validation_callback,
            device=self.device_,
            precision=self.precision,
            resume=self.resume,
        )
        self.history_ = trainer.fit(
            module,
            batches,
            loss_fn,
            optimizer,
            validate,
            after_step,
            not self.splits_batches_itself,
            rngs=getattr(self, "_rngs", ()),
            signature=self._signature(),
        )
        return self.history_
