"""Config → data → split → train each model → evaluate → results.json / results.md.

A run folder holds everything needed to understand and reproduce a run::

    config.yaml      the resolved configuration
    data.json        data set summary and the cleaning report (also as a table in cleaning.txt)
    split/           the split as a predefined-split folder (train/valid/test.tsv, items.tsv)
    splits/seed-N/   the other seeds' splits (``--split-seeds``)
    models/<name>/   each fitted model (the first seed when several), loadable with Recommender.load
    train/<name>/    per seed: result.json (the seed's figures, what they were made under) and
                     the training logs of PyTorch models: log.txt, history.json, best.pt
    results.json     per model: valid and test metrics and segments, fit seconds (and per-seed
                     values, std), the convention of the main figures (history_items, test_input)
    results.md       the comparison table
    log.txt          what happened, with times
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from clarec.config import ExperimentConfig, dump_config, read_saved_config, same_config
from clarec.data.dataset import Dataset
from clarec.data.split import Split, make_split
from clarec.errors import ConfigError
from clarec.evaluate import Evaluator
from clarec.evaluate.evaluator import unreachable_note
from clarec.experiment.report import results_table
from clarec.models.blend import Blend
from clarec.models.registry import create, fit_key, validation_k, with_run_settings

log = logging.getLogger("clarec.run")

#: What to do with user tags (MovieLens CSV): ignore them, or keep those on training pairs only.
TAG_POLICIES = ("none", "train_only")

#: Item-table list columns used as item features for intra-list diversity, in order of preference.
FEATURE_COLUMNS = ("genres", "categories")


@dataclass
class PreparedData:
    dataset: Dataset | None
    split: Split
    report: Any = None
    extras: dict = field(default_factory=dict)


def prepare_data(cfg: ExperimentConfig) -> PreparedData:
    """Load, clean and split the data a configuration describes."""
    split_params = cfg.split.params()
    data_cfg = dict(cfg.data or {})
    profiles = data_cfg.get("profiles")
    if cfg.split.method == "predefined":  # the config allows no other data key here
        prepared = PreparedData(None, make_split(None, "predefined", **split_params))
    else:
        from clarec.data.loading import load_from_config

        tags_policy = data_cfg.get("tags", "none")
        if tags_policy not in TAG_POLICIES:
            raise ConfigError(f"data.tags must be one of {TAG_POLICIES}, got {tags_policy!r}")
        loaded = load_from_config(data_cfg, allow=("profiles", "tags"))  # read here, not by the loader
        fn_params = _split_signature(cfg.split.method)
        if "seed" in fn_params and "seed" not in split_params:
            split_params["seed"] = cfg.seed
        split = make_split(loaded.dataset, cfg.split.method, loaded.extras, **split_params)
        if tags_policy == "train_only":
            if "tags" not in loaded.extras:
                raise ConfigError("data.tags: train_only needs a source with user tags (e.g. MovieLens CSV)")
            attach_train_tags(split, loaded.extras["tags"])
        prepared = PreparedData(loaded.dataset, split, loaded.report, loaded.extras)
    if profiles is not None:
        from clarec.llm.profiles import attach_profiles

        attach_profiles(prepared.split, profiles)
    return prepared


def attach_train_tags(split: Split, tags: pd.DataFrame) -> int:
    """Add a ``tags`` list column to the item table from user tags whose (user, item) pair is in
    the training split; returns the number of tag rows kept.

    A tag reveals that its user watched the movie, so a tag on a validation or test pair would leak
    the answer; tags by users or on items outside training are dropped for the same reason.
    """
    train = split.train
    user_pos = pd.Series(np.arange(train.n_users), index=train.user_ids.astype(str))
    item_pos = pd.Series(np.arange(train.n_items), index=train.item_ids.astype(str))
    u = user_pos.reindex(tags["user_id"].astype(str).to_numpy()).to_numpy()
    i = item_pos.reindex(tags["item_id"].astype(str).to_numpy()).to_numpy()
    known = ~(np.isnan(u) | np.isnan(i))
    u, i = u[known].astype(np.int64), i[known].astype(np.int64)
    in_train = np.asarray(train.to_csr()[u, i]).ravel() > 0
    kept = pd.DataFrame({"item": i[in_train], "tag": tags["tag"].to_numpy()[known][in_train]})
    kept["tag"] = kept["tag"].astype(str).str.strip().str.lower()
    kept = kept[kept["tag"] != ""].drop_duplicates()
    per_item = kept.groupby("item")["tag"].agg(sorted)
    column: list[list[str]] = [[] for _ in range(train.n_items)]
    for item, item_tags in per_item.items():
        column[item] = item_tags
    # The three parts share one item table, so this reaches valid and test too.
    train.items["tags"] = pd.Series(column, dtype=object).to_numpy()
    return len(kept)


def _split_signature(method: str) -> list[str]:
    from clarec.data.split import SPLIT_METHODS

    fn = SPLIT_METHODS.get(method)
    return list(inspect.signature(fn).parameters) if fn else []


def item_features(ds: Dataset) -> sp.csr_matrix | None:
    """One-hot item features from a list column (genres, else categories), for diversity."""
    for col in FEATURE_COLUMNS:
        if col not in ds.items.columns:
            continue
        values = ds.items[col]
        lists = [list(v) if isinstance(v, list | tuple | np.ndarray) else [] for v in values]
        vocab = {t: n for n, t in enumerate(sorted({t for lst in lists for t in lst}))}
        if not vocab:
            continue
        rows = np.repeat(np.arange(len(lists)), [len(lst) for lst in lists])
        cols = np.fromiter((vocab[t] for lst in lists for t in lst), dtype=np.int64, count=len(rows))
        return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(lists), len(vocab)))
    return None


def _run_params(cfg: ExperimentConfig, model_cfg, seed: int, train_dir: Path, resume: bool = False) -> dict:
    """The model's parameters plus the run's seed, a training-log folder, ``resume`` and the main
    table's convention and cut-off for its validation (``eval_history``, ``eval_k``), where the model
    takes them and the config did not set them."""
    return with_run_settings(
        model_cfg.name,
        dict(model_cfg.params),
        seed=seed,
        run_dir=str(train_dir),
        resume=resume,
        eval_history=cfg.evaluation.history_items[0],
        eval_k=validation_k(model_cfg.name, cfg.evaluation.main_metric),
    )


SEED_RESULT = "result.json"
#: a run's seed count and whether each seed draws the split (checked when the run is resumed)
RUN_SHAPE = "run.json"
#: What a run folder holds at its top (a run, a report, a served model's state): ``--out`` holding
#: anything else (hidden files aside: a tool's stamp) is not a run's folder, and a run there would
#: write among someone's files.
RUN_ENTRIES = frozenset(
    {"config.yaml", "data.json", "cleaning.txt", "split", "splits", "models", "train", "results.json"}
    | {"results.md", "log.txt", RUN_SHAPE, "report.html", "serve"}
)


def refuse_strangers(
    out: Path,
    entries: Collection[str],
    what: str,
    why: str,
    prefixes: tuple[str, ...] = (),
    remedy: str = "give a new or empty folder",
) -> None:
    """Refuse an ``--out`` that is a file, or a folder holding anything a ``what`` does not write at
    its top (``entries``, names starting with one of ``prefixes``; hidden files aside: a tool's stamp):
    the ``what`` would write among someone's files."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder: give a folder for the {what}")
    found = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if strangers := [n for n in found if n not in entries and not n.startswith((".", *prefixes))]:
        raise ConfigError(
            f"--out {out} holds what a {what} does not write ({', '.join(strangers[:5])}): {why}; {remedy}"
        )


#: Held (``flock``) by the process that writes a run's or a tune's folder, for as long as it runs.
LOCK = ".clarec.lock"


@contextmanager
def folder_lock(out: Path, what: str) -> Iterator[None]:
    """Hold ``out``'s lock while a ``what`` (run, tune) writes there: a second process given the same
    folder is refused — the two would write each other's results, models and logs. The lock ends with
    the process, however it ends; the file stays (hidden, empty of meaning once released). Where the
    system has no ``fcntl`` (Windows) nothing is locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on the supported POSIX systems
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOCK, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "process"
            raise ConfigError(
                f"--out {out} is in use by another clarec {holder}: wait for it to end, or give another --out"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{what} (pid {os.getpid()})")  # who holds it, for the message above
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _seed_key(cfg: ExperimentConfig, model_cfg, seed: int, split_seeds: bool) -> dict:
    """What one seed's figures of one model depend on (the run's config with that model alone)."""
    config = cfg.model_dump(mode="json", exclude_none=True) | {"models": [model_cfg.model_dump(mode="json")]}
    return {"config": config, "seed": seed, "split_seeds": split_seeds}


def _read_seed_result(train_dir: Path, made_under: dict) -> dict | None:
    """The seed's result in ``train_dir`` when it was made under ``made_under``, else ``None``."""
    path = train_dir / SEED_RESULT
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
    except ValueError:
        return None  # half-written by a stopped run: fitted again
    return saved["result"] if _same_key(saved.get("made_under"), made_under) else None


