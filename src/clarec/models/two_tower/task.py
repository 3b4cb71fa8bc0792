"""The two-tower training task: batches of training examples, the InfoNCE loss of a batch (with the
auxiliary item-tower loss weighted in), and what these need — temperature, loss weighting, auxiliary
modules, negative sampler, log-q terms, the optimiser and the after-step callbacks."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clarec.contrastive import (
    BYOL,
    FixedWeighting,
    HardNegativeMiner,
    InfoNCELoss,
    LearnableTemperature,
    NegativeSampler,
    PopularityNegativeSampler,
    ScheduledTemperature,
    UncertaintyWeighting,
    WarmupWeighting,
)
from clarec.models.two_tower.features import UserSequences, _unique_items, example_histories
from clarec.models.two_tower.module import TwoTowerModule, _Bundle
from clarec.train import distributed
from clarec.train.loop import to_device

if TYPE_CHECKING:
    from clarec.models.two_tower.estimator import TwoTowerRecommender


class TwoTowerTask:
    """What a :class:`~clarec.models.two_tower.TwoTowerRecommender` trains on and how.

    Built in ``_fit`` from the model once its data are in place (``lm_item``, ``lm_user``,
    ``warm_items``, ``texts_``, the word tokens) and its ``towers``; its settings are the model's.
    The constructor makes, in this order, the InfoNCE loss with its temperature, the loss weighting,
    the auxiliary modules, the :attr:`bundle` the optimiser trains and the negative sampler; module
    initialisation draws from the global torch generator and the sampler shares the model's NumPy
    generator ``rng`` with :meth:`batches` and :meth:`loss`, so that order is part of what a seed means.

    :meth:`batches` and :meth:`loss` are what :class:`~clarec.train.loop.Trainer` runs, with
    :meth:`optimizer` and :attr:`after_step`.
    """

    def __init__(
        self,
        model: TwoTowerRecommender,
        towers: TwoTowerModule,
        seq: UserSequences,
        rng: np.random.Generator,
    ):
        self.model, self.towers, self.seq, self.rng = model, towers, seq, rng
        self.device = device = model.device_
        self.encoder = model._encoder()
        if model.finetune_encoder and self.encoder.device != device:  # trained where the towers are
            self.encoder.device = device
            self.encoder.module.to(device)
        self.lm_item = torch.from_numpy(model.lm_item).to(device)
        self.lm_user = None if model.lm_user is None else torch.from_numpy(model.lm_user).to(device)
        self.warm = torch.from_numpy(model.warm_items).to(device)
        self.texts = np.asarray(model.texts_, dtype=object)

        steps_per_epoch = max(1, math.ceil(len(seq.items) / model.batch_size))
        # Tower outputs are made unit length (cosine) by ``_finish`` before the loss, once per distinct
        # item rather than once per gathered copy (negatives are batch × n_negatives copies).
        self.rec_loss = InfoNCELoss(
            temperature=_temperature(model, steps_per_epoch),
            mask_duplicates=model.mask_false_negatives,
            normalize=False,
            in_batch=model.in_batch_negatives,
        )
        self.weighting = _weighting(model, steps_per_epoch)
        self.extra: dict[str, nn.Module] = {}
        if model.aux == "byol":
            self.extra["byol"] = BYOL(
                towers.text_proj, model.embedding_dim, predictor_hidden=max(model.hidden, model.embedding_dim)
            )
        if model.aux == "simcse":
            self.extra["aux_loss"] = InfoNCELoss(temperature=0.05, mask_duplicates=True)
        if model.finetune_encoder:
            self.extra["encoder"] = self.encoder.module
        self.bundle = _Bundle(towers, self.rec_loss, self.weighting, self.extra)
        self.sampler = _negative_sampler(model, rng)
        self.miner = None
        if model.hard_negatives:
            start, end = model.hard_ranks
            seed = int(rng.integers(2**31))
            self.miner = HardNegativeMiner(model.hard_negatives, start, end, seed=seed)
            model._track(self.miner.generator)
            # mined among the items with training interactions, as sampled ones are (see _negative_sampler)
            self.minable = np.flatnonzero(model.warm_items)
            self.seen = model.seen[:, self.minable].tocsr()  # each user's training items, to leave out
        # Expected number of times each item is a batch's in-batch candidate: batch × its share of
        # targets (items that are never targets are never in-batch candidates: their -inf is unused).
        with np.errstate(divide="ignore"):
            self.log_in_batch = np.log(
                model.batch_size * np.bincount(seq.items, minlength=model.n_items) / max(1, len(seq.items))
            )
        # after every optimiser step: the schedules move on, the BYOL target follows its online net
        self.after_step: list[Callable[[], None]] = [self.rec_loss.temperature.step, self.weighting.step]
        if "byol" in self.extra:
            self.after_step.append(self.extra["byol"].update_target)

    def optimizer(self) -> torch.optim.Optimizer:
        """AdamW over the bundle (the fine-tuned encoder, if any, at its own learning rate). A learned
        temperature and the uncertainty weighting's log-variances take no weight decay: it would pull
        τ and the task weights towards 1, whatever the data says."""
        m = self.model
        own = [(n, p) for n, p in self.bundle.named_parameters() if not n.startswith("encoder.")]
        spared = [n.startswith("weighting.") or n.endswith("log_tau") for n, _ in own]
        if m.weight_decay > 0 and any(spared):
            params = [
                {"params": [p for (_, p), s in zip(own, spared, strict=True) if not s]},
                {"params": [p for (_, p), s in zip(own, spared, strict=True) if s], "weight_decay": 0.0},
            ]
        else:
            params = [{"params": [p for _, p in own]}]
        if m.finetune_encoder:
            params.append({"params": list(self.encoder.module.parameters()), "lr": m.encoder_lr})
        return torch.optim.AdamW(params, lr=m.lr, weight_decay=m.weight_decay)

    def lm_of(self, items: np.ndarray, train_mode: bool = True) -> torch.Tensor:
        """LM vectors of ``items``: the frozen centred ones, or the fine-tuned encoder's (with its
        dropout when ``train_mode``)."""
        if not self.model.finetune_encoder:
            return self.lm_item[items]
        return self.encoder.embed_batch(self.texts[items].tolist(), train=train_mode)

    def item_lm(self) -> torch.Tensor:
        """LM vectors of every item after training (the model keeps them as ``lm_item``)."""
        if not self.model.finetune_encoder:
            return self.lm_item
        n = self.model.n_items
        return torch.cat([self.lm_of(np.arange(s, min(s + 256, n)), False) for s in range(0, n, 256)])

    def batches(self, epoch: int) -> Iterator[np.ndarray]:
        """Rows of the training examples of each step of an epoch, shuffled."""
        order = self.rng.permutation(len(self.seq.items))
        if self.miner is not None:
            self._refresh_mining_vectors()
        for s in range(0, len(order), self.model.batch_size):
            rows = order[s : s + self.model.batch_size]
            if len(rows) >= 2:  # a single example has no in-batch negative
                yield rows

    def _refresh_mining_vectors(self) -> None:
        """Every user's and item's vector as the towers stand (no dropout), to mine hard negatives
        from during the epoch."""
        m = self.model
        self.bundle.eval()
        with torch.no_grad():
            items, raw = m._infer(self.towers, self.lm_of)
            users = m._user_vectors(self.towers, raw, np.arange(m.n_users), self.lm_user)
        self.bundle.train()
        self._mining = torch.as_tensor(users), torch.as_tensor(items[self.minable])

    def _negatives(self, users: np.ndarray) -> np.ndarray | None:
        """``(B, n_negatives)`` negatives of the batch's users: sampled, then mined; ``None``: none."""
        m = self.model
        n_sampled = m.n_negatives - m.hard_negatives
        parts = [self.sampler.sample(users, n_sampled)] if self.sampler is not None and n_sampled else []
        if self.miner is not None:
            user_vecs, item_vecs = self._mining
            hard = self.miner.mine(user_vecs[torch.from_numpy(users)], item_vecs, self.seen[users])
            parts.append(self.minable[hard.cpu().numpy()])
        return np.concatenate(parts, axis=1) if parts else None

    def loss(self, rows: np.ndarray) -> torch.Tensor:
        """The weighted training loss of the examples ``rows``: InfoNCE of each user vector against
        its target, the in-batch and the sampled negatives, plus the auxiliary loss.

        Under torchrun every rank gets the whole batch: the random draws (history dropout, negatives)
        are made for all of it, alike on every rank, each rank runs the towers on its own slice, and
        the vectors are gathered (with their gradients) so that the InfoNCE of every rank has the
        whole batch's in-batch negatives: the loss of one process with the same batch."""
        m = self.model
        users, targets, hist, ok, negs = self._draw(rows)
        world = distributed.world_size()
        if world == 1:
            u, tgt, neg_vecs = self._embed(users, targets, hist, ok, negs)
        else:
            bounds = distributed.slice_bounds(len(rows))
            mine = slice(bounds[distributed.rank()], bounds[distributed.rank() + 1])
            local = self._embed(
                users[mine], targets[mine], hist[mine], ok[mine], None if negs is None else negs[mine]
            )
            u, tgt, neg_vecs = (None if v is None else distributed.gather_rows(v, bounds) for v in local)
        ids_and_logq = to_device(
            {
                "query_ids": torch.from_numpy(users),
                "positive_ids": torch.from_numpy(targets),
                "negative_ids": None if negs is None else torch.from_numpy(negs),
                # the in-batch columns' correction; a row's own positive is not a sampled candidate
                "positive_logq": (
                    torch.from_numpy(self.log_in_batch[targets]) if m.logq and m.in_batch_negatives else None
                ),
                "negative_logq": (
                    torch.from_numpy(self.sampler.log_prob(negs) + np.log(m.n_negatives))
                    if m.logq and negs is not None
                    else None
                ),
            },
            self.device,
        )
        if m.mask_seen_negatives and m.in_batch_negatives:  # in-batch targets the user has in training
            ids_and_logq["pair_mask"] = torch.from_numpy(
                np.asarray(m.seen[users][:, targets].toarray() > 0)
            ).to(self.device)
        losses = {"rec": self.rec_loss(u, tgt, neg_vecs, **ids_and_logq)}
        if m.aux != "none":
            losses["aux"] = self.aux_loss(np.unique(targets))
        total, _ = self.weighting(losses)
        return total

    def _draw(
        self, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """``(users, targets, histories, kept history entries, negatives)`` of the examples ``rows``:
        everything random about a batch except the towers' own dropout."""
        m, seq = self.model, self.seq
        users, targets = seq.users[rows], seq.items[rows]
        hist, ok = example_histories(
            rows, seq.users, seq.items, seq.starts, seq.ends, m.max_history, m.history_scope
        )
        if m.history_dropout > 0:
            ok &= self.rng.random(ok.shape) >= m.history_dropout
        return users, targets, hist, ok, self._negatives(users)

    def _embed(
        self,
        users: np.ndarray,
        targets: np.ndarray,
        hist: np.ndarray,
        ok: np.ndarray,
        negs: np.ndarray | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(user vectors, target vectors, negative vectors)`` as scored; each distinct item goes
        through the item tower once (its ID dropout and word dropout drawn here)."""
        m = self.model
        parts = [targets, hist[ok]] + ([negs.ravel()] if negs is not None else [])
        uniq, inv = _unique_items(np.concatenate(parts), m.n_items)
        device = self.device
        uniq_t = torch.from_numpy(uniq).to(device)
        id_mask = self.warm[uniq_t]
        if m.id_dropout > 0:
            id_mask = id_mask & (torch.rand(len(uniq)) >= m.id_dropout).to(device)
        lm = self.lm_of(uniq)
        reps = self.towers.items(lm, uniq_t, id_mask, to_device(m._bags(uniq, drop=m.dropout), device))
        inv_t = torch.from_numpy(inv).to(device)
        b, n_hist = len(users), int(ok.sum())
        scored = m._finish(reps)
        tgt = scored[inv_t[:b]]
        hist_vecs = reps.new_zeros((b, m.max_history, m.embedding_dim))
        ok_t = torch.from_numpy(ok).to(device)
        hist_vecs[ok_t] = reps[inv_t[b : b + n_hist]]
        neg_vecs = None if negs is None else scored[inv_t[b + n_hist :]].reshape(b, m.n_negatives, -1)
        user_lm = None if self.lm_user is None else self.lm_user[users]
        u = m._finish(self.towers.users(hist_vecs, ok_t, user_lm))
        return u, tgt, neg_vecs

    def aux_loss(self, items: np.ndarray) -> torch.Tensor:
        """The auxiliary item-tower loss (SimCSE or BYOL) over two views of ``items``' LM vectors."""
        m = self.model
        if m.finetune_encoder:  # encoder dropout makes the two views (SimCSE proper)
            v1, v2 = self.lm_of(items), self.lm_of(items)
        else:  # frozen vectors: feature dropout on the cached vector
            base = self.lm_item[items]
            v1, v2 = F.dropout(base, m.aux_dropout), F.dropout(base, m.aux_dropout)
        if m.aux == "byol":
            return self.extra["byol"].loss(v1, v2)
        ids = torch.from_numpy(items).to(self.device)
        return self.extra["aux_loss"](self.towers.text_proj(v1), self.towers.text_proj(v2), positive_ids=ids)


def _temperature(model: TwoTowerRecommender, steps_per_epoch: int):
    """The InfoNCE temperature: scheduled over all training steps, learnable, or a fixed number."""
    if isinstance(model.temperature, list):
        return ScheduledTemperature(*model.temperature, steps=steps_per_epoch * model.epochs)
    if model.learn_temperature:
        return LearnableTemperature(init=min(max(model.temperature, 0.01), 1.0))
    return model.temperature


def _weighting(model: TwoTowerRecommender, steps_per_epoch: int) -> nn.Module:
    """How the recommendation loss (weight 1) and the auxiliary loss are summed."""
    tasks = {"rec": 1.0} | ({"aux": model.aux_weight} if model.aux != "none" else {})
    if model.weighting == "uncertainty":
        return UncertaintyWeighting(list(tasks))
    if model.weighting == "warmup":
        return WarmupWeighting(tasks, warmup_steps=steps_per_epoch)
    return FixedWeighting(tasks)


def _negative_sampler(model: TwoTowerRecommender, rng: np.random.Generator) -> NegativeSampler | None:
    """The sampler of the ``n_negatives`` per example (``None`` for in-batch negatives only).

    Negatives come from the items that have training interactions only. An item without any (a cold
    item, added after the data was collected) drawn as a negative would only ever be pushed away
    from every user — the text path would learn to bury exactly the items it must rank from text
    alone. (With ``neg_alpha > 0`` such items already have weight zero.)
    """
    if model.n_negatives <= 0:
        return None
    if model.neg_alpha > 0:
        return PopularityNegativeSampler(model.seen, alpha=model.neg_alpha, seed=rng)
    return NegativeSampler(model.seen, weights=model.warm_items.astype(np.float64), seed=rng)
