"""Contrastive-learning building blocks, written once and composed by every model.

- losses: :class:`InfoNCELoss`, :class:`BYOLLoss` / :class:`BYOL`, :class:`BPRLoss` (and
  :class:`DotProductBPRLoss`, the same on dot products with a closed-form gradient),
  :class:`LMAlignment` (CF ↔ language-model vectors), :class:`CatalogueSoftmaxLoss` and
  :class:`SampledBCELoss` (a query against the whole catalogue: next-item prediction); diagnostics
  :func:`alignment`, :func:`uniformity`;
- temperatures: :class:`FixedTemperature`, :class:`LearnableTemperature`, :class:`ScheduledTemperature`;
- multi-task weighting: :class:`FixedWeighting`, :class:`WarmupWeighting`, :class:`UncertaintyWeighting`;
- augmentations: text (:class:`IdentityAugment`, :class:`WordDropout`, :class:`SpanCrop`,
  :class:`FieldDropout`, :class:`FieldShuffle`, :class:`Compose`) and item sequences
  (:class:`SequenceCrop`, :class:`SequenceMask`, :class:`SequenceReorder`, and CoSeRec's
  :class:`SequenceInsert` and :class:`SequenceSubstitute`; :class:`RandomSequenceAugment`);
- negatives: :class:`UniformNegativeSampler`, :class:`PopularityNegativeSampler`,
  :class:`NoDuplicateBatchSampler`, :class:`HardNegativeMiner`.
"""

from clarec.contrastive.align import LMAlignment
from clarec.contrastive.augment import (
    Compose,
    FieldDropout,
    FieldShuffle,
    IdentityAugment,
    RandomSequenceAugment,
    SequenceAugment,
    SequenceCrop,
    SequenceInsert,
    SequenceMask,
    SequenceReorder,
    SequenceSubstitute,
    SpanCrop,
    TextAugment,
    WordDropout,
)
from clarec.contrastive.bpr import BPRLoss, DotProductBPRLoss
from clarec.contrastive.byol import BYOL, BYOLLoss
from clarec.contrastive.catalogue import CatalogueSoftmaxLoss, SampledBCELoss
from clarec.contrastive.diagnostics import alignment, uniformity
from clarec.contrastive.infonce import InfoNCELoss
from clarec.contrastive.samplers import (
    HardNegativeMiner,
    NegativeSampler,
    NoDuplicateBatchSampler,
    PopularityNegativeSampler,
    UniformNegativeSampler,
)
from clarec.contrastive.temperature import (
    FixedTemperature,
    LearnableTemperature,
    ScheduledTemperature,
    Temperature,
    as_temperature,
)
from clarec.contrastive.weighting import FixedWeighting, LossWeighting, UncertaintyWeighting, WarmupWeighting

__all__ = [
    "BPRLoss",
    "DotProductBPRLoss",
    "BYOL",
    "BYOLLoss",
    "CatalogueSoftmaxLoss",
    "Compose",
    "FieldDropout",
    "FieldShuffle",
    "FixedTemperature",
    "FixedWeighting",
    "HardNegativeMiner",
    "IdentityAugment",
    "InfoNCELoss",
    "LMAlignment",
    "LearnableTemperature",
    "LossWeighting",
    "NegativeSampler",
    "NoDuplicateBatchSampler",
    "PopularityNegativeSampler",
    "RandomSequenceAugment",
    "SampledBCELoss",
    "ScheduledTemperature",
    "SequenceAugment",
    "SequenceCrop",
    "SequenceMask",
    "SequenceInsert",
    "SequenceReorder",
    "SequenceSubstitute",
    "SpanCrop",
    "Temperature",
    "TextAugment",
    "UncertaintyWeighting",
    "UniformNegativeSampler",
    "WarmupWeighting",
    "WordDropout",
    "alignment",
    "as_temperature",
    "uniformity",
]
