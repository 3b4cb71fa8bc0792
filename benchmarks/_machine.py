"""What a benchmark result says about the machine it ran on (shared by the benchmark scripts)."""

from __future__ import annotations

import os
import platform
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
