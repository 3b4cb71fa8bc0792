"""Small text helpers shared by sources: HTML clean-up, prices, years in titles, list fields."""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd

from clarec.text.templates import parse_price as parse_one
from clarec.text.templates import strip_markup

_SPACE_RE = re.compile(r"\s+")
# Markup that makes a "title" useless: a tag opening or closing, or an attribute fragment like `x" />`.
_MARKUP_RE = re.compile(r"<\s*/?\s*[A-Za-z!]|/>|\"\s*>")
_YEAR_RE = r"\((\d{4})(?:[-–]\d{0,4})?\)\s*$"


def clean_text(value) -> str | None:
    """HTML entities decoded, tags removed, whitespace collapsed; None when nothing is left."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, list | tuple | np.ndarray):
        parts = [clean_text(v) for v in value]
        value = " ".join(p for p in parts if p)
    return strip_markup(str(value)) or None


def clean_title(value) -> str | None:
    """A title with entities decoded; None when missing or when it is itself HTML markup."""
    if value is None or not isinstance(value, str):
        return None
    text = html.unescape(value)
    if _MARKUP_RE.search(text):
        return None
    text = _SPACE_RE.sub(" ", text).strip()
    return text or None


def text_list(value) -> list[str]:
    """A list field (categories, features) as a list of clean, distinct, non-empty strings."""
    if value is None or isinstance(value, float):
        return []
    if isinstance(value, str):
        value = [value]
    out: list[str] = []
    for v in value:
        if isinstance(v, list | tuple):  # 2014 meta nests category paths
            out.extend(x for x in text_list(v) if x not in out)
            continue
        t = clean_text(v)
        if t and t not in out:
            out.append(t)
    return out


def parse_price(values: pd.Series) -> np.ndarray:
    """Prices as float (NaN where there is none): numbers as they are, strings as
    :func:`clarec.text.templates.parse_price` reads them ("$25.00", "12,99 €", a range's lower
    bound); anything else (empty, CSS junk) → NaN. Each distinct string is parsed once."""
    s = pd.Series(values, dtype="object")
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    parsed = np.array([parse_one(v) for v in uniques], dtype="float64") if len(uniques) else np.empty(0)
    out = np.full(len(s), np.nan)
    known = codes >= 0
    out[known] = parsed[codes[known]]
    return out


def title_year(titles: pd.Series) -> np.ndarray:
    """The year in parentheses at the end of a MovieLens title, as nullable Int64."""
    s = pd.Series(titles, dtype="str")
    return pd.to_numeric(s.str.extract(_YEAR_RE, expand=False), errors="coerce").astype("Int64").to_numpy()
