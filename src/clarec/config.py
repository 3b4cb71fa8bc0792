"""Experiment configuration: YAML files validated by pydantic, layered in one place.

Resolution order (later wins): built-in defaults → the YAML file → ``--set key=value`` overrides.
The resolved configuration is saved with every run, so a run is fully described by it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from clarec.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _path_component(value: str, what: str) -> str:
    """``value``, refused unless it can name a folder by itself (it does: models/<label>/, runs/<name>/)."""
    if not value.strip() or value in (".", "..") or any(c in value for c in "/\\\0"):
        raise ValueError(f"{what} {value!r} must be a plain name: not empty, no '/', '\\' or '..'")
    return value


class SplitConfig(BaseModel):
    """``method`` plus that method's parameters (checked by :func:`clarec.data.split.make_split`)."""

    model_config = ConfigDict(extra="allow")
    method: str = "random"

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ModelConfig(_Strict):
    """A model to run: its registry ``name``, ``params``, an optional ``label`` (its name in results)
    and a ``search`` space for ``clarec tune``: ``{param: [choice, ...]}`` or ``{param: {low, high,
    log}}`` (integers when both bounds are)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None
    search: dict[str, Any] = Field(default_factory=dict)

    @field_validator("search")
    @classmethod
    def _search(cls, space: dict[str, Any]) -> dict[str, Any]:
        for key, spec in space.items():
            if isinstance(spec, list):
                if not spec:
                    raise ValueError(f"search.{key}: a list of choices must not be empty")
            elif isinstance(spec, dict):
                extra = set(spec) - {"low", "high", "log"}
                if extra or not {"low", "high"} <= set(spec):
                    raise ValueError(f"search.{key}: a range is {{low, high[, log]}}, got {sorted(spec)}")
                if not isinstance(spec["low"], int | float) or not isinstance(spec["high"], int | float):
                    raise ValueError(f"search.{key}: low and high must be numbers")
                if not spec["low"] < spec["high"]:
                    raise ValueError(f"search.{key}: low must be below high")
                if not isinstance(spec.get("log", False), bool):
                    raise ValueError(f"search.{key}: log must be true or false, got {spec['log']!r}")
                if spec.get("log") and spec["low"] <= 0:
                    raise ValueError(f"search.{key}: a log range needs low > 0")
            else:
                raise ValueError(f"search.{key}: give a list of choices or {{low, high[, log]}}")
        return space

    @field_validator("label")
    @classmethod
    def _label(cls, label: str | None) -> str | None:
        return None if label is None else _path_component(label, "label")

    @property
    def key(self) -> str:
        """Name of this model in results (``label`` if set)."""
        return self.label or self.name


class EvaluationConfig(_Strict):
    """How every model is scored (see :class:`clarec.evaluate.Evaluator`).

    ``history_items``: ``masked`` (a user's history items are never recommended) and/or ``kept``
    (they stay candidates, RecBole's sequential default); the first convention is the main one
    (``valid``/``test`` in results), each other one is reported beside it. ``test_input``:
    ``train+valid`` gives models with exact history scoring the validation item as input when
    testing (the next-item protocol on a leave-one-out split; a run there with ``train`` says so
    for such models). ``user_sample``: score a random sample
    of that many users (the same for every model, drawn with ``sample_seed``) and report each accuracy
    figure's 95% confidence interval (results.json ``test_ci95``), for catalogues too large to rank
    for everyone. ``main_metric`` (model choice, early stopping, tuning): a computed metric at one of
    ``ks``; left out, ``ndcg@20``, or NDCG at the largest cut-off when 20 is not among ``ks``.
    ``device``: where inner-product models are scored and lists ranked (``cpu``, ``auto``,
    ``cuda``; see :class:`clarec.evaluate.Evaluator`).
    """

    ks: list[int] = Field(default_factory=lambda: [10, 20])
    metrics: list[str] | None = Field(default=None, min_length=1)
    main_metric: str = "ndcg@20"
    batch_size: int = 1024
    history_items: list[Literal["masked", "kept"]] = Field(default_factory=lambda: ["masked"])
    test_input: Literal["train", "train+valid"] = "train"
    user_sample: int | None = Field(default=None, ge=2)
    sample_seed: int = Field(0, ge=0)
    device: str = "cpu"

    @field_validator("history_items", mode="before")
    @classmethod
    def _conventions(cls, value: Any) -> Any:
        value = [value] if isinstance(value, str) else value
        if isinstance(value, list) and (not value or len(set(value)) != len(value)):
            raise ValueError("history_items must list masked and/or kept, each once")
        return value

    @field_validator("ks")
    @classmethod
    def _positive(cls, ks: list[int]) -> list[int]:
        if not ks or any(k <= 0 for k in ks):
            raise ValueError("ks must be a non-empty list of positive integers")
        return sorted(set(ks))

    @model_validator(mode="after")
    def _main_metric_computed(self) -> EvaluationConfig:
        if "main_metric" not in self.model_fields_set and 20 not in self.ks:  # the default follows ks
            self.main_metric = f"ndcg@{self.ks[-1]}"
        self.check_computed(self.main_metric, "main_metric")
        return self

    def check_computed(self, name: str, what: str) -> None:
        """Refuse a metric name (``ndcg@20``) this evaluation does not compute: an unknown base name,
        a cut-off not in ``ks``, or a base left out of ``metrics`` (every model's figure would be nan)."""
        from clarec.evaluate import ALL_METRICS

        base, _, k = name.partition("@")
        known = [m.lower() for m in self.metrics] if self.metrics is not None else list(ALL_METRICS)
        if base not in known or not k.isdigit() or int(k) not in self.ks:
            raise ValueError(
                f"{what} {name!r} is not computed: it must be one of {', '.join(known)} at a cut-off "
                f"in ks {self.ks}, e.g. '{known[0]}@{self.ks[-1]}'"
            )


class PretrainConfig(_Strict):
    """Encoder adaptation before training (``clarec pretrain``; see :mod:`clarec.text.adapt` and
    :func:`clarec.experiment.pretrain.run_pretraining`).

    ``encoder`` is a base model folder or hub id (None: the bundled all-MiniLM-L6-v2); ``fields`` the item
    fields rendered into each text (None: the fields the text models encode by default); ``seed`` None
    uses the config's seed.
    """

    method: Literal["simcse", "simcse-sup", "byol"] = "simcse-sup"
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(2e-5, gt=0)
    temperature: float = Field(0.05, gt=0)
    max_steps: int | None = Field(None, ge=1)
    warmup: float = Field(0.1, ge=0, lt=1)
    fields: list[str] | None = None
    encoder: str | None = None
    max_length: int = Field(64, ge=2)
    device: str | None = None
    seed: int | None = None

    @field_validator("fields")
    @classmethod
    def _fields(cls, fields: list[str] | None) -> list[str] | None:
        if fields is not None and not fields:
            raise ValueError("fields must list at least one item field (or be left out)")
        return fields


class TuningConfig(_Strict):
    """``clarec tune``: ``trials`` per model (the same for every model), chosen on validation
    ``metric`` (default: the main metric), then the winner runs on ``seeds`` seeds (each drawing the
    split when ``split_seeds``). ``pruning`` stops trials whose validation curve falls below the
    median of earlier trials at the same epoch, at epoch ``pruning_warmup`` at the earliest (2 when
    left out, which also keeps configs written before the setting existed identical, so their kept
    seeds and final runs stay valid; a longer warm-up spares settings that learn slowly but end well).
    ``search_seed`` seeds the search's sampler alone (left out: the config's ``seed``, which also seeds
    the trials' fits and the final seeds), to see how much of a search's outcome is the luck of its path."""

    trials: int = Field(20, ge=1)
    metric: str | None = None
    seeds: int = Field(3, ge=1)
    split_seeds: bool = True
    pruning: bool = True
    pruning_warmup: int | None = Field(None, ge=0)
    search_seed: int | None = None


class ExperimentConfig(_Strict):
    """A whole experiment. ``models`` may be left out only when a ``pretrain`` section is there (a
    config for ``clarec pretrain`` alone); ``clarec run`` still needs at least one model."""

    name: str = "experiment"
    seed: int = Field(2024, ge=0)
    data: dict[str, Any] | None = None
    split: SplitConfig = Field(default_factory=SplitConfig)
    models: list[ModelConfig] = Field(default_factory=list)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    pretrain: PretrainConfig | None = None
    tuning: TuningConfig = Field(default_factory=TuningConfig)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return _path_component(name, "name")

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        if self.data is None and self.split.method != "predefined":
            raise ValueError("a 'data' section is required unless split.method is 'predefined'")
        if self.split.method == "predefined" and (ignored := sorted(set(self.data or {}) - {"profiles"})):
            raise ValueError(
                f"split.method 'predefined' reads every part from its folder, so data keys {ignored} "
                "would be ignored: remove them (only data.profiles applies to a predefined split)"
            )
        if self.tuning.metric is not None:
            self.evaluation.check_computed(self.tuning.metric, "tuning.metric")
        if not self.models and self.pretrain is None:
            raise ValueError(
                "'models' must list at least one model (or the config needs a 'pretrain' section)"
            )
        keys = [m.key for m in self.models]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise ValueError(f"model names must be unique (give a 'label' to tell them apart): {dup}")
        return self

    def only(self, keys: list[str]) -> ExperimentConfig:
        """The same experiment with only the models named ``keys`` (their labels), in config order."""
        known = [m.key for m in self.models]
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise ConfigError(f"--models: {unknown} not in the config (its models: {known})")
        return self.model_copy(update={"models": [m for m in self.models if m.key in keys]})


def _set_path(tree: dict, dotted: str, value: Any) -> None:
    """Set ``a.b.0.c`` in a nested dict/list structure, creating dicts where missing."""
    keys = dotted.split(".")
    node: Any = tree
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ConfigError(f"--set {dotted}: {key!r} is not an index of a list of {len(node)}")
            if last:
                node[int(key)] = value
            else:
                node = node[int(key)]
        elif isinstance(node, dict):
            if last:
                node[key] = value
            else:
                node = node.setdefault(key, {})
        else:
            raise ConfigError(
                f"--set {dotted}: cannot descend into {'.'.join(keys[:i])} (a {type(node).__name__})"
            )


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``key=value`` strings; values are parsed as YAML (``ks=[5,10]``, ``seed=3``)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, text = item.split("=", 1)
        if not key.strip() or any(not part.strip() for part in key.split(".")):
            raise ConfigError(f"--set expects key=value with a key such as models.0.params.reg, got {item!r}")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            if text.strip().startswith(("{", "[")):  # meant as a mapping or list: its error, not a string
                problem = getattr(e, "problem", None) or str(e).splitlines()[0]
                raise ConfigError(
                    f"--set {key.strip()}: the value {text!r} is not valid YAML ({problem})"
                ) from None
            value = text
        _set_path(raw, key.strip(), value)
    return raw


def _format_validation(err: ValidationError, source: str) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        parts.append(f"{loc}: {msg}")
    return f"{source}: invalid config: " + "; ".join(parts)


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None, raw: dict | None = None
) -> ExperimentConfig:
    """Read, override and validate a configuration; any problem raises one ConfigError."""
    source = str(path) if path is not None else "<config>"
    if raw is None:
        if path is None:
            raise ConfigError("no configuration given")
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{source}: config file not found")
        try:
            raw = yaml.safe_load(p.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(f"{source}: not UTF-8 text") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            problem = getattr(e, "problem", None) or str(e)
            raise ConfigError(f"{source}:{where}: invalid YAML: {problem}") from None
    if raw is None:
        raise ConfigError(f"{source}: config is empty")
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: config must be a mapping at the top level, got {type(raw).__name__}")
    raw = apply_overrides(raw, overrides or [])
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_format_validation(e, source)) from None


def dump_config(cfg: ExperimentConfig) -> str:
    """The resolved configuration as YAML."""
    return yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True), sort_keys=False)


def read_saved_config(saved: str | dict) -> ExperimentConfig | None:
    """A configuration saved by an earlier run (its YAML dump or the mapping), read under today's
    schema, or ``None`` when it no longer validates. A setting added to the schema since is filled in
    with its default, so a config saved before the setting existed reads as the same experiment (its
    kept results stay valid): defaults, like a model's, are taken to keep what the code did before."""
    try:
        raw = yaml.safe_load(saved) if isinstance(saved, str) else saved
        return ExperimentConfig.model_validate(raw)
    except (yaml.YAMLError, ValidationError, TypeError, ValueError):
        return None


def same_config(saved: str, cfg: ExperimentConfig) -> bool:
    """Whether ``saved`` (a :func:`dump_config` text of an earlier run) describes ``cfg``."""
    if saved == dump_config(cfg):
        return True
    earlier = read_saved_config(saved)
    return earlier is not None and dump_config(earlier) == dump_config(cfg)
