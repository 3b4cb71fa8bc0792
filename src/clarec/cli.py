"""The ``clarec`` command. Thin: it parses arguments and calls the library.

Errors a user can cause (bad file, bad config, unknown id) end in one ``error: ...`` line on
stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import typer

from clarec.errors import ClarecError

#: set by ``clarec run --nproc`` for the processes torchrun starts: the command the user typed
_COMMAND_ENV = "CLAREC_COMMAND"

app = typer.Typer(
    help="clarec: contrastive language-aligned recommendation.", no_args_is_help=True, add_completion=False
)


def _mount_data_app() -> None:
    from clarec.cli_data import data_app

    app.add_typer(data_app, name="data", help="List, describe, fetch and import data sets.")


_mount_data_app()


def _ks(first: list[int], extra: list[str]) -> list[int]:
    """``--k 10 20`` arrives as k=[10] plus extra args ['20']; accept both forms."""
    ks = list(first)
    for tok in extra:
        try:
            ks.append(int(tok))
        except ValueError:
            raise ClarecError(f"unexpected argument {tok!r} (K values must be integers)") from None
    if any(k <= 0 for k in ks):
        raise ClarecError("K values must be positive")
    return sorted(set(ks))


def _models(models: str | None, extra: list[str]) -> str | None:
    """``--models a,b``, or ``--models a b`` (``b`` arrives as an extra argument), as ``a,b``;
    extra arguments without ``--models`` are an error."""
    if extra and models is None:
        raise ClarecError(f"unexpected argument(s): {' '.join(extra)}")
    names = [m.strip() for part in [models or "", *extra] for m in part.split(",") if m.strip()]
    return ",".join(names) or None


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def run(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="Experiment YAML file."),
    out: Path | None = typer.Option(None, "--out", help="Run folder (default runs/<name>-<time>)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config value: key.path=value (YAML)."),
    seeds: int = typer.Option(1, "--seeds", min=1, help="Repeat every model with seeds seed, seed+1, ..."),
    models: str | None = typer.Option(None, "--models", help="Run only these models (by label: a,b or a b)."),
    split_seeds: bool = typer.Option(False, "--split-seeds", help="Each seed also draws the split."),
    nproc: int = typer.Option(
        1, "--nproc", min=1, help="Train the torch models on N processes (torchrun, DistributedDataParallel)."
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue the torch models' unfinished fits in --out from their last epoch; finished seeds are read back.",
    ),
) -> None:
    """Run an experiment: data → split → fit each model → evaluate → comparison table."""
    from clarec.config import load_config
    from clarec.experiment.report import results_table
    from clarec.experiment.runner import run_experiment
    from clarec.train import distributed

    models = _models(models, ctx.args)
    cfg = load_config(config, set_)
    if models:
        cfg = cfg.only(models.split(","))
    if resume and out is None:
        raise ClarecError("--resume continues a run folder: give it with --out")
    if resume and nproc > 1:  # found at the first torch fit otherwise, after the others had run
        raise ClarecError("--resume runs in one process, not with --nproc")
    if out is None:
        out = Path("runs") / f"{cfg.name}-{datetime.now():%Y%m%d-%H%M%S}"
    if (out / "config.yaml").is_file() and (out / "config.yaml").resolve() == Path(config).resolve():
        raise ClarecError(
            f"--out {out} holds the config file itself, which a run writes over: give another --out"
        )
    if nproc > 1:
        argv = ["run", str(config), "--out", str(out), "--seeds", str(seeds)]
        argv += [a for s in set_ for a in ("--set", s)]
        argv += ["--models", models] if models else []
        argv += ["--split-seeds"] if split_seeds else []
        argv += ["--resume"] if resume else []
        _torchrun(argv, nproc)
    distributed.init_from_env()
    results = run_experiment(
        cfg,
        out,
        seeds=seeds,
        progress=lambda line: typer.echo(line, err=True),
        split_seeds=split_seeds,
        resume=resume,
    )
    if not distributed.is_main():
        return
    if (out / "cleaning.txt").is_file():
        typer.echo("Data cleaning and filters:\n" + (out / "cleaning.txt").read_text())
    command = os.environ.get(_COMMAND_ENV) or "clarec " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    md = results_table(results, cfg, command_note=command)
    (out / "results.md").write_text(md)
    typer.echo(md)
    typer.echo(f"run folder: {out}")


def _torchrun(argv: list[str], nproc: int) -> None:
    """Start ``clarec ARGV`` on ``nproc`` local processes under torchrun and exit with its status."""
    from clarec.train import distributed

    if distributed.launched():
        raise ClarecError("--nproc starts torchrun itself; under torchrun, leave it out")
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    typed = "clarec " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    env = os.environ | {_COMMAND_ENV: typed}  # rank 0 names the command the user typed
    raise typer.Exit(subprocess.call([*launch, "-m", "clarec", *argv], env=env))


@app.command(context_settings={"allow_extra_args": True})
def evaluate(
    ctx: typer.Context,
    split: Path = typer.Option(..., "--split", help="Split folder (train.tsv, valid.tsv, test.tsv)."),
    recs: Path = typer.Option(..., "--recs", help="TSV user_id<TAB>item_id<TAB>rank (.gz: gzipped)."),
    k: list[int] = typer.Option([10, 20], "--k", help="Cut-offs, e.g. --k 10 20."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the metrics as JSON here."),
    history_items: str = typer.Option(
        "kept", "--history-items", help="kept: lists as given; masked: remove train+valid items first."
    ),
) -> None:
    """Score an external recommendation file against a split folder with clarec's metrics."""
    from clarec.evaluate.external import evaluate_recommendation_file

    ks = _ks(k, ctx.args)
    if json_out is not None and (json_out.is_dir() or json_out.resolve() == recs.resolve()):
        raise ClarecError(f"--json {json_out}: give a new file's path (not a folder, not the --recs file)")
    metrics = evaluate_recommendation_file(split, recs, ks=ks, history_items=history_items)
    # a metric with no list to average (novelty when no evaluated user got a recommendation) is NaN,
    # which JSON has no word for: null
    metrics = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in metrics.items()}
    text = json.dumps({"history_items": history_items, **metrics}, indent=2)
    if json_out is not None:
        try:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(text)
        except OSError as e:
            raise ClarecError(f"cannot write --json {json_out}: {e.strerror or e}") from None
    typer.echo(text)


