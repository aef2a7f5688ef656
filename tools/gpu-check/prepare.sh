#!/usr/bin/env bash
# Fill .gpu/ (ignored; the device tool's carry folder) for the one-shot GPU check (tools/gpu-check/check.sh).
#   FACES_DATA=../shared/datasets bash tools/gpu-check/prepare.sh [REPO_ROOT]
# REPO_ROOT: the checkout the device tool sends (default: this one).  Needs network (pip) and the
# project's .venv (for the model files and the CPU reference encodings).  Then, on the device:
#   bash .gpu/check.sh     with carry [".gpu"]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=${1:-$(cd "$HERE/../.." && pwd)}
DATA=${FACES_DATA:-$ROOT/../shared/datasets}
G=$ROOT/.gpu
VPY=$ROOT/.venv/bin/python
grep -qx '/.gpu/' "$(git -C "$ROOT" rev-parse --git-common-dir)/info/exclude" || \
    echo '/.gpu/' >> "$(git -C "$ROOT" rev-parse --git-common-dir)/info/exclude"
mkdir -p "$G/whl" "$G/cpu" "$G/site/face_recognition_models/models" "$G/pyinc"
cp "$HERE"/check.sh "$HERE"/build_dlib.sh "$HERE"/compare.py "$HERE"/encode_spawn.py "$HERE"/inproc_encode.py "$HERE"/diag.sh "$G/"

# dlib's sdist (built on the device), and the pure-python wheels the image lacks
[ -s "$G/dlib-20.0.0.tar.gz" ] || python3 -m pip download -q --no-binary :all: --no-deps dlib==20.0.0 -d "$G"
python3 -m pip download -q --no-deps --only-binary=:all: -d "$G/whl" face_recognition==1.3.0
python3 -m pip wheel -q --no-deps -w "$G/whl" imutils==0.5.4   # an sdist only: built here, py3-none-any

# Python 3.12 headers, used only if the device's python has no Python.h (no python3.12-dev there)
PY312=$(command -v python3.12 || ls /root/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | head -1)
cp -r "$("$PY312" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" "$G/pyinc/python3.12"

# the three model files the check loads, behind a stand-in face_recognition_models (no 68-point model)
MODELS=$("$VPY" -c 'import os, face_recognition_models as m; print(os.path.dirname(m.__file__))' 2>/dev/null)/models
cp "$MODELS"/{mmod_human_face_detector,dlib_face_recognition_resnet_model_v1,shape_predictor_5_face_landmarks}.dat \
   "$G/site/face_recognition_models/models/"
cp "$HERE/face_recognition_models_stub.py" "$G/site/face_recognition_models/__init__.py"

# photos: 4 LFW people x 10, 8 five_celebs photos of one person, Obama at 240p..1080p -> 52 photos, 6 people
P=$G/photos; rm -rf "$P"; mkdir -p "$P/madonna" "$P/obama"
for p in Angelina_Jolie Bill_Gates Colin_Powell Andre_Agassi; do
    mkdir -p "$P/$p"; ls "$DATA/lfw-deepfunneled/$p"/*.jpg | sort | head -10 | xargs -I{} cp {} "$P/$p/"
done
ls "$DATA"/five_celebs/madonna/* | sort | head -8 | xargs -I{} cp {} "$P/madonna/"
cp "$DATA"/face_recognition_examples/obama/examples__obama-{240p,480p,720p,1080p}.jpg "$P/obama/"

# FACES_DATA for tests/test_faces.py and tests/test_recall.py: only the files they open
T=$G/data; rm -rf "$T"
mkdir -p "$T"/lfw-deepfunneled/{Aaron_Peirsol,Abdullah_Gul,Aaron_Eckhart,AJ_Cook} \
    "$T"/face_recognition_examples/{_multi_face,obama} "$T/glint_aligned_crops/Barack Obama"
for p in Aaron_Peirsol Abdullah_Gul; do ls "$DATA/lfw-deepfunneled/$p"/*.jpg | sort | head -3 | xargs -I{} cp {} "$T/lfw-deepfunneled/$p/"; done
cp "$DATA"/lfw-deepfunneled/Aaron_Eckhart/Aaron_Eckhart_0001.jpg "$T/lfw-deepfunneled/Aaron_Eckhart/"
cp "$DATA"/lfw-deepfunneled/AJ_Cook/AJ_Cook_0001.jpg "$T/lfw-deepfunneled/AJ_Cook/"
cp "$DATA"/face_recognition_examples/_multi_face/examples__{two_people,knn_examples__test__obama_and_biden}.jpg "$T/face_recognition_examples/_multi_face/"
cp "$DATA"/face_recognition_examples/obama/examples__obama{-1080p,_small}.jpg "$T/face_recognition_examples/obama/"
cp "$DATA/glint_aligned_crops/Barack Obama/102.png" "$T/glint_aligned_crops/Barack Obama/"

# the CPU reference: dlib's CNN weights on onnxruntime (-d cnn without CUDA), numpy encoder
(cd "$ROOT" && OMP_NUM_THREADS=1 "$VPY" encode_faces.py --dataset .gpu/photos --encodings .gpu/cpu/cpu_cnn.pickle \
    -d cnn -w 2 --fresh | grep -v "processing image")
rm -f "$G/cpu/cpu_cnn.pickle.cache.sqlite"
echo "[INFO] .gpu: $(du -sh "$G" | cut -f1); tracked tree: $(git -C "$ROOT" ls-files -z | (cd "$ROOT" && xargs -0 du -cb) | tail -1 | cut -f1) bytes"
