"""Content-based recommender: TF-IDF item text, user profiles as weighted means, cosine scores.

Item text joins the chosen columns of the item table (strings, and lists such as genres or
categories). Each item becomes an L2-normalised TF-IDF vector; a user's profile is the weighted
mean of the vectors of the items in their history (interaction weight × optional recency decay),
and an item's score is the cosine between profile and item. It uses text only, so items nobody
has interacted with yet are recommended like any other.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from clarec.data.dataset import Dataset
from clarec.errors import ClarecError, ConfigError
from clarec.models._lm import text_columns
from clarec.models.base import Recommender
from clarec.models.params import param, text_list
from clarec.models.registry import register

#: Id columns never count as text.
ID_COLUMNS = ("item_id",)
#: Column-name endings skipped when ``fields`` is None: ids, links and dates are strings, not text.
NON_TEXT_SUFFIXES = ("_id", "url", "date")


def _value_text(v) -> str:
    """One cell as text: strings as they are, lists/arrays joined by spaces, missing as ''."""
    if isinstance(v, str):
        return v
    if isinstance(v, list | tuple | np.ndarray | pd.Series):
        return " ".join(_value_text(x) for x in v)
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return ""
    return str(v)


def _is_text_column(col: pd.Series) -> bool:
    """Whether a column holds strings or lists of strings (not numbers, flags or dates)."""
    values = col.dropna()
    if len(values) == 0:
        return False
    first = values.iloc[0]
    if isinstance(first, str):
        return True
    if isinstance(first, list | tuple | np.ndarray):
        return all(isinstance(x, str) for x in first)
    return False


def item_texts(items: pd.DataFrame, fields: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """The text of every item and the columns it came from.

    ``fields=None`` takes every string or list-of-strings column except ids, URLs and dates
    (names ending in ``_id``, ``url`` or ``date``), and skips a column whose text repeats an
    earlier one (e.g. ``categories`` copying ``genres``), which would double its terms' weight.
    """
    if fields is None:
        candidates = [
            c
            for c in items.columns
            if c not in ID_COLUMNS
            and not str(c).lower().endswith(NON_TEXT_SUFFIXES)
            and _is_text_column(items[c])
        ]
    else:
        missing = [f for f in fields if f not in items.columns]
        if missing:
            have = [c for c in items.columns if c not in ID_COLUMNS]
            raise ConfigError(f"tfidf: item table has no column(s) {missing}; it has {have}")
        candidates = list(fields)
    texts = [""] * len(items)
    used: list[str] = []
    columns: list[list[str]] = []
    for f in candidates:
        col = [_value_text(v) for v in items[f].tolist()]
        if fields is None and col in columns:
            continue
        used.append(f)
        columns.append(col)
        texts = [f"{a} {b}" if a and b else a or b for a, b in zip(texts, col, strict=True)]
    return texts, used


def _count_or_share(value) -> int | float:
    """``min_df``: a number of items (int) or a share of them (float in (0, 1])."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(value)
    return value


def _ngram_range(value) -> tuple[int, int]:
    try:
        ngram = tuple(int(x) for x in value)  # JSON gives lists back
    except (TypeError, ValueError):
        ngram = ()
    if len(ngram) != 2 or not 1 <= ngram[0] <= ngram[1]:
        raise ConfigError(f"ngram_range must be (min_n, max_n) with 1 <= min_n <= max_n, got {value}")
    return ngram


