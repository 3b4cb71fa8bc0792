"""Model registry: names used in configs and on the command line → classes.

Models register themselves with :func:`register`; :func:`create` builds one from a name and a
parameter dict, rejecting unknown parameters with a clear message.

Models written outside clarec register when their module is imported: by the user's own script, or,
for the command line and the server, as a plugin — a module named in the environment variable
``CLAREC_PLUGINS`` (comma-separated, importable from ``PYTHONPATH``) or an entry point of the group
``clarec.models`` in an installed package's metadata.
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
from importlib.metadata import entry_points
from typing import Any

from clarec.errors import ClarecError, ConfigError

_MODELS: dict[str, type] = {}
PLUGINS_ENV = "CLAREC_PLUGINS"
ENTRY_POINTS = "clarec.models"
_plugins_loaded = False


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register(name: str):
    """Class decorator that makes a recommender available under ``name`` (a plain name: it names the
    model's folder in a run); a name another class holds is refused (the same class again, as when
    its module is reloaded, takes it over)."""
    if (
        not isinstance(name, str)
        or not name.strip()
        or name in (".", "..")
        or any(c in name for c in "/\\\0")
    ):
        raise ConfigError(f"model name {name!r} must be a plain name: not empty, no '/', '\\' or '..'")

    def deco(cls):
        held = _MODELS.get(name)
        if held is not None and held is not cls and _qualname(held) != _qualname(cls):
            raise ConfigError(
                f"model name {name!r} is taken by {_qualname(held)}: register {_qualname(cls)} under another name"
            )
        cls.name = name
        _MODELS[name] = cls
        return cls

    return deco


def _ensure_loaded() -> None:
    """Import the built-in models, then the plugins (once)."""
    global _plugins_loaded
    import clarec.models  # noqa: F401

    if _plugins_loaded:
        return
    _plugins_loaded = True
    sources = [(m.strip(), PLUGINS_ENV) for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip()]
    for ep in entry_points(group=ENTRY_POINTS):
        sources.append((ep.value.partition(":")[0], f"the {ENTRY_POINTS} entry point {ep.name!r}"))
    for module, where in sources:
        try:
            importlib.import_module(module)
        except Exception as e:  # a plugin that does not import is one error, naming where it was named
            _plugins_loaded = False
            raise ClarecError(
                f"model plugin {module!r} (named in {where}) does not import: {type(e).__name__}: {e}"
            ) from None


def available_models() -> list[str]:
    _ensure_loaded()
    return sorted(_MODELS)


def get_model_class(name: str) -> type:
    _ensure_loaded()
    try:
        return _MODELS[name]
    except KeyError:
        close = difflib.get_close_matches(name, _MODELS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown model {name!r}{hint}; available: {', '.join(sorted(_MODELS))}") from None


def create(name: str, params: dict[str, Any] | None = None):
    """Instantiate model ``name`` with ``params``; unknown or ill-typed parameters raise ConfigError."""
    cls = get_model_class(name)
    params = dict(params or {})
    allowed = cls.param_names()
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        close = [c for u in unknown for c in difflib.get_close_matches(u, allowed, n=1)]
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ConfigError(f"model {name!r}: unknown parameter(s) {unknown}{hint}; allowed: {allowed}")
    try:
        return cls(**params)
    except (TypeError, ValueError) as e:  # the model's own message names it already ("ease: reg ...")
        text = str(e)
        raise ConfigError(text if text.startswith(f"{name}: ") else f"model {name!r}: {text}") from None


def with_run_settings(name: str, params: dict[str, Any], **settings: Any) -> dict[str, Any]:
    """``params`` plus each of the run's ``settings`` (``seed``, ``run_dir``, ``resume``,
    ``eval_history``...) that model ``name`` takes and ``params`` does not set; a setting that is
    ``None`` or ``False`` is left out."""
    names = get_model_class(name).param_names()
    extra = {k: v for k, v in settings.items() if v is not None and v is not False and k in names}
    return {**extra, **params}


def validation_k(name: str, metric: str) -> int | None:
    """The cut-off model ``name``'s in-training validation (early stopping, pruning: NDCG@``eval_k``)
    should follow for a run judged on ``metric``: its k when ``metric`` is an NDCG and the k is not
    the model's default already (``None``: nothing to set; a run on another metric follows NDCG)."""
    spec = get_model_class(name).params.get("eval_k")
    base, _, k = metric.partition("@")
    if spec is None or base != "ndcg" or not k.isdigit() or int(k) == spec.default:
        return None
    return int(k)


def inner_params(
    name: str,
    params: dict[str, Any],
    *,
    seed: int | None,
    run_dir: str | None,
    resume: bool,
    eval_history: str,
    eval_k: int,
) -> dict[str, Any]:
    """The parameters of model ``name`` fitted inside another (a blend's member, a re-ranker's base):
    ``params`` plus the outer model's run settings, as a run hands them to its models — its seed,
    training folder, ``resume``, validation convention, and the cut-off of its validation NDCG."""
    return with_run_settings(
        name,
        params,
        seed=seed,
        run_dir=run_dir,
        resume=resume,
        eval_history=eval_history,
        eval_k=validation_k(name, f"ndcg@{eval_k}"),
    )


#: Settings that say where a fit writes and whether it shows progress, not what it computes.
_WHERE = frozenset({"run_dir", "resume", "progress"})


def fit_key(name: str, params: dict[str, Any]) -> str:
    """What a fit of model ``name`` with ``params`` computes (its name and settings, where it writes
    left out): two fits with the same key on the same data are the same fit (a ``blend`` takes a
    member's fit from another model of its run by it)."""
    kept = {k: v for k, v in params.items() if k not in _WHERE}
    return json.dumps([name, kept], sort_keys=True, default=str)
