"""Model registry: names used in configs and on the command line → classes.

Models register themselves with :func:`register`; :func:`create` builds one from a name and a
parameter dict, rejecting unknown parameters with a clear message.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from clarec.errors import ConfigError

_MODELS: dict[str, type] = {}


def register(name: str):
    """Class decorator that makes a recommender available under ``name``."""

    def deco(cls):
        if name in _MODELS and _MODELS[name] is not cls:
            raise ValueError(f"model name {name!r} registered twice")
        cls.name = name
        _MODELS[name] = cls
        return cls

    return deco


def _ensure_loaded() -> None:
    # Importing the package registers the built-in models.
    import clarec.models  # noqa: F401


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
        raise ConfigError(f"model {name!r}: unknown parameter(s) {unknown}; allowed: {allowed}")
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
