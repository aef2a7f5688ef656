#!/usr/bin/env bash
# Create .venv/ at the repository root and install the project into it.
#
#   DLIB=auto (default)  dlib with CUDA when an NVIDIA GPU and nvcc are present,
#                        otherwise the prebuilt dlib-bin wheel (seconds, no compiler)
#   DLIB=bin             always the prebuilt dlib-bin wheel
#   DLIB=cuda            always build dlib from source (with CUDA if the toolkit is found)
#   EXTRA=requirements-dev.txt  also install the test requirements
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DLIB=${DLIB:-auto}
VENV=.venv

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "[ERROR] Python 3.11 or newer is needed (found: $("$PYTHON" --version 2>&1))" >&2
    exit 2
fi

if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        # Debian/Ubuntu ship venv separately.
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "[INFO] installing python3-venv with apt-get"
            apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
            "$PYTHON" -m venv "$VENV"
        else
            echo "[ERROR] '$PYTHON -m venv' failed: install python3-venv (sudo apt-get install python3-venv)" >&2
            exit 2
        fi
    fi
fi
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"

# uv installs the pinned requirements: it unpacks each wheel once into its cache
# and links it from there (a fresh .venv's packages in ~1 s with a warm cache,
# where pip took ~30 s unpacking and byte-compiling every wheel again).  uv itself
# is pinned, from its wheel on PyPI.  It reads no pip.conf: set UV_INDEX_URL for
# a mirror.
$PIP install uv==0.13.8
UV="$VENV/bin/uv pip install --quiet --python $VENV/bin/python"
uv_install() {
    # Every version is pinned, so uv's cache alone serves a machine that installed
    # them before (no index requests; uv would otherwise rebuild the two sdists,
    # face_recognition_models and imutils); else it fetches them.
    $UV --offline "$@" 2>/dev/null || $UV "$@"
}

ASKED=$DLIB
if [ "$DLIB" = auto ]; then
    if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 && command -v nvcc >/dev/null; then
        DLIB=cuda
    else
        DLIB=bin
    fi
fi

requirements=requirements.txt
if [ "$DLIB" = cuda ]; then
    requirements=$(mktemp)
    grep -v '^dlib-bin' requirements.txt > "$requirements"
fi
uv_install -r "$requirements"
if [ "$DLIB" = cuda ]; then
    echo "[INFO] building dlib from source with CUDA (takes several minutes; log: $VENV/dlib-build.log)"
    $VENV/bin/python -m pip uninstall -y -q dlib-bin 2>/dev/null || true
    # Built, it must also load beside numpy: on an H200 with CUDA 13 (2026-12-04, docs/detection.md)
    # dlib's sdist needed patches to build, and the module then crashed at import after numpy.
    if ! $PIP install --no-binary dlib dlib==20.0.0 >"$VENV/dlib-build.log" 2>&1 \
        || ! "$VENV/bin/python" -c 'import numpy, dlib; assert dlib.DLIB_USE_CUDA' >>"$VENV/dlib-build.log" 2>&1; then
        if [ "$ASKED" = cuda ]; then
            echo "[ERROR] dlib with CUDA did not build or does not load here: see $VENV/dlib-build.log" >&2
            exit 2
        fi
        echo "[WARNING] dlib with CUDA did not build or does not load here (see $VENV/dlib-build.log): installing the prebuilt dlib-bin, without CUDA" >&2
        $VENV/bin/python -m pip uninstall -y -q dlib 2>/dev/null || true
        $PIP install "$(grep '^dlib-bin' requirements.txt)"
    fi
else
    $VENV/bin/uv pip uninstall --quiet --python $VENV/bin/python dlib 2>/dev/null || true  # a CUDA build's, if any
fi
# --no-deps: its `dlib` requirement would compile dlib; dlib-bin (or the CUDA
# build above) already provides the module.
uv_install --no-deps -r requirements-nodeps.txt
# requirements-dev.txt (make test) pins every package it needs, for the same --no-deps.
if [ -n "${EXTRA:-}" ]; then
    uv_install --no-deps -r "$EXTRA"
fi

# The project itself, editable: every process of this environment -- the scripts,
# and `dask scheduler` / `dask worker` started from .venv/bin, which unpickle
# our tasks -- imports this checkout's facecluster, with no PYTHONPATH, and
# keeps importing it after a `git pull` (no stale copy in site-packages).
# --no-deps: the pinned requirements above are the dependencies.
uv_install --no-deps -e .

# Byte-compile what uv linked (pip did this as it installed; uv does not): every
# process would otherwise compile the modules it imports again when the
# environment forbids writing the .pyc (PYTHONDONTWRITEBYTECODE).  The packages'
# own test suites (test/ and tests/ folders) are never imported: skipped.
"$VENV/bin/python" -m compileall -q -j 0 -x '/tests?/' "$VENV/lib" >/dev/null

# Prove the models load (this is where a missing pkg_resources used to bite), and
# say what runs the CNN detector on a CPU (onnxruntime; numpy where it is missing).
# Run from / so that the import comes from the install, not the current folder.
PY_ABS="$PWD/$VENV/bin/python"
(cd / && "$PY_ABS" -c 'from facecluster.detect.detectors import choose_detector; from facecluster.embed.encoders import choose_encoder; from facecluster.models.dlib_models import cuda_available
from facecluster.detect.mmod import load_detector
for stage, _ in (choose_detector("auto"), choose_encoder("numpy", "small", 1)): stage.preload()
print("[INFO] face models ready; dlib CUDA:", cuda_available(), "; CPU CNN backend:", load_detector().backend)')
