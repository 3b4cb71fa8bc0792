"""``clarec data ...``: list, describe, download and import public data sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from clarec.errors import ClarecError

data_app = typer.Typer(help="Public data sets: list, info, fetch, import.", no_args_is_help=True)

RootOpt = Annotated[
    Path | None, typer.Option("--root", help="Data root (default: $CLAREC_DATA or ~/.cache/clarec/datasets).")
]


def _fail(e: ClarecError) -> None:
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(1)


@data_app.command("list")
def list_cmd(root: RootOpt = None) -> None:
    """List registered data sets and whether each is installed under the data root."""
    from clarec.data.catalogue import dataset_info, list_datasets

    for name in list_datasets():
        info = dataset_info(name, root)
        mark = "installed" if info["installed"] else "-"
        typer.echo(f"{name:36s} {mark:10s} {info['description']}")


@data_app.command("info")
def info_cmd(name: str, root: RootOpt = None) -> None:
    """Show a data set's files, URLs, checksums, loader options and licence (JSON)."""
    from clarec.data.catalogue import dataset_info

    try:
        typer.echo(json.dumps(dataset_info(name, root), indent=2))
    except ClarecError as e:
        _fail(e)


@data_app.command("fetch")
def fetch_cmd(
    name: str,
    root: RootOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Download even if the files are present.")] = False,
) -> None:
    """Download a data set into the data root (checksums verified where known)."""
    from clarec.data.download import fetch

    try:
        folder = fetch(name, root=root, force=force)
    except ClarecError as e:
        _fail(e)
    typer.echo(f"{name}: {folder}")


@data_app.command("import")
def import_cmd(name: str, src_dir: Path, root: RootOpt = None) -> None:
    """Copy a local copy of a data set (folder or official zip) into the data root layout."""
    from clarec.data.download import import_local

    try:
        folder = import_local(name, src_dir, root=root)
    except ClarecError as e:
        _fail(e)
    typer.echo(f"{name}: {folder}")
