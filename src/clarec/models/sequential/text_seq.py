"""text-seq: a sequential recommender whose items are their language-model text vectors, adapted by
parametric whitening and a mixture of experts (UniSRec, Hou et al., KDD 2022).

Each item's text (its fields rendered as in ``lm-content``) is encoded once by the frozen
:class:`~clarec.text.encoder.TextEncoder`; a small adaptor — ``n_experts`` whitening projections
``(x − b_k) W_k`` mixed by a softmax gate on ``x`` — maps it to the model's space, where the causal
Transformer of :class:`~clarec.models.sequential._base.SequentialRecommender` reads sequences of
them. States and items are compared by cosine over ``temperature``. Without an ID embedding (the
default, *inductive*) an item is nothing but its text: items added after training
(:meth:`TextSeq.add_items`) are recommendable at once, and a model trained on one data set can start
another (``init_from``: every weight but the item texts and ID embeddings — how pre-training on
source domains transfers to a target). With ``id_embedding: true`` (*transductive*) a learned ID vector
is added to the text part of each item that has training interactions; an item without any (new to
the catalogue, or added later) keeps its text alone, so it is ranked from its text rather than from an
ID vector that training never fitted and the full softmax only pushed down.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from clarec.data.dataset import Dataset
from clarec.errors import ConfigError
from clarec.models._lm import ItemTextParams, model_text_vectors
from clarec.models.params import param
from clarec.models.registry import register
from clarec.models.sequential._base import SequenceEncoder, SequentialRecommender


class MoEAdaptor(nn.Module):
    """``n_experts`` parametric-whitening projections ``(x − b_k) W_k`` of the text vectors ``x``,
    mixed by ``softmax(x G)``."""

    def __init__(self, d_in: int, d_out: int, n_experts: int, dropout: float, init_std: float, generator):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(n_experts, d_in))
        self.proj = nn.Parameter(torch.randn(n_experts, d_in, d_out, generator=generator) * init_std)
        self.gate = nn.Parameter(torch.randn(d_in, n_experts, generator=generator) * init_std)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(x)
        k, d, e = self.proj.shape
        # (x − b_k) W_k = x W_k − b_k W_k: one product for all experts, no (n, k, d) tensor (3× faster)
        experts = (x @ self.proj.transpose(0, 1).reshape(d, k * e)).view(len(x), k, e)
        weights = torch.softmax(x @ self.gate, dim=-1)
        shift = torch.einsum("kd,kde->ke", self.bias, self.proj)
        return torch.einsum("nk,nke->ne", weights, experts) - weights @ shift


class TextSequenceEncoder(SequenceEncoder):
    """:class:`SequenceEncoder` whose item vectors come from the (frozen) text vectors through a
    :class:`MoEAdaptor`, plus an ID embedding when ``use_ids`` for the items ``trained`` marks (all
    when ``None``); states and items unit length, states divided by the temperature."""

    def __init__(
        self,
        text: np.ndarray,
        use_ids: bool,
        n_experts: int,
        adaptor_dropout: float,
        temperature: float,
        trained: np.ndarray | None = None,
        **kw,
    ):
        super().__init__(n_items=len(text), **kw)
        self.register_buffer("text", torch.as_tensor(text, dtype=torch.float32))
        self.use_ids = use_ids
        if use_ids:  # 1 for the items whose ID vector is used, 0 for the others (their gradient is 0)
            mask = (
                np.ones(len(text), dtype=np.float32) if trained is None else np.asarray(trained, np.float32)
            )
            self.register_buffer("id_mask", torch.as_tensor(mask).reshape(-1, 1))
        self.temperature = temperature
        dim, std = self.positions.weight.shape[1], kw["init_std"]
        self.adaptor = MoEAdaptor(text.shape[1], dim, n_experts, adaptor_dropout, std, kw["generator"])
        if not use_ids:
            self.items.requires_grad_(False)

    def item_table(self) -> torch.Tensor:
        vectors = self.adaptor(self.text) + self.attribute_vectors()
        if self.use_ids:
            vectors = vectors + self.items.weight[1 : self.n_items + 1] * self.id_mask
        return F.normalize(vectors, dim=-1)

    def embed(self, seq: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        table = self.item_table() if table is None else table
        return torch.cat([table.new_zeros(1, table.shape[1]), table])[seq] + self.position_vectors(
            seq.shape[1]
        )

    def output(self, states: torch.Tensor) -> torch.Tensor:
        return F.normalize(states, dim=-1) / self.temperature

    def grow(self, text: np.ndarray) -> None:
        """Append items (their text vectors); they have no ID vectors (no interactions yet)."""
        self.text = torch.cat([self.text, torch.as_tensor(text, dtype=torch.float32)])
        if self.use_ids:
            self.id_mask = torch.cat([self.id_mask, self.id_mask.new_zeros(len(text), 1)])
        weight = self.items.weight.detach()
        grown = torch.cat([weight, weight.new_zeros(len(text), weight.shape[1])])
        self.items = nn.Embedding.from_pretrained(grown, freeze=not self.use_ids, padding_idx=0)
        if self.attributes is not None:  # the new items have no attributes: empty bags
            end = self.attribute_offsets.new_full((len(text),), len(self.attribute_index))
            self.attribute_offsets = torch.cat([self.attribute_offsets, end])
        self.n_items += len(text)


@register("text-seq")
class TextSeq(ItemTextParams, SequentialRecommender):
    """Sequences of language-model item vectors (UniSRec-style); see the module docstring.

    Hyper-parameters (besides :class:`~clarec.models.sequential._base.SequentialRecommender`'s):
        fields: item fields rendered into each text (default: the text columns the table has).
        encoder: text model (``None``: the bundled all-MiniLM-L6-v2); cache_dir: its embedding cache.
        max_length: tokens per item text.
        n_experts: whitening experts of the adaptor; adaptor_dropout: dropout on the text vectors.
        id_embedding: add a learned ID vector to each item with training interactions (transductive).
        temperature: of the cosine scores.
        init_from: a saved ``text-seq`` model folder whose weights (all but item texts and ID vectors)
            this model starts from.
    """

    supports_new_items = True
    new_items_from_text = True

    max_length = ItemTextParams.max_length.with_default(64)
    n_experts = param(8, ge=1)
    adaptor_dropout = param(0.2, ge=0, lt=1)
    id_embedding = param(False)
    temperature = param(0.07, gt=0)
    init_from = param(None, str)

    def _build_module(self, generator: torch.Generator) -> TextSequenceEncoder:
        return TextSequenceEncoder(
            self.text_,
            self.id_embedding,
            self.n_experts,
            self.adaptor_dropout,
            self.temperature,
            getattr(self, "trained_items_", None),
            **self._encoder_settings(generator),
        )

    # ------------------------------------------------------------------ training
    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        self.text_fields_ = None  # chosen anew from this training table
        self.text_ = model_text_vectors(self, train.items)
        self.trained_items_ = np.asarray(self.seen.sum(axis=0)).ravel() > 0
        super()._fit(train, valid)

    def _start_from(self, module: TextSequenceEncoder) -> None:
        """Load ``init_from``'s weights into ``module`` (all but the item texts and ID vectors)."""
        from clarec.models.base import Recommender

        if not (Path(self.init_from).expanduser() / "model.json").is_file():
            raise ConfigError(
                f"{self.name}: init_from {self.init_from!r} holds no saved model; train the source model "
                "first (e.g. clarec run configs/text-seq-pretrain.yaml --out runs/text-seq-pretrain)"
            )
        source = Recommender.load(self.init_from)
        if not isinstance(source, TextSeq):
            raise ConfigError(
                f"{self.name}: init_from {self.init_from!r} holds a {source.name!r} model, not text-seq"
            )

        def setting(model, key):  # an encoder folder named two ways is the same folder
            value = getattr(model, key)
            folder = Path(value).expanduser() if key == "encoder" and isinstance(value, str) else None
            return folder.resolve() if folder is not None and folder.is_dir() else value

        differ = [
            k for k in ("encoder", "max_length", "encoder_runtime") if setting(source, k) != setting(self, k)
        ]
        if differ:  # its adaptor and layers were fitted to another text vector space
            raise ConfigError(
                f"{self.name}: init_from {self.init_from!r} was trained with another "
                + ", ".join(f"{k} ({getattr(source, k)!r}, here {getattr(self, k)!r})" for k in differ)
                + ": its layers read the vectors of that text model; use the same"
            )
        own = module.state_dict()
        shared = {
            k: v
            for k, v in source.module_.state_dict().items()
            # the catalogue's own: text vectors, IDs, and its attribute vocabulary and item→attribute map
            if not k.startswith(("text", "items.", "id_mask", "attribute"))
        }
        wrong = sorted(k for k, v in shared.items() if k not in own or own[k].shape != v.shape)
        if wrong:
            raise ConfigError(
                f"{self.name}: init_from {self.init_from!r} does not fit this model's sizes ({wrong[:3]}...): "
                "use the same encoder, embedding_dim, n_layers, n_heads, inner_size, max_len and n_experts, "
                "and a filter (filter_mix > 0) only where the source has one"
            )
        module.load_state_dict(shared, strict=False)

    def _init_module(self, module: TextSequenceEncoder) -> None:
        if self.init_from is not None:
            self._start_from(module)

    # ------------------------------------------------------------------ new items
    def add_items(self, items: pd.DataFrame) -> np.ndarray:
        """Encode the new items' text and append them; the adaptor gives them vectors at once."""
        self._check_fitted()
        text = model_text_vectors(self, items, new=True)
        n, m = self.n_items, len(items)
        self.module_.grow(text)
        with torch.no_grad():
            self.item_vecs = self.module_.item_table().numpy().astype(np.float32, copy=True)
        self._grow_items(m)
        return np.arange(n, n + m, dtype=np.int64)

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        return {**super()._get_state(), "text_fields": np.asarray(self.text_fields_, dtype=str)}

    def _set_state(self, state: dict) -> None:
        self.text_ = np.asarray(state["module.text"], dtype=np.float32)
        self.text_fields_ = [str(f) for f in state["text_fields"]]
        self.trained_items_ = None
        if self.id_embedding and "module.id_mask" not in state:  # saved before the mask: every item's ID
            state = {**state, "module.id_mask": np.ones((len(self.text_), 1), dtype=np.float32)}
        super()._set_state(state)
