"""Recommenders. Importing this package registers every built-in model."""

from clarec.models import (  # noqa: F401  (registers the models)
    alpharec,
    blend,
    bpr,
    ease,
    ease_lm,  # noqa: F401  (registers ease-lm)
    graph,  # noqa: F401  (registers lightgcn, sgl, simgcl, xsimgcl, byol-cf)
    itemknn,
    llm_rerank,  # noqa: F401  (registers llm-rerank)
    lm_content,  # noqa: F401  (registers lm-content)
    popularity,
    sequential,  # noqa: F401  (registers sasrec, cl4srec, duorec, text-seq, slit)
    tfidf,
    two_tower,  # noqa: F401  (registers two-tower)
)
from clarec.models.base import NotFittedError, Recommender
from clarec.models.registry import available_models, create, get_model_class, register

__all__ = ["NotFittedError", "Recommender", "available_models", "create", "get_model_class", "register"]
