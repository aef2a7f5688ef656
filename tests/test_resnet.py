"""facecluster.embed.resnet computes dlib's face encodings outside dlib,
with onnxruntime and with numpy (every test runs on both backends).

Every comparison is against dlib itself (``face_recognition_model_v1``, the
network face_recognition uses) and holds each face to a max abs difference of
1e-4; in practice the two agree to a few 1e-7.
"""

from __future__ import annotations

import functools

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facecluster.embed import resnet as fe

ROOT = Path(__file__).resolve().parent.parent
TOL = 1e-4


@pytest.fixture(scope="module")
def dlib_net():
    import dlib
    import face_recognition_models

    return dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())


@pytest.fixture(scope="module", params=fe.BACKENDS)
def encoder(request):
    return fe.load_encoder(backend=request.param)


def _dlib_chip_encodings(net, chips: np.ndarray) -> np.ndarray:
    return np.array([np.array(net.compute_face_descriptor(np.ascontiguousarray(c))) for c in chips])


def _synthetic_chips(n: int, seed: int = 0) -> np.ndarray:
    """Noise, flat and smooth chips: inputs dlib must agree on too."""
    rng = np.random.default_rng(seed)
    chips = rng.integers(0, 256, (n, fe.CHIP_SIZE, fe.CHIP_SIZE, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0 : fe.CHIP_SIZE, 0 : fe.CHIP_SIZE]
    chips[0] = 0
    chips[1] = 255
    if n > 2:
        chips[2, ..., 0] = (xx * 255 // 149).astype(np.uint8)
        chips[2, ..., 1] = (yy * 255 // 149).astype(np.uint8)
        chips[2, ..., 2] = 128
    return chips


# --- no data needed ---------------------------------------------------------


def test_import_loads_no_model():
    code = (
        "import sys, facecluster.embed.resnet as fe; "
        "assert fe._ENCODERS == {}, 'model parsed at import'; "
        "assert 'dlib' not in sys.modules, 'dlib imported at import'; "
        "assert 'onnxruntime' not in sys.modules, 'onnxruntime imported at import'; "
        "print('ok')"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_load_encoder_is_cached(encoder):
    assert fe.load_encoder(backend=encoder.backend) is encoder
    assert fe.load_encoder(encoder.model_path, encoder.backend) is encoder
    assert encoder.backend == "numpy" or fe.load_encoder() is encoder  # onnxruntime: the default here


def test_onnx_graph_is_valid(encoder):
    import onnx

    model = onnx.load_from_string(fe._onnx_model(*encoder._program()))
    onnx.checker.check_model(model, full_check=True)  # shapes inferred through every Pad and Add
    assert [o.dim_value for o in model.graph.output[0].type.tensor_type.shape.dim][1:] == [fe.ENCODING_SIZE]


def test_onnx_graph_is_kept_between_runs(tmp_path, monkeypatch):
    """The second start reads the graph from disk (no parse); a damaged copy is built again;
    an unwritable cache folder only means building it every time."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    chips = _synthetic_chips(3, seed=7)
    first = fe.FastEncoder(backend="onnxruntime")
    kept = list((tmp_path / "cache" / "facecluster").glob("dlib-resnet-*.onnx"))
    assert len(kept) == 1 and kept[0].stat().st_size > 20e6
    expected = first.encode_chips(chips)

    def no_parse(*args):
        raise AssertionError("the model file was parsed although its graph was kept")

    with monkeypatch.context() as patched:
        patched.setattr(fe, "parse", no_parse)
        assert np.array_equal(fe.FastEncoder(backend="onnxruntime").encode_chips(chips), expected)
    kept[0].write_bytes(kept[0].read_bytes()[:5000])  # damaged
    assert np.array_equal(fe.FastEncoder(backend="onnxruntime").encode_chips(chips), expected)
    assert kept[0].stat().st_size > 20e6  # built again and kept
    (tmp_path / "blocked").write_text("a file where the cache folder would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "blocked"))
    assert np.array_equal(fe.FastEncoder(backend="onnxruntime").encode_chips(chips), expected)


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend"):
        fe.FastEncoder(backend="tensorflow")


def test_matches_dlib_on_synthetic_chips(encoder, dlib_net):
    chips = _synthetic_chips(6)
    got = encoder.encode_chips(chips)
    ref = _dlib_chip_encodings(dlib_net, chips)
    assert got.shape == (6, 128) and got.dtype == np.float64
    assert np.abs(got - ref).max() <= TOL


def test_batch_size_does_not_change_results(encoder):
    chips = _synthetic_chips(7, seed=3)
    a = encoder.encode_chips(chips, batch_size=1)
    b = encoder.encode_chips(chips, batch_size=3)
    c = fe.load_encoder(backend=encoder.backend).encode_chips(chips)  # default batch
    assert np.abs(a - b).max() <= 1e-5
    assert np.abs(a - c).max() <= 1e-5


def test_single_chip_and_empty_input(encoder):
    chip = _synthetic_chips(3, seed=5)[2]
    assert encoder.encode_chips(chip).shape == (1, 128)
    empty = encoder.encode_chips(np.empty((0, 150, 150, 3), np.uint8))
    assert empty.shape == (0, 128)
    assert fe.face_chips(np.zeros((20, 20, 3), np.uint8), []).shape == (0, 150, 150, 3)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((2, 150, 150), np.uint8), np.zeros((1, 151, 150, 3), np.uint8), np.zeros((1, 150, 150, 3), np.float32)],
    ids=["no-channels", "wrong-size", "float"],
)
def test_rejects_bad_chips(encoder, bad):
    with pytest.raises(ValueError):
        encoder.encode_chips(bad)


def test_bad_model_file_is_reported(tmp_path, encoder):
    data = open(encoder.model_path, "rb").read()
    cases = {"truncated": data[: len(data) // 2], "header-only": data[:400], "garbage": bytes(range(256)) * 8}
    for name, blob in cases.items():
        path = tmp_path / f"{name}.dat"
        path.write_bytes(blob)
        with pytest.raises(fe.ModelFormatError):
            fe.FastEncoder(path, encoder.backend)


# --- real faces -------------------------------------------------------------


def _lfw_subset(lfw, count: int) -> list:
    files = sorted(lfw.glob("*/*.jpg"))
    step = max(1, len(files) // count)
    return files[::step][:count]


@functools.lru_cache(maxsize=None)
def _reference(path, model: str):
    """face_recognition's own faces and encodings of one photo: (image, landmark shapes, encodings),
    computed once per photo and shared by every backend's test (its HOG and dlib's encoder are the
    slow part of these comparisons)."""
    import face_recognition
    from face_recognition.api import _raw_face_landmarks

    img = face_recognition.load_image_file(str(path))
    locations = face_recognition.face_locations(img)
    if not locations:
        return img, None, np.zeros((0, 128))
    ref = np.array(face_recognition.face_encodings(img, locations, model=model))
    return img, _raw_face_landmarks(img, locations, model), ref


def _compare_photo(path, encoder, model: str = "small"):
    """(faces, max abs diff) between face_recognition.face_encodings and this module."""
    img, shapes, ref = _reference(path, model)
    if shapes is None:
        return 0, 0.0
    got = encoder.encode_chips(fe.face_chips(img, shapes))
    assert got.shape == ref.shape
    return len(ref), float(np.abs(got - ref).max())


def _compare_photos(paths, encoder, model: str = "small") -> tuple[int, float]:
    """Faces compared over ``paths`` and the largest difference seen."""
    faces, worst = 0, 0.0
    for path in paths:
        n, d = _compare_photo(path, encoder, model=model)
        faces += n
        worst = max(worst, d)
    return faces, worst


def test_matches_face_encodings_on_lfw(lfw, encoder):
    faces, worst = _compare_photos(_lfw_subset(lfw, 20), encoder)
    assert faces >= 16, f"only {faces} faces found"
    assert worst <= TOL, f"max abs difference {worst:.3g}"


def test_matches_face_encodings_on_multi_face_photos(fr_examples, encoder):
    paths = sorted((fr_examples / "_multi_face").iterdir()) + [fr_examples / "obama" / "examples__obama-480p.jpg"]
    faces, worst = _compare_photos([p for p in paths if p.suffix.lower() in (".jpg", ".jpeg", ".png")], encoder)
    assert faces >= 5, f"only {faces} faces found"
    assert worst <= TOL, f"max abs difference {worst:.3g}"


def test_matches_face_encodings_with_68_point_shapes(lfw, encoder):
    faces, worst = _compare_photos(_lfw_subset(lfw, 6), encoder, model="large")
    assert faces >= 4
    assert worst <= TOL, f"max abs difference {worst:.3g}"


def test_chips_match_dlib_get_face_chip(lfw):
    import dlib
    import face_recognition
    from face_recognition.api import _raw_face_landmarks

    img = face_recognition.load_image_file(str(_lfw_subset(lfw, 1)[0]))
    shapes = _raw_face_landmarks(img, face_recognition.face_locations(img), "small")
    chips = fe.face_chips(img, shapes)
    for chip, shape in zip(chips, shapes):
        ref = np.asarray(dlib.get_face_chip(img, shape, size=150, padding=0.25))
        assert np.array_equal(chip, ref)
