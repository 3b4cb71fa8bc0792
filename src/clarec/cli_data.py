"""``clarec data ...``: list, describe, download and import public data sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

data_app = typer.Typer(help="Public data sets: list, info, fetch, import.", no_args_is_help=True)

RootOpt = Annotated[
    Path | None, typer.Option("--root", help="Data root (default: $CLAREC_DATA or ~/.cache/clarec/datasets).")
]


@data_app.command("list")
def list_cmd(root: RootOpt = None) -> None:
    """List registered data sets and whether each is installed under the data root."""
    from clarec.data.catalogue import AMAZON2018_CATEGORIES, dataset_info, list_datasets

    names = list_datasets()
    for name in names:
        info = dataset_info(name, root)
        mark = "installed" if info["installed"] else "-"
        typer.echo(f"{name:36s} {mark:10s} {info['description']}")
    more = [c for c in AMAZON2018_CATEGORIES if f"amazon2018-{c.lower().replace('_', '-')}" not in names]
    if more:  # every Amazon 2018 category works by name; the list above registers a few
        typer.echo(
            f"Also amazon2018-<category> for the other {len(more)} categories: "
            + ", ".join(c.lower().replace("_", "-") for c in more)
        )


@data_app.command("info")
def info_cmd(name: str, root: RootOpt = None) -> None:
    """Show a data set's files, URLs, checksums, loader options and licence (JSON)."""
    from clarec.data.catalogue import dataset_info

    typer.echo(json.dumps(dataset_info(name, root), indent=2))


@data_app.command("fetch")
def fetch_cmd(
    name: str,
    root: RootOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Download even if the files are present.")] = False,
) -> None:
    """Download a data set into the data root (checksums verified where known)."""
    from clarec.data.download import fetch

    folder = fetch(name, root=root, force=force)
    typer.echo(f"{name}: {folder}")


@data_app.command("import")
def import_cmd(
    name: str,
    src_dir: Path,
    root: RootOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the files if already installed.")] = False,
) -> None:
    """Copy a local copy of a data set (folder or official zip) into the data root layout."""
    from clarec.data.catalogue import dataset_info
    from clarec.data.download import import_local

    installed = dataset_info(name, root)["installed"]
    folder = import_local(name, src_dir, root=root, force=force)
    note = " (already installed: nothing copied; --force replaces it)" if installed and not force else ""
    typer.echo(f"{name}: {folder}{note}")


@data_app.command("synth")
def synth_cmd(
    shape: Annotated[
        str, typer.Argument(help="Shape of a public data set: ml-20m, ml-25m, ml-32m or amazon2023.")
    ],
    out: Annotated[Path, typer.Option("--out", help="New folder to write the files into.")],
    scale: Annotated[
        float, typer.Option("--scale", help="Share of the users (items: its square root), 0 < s <= 1.")
    ] = 1.0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Write a synthetic data set with a public set's shape (users, items, interactions, long tail,
    item text) in that set's own file layout, for scale tests: read it with --root/name or as a
    folder, e.g. `clarec data synth ml-20m --out data/ml-20m` then `data: {name: ml-20m}` with
    CLAREC_DATA=data. Not real data."""
    from clarec.data.synth import synthesize

    info = synthesize(shape, out, scale=scale, seed=seed, progress=typer.echo)
    typer.echo(json.dumps(info))
