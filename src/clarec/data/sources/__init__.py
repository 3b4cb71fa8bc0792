"""Readers for public and generic data formats. Each returns raw frames with original ids
(:class:`RawData`); :func:`load_source` indexes them into a :class:`~clarec.data.dataset.Dataset`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from clarec.data.sources import (
    amazon2018,
    amazon2023,
    lightgcn,
    movielens_1m,
    movielens_100k,
    movielens_csv,
    s3rec,
    tabular,
)
from clarec.data.sources.base import LoadResult, RawData, build_result
from clarec.errors import ConfigError

#: Source kind → reader ``read(path, strict=False, **options) -> RawData``.
SOURCES: dict[str, Callable[..., RawData]] = {
    "movielens-100k": movielens_100k.read,
    "movielens-csv": movielens_csv.read,
    "movielens-1m": movielens_1m.read,
    "amazon2018": amazon2018.read,
    "amazon2023": amazon2023.read,
    "s3rec": s3rec.read,
    "lightgcn": lightgcn.read,
    "tabular": tabular.read,
}


def source_options(kind: str) -> list[str]:
    """Names of the options a source kind accepts (besides ``path`` and ``strict``)."""
    reader = _reader(kind)
    return [n for n in inspect.signature(reader).parameters if n not in ("path", "strict")]


def _reader(kind: str) -> Callable[..., RawData]:
    if kind not in SOURCES:
        raise ConfigError(f"unknown data source {kind!r}; known: {', '.join(SOURCES)}")
    return SOURCES[kind]


def read_source(kind: str, path: str | Path, strict: bool = False, **options) -> RawData:
    """Raw frames of a source (original ids, ``rating`` column kept), before indexing."""
    reader = _reader(kind)
    unknown = sorted(set(options) - set(source_options(kind)))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for source {kind!r}; allowed: {source_options(kind)}")
    return reader(Path(path).expanduser(), strict=strict, **options)


def load_source(kind: str, path: str | Path, strict: bool = False, **options) -> LoadResult:
    """Read ``path`` with the reader of ``kind`` and index it into a :class:`LoadResult`.

    ``kind`` is one of :data:`SOURCES`; ``options`` are the reader's keyword arguments (an unknown
    one raises :class:`~clarec.errors.ConfigError`). ``strict`` raises one
    :class:`~clarec.errors.DataError` at the first bad line instead of dropping and counting.
    """
    return build_result(read_source(kind, path, strict=strict, **options))


__all__ = ["SOURCES", "LoadResult", "RawData", "load_source", "read_source", "source_options"]