@app.command("tune", context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def tune_cmd(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="Experiment YAML file (models with a 'search' space)."),
    out: Path | None = typer.Option(None, "--out", help="Run folder (default runs/<name>-tune-<time>)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config value: key.path=value (YAML)."),
    models: str | None = typer.Option(
        None, "--models", help="Tune only these models (by label: a,b or a b)."
    ),
    nproc: int = typer.Option(
        1, "--nproc", min=1, help="Train the torch models on N processes (torchrun, DistributedDataParallel)."
    ),
) -> None:
    """Search each model's settings on validation (same trials for every model), then run the winners
    on several seeds; resumable (studies in OUT/tune.db)."""
    from clarec.config import load_config
    from clarec.experiment.report import results_table
    from clarec.experiment.tune import tune
    from clarec.train import distributed

    models = _models(models, ctx.args)
    cfg = load_config(config, set_)
    if models:
        cfg = cfg.only(models.split(","))
    if out is None:
        out = Path("runs") / f"{cfg.name}-tune-{datetime.now():%Y%m%d-%H%M%S}"
    if nproc > 1:
        argv = ["tune", str(config), "--out", str(out), *(a for s in set_ for a in ("--set", s))]
        _torchrun(argv + (["--models", models] if models else []), nproc)
    distributed.init_from_env()
    record = tune(cfg, out, progress=lambda line: typer.echo(line, err=True))
    if not distributed.is_main():
        return
    results = json.loads((out / "final" / "results.json").read_text())
    typer.echo(json.dumps({k: v["best_params"] for k, v in record["models"].items()}, indent=2))
    typer.echo(results_table(results, cfg))
    typer.echo(f"run folder: {out}")


@app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(..., help="Run folder written by clarec run."),
    out: Path | None = typer.Option(None, "--out", help="HTML file (default RUN_DIR/report.html)."),
) -> None:
    """Write one self-contained HTML page of a run: protocol, metrics with significance, figures."""
    from clarec.experiment.html_report import write_report

    typer.echo(str(write_report(run_dir, out)))


