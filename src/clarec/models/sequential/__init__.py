"""Sequential recommenders: the next item from the order of a user's history (``sasrec``,
``cl4srec``, ``duorec``, ``text-seq``, and the closed-form ``slit``)."""

from clarec.models.sequential import cl4srec, duorec, sasrec, slit, text_seq  # noqa: F401  (registers the models)
from clarec.models.sequential._base import ContrastiveSequential, SequenceEncoder, SequentialRecommender

__all__ = ["ContrastiveSequential", "SequenceEncoder", "SequentialRecommender"]
