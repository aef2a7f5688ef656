#!/usr/bin/env bash
# The second device run (tools/gpu-check/diag.sh, copied to .gpu/ by prepare.sh): why every process that imports numpy/PIL before dlib segfaults; then the check again
# with dlib imported first (sitecustomize), if that is the workaround.
set -u
OUT=${OUT:-/tmp/gpucheck-out}; mkdir -p "$OUT"
exec > >(tee -a "$OUT/diag.log") 2>&1
trap 'sleep 1' EXIT
T0=$(date +%s)
PY=python3 DLIB_OUT=/tmp/dlibpy JOBS=$(nproc) CUDA_ARCH=90 timeout 300 bash .gpu/build_dlib.sh .gpu/dlib-20.0.0.tar.gz "$OUT/build.log" | tail -5
source /tmp/dlibpy/env.sh
echo "=== built +$(( $(date +%s) - T0 ))s"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
ldd /tmp/dlibpy/_dlib_pybind11*.so
python3 -c 'import sys, sysconfig; print(sys.executable, sys.version); print("shared:", sysconfig.get_config_var("Py_ENABLE_SHARED"), sysconfig.get_config_var("LDLIBRARY"))'
ls -la /opt/torch/.venv/bin/python3; readlink -f /opt/torch/.venv/bin/python3
for probe in "import dlib" "import numpy; import dlib" "import PIL.Image; import dlib" "import cv2; import dlib" \
    "import onnxruntime; import dlib" "import sklearn; import dlib" "import dlib, numpy, PIL.Image, cv2"; do
    echo "== $probe"; timeout 60 python3 -X faulthandler -c "$probe; print('ok')" 2>&1 | tail -4; echo "rc=${PIPESTATUS[0]}"
done
echo "== LD_DEBUG=files, numpy then dlib (tail)"
LD_DEBUG=files python3 -c "import numpy; import dlib" 2>&1 | grep -E "file=|calling init" | tail -25
echo "== LD_DEBUG=bindings, numpy then dlib (tail)"
LD_DEBUG=bindings python3 -c "import numpy; import dlib" 2>&1 | tail -25
echo "== LD_DEBUG=bindings, dlib alone: Py symbols bound to libpython?"
LD_DEBUG=bindings python3 -c "import dlib" 2>&1 | grep "_dlib_pybind11" | grep -c "libpython"
echo "== dlib first, then the CNN on a photo"
timeout 90 python3 -X faulthandler - <<'PYEOF'
import dlib, time, numpy as np
from PIL import Image
import sys; sys.path.insert(0, ".gpu/site")
import face_recognition_models as m
img = np.asarray(Image.open(".gpu/photos/Bill_Gates/Bill_Gates_0001.jpg").convert("RGB"))
cnn = dlib.cnn_face_detection_model_v1(m.cnn_face_detector_model_location())
for i in range(3):
    t = time.time(); found = cnn(img, 1); print(f"cnn call {i}: {len(found)} {time.time()-t:.3f}s", flush=True)
PYEOF
echo "rc=$?"
echo "=== probes done +$(( $(date +%s) - T0 ))s"
# The check again, dlib imported first in every python (workers and tests too)
mkdir -p /tmp/sc && echo "import dlib" > /tmp/sc/sitecustomize.py
export PYTHONPATH="/tmp/sc:$PYTHONPATH"
left=$(( 540 - ($(date +%s) - T0) ))
echo "=== check.sh with SKIP_BUILD=1, dlib first (sitecustomize), budget ${left}s"
SKIP_BUILD=1 BUDGET=$left bash .gpu/check.sh > /dev/null 2>&1
tail -5 "$OUT/check.log"
