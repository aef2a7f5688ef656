#!/usr/bin/env bash
# The one-shot GPU check of facecluster's CUDA path (run from the repository root on the device):
#   bash .gpu/check.sh            (carry: [".gpu"]; writes to $OUT: check.log, build.log, tests.log,
#                                  timings.txt, pickles.tgz -- 5 files)
# Builds dlib 20.0.0 with CUDA (sm_90) + cuDNN, installs the two missing pure-python wheels, then
# encodes .gpu/photos with dlib's CNN on CUDA, compares with the CPU reference made beforehand,
# clusters, and runs tests/test_faces.py + tests/test_recall.py on .gpu/data.
# Every step has a hard timeout; the whole stays under BUDGET seconds (default 520).
# Local dry run without a GPU: PY=/path/python3.12 SKIP_BUILD=1 OUT=/tmp/o bash .gpu/check.sh
set -u
OUT=${OUT:-/tmp/gpucheck-out}; mkdir -p "$OUT"
PY=${PY:-python3}; BUDGET=${BUDGET:-520}; DLIB_OUT=${DLIB_OUT:-/tmp/dlibpy}
exec > >(tee -a "$OUT/check.log") 2>&1
T0=$(date +%s)
trap 'sleep 1' EXIT   # let tee write the last lines
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 XDG_CACHE_HOME=/tmp/xdgcache
step() { echo; echo "=== $(date +%s) +$(( $(date +%s) - T0 ))s STEP $*"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
# cap SECONDS: never past the budget (minus what the summary needs)
cap() { local l; l=$(( $(left) - 10 )); [ "$1" -lt "$l" ] && echo "$1" || echo $(( l > 5 ? l : 5 )); }
timed() {  # NAME SECONDS CMD...: run with a hard timeout, log its wall time to timings.txt
    local name=$1 t; t=$(cap "$2"); shift 2
    local s; s=$(date +%s.%N)
    timeout -k 5 "$t" "$@"; local rc=$?
    local w; w=$(awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
    echo "[TIME] $name: ${w}s rc=$rc (limit ${t}s)" | tee -a "$OUT/timings.txt"
    return $rc
}

step "0 machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader 2>&1 | head -3
echo "python: $(command -v "$PY") $("$PY" --version 2>&1); cores: $(nproc)"
"$PY" -c 'import numpy, cv2, sklearn, onnxruntime as o; print("numpy", numpy.__version__, "cv2", cv2.__version__, "sklearn", sklearn.__version__, "onnxruntime", o.__version__, o.get_available_providers())' 2>&1
du -sh .gpu 2>/dev/null

step "1 build dlib 20.0.0 with CUDA (sm_90) + cuDNN"
if [ -z "${SKIP_BUILD:-}" ]; then
    PY="$PY" DLIB_OUT="$DLIB_OUT" JOBS=$(nproc) CUDA_ARCH=90 timed build 330 bash .gpu/build_dlib.sh .gpu/dlib-20.0.0.tar.gz "$OUT/build.log"
    rc=$?
    if [ $rc -ne 0 ]; then
        # build_dlib.sh printed the log's tail itself, unless the timeout killed it
        [ $rc -ge 124 ] && { echo "-- build.log's last 80 lines:"; tail -80 "$OUT/build.log"; }
        echo "[RESULT] dlib build FAILED (rc $rc; 124/137: out of time); full log in build.log"; exit 1
    fi
    source "$DLIB_OUT/env.sh"
else
    echo "[SKIP] build (SKIP_BUILD set): using the dlib that $PY already has"
fi

step "2 wheels: face_recognition, imutils -> /tmp/site; model files: .gpu/site (stub face_recognition_models)"
timed wheels 60 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl \
    || { echo "[RESULT] wheel install FAILED"; exit 1; }
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}/tmp/site:$PWD/.gpu/site:$PWD"
echo "PYTHONPATH=$PYTHONPATH"

step "3a dlib CUDA"
timed dlib-cuda 60 "$PY" -c 'import dlib; print("dlib", dlib.__version__, dlib.__file__); print("DLIB_USE_CUDA:", dlib.DLIB_USE_CUDA); n = dlib.cuda.get_num_devices(); print("cuda devices:", n); print("current device:", dlib.cuda.get_device())'

echo "-- dlib's CNN and ResNet on CUDA, directly (one photo; first call includes cuDNN set-up):"
timed dlib-direct 90 "$PY" - <<'PYEOF'
import time, numpy as np, dlib
from PIL import Image
import face_recognition_models as m
img = np.asarray(Image.open(".gpu/photos/Bill_Gates/Bill_Gates_0001.jpg").convert("RGB"))
t = time.time(); cnn = dlib.cnn_face_detection_model_v1(m.cnn_face_detector_model_location()); print(f"load cnn {time.time()-t:.2f}s")
for i in range(3):
    t = time.time(); found = cnn(img, 1); print(f"cnn call {i}: {len(found)} face(s) {[(d.rect.top(), d.rect.right(), d.rect.bottom(), d.rect.left(), round(d.confidence, 3)) for d in found]} {time.time()-t:.3f}s")
t = time.time(); batch = cnn([img] * 8, 1, batch_size=8); print(f"cnn batch of 8: {[len(b) for b in batch]} {time.time()-t:.3f}s")
sp = dlib.shape_predictor(m.pose_predictor_five_point_model_location())
enc = dlib.face_recognition_model_v1(m.face_recognition_model_location())
shape = sp(img, found[0].rect)
for i in range(3):
    t = time.time(); d = np.array(enc.compute_face_descriptor(img, shape, 1)); print(f"resnet call {i}: |d|={np.linalg.norm(d):.4f} {time.time()-t:.3f}s")
PYEOF

step "3b install self-check (tools/install.sh's last line)"
( cd / && timed self-check 90 "$PY" -c 'from facecluster.detect.detectors import choose_detector; from facecluster.embed.encoders import choose_encoder; from facecluster.models.dlib_models import cuda_available
from facecluster.detect.mmod import load_detector
for stage, _ in (choose_detector("auto"), choose_encoder("numpy", "small", 1)): stage.preload()
print("[INFO] face models ready; dlib CUDA:", cuda_available(), "; CPU CNN backend:", load_detector().backend)' )

step "3c encode on the GPU ($(find .gpu/photos -type f | wc -l) photos) -- the project's own path (workers forked after preload)"
P=/tmp/pickles; mkdir -p $P
encode() {  # NAME LIMIT SCRIPT ARGS...
    local name=$1 lim=$2; shift 2
    timed "encode-$name" "$lim" "$PY" "$@" --dataset .gpu/photos --encodings "$P/gpu_$name.pickle" --fresh 2>&1 \
        | grep -v "processing image" | tee /tmp/encode.txt | awk "NR <= 40"
    rm -f "$P/gpu_$name.pickle.cache.sqlite"
    # photos/s: from the script's own "N images, ... S seconds" line, and from the wall time (start-up included)
    local wall; wall=$(grep "encode-$name:" "$OUT/timings.txt" | tail -1 | sed -E 's/.*: ([0-9.]+)s.*/\1/')
    awk -v n="$name" -v wall="$wall" '/ images, .* seconds/ {for (i=1;i<=NF;i++) {if (!p && $(i+1) ~ /^images/) p=$i; if ($(i+1) ~ /^seconds/) t=$i}}
        END {if (p) printf "[RATE] %s: %d photos, %.1f photos/s by its own clock (%ss), %.1f photos/s by wall (%ss)\n", n, p, p/t, t, p/wall, wall}' /tmp/encode.txt \
        | tee -a "$OUT/timings.txt"
}
compare() { [ -s "$P/gpu_$1.pickle" ] && timeout 30 "$PY" .gpu/compare.py .gpu/cpu/cpu_cnn.pickle "$P/gpu_$1.pickle" "gpu-$1"; }
encode auto 75 encode_faces.py -d auto
compare auto
# -d cnn only where -d auto got faces (if the forked workers cannot use CUDA, both fail the same way)
if grep -q " 0 skipped" /tmp/encode.txt; then encode cnn8 60 encode_faces.py -d cnn --batch-size 8; compare cnn8
else echo "[NOTE] -d auto skipped photos (see above): -d cnn --batch-size 8 through the same forked pool not run"; fi

step "3c' the same with spawned workers (.gpu/encode_spawn.py: the pipeline's fork -> spawn, nothing else)"
encode spawn 100 .gpu/encode_spawn.py -d cnn --batch-size 8
compare spawn

step "3c'' in one process, no pool (.gpu/inproc_encode.py): the GPU's own rate, batch 8 then 32"
timed inproc8 60 "$PY" .gpu/inproc_encode.py "$P/gpu_inproc8.pickle" 8 2>&1 | tail -25
compare inproc8
timed inproc32 45 "$PY" .gpu/inproc_encode.py "$P/gpu_inproc32.pickle" 32 2>&1 | grep "pass 2"

step "3d (compare lines above: COMPARE ...)"

step "3e cluster the GPU encodings (default dbscan; adaptive), scored against the photo folders"
for name in auto spawn inproc8; do [ -s "$P/gpu_$name.pickle" ] && break; done
echo "clustering gpu_$name.pickle"
timed cluster 40 "$PY" cluster_faces.py --encodings "$P/gpu_$name.pickle" --output /tmp/out --labels folders --people-store none 2>&1 | grep -vE "faces for face ID"
timed cluster-adaptive 40 "$PY" cluster_faces.py --encodings "$P/gpu_$name.pickle" --output /tmp/out2 -m adaptive --labels folders --people-store none 2>&1 \
    | grep -E "unique|F1|adaptive|ERROR"

step "3f tests: tests/test_faces.py tests/test_recall.py (FACES_DATA=.gpu/data)"
( export FACES_DATA="$PWD/.gpu/data" CI=1 OMP_NUM_THREADS=1
  timed tests 150 "$PY" -m pytest -q -rA -p no:cacheprovider -n 4 tests/test_faces.py tests/test_recall.py >"$OUT/tests.log" 2>&1 )
grep -E "^(PASSED|FAILED|ERROR|SKIPPED)|passed|failed" "$OUT/tests.log" | tail -60

step "4 extras, if time is left: dlib's ResNet on CUDA (--encoder dlib, in one process)"
if [ "$(left)" -gt 50 ]; then timed inproc8-dlibenc 45 "$PY" .gpu/inproc_encode.py "$P/gpu_inproc8-dlibenc.pickle" 8 dlib 2>&1 | tail -12; compare inproc8-dlibenc
else echo "[SKIP] --encoder dlib: $(left)s left"; fi

step "done"
cat "$OUT/timings.txt"
tar czf "$OUT/pickles.tgz" -C $P . 2>/dev/null; ls -la "$OUT"
echo "[RESULT] total $(( $(date +%s) - T0 ))s"
