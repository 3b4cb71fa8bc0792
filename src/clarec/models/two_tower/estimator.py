"""The two-tower estimator, :class:`TwoTowerRecommender`: its hyper-parameters, the text it reads,
the fit that ties text, features, towers and training task together, and persistence (the model
itself is described in :mod:`clarec.models.two_tower`; scoring is
:class:`~clarec.models.two_tower.inference.TwoTowerInference`, the real-time API
:class:`~clarec.models.two_tower.realtime.TwoTowerRealTime`)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from clarec.data.dataset import Dataset
from clarec.errors import ConfigError, DataError
from clarec.models._cold import CALIBRATIONS
from clarec.models._lm import build_encoder, choose_fields, item_texts
from clarec.models.embedding import EmbeddingModel
from clarec.models.params import param, text_list
from clarec.models.registry import register
from clarec.models.torch_base import TorchRecommender
from clarec.models.two_tower.features import centre, centring, fit_tokens, user_sequences
from clarec.models.two_tower.inference import TwoTowerInference
from clarec.models.two_tower.module import TwoTowerModule
from clarec.models.two_tower.realtime import TwoTowerRealTime
from clarec.models.two_tower.task import TwoTowerTask
from clarec.text.fast import RUNTIMES
from clarec.text.templates import user_text as render_user_text
from clarec.train.validation import RankingValidator

#: Texts per forward pass of the text encoder (item texts, profiles, items added later).
ENCODE_BATCH = 64
POOLINGS = ("attention", "mean")
HISTORIES = ("past", "all")
AUXES = ("none", "simcse", "byol")
WEIGHTINGS = ("fixed", "warmup", "uncertainty")


def _temperature(value) -> float | list[float]:
    """A temperature > 0, or ``[start, end]`` for a cosine schedule over all training steps."""
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise ConfigError(f"temperature is a number, or [start, end] for a schedule; got {value!r}")
        value = [float(t) for t in value]
        if min(value) <= 0:
            raise ConfigError(f"temperatures must be > 0, got {value}")
        return value
    value = float(value)
    if not value > 0:
        raise ConfigError(f"temperature must be > 0, got {value}")
    return value


@register("two-tower")
class TwoTowerRecommender(TwoTowerRealTime, TwoTowerInference, EmbeddingModel, TorchRecommender):
    """Two-tower retrieval model over language-model item vectors (see :mod:`clarec.models.two_tower`).

    Args:
        fields: item-table columns rendered into the item text (``None``: the default text fields the
            table has, as ``lm-content``).
        encoder: text model folder / Hugging Face id; ``None`` = bundled all-MiniLM-L6-v2.
        cache_dir: embedding cache (``None`` = ``$CLAREC_CACHE/embeddings`` or ``~/.cache/clarec/embeddings``;
            ``"none"`` disables it). Only frozen vectors are cached.
        finetune_encoder: adapt the encoder end-to-end (slow on CPU); else its vectors are frozen.
        encoder_lr: learning rate of the encoder when fine-tuned.
        max_length: tokens per text.
        encoder_runtime: what encodes texts without training: ``"torch"``, ``"torch-bf16"``,
            ``"onnx"`` or ``"onnx-int8"`` (the last two on CPU; see ``TextEncoder``'s ``runtime``).
        embedding_dim: size of user and item vectors.
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
        history_scope: ``"past"`` (items before the target) or ``"all"`` (every other training item).
        history_dropout: share of each training example's history items hidden from the user tower
            (a denoising input, as in Mult-DAE); scoring always sees the whole history.
        user_text: add the user's profile text (user-table fields) to the user tower.
        user_fields: user-table columns for ``user_text`` (``None``: all but ``user_id``).
        temperature: InfoNCE τ; a pair ``[start, end]`` schedules it (cosine) over all training steps.
        learn_temperature: learn τ (initialised at ``temperature``, kept in ``[0.01, 1]``).
        n_negatives: sampled negatives per example on top of the in-batch ones (0: in-batch only).
        in_batch_negatives: the batch's other targets are negatives too (default); ``False``: the
            sampled ones only (needs ``n_negatives > 0``).
        neg_alpha: ``0`` samples negatives uniformly, ``> 0`` ∝ popularity ** ``neg_alpha``.
        hard_negatives: how many of the ``n_negatives`` are hard: mined at the start of each epoch's
            steps from the towers as they stand then (user and item vectors refreshed once per
            epoch), drawn from the ranks ``hard_ranks`` of each user's ranking with the user's
            training items removed (:class:`~clarec.contrastive.HardNegativeMiner`); the rest are
            sampled as ``neg_alpha`` says.
        hard_ranks: ``[start, end)`` ranks the hard negatives come from; starting below the top skips
            the items most likely to be unlabelled positives.
        mask_false_negatives: leave out of an example's softmax, rather than push away, the
            candidates known to be false negatives: its target drawn as a sampled negative, and the
            in-batch targets of examples with the same user or the same target.
        mask_seen_negatives: also leave out the in-batch targets that are the example's user's own
            training items (in a dense log a good share of the in-batch columns; sampled and mined
            negatives already exclude them). Off by default: no published figure used it.
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
        device: where the towers train and the text encoder runs while training (``cpu``, ``cuda``,
            ``cuda:N``, ``auto``; see :class:`~clarec.models.torch_base.TorchRecommender`); a loaded
            model encodes new texts on the CPU.

    Training settings (``epochs`` 50 by default, ``batch_size`` 256 examples per step, ``patience`` 5,
    ``min_epochs``, ``max_steps``, ``eval_k``, ``seed``, ``num_threads``, ...): see
    :class:`~clarec.models.torch_base.TorchRecommender`.
    """

    supports_histories = True
    supports_new_items = True
    new_items_from_text: ClassVar[bool] = True
    splits_batches_itself: ClassVar[bool] = True  # in-batch negatives gathered over the ranks
    #: False for the class: only a model trained with ``user_text`` has a user tower that reads text,
    #: so :meth:`_fit` and :meth:`load` set it per instance (``True`` with ``user_text``).
    supports_texts: ClassVar[bool] = False

    fields = param(None, text_list)
    encoder = param(None, str)
    cache_dir = param(None, str)
    finetune_encoder = param(False)
    encoder_lr = param(2e-5, gt=0)
    max_length = param(128, ge=2)
    encoder_runtime = param("torch", choices=RUNTIMES)
    embedding_dim = param(64, ge=1)
    hidden = param(256, ge=0)
    dropout = param(0.1, ge=0, lt=1)
    id_embedding = param(True)
    id_dropout = param(0.2, ge=0, lt=1)
    token_features = param(False)
    cold_calibration = param("none", choices=CALIBRATIONS)
    pooling = param("attention", choices=POOLINGS)
    max_history = param(50, ge=1)
    history_scope = param("all", choices=HISTORIES)
    history_dropout = param(0.0, ge=0, lt=1)
    user_text = param(False)
    user_fields = param(None, text_list)
    temperature = param(0.05, _temperature)
    learn_temperature = param(False)
    n_negatives = param(128, ge=0)
    in_batch_negatives = param(True)
    neg_alpha = param(0.0, ge=0)
    hard_negatives = param(0, ge=0)
    hard_ranks = param([10, 100], list)
    mask_false_negatives = param(True)
    mask_seen_negatives = param(False)
    aux = param("none", choices=AUXES)
    aux_weight = param(0.1, ge=0)
    aux_dropout = param(0.1, ge=0, lt=1)
    similarity = param("cosine", choices=("cosine", "dot"))
    logq = param(False)
    weighting = param("fixed", choices=WEIGHTINGS)
    lr = param(1e-2, gt=0)
    weight_decay = param(0.0, ge=0)
    epochs = TorchRecommender.epochs.with_default(50)
    patience = TorchRecommender.patience.with_default(5)

    def _check_params(self) -> None:
        if isinstance(self.temperature, list) and self.learn_temperature:
            raise ConfigError("two-tower: a temperature schedule [start, end] cannot be learnable")
        if self.hard_negatives > self.n_negatives:
            raise ConfigError(
                f"two-tower: hard_negatives ({self.hard_negatives}) is part of n_negatives ({self.n_negatives})"
            )
        if not self.in_batch_negatives and self.n_negatives == 0:
            raise ConfigError("two-tower: in_batch_negatives false needs sampled negatives (n_negatives > 0)")
        ranks = self.hard_ranks
        if not (len(ranks) == 2 and all(isinstance(r, int) for r in ranks) and 0 <= ranks[0] < ranks[1]):
            raise ConfigError(
                f"two-tower: hard_ranks must be [start, end) with 0 <= start < end, got {ranks}"
            )
        if self.hard_negatives and self.logq:
            raise ConfigError(
                "two-tower: logq corrects sampled negatives; mined ones have no sampling probability"
            )

    # ------------------------------------------------------------------ text
    def _new_encoder(self, source: str | None):
        """A text encoder of ``source`` with this model's settings."""
        return build_encoder(
            source,
            self.cache_dir,
            ENCODE_BATCH,
            self.max_length,
            str(self.device_),  # the training device in fit, the CPU for a loaded model
            self.progress,
            self.encoder_runtime,
        )

    def _encoder(self):
        if getattr(self, "_text_encoder", None) is None:
            self._text_encoder = self._new_encoder(self.encoder)
        return self._text_encoder

    def _user_encoder(self):
        """The encoder that wrote the training users' profile vectors: the item encoder, or with
        ``finetune_encoder`` a fresh copy of the starting encoder (profiles are encoded once, before
        the item encoder is adapted, and the user-text projection was trained on those vectors)."""
        if not self.finetune_encoder:
            return self._encoder()
        if getattr(self, "_user_text_encoder", None) is None:
            self._user_text_encoder = self._new_encoder(self.encoder)
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
        self.user_fields_ = list(fields)  # the server renders posted profiles with these, in this order
        empty = [np.empty(0, dtype=np.int64)] * train.n_users
        # n_recent=0: the profile only. Listing history titles would put training targets in the input.
        return render_user_text(users, empty, [], profile_fields=fields, n_recent=0)

    # ------------------------------------------------------------------ training
    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        """Item (and profile) texts → centred LM vectors; the users' training sequences and the word
        channel; then towers from :meth:`_build_towers` trained on a :class:`TwoTowerTask`, and the
        vectors the model scores with computed once."""
        rng, _ = self._generators()
        self.text_fields_ = choose_fields(train.items, self.fields, "two-tower")
        self.texts_ = item_texts(train.items, self.text_fields_, "two-tower")
        enc = self._encoder()
        raw_lm = enc.encode(self.texts_)
        self.lm_centring = centring(raw_lm)
        self.lm_item = centre(raw_lm, self.lm_centring)
        self.lm_user = None
        self.user_lm_centring = None
        self.user_fields_ = None
        if self.user_text:
            raw_user = enc.encode(self._profile_texts(train))
            self.user_lm_centring = centring(raw_user)  # kept: score_texts centres new profiles alike
            self.lm_user = centre(raw_user, self.user_lm_centring)

        seq = user_sequences(train.interactions, self.n_users)
        self._seq = (seq.items, seq.starts, seq.ends)
        self.warm_items = np.zeros(self.n_items, dtype=bool)
        self.warm_items[seq.items] = True
        self.token_vocab = None
        self.item_tokens = None
        if self.token_features:
            self.token_vocab, self.item_tokens = fit_tokens(self.texts_, self.warm_items)

        task = TwoTowerTask(self, self._build_towers(self.n_items), seq, rng)
        validator = self._validator(valid)
        validate = None if validator is None else partial(self._validation_ndcg, validator, task)
        self._train(task.bundle, task.batches, task.loss, task.optimizer(), validate, task.after_step)

        task.bundle.eval()
        with torch.no_grad():
            self.lm_item = task.item_lm().cpu().numpy().astype(np.float32)
            self.supports_texts = self.lm_user is not None
            self._set_history_mode()
            self._towers = task.towers.cpu()  # scoring and serving run on the CPU
            self._set_vectors()
            if self.cold_calibration == "validate" and validate is not None:
                self._validate_cold_shift(validator)
        if self.finetune_encoder:
            enc.module.eval()

    def _set_history_mode(self) -> None:
        """A user tower that reads profile text scores a history without it (``score_histories``
        has no profile): close to the trained user, not exact (per instance, as ``supports_texts``)."""
        self.history_mode = "fold-in" if self.lm_user is not None else type(self).history_mode

    def _build_towers(self, n_id_items: int) -> TwoTowerModule:
        """A new :class:`TwoTowerModule` for this model's settings and text inputs (``lm_item``,
        ``lm_user``, ``token_vocab``), with ID vectors for ``n_id_items`` items (those trained: items
        added later have none); :meth:`_fit` trains it, :meth:`_set_state` loads saved weights into it."""
        return TwoTowerModule(
            n_id_items,
            self.lm_item.shape[1],
            None if self.lm_user is None else self.lm_user.shape[1],
            self.embedding_dim,
            self.hidden,
            self.dropout,
            self.id_embedding,
            self.pooling,
            self.max_history,
            0 if self.token_vocab is None else len(self.token_vocab),
        )

    def _validation_ndcg(self, validator: RankingValidator, task: TwoTowerTask) -> float:
        """Validation NDCG@``eval_k`` of the towers in training (what early stopping follows)."""
        item_vecs, raw = self._infer(task.towers, task.lm_of)
        return validator(
            lambda users: self._user_vectors(task.towers, raw, users, task.lm_user) @ item_vecs.T
        )

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        state = {
            **self._vector_state(),
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
            state["user_fields"] = np.asarray(self.user_fields_, dtype=str)
            state["user_lm_scale"] = np.float64(self.user_lm_centring[1])
        for name, tensor in self._towers.state_dict().items():
            state[f"w.{name}"] = tensor.detach().cpu().numpy()
        # the item tower's outputs as the user tower reads them: computed again on load, an item
        # added later (one batch of its own) would come out in other last digits (another batch shape)
        state["raw_items"] = self._raw_items.detach().cpu().numpy()
        return state

    def _set_state(self, state: dict) -> None:
        self._set_vector_state(state)
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
        # saved before 2026-12-07: the server renders a posted profile's fields as posted
        self.user_fields_ = [str(f) for f in state["user_fields"]] if "user_fields" in state else None
        self._set_history_mode()
        self._seq = (
            np.asarray(state["seq_items"], dtype=np.int64),
            np.asarray(state["seq_starts"], dtype=np.int64),
            np.asarray(state["seq_ends"], dtype=np.int64),
        )
        towers = self._build_towers(
            len(state["w.id_emb.weight"]) if "w.id_emb.weight" in state else self.n_items
        )
        weights = {k[2:]: torch.from_numpy(np.asarray(v)) for k, v in state.items() if k.startswith("w.")}
        towers.load_state_dict(weights)
        self._towers = towers.eval()
        if "raw_items" in state:
            self._raw_items = torch.from_numpy(np.asarray(state["raw_items"], dtype=np.float32))
            if len(self._raw_items) != self.n_items:
                raise ValueError(f"raw_items holds {len(self._raw_items)} items, not {self.n_items}")
        else:  # saved before 2026-12-08
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
        if self.finetune_encoder and not folder.is_dir():
            raise DataError(
                folder, "missing: the fine-tuned text encoder the model was saved with (new items need it)"
            )
        if self.finetune_encoder:
            self._text_encoder = self._new_encoder(str(folder))
