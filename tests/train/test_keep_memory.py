"""keep_freed_memory: every fit asks glibc to keep large freed blocks for reuse (so steps that build
batch × catalogue matrices do not pay fresh page faults each time); CLAREC_KEEP_MEMORY=0 opts out.
Process-wide, so each case runs in its own interpreter."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's allocator only"
)

# RSS (MiB) while a 200 MB array lives and after it is freed; then a tiny fit and the flag's state
SCRIPT = """
import numpy as np, os, pandas as pd
from clarec.train import loop
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
if {ask}:
    print("asked", loop.keep_freed_memory())
a = np.ones(25_000_000)
held = rss()
del a
print("freed", held - rss())
from clarec.data.dataset import Dataset
from clarec.models.registry import create
rows = [(u, i) for u in range(30) for i in range(40) if (u * 7 + i) % 3 == 0]
data = Dataset.from_frame(pd.DataFrame(rows, columns=["user_id", "item_id"]))
create("bpr", {{"epochs": 1, "progress": False}}).fit(data)
print("after fit", loop._kept)
"""


def _run(ask: bool, env_value: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CLAREC_KEEP_MEMORY"}
    if env_value is not None:
        env["CLAREC_KEEP_MEMORY"] = env_value
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(ask=ask)], env=env, capture_output=True, text=True, check=True
    ).stdout
    return dict(line.rsplit(" ", 1) for line in out.strip().splitlines())


def test_freed_blocks_are_kept_and_every_fit_asks():
    kept = _run(ask=True, env_value=None)
    assert kept["asked"] == "True" and kept["after fit"] == "True"
    assert float(kept["freed"]) < 20  # the 190 MiB block stays in the process for reuse
    default = _run(ask=False, env_value=None)
    assert float(default["freed"]) > 150  # glibc as it comes: unmapped at once
    assert default["after fit"] == "True"  # the fit asked


def test_opt_out():
    out = _run(ask=True, env_value="0")
    assert out["asked"] == "False" and out["after fit"] == "False"
    assert float(out["freed"]) > 150
