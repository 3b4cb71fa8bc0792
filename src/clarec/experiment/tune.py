"""``clarec tune``: each model's settings searched on validation with the same budget, then the
winners run on several seeds.

For every model of the config with a ``search`` space, an Optuna study (TPE sampler seeded with the
config's seed) runs ``tuning.trials`` trials — the same number for every model — each fitting the
model on the training part with the trial's settings over the config's ``params`` and scoring the
validation part (``tuning.metric``, default the main metric). Test figures are never computed during
the search. Trials of torch models report their validation curve (NDCG at the tuning metric's
cut-off), and with ``tuning.pruning`` a trial below the median of earlier trials at the same epoch is
stopped, at epoch ``tuning.pruning_warmup`` at the earliest. A trial whose fit diverges (a loss that is
not a number) fails and does not count: the search goes on, and stops only after more such trials than
its budget. Studies live in ``OUT/tune.db``
(SQLite): a run that is stopped and started again continues where it was, counting the trials
already finished; a torch model's trial that was running goes on from its last finished epoch (in
one process each trial's fit keeps its state in ``OUT/trial-runs/<model>/<trial>`` until the trial
ends). ``OUT/trials.json`` keeps every finished trial of every study in plain JSON,
rewritten after each trial; a run folder without ``tune.db`` that holds such a file starts each study
from it, so a search can move between machines (or be kept with a project) trial by trial. Then the
config with every model's best settings is run by
:func:`~clarec.experiment.runner.run_experiment` on ``tuning.seeds`` seeds (each drawing the split with
``tuning.split_seeds``) into ``OUT/final`` (a final run that was stopped continues its fits from their
last epoch); ``OUT/tune.json`` records the spaces, trials, best
settings (and which of them sit at an edge of their space, :func:`at_edges`; the run's progress lines
say so too) and where the final results are.

Under torchrun (``clarec tune --nproc N``) every rank runs the same trials: rank 0 holds the study,
draws each trial's settings and sends them to the others; the torch models train on all ranks
(DistributedDataParallel, as in ``clarec run``), rank 0 validates, decides pruning and tells the
study, and the decision reaches every rank, so all stop a trial together.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clarec.config import ExperimentConfig, ModelConfig, dump_config, read_saved_config, same_config
from clarec.errors import ConfigError
from clarec.evaluate import Evaluator
from clarec.experiment.runner import (
    folder_lock,
    prepare_data,
    refuse_strangers,
    run_experiment,
    warn_unreachable,
)
from clarec.models.registry import create, get_model_class, validation_k, with_run_settings
from clarec.train import distributed
from clarec.train.loop import LAST_NAME, DivergedError

log = logging.getLogger("clarec.tune")

#: Trial states that count towards the budget.
FINISHED = ("COMPLETE", "PRUNED")
#: folder of the running trials' fits, per model (``OUT/trial-runs/<model>/<trial number>``)
TRIAL_RUNS = "trial-runs"
#: user attribute of a trial asked again: the number of the stopped trial it goes on from
RESUMES = "resumes_trial"
#: The portable copy of the studies' finished trials in a tune folder.
TRIALS = "trials.json"


def trials_to_json(study) -> list[dict]:
    """A study's finished trials as plain JSON: state, settings and their distributions, the
    validation figure and the validation curve (what resuming the sampler and the pruner needs)."""
    from optuna.distributions import distribution_to_json

    return [
        {
            "state": t.state.name,
            "params": t.params,
            "distributions": {k: distribution_to_json(d) for k, d in t.distributions.items()},
            "value": t.value,
            "curve": {str(step): v for step, v in sorted(t.intermediate_values.items())},
        }
        for t in study.trials
        if t.state.name in FINISHED
    ]


def add_trials(study, trials: list[dict]) -> None:
    """Add trials written by :func:`trials_to_json` to ``study``."""
    import optuna
    from optuna.distributions import json_to_distribution

    for t in trials:
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState[t["state"]],
                params=t["params"],
                distributions={k: json_to_distribution(d) for k, d in t["distributions"].items()},
                value=t["value"],
                intermediate_values={int(step): v for step, v in t["curve"].items()},
            )
        )


def _read_trials(path: Path, cfg: ExperimentConfig | None = None) -> dict[str, list[dict]]:
    """The trials file at ``path`` (``{}`` when there is none); with ``cfg``, checked against its
    search spaces before any study is touched."""
    if not path.is_file():
        return {}
    try:
        saved = json.loads(path.read_text())
        if not isinstance(saved, dict) or not all(isinstance(v, list) for v in saved.values()):
            raise ValueError("expected {model: [trial, ...]}")
    except ValueError as e:
        raise ConfigError(f"{path}: not a trials file ({e})") from e
    for m in cfg.models if cfg else ():
        for t in saved.get(m.key, ()):
            if not isinstance(t, dict) or set(t.get("params", ())) != set(m.search):
                raise ConfigError(
                    f"{path}: {m.key!r} trials searched {sorted(t.get('params', ())) if isinstance(t, dict) else t}, "
                    f"the config searches {sorted(m.search)}"
                )
            for name, value in t["params"].items():  # a trial of another space would be its best
                if not _in_space(m.search[name], value):
                    raise ConfigError(
                        f"{path}: a {m.key!r} trial drew {name}={value!r}, outside the config's space "
                        f"{m.search[name]}: these trials searched another space"
                    )
    return saved


def _in_space(spec: Any, value: Any) -> bool:
    if isinstance(spec, list):
        return value in spec
    return isinstance(value, int | float) and float(spec["low"]) <= float(value) <= float(spec["high"])


def suggest(trial, name: str, spec: Any) -> Any:
    """The trial's value of one parameter: a choice from a list, or a number in ``{low, high, log}``."""
    if isinstance(spec, list):
        return trial.suggest_categorical(name, spec)
    low, high, logscale = spec["low"], spec["high"], bool(spec.get("log", False))
    if isinstance(low, int) and isinstance(high, int) and not isinstance(low, bool):
        return trial.suggest_int(name, low, high, log=logscale)
    return trial.suggest_float(name, float(low), float(high), log=logscale)