@app.command("split")
def split_cmd(
    config: Path = typer.Argument(..., help="Experiment YAML file (its data and split sections)."),
    out: Path = typer.Argument(..., help="Folder to write train.tsv, valid.tsv, test.tsv, items.tsv."),
    set_: list[str] = typer.Option([], "--set", help="Override a config value: key.path=value (YAML)."),
) -> None:
    """Write a config's split as a predefined-split folder, for other toolkits to use."""
    from clarec.config import load_config
    from clarec.experiment.runner import prepare_data

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ClarecError(f"{out} exists and is not an empty folder: give a new folder for the split")
    cfg = load_config(config, set_)
    data = prepare_data(cfg)
    data.split.save(out)
    typer.echo(json.dumps(data.split.describe()))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def pretrain(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="Experiment YAML file with a 'pretrain' section."),
    out: Path | None = typer.Option(
        None, "--out", help="Output folder (default runs/<name>-pretrain-<time>)."
    ),
    set_: list[str] = typer.Option([], "--set", help="Override a config value: key.path=value (YAML)."),
) -> None:
    """Adapt the text encoder to the training items (SimCSE / BYOL); writes OUT/encoder and OUT/pretrain.json."""
    from clarec.config import load_config
    from clarec.errors import ConfigError
    from clarec.experiment.pretrain import ENCODER_FOLDER, run_pretraining

    if ctx.args:
        raise ClarecError(f"unexpected argument(s): {' '.join(ctx.args)}")
    cfg = load_config(config, set_)
    if cfg.pretrain is None:
        raise ConfigError(f"{config}: no 'pretrain' section")
    if out is None:
        out = Path("runs") / f"{cfg.name}-pretrain-{datetime.now():%Y%m%d-%H%M%S}"
    report = run_pretraining(cfg, out)  # only the training split trains; valid serves the diagnostics
    typer.echo(
        f"{report.method}: {report.steps} steps over {report.n_examples} examples in {report.seconds:.1f} s; "
        f"loss {report.step_losses[0]:.4f} -> {report.step_losses[-1]:.4f}"
    )
    typer.echo(report.table())
    typer.echo(f"adapted encoder: {out / ENCODER_FOLDER}")


@app.command("recommend")
def recommend_cmd(
    run_dir: Path = typer.Argument(..., help="Run folder written by 'clarec run' (split/ and models/)."),
    out: Path = typer.Option(
        ..., "--out", help="TSV to write (user_id, item_id, rank, score; .gz: gzipped)."
    ),
    model: str | None = typer.Option(
        None, "--model", help="Model label under models/ (default: the run's best on validation)."
    ),
    k: int = typer.Option(20, "--k", min=1, help="Items per user."),
    part: str = typer.Option(
        "test", "--part", help="test or valid: the input and exclusions of the run's figures for that part."
    ),
    users: Path | None = typer.Option(
        None, "--users", help="File of user ids, one a line (default: every user of the split)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out file."),
) -> None:
    """Write a run's ranked lists to a file, as its evaluation ranked them (clarec evaluate reads it)."""
    from clarec.experiment.lists import write_run_lists

    user_ids = None
    if users is not None:
        try:
            user_ids = users.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ClarecError(f"cannot read the user file {users}: {e}") from None
    done = write_run_lists(run_dir, out, label=model, k=k, part=part, user_ids=user_ids, force=force)
    typer.echo(
        f"{done['lines']} lines for {done['users']} users: model {done['model']!r}, the {part} lists "
        f"(history items {done['history_items']}, "
        + (f"test input {done['test_input']}" if part == "test" else "input train")
        + f") → {out}",
        err=True,
    )


@app.command("serve")
def serve_cmd(
    run_dir: Path = typer.Argument(..., help="Run folder written by 'clarec run' (split/ and models/)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    db: str | None = typer.Option(
        None,
        "--db",
        help="Event store URL: sqlite:///PATH (default RUN_DIR/serve/events.db) or postgresql://...",
    ),
    model: str | None = typer.Option(
        None, "--model", help="Model label under models/ (default: the run's best)."
    ),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
    threads: int = typer.Option(
        1, "--threads", min=0, help="BLAS and torch threads (0: the libraries' defaults)."
    ),
    ranking_cache: int = typer.Option(
        50_000, "--ranking-cache", min=0, help="Ranked lists kept until a user's next event (0: none)."
    ),
    explain_words: str | None = typer.Option(
        None,
        "--explain-words",
        help="Sentences in explanations (?words=true): 'bundled', a model folder / GGUF file, or an endpoint URL.",
    ),
    explain_words_model: str = typer.Option(
        "default", "--explain-words-model", help="The model name sent to an --explain-words endpoint."
    ),
) -> None:
    """Serve a run's model over HTTP: recommendations, live events, new items, a demo page at /."""
    from clarec.serve.app import serve

    serve(
        run_dir,
        host=host,
        port=port,
        db=db,
        model=model,
        log_level=log_level,
        threads=threads or None,
        ranking_cache=ranking_cache,
        explain_words=explain_words,
        explain_words_model=explain_words_model,
    )


