"""SASRec: next-item prediction with causal self-attention (Kang and McAuley, ICDM 2018)."""

from __future__ import annotations

from clarec.models.registry import register
from clarec.models.sequential._base import SequentialRecommender


@register("sasrec")
class SASRec(SequentialRecommender):
    """Self-attentive sequential recommendation: the state after a user's last item scores every item
    by inner product with the (shared) item embeddings.

    ``loss: ce`` (the default) trains with the softmax over every item, which is much stronger than
    the original sampled binary cross-entropy (``loss: bce``; Klenitskiy and Vasilev, RecSys 2023);
    RecBole's SASRec with ``loss_type: CE`` is the same model. Hyper-parameters and training settings:
    :class:`~clarec.models.sequential._base.SequentialRecommender`.
    """