def with_settings(params: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """``params`` with ``settings`` put in; a dotted name sets a key inside a mapping parameter
    (``align.weight: 0.1`` → ``align: {..., weight: 0.1}``), keeping the mapping's other keys."""
    out = dict(params)
    for name, value in settings.items():
        head, _, rest = name.partition(".")
        if not rest:
            out[head] = value
            continue
        inner = out.get(head) or {}
        if not isinstance(inner, dict):
            raise ConfigError(f"search.{name}: parameter {head!r} is not a mapping ({inner!r})")
        out[head] = with_settings(inner, {rest: value})
    return out


def _check_spaces(cfg: ExperimentConfig) -> None:
    for m in cfg.models:
        names = get_model_class(m.name).param_names()
        chance = sorted(k for k in m.search if k in UNSEARCHED)
        if chance:
            raise ConfigError(
                f"model {m.key!r}: search over {chance}: a seed, a folder or a progress bar is not a "
                "setting to choose on validation (the seeds are --seeds)"
            )
        unknown = sorted(k for k in m.search if k.partition(".")[0] not in names)
        if unknown:
            raise ConfigError(f"model {m.key!r}: search over unknown parameter(s) {unknown}")
        # (a key inside a mapping is fixed to give the mapping its required keys: align.weight)
        both = sorted(k for k in m.search if "." not in k and k in m.params)
        if both:
            raise ConfigError(
                f"model {m.key!r}: {both} both fixed in params and searched: the search would override "
                "the fixed value; keep one"
            )
        create(m.name, m.params)  # the fixed part of the settings must be valid
        params = get_model_class(m.name).params
        for k, spec in m.search.items():
            default = getattr(params.get(k), "default", None)
            integer = isinstance(default, int) and not isinstance(default, bool)
            if (
                integer
                and isinstance(spec, dict)
                and not all(isinstance(spec[e], int) for e in ("low", "high"))
            ):
                raise ConfigError(
                    f"model {m.key!r}: search.{k} is an integer parameter; give its range integer bounds "
                    f"(got {spec['low']!r} to {spec['high']!r}: values between would be drawn as floats)"
                )
        # and so must every value a trial can draw: both ends of each range, each choice of a list
        # (a dotted name's mapping included), the others at their low end or first choice
        low = {k: _values(spec)[0] for k, spec in m.search.items()}
        for k, spec in m.search.items():
            for value in _values(spec):
                create(m.name, with_settings(m.params, low | {k: value}))


#: run settings no search may choose
UNSEARCHED = frozenset({"seed", "run_dir", "resume", "progress", "cache_dir"})


def _values(spec: Any) -> list[Any]:
    """A list's choices, a range's two ends."""
    return list(spec) if isinstance(spec, list) else [spec["low"], spec["high"]]


def at_edges(space: dict[str, Any], chosen: dict[str, Any], margin: float = 0.05) -> dict[str, str]:
    """The chosen settings that sit at an edge of their search space, each with the edge named: a
    number within ``margin`` of a range's end (on the range's log scale where it has one), or the
    first or last of three or more ordered numbers. Such a choice may mean the space cut the search
    short. Choices among names, booleans or two values have no edge."""

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    edges = {}
    for name, spec in space.items():
        value = chosen.get(name)
        if not number(value):
            continue
        if isinstance(spec, list):
            if len(spec) >= 3 and all(map(number, spec)) and value in (min(spec), max(spec)):
                side = "lowest" if value == min(spec) else "highest"
                edges[name] = f"{value:g}, the {side} of {spec}"
            continue
        low, high = float(spec["low"]), float(spec["high"])
        if high <= low or (isinstance(spec["low"], int) and isinstance(spec["high"], int) and high - low < 2):
            continue  # an integer range of two values has no edge, as a list of two has none
        if spec.get("log"):
            where = math.log(value / low) / math.log(high / low)
        else:
            where = (value - low) / (high - low)
        if where <= margin or where >= 1 - margin:
            side = "low" if where <= margin else "high"
            edges[name] = f"{value:.3g}, at the {side} end of [{low:g}, {high:g}]"
    return edges


def _check_same_ground(out: Path, cfg: ExperimentConfig) -> None:
    """Refuse to go on with a search stored in ``out`` under other data, split, evaluation or seed:
    its trials' validation figures would not be comparable (models and tuning settings may change)."""
    saved = out / "config.yaml"
    # a study, or a trials file read into one (a folder moved from another machine with its config)
    if not (((out / "tune.db").exists() or (out / TRIALS).exists()) and saved.is_file()):
        return
    earlier = read_saved_config(saved.read_text())
    keys = {"seed", "data", "split", "evaluation"}
    if earlier is None or earlier.model_dump(mode="json", include=keys) != cfg.model_dump(
        mode="json", include=keys
    ):
        raise ConfigError(
            f"{out} holds a search made on other data, split, evaluation or seed (its config.yaml): "
            "its trials cannot go on under this config; give another --out"
        )


def _check_same_search(out: Path, study, m, metric: str) -> None:
    """Refuse to go on with ``m``'s study when its trials searched another space or under other fixed
    settings, or were scored on another ``metric``: its best trial could lie outside the space asked
    for, have been fitted under other settings, or be compared with figures of another metric. The
    search is recorded in the study the first time (the metric since 2026-12-07: a study without it
    is taken as scored on this one)."""
    scored = study.user_attrs.get("metric")
    if scored is None:
        study.set_user_attr("metric", metric)
    elif scored != metric:
        raise ConfigError(
            f"{out}: {m.key!r} was searched on validation {scored}, not {metric}: its trials cannot go on "
            "under this config: give another --out (or the same tuning metric)"
        )
    run_settings = getattr(get_model_class(m.name), "_RUN_SETTINGS", ())  # threads, device...: no matter
    fixed = {k: v for k, v in m.params.items() if k not in run_settings}
    searched = json.loads(json.dumps({"space": m.search, "params": fixed}, default=str))  # as stored
    earlier = study.user_attrs.get("search")
    if earlier is None:
        study.set_user_attr("search", searched)
    elif earlier != searched:
        what = [k for k in ("space", "params") if earlier.get(k) != searched[k]]
        raise ConfigError(
            f"{out}: {m.key!r} was searched with other {' and '.join(what)} ({earlier}); its trials cannot "
            "go on under this config: give another --out (or another label for the model)"
        )


def _open_study(optuna, storage: str, out: Path, m, metric: str, sampler_seed: int, cfg, saved: dict, say):
    """``m``'s study in ``storage``, checked to go on under this config, with the trials of a trials
    file added, its stopped trials asked again, and its sampler seeded for the trials to come."""
    warmup = 2 if cfg.tuning.pruning_warmup is None else cfg.tuning.pruning_warmup
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=warmup)
    study = optuna.create_study(
        study_name=m.key,
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=sampler_seed),
        pruner=pruner if cfg.tuning.pruning else optuna.pruners.NopPruner(),
        load_if_exists=True,
    )
    _check_same_search(out, study, m, metric)
    if saved.get(m.key):
        add_trials(study, saved[m.key])
        say(f"{m.key}: {len(saved[m.key])} trials read from {out / TRIALS}")
    if study.trials:
        # a search that goes on: seeded anew, or its random start-up trials would repeat the
        # settings of the first ones (a sampler's draws start again from its seed)
        study.sampler = optuna.samplers.TPESampler(seed=sampler_seed + len(study.trials))
    _requeue_interrupted(study, out / TRIAL_RUNS / m.key)
    _write_trials(out, m.key, study)
    return study