@app.command("profile")
def profile_cmd(
    config: Path = typer.Argument(..., help="Experiment YAML file (its data and split)."),
    out: Path = typer.Option(..., "--out", help="Folder for items.tsv, users.tsv and profiles.json."),
    model: str | None = typer.Option(
        None, "--model", help="Model folder or GGUF file (default: the bundled SmolLM2)."
    ),
    endpoint: str | None = typer.Option(
        None, "--endpoint", help="An OpenAI-compatible API base URL instead."
    ),
    endpoint_model: str = typer.Option(
        "default", "--endpoint-model", help="Model name sent to the endpoint."
    ),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", min=1),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    n_recent: int = typer.Option(
        20, "--n-recent", min=0, help="Most recent training items in a user's prompt."
    ),
    set_: list[str] = typer.Option([], "--set", help="Override a config value: key.path=value (YAML)."),
) -> None:
    """Write a profile of every item (from its text) and every user (from their training items only)
    with a generative model; cached, so a re-run generates nothing. Read them with data.profiles."""
    from clarec.config import load_config
    from clarec.experiment.runner import prepare_data
    from clarec.llm import EndpointGenerator, LocalGenerator
    from clarec.llm.profiles import write_profiles

    cfg = load_config(config, set_)
    if cfg.data and "profiles" in cfg.data:
        raise ClarecError("the config already reads profiles (data.profiles); profile a config without them")
    split = prepare_data(cfg).split
    common = {"max_new_tokens": max_new_tokens, "batch_size": batch_size, "progress": sys.stderr.isatty()}
    if endpoint:
        generator = EndpointGenerator(endpoint, endpoint_model, **common)
    else:
        generator = LocalGenerator(model, **common)
    meta = write_profiles(
        split, generator, out, n_recent=n_recent, progress=lambda line: typer.echo(line, err=True)
    )
    typer.echo(json.dumps(meta, indent=2))


@app.command("llm-serve")
def llm_serve_cmd(
    model: str | None = typer.Option(
        None, "--model", help="Model folder or GGUF file (default: the bundled SmolLM2)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="Port to listen on."),
    name: str = typer.Option("clarec", "--name", help="Model name the endpoint reports."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="Torch threads."),
    queue: int = typer.Option(
        16, "--queue", min=0, help="Requests that may wait for the one being answered; more get 503."
    ),
) -> None:
    """Serve a generative model as an OpenAI-compatible chat endpoint (/v1/chat/completions)."""
    import uvicorn

    from clarec.llm import LocalGenerator, openai_app

    generator = LocalGenerator(model, num_threads=threads)
    app_ = openai_app(generator, name=name, queue=queue)
    uvicorn.run(app_, host=host, port=port, log_level="warning")


@app.command("models")
def models_cmd(
    name: str | None = typer.Argument(None, help="A model: its parameters with defaults and ranges."),
) -> None:
    """List the available models and their parameters (with NAME: that model's, in detail)."""
    from clarec.models.registry import available_models, get_model_class

    if name is None:
        for each in available_models():
            typer.echo(f"{each:12s} {', '.join(get_model_class(each).param_names())}")
        return
    cls = get_model_class(name)
    typer.echo(f"{name}: {(cls.__doc__ or '').strip().splitlines()[0] if cls.__doc__ else ''}")
    for pname, spec in cls.params.items():
        typer.echo(f"  {pname:22s} {spec.describe()}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    try:
        code = app(args=argv, standalone_mode=False)  # a command's typer.Exit(n) comes back as n
    except ClarecError as e:
        typer.echo(f"error: {e}", err=True)
        return 2
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except typer.Exit as e:
        return e.exit_code
    except typer.TyperException as e:  # usage errors: typer prints usage and the reason
        if hasattr(e, "show"):
            e.show()
        else:
            typer.echo(f"error: {e}", err=True)
        return e.exit_code
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    return code if isinstance(code, int) else 0


def console() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console()
