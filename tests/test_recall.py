"""Finding the faces HOG misses on a CPU: the numpy CNN, ``-d auto``'s HOG-then-CNN, face crops.

dlib's own CNN is slow without BLAS (~2.5 s per LFW photo at 2x), so the
photos compared with it are few and small.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import inclusive_iou, run_script
from facecluster.detect import detectors
from facecluster.detect.detectors import CnnDetector, HogDetector, HogThenCnn, OnnxCnnDetector
from facecluster.sources.images import load_image

IOU = 0.95
LFW_PHOTOS = ["Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "AJ_Cook/AJ_Cook_0001.jpg"]
GLINT_CROP = "glint_aligned_crops/Barack Obama/102.png"


def _same_boxes(ours: list, dlibs: list) -> None:
    assert len(ours) == len(dlibs) >= 1, (ours, dlibs)
    for box in dlibs:
        assert max(inclusive_iou(box, mine) for mine in ours) >= IOU, (ours, dlibs)


# --- no data needed ---------------------------------------------------------


class _Fake:
    """A detector stage that returns fixed boxes and counts its calls."""

    def __init__(self, boxes: list) -> None:
        self.boxes, self.calls, self.quick_calls = boxes, 0, 0

    def detect(self, rgb: np.ndarray) -> list:
        self.calls += 1
        return self.boxes

    def quick_look(self, rgb: np.ndarray) -> list:
        self.quick_calls += 1
        return self.boxes


def test_auto_pays_for_the_cnn_only_where_hog_finds_nothing() -> None:
    rgb = np.zeros((50, 60, 3), np.uint8)
    hog, cnn = _Fake([(1, 20, 20, 1)]), _Fake([(5, 30, 30, 5)])
    assert HogThenCnn(hog, cnn).detect_batch([rgb]) == [[(1, 20, 20, 1)]]  # type: ignore[arg-type]
    assert cnn.calls == 0
    hog.boxes = []
    assert HogThenCnn(hog, cnn).detect(rgb) == [(5, 30, 30, 5)]  # type: ignore[arg-type]
    assert cnn.calls == 1


def test_a_quick_look_is_the_first_look_alone(monkeypatch) -> None:
    """Video frames: no larger look, no crop look where the first look finds nothing; the full look has both."""
    looks: list[tuple[tuple[int, ...], int]] = []

    def run(self, image: np.ndarray, upsample: int) -> list:
        looks.append((image.shape[:2], upsample))
        return []

    monkeypatch.setattr(HogDetector, "_run", run)
    rgb = np.zeros((300, 280, 3), np.uint8)  # shaped like a face crop, under 700 px: every look applies
    assert HogDetector().detect(rgb) == [] and len(looks) == 3  # first look (2x), 4x look, crop look
    looks.clear()
    assert HogDetector().quick_look(rgb) == [] and looks == [((300, 280), 1)]  # the first look: 2x, by dlib
    hog, cnn = _Fake([(1, 20, 20, 1)]), _Fake([(5, 30, 30, 5)])  # -d auto: HOG's first look, else the CNN's
    assert HogThenCnn(hog, cnn).quick_look(rgb) == [(1, 20, 20, 1)] and cnn.quick_calls == 0  # type: ignore[arg-type]
    hog.boxes = []
    assert HogThenCnn(hog, cnn).quick_look(rgb) == [(5, 30, 30, 5)]  # type: ignore[arg-type]
    assert (hog.quick_calls, cnn.quick_calls, hog.calls + cnn.calls) == (2, 1, 0)  # no full look of either
    monkeypatch.setattr(HogDetector, "_run", lambda self, image, upsample: [(-4, 20, 20, 3)])
    assert HogDetector().quick_look(rgb) == [(0, 20, 20, 3)]  # clipped to the photo


def test_crop_look_maps_boxes_back_and_drops_mirrored_faces(monkeypatch) -> None:
    """The padded look's boxes come back in the photo's pixels; a box centred in the mirrored border goes."""
    pad = round(detectors.CROP_BORDER * detectors.CROP_SIDE)
    side = detectors.CROP_SIDE
    found = [(pad, pad + side - 1, pad + side - 1, pad), (0, pad - 1, pad - 1, 0)]  # the whole picture; the border
    monkeypatch.setattr(OnnxCnnDetector, "_run", lambda self, image, upsample: found)
    boxes = OnnxCnnDetector().crop_look(np.zeros((224, 224, 3), np.uint8))
    assert boxes == [(0, 222, 222, 0)]  # 2x back to the 224 px photo


@pytest.mark.parametrize("shape", [(360, 640, 3), (1280, 720, 3), (700, 700, 3)])
def test_no_crop_look_where_the_picture_is_not_shaped_like_a_face_crop(monkeypatch, shape) -> None:
    """A wide video frame or a large photo: the crop look's finds there were false faces."""
    pad = round(detectors.CROP_BORDER * detectors.CROP_SIDE)
    middle = [(pad + 10, pad + 60, pad + 60, pad + 10)]
    monkeypatch.setattr(OnnxCnnDetector, "_run", lambda self, image, upsample: middle)
    assert OnnxCnnDetector().crop_look(np.zeros(shape, np.uint8)) == []
    assert OnnxCnnDetector().crop_look(np.zeros((250, 200, 3), np.uint8)) != []


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 300, 3), (300, 2, 3), (7, 5, 3)])
def test_tiny_and_thin_pictures_give_no_error(shape) -> None:
    rgb = np.full(shape, 128, np.uint8)
    assert HogDetector().detect(rgb) == []


