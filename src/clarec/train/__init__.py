"""Training utilities shared by every PyTorch model: the loop, seeding, a validation metric."""

from clarec.train.loop import (
    DivergedError,
    Trainer,
    TrainHistory,
    keep_freed_memory,
    load_checkpoint,
    seed_everything,
    set_torch_threads,
)
from clarec.train.validation import RankingValidator, dot_scores

__all__ = [
    "DivergedError",
    "RankingValidator",
    "Trainer",
    "TrainHistory",
    "dot_scores",
    "keep_freed_memory",
    "load_checkpoint",
    "seed_everything",
    "set_torch_threads",
]
