"""benchmarks/lfw_verification.py: reading pairs.txt, the central face, the 10-fold protocol."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import lfw_verification as lv  # noqa: E402


def test_pairs_are_read_into_folds(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("2\t1\nAnn\t1\t2\nBob\t1\tCy\t3\nDee\t2\t4\nEve\t1\tFay\t12\n")
    folds = lv.read_pairs(pairs)
    assert folds == [
        [("Ann/Ann_0001.jpg", "Ann/Ann_0002.jpg", True), ("Bob/Bob_0001.jpg", "Cy/Cy_0003.jpg", False)],
        [("Dee/Dee_0002.jpg", "Dee/Dee_0004.jpg", True), ("Eve/Eve_0001.jpg", "Fay/Fay_0012.jpg", False)],
    ]
    pairs.write_text("2\t1\nAnn\t1\t2\n")
    with pytest.raises(ValueError):
        lv.read_pairs(pairs)


def test_the_face_nearest_the_centre_is_compared(tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "Ann").mkdir()
    photo = tmp_path / "Ann" / "Ann_0001.jpg"
    Image.new("RGB", (250, 250)).save(photo)
    corner = {"imagePath": str(photo), "loc": (0, 60, 60, 0), "encoding": np.zeros(128)}
    centre = {"imagePath": str(photo), "loc": (90, 160, 160, 90), "encoding": np.ones(128)}
    faces = lv.central_faces([corner, centre], tmp_path)
    assert list(faces) == ["Ann/Ann_0001.jpg"] and faces["Ann/Ann_0001.jpg"][0] == 1.0


def test_ten_fold_learns_the_threshold_on_the_other_folds() -> None:
    rng = np.random.default_rng(0)
    per_fold = []
    for _ in range(10):
        same = np.array([True] * 30 + [False] * 30)
        dist = np.where(same, rng.uniform(0.2, 0.5, 60), rng.uniform(0.7, 1.0, 60))
        dist[0] = np.inf  # a same-person pair with a face-less photo: judged "different"
        per_fold.append((dist, same))
    accuracies, thresholds = lv.ten_fold(per_fold)
    assert all(0.5 < t < 0.7 for t in thresholds)
    assert accuracies == [pytest.approx(59 / 60)] * 10


def test_pairs_are_fetched_once_and_checksum_checked(tmp_path: Path) -> None:
    """Without a local copy, pairs.txt is downloaded (here from a file:// URL), kept only if its MD5 matches."""
    from facecluster import sample_data

    source = tmp_path / "official.txt"
    source.write_text("1\t1\nAnn\t1\t2\nBob\t1\tCy\t1\n")
    url, md5 = source.as_uri(), sample_data.md5_of(source)
    target = tmp_path / "cache" / "lfw-pairs.txt"
    assert sample_data.fetch_checked(url, md5, target) == target and target.read_text() == source.read_text()
    source.write_text("tampered")
    assert sample_data.fetch_checked(url, md5, target).read_text().startswith("1\t1")  # cached: not fetched again
    with pytest.raises(RuntimeError, match="checksum mismatch"):
        sample_data.fetch_checked(url, md5, tmp_path / "cache" / "other.txt")
    assert not (tmp_path / "cache" / "other.txt").exists() and not (tmp_path / "cache" / "other.txt.part").exists()
    (tmp_path / "lfw").mkdir()
    (tmp_path / "lfw" / "pairs.txt").write_text("x")
    assert sample_data.find_lfw_pairs(tmp_path / "lfw") == tmp_path / "lfw" / "pairs.txt"  # a local copy wins