# --- real photos (FACES_DATA) ----------------------------------------------


@pytest.mark.parametrize("name", LFW_PHOTOS)
def test_numpy_cnn_detector_gives_dlibs_cnn_boxes(lfw: Path, name: str) -> None:
    """Through the detector objects, at the scale encode_faces.py picks (2x for LFW's 250 px)."""
    rgb = load_image(str(lfw / name)).rgb
    _same_boxes(OnnxCnnDetector().detect(rgb), CnnDetector(batch_size=1).detect(rgb))


def test_auto_finds_the_face_in_an_aligned_crop(faces_data: Path) -> None:
    """A 112x112 aligned crop: the face fills the picture, HOG at 2x misses it, auto finds it."""
    rgb = load_image(str(faces_data / GLINT_CROP)).rgb
    assert HogDetector().look(rgb, 2.0) == []
    boxes = HogThenCnn(HogDetector(), OnnxCnnDetector()).detect(rgb)
    assert len(boxes) == 1
    top, right, bottom, left = boxes[0]
    assert bottom - top > 50 and right - left > 50  # a face that fills much of the picture


def test_encode_faces_with_cnn_on_a_cpu(tmp_path: Path, lfw: Path) -> None:
    """``-d cnn`` without CUDA runs the numpy CNN, says so, and finds dlib's CNN's faces."""
    from facecluster.models.dlib_models import cuda_available
    from facecluster.store import load_encodings

    if cuda_available():
        pytest.skip("dlib has CUDA here: -d cnn runs dlib's own CNN")
    dataset = tmp_path / "photos"
    dataset.mkdir()
    for name in LFW_PHOTOS:
        (dataset / Path(name).name).symlink_to(lfw / name)
    encodings = tmp_path / "enc.pickle"
    proc = run_script("encode_faces.py", "-i", str(dataset), "-e", str(encodings), "-d", "cnn", "-w", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "detection method: cnn-numpy (asked for; dlib has no CUDA here" in proc.stdout
    records = load_encodings(str(encodings))
    for name in LFW_PHOTOS:
        ours = [r["loc"] for r in records if Path(r["imagePath"]).name == Path(name).name]
        _same_boxes(ours, CnnDetector(batch_size=1).detect(load_image(str(lfw / name)).rgb))
