"""Two-tower recommender: a language-model item tower and a history-pooling user tower, trained with InfoNCE.

Item tower
    The item's text (:func:`clarec.text.templates.item_text`) → a :class:`~clarec.text.encoder.TextEncoder`
    vector (frozen and cached on disk by default; adapted end-to-end with ``finetune_encoder``) → an MLP
    projection to ``dim``. With ``id_embedding`` a learnable ID vector is added through a learned gate::

        item = text_proj(lm) + m · sigmoid(W [text_proj(lm); id]) ⊙ id

    where ``m`` is 0 for items absent from training (their ID vectors never learned anything) and, during
    training, for a random ``id_dropout`` share of the items of each batch — so the text path alone is
    trained to place items, and a cold item's vector is its text projection. With ``token_features``
    the text path also adds the mean of learned vectors of the item's words (those shared by trained
    items), which carries what the interactions taught about a genre or a year over to new items.

User tower
    The item-tower vectors of the user's last ``max_history`` items, pooled by attention (a learned
    query attending over them, plus recency position embeddings) or by their mean, then a linear map;
    optionally plus the projection of the user's profile text (:func:`clarec.text.templates.user_text`
    with profile fields only — listing history titles would leak the training targets). A user with
    no history gets a learned "empty history" vector (plus the profile text when ``user_text``); the
    training examples whose target is a user's first interaction are what teach it.

Training
    Examples are (history before the target → target) for every training interaction, in time order
    (``history="past"``, the target never in its own history), or (every other training item → target)
    with ``history="all"``. The loss is :class:`~clarec.contrastive.InfoNCELoss` over in-batch negatives
    (the same user's or the same item's other columns masked as false negatives) plus ``n_negatives``
    sampled ones per row (uniform over the items with training interactions, or ∝ popularity **
    ``neg_alpha``; never a cold item, which would only learn to be buried), with a fixed, learnable or
    scheduled temperature. An auxiliary SimCSE (two feature-dropout views of an item's LM vector through
    the text projection; with a fine-tuned encoder, two encoder-dropout views) or BYOL loss on the item
    tower is weighted in by :mod:`clarec.contrastive.weighting`. Early stopping on validation NDCG@k
    through :class:`~clarec.train.loop.Trainer`.

Scores are cosines (``similarity="cosine"``: user and item vectors are L2-normalised) or dot products.

Real time: :meth:`TwoTowerRecommender.score_histories` runs the user tower on any history (an event
changes the next scores without retraining), :meth:`TwoTowerRecommender.add_items` puts new items
in the catalogue through their text, and with ``user_text`` :meth:`TwoTowerRecommender.score_texts`
serves a user known only by a profile text (the user tower on an empty history plus that text).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from clarec.contrastive import (
    BYOL,
    FixedWeighting,
    InfoNCELoss,
    LearnableTemperature,
    NegativeSampler,
    PopularityNegativeSampler,
    ScheduledTemperature,
    UncertaintyWeighting,
    WarmupWeighting,
)
from clarec.data.dataset import Dataset
from clarec.errors import ClarecError, ConfigError
from clarec.models._cold import CALIBRATIONS, apply_affine, calibrates, match_scores, validated_shift
from clarec.models._lm import build_encoder, choose_fields, item_texts, recent_positions
from clarec.models.base import Recommender
from clarec.models.registry import register
from clarec.text.templates import user_text as render_user_text
from clarec.train.loop import Trainer, TrainHistory, seed_everything
from clarec.train.validation import RankingValidator

POOLINGS = ("attention", "mean")
HISTORIES = ("past", "all")
AUXES = ("none", "simcse", "byol")
WEIGHTINGS = ("fixed", "warmup", "uncertainty")


class TwoTowerModule(nn.Module):
    """The trainable part: text projection, gated ID embeddings, user tower."""

    def __init__(
        self,
        n_items: int,
        lm_dim: int,
        user_lm_dim: int | None,
        dim: int,
        hidden: int,
        dropout: float,
        id_embedding: bool,
        pooling: str,
        max_history: int,
        n_tokens: int = 0,
    ):
        super().__init__()
        self.dim = dim
        self.pooling = pooling
        self.text_proj = _mlp(lm_dim, hidden, dim, dropout)
        self.id_emb = nn.Embedding(n_items, dim) if id_embedding else None
        self.gate = nn.Linear(2 * dim, dim) if id_embedding else None
        if self.id_emb is not None:
            nn.init.normal_(self.id_emb.weight, std=0.05)
        self.pos_emb = nn.Embedding(max_history, dim)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        self.key = nn.Linear(dim, dim)
        self.query = nn.Parameter(torch.zeros(dim))
        self.user_out = nn.Linear(dim, dim)
        self.empty = nn.Parameter(torch.randn(dim) * 0.05)
        self.user_text_proj = _mlp(user_lm_dim, hidden, dim, dropout) if user_lm_dim else None
        self.tokens = nn.EmbeddingBag(n_tokens, dim, mode="sum") if n_tokens else None
        if self.tokens is not None:
            nn.init.normal_(self.tokens.weight, std=0.05)

    def items(
        self,
        lm: torch.Tensor,
        ids: torch.Tensor,
        id_mask: torch.Tensor | None,
        bags: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Item-tower vectors (unnormalised) of items ``ids`` with LM vectors ``lm``; ``id_mask`` (bool)
        says which items may use their ID embedding (``None``: none may); ``bags`` are the items'
        word tokens as ``(token ids, offsets, weights)`` for the word-embedding channel."""
        t = self.text_proj(lm)
        if self.tokens is not None and bags is not None:
            t = t + self.tokens(bags[0], bags[1], per_sample_weights=bags[2])
        if self.id_emb is None or id_mask is None:
            return t
        known = ids < self.id_emb.num_embeddings  # items added after training have no ID vector
        e = self.id_emb(torch.where(known, ids, 0))
        g = torch.sigmoid(self.gate(torch.cat([t, e], dim=-1)))
        return t + (id_mask & known).to(t.dtype).unsqueeze(-1) * g * e

    def users(
        self, hist: torch.Tensor, valid: torch.Tensor, user_lm: torch.Tensor | None = None
    ) -> torch.Tensor:
        """User vectors from history item vectors ``(B, L, dim)`` (most recent first) and their mask."""
        has = valid.any(dim=1, keepdim=True)
        if self.pooling == "attention":
            keys = torch.tanh(self.key(hist + self.pos_emb.weight[: hist.shape[1]]))
            logits = (keys @ self.query) / math.sqrt(self.dim)
            logits = logits.masked_fill(~valid, float("-inf"))
            # Rows without history would be all -inf (NaN after softmax); they get the empty vector below.
            weights = torch.softmax(logits.masked_fill(~has, 0.0), dim=1) * valid
            pooled = (weights.unsqueeze(-1) * hist).sum(1)
        else:
            m = valid.to(hist.dtype).unsqueeze(-1)
            pooled = (m * hist).sum(1) / m.sum(1).clamp(min=1.0)
        out = torch.where(has, self.user_out(pooled), self.empty.expand_as(pooled))
        if self.user_text_proj is not None and user_lm is not None:
            out = out + self.user_text_proj(user_lm)
        return out


