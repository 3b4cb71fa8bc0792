"""The two-tower model's real-time API: users from any history or from a profile text, and new items
from their text — all through the trained towers, without retraining (scored by
:class:`~clarec.models.embedding.EmbeddingModel`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from clarec.errors import ClarecError
from clarec.models._lm import choose_fields, item_texts, text_columns
from clarec.models.two_tower.features import centre, item_tokens


class TwoTowerRealTime:
    """The history vectors, :meth:`score_texts` and :meth:`add_items` of
    :class:`~clarec.models.two_tower.TwoTowerRecommender` (a mixin: it reads the fitted towers,
    vectors and text settings of that class and scores with its ``_scores``)."""

    def _history_vectors(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """User-tower vectors (float32, as scored) of ad-hoc histories, given as item indices, oldest
        first (:meth:`score_histories` scores them): the user tower runs on the history as it would
        for a training user (its last ``max_history`` items), so an event changes the next scores
        without retraining. Profile text is not used."""
        hists = self._check_histories(histories)
        lengths = np.array([len(h) for h in hists], dtype=np.int64)
        ends = np.cumsum(lengths)
        seq = np.concatenate(hists) if hists else np.empty(0, np.int64)
        with torch.no_grad():
            users = self._pool(self._towers, self._raw_items, seq, ends - lengths, ends, None)
        return users.astype(np.float32)

    def score_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Scores of every item for users known only by a profile text (no history).

        Only for a model trained with ``user_text``: each text goes through the user-text path as a
        training user's profile did (same encoder, same centring, same projection) and is added to
        the learned "empty history" vector, then scored as :meth:`score` scores (same similarity,
        same cold-item calibration). A text rendered like the training profiles (profile fields by
        :func:`clarec.text.templates.user_text`, as the server's profile endpoint does) of a
        training user without interactions gives that user's :meth:`score`. A model trained without
        ``user_text`` refuses (``supports_texts`` is False): its user tower has no text input, and
        every profile-only user would get the same "empty history" vector whatever the text.
        """
        self._check_fitted()
        if not self.supports_texts:
            if self.lm_user is None:
                raise ClarecError(
                    "model 'two-tower' cannot score users from a text: it was trained without "
                    "user_text=True, so its user tower reads no profile text; re-train with user_text"
                )
            raise ClarecError(
                "model 'two-tower' cannot score users from a text: it was saved without its "
                "user-text centring (an older clarec); re-train it to score profile texts"
            )
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.n_items), dtype=np.float32)
        raw = np.asarray(self._user_encoder().encode(texts), dtype=np.float32)
        lm = centre(raw.reshape(len(texts), self.lm_user.shape[1]), self.user_lm_centring)
        none = np.zeros(len(texts), dtype=np.int64)
        with torch.no_grad():
            users = self._pool(
                self._towers, self._raw_items, np.empty(0, np.int64), none, none, torch.from_numpy(lm)
            )
        return self._scores(users.astype(np.float32))

    def add_items(self, items: pd.DataFrame) -> np.ndarray:
        """Add items from their text (the columns of ``fields``); they are scored at once, as cold items.

        Returns the new item indices (``n_items`` onwards, in row order).
        """
        self._check_fitted()
        if self.lm_centring is None and not self.finetune_encoder:
            raise ClarecError(
                "this two-tower model was saved without its text centring; re-train it to add items"
            )
        fields = getattr(self, "text_fields_", None) or self.fields
        if fields is None:  # a model saved without its chosen fields: choose from the new rows
            fields = choose_fields(items, None, "two-tower")
        texts = item_texts(text_columns(items, fields, "two-tower", new=True), fields, "two-tower")
        enc = self._encoder()
        if self.finetune_encoder:
            lm = enc.encode(texts)
        else:
            lm = centre(enc.encode(texts), self.lm_centring)
        lm = np.asarray(lm, dtype=np.float32).reshape(len(texts), self.lm_item.shape[1])
        new = np.arange(self.n_items, self.n_items + len(lm), dtype=np.int64)
        if self.item_tokens is not None:
            self.item_tokens = sp.vstack(
                [self.item_tokens, item_tokens(texts, self.token_vocab)], format="csr"
            )
        with torch.no_grad():
            raw = self._towers.items(torch.from_numpy(lm), torch.from_numpy(new), None, self._bags(new))
        self.lm_item = np.vstack([self.lm_item, lm])
        self.warm_items = np.concatenate([self.warm_items, np.zeros(len(lm), dtype=bool)])
        self._raw_items = torch.cat([self._raw_items, raw])
        self.item_vecs = np.vstack([self.item_vecs, self._finish(raw).numpy().astype(np.float32)])
        self.texts_ = [*getattr(self, "texts_", []), *texts]
        self._grow_items(len(lm))
        return new
