"""Two-tower recommender: a language-model item tower and a history-pooling user tower, trained with InfoNCE.

Item tower
    The item's text (:func:`clarec.text.templates.item_text`) → a :class:`~clarec.text.encoder.TextEncoder`
    vector (frozen and cached on disk by default; adapted end-to-end with ``finetune_encoder``) → an MLP
    projection to ``embedding_dim``. With ``id_embedding`` a learnable ID vector is added through a learned gate::

        item = text_proj(lm) + m · sigmoid(W [text_proj(lm); id]) ⊙ id

    where ``m`` is 0 for items absent from training (their ID vectors never learned anything) and, during
    training, for a random ``id_dropout`` share of the items of each batch — so the text path alone is
    trained to place items, and a cold item's vector is its text projection. With ``token_features``
    the text path also adds the mean of learned vectors of the item's words (those shared by trained
    items), which carries what the interactions taught about a genre or a year over to new items.

User tower
    The item-tower vectors of the user's last ``max_history`` items, pooled by attention (a learned
    query attending over them, plus recency position embeddings) or by their mean, then a linear map;
    optionally plus the projection of the user's profile text (:func:`clarec.text.templates.user_text`
    with profile fields only — listing history titles would leak the training targets). A user with
    no history gets a learned "empty history" vector (plus the profile text when ``user_text``); the
    training examples with an empty history teach it: with ``history="past"`` every user's first
    interaction, with the default ``"all"`` only the rare example whose user has no other item (or
    whose history ``history_dropout`` empties), so there that vector is barely trained and a user without history or
    profile is better served by popularity (``clarec serve`` does so; ``score_histories`` of an
    empty history does not).

Training
    Examples are (history before the target → target) for every training interaction, in time order
    (``history="past"``, the target never in its own history), or (every other training item → target)
    with ``history="all"``. The loss is :class:`~clarec.contrastive.InfoNCELoss` over in-batch negatives
    (the same user's or the same item's other columns masked as false negatives) plus ``n_negatives``
    sampled ones per row (uniform over the items with training interactions, or ∝ popularity **
    ``neg_alpha``; never a cold item, which would only learn to be buried), with a fixed, learnable or
    scheduled temperature. An auxiliary SimCSE (two feature-dropout views of an item's LM vector through
    the text projection; with a fine-tuned encoder, two encoder-dropout views) or BYOL loss on the item
    tower is weighted in by :mod:`clarec.contrastive.weighting`. Early stopping on validation NDCG@k
    through :class:`~clarec.train.loop.Trainer`.

Scores are cosines (``similarity="cosine"``: user and item vectors are L2-normalised) or dot products.

Real time: :meth:`TwoTowerRecommender.score_histories` runs the user tower on any history (an event
changes the next scores without retraining), :meth:`TwoTowerRecommender.add_items` puts new items
in the catalogue through their text, and with ``user_text`` :meth:`TwoTowerRecommender.score_texts`
serves a user known only by a profile text (the user tower on an empty history plus that text).

Package layout, one concept per module:

- :mod:`~clarec.models.two_tower.estimator`: :class:`TwoTowerRecommender` (hyper-parameters, text,
  fit, persistence), registered as ``two-tower``;
- :mod:`~clarec.models.two_tower.inference`: how the trained towers give item and user vectors,
  the cold-item calibration and the scores;
- :mod:`~clarec.models.two_tower.realtime`: the real-time API (histories, profile texts, new items);
- :mod:`~clarec.models.two_tower.task`: :class:`~clarec.models.two_tower.task.TwoTowerTask`, the
  training task (batches, loss, auxiliary loss, sampler, temperature, weighting, optimiser);
- :mod:`~clarec.models.two_tower.module`: the torch towers, :class:`TwoTowerModule`;
- :mod:`~clarec.models.two_tower.features`: LM-vector centring, the bag-of-words channel, the users'
  training sequences and the histories of training examples.
"""

from clarec.models.two_tower.estimator import (
    AUXES,
    ENCODE_BATCH,
    HISTORIES,
    POOLINGS,
    WEIGHTINGS,
    TwoTowerRecommender,
)
from clarec.models.two_tower.features import (
    UserSequences,
    centre,
    centring,
    example_histories,
    fit_tokens,
    item_tokens,
    token_bags,
    user_sequences,
)
from clarec.models.two_tower.module import TwoTowerModule
from clarec.models.two_tower.task import TwoTowerTask

__all__ = [
    "AUXES",
    "ENCODE_BATCH",
    "HISTORIES",
    "POOLINGS",
    "WEIGHTINGS",
    "TwoTowerModule",
    "TwoTowerRecommender",
    "TwoTowerTask",
    "UserSequences",
    "centre",
    "centring",
    "example_histories",
    "fit_tokens",
    "item_tokens",
    "token_bags",
    "user_sequences",
]
