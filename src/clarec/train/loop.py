"""The training loop shared by every PyTorch model.

A model supplies what is specific to it — a batch iterator per epoch, a loss function of a batch,
an optimiser, optionally a ``validate() -> float`` callable (higher is better) and after-step
callbacks (schedules, an EMA target) — and :class:`Trainer` runs the epochs: progress bar with the
live loss, early stopping with patience, a step budget, restoring the best weights, and a run folder
(``log.txt``, ``history.json``, ``best.pt``, and ``last.pt`` to resume an interrupted fit from its
last finished epoch). Models reach it through
:class:`clarec.models.torch_base.TorchRecommender`, which owns the training settings.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn
from tqdm.auto import tqdm

from clarec.contrastive.temperature import FixedTemperature, Temperature
from clarec.contrastive.weighting import FixedWeighting, LossWeighting
from clarec.errors import ClarecError, ConfigError
from clarec.train import distributed

__all__ = [
    "DivergedError",
    "Trainer",
    "TrainHistory",
    "load_checkpoint",
    "device_name",
    "keep_freed_memory",
    "resolve_device",
    "seed_everything",
    "set_torch_threads",
    "to_device",
]

CHECKPOINT_NAME = "best.pt"
HISTORY_NAME = "history.json"
LOG_NAME = "log.txt"
LAST_NAME = "last.pt"  # the fit's state after its last finished epoch, to resume from


class DivergedError(ClarecError):
    """The training loss became NaN or infinite (usually a learning rate that is too high)."""


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python's, NumPy's legacy and torch's global generators; return a fresh NumPy Generator.

    Models should prefer explicit generators; this exists for code that draws from the global
    ones (dropout, third-party layers).
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def set_torch_threads(n: int | None = None) -> int:
    """Let torch use ``n`` threads (default: every core this process may run on); returns ``n``."""
    if n is None:
        try:
            n = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            n = os.cpu_count() or 1
    n = max(1, int(n))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


KEEP_MEMORY_ENV = "CLAREC_KEEP_MEMORY"
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt's parameter numbers (glibc malloc.h)
_kept: bool | None = None  # whether keep_freed_memory is in effect (None: not asked yet)


def keep_freed_memory() -> bool:
    """Let this process reuse the large blocks it frees rather than hand them back to the system
    (glibc only; done once per process; ``CLAREC_KEEP_MEMORY=0`` leaves the allocator alone).

    glibc hands large freed blocks back to the system (memory-mapped ones at once, the heap's top
    once it exceeds a trim threshold) and faults fresh zeroed pages in for the next, so a step that
    builds (batch × catalogue) score matrices, or Adam's temporaries over embedding tables, pays
    those page faults every time: 20–47% of a BPR, LightGCN, SASRec or AlphaRec step on Beauty, on
    one thread (``benchmarks/results/allocator.md``). With memory mapping off and trimming of the
    heap's top raised to 2 GB, freed blocks are reused. The numbers computed do not change; the
    process's peak memory grows somewhat (freed blocks are kept, and reused only where they fit)
    and does not fall back after the fit. Returns whether the setting is in effect.
    """
    global _kept
    if _kept is not None:
        return _kept
    _kept = False
    if os.environ.get(KEEP_MEMORY_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return _kept
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return _kept
    try:
        libc = ctypes.CDLL("libc.so.6")
        _kept = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):
        pass
    return _kept


def device_name(spec: Any) -> str:
    """A ``device`` setting checked for its form: ``"cpu"``, ``"auto"``, ``"cuda"`` or ``"cuda:N"``."""
    text = str(spec).strip().lower()
    if text in ("cpu", "auto", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
        return text
    raise ConfigError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {spec!r}")


def resolve_device(spec: str) -> torch.device:
    """The torch device a ``device`` setting names: ``"cpu"``, ``"cuda"`` / ``"cuda:N"`` (an error
    when torch sees no such GPU), or ``"auto"`` (CUDA where available, else the CPU). Under torchrun
    ``"cuda"`` and ``"auto"`` mean this rank's GPU (``LOCAL_RANK``)."""
    text = device_name(spec)
    if text == "cpu" or (text == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"device {text!r}: torch sees no CUDA GPU here (use 'cpu' or 'auto')")
    if text in ("auto", "cuda"):
        index = int(os.environ.get("LOCAL_RANK", "0")) if distributed.launched() else 0
    else:
        index = int(text[5:])
    if index >= torch.cuda.device_count():
        raise ConfigError(
            f"device {text!r}: GPU {index} asked for (under torchrun: one per local rank), "
            f"this machine has {torch.cuda.device_count()}"
        )
    return torch.device("cuda", index)


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` with every torch tensor in it (inside tuples, lists and dicts too) on ``device``;
    anything else (NumPy arrays, numbers) as it is."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple | list):
        return type(batch)(to_device(v, device) for v in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


@dataclass
class TrainHistory:
    """What happened during training, one entry per epoch in each list.

    ``val_metrics`` holds ``None`` for epochs without validation. ``best_epoch`` is the (1-based)
    epoch whose weights the module holds after training: the best validated one, or the last
    epoch when there was no validation. ``traces`` holds, per epoch, the value at the epoch's end of
    every learnable or scheduled temperature (``temperature`` or ``temperature <module path>``) and
    every non-constant loss weighting (``weight <task>``) inside the trained module.
    ``resumed_after`` lists the epochs after which the fit was stopped and resumed (``resume``).
    """

    metric_name: str = "metric"
    epochs: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    val_metrics: list[float | None] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    best_metric: float | None = None
    stopped_early: bool = False
    traces: dict[str, list[float]] = field(default_factory=dict)
    resumed_after: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> TrainHistory:
        return cls(**json.loads(Path(path).read_text()))


def trace_values(module: nn.Module) -> dict[str, float]:
    """The current values of the temperatures and loss weights inside ``module`` that can change
    during training (learnable or scheduled); constant ones are left out."""
    values: dict[str, float] = {}
    for name, sub in module.named_modules():
        if isinstance(sub, Temperature) and not isinstance(sub, FixedTemperature):
            values["temperature" + (f" {name}" if name else "")] = float(sub)
        elif isinstance(sub, LossWeighting) and not isinstance(sub, FixedWeighting):
            values |= {f"weight {task}": float(w) for task, w in sub.weights().items()}
    return values


def load_checkpoint(path: str | Path, module: nn.Module) -> nn.Module:
    """Load a ``state_dict`` written by :class:`Trainer` into ``module`` (``weights_only``, no pickles)."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    module.load_state_dict(state)
    return module


class _LossStep(nn.Module):
    """``module``'s loss of a batch as a forward pass, so DistributedDataParallel can wrap it (DDP
    synchronises the gradients of the parameters a forward pass used)."""

    def __init__(self, module: nn.Module, loss_fn: Callable[[Any], torch.Tensor]):
        super().__init__()
        self.module = module
        self.loss_fn = loss_fn

    def forward(self, batch: Any) -> torch.Tensor:
        return self.loss_fn(batch)


class Trainer:
    """Runs epochs of mini-batch training with early stopping.

    Under torchrun (:mod:`clarec.train.distributed`) each rank trains on its slice of every batch in
    DistributedDataParallel; rank 0 validates (the figure is broadcast, so all ranks stop together)
    and alone writes the run folder.

    Args:
        epochs: maximum number of epochs.
        patience: stop after this many validations without improvement (``None``: never stop
            early). Only used when a ``validate`` callable is given to :meth:`fit`.
        eval_every: validate every this many epochs (and always after the last epoch).
        min_epochs: never stop early before this epoch (a validation curve that dips at the start,
            as XSimGCL's does, would otherwise end training inside the dip); the best epoch is
            still the best one seen.
        max_steps: stop after this many optimiser steps in all (the epoch in progress ends there
            and is validated); ``None``: no limit.
        metric_name: label of the validation metric in logs and the history.
        run_dir: folder for ``log.txt``, ``history.json`` and ``best.pt``; nothing is written
            when ``None``.
        progress: show a tqdm bar; ``None`` shows it only when stderr is a terminal.
        num_threads: torch threads; ``None`` uses every available core.
        on_validate: called with ``(epoch, metric)`` after each validation (``clarec tune`` reports
            the curve to its pruner there; an exception it raises ends training).
        device: where training runs (a torch device or its name, see :func:`resolve_device`): the
            module is moved there and so is every tensor of every batch; the model keeps whatever
            else its loss reads (an adjacency, text vectors) on the same device.
        precision: ``"fp32"`` (default) or ``"bf16"``: each step's forward pass under
            ``torch.autocast`` in bfloat16 (matrix products and attention in bf16, reductions and the
            weights in fp32; no loss scaling is needed with bf16). Validation stays in fp32.
        resume: continue from ``run_dir``'s last finished epoch when the folder holds one (after
            every epoch the Trainer writes the weights, the optimiser, the counters, the history
            and the state of the global generators and of the ``rngs`` given to :meth:`fit`);
            a finished fit is not redone. Given the same settings, data and code, the resumed fit
            ends where an uninterrupted one would (on the CPU). One process only (not under torchrun).
    """

    def __init__(
        self,
        epochs: int = 100,
        patience: int | None = 10,
        eval_every: int = 1,
        min_epochs: int = 0,
        max_steps: int | None = None,
        metric_name: str = "metric",
        run_dir: str | Path | None = None,
        progress: bool | None = None,
        num_threads: int | None = None,
        on_validate: Callable[[int, float], None] | None = None,
        device: torch.device | str = "cpu",
        precision: str = "fp32",
        resume: bool = False,
    ):
        if epochs < 1:
            raise ClarecError(f"epochs must be at least 1, got {epochs}")
        if eval_every < 1:
            raise ClarecError(f"eval_every must be at least 1, got {eval_every}")
        if patience is not None and patience < 1:
            raise ClarecError(f"patience must be at least 1 (or None), got {patience}")
        if min_epochs < 0:
            raise ClarecError(f"min_epochs must be >= 0, got {min_epochs}")
        if max_steps is not None and max_steps < 1:
            raise ClarecError(f"max_steps must be at least 1 (or None), got {max_steps}")
        self.epochs = int(epochs)
        self.patience = patience
        self.eval_every = int(eval_every)
        self.min_epochs = int(min_epochs)
        self.max_steps = max_steps
        self.metric_name = metric_name
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.progress = progress
        self.num_threads = num_threads
        self.on_validate = on_validate
        self.device = torch.device(device)
        if precision not in ("fp32", "bf16"):
            raise ClarecError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        self.precision = precision
        if resume and run_dir is None:
            raise ConfigError("resume needs a run_dir to resume from")
        self.resume = bool(resume)
        self._out: Path | None = None  # the run folder this process writes (rank 0's)

    # ------------------------------------------------------------------ helpers
    def _log(self, line: str) -> None:
        if self._out is not None:
            with open(self._out / LOG_NAME, "a", encoding="utf-8") as f:
                f.write(line + "\n")

    def _show_progress(self) -> bool:
        if self.progress is not None:
            return bool(self.progress)
        return sys.stderr.isatty()

    # ------------------------------------------------------------------ the loop
    def fit(
        self,
        module: nn.Module,
        batches: Callable[[int], Iterable[Any]],
        loss_fn: Callable[[Any], torch.Tensor],
        optimizer: torch.optim.Optimizer,
        validate: Callable[[], float] | None = None,
        after_step: Sequence[Callable[[], None]] = (),
        shard_batches: bool = True,
        rngs: Sequence[np.random.Generator | torch.Generator] = (),
        signature: str = "",
    ) -> TrainHistory:
        """Train ``module`` in place and return the :class:`TrainHistory`.

        Args:
            module: the parameters being trained; switched to ``train()`` for batches and
                ``eval()`` (under ``torch.no_grad``) for validation.
            batches: ``batches(epoch)`` yields the batches of one epoch (epochs count from 1).
            loss_fn: scalar loss of one batch.
            optimizer: optimiser over ``module``'s parameters.
            validate: metric on validation data, higher is better. When given, the weights of
                the best epoch are restored at the end (and saved to ``run_dir/best.pt``).
            after_step: called in order after every optimiser step (a temperature or loss-weight
                schedule, a BYOL target's EMA update).
            shard_batches: under torchrun, give each rank its slice of every batch; ``False`` for a
                ``loss_fn`` that splits the work over the ranks itself (and sees the whole batch).
            rngs: the model's own generators (batches, sampling), saved and restored with the
                run state so that a resumed fit draws what the uninterrupted one would.
            signature: what the run's result depends on (the model's settings, the data's shape);
                resuming a run folder written under another signature is an error.
        """
        set_torch_threads(self.num_threads)
        keep_freed_memory()
        self._steps = 0
        main = distributed.is_main()
        self._out = self.run_dir if main else None  # one rank writes the run folder
        if self.resume and distributed.world_size() > 1:
            raise ConfigError("resume runs in one process, not under torchrun")
        module.to(self.device)  # in place: the optimiser's parameters are the same objects
        step = self._step_function(module, loss_fn, shard_batches)
        history = TrainHistory(metric_name=self.metric_name)
        best_state: dict[str, torch.Tensor] | None = None
        best = -math.inf
        stale, done, finished = 0, 0, False
        resumed = self._resume_state(module, optimizer, rngs, signature) if self.resume else None
        if resumed is not None:
            history, best, stale, done, finished = resumed
            history.resumed_after.append(done)
            if history.best_metric is not None and (self._out / CHECKPOINT_NAME).is_file():
                best_state = torch.load(
                    self._out / CHECKPOINT_NAME, map_location=self.device, weights_only=True
                )
            self._log(f"resumed after epoch {done}" + (" (finished)" if finished else ""))
        elif self._out is not None:
            self._out.mkdir(parents=True, exist_ok=True)
            (self._out / LOG_NAME).write_text("")
            (self._out / LAST_NAME).unlink(missing_ok=True)  # a new fit: an older one is not resumable
        bar = tqdm(
            total=self.epochs, desc="train", unit="epoch", disable=not self._show_progress(), leave=False
        )
        # NumPy's BLAS (catalogue losses and validations compute with it on the CPU) gets torch's threads
        blas = threadpool_limits(torch.get_num_threads(), user_api="blas")
        try:
            for epoch in range(done + 1, 0 if finished else self.epochs + 1):
                start = time.perf_counter()
                loss = self._run_epoch(module, batches(epoch), step, optimizer, after_step, bar, epoch)
                loss = distributed.mean_over_ranks(loss)
                out_of_steps = self.max_steps is not None and self._steps >= self.max_steps
                last = epoch == self.epochs or out_of_steps
                metric = None
                if validate is not None and (epoch % self.eval_every == 0 or last):
                    if main:
                        module.eval()
                        with torch.no_grad():
                            metric = float(validate())
                    metric = distributed.broadcast_float(metric)
                seconds = time.perf_counter() - start
                if metric is not None and self.on_validate is not None:
                    self.on_validate(epoch, metric)
                history.epochs.append(epoch)
                history.losses.append(loss)
                history.val_metrics.append(metric)
                history.seconds.append(seconds)
                for key, value in trace_values(module).items():
                    history.traces.setdefault(key, []).append(value)

                improved = metric is not None and metric > best
                if improved:
                    best, stale = metric, 0
                    history.best_epoch, history.best_metric = epoch, metric
                    best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
                    if self._out is not None:
                        torch.save(best_state, self._out / CHECKPOINT_NAME)
                elif metric is not None:
                    stale += 1

                shown = "-" if metric is None else f"{metric:.6f}"
                self._log(
                    f"epoch {epoch} loss {loss:.6f} {self.metric_name} {shown} "
                    f"time {seconds:.3f}s{' *' if improved else ''}"
                )
                bar.set_postfix(
                    loss=f"{loss:.4f}", **({self.metric_name: shown} if metric is not None else {})
                )
                bar.update(1)
                stop = None
                if self.patience is not None and stale >= self.patience and epoch >= self.min_epochs:
                    history.stopped_early = True
                    stop = f"early stop: no improvement in {self.patience} validations"
                elif out_of_steps:
                    stop = f"stop: max_steps ({self.max_steps}) reached"
                if self._out is not None:
                    history.save(self._out / HISTORY_NAME)
                    self._save_state(module, optimizer, rngs, signature, history, best, stale, epoch, stop)
                if stop:
                    self._log(stop)
                    break
        finally:
            bar.close()
            blas.restore_original_limits()

        if best_state is not None:
            module.load_state_dict(best_state)
            self._log(f"restored epoch {history.best_epoch} ({self.metric_name} {best:.6f})")
        else:
            # Without validation the final weights are the result.
            history.best_epoch = history.epochs[-1]
            if self._out is not None:
                torch.save(module.state_dict(), self._out / CHECKPOINT_NAME)
        if self._out is not None:
            history.save(self._out / HISTORY_NAME)
        module.eval()
        return history

    def _save_state(
        self,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        rngs: Sequence[np.random.Generator | torch.Generator],
        signature: str,
        history: TrainHistory,
        best: float,
        stale: int,
        epoch: int,
        stop: str | None,
    ) -> None:
        """Write ``last.pt``: everything a resumed fit needs (replaced whole, so a fit killed while
        writing it resumes from the epoch before)."""
        _, key, pos, has_gauss, gauss = np.random.get_state()  # NumPy's global MT19937
        state = {
            "epoch": epoch,
            "signature": signature,
            "finished": stop is not None or epoch == self.epochs,
            "steps": self._steps,
            "best": best,
            "stale": stale,
            "history": history.to_dict(),
            "module": module.state_dict(),
            "optimizer": optimizer.state_dict(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "generators": [
                g.get_state() if isinstance(g, torch.Generator) else g.bit_generator.state for g in rngs
            ],
            "numpy": [torch.from_numpy(key.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
            "python": random.getstate(),
        }
        path = self._out / LAST_NAME
        torch.save(state, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)

    def _resume_state(
        self,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        rngs: Sequence[np.random.Generator | torch.Generator],
        signature: str,
    ) -> tuple[TrainHistory, float, int, int, bool] | None:
        """Load the run folder's last state into the module, optimiser and generators:
        ``(history, best, stale, epoch, finished)``, or ``None`` when there is nothing to resume."""
        path = self._out / LAST_NAME
        if not path.is_file():
            return None
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state["signature"] != signature:
            raise ConfigError(
                f"{self._out} holds a fit of other settings or data; remove it, or fit without resume\n"
                f"  there: {state['signature']}\n  now:   {signature}"
            )
        module.load_state_dict(state["module"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch"])
        if state["cuda"]:
            torch.cuda.set_rng_state_all(state["cuda"])
        for g, saved in zip(rngs, state["generators"], strict=True):
            if isinstance(g, torch.Generator):
                g.set_state(saved)
            else:
                g.bit_generator.state = saved
        key, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state(("MT19937", key.numpy().astype(np.uint32), pos, has_gauss, gauss))
        random.setstate(state["python"])
        self._steps = state["steps"]
        history = TrainHistory(**state["history"])
        return history, state["best"], state["stale"], state["epoch"], state["finished"]

    @staticmethod
    def _step_function(module: nn.Module, loss_fn: Callable[[Any], torch.Tensor], shard_batches: bool):
        """``loss_fn``, or under torchrun the DDP-wrapped loss of this rank's slice of the batch
        (``None`` for a batch smaller than the number of ranks, which every rank then skips)."""
        world = distributed.world_size()
        if world == 1:
            return loss_fn
        from torch.nn.parallel import DistributedDataParallel

        # Buffers are built alike on every rank from the same data: none is synchronised in the
        # forward pass (torch 2.13 renamed the flag; older versions know only `broadcast_buffers`).
        # Parameters a model leaves out of some steps (BYOL's predictor) are allowed: the models that
        # use every parameter pay one extra graph traversal a step, of which torch prints a notice.
        no_sync = (
            {"forward_sync_buffers": False}
            if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
            else {"broadcast_buffers": False}
        )
        ddp = DistributedDataParallel(_LossStep(module, loss_fn), find_unused_parameters=True, **no_sync)
        me = distributed.rank()

        def step(batch: Any) -> torch.Tensor | None:
            size = distributed.batch_length(batch)
            if size is not None and size < world:
                return None
            return ddp(distributed.shard(batch, me, world) if shard_batches else batch)

        return step

    def _run_epoch(
        self,
        module: nn.Module,
        batches: Iterable[Any],
        loss_fn: Callable[[Any], torch.Tensor | None],
        optimizer: torch.optim.Optimizer,
        after_step: Sequence[Callable[[], None]],
        bar: tqdm,
        epoch: int,
    ) -> float:
        """One pass over the batches (or up to ``max_steps``); returns the mean batch loss."""
        module.train()
        total, n = 0.0, 0
        for batch in batches:
            if self.device.type != "cpu":
                batch = to_device(batch, self.device)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                loss = loss_fn(batch)
            if loss is None:
                continue
            value = float(loss.detach())
            # under torchrun every rank stops together: one stopping alone would leave the others
            # waiting in the gradient all-reduce (the mean over the ranks is non-finite when one is)
            if not math.isfinite(distributed.mean_over_ranks(value)):
                raise DivergedError(
                    f"training loss became {value} in epoch {epoch}; lower the learning rate or check the data"
                )
            loss.backward()
            optimizer.step()
            for callback in after_step:
                callback()
            total += value
            n += 1
            self._steps += 1
            # refresh=False: tqdm redraws at its own rate, so a per-batch update stays cheap.
            bar.set_postfix(loss=f"{total / n:.4f}", refresh=False)
            if self.max_steps is not None and self._steps >= self.max_steps:
                break
        return total / max(n, 1)