@register("tfidf")
class TfidfRecommender(Recommender):
    """Traditional content-based recommender over TF-IDF item text.

    Args:
        fields: item-table columns to use; ``None`` uses every text or list-of-text column.
        min_df: ignore terms in fewer items than this (int) or this fraction of items (float).
        max_features: keep the most frequent terms only (``None``: all).
        ngram_range: smallest and largest n-gram length.
        sublinear_tf: use ``1 + log(tf)`` instead of raw term counts.
        stop_words: ``"english"`` or ``None``.
        half_life: recency decay of history weights, in timestamp units (seconds for real
            timestamps): an interaction ``half_life`` older than the user's latest counts half.
            ``None`` weighs the whole history equally.

    The vocabulary and document frequencies are computed over the whole item catalogue: item
    text is side information known before any interaction, so this uses no held-out feedback.
    """

    supports_histories = True
    supports_new_items = True
    new_items_from_text = True
    supports_texts = True

    fields = param(None, text_list)
    min_df = param(1, _count_or_share, gt=0)
    max_features = param(None, int, ge=1)
    ngram_range = param((1, 1), _ngram_range)
    sublinear_tf = param(True)
    stop_words = param("english", choices=("english", None), nullable=True)
    half_life = param(None, float, gt=0)

    # ------------------------------------------------------------------ fitting
    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        texts, used = item_texts(train.items, self.fields)
        if not used or not any(t.strip() for t in texts):
            raise ConfigError(
                f"tfidf: no item text found (columns used: {used}); the data set needs an item table "
                "with text columns such as title or genres"
            )
        vectorizer = TfidfVectorizer(
            min_df=self.min_df,
            max_features=self.max_features,
            ngram_range=self.ngram_range,
            sublinear_tf=self.sublinear_tf,
            stop_words=self.stop_words,
            dtype=np.float32,
        )
        try:
            matrix = vectorizer.fit_transform(texts)
        except ValueError as e:  # empty vocabulary, min_df above the number of items, ...
            raise ConfigError(f"tfidf: cannot build the vocabulary: {e}") from None
        # TfidfVectorizer already L2-normalises rows; items without text stay all-zero.
        self.item_matrix = sp.csr_matrix(matrix, dtype=np.float32)
        self.vectorizer_ = vectorizer
        self.text_fields_ = list(used)
        self.user_weights = self._history_weights(train)

    def _history_weights(self, train: Dataset) -> sp.csr_matrix:
        """User × item matrix of profile weights (interaction weight × recency decay, summed)."""
        df = train.interactions
        users = df["user"].to_numpy()
        w = df["weight"].to_numpy(dtype=np.float64)
        if self.half_life is not None:
            t = df["timestamp"].to_numpy(dtype=np.float64)
            latest = pd.Series(t).groupby(users).transform("max").to_numpy()
            w = w * np.power(0.5, (latest - t) / self.half_life)
        m = sp.csr_matrix((w, (users, df["item"].to_numpy())), shape=(self.n_users, self.n_items))
        m.sum_duplicates()
        return m.astype(np.float32)

    # ------------------------------------------------------------------ inference
    def user_profiles(self, users) -> sp.csr_matrix:
        """L2-normalised TF-IDF profiles ``(len(users), vocabulary)`` (the weighted mean's direction)."""
        users = self._check_users(users)
        return _unit_rows(self.user_weights[users] @ self.item_matrix)

    def score(self, users) -> np.ndarray:
        profiles = self.user_profiles(users)
        return np.asarray((profiles @ self.item_matrix.T).toarray(), dtype=np.float32)

    def score_histories(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Cosine of each item with the profile of an ad-hoc history (each occurrence weight 1).

        Equal to :meth:`score` for a training user's own history with unit interaction weights and
        ``half_life=None``; ``half_life`` is in timestamp units, which a bare item list does not have,
        so it is not applied here. An empty history scores 0 everywhere.
        """
        w = self._history_matrix(histories, binary=False)
        profiles = _unit_rows(w @ self.item_matrix)
        return np.asarray((profiles @ self.item_matrix.T).toarray(), dtype=np.float32)

    def score_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Cosine between each text's TF-IDF vector (training vocabulary and idf) and every item."""
        self._check_fitted()
        vectorizer = getattr(self, "vectorizer_", None)
        if vectorizer is None:
            raise ClarecError("this tfidf model was saved without its vocabulary; refit it to score texts")
        queries = sp.csr_matrix(vectorizer.transform([str(t) for t in texts]), dtype=np.float32)
        return np.asarray((queries @ self.item_matrix.T).toarray(), dtype=np.float32)

    def add_items(self, items: pd.DataFrame) -> np.ndarray:
        """Add items from their text (the training text columns; missing ones count as empty),
        vectorised with the training vocabulary and idf. Returns their new indices."""
        self._check_fitted()
        vectorizer = getattr(self, "vectorizer_", None)
        if vectorizer is None:
            raise ClarecError("this tfidf model was saved without its vocabulary; refit it to add items")
        if not len(items):
            return np.empty(0, dtype=np.int64)
        table = text_columns(items, self.text_fields_, "tfidf", new=True)
        texts, _ = item_texts(table, self.text_fields_)
        new_rows = sp.csr_matrix(vectorizer.transform(texts), dtype=np.float32)
        n, m = self.n_items, len(texts)
        self.item_matrix = sp.vstack([self.item_matrix, new_rows], format="csr")
        uw = self.user_weights.tocsr()
        self.user_weights = sp.csr_matrix((uw.data, uw.indices, uw.indptr), shape=(self.n_users, n + m))
        self._grow_items(m)
        return np.arange(n, n + m, dtype=np.int64)

    def item_vectors(self) -> np.ndarray:
        """Dense L2-normalised TF-IDF vectors ``(n_items, vocabulary)``."""
        self._check_fitted()
        return self.item_matrix.toarray()

    def item_similarity(self, items) -> np.ndarray:
        # Sparse product: the dense vectors can be large for big vocabularies.
        items = self._check_items(items)
        return np.asarray((self.item_matrix[items] @ self.item_matrix.T).toarray(), dtype=np.float32)

    def _get_state(self) -> dict:
        state = {"item_matrix": self.item_matrix, "user_weights": self.user_weights}
        vectorizer = getattr(self, "vectorizer_", None)
        if vectorizer is not None:  # what add_items needs: vocabulary in column order, idf, fields
            vocab = vectorizer.vocabulary_
            state["vocabulary"] = np.asarray(sorted(vocab, key=vocab.get), dtype=str)
            state["idf"] = np.asarray(vectorizer.idf_, dtype=np.float64)
            state["text_fields"] = np.asarray(self.text_fields_, dtype=str)
        return state

    def _set_state(self, state: dict) -> None:
        self.item_matrix = state["item_matrix"]
        self.user_weights = state["user_weights"]
        self.vectorizer_ = None
        if "vocabulary" in state:
            vectorizer = TfidfVectorizer(
                vocabulary=[str(t) for t in state["vocabulary"]],
                ngram_range=self.ngram_range,
                sublinear_tf=self.sublinear_tf,
                stop_words=self.stop_words,
                dtype=np.float32,
            )
            vectorizer.idf_ = np.asarray(state["idf"], dtype=np.float64)
            self.vectorizer_ = vectorizer
            self.text_fields_ = [str(f) for f in state["text_fields"]]


def _unit_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to unit L2 norm (zero rows stay zero); no rows, no rows (scikit-learn refuses those)."""
    return normalize(m, norm="l2") if m.shape[0] else sp.csr_matrix(m)
