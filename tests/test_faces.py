"""Detectors and encoders with the real models, against face_recognition's own API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facecluster.detect import detectors
from facecluster.detect.detectors import CnnDetector, HogDetector, choose_detector
from facecluster.embed.encoders import DlibEncoder, OnnxEncoder, choose_encoder
from facecluster.run.pipeline import Method, task_size
from facecluster.sources.images import load_image

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "size, detector, expected",
    [
        ((250, 250), HogDetector(), 2.0),  # small: upsampled like face_recognition
        ((92, 112), HogDetector(), 2.0),  # capped at 2x
        ((400, 300), HogDetector(), 1.75),  # up to min_detect_side
        ((674, 480), HogDetector(), 700 / 674),
        ((900, 480), CnnDetector(), 1.0),
        ((4000, 3000), HogDetector(), 0.5),  # down to max_detect_side
        ((4000, 3000), HogDetector(max_detect_side=0), 1.0),
        ((250, 250), HogDetector(upsample=0), 1.0),
        ((250, 250), HogDetector(upsample=2), 4.0),
        ((1500, 1000), CnnDetector(upsample=1), 2000 / 1500),
    ],
)
def test_detection_scale(size, detector, expected) -> None:
    assert detector.detection_scale(*size) == pytest.approx(expected)


def test_settings_are_validated() -> None:
    for bad in (lambda: HogDetector(upsample=9), lambda: HogDetector(max_detect_side=10),
                lambda: CnnDetector(batch_size=0), lambda: DlibEncoder(num_jitters=0),
                lambda: DlibEncoder(num_jitters=2, mirror=True),  # dlib's jitter replaces the mirror pass
                lambda: OnnxEncoder(num_jitters=2),
                lambda: OnnxEncoder(landmarks="huge"), lambda: choose_detector("sift"),
                lambda: choose_encoder("torch")):
        with pytest.raises(ValueError):
            bad()


@pytest.mark.parametrize(
    "cuda, requested, name, why",
    [
        (False, "auto", "hog+cnn", "dlib has no CUDA here: HOG, and dlib's CNN (with onnxruntime) on photos where HOG finds no face"),
        (True, "auto", "cnn", "dlib was built with CUDA"),
        (False, "cnn", "cnn-numpy", "asked for; dlib has no CUDA here, so dlib's CNN runs with onnxruntime (same boxes, ~0.3 s per web photo)"),
        (True, "cnn", "cnn", "asked for"),
        (True, "hog", "hog", "asked for"),
    ],
)
def test_detector_choice_with_and_without_cuda(monkeypatch, cuda, requested, name, why) -> None:
    monkeypatch.setattr(detectors, "cuda_available", lambda: cuda)
    detector, said = choose_detector(requested, batch_size=8, upsample=0)
    assert (detector.name, said) == (name, why)
    scale_key = "up=0/max=2000/min=700/crop=112"
    expected_key = f"hog+cnn/hog/{scale_key}/cnn-numpy/{scale_key}" if name == "hog+cnn" else f"{name}/{scale_key}"
    assert detector.cache_key() == expected_key
    assert detector.photos_per_task == (8 if (name, cuda) == ("cnn", True) else 1)  # batches gain on CUDA only
    assert detectors.slow_on_this_machine(detector, photos=60, workers=2) is None  # the numpy CNN is not dlib's


def test_dlibs_own_cnn_without_cuda_warns(monkeypatch) -> None:
    monkeypatch.setattr(detectors, "cuda_available", lambda: False)
    assert detectors.slow_on_this_machine(CnnDetector(), photos=60, workers=2) == (
        "CNN detection on the CPU: expect up to about 11 minutes for 60 photo(s) of web size; -d hog is far faster")


def test_jitters_run_dlibs_encoder_and_say_so() -> None:
    encoder, why = choose_encoder("numpy", "small", 3)
    assert isinstance(encoder, DlibEncoder) and not encoder.mirror and encoder.cache_key() == "jit=3/lm=small/enc=dlib"
    assert "--jitters 3 needs dlib's encoder" in why and "in place of the mirror pass" in why
    encoder, why = choose_encoder("dlib", "small", 3)
    assert encoder == DlibEncoder("small", 3, mirror=False) and "in place of the mirror pass" in why
    encoder, _ = choose_encoder("numpy", "large", 1)
    assert isinstance(encoder, OnnxEncoder) and encoder.cache_key() == "jit=1/lm=large/enc=numpy/mirror-x1.034"
    method = Method(HogDetector(), DlibEncoder("small", 2, mirror=False))
    assert method.cache_key() == "v3/hog/up=None/max=2000/min=700/crop=112/jit=2/lm=small/enc=dlib"


def test_the_mirror_pass_is_the_default_said_and_keyed() -> None:
    """Encodings with and without the mirror pass never share cache rows; without it (--no-mirror), the key of before."""
    encoder, why = choose_encoder("numpy")
    assert encoder == OnnxEncoder("small", 1, mirror=True) and "its mirror image, averaged" in why
    single, why = choose_encoder("numpy", mirror=False)
    assert single == OnnxEncoder(mirror=False) and "as face_recognition does (--no-mirror)" in why
    assert encoder.cache_key() == "jit=1/lm=small/enc=numpy/mirror-x1.034"  # averaged without the rescaling: /mirror
    assert single.cache_key() == "jit=1/lm=small/enc=numpy"  # what every cache row was keyed before the mirror pass
    assert choose_encoder("dlib", mirror=True)[0].cache_key() == "jit=1/lm=small/enc=dlib/mirror-x1.034"
    assert Method(HogDetector(), encoder).cache_key() != Method(HogDetector(), single).cache_key()


def test_same_boxes_and_encodings_as_face_recognition(lfw: Path) -> None:
    """At 2x (LFW's 250 px photos) we must match the tutorial's calls exactly."""
    import face_recognition

    photos = sorted((lfw / "Aaron_Peirsol").glob("*.jpg"))[:3] + sorted((lfw / "Abdullah_Gul").glob("*.jpg"))[:3]
    for photo in photos:
        rgb = load_image(str(photo)).rgb
        ours = HogDetector().detect(rgb)
        theirs = face_recognition.face_locations(rgb, model="hog")
        assert ours == theirs
        theirs_enc = np.array(face_recognition.face_encodings(rgb, theirs))
        with_dlib = np.array(DlibEncoder(mirror=False).encode(rgb, ours))
        with_numpy = np.array(OnnxEncoder(mirror=False).encode(rgb, ours))
        assert len(with_numpy) == len(with_dlib) == len(theirs_enc) >= 1
        assert np.abs(with_dlib - theirs_enc).max() < 1e-9
        assert np.abs(with_numpy - theirs_enc).max() < 1e-4


def test_the_mirror_pass_averages_face_recognitions_encodings_of_the_photo_and_its_mirror(fr_examples: Path) -> None:
    """--mirror's encoding is the mean of face_recognition's encodings of each face in the photo and
    in the photo mirrored left to right, stretched about the fixed centre by the fixed factor
    (mirror_scale); it is the same for both, and not the single pass."""
    import face_recognition

    from facecluster.embed.mirror_scale import MIRROR_CENTRE, MIRROR_SCALE

    rgb = load_image(str(fr_examples / "_multi_face" / "examples__two_people.jpg")).rgb
    mirrored = np.ascontiguousarray(rgb[:, ::-1])
    boxes = face_recognition.face_locations(rgb)
    last = rgb.shape[1] - 1
    mirrored_boxes = [(top, last - left, bottom, last - right) for top, right, bottom, left in boxes]
    assert len(boxes) == 2
    averaged = (np.array(face_recognition.face_encodings(rgb, boxes))
                + np.array(face_recognition.face_encodings(mirrored, mirrored_boxes))) / 2
    expected = MIRROR_CENTRE + MIRROR_SCALE * (averaged - MIRROR_CENTRE)
    # the two faces' distance, stretched by the factor
    assert np.linalg.norm(expected[0] - expected[1]) == pytest.approx(MIRROR_SCALE * np.linalg.norm(averaged[0] - averaged[1]))
    with_numpy = np.array(OnnxEncoder(mirror=True).encode(rgb, boxes))
    assert np.abs(with_numpy - expected).max() < 1e-4
    assert np.abs(np.array(DlibEncoder(mirror=True).encode(rgb, boxes)) - expected).max() < 1e-9
    assert np.abs(np.array(OnnxEncoder(mirror=True).encode(mirrored, mirrored_boxes)) - with_numpy).max() < 1e-6
    single = np.array(OnnxEncoder().encode(rgb, boxes))
    assert np.linalg.norm(single - with_numpy, axis=1).min() > 0.02  # the mirror pass is not a no-op


def test_large_photo_detected_on_a_reduced_copy(fr_examples: Path) -> None:
    photo = fr_examples / "obama" / "examples__obama-1080p.jpg"
    rgb = load_image(str(photo)).rgb
    assert max(rgb.shape) > 1000
    faces = Method(HogDetector(max_detect_side=800), OnnxEncoder()).find_faces([rgb])[0]
    assert len(faces) == 1
    top, right, bottom, left = faces[0].box
    assert bottom - top > 150  # mapped back to the photo's own pixels
    full = Method(HogDetector(upsample=0, max_detect_side=0), OnnxEncoder()).find_faces([rgb])[0]
    assert np.linalg.norm(faces[0].encoding - full[0].encoding) < 0.15  # same person, same pixels


def test_cnn_batch_matches_single(lfw: Path) -> None:
    """The batched CNN path (fast on CUDA) gives what the per-photo path gives."""
    photos = sorted((lfw / "Aaron_Peirsol").glob("*.jpg"))[:2]
    # The faces cut out at two sizes (180 and 160 px): a batch of unequal photos, and the CNN on CPU costs
    # by the pixel, so the whole 250 px photos would only cost time.
    rgbs = [load_image(str(p)).rgb[cut:-cut, cut:-cut].copy() for p, cut in zip(photos, (35, 45))]
    for detector in (CnnDetector(upsample=0, batch_size=2), CnnDetector(batch_size=2), CnnDetector(max_detect_side=400, batch_size=2)):
        batched = detector.detect_batch(rgbs)  # 1x, 2x by dlib, 1.6x resized
        single = [detector.detect(rgb) for rgb in rgbs]
        assert batched == single
        assert all(len(boxes) >= 1 for boxes in batched)


def test_workers_are_spawned_where_dlib_has_cuda(monkeypatch, fr_examples: Path) -> None:
    """A CUDA context does not survive a fork, and a dlib built with CUDA put the CNN on the GPU
    when the parent preloaded it: there the pool spawns its workers, which load their own models
    and find what the parent finds."""
    from facecluster.models import dlib_models
    from facecluster.run import pipeline, pool

    # Linux without CUDA (dlib-bin): forked, the workers share the preloaded models
    assert pool.start_method() == ("spawn" if dlib_models.cuda_available() else "fork")
    monkeypatch.setattr(dlib_models, "cuda_available", lambda: True)
    assert pool.start_method() == "spawn"
    photos = [str(fr_examples / "_multi_face" / "examples__knn_examples__test__obama_and_biden.jpg"),
              str(fr_examples / "obama" / "examples__obama_small.jpg")]
    method = Method(HogDetector(), OnnxEncoder())
    spawned = {result.path: result for result in pipeline.run_in_processes([[photo] for photo in photos], method, 2)}
    for here in pipeline.encode_photos(photos, method):
        there = spawned[here.path]
        assert there.status == here.status == "faces"
        assert [face.box for face in there.faces] == [face.box for face in here.faces]
        assert np.allclose([face.encoding for face in there.faces], [face.encoding for face in here.faces], atol=1e-6)
    assert len(spawned[photos[0]].faces) >= 2  # Obama and Biden at least


def test_models_load_without_pkg_resources(fr_examples: Path) -> None:
    """setuptools 81+ and fresh 3.12 venvs have no pkg_resources; face_recognition_models needs it."""
    photo = fr_examples / "obama" / "examples__obama_small.jpg"
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'pkg_resources': raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from facecluster.detect.detectors import HogDetector\n"
        "from facecluster.embed.encoders import OnnxEncoder\n"
        "from facecluster.run.pipeline import Method\n"
        "from facecluster.sources.images import load_image\n"
        f"print(len(Method(HogDetector(), OnnxEncoder()).find_faces([load_image({str(photo)!r}).rgb])[0]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == "1"
    assert "Please install" not in out.stdout


def test_small_face_in_a_large_photo_is_found_on_a_second_look(lfw: Path) -> None:
    """A ~45 px face in a 1600 px photo: too small at 1x, found at the retry scale."""
    import cv2

    portrait = load_image(str(sorted((lfw / "Aaron_Peirsol").glob("*.jpg"))[0])).rgb
    canvas = np.full((1200, 1600, 3), 110, np.uint8)
    canvas[500:600, 700:800] = cv2.resize(portrait, (100, 100), interpolation=cv2.INTER_AREA)
    detector = HogDetector()
    assert detector.retry_scale(1600, 1200) == 2.0
    assert detector.look(canvas, 1.0) == []  # the first look misses it
    boxes = detector.detect(canvas)
    assert len(boxes) == 1
    top, right, bottom, left = boxes[0]
    assert 480 < top < 600 and 700 <= left < 760
    assert HogDetector(upsample=0).retry_scale(1600, 1200) is None  # a fixed scale is obeyed
    assert detector.retry_scale(250, 250) == 4.0  # a small photo, already at 2x, is seen at 4x
    assert detector.retry_scale(400, 300) is None  # 1.75x, and 2x would hardly differ


class _Found:
    """What dlib's CNN detector returns per face: an object with a ``rect``."""

    def __init__(self, box):
        from facecluster.records import box_to_dlib

        self.rect = box_to_dlib(box)


def test_single_and_batched_detection_drop_the_same_unusable_boxes(monkeypatch) -> None:
    """Both paths clip boxes to the picture and drop empty ones (the batch path once forgot to)."""
    found = [(10, 50, 10, 20), (-5, 90, 40, 30), (20, 200, 60, 150)]  # empty, overhanging, outside

    def fake_cnn(images, upsample, batch_size=None):
        if isinstance(images, list):
            return [[_Found(box) for box in found] for _ in images]
        return [_Found(box) for box in found]

    monkeypatch.setattr(detectors, "cnn_detector", lambda: fake_cnn)
    rgb = np.zeros((100, 120, 3), np.uint8)
    detector = CnnDetector(upsample=0)
    # the empty box goes, the overhanging one is clipped, the one beyond the right edge is empty once clipped
    assert detector.detect(rgb) == detector.detect_batch([rgb, rgb])[1] == [(0, 90, 40, 30)]


def test_photos_encoded_together_get_their_own_encodings(fr_examples: Path, lfw: Path) -> None:
    """A worker's task of several photos runs all their faces through the network as one batch:
    each photo (one without faces among them) gets exactly what it gets alone, in order."""
    rgbs = [load_image(str(p)).rgb for p in (fr_examples / "_multi_face" / "examples__two_people.jpg",
                                             sorted((lfw / "Aaron_Peirsol").glob("*.jpg"))[0])]
    box_lists = [HogDetector().detect(rgb) for rgb in rgbs]
    rgbs.insert(1, np.zeros((60, 80, 3), np.uint8))
    box_lists.insert(1, [])
    assert [len(boxes) for boxes in box_lists] == [2, 0, 1]
    for mirror in (True, False):
        encoder = OnnxEncoder(mirror=mirror)
        together = encoder.encode_batch(rgbs, box_lists)
        alone = [encoder.encode(rgb, boxes) for rgb, boxes in zip(rgbs, box_lists)]
        assert [len(faces) for faces in together] == [2, 0, 1]
        assert all(np.abs(np.array(a) - np.array(t)).max() < 1e-5 for a, t in zip(alone, together) if a)
    assert Method(HogDetector(), OnnxEncoder()).photos_per_task == 4
    assert Method(HogDetector(), DlibEncoder()).photos_per_task == 1
    # a short run is cut finer, so no worker waits long for another's last task
    assert [task_size(photos, 4, 2) for photos in (26, 40, 64, 3474)] == [1, 2, 4, 4]
    assert task_size(26, 4, 1) == 4 and task_size(0, 4, 2) == 1