def _same_key(saved: Any, made_under: dict) -> bool:
    """Whether a seed key saved earlier names ``made_under``; its config is read under today's
    schema (:func:`clarec.config.read_saved_config`: a setting added since counts at its default)."""
    current = json.loads(json.dumps(made_under))
    if saved == current:
        return True
    if not isinstance(saved, dict) or not {"config", "seed", "split_seeds"} <= set(saved):
        return False
    config = read_saved_config(saved["config"])
    if config is None or len(config.models) != 1:
        return False
    again = _seed_key(config, config.models[0], saved["seed"], saved["split_seeds"])
    return json.loads(json.dumps(again)) == current


def _aggregate(per_seed: list[dict]) -> dict:
    """Mean over seeds in the main fields, plus per-seed values and standard deviations."""
    if len(per_seed) == 1:
        return per_seed[0]
    out: dict[str, Any] = {}
    parts = [{part: r[part] for part in ("valid", "test")} for r in per_seed]
    out |= _mean_parts(parts)
    out["fit_seconds"] = float(np.mean([r["fit_seconds"] for r in per_seed]))
    out["std"] = _mean_parts(parts, np.std)
    # Segments (cold items, activity quartiles) averaged over the seeds that have them all.
    for key in ("segments", "valid_segments"):
        segs = [r.get(key, {}) for r in per_seed]
        names = [n for n in segs[0] if all(n in s for s in segs)]
        out[key] = {n: {k: float(np.mean([s[n][k] for s in segs])) for k in segs[0][n]} for n in names}
        out[f"{key}_std"] = {
            n: {k: float(np.std([s[n][k] for s in segs], ddof=1)) for k in segs[0][n]} for n in names
        }
    if "conventions" in per_seed[0]:
        convs = [r["conventions"] for r in per_seed]
        out["conventions"] = {c: _mean_parts([v[c] for v in convs]) for c in convs[0]}
        out["conventions_std"] = {c: _mean_parts([v[c] for v in convs], np.std) for c in convs[0]}
    out["seeds"] = [r["seed"] for r in per_seed]
    if "split_seed" in per_seed[0]:
        out["split_seeds"] = [r["split_seed"] for r in per_seed]
    for key in ("test_sample", "test_unreachable"):
        if key in per_seed[0]:
            out[key] = per_seed[0][key]
    if "eval_cost" in per_seed[0]:
        costs = [r["eval_cost"] for r in per_seed]
        out["eval_cost"] = {
            k: sum(c[k] for c in costs) if None not in [c[k] for c in costs] else None for k in costs[0]
        }
    keys = (
        "seed",
        "split_seed",
        "valid",
        "test",
        "segments",
        "valid_segments",
        "conventions",
        "fit_seconds",
        "resumed_after",
        "members_fitted_by",
        "test_sample",
        "test_ci95",
        "test_unreachable",
        "eval_cost",
        "chosen",
    )
    out["per_seed"] = [{k: r[k] for k in keys if k in r} for r in per_seed]
    return out


