"""``clarec tune``: each model's settings searched on validation with the same budget, then the
winners run on several seeds.

For every model of the config with a ``search`` space, an Optuna study (TPE sampler seeded with the
config's seed) runs ``tuning.trials`` trials — the same number for every model — each fitting the
model on the training part with the trial's settings over the config's ``params`` and scoring the
validation part (``tuning.metric``, default the main metric). Test figures are never computed during
the search. Trials of torch models report their validation curve, and with ``tuning.pruning`` a trial
below the median of earlier trials at the same epoch is stopped. Studies live in ``OUT/tune.db``
(SQLite): a run that is stopped and started again continues where it was, counting the trials
already finished. Then the config with every model's best settings is run by
:func:`~clarec.experiment.runner.run_experiment` on ``tuning.seeds`` seeds (each drawing the split with
``tuning.split_seeds``) into ``OUT/final``; ``OUT/tune.json`` records the spaces, trials, best
settings and where the final results are.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clarec.config import ExperimentConfig, ModelConfig, dump_config
from clarec.errors import ConfigError
from clarec.evaluate import Evaluator
from clarec.experiment.runner import prepare_data, run_experiment
from clarec.models.registry import create, get_model_class

log = logging.getLogger("clarec.tune")

#: Trial states that count towards the budget.
FINISHED = ("COMPLETE", "PRUNED")


def suggest(trial, name: str, spec: Any) -> Any:
    """The trial's value of one parameter: a choice from a list, or a number in ``{low, high, log}``."""
    if isinstance(spec, list):
        return trial.suggest_categorical(name, spec)
    low, high, logscale = spec["low"], spec["high"], bool(spec.get("log", False))
    if isinstance(low, int) and isinstance(high, int) and not isinstance(low, bool):
        return trial.suggest_int(name, low, high, log=logscale)
    return trial.suggest_float(name, float(low), float(high), log=logscale)


def _check_spaces(cfg: ExperimentConfig) -> None:
    for m in cfg.models:
        unknown = sorted(set(m.search) - set(get_model_class(m.name).param_names()))
        if unknown:
            raise ConfigError(f"model {m.key!r}: search over unknown parameter(s) {unknown}")
        create(m.name, m.params)  # the fixed part of the settings must be valid


def tune(cfg: ExperimentConfig, out_dir: str | Path, progress: Callable[[str], None] | None = None) -> dict:
    """Search every model's space on validation, run the winners on seeds; returns ``tune.json``."""
    import optuna

    say = progress or (lambda line: None)
    _check_spaces(cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(dump_config(cfg))
    t0 = time.perf_counter()
    split = prepare_data(cfg).split
    ev = cfg.evaluation
    evaluator = Evaluator(
        split,
        ks=ev.ks,
        metrics=["ndcg", "recall", "hit"],
        batch_size=ev.batch_size,
        user_sample=ev.user_sample,
        sample_seed=ev.sample_seed,
    )
    metric = cfg.tuning.metric or cfg.evaluation.main_metric
    storage = f"sqlite:///{out / 'tune.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    record: dict[str, Any] = {"metric": metric, "trials_per_model": cfg.tuning.trials, "models": {}}
    best_models = []
    for m in cfg.models:
        if not m.search:
            record["models"][m.key] = {
                "space": {},
                "trials": 0,
                "best_params": {},
                "note": "nothing to search",
            }
            best_models.append(m)
            continue
        pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
        study = optuna.create_study(
            study_name=m.key,
            storage=storage,
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=cfg.seed),
            pruner=pruner if cfg.tuning.pruning else optuna.pruners.NopPruner(),
            load_if_exists=True,
        )
        done = sum(t.state.name in FINISHED for t in study.trials)
        say(f"[{time.perf_counter() - t0:6.1f}s] {m.key}: {done} of {cfg.tuning.trials} trials done")
        study.optimize(
            lambda trial, m=m: _objective(trial, m, cfg, split, evaluator, metric, out),
            n_trials=max(0, cfg.tuning.trials - done),
        )
        best = study.best_trial
        record["models"][m.key] = {
            "space": m.search,
            "trials": sum(t.state.name == "COMPLETE" for t in study.trials),
            "pruned": sum(t.state.name == "PRUNED" for t in study.trials),
            "best_params": best.params,
            "best_valid": best.value,
        }
        say(
            f"[{time.perf_counter() - t0:6.1f}s] {m.key}: best valid {metric} {best.value:.4f} with {best.params}"
        )
        best_models.append(m.model_copy(update={"params": m.params | best.params, "search": {}}))
    final = cfg.model_copy(update={"models": best_models})
    record["final_run"] = "final"
    record["final_seeds"] = cfg.tuning.seeds
    record["split_seeds"] = cfg.tuning.split_seeds
    (out / "tune.json").write_text(json.dumps(record, indent=2, default=str))
    run_experiment(
        final, out / "final", seeds=cfg.tuning.seeds, progress=say, split_seeds=cfg.tuning.split_seeds
    )
    return record


def _objective(
    trial, m: ModelConfig, cfg: ExperimentConfig, split, evaluator: Evaluator, metric: str, out: Path
) -> float:
    import optuna

    params = m.params | {k: suggest(trial, k, spec) for k, spec in m.search.items()}
    names = get_model_class(m.name).param_names()
    if "seed" in names and "seed" not in params:
        params["seed"] = cfg.seed
    model = create(m.name, params)

    def report(epoch: int, value: float) -> None:
        trial.report(value, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"validation {value:.4f} at epoch {epoch}")

    if hasattr(type(model), "validation_callback"):
        model.validation_callback = report
    model.fit(split.train, valid=split.valid)
    value = evaluator.evaluate(model, part="valid").metrics.get(metric)
    if value is None:
        raise ConfigError(f"tuning metric {metric!r} is not computed (evaluation.ks {cfg.evaluation.ks})")
    log.info("%s trial %d: %s -> valid %s %.4f", m.key, trial.number, params, metric, value)
    return float(value)
