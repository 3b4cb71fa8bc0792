"""Recommenders. Importing this package registers every built-in model."""

from clarec.models import bpr, ease, itemknn, popularity, tfidf  # noqa: F401  (registers the models)
from clarec.models.base import NotFittedError, Recommender
from clarec.models.registry import available_models, create, get_model_class, register

__all__ = ["NotFittedError", "Recommender", "available_models", "create", "get_model_class", "register"]
