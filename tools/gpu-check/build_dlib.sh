#!/usr/bin/env bash
# Build dlib 20.0.0's Python module with CUDA + cuDNN, for one python, into $DLIB_OUT.
#   PY=python3 DLIB_OUT=/tmp/dlibpy JOBS=16 CUDA_ARCH=90 bash .gpu/build_dlib.sh SDIST LOG
# cuDNN/cuBLAS/cuRAND/cuSOLVER: the toolkit's own where it has them, else the pip wheels
# (nvidia-cudnn-cu13, nvidia-cublas, ...) of $PY (NVIDIA_ROOT overrides where to look).
# Writes $DLIB_OUT/env.sh (LD_LIBRARY_PATH, PYTHONPATH) for the runs after it.
set -uo pipefail
SDIST=$1; LOG=$2
PY=${PY:-python3}; DLIB_OUT=${DLIB_OUT:-/tmp/dlibpy}; JOBS=${JOBS:-$(nproc)}; CUDA_ARCH=${CUDA_ARCH:-90}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${DLIB_SRC:-/tmp/dlibsrc}; BUILD=${DLIB_BUILD:-/tmp/dlibbuild}; LINKS=${CUDA_LINKS:-/tmp/cudalinks}
rm -rf "$SRC" "$BUILD" "$LINKS"; mkdir -p "$SRC" "$BUILD" "$LINKS/lib" "$DLIB_OUT"
tar xzf "$SDIST" -C "$SRC" --strip-components=1 || { echo "[BUILD] cannot unpack $SDIST"; exit 3; }

# CUDA 13 builds no code for sm_50 and wants C++17 (CCCL 3): the sdist's two test projects
# compile for -arch=sm_50 with -std=c++14, and dlib's own .cu files with -std=c++14.
sed -i "s/-arch=sm_50/-arch=sm_${CUDA_ARCH}/; s/-std=c++14/-std=c++17/" \
    "$SRC"/dlib/cmake_utils/test_for_cuda/CMakeLists.txt "$SRC"/dlib/cmake_utils/test_for_cudnn/CMakeLists.txt
sed -i 's/"-std=c++14"/"-std=c++17"/' "$SRC"/dlib/CMakeLists.txt

NVCC=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
[ -n "$NVCC" ] || { echo "[BUILD] no nvcc"; exit 3; }
CUDA_ROOT=""
for r in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda "$(dirname "$(dirname "$(readlink -f "$NVCC")")")"; do
    [ -n "$r" ] && [ -x "$r/bin/nvcc" ] && [ -e "$r/include/cuda_runtime.h" ] && { CUDA_ROOT=$(readlink -f "$r"); break; }
done
[ -n "$CUDA_ROOT" ] || { echo "[BUILD] no CUDA toolkit root found for $NVCC"; exit 3; }
echo "[BUILD] nvcc: $NVCC -> root $CUDA_ROOT; $("$NVCC" --version | tail -2 | head -1)"
echo "[BUILD] cmake: $(cmake --version | head -1); ninja: $(ninja --version 2>/dev/null); gcc: $(gcc -dumpfullversion 2>/dev/null)"

# Where each library is: the toolkit's lib64/lib first, then the python wheels' nvidia/*/lib.
NV_DIRS=${NVIDIA_ROOT:-$("$PY" -c 'import nvidia, os; print(" ".join(os.path.realpath(p) for p in nvidia.__path__))' 2>/dev/null)}
echo "[BUILD] python nvidia wheels: ${NV_DIRS:-none}"
find_lib() {  # NAME -> path of libNAME.so[.N] (toolkit first)
    local f
    for f in "$CUDA_ROOT"/lib64/lib$1.so "$CUDA_ROOT"/targets/x86_64-linux/lib/lib$1.so "$CUDA_ROOT"/lib/lib$1.so \
             /usr/lib/x86_64-linux-gnu/lib$1.so; do
        [ -e "$f" ] && { echo "$f"; return; }
    done
    for d in $NV_DIRS; do
        f=$(ls "$d"/*/lib/lib$1.so* 2>/dev/null | sort | head -1)
        [ -n "$f" ] && { echo "$f"; return; }
    done
}
find_inc() {  # HEADER -> folder holding it
    local d f
    for d in "$CUDA_ROOT"/include "$CUDA_ROOT"/targets/x86_64-linux/include /usr/include; do
        [ -e "$d/$1" ] && { echo "$d"; return; }
    done
    for d in $NV_DIRS; do
        f=$(ls "$d"/*/include/"$1" 2>/dev/null | head -1)
        [ -n "$f" ] && { dirname "$f"; return; }
    done
}
CPATH_ADD=""; LIBDIRS=""
for lib in cublas cublasLt curand cusolver cudnn cudart; do
    f=$(find_lib $lib)
    [ -n "$f" ] || { echo "[BUILD] lib$lib not found (toolkit $CUDA_ROOT, wheels $NV_DIRS)"; exit 3; }
    ln -sf "$(readlink -f "$f")" "$LINKS/lib/lib$lib.so"   # an unversioned name for find_library/linking
    LIBDIRS="$LIBDIRS:$(dirname "$(readlink -f "$f")")"
    echo "[BUILD] lib$lib: $f"