#: What a tune folder holds at its top (and ``final.previous-N``, a ``trials.tmp`` being written).
TUNE_ENTRIES = frozenset({"config.yaml", "tune.db", TRIALS, TRIAL_RUNS, "final", "tune.json", "trials.tmp"})


def tune(cfg: ExperimentConfig, out_dir: str | Path, progress: Callable[[str], None] | None = None) -> dict:
    """Search every model's space on validation, run the winners on seeds; returns ``tune.json``.
    The folder is locked while the tune runs (:func:`~clarec.experiment.runner.folder_lock`)."""
    _check_spaces(cfg)
    out = Path(out_dir)
    if not distributed.is_main():  # under torchrun: rank 0 writes the folder
        return _tune(cfg, out, progress)
    refuse_strangers(
        out, TUNE_ENTRIES, "tune", "a tune writes its studies and runs there", ("final.previous-",)
    )
    _check_same_ground(out, cfg)
    with folder_lock(out, "tune"):
        return _tune(cfg, out, progress)


def _tune(cfg: ExperimentConfig, out: Path, progress: Callable[[str], None] | None) -> dict:
    import optuna
    import sqlalchemy

    main = distributed.is_main()
    say = (progress or (lambda line: None)) if main else (lambda line: None)
    t0 = time.perf_counter()
    split = prepare_data(cfg).split
    for m in cfg.models:  # what the data lacks, an encoder adapted on pairs it holds out: before any trial
        create(m.name, m.params).check_split(split)
    metric = cfg.tuning.metric or cfg.evaluation.main_metric
    ev = cfg.evaluation
    evaluator = None
    if main:  # rank 0 alone validates
        evaluator = Evaluator(
            split,
            ks=ev.ks,
            metrics=list(dict.fromkeys(["ndcg", "recall", "hit", metric.partition("@")[0]])),
            batch_size=ev.batch_size,
            history_items=ev.history_items[0],  # the convention of the run's main table
            user_sample=ev.user_sample,
            sample_seed=ev.sample_seed,
            device=ev.device,
        )
        warn_unreachable(evaluator, ("valid",), say, t0)
    # a folder without a study that holds a trials file (another machine's search) starts from it
    saved = _read_trials(out / TRIALS, cfg) if main and not (out / "tune.db").exists() else {}
    storage = sqlalchemy.engine.URL.create("sqlite", database=str(out / "tune.db")).render_as_string()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    record: dict[str, Any] = {"metric": metric, "trials_per_model": cfg.tuning.trials, "models": {}}
    sampler_seed = cfg.seed if cfg.tuning.search_seed is None else cfg.tuning.search_seed
    studies: dict[str, Any] = {}
    if main:  # every study checked (space, settings, metric) before the folder's config changes
        out.mkdir(parents=True, exist_ok=True)
        for m in cfg.models:
            if m.search:
                studies[m.key] = _open_study(optuna, storage, out, m, metric, sampler_seed, cfg, saved, say)
        (out / "config.yaml").write_text(dump_config(cfg))
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
        study = studies.get(m.key)
        done = distributed.broadcast_object(
            sum(t.state.name in FINISHED for t in study.trials) if main else None
        )
        say(f"[{time.perf_counter() - t0:6.1f}s] {m.key}: {done} of {cfg.tuning.trials} trials done")
        diverged = 0
        while done < cfg.tuning.trials:
            failed = _trial(study, m, cfg, split, evaluator, metric, out / TRIAL_RUNS / m.key)
            failed = distributed.broadcast_object(failed if main else None)
            if main:
                _write_trials(out, m.key, study)
            if not failed:
                done += 1
                continue
            say(f"{m.key}: {failed}; the trial failed and does not count towards the budget")
            diverged += 1
            if diverged > cfg.tuning.trials:
                raise ConfigError(
                    f"{m.key}: {diverged} trials diverged (more than the budget of {cfg.tuning.trials}): "
                    "narrow its search space (a lower learning rate?)"
                )
        best = None
        if main:
            best = study.best_trial
            record["models"][m.key] = {
                "space": m.search,
                "trials": sum(t.state.name == "COMPLETE" for t in study.trials),
                "pruned": sum(t.state.name == "PRUNED" for t in study.trials),
                "best_params": best.params,
                "best_valid": best.value,
                "at_edge": at_edges(m.search, best.params),
            }
            say(
                f"[{time.perf_counter() - t0:6.1f}s] {m.key}: best valid {metric} {best.value:.4f} "
                f"with {best.params}"
            )
            for name, where in record["models"][m.key]["at_edge"].items():
                say(
                    f"{m.key}: {name} chosen at an edge of its space ({where}): the space may cut the search short"
                )
        chosen = distributed.broadcast_object(best.params if main else None)
        best_models.append(m.model_copy(update={"params": with_settings(m.params, chosen), "search": {}}))
    final = cfg.model_copy(update={"models": best_models})
    record["final_run"] = "final"
    record["final_seeds"] = cfg.tuning.seeds
    record["split_seeds"] = cfg.tuning.split_seeds
    # A final run stopped part-way continues (its fits resume from their last epoch) when it was
    # started for the same chosen settings; one of other settings, or on several processes (which
    # do not resume), is begun again.
    config_file = out / "final" / "config.yaml"
    fresh = distributed.world_size() > 1
    if main and config_file.is_file() and (fresh or not same_config(config_file.read_text(), final)):
        # an earlier final run (of other settings or models: hours of seeds) is kept aside with its
        # tune.json, not deleted
        n = 1
        while (out / f"final.previous-{n}").exists():
            n += 1
        (out / "final").rename(out / f"final.previous-{n}")
        if (out / "tune.json").is_file():
            shutil.copy2(out / "tune.json", out / f"final.previous-{n}" / "tune.json")
        say(f"{out / 'final'}: the earlier final run (of other settings) moved to final.previous-{n}")
    if main:
        (out / "tune.json").write_text(json.dumps(record, indent=2, default=str))
    run_experiment(
        final,
        out / "final",
        seeds=cfg.tuning.seeds,
        progress=say,
        split_seeds=cfg.tuning.split_seeds,
        resume=not fresh,
    )
    return record


