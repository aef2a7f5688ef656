"""Detection and encoding with the real models, against face_recognition's own API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facecluster.encode.detectors import (
    DetectionOptions,
    detect_faces,
    detect_faces_batch,
    detection_scale,
    encode_faces,
    find_faces,
    resolve_detection_method,
)
from facecluster.images import load_image

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "size, options, expected",
    [
        ((250, 250), DetectionOptions(), 2.0),  # small: upsampled like face_recognition
        ((92, 112), DetectionOptions(), 2.0),  # capped at 2x
        ((400, 300), DetectionOptions(), 1.75),  # up to min_detect_side
        ((674, 480), DetectionOptions(), 700 / 674),
        ((900, 480), DetectionOptions(), 1.0),
        ((4000, 3000), DetectionOptions(), 0.5),  # down to max_detect_side
        ((4000, 3000), DetectionOptions(max_detect_side=0), 1.0),
        ((250, 250), DetectionOptions(upsample=0), 1.0),
        ((250, 250), DetectionOptions(upsample=2), 4.0),
        ((1500, 1000), DetectionOptions(upsample=1), 2000 / 1500),
    ],
)
def test_detection_scale(size, options, expected) -> None:
    assert detection_scale(*size, options) == pytest.approx(expected)


def test_options_are_validated() -> None:
    with pytest.raises(ValueError):
        DetectionOptions(method="sift")
    with pytest.raises(ValueError):
        DetectionOptions(upsample=9)
    with pytest.raises(ValueError):
        DetectionOptions(num_jitters=0)
    with pytest.raises(ValueError):
        DetectionOptions(max_detect_side=10)
    with pytest.raises(ValueError):
        resolve_detection_method("sift")


def test_auto_method_without_cuda_is_hog() -> None:
    method, why = resolve_detection_method("auto")
    import dlib

    assert method == ("cnn" if dlib.DLIB_USE_CUDA else "hog")
    if not dlib.DLIB_USE_CUDA:
        assert "22 s" in resolve_detection_method("cnn")[1]


def test_same_boxes_and_encodings_as_face_recognition(lfw: Path) -> None:
    """At 2x (LFW's 250 px photos) we must match the tutorial's calls exactly."""
    import face_recognition

    photos = sorted((lfw / "Aaron_Peirsol").glob("*.jpg"))[:3] + sorted((lfw / "Abdullah_Gul").glob("*.jpg"))[:3]
    for photo in photos:
        rgb = load_image(str(photo)).rgb
        ours = detect_faces(rgb, DetectionOptions())
        theirs = face_recognition.face_locations(rgb, model="hog")
        assert ours == theirs
        theirs_enc = np.array(face_recognition.face_encodings(rgb, theirs))
        with_dlib = np.array(encode_faces(rgb, ours, encoder="dlib"))
        with_numpy = np.array(encode_faces(rgb, ours, encoder="numpy"))
        assert len(with_numpy) == len(with_dlib) == len(theirs_enc) >= 1
        assert np.abs(with_dlib - theirs_enc).max() < 1e-9
        assert np.abs(with_numpy - theirs_enc).max() < 1e-4


def test_large_photo_detected_on_a_reduced_copy(fr_examples: Path) -> None:
    photo = fr_examples / "obama" / "examples__obama-1080p.jpg"
    rgb = load_image(str(photo)).rgb
    assert max(rgb.shape) > 1000
    faces = find_faces(rgb, DetectionOptions(max_detect_side=800))
    assert len(faces) == 1
    top, right, bottom, left = faces[0].box
    assert bottom - top > 150  # mapped back to the photo's own pixels
    full = find_faces(rgb, DetectionOptions(upsample=0, max_detect_side=0))
    assert np.linalg.norm(faces[0].encoding - full[0].encoding) < 0.15  # same person, same pixels


def test_cnn_batch_matches_single(lfw: Path) -> None:
    """The batched CNN path (fast on CUDA) gives what the per-photo path gives."""
    photos = sorted((lfw / "Aaron_Peirsol").glob("*.jpg"))[:2]
    rgbs = [load_image(str(p)).rgb for p in photos]
    cases = (DetectionOptions(method="cnn", upsample=0), DetectionOptions(method="cnn"), DetectionOptions(method="cnn", max_detect_side=400))
    for options in cases:
        batched = detect_faces_batch(rgbs, options, batch_size=2)  # 1x, 2x by dlib, 1.6x resized
        single = [detect_faces(rgb, options) for rgb in rgbs]
        assert batched == single
        assert all(len(boxes) >= 1 for boxes in batched)


def test_models_load_without_pkg_resources(fr_examples: Path) -> None:
    """setuptools 81+ and fresh 3.12 venvs have no pkg_resources; face_recognition_models needs it."""
    photo = fr_examples / "obama" / "examples__obama_small.jpg"
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'pkg_resources': raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from facecluster.encode.detectors import find_faces, DetectionOptions\n"
        "from facecluster.images import load_image\n"
        f"print(len(find_faces(load_image({str(photo)!r}).rgb, DetectionOptions())))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == "1"
    assert "Please install" not in out.stdout


def test_small_face_in_a_large_photo_is_found_on_a_second_look(lfw: Path) -> None:
    """A ~45 px face in a 1600 px photo: too small at 1x, found at the retry scale."""
    import cv2

    from facecluster.encode.detectors import retry_scale

    portrait = load_image(str(sorted((lfw / "Aaron_Peirsol").glob("*.jpg"))[0])).rgb
    canvas = np.full((1200, 1600, 3), 110, np.uint8)
    canvas[500:600, 700:800] = cv2.resize(portrait, (100, 100), interpolation=cv2.INTER_AREA)
    options = DetectionOptions()
    assert retry_scale(1600, 1200, options) == 2.0
    from facecluster.encode.detectors import _detect_at

    assert _detect_at(canvas, "hog", 1.0) == []  # the first look misses it
    boxes = detect_faces(canvas, options)
    assert len(boxes) == 1
    top, right, bottom, left = boxes[0]
    assert 480 < top < 600 and 700 <= left < 760
    assert retry_scale(1600, 1200, DetectionOptions(upsample=0)) is None  # a fixed scale is obeyed
    assert retry_scale(250, 250, options) is None  # already at 2x
