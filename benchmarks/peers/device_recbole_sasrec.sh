#!/usr/bin/env bash
# RecBole 1.2.1's SASRec (CE) on Beauty's next-item split, seeds 2024-2026 at once, on a lent GPU
# machine (the `device` tool of a session that has one): on one CPU core a seed takes 4-7 hours.
# The settings are recbole_sasrec.py's (its `recbole()`): d=64, 2 layers, 2 heads, max length 50,
# dropout 0.5, Adam 1e-3, batch 256, early stopping after 10 epochs without a better validation
# NDCG@20. Nothing can be installed there, and its image has NumPy 2 (recbole_run.py gives RecBole
# the NumPy 1 aliases it sets) and maybe pandas 3 (RecBole's id remapping fails under it), so
# RecBole and what it needs beyond that image travel as wheels.
#
# Here, once, in the repository root (both folders stay out of git):
#   echo /.whl/ >> .git/info/exclude; echo /.peer-split/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#       recbole==1.2.1 colorlog==4.7.2 texttable==1.7.0 thop==0.1.1.post2209072238 pandas==2.2.3 \
#       pytz==2025.2 tzdata==2025.2
#   CLAREC_DATA=../shared/datasets .venv/bin/clarec split configs/beauty-seq.yaml .peer-split
# There (device tool, `carry` .whl and .peer-split; a second call adds the folder the first one
# returned, e.g. .peer-back, to continue unfinished seeds from their last epoch):
#   bash benchmarks/peers/device_recbole_sasrec.sh .peer-split "$OUT" [.peer-back]
# Back here, each finished seed's folder (recs.tsv.gz, recbole.json) goes to
# runs/peers-recbole-sasrec/recbole-<seed>/ as it is, and
#   python benchmarks/peers/recbole_sasrec.py --phases accuracy ...   (see its docstring)
# scores them with clarec's evaluator on the split it makes from the same config (leave-one-out has
# no randomness: the same folder as .peer-split); a seed with both files there is not trained again.
# It writes each scored seed's record under benchmarks/results/peers-recbole-sasrec/: commit those.
set -euo pipefail
SPLIT=${1:?split folder}
OUT=${2:?output folder}
BACK=${3:-}
LIMIT=${LIMIT:-540}  # seconds per seed process, inside the device tool's 600 s per command
WHEELS=${WHEELS:-.whl}
DEVICE=${DEVICE:-cuda}  # WHEELS=<py3.11 wheels> DEVICE=cpu: a dry run on a machine without a GPU
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$(mktemp -d)"  # RecBole and the runs; a second call continues in a new one

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" "$WHEELS"/*.whl
export PYTHONPATH="$WORK/site"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true

for seed in 2024 2025 2026; do
    run="$WORK/recbole-$seed"
    mkdir -p "$run/saved"
    if [ -n "$BACK" ] && [ -f "$BACK/recbole-$seed/last.pth" ]; then
        # a stopped run's state names its best checkpoint, looked for under saved/
        cp "$BACK/recbole-$seed/last.pth" "$run/"
        find "$BACK/recbole-$seed" -name 'SASRec-*.pth' -exec cp {} "$run/saved/" \;
    fi
    timeout "$LIMIT" python3 "$HERE/recbole_run.py" --split "$SPLIT" --model SASRec --out "$run" \
        --epochs 200 --train-batch-size 256 --learning-rate 0.001 --stopping-step 10 --seed "$seed" \
        --threads 4 --k 20 --resume --device "$DEVICE" >"$run.log" 2>&1 &
done
wait || true

mkdir -p "$OUT"
for seed in 2024 2025 2026; do
    run="$WORK/recbole-$seed"
    mkdir -p "$OUT/recbole-$seed"
    if [ -f "$run/recbole.json" ] && [ -f "$run/recs.tsv" ]; then
        gzip -c "$run/recs.tsv" >"$OUT/recbole-$seed/recs.tsv.gz"
        cp "$run/recbole.json" "$OUT/recbole-$seed/"
        echo "seed $seed: finished"
    elif [ -f "$run/last.pth" ]; then  # unfinished: what a second call needs to go on
        cp "$run/last.pth" "$run/saved/"SASRec-*.pth "$OUT/recbole-$seed/" 2>/dev/null || true
        echo "seed $seed: stopped, $(cat "$run/log/"*/*.log 2>/dev/null | grep -c evaluating) epochs validated in this call; go on with a second call"
    fi
    tail -n 3 "$run.log"
done