def _mlp(d_in: int, hidden: int, d_out: int, dropout: float) -> nn.Module:
    if hidden <= 0:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(d_in, d_out))
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, d_out))


def centring(vectors: np.ndarray) -> tuple[np.ndarray, float]:
    """Mean vector and scale that :func:`centre` applies (kept so items added later are centred alike)."""
    v = np.asarray(vectors, dtype=np.float64)
    if len(v) == 0:
        return np.zeros(v.shape[1:], dtype=np.float64), 1.0
    mean = v.mean(axis=0)
    scale = float(np.linalg.norm(v - mean, axis=1).mean())
    return mean, (scale if scale > 1e-12 else 1.0)


def centre(vectors: np.ndarray, stats: tuple[np.ndarray, float] | None = None) -> np.ndarray:
    """Sentence vectors minus their mean, scaled to unit mean length (``stats``: a stored :func:`centring`).

    Sentence vectors of one catalogue share a large common direction (cosines of 0.3-0.6 between
    unrelated movies); removing it lets the projection separate items from the first step instead of
    spending its early training undoing it. Uses only item text, never interactions.
    """
    mean, scale = centring(vectors) if stats is None else stats
    return ((np.asarray(vectors, dtype=np.float64) - mean) / scale).astype(np.float32)


def example_histories(
    rows: np.ndarray,
    ex_user: np.ndarray,
    ex_item: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    max_history: int,
    mode: str = "past",
) -> tuple[np.ndarray, np.ndarray]:
    """Input histories of training examples ``rows``: ``(items, valid)``, each ``(len(rows), max_history)``,
    most recent first.

    ``ex_user``/``ex_item`` are the training interactions sorted by user then time, and user ``u``'s
    interactions are positions ``starts[u]:ends[u]``; example ``j`` predicts ``ex_item[j]``. With
    ``mode="past"`` its history is the user's interactions before position ``j``; with ``"all"`` every
    other interaction of the user. Position ``j`` itself is never part of its own history.
    """
    users = ex_user[rows]
    if mode == "past":
        pos, ok = recent_positions(starts[users], rows, max_history)
    else:
        pos, ok = recent_positions(starts[users], ends[users], max_history, skip=rows)
    return ex_item[pos], ok


