"""Models kept on disk between runs (facecluster.models.cache): built once,
read back after, built again when damaged, built every time when there is nowhere
to keep them; and the kept HOG detector finds exactly what dlib's own does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facecluster.models import cache as model_cache


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "facecluster"


def test_built_once_then_read_back(cache_home: Path) -> None:
    builds = []

    def build(path: Path) -> None:
        builds.append(path)
        path.write_text("model v1")

    def load(path: Path) -> str:
        text = path.read_text()
        if not text.startswith("model"):
            raise ValueError("damaged")
        return text

    assert model_cache.kept("toy.bin", "key", build, load) == "model v1"
    assert model_cache.kept("toy.bin", "key", build, load) == "model v1"
    assert len(builds) == 1
    [kept] = cache_home.glob("toy-*.bin")
    kept.write_text("garbage")
    assert model_cache.kept("toy.bin", "key", build, load) == "model v1" and len(builds) == 2
    assert kept.read_text() == "model v1"  # mended
    (cache_home / "toy-notes.bin").write_text("not one of ours")
    assert model_cache.kept("toy.bin", "other key", build, load) == "model v1" and len(builds) == 3
    # the file kept for the old key is gone (no scratch files either); other files are left alone
    assert sorted(p.name for p in cache_home.iterdir()) == sorted([kept_now.name for kept_now in cache_home.glob("toy-????????????????.bin")] + ["toy-notes.bin"])
    assert not kept.exists() and len(list(cache_home.glob("toy-????????????????.bin"))) == 1


def test_nowhere_to_keep_it_still_builds(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "blocked").write_text("a file where the cache folder would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "blocked"))
    assert model_cache.kept("toy.bin", "key", lambda path: path.write_text("built"), Path.read_text) == "built"


def test_no_home_means_no_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(model_cache.os.path, "expanduser", lambda path: path)  # '~' stays '~': no home
    monkeypatch.chdir(tmp_path)
    assert model_cache.cache_folder() is None
    assert model_cache.kept("toy.bin", "key", lambda path: path.write_text("built"), Path.read_text) == "built"
    assert list(tmp_path.iterdir()) == []  # nothing left in the working folder


def test_kept_hog_detector_finds_what_dlibs_own_finds(cache_home: Path, lfw: Path, fr_examples: Path) -> None:
    import dlib
    import face_recognition

    from facecluster.models import dlib_models as models

    models.hog_detector.cache_clear()
    try:
        built = models.hog_detector()  # built and kept
        models.hog_detector.cache_clear()
        kept = models.hog_detector()  # read back
        assert len(list(cache_home.glob("hog-frontal-face-*.svm"))) == 1
    finally:
        models.hog_detector.cache_clear()
    own = dlib.get_frontal_face_detector()
    photos = sorted(lfw.glob("*/*.jpg"))[::1500] + [fr_examples / "_multi_face" / "examples__two_people.jpg"]
    for photo in photos:
        rgb = face_recognition.load_image_file(str(photo))
        for detector in (built, kept):
            boxes, scores, filters = detector.run(rgb, 1, -0.5)
            own_boxes, own_scores, own_filters = own.run(rgb, 1, -0.5)
            assert [str(b) for b in boxes] == [str(b) for b in own_boxes]
            assert np.allclose(scores, own_scores) and list(filters) == list(own_filters)