def _mean_parts(runs: list[dict], stat=np.mean) -> dict:
    """``stat`` over runs of each metric of each part (``{"valid": {...}, "test": {...}}``)."""
    kwargs = {"ddof": 1} if stat is np.std else {}
    return {
        part: {k: float(stat([r[part][k] for r in runs], **kwargs)) for k in runs[0][part]}
        for part in runs[0]
    }


def run_experiment(
    cfg: ExperimentConfig,
    out_dir: str | Path,
    seeds: int = 1,
    save_models: bool = True,
    progress: Callable[[str], None] | None = None,
    split_seeds: bool = False,
    resume: bool = False,
) -> dict[str, Any]:
    """Run every model of ``cfg`` (``seeds`` times each with seeds ``cfg.seed + s``) and write the
    run folder. Returns the results dictionary written to ``results.json``. ``progress`` receives a
    line as each model starts and ends (``clarec run`` prints them). With ``split_seeds`` each seed
    also draws the split (the config's seed and its split's seed become ``cfg.seed + s``), so the
    spread over seeds includes the split's; otherwise one split serves every model seed. With
    ``resume`` the torch models continue the fits an earlier run into ``out_dir`` left unfinished
    (their ``resume`` setting; finished fits are read back, not redone), and a seed whose
    ``train/<model>/seed-N/result.json`` was made under the same config, model and seed is taken from
    it without fitting (so a run's finished seeds can be carried to another machine). Without
    ``resume``, a folder that already holds a run's ``results.json`` is refused: writing over it would
    leave the earlier run's models (served by ``clarec serve``), report and store beside the new results.

    Raises:
        ConfigError: ``cfg`` lists no model (a config with only a ``pretrain`` section); ``out_dir``
            holds an earlier run and ``resume`` is off; ``out_dir`` is a file, or a folder holding
            what a run does not write (a run that stopped before its results may be run again).
    """
    if not cfg.models:
        raise ConfigError(
            "the config lists no models to run: add a 'models' section "
            "(a config with only a 'pretrain' section is for 'clarec pretrain')"
        )
    from clarec.train import distributed

    if not distributed.is_main():  # under torchrun: rank 0 writes the run folder and evaluates
        with tempfile.TemporaryDirectory(prefix="clarec-rank-") as private:
            _check_start(cfg, Path(private), seeds, split_seeds, False)
            _run(cfg, Path(private), seeds, False, lambda line: None, split_seeds, True, resume)
        return {}
    if cfg.pretrain is not None:  # said, not silently left: the models do not use it
        note = (
            "the config's 'pretrain' section is for 'clarec pretrain'; clarec run trains the models only "
            "(give a model the adapted folder as its 'encoder')"
        )
        log.warning(note)
        (progress or (lambda line: None))(f"note: {note}")
    out = Path(out_dir)
    if not resume and (out / "results.json").is_file():
        raise ConfigError(
            f"{out} holds an earlier run (results.json): continue it with --resume, or give another "
            "--out (or delete the folder): a new run there would leave the earlier run's models beside its results"
        )
    refuse_strangers(
        out,
        RUN_ENTRIES,
        "run",
        "a run writes its config, log, split, models and results there",
        remedy="move those out of the run's folder to continue it"
        if resume
        else "give a new or empty folder",
    )
    _check_start(cfg, out, seeds, split_seeds, resume)  # refused before the log is opened
    with folder_lock(out, "run"):
        return _logged_run(cfg, out, seeds, save_models, progress, split_seeds, resume)