def _unique_items(items: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(items, return_inverse=True)`` for indices below ``n_items``, by a presence mask
    (linear time; a training step gathers tens of thousands of indices)."""
    present = np.zeros(n_items, dtype=bool)
    present[items] = True
    position = np.cumsum(present) - 1
    return np.flatnonzero(present), position[items]


#: A word in more than this share of the items with interactions (template labels, "the") is dropped.
_TOKEN_MAX_DF = 0.5


def fit_tokens(texts: Sequence[str], warm: np.ndarray) -> tuple[np.ndarray, sp.csr_matrix]:
    """Vocabulary of the words shared by at least two items with training interactions (``warm``), and
    the binary item × word matrix of every item. Words only cold items have would keep an untrained
    random vector, so they are left out."""
    from sklearn.feature_extraction.text import CountVectorizer

    warm_texts = [t for t, w in zip(texts, warm, strict=True) if w]
    vectorizer = CountVectorizer(binary=True, min_df=2, max_df=_TOKEN_MAX_DF, dtype=np.float32)
    try:
        vectorizer.fit(warm_texts)
    except ValueError:  # no word shared by two items: the channel stays empty
        return np.empty(0, dtype=str), sp.csr_matrix((len(texts), 0), dtype=np.float32)
    vocab = vectorizer.get_feature_names_out().astype(str)
    return vocab, item_tokens(texts, vocab)


def item_tokens(texts: Sequence[str], vocab: np.ndarray) -> sp.csr_matrix:
    """Binary item × word matrix of ``texts`` over a fixed ``vocab`` (other words ignored)."""
    from sklearn.feature_extraction.text import CountVectorizer

    if len(vocab) == 0:
        return sp.csr_matrix((len(texts), 0), dtype=np.float32)
    vectorizer = CountVectorizer(binary=True, vocabulary=list(vocab), dtype=np.float32)
    return sp.csr_matrix(vectorizer.transform(list(texts)))


class _Bundle(nn.Module):
    """Everything the optimiser trains (and the Trainer checkpoints): towers, loss, weighting, encoder."""

    def __init__(self, towers: TwoTowerModule, loss: nn.Module, weighting: nn.Module, extra: dict):
        super().__init__()
        self.towers, self.loss, self.weighting = towers, loss, weighting
        for name, module in extra.items():
            self.add_module(name, module)


@register("two-tower")
class TwoTowerRecommender(Recommender):
    """Two-tower retrieval model over language-model item vectors (see the module docstring).

    Args:
        fields: item-table columns rendered into the item text (``None``: the default text fields the
            table has, as ``lm-content``).
        encoder: text model folder / Hugging Face id; ``None`` = bundled all-MiniLM-L6-v2.
        cache_dir: embedding cache (``None`` = ``$CLAREC_CACHE/embeddings`` or ``~/.cache/clarec/embeddings``;
            ``"none"`` disables it). Only frozen vectors are cached.
        finetune_encoder: adapt the encoder end-to-end (slow on CPU); else its vectors are frozen.
        encoder_lr: learning rate of the encoder when fine-tuned.
        max_length: tokens per text.
        dim: size of user and item vectors.
        hidden: hidden width of the projection MLPs (0: a single linear layer).
        dropout: dropout inside the projections.
        id_embedding: fuse a learnable item-ID embedding through a learned gate (warm items only).
        id_dropout: share of a batch's items whose ID embedding is dropped in training.
        token_features: add a learned vector per word of the item text (words shared by at least two
            items with training interactions; the mean over an item's words, ``dropout`` of them
            dropped in training) to the text path, so cold items share what was learned for words
            like a genre or a year.
        cold_calibration: ``"match"`` maps the scores of items without training interactions (cold
            items, items added later) affinely so that, over a sample of training users, their mean
            and spread equal those of the trained items' scores; ``"none"`` leaves them as they are.
            Trained items carry what the interactions taught them (an ID vector, words seen as
            targets), which puts them ahead of every new item of similar text; the match puts new
            items on the same scale without reordering either group. Use it when new items should
            reach lists at the rate of trained ones (cold-start catalogues, a live shop).
            ``"validate"`` applies the match, then shifts the cold items' scores by the amount
            (from -3 to +6 spreads of the trained items' scores, step 0.25) that maximises
            validation NDCG@``eval_k`` over the whole catalogue: how far new items should reach
            into lists is learned from the held-out interactions (``cold_shift_`` and
            ``cold_shift_curve_`` record the choice). It needs validation interactions on items
            without training interactions; without them it is the match.
        pooling: ``"attention"`` or ``"mean"`` over the history.
        max_history: most recent history items the user tower sees.
        history: ``"past"`` (items before the target) or ``"all"`` (every other training item).
        history_dropout: share of each training example's history items hidden from the user tower
            (a denoising input, as in Mult-DAE); scoring always sees the whole history.
        user_text: add the user's profile text (user-table fields) to the user tower.
        user_fields: user-table columns for ``user_text`` (``None``: all but ``user_id``).
        temperature: InfoNCE τ; a pair ``[start, end]`` schedules it (cosine) over all training steps.
        learn_temperature: learn τ (initialised at ``temperature``, kept in ``[0.01, 1]``).
        n_negatives: sampled negatives per example on top of the in-batch ones (0: in-batch only).
        neg_alpha: ``0`` samples negatives uniformly, ``> 0`` ∝ popularity ** ``neg_alpha``.
        aux: auxiliary item-tower loss: ``"none"``, ``"simcse"`` or ``"byol"``.
        aux_weight: weight of the auxiliary loss (the recommendation loss has weight 1).
        aux_dropout: feature dropout making the two views of a frozen LM vector.
        similarity: ``cosine`` (unit-length towers) or ``dot`` (vector norms can carry popularity).
        logq: subtract each candidate's log expected count per batch from its logit (sampling-bias
            correction: in-batch candidates come by popularity, sampled ones by the sampler).
        weighting: ``"fixed"``, ``"warmup"`` (aux weight ramps up over the first epoch) or
            ``"uncertainty"`` (learned, Kendall et al.).
        lr: Adam learning rate of the towers.
        weight_decay: AdamW weight decay.
        epochs: maximum number of epochs.
        batch_size: examples per step.
        patience: validations without improvement before stopping (with ``valid`` only).
        eval_every: validate every this many epochs.
        eval_k: cut-off of the validation NDCG.
        eval_max_users: validate on at most this many users.
        seed: seeds initialisation, shuffling, dropout and sampling; same seed ⇒ same model on CPU.
        run_dir: training log folder.
        progress: progress bars (``None``: only on a terminal).
        device: device of the text encoder.
        num_threads: torch threads for training (``None``: every core; on a machine shared with
            other jobs, 1 can be much faster than oversubscribed cores).
    """

    supports_histories = True
    supports_new_items = True
    new_items_from_text: ClassVar[bool] = True
    #: False for the class: only a model trained with ``user_text`` has a user tower that reads text,
    #: so :meth:`_fit` and :meth:`load` set it per instance (``True`` with ``user_text``).
    supports_texts: ClassVar[bool] = False

    def __init__(
        self,
        fields: list[str] | None = None,
        encoder: str | None = None,
        cache_dir: str | None = None,
        finetune_encoder: bool = False,
        encoder_lr: float = 2e-5,
        max_length: int = 128,
        dim: int = 64,
        hidden: int = 256,
        dropout: float = 0.1,
        id_embedding: bool = True,
        id_dropout: float = 0.2,
        token_features: bool = False,
        cold_calibration: str = "none",
        pooling: str = "attention",
        max_history: int = 50,
        history: str = "all",
        history_dropout: float = 0.0,
        user_text: bool = False,
        user_fields: list[str] | None = None,
        temperature: float | list[float] = 0.05,
        learn_temperature: bool = False,
        n_negatives: int = 128,
        neg_alpha: float = 0.0,
        aux: str = "none",
        aux_weight: float = 0.1,
        aux_dropout: float = 0.1,
        similarity: str = "cosine",
        logq: bool = False,
        weighting: str = "fixed",
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        epochs: int = 50,
        batch_size: int = 256,
        patience: int = 5,
        eval_every: int = 1,
        eval_k: int = 20,
        eval_max_users: int | None = None,
        seed: int = 0,
        run_dir: str | None = None,
        progress: bool | None = None,
        device: str | None = "cpu",
        num_threads: int | None = None,
    ):
        for name, value, lo in (
            ("dim", dim, 1),
            ("hidden", hidden, 0),
            ("max_history", max_history, 1),
            ("n_negatives", n_negatives, 0),
            ("epochs", epochs, 1),
            ("batch_size", batch_size, 2),
            ("patience", patience, 1),
            ("eval_every", eval_every, 1),
            ("eval_k", eval_k, 1),
            ("max_length", max_length, 2),
        ):
            if int(value) < lo:
                raise ConfigError(f"two-tower: {name} must be at least {lo}, got {value}")
        for name, value in (
            ("dropout", dropout),
            ("id_dropout", id_dropout),
            ("aux_dropout", aux_dropout),
            ("history_dropout", history_dropout),
        ):
            if not 0.0 <= float(value) < 1.0:
                raise ConfigError(f"two-tower: {name} must be in [0, 1), got {value}")
        for name, value, allowed in (
            ("pooling", pooling, POOLINGS),
            ("history", history, HISTORIES),
            ("aux", aux, AUXES),
            ("weighting", weighting, WEIGHTINGS),
        ):
            if value not in allowed:
                raise ConfigError(f"two-tower: {name} must be one of {list(allowed)}, got {value!r}")
        if isinstance(temperature, list | tuple):
            if len(temperature) != 2 or learn_temperature:
                raise ConfigError(
                    "two-tower: temperature is a number, or [start, end] for a schedule (not learnable)"
                )
            temperature = [float(t) for t in temperature]
            if min(temperature) <= 0:
                raise ConfigError(f"two-tower: temperatures must be > 0, got {temperature}")
        elif not float(temperature) > 0:
            raise ConfigError(f"two-tower: temperature must be > 0, got {temperature}")
        else:
            temperature = float(temperature)
        for name, value in (
            ("lr", lr),
            ("encoder_lr", encoder_lr),
        ):
            if not float(value) > 0:
                raise ConfigError(f"two-tower: {name} must be > 0, got {value}")
        for name, value in (
            ("aux_weight", aux_weight),
            ("neg_alpha", neg_alpha),
            ("weight_decay", weight_decay),
        ):
            if not float(value) >= 0:
                raise ConfigError(f"two-tower: {name} must be >= 0, got {value}")
        self.fields = (
            None if fields is None else [str(f) for f in ([fields] if isinstance(fields, str) else fields)]
        )
        self.encoder = None if encoder is None else str(encoder)
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.finetune_encoder = bool(finetune_encoder)
        self.encoder_lr = float(encoder_lr)
        self.max_length = int(max_length)
        self.dim = int(dim)
        self.hidden = int(hidden)
        self.dropout = float(dropout)
        self.id_embedding = bool(id_embedding)
        self.id_dropout = float(id_dropout)
        self.token_features = bool(token_features)
        if cold_calibration not in CALIBRATIONS:
            raise ConfigError(
                f"two-tower: cold_calibration must be one of {list(CALIBRATIONS)}, got {cold_calibration!r}"
            )
        self.cold_calibration = cold_calibration
        self.pooling = pooling
        self.max_history = int(max_history)
        self.history = history
        self.history_dropout = float(history_dropout)
        self.user_text = bool(user_text)
        self.user_fields = None if user_fields is None else [str(f) for f in user_fields]
        self.temperature = temperature
        self.learn_temperature = bool(learn_temperature)
        self.n_negatives = int(n_negatives)
        self.neg_alpha = float(neg_alpha)
        self.aux = aux
        self.aux_weight = float(aux_weight)
        self.aux_dropout = float(aux_dropout)
        if similarity not in ("cosine", "dot"):
            raise ConfigError(f"similarity must be 'cosine' or 'dot', got {similarity!r}")
        self.similarity = similarity
        self.logq = bool(logq)
        self.weighting = weighting
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.patience = int(patience)
        self.eval_every = int(eval_every)
        self.eval_k = int(eval_k)
        self.eval_max_users = None if eval_max_users is None else int(eval_max_users)
        self.seed = int(seed)
        self.run_dir = None if run_dir is None else str(run_dir)
        self.progress = progress
        self.device = device
        self.num_threads = None if num_threads is None else int(num_threads)

    # ------------------------------------------------------------------ text
    def _encoder(self):
        if getattr(self, "_text_encoder", None) is None:
            self._text_encoder = build_encoder(
                self.encoder, self.cache_dir, 64, self.max_length, self.device, self.progress
            )
        return self._text_encoder

    def _user_encoder(self):
        """The encoder that wrote the training users' profile vectors: the item encoder, or with
        ``finetune_encoder`` a fresh copy of the starting encoder (profiles are encoded once, before
        the item encoder is adapted, and the user-text projection was trained on those vectors)."""
        if not self.finetune_encoder:
            return self._encoder()
        if getattr(self, "_user_text_encoder", None) is None:
            self._user_text_encoder = build_encoder(
                self.encoder, self.cache_dir, 64, self.max_length, self.device, self.progress
            )
        return self._user_text_encoder

    def _profile_texts(self, train: Dataset) -> list[str]:
        users = train.users
        fields = self.user_fields
        if fields is None:
            fields = [str(c) for c in users.columns if c != "user_id"]
        if not fields:
            raise ConfigError(
                "two-tower: user_text needs a user table with profile fields (e.g. age, occupation)"
            )
        empty = [np.empty(0, dtype=np.int64)] * train.n_users
        # n_recent=0: the profile only. Listing history titles would put training targets in the input.
        return render_user_text(users, empty, [], profile_fields=fields, n_recent=0)

    # ------------------------------------------------------------------ training
    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        seed_everything(self.seed)
        rng = np.random.default_rng(self.seed)
        self.text_fields_ = choose_fields(train.items, self.fields, "two-tower")
        self.texts_ = item_texts(train.items, self.text_fields_, "two-tower")
        enc = self._encoder()
        raw_lm = enc.encode(self.texts_)
        self.lm_centring = centring(raw_lm)
        lm_item = torch.from_numpy(centre(raw_lm, self.lm_centring))
        lm_user = None
        self.user_lm_centring = None
        if self.user_text:
            raw_user = enc.encode(self._profile_texts(train))
            self.user_lm_centring = centring(raw_user)  # kept: score_texts centres new profiles alike
            lm_user = torch.from_numpy(centre(raw_user, self.user_lm_centring))

        # Training interactions sorted by (user, time): example j predicts item j from the ones before it.
        df = train.interactions.sort_values(["user", "timestamp"], kind="stable")
        ex_user = df["user"].to_numpy().astype(np.int64)
        ex_item = df["item"].to_numpy().astype(np.int64)
        starts = np.searchsorted(ex_user, np.arange(self.n_users), side="left")
        ends = np.searchsorted(ex_user, np.arange(self.n_users), side="right")
        self._seq = (ex_item, starts, ends)
        warm = np.zeros(self.n_items, dtype=bool)
        warm[ex_item] = True
        self.warm_items = warm
        warm_t = torch.from_numpy(warm)
        self.token_vocab = None
        self.item_tokens = None
        if self.token_features:
            self.token_vocab, self.item_tokens = fit_tokens(self.texts_, warm)

        towers = TwoTowerModule(
            self.n_items,
            lm_item.shape[1],
            None if lm_user is None else lm_user.shape[1],
            self.dim,
            self.hidden,
            self.dropout,
            self.id_embedding,
            self.pooling,
            self.max_history,
            0 if self.token_vocab is None else len(self.token_vocab),
        )
        steps_per_epoch = max(1, math.ceil(len(ex_item) / self.batch_size))
        if isinstance(self.temperature, list):
            temp = ScheduledTemperature(*self.temperature, steps=steps_per_epoch * self.epochs)
        elif self.learn_temperature:
            temp = LearnableTemperature(init=min(max(self.temperature, 0.01), 1.0))
        else:
            temp = self.temperature
        # Tower outputs are made unit length (cosine) by ``_finish`` before the loss, once per distinct
        # item rather than once per gathered copy (negatives are batch × n_negatives copies).
        rec_loss = InfoNCELoss(temperature=temp, mask_duplicates=True, normalize=False)
        tasks = {"rec": 1.0} | ({"aux": self.aux_weight} if self.aux != "none" else {})
        if self.weighting == "uncertainty":
            weighting: nn.Module = UncertaintyWeighting(list(tasks))
        elif self.weighting == "warmup":
            weighting = WarmupWeighting(tasks, warmup_steps=steps_per_epoch)
        else:
            weighting = FixedWeighting(tasks)
        extra: dict[str, nn.Module] = {}
        if self.aux == "byol":
            extra["byol"] = BYOL(towers.text_proj, self.dim, predictor_hidden=max(self.hidden, self.dim))
        if self.aux == "simcse":
            extra["aux_loss"] = InfoNCELoss(temperature=0.05, mask_duplicates=True)
        if self.finetune_encoder:
            extra["encoder"] = enc.module
        bundle = _Bundle(towers, rec_loss, weighting, extra)

        # Negatives come from the items that have training interactions only. An item without any
        # (a cold item, added after the data was collected) drawn as a negative would only ever be
        # pushed away from every user — the text path would learn to bury exactly the items it must
        # rank from text alone. (With ``neg_alpha > 0`` such items already have weight zero.)
        sampler = None
        if self.n_negatives > 0:
            if self.neg_alpha > 0:
                sampler = PopularityNegativeSampler(self.seen, alpha=self.neg_alpha, seed=rng)
            else:
                sampler = NegativeSampler(self.seen, weights=warm.astype(np.float64), seed=rng)
        texts = np.asarray(self.texts_, dtype=object)
        # Expected number of times each item is a batch's in-batch candidate: batch × its share of
        # targets (items that are never targets are never in-batch candidates: their -inf is unused).
        with np.errstate(divide="ignore"):
            log_in_batch = np.log(
                self.batch_size * np.bincount(ex_item, minlength=self.n_items) / max(1, len(ex_item))
            )

        def lm_of(items: np.ndarray, train_mode: bool = True) -> torch.Tensor:
            if not self.finetune_encoder:
                return lm_item[items]
            return enc.embed_batch(texts[items].tolist(), train=train_mode)

        def batches(epoch: int) -> Iterator[np.ndarray]:
            order = rng.permutation(len(ex_item))
            for s in range(0, len(order), self.batch_size):
                rows = order[s : s + self.batch_size]
                if len(rows) >= 2:  # a single example has no in-batch negative
                    yield rows

        def loss_fn(rows: np.ndarray) -> torch.Tensor:
            if "byol" in extra:
                extra["byol"].update_target()  # EMA after the previous step's optimiser update
            users, targets = ex_user[rows], ex_item[rows]
            hist, ok = example_histories(rows, ex_user, ex_item, starts, ends, self.max_history, self.history)
            if self.history_dropout > 0:
                ok &= rng.random(ok.shape) >= self.history_dropout
            negs = sampler.sample(users, self.n_negatives) if sampler is not None else None
            parts = [targets, hist[ok]] + ([negs.ravel()] if negs is not None else [])
            uniq, inv = _unique_items(np.concatenate(parts), self.n_items)
            uniq_t = torch.from_numpy(uniq)
            id_mask = warm_t[uniq_t]
            if self.id_dropout > 0:
                id_mask = id_mask & (torch.rand(len(uniq)) >= self.id_dropout)
            lm = lm_of(uniq)
            reps = towers.items(lm, uniq_t, id_mask, self._bags(uniq, drop=self.dropout))
            inv_t = torch.from_numpy(inv)
            b, n_hist = len(rows), int(ok.sum())
            scored = self._finish(reps)
            tgt = scored[inv_t[:b]]
            hist_vecs = reps.new_zeros((b, self.max_history, self.dim))
            ok_t = torch.from_numpy(ok)
            hist_vecs[ok_t] = reps[inv_t[b : b + n_hist]]
            neg_vecs = None if negs is None else scored[inv_t[b + n_hist :]].reshape(b, self.n_negatives, -1)
            user_lm = None if lm_user is None else lm_user[users]
            u = self._finish(towers.users(hist_vecs, ok_t, user_lm))
            losses = {
                "rec": rec_loss(
                    u,
                    tgt,
                    neg_vecs,
                    query_ids=torch.from_numpy(users),
                    positive_ids=torch.from_numpy(targets),
                    negative_ids=None if negs is None else torch.from_numpy(negs),
                    positive_logq=torch.from_numpy(log_in_batch[targets]) if self.logq else None,
                    negative_logq=(
                        torch.from_numpy(sampler.log_prob(negs) + np.log(self.n_negatives))
                        if self.logq and negs is not None
                        else None
                    ),
                )
            }
            if self.aux != "none":
                losses["aux"] = aux_loss(np.unique(targets))
            total, _ = weighting(losses)
            rec_loss.temperature.step()
            weighting.step()
            return total

        def aux_loss(items: np.ndarray) -> torch.Tensor:
            if self.finetune_encoder:  # encoder dropout makes the two views (SimCSE proper)
                v1, v2 = lm_of(items), lm_of(items)
            else:  # frozen vectors: feature dropout on the cached vector
                base = lm_item[items]
                v1, v2 = F.dropout(base, self.aux_dropout), F.dropout(base, self.aux_dropout)
            if self.aux == "byol":
                return extra["byol"].loss(v1, v2)
            ids = torch.from_numpy(items)
            return extra["aux_loss"](towers.text_proj(v1), towers.text_proj(v2), positive_ids=ids)

        validate = None
        if valid is not None and valid.n_interactions > 0:
            validator = RankingValidator(
                self.seen, valid.to_csr(), k=self.eval_k, max_users=self.eval_max_users, seed=self.seed
            )

            def validate() -> float:
                item_vecs, raw = self._infer(towers, lm_of)
                return validator(lambda users: self._user_vectors(towers, raw, users, lm_user) @ item_vecs.T)

        params = [{"params": [p for n, p in bundle.named_parameters() if not n.startswith("encoder.")]}]
        if self.finetune_encoder:
            params.append({"params": list(enc.module.parameters()), "lr": self.encoder_lr})
        optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        trainer = Trainer(
            epochs=self.epochs,
            patience=self.patience,
            eval_every=self.eval_every,
            metric_name=f"ndcg@{self.eval_k}",
            run_dir=self.run_dir,
            progress=self.progress,
            num_threads=self.num_threads,
        )
        self.history_: TrainHistory = trainer.fit(bundle, batches, loss_fn, optimizer, validate)

        bundle.eval()
        with torch.no_grad():
            self.lm_item = (
                (
                    torch.cat(
                        [
                            lm_of(np.arange(s, min(s + 256, self.n_items)), False)
                            for s in range(0, self.n_items, 256)
                        ]
                    )
                    if self.finetune_encoder
                    else lm_item
                )
                .numpy()
                .astype(np.float32)
            )
            self.lm_user = None if lm_user is None else lm_user.numpy().astype(np.float32)
            self.supports_texts = self.lm_user is not None
            self._towers = towers
            self._set_vectors()
            if self.cold_calibration == "validate" and validate is not None:
                self._validate_cold_shift(validator)
        if self.finetune_encoder:
            enc.module.eval()

    # ------------------------------------------------------------------ inference helpers
    def _bags(self, items: np.ndarray, drop: float = 0.0):
        """``items``' words as EmbeddingBag input with mean weights; ``drop`` (training) drops a share
        of the words (torch's generator, so the model's seed governs it)."""
        if self.item_tokens is None or self.item_tokens.shape[1] == 0:
            return None
        sub = self.item_tokens[np.asarray(items, dtype=np.int64)]
        idx = torch.from_numpy(sub.indices.astype(np.int64))
        rows = torch.repeat_interleave(torch.arange(len(items)), torch.from_numpy(np.diff(sub.indptr)))
        if drop > 0 and len(idx):
            keep = torch.rand(len(idx)) >= drop
            idx, rows = idx[keep], rows[keep]
        counts = torch.bincount(rows, minlength=len(items))
        offsets = torch.cumsum(counts, 0) - counts
        weights = 1.0 / counts[rows].to(torch.float32)
        return idx, offsets, weights

    def _infer(self, towers: TwoTowerModule, lm_of) -> tuple[np.ndarray, torch.Tensor]:
        """Scored (see :meth:`_finish`) and raw item-tower vectors of every item (cold items: text path only)."""
        chunks = []
        for s in range(0, self.n_items, 4096):
            items = np.arange(s, min(s + 4096, self.n_items))
            ids = torch.from_numpy(items)
            warm = torch.from_numpy(self.warm_items[items])
            chunks.append(towers.items(lm_of(items, False), ids, warm, self._bags(items)))
        raw = torch.cat(chunks) if chunks else torch.zeros((0, self.dim))
        return self._finish(raw).numpy(), raw

    def _user_vectors(
        self, towers: TwoTowerModule, raw_items: torch.Tensor, users: np.ndarray, lm_user
    ) -> np.ndarray:
        ex_item, starts, ends = self._seq
        users = np.asarray(users, dtype=np.int64)
        user_lm = None if lm_user is None else torch.as_tensor(lm_user)[torch.from_numpy(users)]
        return self._pool(towers, raw_items, ex_item, starts[users], ends[users], user_lm)

    def _pool(
        self,
        towers: TwoTowerModule,
        raw_items: torch.Tensor,
        seq_items: np.ndarray,
        starts: np.ndarray,
        ends: np.ndarray,
        user_lm: torch.Tensor | None,
    ) -> np.ndarray:
        """User-tower vectors of the histories ``seq_items[starts[r]:ends[r]]`` (oldest first)."""
        pos, ok = recent_positions(starts, ends, self.max_history)
        hist = raw_items[torch.from_numpy(seq_items[pos] if len(seq_items) else np.zeros_like(pos))]
        return self._finish(towers.users(hist, torch.from_numpy(ok), user_lm)).numpy()

    def _finish(self, vectors: torch.Tensor) -> torch.Tensor:
        """Tower outputs as scored: unit length for cosine similarity, as they are for dot."""
        return F.normalize(vectors, dim=-1) if self.similarity == "cosine" else vectors

    def _set_vectors(self) -> None:
        towers = self._towers
        towers.eval()
        lm = torch.from_numpy(self.lm_item)
        with torch.no_grad():
            self.item_vecs, raw = self._infer(towers, lambda items, _train=False: lm[items])
            self.user_vecs = self._user_vectors(towers, raw, np.arange(self.n_users), self.lm_user)
        self._raw_items = raw
        self.item_vecs = self.item_vecs.astype(np.float32)
        self.user_vecs = self.user_vecs.astype(np.float32)
        self.cold_affine = (1.0, 0.0)
        self.cold_spread_ = 1.0
        if self.cold_calibration != "none":
            a, b, self.cold_spread_ = self._match_cold_scores(lm)
            self.cold_affine = (a, b)

    def _validate_cold_shift(self, validator: RankingValidator) -> None:
        """Shift the matched cold scores by the validation-best amount (``cold_calibration="validate"``)."""
        shift, self.cold_shift_curve_ = validated_shift(
            "two-tower",
            validator,
            lambda users: self._scores(self.user_vecs[users]),
            ~self.warm_items,
            self.cold_spread_,
        )
        a, b = self.cold_affine
        self.cold_affine = (a, b + shift)
        self.cold_shift_ = shift / self.cold_spread_

    def _match_cold_scores(self, lm: torch.Tensor, sample: int = 2000) -> tuple[float, float, float]:
        """``(a, b, spread)`` of :func:`clarec.models._cold.match_scores` for the items without
        interactions. Without such items in the catalogue, the trained items' text-only vectors (what
        they would be if they were new) stand in for them."""
        warm = np.flatnonzero(self.warm_items)
        cold = np.flatnonzero(~self.warm_items)
        if len(cold):
            ref = self.item_vecs[cold]
        else:
            with torch.no_grad():
                raw = self._towers.items(lm[warm], torch.from_numpy(warm), None, self._bags(warm))
            ref = self._finish(raw).numpy()
        return match_scores(self.user_vecs, self.item_vecs[warm], ref, sample, self.seed)

    # ------------------------------------------------------------------ inference
    def score(self, users) -> np.ndarray:
        users = self._check_users(users)
        return self._scores(self.user_vecs[users])

    def _scores(self, user_vecs: np.ndarray) -> np.ndarray:
        # float64 then float32: BLAS float32 sums depend on the batch shape, and a user's scores must
        # not change with the users scored alongside.
        s = user_vecs.astype(np.float64) @ self._inner_product_items(self.item_vecs)[1]
        return apply_affine(s, ~self.warm_items, self.cold_affine).astype(np.float32)

    def query_items(self) -> tuple[np.ndarray, np.ndarray, float] | None:
        """Item vectors for the server's inner-product ranking; ``None`` while ``cold_calibration``
        changes the scores of items without interactions (they are then not a plain inner product)."""
        self._check_fitted()
        if calibrates(~self.warm_items, self.cold_affine):
            return None
        return self._inner_product_items(self.item_vecs)

    def user_queries(self, users) -> np.ndarray | None:
        return None if self.query_items() is None else self.user_vecs[self._check_users(users)]

    def history_queries(self, histories: Sequence[np.ndarray]) -> np.ndarray | None:
        """The user-tower vectors :meth:`score_histories` scores with (``None`` as :meth:`query_items`)."""
        if self.query_items() is None:
            return None
        return self._history_vectors(histories)

    def score_histories(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Scores of every item for ad-hoc users given their item-index histories (oldest first).

        The user tower runs on the history as it would for a training user (its last ``max_history``
        items), so an event changes the next scores without retraining. Profile text is not used.
        """
        return self._scores(self._history_vectors(histories))

    def _history_vectors(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """User-tower vectors (float32, as scored) of ad-hoc histories."""
        hists = self._check_histories(histories)
        lengths = np.array([len(h) for h in hists], dtype=np.int64)
        ends = np.cumsum(lengths)
        seq = np.concatenate(hists) if hists else np.empty(0, np.int64)
        with torch.no_grad():
            users = self._pool(self._towers, self._raw_items, seq, ends - lengths, ends, None)
        return users.astype(np.float32)

    def score_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Scores of every item for users known only by a profile text (no history).

        Only for a model trained with ``user_text``: each text goes through the user-text path as a
        training user's profile did (same encoder, same centring, same projection) and is added to
        the learned "empty history" vector, then scored as :meth:`score` scores (same similarity,
        same cold-item calibration). A text rendered like the training profiles (profile fields by
        :func:`clarec.text.templates.user_text`, as the server's profile endpoint does) of a
        training user without interactions gives that user's :meth:`score`. A model trained without
        ``user_text`` refuses (``supports_texts`` is False): its user tower has no text input, and
        every profile-only user would get the same "empty history" vector whatever the text.
        """
        self._check_fitted()
        if not self.supports_texts:
            if self.lm_user is None:
                raise ClarecError(
                    "model 'two-tower' cannot score users from a text: it was trained without "
                    "user_text=True, so its user tower reads no profile text; re-train with user_text"
                )
            raise ClarecError(
                "model 'two-tower' cannot score users from a text: it was saved without its "
                "user-text centring (an older clarec); re-train it to score profile texts"
            )
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.n_items), dtype=np.float32)
        raw = np.asarray(self._user_encoder().encode(texts), dtype=np.float32)
        lm = centre(raw.reshape(len(texts), self.lm_user.shape[1]), self.user_lm_centring)
        none = np.zeros(len(texts), dtype=np.int64)
        with torch.no_grad():
            users = self._pool(
                self._towers, self._raw_items, np.empty(0, np.int64), none, none, torch.from_numpy(lm)
            )
        return self._scores(users.astype(np.float32))

    def add_items(self, items: pd.DataFrame) -> np.ndarray:
        """Add items from their text (the columns of ``fields``); they are scored at once, as cold items.

        Returns the new item indices (``n_items`` onwards, in row order).
        """
        self._check_fitted()
        if self.lm_centring is None and not self.finetune_encoder:
            raise ClarecError(
                "this two-tower model was saved without its text centring; re-train it to add items"
            )
        fields = getattr(self, "text_fields_", None) or self.fields
        if fields is None:  # a model saved without its chosen fields: choose from the new rows
            fields = choose_fields(items, None, "two-tower")
        texts = item_texts(items.reindex(columns=list(fields)), fields, "two-tower")
        enc = self._encoder()
        if self.finetune_encoder:
            lm = enc.encode(texts)
        else:
            lm = centre(enc.encode(texts), self.lm_centring)
        lm = np.asarray(lm, dtype=np.float32).reshape(len(texts), self.lm_item.shape[1])
        new = np.arange(self.n_items, self.n_items + len(lm), dtype=np.int64)
        if self.item_tokens is not None:
            self.item_tokens = sp.vstack(
                [self.item_tokens, item_tokens(texts, self.token_vocab)], format="csr"
            )
        with torch.no_grad():
            raw = self._towers.items(torch.from_numpy(lm), torch.from_numpy(new), None, self._bags(new))
        self.lm_item = np.vstack([self.lm_item, lm])
        self.warm_items = np.concatenate([self.warm_items, np.zeros(len(lm), dtype=bool)])
        self._raw_items = torch.cat([self._raw_items, raw])
        self.item_vecs = np.vstack([self.item_vecs, self._finish(raw).numpy().astype(np.float32)])
        self.texts_ = [*getattr(self, "texts_", []), *texts]
        self._grow_items(len(lm))
        return new

    def item_vectors(self) -> np.ndarray:
        """Item-tower output (unit length) of every item, cold ones included."""
        self._check_fitted()
        return self.item_vecs

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        state = {
            "item_vecs": self.item_vecs,
            "user_vecs": self.user_vecs,
            "lm_item": self.lm_item,
            "warm_items": self.warm_items,
            "seq_items": self._seq[0],
            "seq_starts": self._seq[1],
            "seq_ends": self._seq[2],
            "lm_mean": self.lm_centring[0],
            "lm_scale": np.float64(self.lm_centring[1]),
            "cold_affine": np.asarray(self.cold_affine, dtype=np.float64),
            "text_fields": np.asarray(getattr(self, "text_fields_", None) or [], dtype=str),
        }
        if self.item_tokens is not None:
            state["token_vocab"] = self.token_vocab
            state["item_tokens"] = self.item_tokens
        if self.lm_user is not None:
            state["lm_user"] = self.lm_user
        if getattr(self, "user_lm_centring", None) is not None:
            state["user_lm_mean"] = self.user_lm_centring[0]
            state["user_lm_scale"] = np.float64(self.user_lm_centring[1])
        for name, tensor in self._towers.state_dict().items():
            state[f"w.{name}"] = tensor.detach().cpu().numpy()
        return state

    def _set_state(self, state: dict) -> None:
        self.item_vecs = np.asarray(state["item_vecs"], dtype=np.float32)
        self.user_vecs = np.asarray(state["user_vecs"], dtype=np.float32)
        self.lm_item = np.asarray(state["lm_item"], dtype=np.float32)
        self.lm_user = np.asarray(state["lm_user"], dtype=np.float32) if "lm_user" in state else None
        self.warm_items = np.asarray(state["warm_items"], dtype=bool)
        self.cold_affine = tuple(float(x) for x in state.get("cold_affine", (1.0, 0.0)))
        self.text_fields_ = [str(f) for f in state.get("text_fields", [])] or None
        self.token_vocab = np.asarray(state["token_vocab"]).astype(str) if "token_vocab" in state else None
        self.item_tokens = sp.csr_matrix(state["item_tokens"]) if "item_tokens" in state else None
        self.lm_centring = (
            (np.asarray(state["lm_mean"], dtype=np.float64), float(state["lm_scale"]))
            if "lm_mean" in state
            else None  # saved by an older clarec: no new items can be added
        )
        self.user_lm_centring = (
            (np.asarray(state["user_lm_mean"], dtype=np.float64), float(state["user_lm_scale"]))
            if "user_lm_mean" in state
            else None  # no user text, or saved by an older clarec: no profile texts can be scored
        )
        self.supports_texts = self.lm_user is not None and self.user_lm_centring is not None
        self._seq = (
            np.asarray(state["seq_items"], dtype=np.int64),
            np.asarray(state["seq_starts"], dtype=np.int64),
            np.asarray(state["seq_ends"], dtype=np.int64),
        )
        towers = TwoTowerModule(
            len(state["w.id_emb.weight"]) if "w.id_emb.weight" in state else self.n_items,
            self.lm_item.shape[1],
            None if self.lm_user is None else self.lm_user.shape[1],
            self.dim,
            self.hidden,
            self.dropout,
            self.id_embedding,
            self.pooling,
            self.max_history,
            0 if self.token_vocab is None else len(self.token_vocab),
        )
        weights = {k[2:]: torch.from_numpy(np.asarray(v)) for k, v in state.items() if k.startswith("w.")}
        towers.load_state_dict(weights)
        self._towers = towers.eval()
        lm = torch.from_numpy(self.lm_item)
        with torch.no_grad():
            _, self._raw_items = self._infer(self._towers, lambda items, _train=False: lm[items])

    def _save_files(self, path: Path) -> None:
        """A fine-tuned encoder goes to ``path/encoder`` (a ``TextEncoder.save`` folder)."""
        if self.finetune_encoder and getattr(self, "_text_encoder", None) is not None:
            self._text_encoder.save(path / "encoder")

    def _load_files(self, path: Path) -> None:
        """Re-attach the saved fine-tuned encoder, so items added later are encoded by the encoder the
        item tower was trained with (not by the starting one named in ``encoder``)."""
        folder = path / "encoder"
        if self.finetune_encoder and folder.is_dir():
            self._text_encoder = build_encoder(
                str(folder), self.cache_dir, 64, self.max_length, self.device, self.progress
            )
