"""facecluster.detect.mmod runs dlib's CNN face detector with onnxruntime (or numpy).

Every photo is compared with dlib's own ``cnn_face_detection_model_v1``: each
face dlib finds must have one of ours with IoU >= 0.95 and a confidence within
1e-3, and we may find nothing more.  In practice boxes are identical and
confidences agree to ~1e-5.  dlib's CNN is slow without BLAS (~1.5 s per LFW
photo at upsample 1), so the photos are few and small.  The default backend
(onnxruntime) is the one compared with dlib; the numpy fallback is compared
with it, score map against score map.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facecluster.detect import mmod_file, mmod as mn, mmod_pyramid
from conftest import inclusive_iou, require

ROOT = Path(__file__).resolve().parent.parent
IOU = 0.95
CONF_TOL = 1e-3


@pytest.fixture(scope="module")
def dlib_cnn():
    dlib = require("dlib")
    return dlib.cnn_face_detection_model_v1(mn.default_model_path())


@pytest.fixture(scope="module")
def detector():
    return mn.load_detector()


def _iou(a: tuple, b: tuple) -> float:
    """IoU of two inclusive ``(left, top, right, bottom)`` boxes (this module's order)."""
    return inclusive_iou((a[1], a[2], a[3], a[0]), (b[1], b[2], b[3], b[0]))


def _load(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _assert_same(image: np.ndarray, upsample: int, dlib_cnn, detector) -> int:
    """Compare both detectors on ``image``; returns the number of faces."""
    ref = [(d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom(), d.confidence) for d in dlib_cnn(image, upsample)]
    got = detector(image, upsample)
    assert len(got) == len(ref), (ref, got)
    for r in ref:
        best = max(got, key=lambda g: _iou(g[:4], r[:4]))
        assert _iou(best[:4], r[:4]) >= IOU, (r, got)
        assert abs(best.confidence - r[4]) <= CONF_TOL, (r, best)
    return len(ref)


# --- no data needed ---------------------------------------------------------


@pytest.mark.parametrize("module", ["facecluster.detect.mmod_file", "facecluster.detect.mmod"])
def test_import_is_cheap(module):
    """Importing parses no model and pulls in neither dlib, face_recognition_models nor onnx(runtime)."""
    probe = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith(('dlib', 'face_rec', 'onnx'))))"
    if module.endswith("numpy"):
        probe += f"; print({module}._detector_at.cache_info().currsize)"
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[0] == "[]"
    assert proc.stdout.strip().endswith(("[]", "0"))


def test_model_is_parsed_once(detector):
    assert mn.load_detector() is detector
    assert mn.load_detector(detector.model_path) is detector


def test_default_backend_is_onnxruntime_on_one_thread(detector):
    """onnxruntime is a pinned dependency; its session is made with one thread
    (worker processes run one per core), whatever numpy's BLAS setting."""
    assert detector.backend == "onnxruntime"
    options = detector._p.network.body.session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
    assert mn.MmodDetector(detector.model_path, threads=2)._p.network.body.session.get_session_options().intra_op_num_threads == 2
    with pytest.raises(ValueError):
        mn.MmodDetector(detector.model_path, backend="tensorflow")


@pytest.fixture(scope="module")
def numpy_detector(detector):
    return mn.MmodDetector(detector.model_path, backend="numpy")


def _assert_same_scores(image: np.ndarray, detector, numpy_detector) -> None:
    got, rects = detector.scores(image)
    ref, ref_rects = numpy_detector.scores(image)
    assert rects == ref_rects
    assert got.shape == ref.shape
    if ref.size:
        assert float(np.abs(got - ref).max()) <= 1e-4


def test_numpy_backend_gives_the_same_scores(detector, numpy_detector):
    rng = np.random.default_rng(1)
    for shape in [(90, 120), (61, 47), (200, 150)]:
        _assert_same_scores(rng.integers(0, 256, (*shape, 3), dtype=np.uint8), detector, numpy_detector)


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (8, 8), (9, 30), (30, 30)])
def test_tiny_images(detector, numpy_detector, shape):
    """Images so small that some layer has no output give an empty score map, not an error."""
    image = np.full((*shape, 3), 100, np.uint8)
    _assert_same_scores(image, detector, numpy_detector)
    assert detector(image) == []


