"""Model hyper-parameters, declared once.

A model class lists its hyper-parameters as class attributes made with :func:`param` — default, type,
range, allowed values — and :class:`~clarec.models.base.Recommender` does the rest: its constructor
takes them as keyword arguments, converts and checks each one (one clear :class:`ConfigError` per
bad value), and stores it as an instance attribute of the same name; :meth:`Recommender.param_names`
and ``get_params`` read the declarations back (as scikit-learn estimators do from their signature).
A subclass inherits its parents' parameters and may re-declare one with another default
(``epochs = TorchRecommender.epochs.with_default(200)``).

    class ItemKNN(Recommender):
        k_neighbors = param(100, ge=1)
        shrink = param(10.0, ge=0)
        weighting = param("none", choices=("none", "tfidf", "bm25"))
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from clarec.errors import ConfigError

__all__ = ["Param", "param", "text_list"]


@dataclass(frozen=True)
class Param:
    """One hyper-parameter: its default and how a given value is converted and checked."""

    default: Any
    convert: Callable[[Any], Any] | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple | None = None
    nullable: bool = False

    def with_default(self, default: Any) -> Param:
        """The same parameter with another default (for a subclass)."""
        return dataclasses.replace(self, default=default, nullable=self.nullable or default is None)

    def describe(self) -> str:
        """The default and what values are allowed, in words (``clarec models NAME``)."""
        parts = [f"default {self.default!r}"]
        if self.choices is not None:
            parts.append(f"one of {list(self.choices)}")
        for bound, word in ((self.ge, ">="), (self.gt, ">"), (self.le, "<="), (self.lt, "<")):
            if bound is not None:
                parts.append(f"{word} {bound:g}")
        if self.nullable and self.default is not None:
            parts.append("or null")
        return ", ".join(parts)

    def check(self, owner: str, name: str, value: Any) -> Any:
        """``value`` converted and checked; raises :class:`ConfigError` naming ``owner`` (when not
        empty) and ``name``. A ``convert`` that raises ConfigError names the parameter itself."""
        where = f"{owner}: {name}" if owner else name
        if value is None:
            if self.nullable:
                return None
            raise ConfigError(f"{where} must be set (it cannot be null)")
        if self.convert is not None:
            try:
                value = self.convert(value)
            except ConfigError as e:
                raise ConfigError(f"{owner}: {e}" if owner else str(e)) from None
            except (TypeError, ValueError):
                kind = getattr(self.convert, "__name__", "a valid value")
                raise ConfigError(f"{where} must be {kind}, got {value!r}") from None
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{where} must be one of {list(self.choices)}, got {value!r}")
        for bound, ok, word in (
            (self.ge, lambda v, b: v >= b, ">="),
            (self.gt, lambda v, b: v > b, ">"),
            (self.le, lambda v, b: v <= b, "<="),
            (self.lt, lambda v, b: v < b, "<"),
        ):
            if bound is not None and not ok(value, bound):  # also rejects NaN
                raise ConfigError(f"{where} must be {word} {bound}, got {value!r}")
        return value


def _integer(value: Any) -> int:
    """A whole number (``3``, ``3.0``); not ``2.5``, not ``True``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(value)
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    return int(value)


def _number(value: Any) -> float:
    """A finite number; not ``True``, not ``inf`` or ``nan``."""
    if isinstance(value, bool):
        raise TypeError(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


def _boolean(value: Any) -> bool:
    """``true`` / ``false`` (or 1 / 0); not a string such as ``"maybe"``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise TypeError(value)


def _text(value: Any) -> str:
    """A string, a path, or a number (as YAML reads a folder named ``2024``); not a list, a mapping
    or ``true``."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(value)
    return str(value)


_integer.__name__, _number.__name__, _boolean.__name__ = "an integer", "a finite number", "true or false"
_text.__name__ = "a string"
#: the checked conversion that stands for each plain type
_STRICT: dict[Any, Callable[[Any], Any]] = {int: _integer, float: _number, bool: _boolean, str: _text}


def _infer_convert(default: Any) -> Callable[[Any], Any] | None:
    if isinstance(default, bool):
        return _boolean
    if isinstance(default, int):
        return _integer
    if isinstance(default, float):
        return _number
    if isinstance(default, str):
        return _text
    return None


def param(
    default: Any,
    convert: Callable[[Any], Any] | None = None,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Sequence | None = None,
    nullable: bool | None = None,
) -> Any:
    """Declare a hyper-parameter (a class attribute of a model).

    Args:
        default: the value when none is given; its type (int, float, bool, str) is the conversion
            unless ``convert`` is given.
        convert: turns a given value into the stored one (e.g. ``int``, :func:`text_list`); a
            ``TypeError``/``ValueError`` from it becomes a ConfigError, and a ConfigError it raises
            itself must name the parameter (``"temperature must be > 0"``).
        ge, gt, le, lt: bounds on the converted value.
        choices: the allowed values.
        nullable: whether ``None`` is allowed (default: when the default is ``None``).
    """
    return Param(
        default=default,
        convert=_STRICT.get(convert, convert) if convert is not None else _infer_convert(default),
        ge=ge,
        gt=gt,
        le=le,
        lt=lt,
        choices=None if choices is None else tuple(choices),
        nullable=default is None if nullable is None else nullable,
    )


def text_list(value: Any) -> list[str]:
    """A column name or a list of them, as a list of strings."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, Sequence):
        raise TypeError(value)
    return [str(v) for v in value]


text_list.__name__ = "a name or a list of names"
