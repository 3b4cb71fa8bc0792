"""Turn item and user records into short texts for a language model.

One string per item ("Title: Toy Story (1995). Genres: Animation, Comedy. Price: $10-25.") and one per
user (profile fields, then the titles of the most recent items). Missing, NaN and empty fields are
skipped, so every record gives a clean string, possibly empty.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from clarec.errors import ConfigError, DataError

#: Item fields used by default, in this order.
DEFAULT_ITEM_FIELDS: tuple[str, ...] = (
    "title",
    "genres",
    "categories",
    "brand",
    "price",
    "tags",
    "description",
)
#: Upper edges of the price buckets (in currency units); a price at or above the last edge is "$X and up".
DEFAULT_PRICE_BINS: tuple[float, ...] = (5, 10, 25, 50, 100, 250, 500)
#: Fields whose plain strings are split on "|" (MovieLens writes genres as "Animation|Comedy").
LIST_FIELDS = frozenset({"genres", "categories", "category", "tags"})
#: Fields whose list values are joined as running text rather than with ", ".
PROSE_FIELDS = frozenset({"description"})

# a tag starts with a name (or !, /): "length <2m, weight >5kg" is text, not a tag to strip
_TAG = re.compile(r"</?[A-Za-z!][^<>]*>")
_SPACE = re.compile(r"\s+")
# A price: an optional currency (symbol, code or word) around a number, optionally a range
# ("$10.00 - $15.00", "10–15 €"). The number may group thousands with "," "." a space or "'" and
# mark decimals with "." or ",": "1,299.00", "1.299,00", "1 299,00", "1'299.50", "12,99". A currency
# is a symbol (also "US$"), an ISO code ("EUR") or a currency word; any other word ("about 3",
# "size 10", "pack of 12") makes the field not a price.
_CURRENCY = (
    r"(?:[A-Z]{1,2}\$|[$€£¥₹₩₽]|[A-Z]{3}"
    r"|(?i:usd|eur|gbp|chf|jpy|inr|cad|aud|dollars?|euros?|pounds?|yen|rupees?|rs\.?|kr\.?|fr\.?))"
)
_AMOUNT = r"\d{1,3}(?:[,.' \u00a0\u202f]\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?"
_PRICE = re.compile(
    rf"\s*(-)?\s*(?:{_CURRENCY}\s*)?(-)?\s*({_AMOUNT})\s*(?:{_CURRENCY})?"
    rf"(?:\s*[-–]\s*(?:{_CURRENCY}\s*)?(?:{_AMOUNT})\s*(?:{_CURRENCY})?)?\s*"
)


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    return False


def strip_markup(text: str) -> str:
    """Strip HTML tags (escaped ones too), decode entities ("Tom &amp; Jerry") and collapse whitespace
    (descriptions scraped from shops carry all three)."""
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", html.unescape(text)))).strip()  # escaped tags too


def _flatten(value: object) -> list[str]:
    """A scalar or (nested) list as a flat list of non-empty strings, first occurrence kept."""
    out: list[str] = []

    def walk(v: object) -> None:
        if _is_missing(v):
            return
        if isinstance(v, str | bytes):
            s = strip_markup(v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v)
            if s:
                out.append(s)
        elif isinstance(v, Iterable) and not isinstance(v, Mapping):
            for x in v:
                walk(x)
        else:
            s = _format_scalar(v)
            if s:
                out.append(s)

    walk(value)
    seen: set[str] = set()
    return [s for s in out if not (s in seen or seen.add(s))]


def _format_scalar(value: object) -> str:
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        f = float(value)
        if math.isinf(f):
            return ""
        return str(int(f)) if f.is_integer() else f"{f:.2f}".rstrip("0").rstrip(".")
    return strip_markup(str(value))


def _money(x: float) -> str:
    return f"{x:g}"


def parse_price(value: object) -> float | None:
    """A price field as a number, else None.

    Numbers are taken as they are; a string must be a price and nothing else: "$12.99", "12,99 €",
    "EUR 1.299,00", "1,299.00", "1 299,00", "CHF 1'299.50", a range "$10.00 - $15.00" (its lower
    bound). With both "," and "." the last one marks the decimals; a lone "," marks decimals unless
    exactly three digits follow it ("12,99" is 12.99, "1,299" is 1299, "0,500" is 0.5); a lone "." marks decimals
    ("1.299" is 1.299: write "1.299,00" for a thousand and more). Negative prices, other text ("free",
    "size 10", CSS left in a scraped field) and numbers that are not finite give None.
    """
    if _is_missing(value) or isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        f = float(value)
    else:
        m = _PRICE.fullmatch(str(value))
        if m is None or m.group(1) or m.group(2):
            return None
        f = _amount(m.group(3))
    if not math.isfinite(f) or f < 0:
        return None
    return f


def _amount(text: str) -> float:
    """The value of an amount matched by ``_AMOUNT`` (see :func:`parse_price` for the separators)."""
    seps = [c for c in text if not c.isdigit()]
    if not seps:
        return float(text)
    last = seps[-1]
    head, _, tail = text.rpartition(last)
    grouping = last not in ".," or (len(seps) > 1 and set(seps) == {last})
    if not grouping and len(seps) == 1 and last == "," and len(tail) == 3 and head != "0":
        grouping = True  # "1,299": thousands ("0,500" is a half)
    if grouping:
        return float("".join(c for c in text if c.isdigit()))
    return float("".join(c for c in head if c.isdigit()) + "." + tail)


def price_bucket(value: object, bins: Sequence[float] = DEFAULT_PRICE_BINS) -> str:
    """A price as a range: "under $5", "$10-25", "$500 and up"; "" when there is no usable price.

    Ranges generalise across items better than exact prices, and a language model reads them more
    reliably than digits.
    """
    price = parse_price(value)
    if price is None:
        return ""
    edges = list(bins)
    if not edges:
        return ""
    if price < edges[0]:
        return f"under ${_money(edges[0])}"
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if lo <= price < hi:
            return f"${_money(lo)}-{_money(hi)}"
    return f"${_money(edges[-1])} and up"


def truncate_words(text: str, max_chars: int) -> str:
    """Cut ``text`` to at most ``max_chars`` characters at a word boundary, marking the cut with "..."."""
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    cut = text[: max_chars + 1]
    space = cut.rfind(" ")
    # One very long word: cut inside it rather than return nothing.
    cut = cut[:space] if space > 0 else text[:max_chars]
    return cut.rstrip(" ,;:.-") + "..."


def _label(field: str) -> str:
    return field.replace("_", " ").strip().capitalize()


def _sentence(label: str, value: str) -> str:
    end = "" if value.endswith((".", "!", "?", "...")) else "."
    return f"{label}: {value}{end}"


def _field_text(field: str, value: object, max_description_chars: int, price_bins: Sequence[float]) -> str:
    if field == "price":
        return price_bucket(value, price_bins)
    if isinstance(value, str) and field in LIST_FIELDS and "|" in value:
        value = value.split("|")
    parts = _flatten(value)
    if not parts:
        return ""
    text = " ".join(parts) if field in PROSE_FIELDS else ", ".join(parts)
    if field in PROSE_FIELDS:
        text = truncate_words(text, max_description_chars)
    return text


def _row_text(
    row: Mapping[str, object],
    fields: Sequence[str],
    max_description_chars: int,
    price_bins: Sequence[float],
    labels: Mapping[str, str],
) -> str:
    sentences = []
    for field in fields:
        if field not in row:
            continue
        value = _field_text(field, row[field], max_description_chars, price_bins)
        if value:
            sentences.append(_sentence(labels.get(field, _label(field)), value))
    return " ".join(sentences)


def item_text(
    items: pd.DataFrame | pd.Series | Mapping[str, object],
    fields: Sequence[str] = DEFAULT_ITEM_FIELDS,
    max_description_chars: int = 300,
    price_bins: Sequence[float] = DEFAULT_PRICE_BINS,
    labels: Mapping[str, str] | None = None,
) -> list[str]:
    """One text per item, fields in the order given.

    Args:
        items: an item table (one text per row, in row order) or a single row (Series or dict).
        fields: columns to use, in order; columns the table lacks and empty values are skipped.
            ``price`` is bucketed into ranges (:func:`price_bucket`); list values are joined with ", "
            (a plain string in ``genres``/``categories``/``tags`` is split on "|");
            ``description`` is cut at a word boundary.
        max_description_chars: longest description kept, in characters (0 keeps it whole).
        price_bins: upper edges of the price ranges.
        labels: label per field (default: the field name capitalised, "_" read as a space).

    Raises:
        ConfigError: ``fields`` is empty, or a table has none of the requested fields.
    """
    fields = [fields] if isinstance(fields, str) else list(fields)
    if not fields:
        raise ConfigError("item_text: fields is empty")
    if max_description_chars < 0:
        raise ConfigError(f"item_text: max_description_chars must be >= 0, got {max_description_chars}")
    labels = dict(labels or {})
    if isinstance(items, pd.DataFrame):
        present = [f for f in fields if f in items.columns]
        if not present and len(items):
            raise ConfigError(
                f"item_text: the item table has none of the fields {fields}; "
                f"its columns are {[str(c) for c in items.columns]}"
            )
        columns = {f: items[f].tolist() for f in present}
        return [
            _row_text({f: columns[f][i] for f in present}, present, max_description_chars, price_bins, labels)
            for i in range(len(items))
        ]
    if isinstance(items, pd.Series | Mapping):
        return [_row_text(items, fields, max_description_chars, price_bins, labels)]
    raise ConfigError(f"item_text: expected a DataFrame, Series or dict, got {type(items).__name__}")


def user_text(
    users: pd.DataFrame | None,
    histories: Sequence[np.ndarray],
    item_titles: Sequence[str] | np.ndarray | pd.Series,
    profile_fields: Sequence[str] | None = None,
    n_recent: int = 10,
    history_label: str = "Recent items",
    labels: Mapping[str, str] | None = None,
) -> list[str]:
    """One text per user: profile fields, then the titles of the most recent items.

    Titles are listed most recent first and separated by "; " (titles often contain commas), so when
    the encoder truncates a long text it drops the oldest items. Example:
    ``"Age: 24. Occupation: technician. Recent items: Star Wars (1977); Fargo (1996)."``

    Args:
        users: user table with one row per user (row ``u`` is user index ``u``), or None.
        histories: per user, item indices in time order (e.g. ``Dataset.user_histories()``).
        item_titles: title of each item index; missing titles are skipped.
        profile_fields: user columns to write, in order; None uses every column except ``user_id``.
        n_recent: number of most recent items listed (0 lists none).
        history_label: label in front of the titles.
        labels: label per profile field.

    Raises:
        ConfigError: bad ``n_recent`` or a users table whose length differs from ``histories``.
        DataError: a history refers to an item index outside ``item_titles``.
    """
    if n_recent < 0:
        raise ConfigError(f"user_text: n_recent must be >= 0, got {n_recent}")
    n_users = len(histories)
    if users is not None and len(users) != n_users:
        raise ConfigError(f"user_text: users table has {len(users)} rows for {n_users} histories")
    titles = list(item_titles.tolist() if hasattr(item_titles, "tolist") else item_titles)
    labels = dict(labels or {})
    if users is None:
        fields: list[str] = []
    elif profile_fields is None:
        fields = [str(c) for c in users.columns if c != "user_id"]
    else:
        fields = [f for f in ([profile_fields] if isinstance(profile_fields, str) else profile_fields)]
        unknown = [f for f in fields if f not in users.columns]
        if unknown:
            raise ConfigError(
                f"user_text: users table lacks {unknown}; its columns are {[str(c) for c in users.columns]}"
            )
    columns = {f: users[f].tolist() for f in fields} if users is not None else {}
    out = []
    for u in range(n_users):
        row = {f: columns[f][u] for f in fields}
        profile = _row_text(row, fields, 0, DEFAULT_PRICE_BINS, labels)
        recent = _recent_titles(np.asarray(histories[u]), titles, n_recent)
        history = _sentence(history_label, "; ".join(recent)) if recent else ""
        out.append(" ".join(p for p in (profile, history) if p))
    return out


def _recent_titles(history: np.ndarray, titles: list, n_recent: int) -> list[str]:
    if n_recent == 0 or history.size == 0:
        return []
    bad = history[(history < 0) | (history >= len(titles))]
    if bad.size:
        raise DataError(
            None, f"user_text: history has item index {int(bad[0])} but only {len(titles)} titles"
        )
    out: list[str] = []
    # Walk backwards so that items without a title do not shorten the list.
    for i in history[::-1]:
        parts = _flatten(titles[int(i)])
        if parts:
            out.append(" ".join(parts))
            if len(out) == n_recent:
                break
    return out
