"""Reading a data set: by catalogue name from the data root, or from a config section, then filtered.

:func:`load_dataset` checks that a catalogue entry's required files are present under the data root
(saying how to get them when not) and reads them with the entry's source kind and loader options.
:func:`load_from_config` validates a ``data`` config section, loads it (by name or by source + path)
and applies the filters (``FILTER_KEYS``) in a fixed order.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

from clarec.data.catalogue import DatasetInfo, data_root, get_info, missing_files
from clarec.data.clean import CleanReport
from clarec.data.filters import apply_filters
from clarec.data.sources import SOURCES, LoadResult, load_source, source_options
from clarec.data.sources._io import find_file
from clarec.errors import ConfigError, DataError

#: Config keys that filter the loaded interactions (applied by :func:`load_from_config`).
FILTER_KEYS = (
    "dedupe",
    "min_rating",
    "behavior_weights",
    "min_user_interactions",
    "min_item_interactions",
    "k_core",
)


def _loader_options(info: DatasetInfo, folder: Path) -> dict:
    opts = dict(info.options)
    for opt, fname in info.optional_options.items():
        if find_file(folder, fname, required=False) is not None:
            opts[opt] = fname
    return opts


def _check_present(info: DatasetInfo, folder: Path) -> None:
    missing = missing_files(info, folder)
    if missing:
        raise DataError(
            folder,
            f"data set {info.name!r} lacks {missing}; run `clarec data fetch {info.name}` or "
            f"`clarec data import {info.name} DIR` (the data root is $CLAREC_DATA, else ~/.cache/clarec/datasets; "
            "the data commands also take --root)",
        )


def load_dataset(name: str, root: str | Path | None = None, strict: bool = False, **options) -> LoadResult:
    """Load a registered data set from the data root with its default loader options.

    ``options`` override the defaults (see the source's reader); filter keys (``min_rating``,
    ``dedupe``, ``k_core``, ...) are applied as in :func:`load_from_config`.
    """
    if set(options) & set(FILTER_KEYS):
        return load_from_config({"name": name, "strict": strict, **options}, root=root)
    info = get_info(name)
    folder = data_root(root) / info.folder
    _check_present(info, folder)
    result = load_source(info.kind, folder, strict=strict, **(_loader_options(info, folder) | options))
    result.dataset.name = info.name
    return result


def load_from_config(data_cfg: dict, root: str | Path | None = None, allow: Iterable[str] = ()) -> LoadResult:
    """Load and filter a data set described by a config section.

    ``{name: ml-100k, min_rating: 4}`` loads a registered data set; ``{source: tabular, path: ...,
    columns: {...}}`` reads a file with a source kind. Other keys are the source's options, ``strict``,
    and the filters, applied in this fixed order: load/clean → ``behavior_weights`` → ``dedupe``
    (first|last|max_weight|sum) → ``min_rating`` → k-core (``min_user_interactions``,
    ``min_item_interactions``, or ``k_core`` for both). ``{combine: [section, section, ...]}`` loads
    several data sets as one (:func:`combine`). Keys in ``allow`` are ignored (sections that
    other code reads). Unknown keys raise :class:`~clarec.errors.ConfigError`.
    """
    if not isinstance(data_cfg, dict):
        raise ConfigError(f"data config must be a mapping, got {type(data_cfg).__name__}")
    cfg = {k: v for k, v in data_cfg.items() if k not in set(allow)}
    if "combine" in cfg:
        return _combine_from_config(cfg, root)
    if ("name" in cfg) == ("source" in cfg):
        raise ConfigError(
            "data config needs exactly one of 'name' (registered data set) or 'source' (+ 'path')"
        )
    if "name" in cfg:
        kind = get_info(str(cfg["name"])).kind
        base_keys = {"name", "strict"}
    else:
        kind = str(cfg["source"])
        if kind not in SOURCES:
            raise ConfigError(f"unknown data source {kind!r}; known: {', '.join(SOURCES)}")
        if "path" not in cfg:
            raise ConfigError(f"data source {kind!r} needs 'path'")
        base_keys = {"source", "path", "strict"}
    loader_keys = set(source_options(kind))
    allowed = base_keys | set(FILTER_KEYS) | loader_keys
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        known = allowed | set(allow)
        close = {k: difflib.get_close_matches(k, known, n=1) for k in unknown}
        hint = "; ".join(f"{k!r}: did you mean {c[0]!r}?" for k, c in close.items() if c)
        raise ConfigError(
            f"unknown data config key(s) {unknown}; allowed: {sorted(known)}" + (f" ({hint})" if hint else "")
        )
    strict = cfg.get("strict", False)
    if not isinstance(strict, bool):
        raise ConfigError(f"data.strict must be true or false, got {strict!r}")
    options = {k: v for k, v in cfg.items() if k in loader_keys}
    if "name" in cfg:
        result = load_dataset(str(cfg["name"]), root=root, strict=strict, **options)
    else:
        path = Path(str(cfg["path"])).expanduser()
        if not path.is_absolute() and not path.exists():  # say where a relative path was looked for
            raise DataError(
                path, f"not found (a relative path is read from the current folder, {Path.cwd()})"
            )
        result = load_source(kind, path, strict=strict, **options)
    k = _int(cfg, "k_core", 0)
    report: CleanReport = result.report
    result.dataset = apply_filters(
        result.dataset,
        dedupe_policy=cfg.get("dedupe"),
        min_rating=cfg.get("min_rating"),
        behavior_weights=cfg.get("behavior_weights"),
        min_user_interactions=_int(cfg, "min_user_interactions", k),
        min_item_interactions=_int(cfg, "min_item_interactions", k),
        report=report,
    )
    if result.dataset.n_interactions == 0:
        raise ConfigError(f"the data filters removed every interaction:\n{report}")
    return result


def _combine_from_config(cfg: dict, root: str | Path | None) -> LoadResult:
    parts = cfg["combine"]
    if set(cfg) != {"combine"} or not isinstance(parts, list) or len(parts) < 2:
        raise ConfigError(
            "data.combine takes a list of at least two data sections and nothing beside it "
            "(each section has its own filters)"
        )
    loaded = []
    for n, part in enumerate(parts):
        if not isinstance(part, dict):
            raise ConfigError(f"data.combine[{n}] must be a data section (a mapping)")
        part = dict(part)
        domain = str(part.pop("domain", None) or part.get("name") or Path(str(part.get("path", n))).stem)
        loaded.append((domain, load_from_config(part, root=root)))
    return combine(loaded)


def combine(parts: list[tuple[str, LoadResult]]) -> LoadResult:
    """Several data sets as one (pre-training across domains, as ``text-seq`` does): user and item ids
    become ``<domain>:<id>``, item and user tables are stacked (a column one domain lacks is empty
    there) with a ``domain`` column, the cleaning reports are concatenated."""
    import pandas as pd

    from clarec.data.dataset import Dataset

    domains = [d for d, _ in parts]
    if len(set(domains)) != len(domains):
        raise ConfigError(
            f"data.combine: domain names must differ, got {domains} (set 'domain' on a section)"
        )
    frames, items, users = [], [], []
    report = CleanReport()
    for domain, result in parts:
        ds, inter = result.dataset, result.dataset.interactions
        frames.append(
            pd.DataFrame(
                {
                    "user_id": [f"{domain}:{u}" for u in ds.user_ids[inter["user"].to_numpy()]],
                    "item_id": [f"{domain}:{i}" for i in ds.item_ids[inter["item"].to_numpy()]],
                    "timestamp": inter["timestamp"].to_numpy(),
                    "weight": inter["weight"].to_numpy(),
                }
            )
        )
        for table, ids, key, out in (
            (ds.items, ds.item_ids, "item_id", items),
            (ds.users, ds.user_ids, "user_id", users),
        ):
            t = table.copy()
            t[key] = [f"{domain}:{x}" for x in ids]
            t["domain"] = domain
            out.append(t)
        report.rows_read += result.report.rows_read
        report.rows_kept += result.report.rows_kept
        report.issues += result.report.issues
        report.steps += result.report.steps
    dataset = Dataset.from_frame(
        pd.concat(frames, ignore_index=True),
        items=pd.concat(items, ignore_index=True),
        users=pd.concat(users, ignore_index=True),
        name="+".join(domains),
    )
    return LoadResult(dataset, report, {"domains": domains})


def _int(cfg: dict, key: str, default: int) -> int:
    v = cfg.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ConfigError(f"data.{key} must be a non-negative integer, got {v!r}")
    return v
