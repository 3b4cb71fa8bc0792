#!/usr/bin/env bash
# Install RecBole 1.2.1 into benchmarks/peers/.venv-recbole (nothing is committed).
#
# Order matters: torch is installed first and pinned (CPU build, 2.13.0, the same as clarec's), so
# that recbole's unpinned `torch>=1.10.0` requirement is already met; an unpinned torch can pull a
# multi-GB CUDA build. Pins found by running recbole_run.py (BPR and LightGCN):
#   numpy<2        recbole 1.2.1's Config does `np.float = np.float_` (removed in NumPy 2)
#   scipy 1.10.1   LightGCN/SGL/NGCF build the adjacency with `dok_matrix._update` (gone in 1.12)
#   pandas 2.2.3, scikit-learn 1.5.2: releases that support NumPy 1.26
# SimGCL / XSimGCL are in recbole-gnn, which is not on PyPI (and needs torch_geometric plus
# compiled torch_sparse), so only RecBole core models are covered: BPR, LightGCN, SGL, NGCF.
#
# Usage: benchmarks/peers/setup_recbole.sh   (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv-recbole"
PYTHON="${PYTHON:-python3}"
CHECK='import numpy, scipy, torch, recbole; from recbole.config import Config; print("recbole", recbole.__version__, "torch", torch.__version__, "numpy", numpy.__version__, "scipy", scipy.__version__)'

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "$CHECK" 2>/dev/null; then
    echo "RecBole already installed in $VENV"
    exit 0
fi

"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# On the project's machines pip's configuration (find-links) resolves this pin to the local
# 2.13.0+cpu wheel, as for clarec's own venv. Elsewhere point pip at a CPU wheel index first
# (PIP_EXTRA_INDEX_URL), since PyPI's default Linux torch wheel is the CUDA build.
"$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
"$VENV/bin/python" -m pip install --quiet \
    "recbole==1.2.1" "torch==2.13.0" \
    "numpy==1.26.4" "scipy==1.10.1" "pandas==2.2.3" "scikit-learn==1.5.2"
"$VENV/bin/python" -m pip check
"$VENV/bin/python" -c "$CHECK"