def _logged_run(cfg, out, seeds, save_models, progress, split_seeds, resume) -> dict[str, Any]:
    """:func:`_run` with the package's log lines also written to the run's ``log.txt``."""
    handler = logging.FileHandler(out / "log.txt", mode="a" if resume else "w")  # a resumed run's log goes on
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    package = logging.getLogger("clarec")  # the run's own lines and what models report while fitting
    package.addHandler(handler)
    package.setLevel(logging.INFO)
    try:
        return _run(cfg, out, seeds, save_models, progress or (lambda line: None), split_seeds, resume=resume)
    except Exception as e:  # the run's log says how it ended, not only the screen
        log.error("run failed: %s", e)
        raise
    finally:
        package.removeHandler(handler)
        handler.close()


def _check_start(cfg: ExperimentConfig, out: Path, seeds: int, split_seeds: bool, resume: bool) -> None:
    """What refuses a run before it starts: a bad model name or parameter (before the data is read)
    and, resumed, a folder holding another run."""
    for model_cfg in cfg.models:
        create(model_cfg.name, _run_params(cfg, model_cfg, cfg.seed, out / "train" / model_cfg.key))
    if resume:
        _check_same_run(out, cfg, seeds, split_seeds)


def _check_same_run(out: Path, cfg: ExperimentConfig, seeds: int, split_seeds: bool) -> None:
    """Refuse to resume ``out`` as another run: its results, models and split would be replaced by
    (or mixed with) those of a different config, model list or seed count."""
    saved = out / "config.yaml"
    text = saved.read_text() if saved.is_file() else None
    if text is not None and not same_config(text, cfg):
        earlier = read_saved_config(text)
        now = cfg.model_dump(mode="json", exclude_none=True)
        then = earlier.model_dump(mode="json", exclude_none=True) if earlier is not None else {}
        differ = [k for k in now if now.get(k) != then.get(k)] or ["the schema"]
        raise ConfigError(
            f"{out} holds a run of another config (it differs in: {', '.join(differ)}): --resume continues "
            "the same run (same config file, --set, --models); run this one with another --out"
        )
    shape = out / RUN_SHAPE
    if shape.is_file():
        was = json.loads(shape.read_text())
        if (was.get("seeds"), was.get("split_seeds")) != (seeds, split_seeds):
            raise ConfigError(
                f"{out} holds a run of --seeds {was.get('seeds')}"
                f"{' --split-seeds' if was.get('split_seeds') else ''}: resume it with the same seeds "
                "(its results would be replaced by fewer or other seeds), or run with another --out"
            )