def test_model_contents(detector):
    model = mmod_file.parse(Path(detector.model_path).read_bytes())
    assert model.windows == ((80, 80),)
    assert [l.weights.shape[0] for l in model.layers] == [16, 32, 32, 45, 45, 45, 1]
    assert [l.stride for l in model.layers] == [2, 2, 2, 1, 1, 1, 1]
    assert [l.pad for l in model.layers] == [0, 0, 0, 2, 2, 2, 4]  # dlib: stride 1 pads k/2
    assert (model.pyramid_padding, model.pyramid_outer_padding) == (10, 11)
    assert mn._receptive_centre(model.layers) == (8, 14)


def test_onnx_graph_is_valid(detector):
    import onnx

    layers = mmod_file.parse(Path(detector.model_path).read_bytes()).layers
    onnx.checker.check_model(onnx.load_from_string(mn._onnx_model(mn._widened(layers, mn._ORT_CHANNEL_MULTIPLE)[:-1])), full_check=True)


def test_garbage_model_is_rejected(tmp_path):
    bad = tmp_path / "bad.dat"
    bad.write_bytes(b"\x01\x01\x01\x0bnot_a_model" + bytes(64))
    with pytest.raises(mmod_file.ModelFormatError):
        mn.MmodDetector(bad)


def test_tile_layout_keeps_levels_apart():
    rects, rows, cols = mmod_pyramid.tile_layout(501, 502, 10, 11)
    assert rects[0] == (11, 11, 512, 511) and cols == 502 + 22
    for i, a in enumerate(rects):
        assert 0 <= a[0] and a[2] < cols and 0 <= a[1] and a[3] < rows
        assert all(not mmod_pyramid.intersects(a, b) for b in rects[i + 1 :])
    sizes = [(r[3] - r[1] + 1, r[2] - r[0] + 1) for r in rects]
    assert sizes[1] == (417, 418)  # floor(5/6 * size)


def test_blank_and_gray_images(detector):
    assert detector(np.zeros((60, 80, 3), np.uint8)) == []
    assert detector(np.full((60, 80), 128, np.uint8), 1) == []
    with pytest.raises(ValueError):
        detector(np.zeros((60, 80, 3), np.float32))


def test_matches_dlib_on_synthetic_image(dlib_cnn, detector):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    _assert_same(image, 0, dlib_cnn, detector)
    assert detector(image, adjust_threshold=-10.0)  # every cell scores above -10


# --- real photos (FACES_DATA) ----------------------------------------------

LFW = ["Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "AJ_Cook/AJ_Cook_0001.jpg", "Abba_Eban/Abba_Eban_0001.jpg"]
EXAMPLES = [
    "_multi_face/examples__knn_examples__test__kit_with_rose.jpg",
    "obama/examples__obama_small.jpg",
    "obama/examples__obama-240p.jpg",
]
GLINT = ["Barack Obama/102.png", "Barack Obama/107.png"]


@pytest.mark.parametrize("name", LFW)
def test_matches_dlib_on_lfw_upsample_1(lfw, name, dlib_cnn, detector):
    assert _assert_same(_load(lfw / name), 1, dlib_cnn, detector) >= 1


def test_numpy_backend_gives_the_same_scores_and_boxes_on_photos(lfw, fr_examples, detector, numpy_detector):
    for image, upsample in [(_load(lfw / LFW[0]), 1), (_load(fr_examples / EXAMPLES[0]), 0)]:
        _assert_same_scores(image, detector, numpy_detector)
        got, ref = detector(image, upsample), numpy_detector(image, upsample)
        assert [d[:4] for d in got] == [d[:4] for d in ref]
        assert np.allclose([d.confidence for d in got], [d.confidence for d in ref], atol=1e-4)


def test_matches_dlib_on_example_photos_upsample_0(fr_examples, dlib_cnn, detector):
    faces = [_assert_same(_load(fr_examples / name), 0, dlib_cnn, detector) for name in EXAMPLES]
    assert faces[:2] == [2, 1]


@pytest.mark.parametrize("upsample", [1, 2])
def test_matches_dlib_on_aligned_crops(faces_data, upsample, dlib_cnn, detector):
    for name in GLINT:
        path = faces_data / "glint_aligned_crops" / name
        if not path.is_file():
            pytest.fail(f"{path} is missing")
        _assert_same(_load(path), upsample, dlib_cnn, detector)
