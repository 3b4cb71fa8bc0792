"""What every sequential recommender shares: ordered histories in, the next item out.

A user's state is a causal self-attention encoder's output after the last item of their history
(oldest first); an item's score is its inner product with that state, so a sequential model is an
:class:`~clarec.models.embedding.EmbeddingModel`: ``user_vecs`` are the states after each user's
training history, ``item_vecs`` the item table, and :meth:`score_histories` runs the encoder on any
ordered history (the server's live events, the test input of the next-item protocol, which includes
the validation item — see :class:`~clarec.evaluate.Evaluator`'s ``test_input``).

Training (SASRec, Kang and McAuley 2018): every item of a training sequence after the first is a
target predicted from the items before it. A sequence longer than ``max_len + 1`` is cut into
windows from its end, so every target is used once (``targets: last`` makes each target an example
of its own instead, its prefix the input, as RecBole's sequential models train). Sequences of
similar length are batched together (within groups of 16 batches drawn at random each epoch) and a
batch is padded only to its longest sequence. The loss against the catalogue is
:class:`~clarec.contrastive.CatalogueSoftmaxLoss` (``loss: ce``, the default) or
:class:`~clarec.contrastive.SampledBCELoss` (``loss: bce``); models add their own terms through
:meth:`SequentialRecommender._extra_loss` (:class:`ContrastiveSequential` gives them the InfoNCE
settings).

Positions count back from the last item (the most recent item always has position ``max_len - 1``),
so a history's state does not depend on how much padding its batch needed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from clarec.contrastive.catalogue import CatalogueSoftmaxLoss, SampledBCELoss
from clarec.contrastive.infonce import InfoNCELoss
from clarec.data.dataset import Dataset
from clarec.errors import ConfigError
from clarec.models.embedding import EmbeddingModel
from clarec.models.params import param
from clarec.models.torch_base import TorchRecommender
from clarec.train import distributed
from clarec.train.validation import dot_scores

#: Batches whose sequences are sorted by length together (a group is drawn at random each epoch).
BUCKET_BATCHES = 16
#: Histories encoded at once outside training.
ENCODE_BATCH = 512


def target_free_negatives(
    targets: torch.Tensor, n_items: int, n: int, generator: torch.Generator
) -> torch.Tensor:
    """``n`` uniform negatives per target, none of them the target itself (redrawn): ``(len(targets),
    n)``, on the targets' device (drawn on the CPU, by ``generator``). The target's earlier items may
    be drawn (excluding them is ``exclude_history``'s job)."""
    cpu = targets.cpu()
    neg = torch.randint(0, n_items, (len(cpu), n), generator=generator)
    while n_items > 1 and (clash := neg == cpu[:, None]).any():
        neg[clash] = torch.randint(0, n_items, (int(clash.sum()),), generator=generator)
    return neg.to(targets.device)


def left_pad(sequences: Sequence[np.ndarray], max_len: int) -> np.ndarray:
    """``(n, L)`` int64 matrix of each sequence's last ``max_len`` item indices shifted by one (0 is
    padding), right-aligned; ``L`` is the longest kept length (at least 1)."""
    width = max(1, min(max_len, max((len(s) for s in sequences), default=1)))
    out = np.zeros((len(sequences), width), dtype=np.int64)
    for r, s in enumerate(sequences):
        s = np.asarray(s, dtype=np.int64)[-width:]
        if len(s):
            out[r, width - len(s) :] = s + 1
    return out


def training_prefixes(histories: Sequence[np.ndarray], max_len: int) -> list[np.ndarray]:
    """Every prefix of at least two items of each history, each cut to its last ``max_len + 1``
    items: one example per target, predicted from its prefix alone (RecBole's sequential data)."""
    return [
        np.asarray(h[max(0, end - max_len - 1) : end], dtype=np.int64)
        for h in histories
        for end in range(2, len(h) + 1)
    ]


def training_windows(histories: Sequence[np.ndarray], max_len: int) -> list[np.ndarray]:
    """Each history of at least two items as windows of up to ``max_len + 1`` items, cut from its end
    every ``max_len`` items: every item after a history's first is a target in exactly one window."""
    windows = []
    for h in histories:
        end = len(h)
        while end >= 2:
            windows.append(np.asarray(h[max(0, end - max_len - 1) : end], dtype=np.int64))
            end -= max_len
    return windows


def history_pairs(inputs: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rows, items)``: for each kept position of the padded inputs ``(B, L)`` (its row in
    ``states[keep]``), the item indices of every input up to and including that position — what
    the target at that position comes after."""
    device = inputs.device
    rows = torch.full(keep.shape, -1, dtype=torch.int64, device=device)
    rows[keep] = torch.arange(int(keep.sum()), device=device)
    upto = torch.ones(inputs.shape[1], inputs.shape[1], dtype=torch.bool, device=device).tril()  # t' <= t
    b, t, before = (keep[:, :, None] & upto[None] & (inputs[:, None, :] > 0)).nonzero(as_tuple=True)
    return rows[b, t], inputs[b, before] - 1


def low_pass_kernel(max_len: int, frequencies: int) -> torch.Tensor:
    """``(max_len, max_len)`` lower-triangular Toeplitz matrix ``T``: ``(T @ x)[t]`` is what keeping
    the ``frequencies`` lowest discrete Fourier frequencies (the constant included) of the window of
    ``max_len`` positions ending at ``t`` gives at its last position (positions before a sequence's
    start read as zero). An ideal low-pass filter is a circular convolution; at a window's last
    position it reads only the window itself, so the filter is causal: position ``t`` reads positions
    ``t - max_len + 1`` to ``t``."""
    n = max_len
    lags = np.arange(n)
    weights = np.array([1.0 if k == 0 or 2 * k == n else 2.0 for k in range(min(frequencies, n // 2 + 1))])
    h = (weights[:, None] * np.cos(2 * np.pi * np.arange(len(weights))[:, None] * lags[None] / n)).sum(0) / n
    lag = lags[:, None] - lags[None, :]
    return torch.as_tensor(np.where(lag >= 0, h[np.clip(lag, 0, None)], 0.0), dtype=torch.float32)


class LowPassMix(nn.Module):
    """The frequency part of a BSARec layer (Shin et al., AAAI 2024), made causal: each position's
    input split into its low-pass part (:func:`low_pass_kernel`) and the rest, the rest rescaled by a
    learned per-dimension ``beta ** 2`` (1 at the start), then dropout, residual and layer norm. A
    layer's output mixes it with the self-attention sublayer's (``mix``: the filter's share).

    BSARec filters each padded sequence as a whole, which lets every position read later ones; it
    trains only the last position, where that does not matter. Here every position is a target, so
    each position is filtered over the window that ends there.
    """

    def __init__(self, dim: int, max_len: int, frequencies: int, dropout: float):
        super().__init__()
        self.register_buffer("kernel", low_pass_kernel(max_len, frequencies), persistent=False)
        self.sqrt_beta = nn.Parameter(torch.ones(dim))
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim, eps=1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, L, d)``, padding positions zero."""
        length = x.shape[1]
        low = torch.einsum("ts,bsd->btd", self.kernel[:length, :length], x)
        return self.norm(x + self.drop(low + self.sqrt_beta**2 * (x - low)))


class SequenceEncoder(nn.Module):
    """Item and position embeddings, then causal Transformer layers (post-norm, GELU, as BERT and
    RecBole's SASRec); ``forward`` returns the state after every position ``(B, L, d)``. With
    ``filter_mix > 0`` each layer's attention output is mixed with a causal low-pass filter's
    (:class:`LowPassMix`, BSARec's inductive bias) before its feed-forward part."""

    def __init__(
        self,
        n_items: int,
        dim: int,
        max_len: int,
        n_layers: int,
        n_heads: int,
        inner_size: int,
        dropout: float,
        init_std: float,
        generator: torch.Generator,
        extra_tokens: int = 0,
        attributes: tuple[np.ndarray, np.ndarray, int] | None = None,
        filter_mix: float = 0.0,
        filter_frequencies: int = 3,
    ):
        super().__init__()
        self.max_len = max_len
        self.n_heads = n_heads
        self.n_items = n_items
        # row 0 pads; rows 1..n_items are the items; then ``extra_tokens`` rows (e.g. a mask token)
        self.items = nn.Embedding(n_items + 1 + extra_tokens, dim, padding_idx=0)
        self.positions = nn.Embedding(max_len, dim)
        self.norm = nn.LayerNorm(dim, eps=1e-12)
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            dim, n_heads, inner_size, dropout, activation="gelu", batch_first=True, layer_norm_eps=1e-12
        )
        self.layers = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        # item attributes (category, brand...): the mean of their vectors joins each item's vector
        self.attributes = None
        if attributes is not None:
            index, offsets, n_values = attributes
            self.attributes = nn.EmbeddingBag(max(1, n_values), dim, mode="mean")
            self.register_buffer("attribute_index", torch.as_tensor(index, dtype=torch.int64))
            self.register_buffer("attribute_offsets", torch.as_tensor(offsets, dtype=torch.int64))
        self.filter_mix = filter_mix
        self.filters = None
        if filter_mix > 0:  # only 1-d parameters: the initialisation below draws the same numbers
            self.filters = nn.ModuleList(
                LowPassMix(dim, max_len, filter_frequencies, dropout) for _ in range(n_layers)
            )
        for name, p in self.named_parameters():
            if p.dim() > 1:
                nn.init.normal_(p, 0.0, init_std, generator=generator)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
        with torch.no_grad():
            self.items.weight[0].zero_()

    def item_table(self) -> torch.Tensor:
        """The item vectors ``(n_items, d)`` (row ``i`` is item index ``i``): ID embedding, plus the
        mean of the item's attribute vectors when the model reads attributes."""
        return self.items.weight[1 : self.n_items + 1] + self.attribute_vectors()

    def attribute_vectors(self) -> torch.Tensor | float:
        """Each item's mean attribute vector ``(n_items, d)`` (zero without attributes); 0.0 when
        the model reads none."""
        if self.attributes is None:
            return 0.0
        return self.attributes(self.attribute_index, self.attribute_offsets)

    def embed(self, seq: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """Input vectors of padded sequences: item plus position. ``table`` is :meth:`item_table`
        computed once for the batch (models whose item vectors are computed read it; the ID
        embedding alone is looked up directly)."""
        if self.attributes is None:
            return self.items(seq) + self.position_vectors(seq.shape[1])
        table = self.item_table() if table is None else table
        extra = self.items.weight[self.n_items + 1 :]  # tokens past the catalogue (cl4srec's mask)
        return torch.cat([table.new_zeros(1, table.shape[1]), table, extra])[seq] + self.position_vectors(
            seq.shape[1]
        )

    def position_vectors(self, length: int) -> torch.Tensor:
        """``(1, length, d)``: the last position is the most recent item's."""
        pos = torch.arange(self.max_len - length, self.max_len, device=self.positions.weight.device)
        return self.positions(pos)[None]

    def output(self, states: torch.Tensor) -> torch.Tensor:
        """What the model scores with from the Transformer's output (text models normalise it)."""
        return states

    def forward(self, seq: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        length = seq.shape[1]
        x = self.drop(self.norm(self.embed(seq, table)))
        pad = seq == 0
        blocked = torch.triu(torch.ones(length, length, dtype=torch.bool, device=seq.device), 1)
        blocked = blocked[None] | pad[:, None, :]
        # a padding position sees itself, so no row of the attention is empty (its output is unused)
        blocked &= ~torch.eye(length, dtype=torch.bool, device=seq.device)[None]
        blocked = blocked.repeat_interleave(self.n_heads, dim=0)
        if self.filters is None:
            return self.output(self.layers(x, mask=blocked))
        return self.output(self._mixed_layers(x, blocked, pad))

    def _mixed_layers(self, x: torch.Tensor, blocked: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """The Transformer layers with each attention sublayer's output mixed with the filter's."""
        real = (~pad)[..., None].to(x.dtype)
        for layer, low_pass in zip(self.layers.layers, self.filters, strict=True):
            attended = layer.self_attn(x, x, x, attn_mask=blocked, need_weights=False)[0]
            attended = layer.norm1(x + layer.dropout1(attended))
            h = self.filter_mix * low_pass(x * real) + (1 - self.filter_mix) * attended
            ff = layer.linear2(layer.dropout(layer.activation(layer.linear1(h))))
            x = layer.norm2(h + layer.dropout2(ff))
        return x

    def last(self, seq: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """The state after each sequence's last item ``(B, d)``."""
        return self.forward(seq, table)[:, -1]


class SequentialRecommender(EmbeddingModel, TorchRecommender):
    """Base of the sequential models (``sasrec`` and the contrastive ones built on it).

    Hyper-parameters:
        embedding_dim: size of item vectors and states.
        max_len: most recent items a state reads.
        n_layers, n_heads: Transformer layers and attention heads.
        inner_size: width of each layer's feed-forward part.
        dropout: dropout on embeddings, attention and feed-forward outputs.
        init_std: standard deviation of the normal initialisation.
        targets: ``all`` (every position of a training window is a target, one pass per window, as
            SASRec's paper) or ``last`` (one example per target: each prefix of a training history
            predicts its next item from its own pass, as RecBole trains; about as many passes as
            training pairs, each with its own dropout).
        loss: ``ce`` (softmax over every item) or ``bce`` (positive and ``n_negatives`` uniformly
            sampled negatives per target, never the target itself).
        n_negatives: negatives per target with ``loss: bce``.
        negatives: the items a target is contrasted with, by either loss: ``catalogue`` (every item,
            the default) or ``trained`` (the items with training interactions: an item nobody has
            interacted with yet — a new item a text model ranks from its text — is not pushed down as
            a negative of every training target; it is still ranked).
        exclude_history: with ``loss: ce``, leave each target's earlier items (those of its training
            window) out of its softmax: under the masked convention history items are never ranked,
            so the model need not learn to push them down.
        lr, weight_decay: Adam.
        attributes: an item column of attribute lists (category, brand ids of the S3-Rec files);
            the mean of their learned vectors joins each item's vector.
        filter_mix: share of a causal low-pass filter in each layer's mix with self-attention
            (BSARec's inductive bias; 0: plain self-attention, the default).
        filter_frequencies: lowest Fourier frequencies of a ``max_len`` window the filter keeps
            (the constant included; BSARec's ``c`` keeps ``c // 2 + 1`` of them).

    Training settings (``epochs`` 200, ``batch_size`` 256 sequences): see
    :class:`~clarec.models.torch_base.TorchRecommender`.
    """

    supports_histories = True
    history_mode = "exact"

    embedding_dim = param(64, ge=1)
    max_len = param(50, ge=1)
    n_layers = param(2, ge=1)
    n_heads = param(2, ge=1)
    inner_size = param(256, ge=1)
    dropout = param(0.5, ge=0, lt=1)
    init_std = param(0.02, gt=0)
    loss = param("ce", choices=("ce", "bce"))
    n_negatives = param(1, ge=1)
    negatives = param("catalogue", choices=("catalogue", "trained"))
    exclude_history = param(False)
    lr = param(1e-3, gt=0)
    weight_decay = param(0.0, ge=0)
    attributes = param(None, str)
    filter_mix = param(0.0, ge=0, le=1)
    filter_frequencies = param(3, ge=1)
    targets = param("all", choices=("all", "last"))
    epochs = TorchRecommender.epochs.with_default(200)

    def _check_params(self) -> None:
        if self.exclude_history and self.loss != "ce":
            raise ConfigError(f"{self.name}: exclude_history needs loss: ce")
        if self.embedding_dim % self.n_heads:
            raise ConfigError(
                f"{self.name}: embedding_dim ({self.embedding_dim}) must be a multiple of n_heads ({self.n_heads})"
            )

    # ------------------------------------------------------------------ model
    #: embedding rows after the items (a mask token for the models that mask items)
    extra_tokens = 0

    def _build_module(self, generator: torch.Generator) -> SequenceEncoder:
        return SequenceEncoder(
            n_items=self.n_items, extra_tokens=self.extra_tokens, **self._encoder_settings(generator)
        )

    def _encoder_settings(self, generator: torch.Generator) -> dict:
        """The :class:`SequenceEncoder` arguments every sequential model sets the same way."""
        return {
            "dim": self.embedding_dim,
            "max_len": self.max_len,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "inner_size": self.inner_size,
            "dropout": self.dropout,
            "init_std": self.init_std,
            "generator": generator,
            "attributes": self.attributes_,
            "filter_mix": self.filter_mix,
            "filter_frequencies": self.filter_frequencies,
        }

    def _init_module(self, module: SequenceEncoder) -> None:  # noqa: B027 - a hook
        """Called on the freshly built module before training (``text-seq`` loads pre-trained weights)."""

    def _extra_loss(self, rows: np.ndarray, seq: torch.Tensor, states: torch.Tensor) -> torch.Tensor | None:
        """A term added to the next-item loss of a batch (contrastive models); ``None``: none.

        ``rows`` are the batch's indices into ``self._windows`` (the training windows, set during
        ``fit`` with ``self._rng``, the generator for this term's draws), ``seq`` the padded batch ``(B, L + 1)``
        (the inputs, then the last target), ``states`` the states ``(B, L, d)`` after every input.
        """
        return None

    # ------------------------------------------------------------------ training
    def _item_attributes(self, items: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, int] | None:
        """``(index, offsets, n_values)`` of the ``attributes`` column's values per item (an
        :class:`~torch.nn.EmbeddingBag` input), or ``None`` when the model reads no attributes."""
        if self.attributes is None:
            return None
        if self.attributes not in items.columns:
            have = [str(c) for c in items.columns if c != "item_id"]
            raise ConfigError(f"{self.name}: item table has no column {self.attributes!r}; it has {have}")
        lists = [
            [str(v) for v in x]
            if isinstance(x, list | tuple | np.ndarray)
            else ([] if pd.isna(x) else [str(x)])
            for x in items[self.attributes]
        ]
        vocab = {v: n for n, v in enumerate(sorted({v for values in lists for v in values}))}
        index = np.array([vocab[v] for values in lists for v in values], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum([len(v) for v in lists])[:-1]]).astype(np.int64)
        return index, offsets, len(vocab)

    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        self.attributes_ = self._item_attributes(train.items)
        histories = train.user_histories()
        make = training_windows if self.targets == "all" else training_prefixes
        windows = make(histories, self.max_len)
        rng, gen = self._generators()
        # the contrastive terms' draws (views, positives) come from the batches' generator in one
        # process; under torchrun each rank draws for its own slice of a batch, so from a generator of
        # its own: the batches' generator must stay in step on every rank (the same global batches)
        if distributed.world_size() > 1:
            self._rng = np.random.Generator(rng.bit_generator.jumped(distributed.rank() + 1))  # rng untouched
        else:
            self._rng = rng
        self._windows = windows
        self.module_ = self._build_module(gen)
        self._init_module(self.module_)
        lengths = np.array([len(w) for w in windows])
        catalogue = CatalogueSoftmaxLoss() if self.loss == "ce" else None
        bce = SampledBCELoss() if self.loss == "bce" else None
        # the items a target is contrasted with (``pool``) and each item's row among them (``row``; the
        # targets and the inputs of training windows are trained items, so every one has a row)
        pool = row = None
        if self.negatives == "trained":
            pool = np.flatnonzero(np.asarray(self.seen.sum(axis=0)).ravel() > 0)
            row = np.full(self.n_items, -1, dtype=np.int64)
            row[pool] = np.arange(len(pool))
            pool, row = torch.from_numpy(pool).to(self.device_), torch.from_numpy(row).to(self.device_)

        def batches(epoch: int) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
            order = rng.permutation(len(windows))
            group = self.batch_size * BUCKET_BATCHES
            chunks = []
            for start in range(0, len(order), group):
                part = order[start : start + group]
                part = part[np.argsort(lengths[part], kind="stable")]
                chunks += [part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size)]
            for c in rng.permutation(len(chunks)):
                yield chunks[c], torch.from_numpy(left_pad([windows[i] for i in chunks[c]], self.max_len + 1))

        def loss_fn(batch: tuple[np.ndarray, torch.Tensor]) -> torch.Tensor:
            rows, seq = batch
            inputs, targets = seq[:, :-1], seq[:, 1:]
            table = self.module_.item_table()
            states = self.module_(inputs, table)
            keep = (inputs > 0) & (targets > 0)  # a sequence's first item has nothing before it
            if self.targets == "last":
                keep[:, :-1] = False
            queries, y = states[keep], targets[keep] - 1
            if catalogue is not None:
                exclude = history_pairs(inputs, keep) if self.exclude_history else None
                if pool is None:
                    loss = catalogue(queries, table, y, exclude)
                else:
                    exclude = None if exclude is None else (exclude[0], row[exclude[1]])
                    loss = catalogue(queries, table[pool], row[y], exclude)
            else:
                if pool is None:
                    neg = target_free_negatives(y, self.n_items, self.n_negatives, gen)
                else:
                    neg = pool[target_free_negatives(row[y], len(pool), self.n_negatives, gen)]
                loss = bce((queries * table[y]).sum(-1), torch.einsum("nd,nkd->nk", queries, table[neg]))
            if distributed.world_size() > 1:
                # a mean over this rank's targets, whose number differs from rank to rank: rescaled so
                # that DDP's average over the ranks is the mean over the global batch's targets
                loss = loss * (len(y) / distributed.mean_over_ranks(len(y)))
            extra = self._extra_loss(rows, seq, states)
            return loss if extra is None else loss + extra

        optimizer = torch.optim.Adam(self.module_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        validator = self._validator(valid)
        validate = None
        if validator is not None:

            def validate() -> float:
                # every validation user's state at once, so that _encode batches them by length over
                # all of them (a chunk of users at a time would pad most short histories to max_len)
                table = self.module_.item_table()
                states = self._encode([histories[u] for u in validator.users], table)
                scores = dot_scores(states, table)
                return validator(lambda users: scores(np.searchsorted(validator.users, users)))

        try:
            self._train(self.module_, batches, loss_fn, optimizer, validate)
        finally:
            del self._windows, self._rng
        self.module_.eval()
        with torch.no_grad():
            self.item_vecs = self.module_.item_table().cpu().numpy().astype(np.float32, copy=True)
        self.user_vecs = self._encode(histories).cpu().numpy().astype(np.float32, copy=True)
        self.module_.cpu()  # served histories are encoded on the CPU

    def _encode(self, histories: Sequence[np.ndarray], table: torch.Tensor | None = None) -> torch.Tensor:
        """States after each history ``(n, d)``, module in eval mode; zero for an empty history.
        Histories are encoded in batches of similar lengths; ``table``: the item table if at hand.
        The states are on the module's device."""
        device = self.module_.positions.weight.device
        out = torch.zeros(len(histories), self.embedding_dim, device=device)
        lengths = np.array([min(len(h), self.max_len) for h in histories], dtype=np.int64)
        # shortest first, so a batch is padded only to lengths close to its own
        nonempty = np.argsort(lengths, kind="stable")[np.count_nonzero(lengths == 0) :]
        training = self.module_.training
        self.module_.eval()
        try:
            with torch.no_grad():
                table = self.module_.item_table() if table is None else table
                for start in range(0, len(nonempty), ENCODE_BATCH):
                    rows = nonempty[start : start + ENCODE_BATCH]
                    seq = torch.from_numpy(left_pad([histories[r] for r in rows], self.max_len)).to(device)
                    out[torch.from_numpy(rows).to(device)] = self.module_.last(seq, table)
        finally:
            self.module_.train(training)
        return out

    # ------------------------------------------------------------------ scoring
    def _history_vectors(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """The encoder's state after each (checked) history, oldest item first."""
        return self._encode(self._check_histories(histories)).cpu().numpy().astype(np.float32)

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        module = {f"module.{k}": v.detach().numpy() for k, v in self.module_.state_dict().items()}
        return {**self._vector_state(), **module}

    def _set_state(self, state: dict) -> None:
        self._set_vector_state(state)
        self.attributes_ = None
        if "module.attribute_index" in state:
            index, offsets = state["module.attribute_index"], state["module.attribute_offsets"]
            self.attributes_ = (index, offsets, len(state["module.attributes.weight"]))
        self.module_ = self._build_module(torch.Generator().manual_seed(self.seed))
        weights = {
            k[len("module.") :]: torch.from_numpy(np.array(v))
            for k, v in state.items()
            if k.startswith("module.")
        }
        self.module_.load_state_dict(weights)
        self.module_.eval()


class ContrastiveSequential(SequentialRecommender):
    """A sequential model with a contrastive term between two encodings of each training sequence
    (``cl4srec``, ``duorec``): :class:`~clarec.contrastive.InfoNCELoss` with in-batch negatives in
    both directions, added with weight ``ssl_weight``.

    Hyper-parameters (besides :class:`SequentialRecommender`'s):
        ssl_weight: weight of the contrastive term.
        ssl_temperature: InfoNCE temperature.
        ssl_similarity: ``dot`` (as CL4SRec and DuoRec) or ``cos``.
    """

    ssl_weight = param(0.1, ge=0)
    ssl_temperature = param(1.0, gt=0)
    ssl_similarity = param("dot", choices=("dot", "cos"))

    def _contrast(self, a: torch.Tensor, b: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        """``ssl_weight`` × InfoNCE between rows of ``a`` and ``b``; rows with equal ``ids`` are not
        each other's negatives."""
        loss = InfoNCELoss(self.ssl_temperature, symmetric=True, normalize=self.ssl_similarity == "cos")
        return self.ssl_weight * loss(a, b, query_ids=ids, positive_ids=ids)
