#!/usr/bin/env bash
# Build LightFM 1.17 from its PyPI sdist into benchmarks/peers/.venv-lightfm (nothing is committed).
#
# lightfm 1.17's setup.py does `__builtins__.__LIGHTFM_SETUP__ = True`; under setuptools' PEP 517
# backend setup.py is exec'd with __builtins__ as a dict, so every current pip fails with
# "'dict' object has no attribute '__LIGHTFM_SETUP__'" -- even `pip download --no-binary :all:`,
# which prepares metadata before saving the file. So: try `pip download`; when it fails, fetch the
# same sdist URL pip would use from the PyPI simple index and check its sha256; unpack it in a temp
# folder, patch that one line to `import builtins; builtins.__LIGHTFM_SETUP__ = True`, and install.
#
# The sdist ships its Cython output as C (Cython 0.29.33) that uses no NumPy C API, so neither
# Cython nor a NumPy pin is needed: it builds and runs against NumPy 2.
#
# Usage: benchmarks/peers/setup_lightfm.sh   (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv-lightfm"
PYTHON="${PYTHON:-python3}"
VERSION=1.17
SDIST="lightfm-$VERSION.tar.gz"
SHA256=2b77ada182ccd768a8d7643ab3cfcd8b6e855db09087f7cc7329bd63316697a8

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import lightfm, lightfm._lightfm_fast_openmp" 2>/dev/null; then
    echo "LightFM already installed in $VENV"
    exit 0
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet numpy scipy

if ! "$VENV/bin/python" -m pip download "lightfm==$VERSION" --no-deps --no-binary :all: -d "$WORK" \
    >"$WORK/pip-download.log" 2>&1 || [ ! -f "$WORK/$SDIST" ]; then
    echo "pip download failed as expected for lightfm $VERSION ($(grep -o "'dict' object has no attribute '__LIGHTFM_SETUP__'" "$WORK/pip-download.log" | head -1 || true)); fetching the sdist from the PyPI simple index"
    "$VENV/bin/python" - "$WORK" "$SDIST" <<'PY'
import re, sys, urllib.request
work, sdist = sys.argv[1], sys.argv[2]
page = urllib.request.urlopen("https://pypi.org/simple/lightfm/", timeout=60).read().decode()
url = re.search(r'href="([^"#]*/' + re.escape(sdist) + r')(#[^"]*)?"', page).group(1)
with open(f"{work}/{sdist}", "wb") as fh:
    fh.write(urllib.request.urlopen(url, timeout=120).read())
print(url)
PY
fi
echo "$SHA256  $WORK/$SDIST" | sha256sum --check --quiet

tar -xzf "$WORK/$SDIST" -C "$WORK"
SRC="$WORK/lightfm-$VERSION"
grep -q '^__builtins__.__LIGHTFM_SETUP__ = True$' "$SRC/setup.py"
sed -i 's/^__builtins__.__LIGHTFM_SETUP__ = True$/import builtins; builtins.__LIGHTFM_SETUP__ = True/' "$SRC/setup.py"
# --no-deps: lightfm also lists requests and scikit-learn, used only by its dataset helpers.
"$VENV/bin/python" -m pip install --quiet --no-deps "$SRC" >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; exit 1; }
cd "$WORK" && "$VENV/bin/python" -c "import lightfm, lightfm._lightfm_fast_openmp, numpy, scipy; print('lightfm', lightfm.__version__, 'numpy', numpy.__version__, 'scipy', scipy.__version__)"
