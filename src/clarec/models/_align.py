"""Language-model alignment for the embedding models (``bpr`` and the graph models), switched on by
the ``align`` parameter::

    align: {weight: 0.1, temperature: 0.2, encoder: null, mode: contrastive}

What it adds to a model (written once here, the loss itself is :class:`clarec.contrastive.align.LMAlignment`):

- **Targets.** Each item's LM vector is the encoder's vector of its text (the item table's text fields,
  as ``lm-content`` renders them). A user's is the mean of the LM vectors of the items in their
  training history — the text of what they chose, so no user text is needed. Both sets are centred
  (their mean removed) and made unit length, so what they share does not dominate the contrast.
- **Loss.** Every training step adds ``weight × (L(users) + L(items))`` over the batch's distinct users
  and distinct positive items, ``L`` being the alignment loss on their CF vectors (the vectors the
  model scores with).
- **Cold start.** After training, a linear text → CF map is fitted by ridge regression from the LM
  vectors to the trained vectors of the items with training interactions; items without any (cold
  items of a cold-start split) get the map of their text instead of an untrained vector, and items
  added later (:meth:`add_items`) are scored from their text the same way. The contrastive head only
  learns directions (InfoNCE is on cosines), whereas a dot-product score needs the scale too, hence
  the least-squares map; the alignment loss is what makes the CF space predictable from text.

Settings: ``weight`` (> 0, required), ``temperature`` (0.2), ``mode`` (``contrastive`` or
``generative``), ``hidden`` (0: linear head), ``encoder`` (a model folder or Hugging Face id; default
the bundled MiniLM), ``fields`` (item text fields; default as ``lm-content``), ``cache_dir``
(embedding cache, as the LM models), ``batch_size`` (encoding batch, 64), ``ridge`` (the map's L2
penalty, 1.0), ``cold_calibration`` (``none``, ``match`` or ``validate``: the scores of the items
scored from their text put on the trained items' scale, then shifted by the validation-best amount;
see :mod:`clarec.models._cold`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from clarec.contrastive.align import ALIGN_MODES, LMAlignment
from clarec.data.dataset import Dataset
from clarec.errors import ConfigError
from clarec.models._cold import CALIBRATIONS, match_scores, validated_shift
from clarec.models._lm import build_encoder, choose_fields, item_texts, text_columns, unit_rows
from clarec.models.params import Param, param, text_list


@dataclass(frozen=True)
class AlignSettings:
    """The validated ``align`` parameter (see the module docstring for each setting)."""

    weight: float
    temperature: float = 0.2
    mode: str = "contrastive"
    hidden: int = 0
    encoder: str | None = None
    fields: list[str] | None = None
    cache_dir: str | None = None
    batch_size: int = 64
    ridge: float = 1.0
    cold_calibration: str = "none"

    #: each setting's range, checked as a model parameter is
    SPECS: ClassVar[dict[str, Param]] = {
        "weight": param(None, float, gt=0, nullable=False),
        "temperature": param(0.2, gt=0),
        "mode": param("contrastive", choices=ALIGN_MODES),
        "hidden": param(0, ge=0),
        "encoder": param(None, str),
        "fields": param(None, text_list),
        "cache_dir": param(None, str),
        "batch_size": param(64, ge=1),
        "ridge": param(1.0, ge=0),
        "cold_calibration": param("none", choices=CALIBRATIONS),
    }

    @classmethod
    def parse(cls, value: Any) -> AlignSettings | None:
        """Settings from a mapping such as ``{weight: 0.1}`` (``None``, ``False``, ``{}``: no alignment)."""
        if value is None or value is False or value == {}:
            return None
        if isinstance(value, AlignSettings):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"align must be a mapping such as {{weight: 0.1}}, got {value!r}")
        unknown = sorted(set(value) - set(cls.SPECS))
        if unknown:
            raise ConfigError(f"unknown align key(s) {unknown}; known: {sorted(cls.SPECS)}")
        if value.get("weight") is None:
            raise ConfigError("align.weight is required (the alignment loss's weight, e.g. 0.1)")
        return cls(**{k: s.check("", f"align.{k}", value.get(k, s.default)) for k, s in cls.SPECS.items()})


class AlignedMixin:
    """Alignment for a model with an ``align`` parameter and item vectors to complete after training
    (used through :class:`~clarec.models.embedding.CFEmbeddingRecommender`, which gives it
    ``n_users``/``n_items``/``seen`` and the cold items' score map ``_apply_cold``)."""

    align: AlignSettings | None
    name: str
    #: whether the model's ``_fit`` trains the alignment (:meth:`_setup_align`, :meth:`_align_loss`,
    #: then :meth:`_finish_align` through ``_set_vectors``); ``align`` is refused where it does not
    trains_align: ClassVar[bool] = False

    def _init_align(self) -> None:
        """Called from the model's ``_check_params`` once ``align`` is parsed."""
        if self.align is not None and not self.trains_align:
            raise ConfigError(
                f"{self.name}: align: this model does not train the language-model alignment "
                "(its class does not set trains_align)"
            )
        if self.align is not None:
            self.new_items_from_text = True  # added items are scored through the text → CF map

    def _encode(self, items: pd.DataFrame, fields: list[str]) -> np.ndarray:
        """Unit LM vectors of the items' texts; the encoder is loaded once and kept (a server adding
        items one request at a time would otherwise load the model each time)."""
        if getattr(self, "_align_encoder", None) is None:
            a = self.align
            self._align_encoder = build_encoder(a.encoder, a.cache_dir, a.batch_size)
        texts = item_texts(items, fields, self.name)
        return unit_rows(np.asarray(self._align_encoder.encode(texts), dtype=np.float32))

    def _setup_align(self, train: Dataset, cf_dim: int) -> LMAlignment | None:
        """Encode the targets and build the loss module (to be trained with the model); ``None``
        without alignment."""
        self.text_map_ = None
        if self.align is None:
            return None
        self.text_fields_ = choose_fields(train.items, self.align.fields, self.name)
        lm_items = self._encode(train.items, self.text_fields_)
        deg = np.asarray(self.seen.sum(axis=1)).ravel()
        lm_users = np.asarray(self.seen @ lm_items) / np.maximum(deg, 1.0)[:, None]
        self._lm_items = lm_items
        # Targets are centred before they are made unit length: sentence vectors share a large common
        # direction (and users' history means even more), which would leave InfoNCE little to tell apart.
        targets = [unit_rows(x - x.mean(axis=0)) for x in (lm_users, lm_items)]
        self._lm = tuple(torch.from_numpy(t).to(self.device_) for t in targets)
        a = self.align
        with torch.random.fork_rng():  # the head's initialisation follows the model's seed
            torch.manual_seed(int(getattr(self, "seed", 0)))
            return LMAlignment(lm_items.shape[1], cf_dim, a.mode, a.temperature, a.hidden)

    def _align_loss(
        self,
        module: LMAlignment | None,
        user_vecs: torch.Tensor,
        item_vecs: torch.Tensor,
        users: torch.Tensor,
        items: torch.Tensor,
    ) -> torch.Tensor | float:
        """``weight × (L(users) + L(items))`` over the batch's distinct users and items, where
        ``user_vecs``/``item_vecs`` are the CF vectors of every user / item (indexable by id)."""
        if module is None:
            return 0.0
        u, i = torch.unique(users), torch.unique(items)
        lm_users, lm_items = self._lm
        return self.align.weight * (module(user_vecs[u], lm_users[u]) + module(item_vecs[i], lm_items[i]))

    def _finish_align(self, item_vecs: np.ndarray) -> np.ndarray:
        """Fit the text → CF map on the items with training interactions and give it to the others."""
        self.text_items_, self.cold_affine = None, (1.0, 0.0)
        if self.align is None:
            return item_vecs
        warm = np.asarray(self.seen.sum(axis=0)).ravel() > 0
        self.text_items_ = ~warm
        x = self._lm_items[warm].astype(np.float64)
        y = item_vecs[warm].astype(np.float64)
        xm, ym = x.mean(axis=0), y.mean(axis=0)
        xc = x - xm
        gram = xc.T @ xc + self.align.ridge * np.eye(x.shape[1])
        w = np.linalg.solve(gram, xc.T @ (y - ym))
        self.text_map_ = (w.astype(np.float32), (ym - xm @ w).astype(np.float32))
        out = item_vecs.copy()
        out[~warm] = self._text_to_cf(self._lm_items[~warm])
        del self._lm, self._lm_items  # training-only
        self._align_encoder = None  # not kept after training; add_items loads it on first use
        return out

    def _calibrate_text_items(
        self, user_vecs: np.ndarray, item_vecs: np.ndarray, valid: Dataset | None
    ) -> None:
        """``align.cold_calibration`` (see :mod:`clarec.models._cold`): match the scores of the items
        scored from their text to the trained items' (``match``), then shift them by the
        validation-best amount (``validate``, with ``valid``)."""
        mode = "none" if self.align is None else self.align.cold_calibration
        if mode == "none" or not self.text_items_.any():
            return
        text = self.text_items_
        a, b, spread = match_scores(user_vecs, item_vecs[~text], item_vecs[text], seed=int(self.seed))
        self.cold_affine = (a, b)
        validator = self._validator(valid) if mode == "validate" else None
        if validator is not None:
            shift, _ = validated_shift(
                self.name,
                validator,
                lambda users: self._apply_cold(
                    user_vecs[users].astype(np.float64) @ item_vecs.T.astype(np.float64)
                ),
                text,
                spread,
            )
            self.cold_affine = (a, b + shift)

    def _text_to_cf(self, lm: np.ndarray) -> np.ndarray:
        w, b = self.text_map_
        return (lm.astype(np.float32) @ w + b).astype(np.float32)

    def _new_item_vectors(self, items: pd.DataFrame, dim: int) -> np.ndarray:
        """Vectors for items being added: mapped from their text when aligned, else zeros."""
        if getattr(self, "text_map_", None) is None:
            return np.zeros((len(items), dim), dtype=np.float32)
        fields = list(self.text_fields_)
        vectors = self._text_to_cf(self._encode(text_columns(items, fields, self.name, new=True), fields))
        # only once they are encoded: a failed encoding must leave the model as it was
        self.text_items_ = np.concatenate([self.text_items_, np.ones(len(items), dtype=bool)])
        return vectors

    def _align_state(self) -> dict[str, np.ndarray]:
        if getattr(self, "text_map_", None) is None:
            return {}
        w, b = self.text_map_
        return {
            "text_map_w": w,
            "text_map_b": b,
            "text_fields": np.asarray(self.text_fields_, dtype=str),
            "text_items": self.text_items_,
            "cold_affine": np.asarray(self.cold_affine, dtype=np.float64),
        }

    def _set_align_state(self, state: dict) -> None:
        if "text_map_w" in state:
            self.text_map_ = (
                np.asarray(state["text_map_w"], np.float32),
                np.asarray(state["text_map_b"], np.float32),
            )
            self.text_fields_ = [str(f) for f in state["text_fields"]]
            # saved by an older clarec: no calibration, every item without interactions unknown
            self.text_items_ = np.asarray(state.get("text_items", np.zeros(self.n_items)), dtype=bool)
            self.cold_affine = tuple(float(x) for x in state.get("cold_affine", (1.0, 0.0)))
        else:
            self.text_map_, self.text_items_, self.cold_affine = None, None, (1.0, 0.0)