def _split_fingerprint(split: Split) -> tuple:
    """What tells two splits apart: each part's interactions and the cold items."""
    return (*(part.fingerprint() for part in (split.train, split.valid, split.test)), tuple(split.cold_items))


def _with_split_seed(cfg: ExperimentConfig, seed: int) -> ExperimentConfig:
    """``cfg`` with ``seed`` as its seed and its split's seed (when the split sets one itself)."""
    split = cfg.split
    if "seed" in split.params():
        split = type(split)(method=split.method, **(split.params() | {"seed": seed}))
    return cfg.model_copy(update={"seed": seed, "split": split})


def _prepare(
    cfg: ExperimentConfig, folder: Path | None, t0: float, progress, report_to: Path | None
) -> tuple[Split, dict]:
    """Load and split the data, write the split to ``folder`` (and the data report to the run folder
    ``report_to`` when given), and build one evaluator per history convention. ``folder`` ``None``
    (a rank that only trains): the split alone, nothing written, no evaluator."""
    data = prepare_data(cfg)
    if folder is None:
        return data.split, {}
    split = data.split
    log.info("data ready in %.2fs: %s", time.perf_counter() - t0, split.describe())
    progress(f"[{time.perf_counter() - t0:6.1f}s] data ready: {split.describe()}")
    if report_to is not None:
        data_info = {"split": split.describe()}
        if data.dataset is not None:
            data_info["dataset"] = data.dataset.describe()
        if data.report is not None:
            data_info["cleaning"] = data.report.to_dict()
            (report_to / "cleaning.txt").write_text(str(data.report) + "\n")
        (report_to / "data.json").write_text(json.dumps(data_info, indent=2, default=str))
    split.save(folder)
    ev = cfg.evaluation
    features = item_features(split.train)
    evaluators = {
        convention: Evaluator(
            split,
            ks=ev.ks,
            metrics=ev.metrics,
            item_features=features,
            batch_size=ev.batch_size,
            history_items=convention,
            test_input=ev.test_input,
            user_sample=ev.user_sample,
            sample_seed=ev.sample_seed,
            device=ev.device,
        )
        for convention in ev.history_items
    }
    if "masked" in evaluators:
        warn_unreachable(evaluators["masked"], ("valid", "test"), progress, t0)
    return split, evaluators


def _note_test_input(cfg: ExperimentConfig, models: dict, progress: Callable[[str], None], t0: float) -> None:
    """Say when a leave-one-out split tests models that read a history as it is from their training
    histories alone: their test item comes two steps after what they read (the validation item in
    between), not the next-item protocol, which ``test_input: train+valid`` gives."""
    exact = [k for k, m in models.items() if m.supports_histories and m.history_mode == "exact"]
    if cfg.split.method == "leave_one_out" and cfg.evaluation.test_input == "train" and exact:
        note = (
            f"{', '.join(exact)} score a history as it is, but are tested from their training histories "
            "(evaluation.test_input: train): on this leave-one-out split the validation item lies between "
            "what they read and the test item; test_input: train+valid is the next-item protocol"
        )
        log.warning(note)
        progress(f"[{time.perf_counter() - t0:6.1f}s] note: {note}")


