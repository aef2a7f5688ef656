"""The demo dataset: the right 129 LFW photos, shuffled names, the key kept outside."""

from __future__ import annotations

import csv
import hashlib
import io
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from facecluster import sample_data


def test_demo_dataset_from_lfw(tmp_path: Path, lfw: Path) -> None:
    dataset, key = tmp_path / "dataset", tmp_path / "dataset.key.csv"
    assert sample_data.build_dataset(lfw, dataset, key) == 129
    names = sorted(p.name for p in dataset.iterdir())
    assert names == [f"{i:08d}.jpg" for i in range(129)]
    with open(key, newline="") as handle:
        rows = list(csv.DictReader(handle))
    counts = Counter(row["identity"] for row in rows)
    assert sorted(counts.values()) == [1, 1, 1, 1, 25, 25, 25, 25, 25]
    assert [row["path"] for row in rows] == names
    # shuffled: the first 25 names are not all one person
    assert len({row["identity"] for row in rows[:25]}) > 1
    # every file is a photo of the person the key says, byte for byte
    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    photos_of = {person: {digest(p) for p in (lfw / person).glob("*.jpg")} for person in counts}
    assert [row["path"] for row in rows if digest(dataset / row["path"]) not in photos_of[row["identity"]]] == []
    # deterministic
    again = tmp_path / "again"
    sample_data.build_dataset(lfw, again, tmp_path / "again.csv")
    assert (tmp_path / "again.csv").read_text() == key.read_text()


def _tiny_archive(folder: Path) -> tuple[Path, str]:
    archive = folder / "lfw-deepfunneled.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b"not really a photo"
        info = tarfile.TarInfo("lfw-deepfunneled/Some_One/Some_One_0001.jpg")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return archive, hashlib.md5(archive.read_bytes()).hexdigest()


def test_download_is_checked_and_cached(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    archive, md5 = _tiny_archive(served)
    cache = tmp_path / "cache"
    folder = sample_data.download_lfw(cache, archive.as_uri(), md5)
    assert (folder / "Some_One" / "Some_One_0001.jpg").exists()
    archive.unlink()  # a second call must not fetch again
    assert sample_data.download_lfw(cache, archive.as_uri(), md5) == folder


def test_download_with_a_wrong_checksum_keeps_nothing(tmp_path: Path) -> None:
    archive, _ = _tiny_archive(tmp_path)
    cache = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="checksum mismatch"):
        sample_data.download_lfw(cache, archive.as_uri(), "0" * 32)
    assert list(cache.iterdir()) == []