def _write_trials(out: Path, key: str, study) -> None:
    """Rewrite ``key``'s entry of ``OUT/trials.json`` from its study (atomically: a copy being read
    by another process is never half-written)."""
    path = out / TRIALS
    saved = _read_trials(path)
    saved[key] = trials_to_json(study)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(saved, indent=1))
    tmp.replace(path)


def _requeue_interrupted(study, folder: Path) -> None:
    """Trials a stopped search left running are failed; each whose fit left a checkpoint in
    ``folder/<number>`` is asked again with its settings, to go on from there (:func:`_trial`)."""
    import optuna

    running = optuna.trial.TrialState.RUNNING
    for t in study.get_trials(deepcopy=False, states=(running,)):
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        if (folder / str(_first_try(study, t.number)) / LAST_NAME).is_file():
            study.enqueue_trial(t.params, user_attrs={RESUMES: t.number})


def _first_try(study, number: int) -> int:
    """The trial whose folder a trial fits in: itself, or — for a trial that goes on from a stopped
    one, itself perhaps a resumption — the first of the chain."""
    trials = study.get_trials(deepcopy=False)
    while RESUMES in trials[number].user_attrs:
        number = trials[number].user_attrs[RESUMES]
    return number


def _trial(
    study,
    m: ModelConfig,
    cfg: ExperimentConfig,
    split,
    evaluator: Evaluator | None,
    metric: str,
    folder: Path,
) -> str | None:
    """One trial of ``m``'s search (what ``study.optimize`` does for one trial, told by hand so that
    the ranks of a distributed run go through it together): rank 0 asks the study for settings,
    every rank fits (the non-torch models on rank 0 only), rank 0 validates and tells the study.

    In one process a torch model's fit keeps its state in ``folder/<trial number>`` after every
    epoch (removed when the trial ends), so that a search stopped mid-trial goes on from there: the
    trial is asked again (:func:`_requeue_interrupted`), reports the stopped trial's validation
    curve again and resumes the fit from its last finished epoch.

    Returns what went wrong when the fit diverged (a failed trial the search goes on from: its
    settings are a point of the space where training breaks down), else ``None``; any other error
    fails the trial and is raised."""
    import optuna

    from clarec.models.torch_base import TorchRecommender

    main = distributed.is_main()
    trial = study.ask() if main else None
    drawn = distributed.broadcast_object(
        {k: suggest(trial, k, spec) for k, spec in m.search.items()} if main else None
    )
    # the run's seed, and the main table's convention for the trial's in-training validation
    params = with_run_settings(
        m.name,
        with_settings(m.params, drawn),
        seed=cfg.seed,
        eval_history=cfg.evaluation.history_items[0],
        eval_k=validation_k(m.name, metric),  # the curve pruning reads, at the metric's cut-off
    )
    cls = get_model_class(m.name)
    run_dir, reported = None, set()
    if issubclass(cls, TorchRecommender) and distributed.world_size() == 1:
        resumes = trial.user_attrs.get(RESUMES)
        run_dir = folder / str(_first_try(study, trial.number))
        params |= {"run_dir": str(run_dir), "resume": True}
        if resumes is not None:  # the stopped trial's curve, its own predecessors' included
            for epoch, value in sorted(study.trials[resumes].intermediate_values.items()):
                trial.report(value, epoch)
                reported.add(epoch)
    try:
        model = create(m.name, params)
    except Exception:  # settings that are invalid together: a failed trial, not one left running
        if main:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise

    def report(epoch: int, value: float) -> None:  # called on every rank, with rank 0's figure
        prune = None
        if main:
            if epoch not in reported:  # a resumed fit's first epoch may have been reported before
                trial.report(value, epoch)
            prune = trial.should_prune()
        if distributed.broadcast_object(prune):
            raise optuna.TrialPruned(f"validation {value:.4f} at epoch {epoch}")

    if hasattr(type(model), "validation_callback"):
        model.validation_callback = report

    def end(**told) -> None:  # tell the study; the trial's checkpoints are no longer needed
        study.tell(trial, **told)
        if run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)

    try:
        if main or model.trains_torch():
            model.fit(split.train, valid=split.valid)
        if not main:
            return
        value = evaluator.evaluate(model, part="valid").metrics.get(metric)
        if value is None:
            raise ConfigError(f"tuning metric {metric!r} is not computed (evaluation.ks {cfg.evaluation.ks})")
    except optuna.TrialPruned:
        if main:
            end(state=optuna.trial.TrialState.PRUNED)
        return None
    except DivergedError as e:
        if main:
            end(state=optuna.trial.TrialState.FAIL)
        return f"trial {trial.number if main else '?'} with {drawn} diverged ({e})"
    except Exception:
        if main:
            end(state=optuna.trial.TrialState.FAIL)
            log.error("%s trial %d failed with %s", m.key, trial.number, drawn)
        raise
    if not math.isfinite(value):
        end(state=optuna.trial.TrialState.FAIL)
        return f"trial {trial.number} with {drawn} scored {value} on validation"
    log.info("%s trial %d: %s -> valid %s %.4f", m.key, trial.number, params, metric, value)
    end(values=float(value))
    return None