def warn_unreachable(evaluator: Evaluator, parts, progress: Callable[[str], None], t0: float) -> None:
    """Log (and show) the targets of ``parts`` that ``evaluator``'s convention can never recommend:
    with history items masked, a log with repeat interactions has some (nothing is said otherwise)."""
    for part in parts:
        found = evaluator.unreachable(part)
        if found:
            log.warning(unreachable_note(found, part))
            progress(f"[{time.perf_counter() - t0:6.1f}s] warning: {unreachable_note(found, part)}")


def _run(
    cfg: ExperimentConfig,
    out: Path,
    seeds: int,
    save_models: bool,
    progress: Callable[[str], None],
    split_seeds: bool = False,
    train_only: bool = False,
    resume: bool = False,
) -> dict[str, Any]:
    """The run itself (its models and, resumed, its folder checked first: :func:`_check_start`);
    ``train_only`` (the other ranks of a distributed run) fits the models whose fit trains a torch
    model (``trains_torch``: torch models, blends and re-rankers of them), with rank 0 and in the same
    order (a blend's member shared with the run included), and neither evaluates nor fits the others."""
    if not train_only:
        (out / RUN_SHAPE).write_text(json.dumps({"seeds": seeds, "split_seeds": split_seeds}))
    t0 = time.perf_counter()
    main = cfg.evaluation.main_metric
    per_model: dict[str, list[dict]] = {m.key: [] for m in cfg.models}
    drawn, first_split = split_seeds, ()  # drawn: the seeds' splits differ (a split may draw nothing)
    for s in range(seeds):
        seed = cfg.seed + s
        if s == 0 or split_seeds:
            folder = out / "split" if s == 0 else out / "splits" / f"seed-{seed}"
            split, evaluators = _prepare(
                _with_split_seed(cfg, seed) if split_seeds else cfg,
                None if train_only else folder,
                t0,
                progress,
                out if s == 0 and not train_only else None,
            )
            if split_seeds and s == 0:
                first_split = _split_fingerprint(split)
            elif drawn and _split_fingerprint(split) == first_split:
                drawn = False
                same = (
                    f"--split-seeds: seed {seed} drew the split of seed {cfg.seed} ({split.method} draws "
                    "nothing at random here): the seeds vary the models only"
                )
                log.warning(same)
                progress(f"[{time.perf_counter() - t0:6.1f}s] warning: {same}")
            evaluator = next(iter(evaluators.values()), None)  # the main convention
            if s == 0:  # written once the config has proved itself (models built, data and split made)
                (out / "config.yaml").write_text(dump_config(cfg))
        models = {
            m.key: create(m.name, _run_params(cfg, m, seed, out / "train" / m.key / f"seed-{seed}", resume))
            for m in cfg.models
        }
        if s == 0 or split_seeds:  # what the data lacks, an encoder adapted on another split: refused first
            for model in models.values():
                model.check_split(split)
        if s == 0 and not train_only:
            _note_test_input(cfg, models, progress, t0)
        # a blend's member that is also a model of this run is fitted once: kept until the blend runs
        wanted = {k for m in models.values() if isinstance(m, Blend) for k in m.member_fit_keys()}
        fitted: dict[str, tuple[str, Any]] = {}
        for model_cfg in cfg.models:
            train_dir = out / "train" / model_cfg.key / f"seed-{seed}"
            made_under = _seed_key(cfg, model_cfg, seed, split_seeds)
            done = _read_seed_result(train_dir, made_under) if resume and not train_only else None
            if done is not None:
                progress(f"[{time.perf_counter() - t0:6.1f}s] {model_cfg.key} (seed {seed}): read back")
                per_model[model_cfg.key].append(done)
                continue
            model = models.pop(model_cfg.key)
            if train_only and not model.trains_torch():
                continue
            log.info("fitting %s (seed %d): %r", model_cfg.key, seed, model)
            progress(f"[{time.perf_counter() - t0:6.1f}s] {model_cfg.key} (seed {seed}): fitting")
            taken = {}
            if isinstance(model, Blend):
                taken = {i: fitted[k] for i, k in enumerate(model.member_fit_keys()) if k in fitted}
                model.fitted_members = {i: fit for i, (_, fit) in taken.items()}
            t = time.perf_counter()
            model.fit(split.train, valid=split.valid)
            fit_seconds = time.perf_counter() - t
            key = fit_key(model_cfg.name, model.get_params())
            if key in wanted:
                fitted[key] = (model_cfg.key, model)
            if train_only:
                continue
            resumed = getattr(getattr(model, "history_", None), "resumed_after", [])
            if resumed:  # the epochs an earlier process trained count too (their set-up does not)
                fit_seconds += sum(model.history_.seconds[: resumed[-1]])
                epochs = len(model.history_.epochs)
                progress(
                    f"[{time.perf_counter() - t0:6.1f}s] {model_cfg.key} (seed {seed}): resumed after epoch "
                    f"{resumed[-1]}"
                    + (f", {epochs} in all" if epochs > resumed[-1] else ", already finished")
                )
            reset_cost = getattr(model, "reset_cost", None)  # models that count inference cost (LLMs)
            if reset_cost is not None:
                reset_cost()
            valid_res = evaluator.evaluate(model, part="valid")
            test_res = evaluator.evaluate(model, part="test")
            log.info(
                "%s seed %d: fit %.2fs, test %s",
                model_cfg.key,
                seed,
                fit_seconds,
                {k: round(v, 4) for k, v in test_res.metrics.items() if k.startswith(("ndcg", "recall"))},
            )
            progress(
                f"[{time.perf_counter() - t0:6.1f}s] {model_cfg.key} (seed {seed}): fit {fit_seconds:.1f}s, "
                f"valid {main} {valid_res.metrics.get(main, float('nan')):.4f}"
            )
            result = {
                "seed": seed,
                "valid": valid_res.metrics,
                "test": test_res.metrics,
                "segments": test_res.segments,
                "valid_segments": valid_res.segments,
                "fit_seconds": fit_seconds,
                "eval_seconds": test_res.seconds,
            }
            if split_seeds:
                result["split_seed"] = seed
            if resumed:
                result["resumed_after"] = list(resumed)
            if taken:  # their fit seconds are counted in their own models' rows, not here
                result["members_fitted_by"] = {str(i): key for i, (key, _) in taken.items()}
            if reset_cost is not None and model.cost_:
                result["eval_cost"] = dict(model.cost_)
            if getattr(model, "chosen_", None):  # what the fit chose on validation (a blend's weights)
                result["chosen"] = model.chosen_
            if test_res.sample:
                result |= {"test_sample": test_res.sample, "test_ci95": test_res.ci95}
            other = {
                convention: {part: e.evaluate(model, part=part) for part in ("valid", "test")}
                for convention, e in evaluators.items()
                if e is not evaluator
            }
            if other:
                result["conventions"] = {c: {p: r.metrics for p, r in rs.items()} for c, rs in other.items()}
            # targets masked away (repeat interactions), whichever table masks them
            masked = test_res if evaluator.history_items == "masked" else other.get("masked", {}).get("test")
            if masked is not None and masked.unreachable:
                result["test_unreachable"] = masked.unreachable
            per_model[model_cfg.key].append(result)
            if save_models and s == 0:
                model.save(out / "models" / model_cfg.key)
            train_dir.mkdir(parents=True, exist_ok=True)
            (train_dir / SEED_RESULT).write_text(json.dumps({"made_under": made_under, "result": result}))
    if train_only:
        return {}
    if split_seeds and not drawn:  # said as it is: one split, model seeds
        for runs in per_model.values():
            for r in runs:
                r.pop("split_seed", None)
    # the convention of the main figures, named in every result (the others are under `conventions`)
    protocol = {"history_items": cfg.evaluation.history_items[0], "test_input": cfg.evaluation.test_input}
    results = {key: _aggregate(runs) | protocol for key, runs in per_model.items()}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(results_table(results, cfg, command_note=None))
    log.info("done in %.1fs", time.perf_counter() - t0)
    return results
