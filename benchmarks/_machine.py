"""What a benchmark result says about the machine it ran on and how it was run (shared by the
benchmark scripts): machine facts, the command line and the data root, without machine paths."""

from __future__ import annotations

import os
import platform
import shlex
import sys
import tempfile
from pathlib import Path


def machine_info() -> dict:
    """CPU model, cores, memory, versions and torch threads."""
    import numpy as np
    import torch

    cpu, mem_kib = platform.processor() or platform.machine(), 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "sched_nproc": len(os.sched_getaffinity(0)),
        "ram_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def machine_line() -> str:
    """The same as one line for a markdown result."""
    m = machine_info()
    return (
        f"{m['cpu']}, {m['nproc']} cores, {m['ram_gib']} GiB RAM, Python {m['python']}, "
        f"torch {m['torch']} ({m['torch_threads']} threads)"
    )


REPO = Path(__file__).resolve().parent.parent


def shown_path(path: str | os.PathLike) -> str:
    """A path as a committed result may name it: relative to the repository root (where the benchmark
    commands run) when it is inside the repository or beside it (``runs/x``, ``../shared/datasets``), ``$TMPDIR/...`` under the system's
    temporary folder, else ``<path>/NAME`` — never an absolute path of this machine."""
    p = Path(path).expanduser()
    if not p.is_absolute():
        return str(path)
    p = p.resolve()
    tmp = Path(tempfile.gettempdir()).resolve()
    if p.is_relative_to(tmp):
        return "$TMPDIR/" + str(p.relative_to(tmp))
    if p.is_relative_to(REPO.parent):
        return os.path.relpath(p, REPO)
    return f"<path>/{p.name}"


def command_line(argv: list[str] | None = None) -> str:
    """``python SCRIPT ARGS`` as typed, every absolute path shown with :func:`shown_path`."""
    args = sys.argv if argv is None else argv
    shown = []
    for a in args:
        key, eq, value = a.partition("=") if a.startswith("--") and "=" in a else ("", "", a)
        if value.startswith(("/", "~")):
            value = shown_path(value)
        shown.append(shlex.quote(key + eq + value))
    return "python " + " ".join(shown)


def data_root() -> str:
    """The data root the run read (``$CLAREC_DATA``), as :func:`shown_path` names it."""
    root = os.environ.get("CLAREC_DATA")
    return "~/.cache/clarec/datasets" if root is None else shown_path(root)


def write_result(
    path: str | os.PathLike, lines: list[str], seconds: float, data: bool = True, note: str = ""
) -> None:
    """Append the command, the data root (``data``) and the machine line (with ``note``: how it ran,
    or the run's ``seconds``) to ``lines``, write them to the result file ``path`` and print them."""
    lines = [*lines, "", f"Command: `{command_line()}`  "]
    if data:
        lines.append(f"Data root: `$CLAREC_DATA` = `{data_root()}`  ")
    lines += [f"Machine: {machine_line()}; {note or f'{seconds:.0f} s'}.", ""]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines))
    print("\n".join(lines))