done
for h in cublas_v2.h curand.h cusolverDn.h cudnn.h; do
    d=$(find_inc $h)
    [ -n "$d" ] || { echo "[BUILD] $h not found"; exit 3; }
    echo "[BUILD] $h in $d"
    case ":$CPATH_ADD:" in *":$d:"*) ;; *) CPATH_ADD="$CPATH_ADD:$d";; esac
done
CUDNN_INC=$(find_inc cudnn.h)
grep -hE "#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) " "$CUDNN_INC"/cudnn_version.h 2>/dev/null | tr '\n' ' '; echo
# nvcc preprocesses with the host gcc, which reads CPATH: headers outside the toolkit (wheels).
# The toolkit's own include is a -I, searched before CPATH.
export CPATH="${CPATH_ADD#:}${CPATH:+:$CPATH}"
export CUDNN_INCLUDE_DIR="$CUDNN_INC" CUDNN_LIBRARY_DIR="$LINKS/lib"   # the cuDNN test project's hints
export LIBRARY_PATH="$LINKS/lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
for d in $NV_DIRS; do for l in "$d"/*/lib; do [ -d "$l" ] && LIBDIRS="$LIBDIRS:$l"; done; done  # nvrtc etc. for cuDNN
RUNTIME_LD="$LINKS/lib${LIBDIRS}"
export LD_LIBRARY_PATH="$RUNTIME_LD${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

PYINC=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
PYARGS=(-DPYTHON_EXECUTABLE="$(command -v "$PY")" -DPython_EXECUTABLE="$(command -v "$PY")" -DPython3_EXECUTABLE="$(command -v "$PY")")
if [ ! -e "$PYINC/Python.h" ] || [ -n "${FORCE_CARRIED_HEADERS:-}" ]; then  # no python3-dev there: the carried 3.12 headers
    PYINC="$HERE/pyinc/python3.12"
    echo "[BUILD] $PY has no Python.h; using carried headers $PYINC"
    # pybind11's classic search overwrites PYTHON_INCLUDE_DIR from sysconfig unless told not to
    PYARGS+=(-DPYBIND11_PYTHONLIBS_OVERWRITE=OFF -DPYTHON_INCLUDE_DIR="$PYINC" -DPython_INCLUDE_DIR="$PYINC" -DPython3_INCLUDE_DIR="$PYINC")
fi

GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)
echo "[BUILD] configure $(date +%s)"
cmake -S "$SRC/tools/python" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_POLICY_VERSION_MINIMUM=3.5 -DCMAKE_INTERPROCEDURAL_OPTIMIZATION=OFF \
    -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$DLIB_OUT" "${PYARGS[@]}" \
    -DDLIB_USE_CUDA=ON -DDLIB_USE_CUDA_COMPUTE_CAPABILITIES="$CUDA_ARCH" \
    -DCUDA_TOOLKIT_ROOT_DIR="$CUDA_ROOT" \
    -DCUDA_cublas_LIBRARY="$LINKS/lib/libcublas.so" -DCUDA_curand_LIBRARY="$LINKS/lib/libcurand.so" \
    -DCUDA_cusolver_LIBRARY="$LINKS/lib/libcusolver.so" \
    -Dcudnn="$LINKS/lib/libcudnn.so" -Dcudnn_include="$CUDNN_INC" \
    -DCMAKE_LIBRARY_PATH="$LINKS/lib" \
    -DDLIB_NO_GUI_SUPPORT=ON -DDLIB_USE_FFMPEG=OFF -DDLIB_USE_BLAS=OFF -DDLIB_USE_LAPACK=OFF \
    -DDLIB_USE_MKL_FFT=OFF >"$LOG" 2>&1
rc=$?
grep -E "CUDA|cuDNN|cudnn|DLIB WILL" "$LOG" | grep -v "^--   " | head -30
if [ $rc -ne 0 ] || ! grep -q "DLIB WILL USE CUDA" "$LOG"; then
    echo "[BUILD] configure failed (rc $rc) or CUDA disabled; last 80 lines of $LOG:"; tail -80 "$LOG"; exit 4
fi
echo "[BUILD] compile $(date +%s) with $JOBS jobs"
cmake --build "$BUILD" -j "$JOBS" ${BUILD_TARGET:+--target $BUILD_TARGET} >>"$LOG" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
    echo "[BUILD] compile failed (rc $rc); last 80 lines of $LOG:"; grep -m5 -E "error|Error" "$LOG"; tail -80 "$LOG"; exit 5
fi
[ -n "${BUILD_TARGET:-}" ] && { echo "[BUILD] built target $BUILD_TARGET only"; exit 0; }
ls "$DLIB_OUT"/_dlib_pybind11*.so "$DLIB_OUT"/dlib/__init__.py || { echo "[BUILD] no module in $DLIB_OUT"; tail -40 "$LOG"; exit 6; }
cat >"$DLIB_OUT/env.sh" <<EOF
export LD_LIBRARY_PATH="$RUNTIME_LD\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export PYTHONPATH="$DLIB_OUT\${PYTHONPATH:+:\$PYTHONPATH}"
EOF
echo "[BUILD] done $(date +%s)"
