"""The encoding run on real faces: worker-count independence, reuse, resume after kill -9."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from facecluster.cache import cache_path_for
from facecluster.encode.pipeline import DatasetError, encode_dataset, list_dataset
from facecluster.encode.detectors import DetectionOptions
from facecluster.store import load_encodings

ROOT = Path(__file__).resolve().parent.parent


def copy_photos(lfw: Path, folder: Path, people: list[str], each: int) -> list[Path]:
    copied = []
    for person in people:
        target = folder / person
        target.mkdir(parents=True, exist_ok=True)
        for photo in sorted((lfw / person).glob("*.jpg"))[:each]:
            shutil.copy(photo, target / photo.name)
            copied.append(target / photo.name)
    return copied


def same_records(a: list[dict], b: list[dict]) -> bool:
    return [(r["imagePath"], r["loc"]) for r in a] == [(r["imagePath"], r["loc"]) for r in b] and all(
        np.array_equal(x["encoding"], y["encoding"]) for x, y in zip(a, b)
    )


@pytest.fixture()
def small_set(tmp_path: Path, lfw: Path) -> Path:
    folder = tmp_path / "photos"
    copy_photos(lfw, folder, ["Aaron_Peirsol", "Abdullah_Gul", "Adrien_Brody"], 3)
    return folder


def test_same_result_whatever_the_number_of_workers(small_set: Path, tmp_path: Path) -> None:
    listing = list_dataset(str(small_set))
    one, summary_one = encode_dataset(listing, str(tmp_path / "a.pickle"), DetectionOptions(), workers=1)
    two, _ = encode_dataset(listing, str(tmp_path / "b.pickle"), DetectionOptions(), workers=2)
    assert summary_one.images == 9 and summary_one.with_faces == 9
    assert same_records(one, two)
    assert [r["imagePath"] for r in one] == sorted(r["imagePath"] for r in one)


def test_incremental_reuse_change_and_delete(small_set: Path, tmp_path: Path) -> None:
    encodings = str(tmp_path / "enc.pickle")
    options = DetectionOptions()
    first, summary = encode_dataset(list_dataset(str(small_set)), encodings, options, workers=2)
    assert summary.encoded == 9 and summary.reused == 0

    again, summary = encode_dataset(list_dataset(str(small_set)), encodings, options, workers=2)
    assert summary.encoded == 0 and summary.reused == 9
    assert same_records(first, again)

    photos = sorted(small_set.rglob("*.jpg"))
    photos[0].unlink()
    shutil.copy(photos[5], photos[1])  # a photo replaced by another
    os.utime(photos[1], ns=(time.time_ns(), time.time_ns() + 10**9))
    changed, summary = encode_dataset(list_dataset(str(small_set)), encodings, options, workers=2)
    assert summary.images == 8 and summary.encoded == 1 and summary.reused == 7
    assert str(photos[0]) not in {r["imagePath"] for r in changed}
    moved = [r for r in changed if r["imagePath"] == str(photos[1])]
    original = [r for r in first if r["imagePath"] == str(photos[5])]
    assert np.array_equal(moved[0]["encoding"], original[0]["encoding"])

    # Other options are other results: nothing is reused across them.
    _, summary = encode_dataset(list_dataset(str(small_set)), encodings, DetectionOptions(upsample=0), workers=2)
    assert summary.reused == 0


def test_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such folder"):
        list_dataset(str(tmp_path / "missing"))
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DatasetError, match="holds no image"):
        list_dataset(str(tmp_path))


def test_killed_run_resumes_to_the_same_result(tmp_path: Path, lfw: Path) -> None:
    folder = tmp_path / "photos"
    people = ["Adam_Sandler", "Al_Gore", "Alejandro_Toledo", "Ali_Naimi", "Alvaro_Uribe",
              "Amelia_Vega", "Ana_Guevara", "Andre_Agassi", "Andy_Roddick", "Angelina_Jolie"]
    total = len(copy_photos(lfw, folder, people, 5))
    clean = tmp_path / "clean.pickle"
    killed = tmp_path / "killed.pickle"
    command = [sys.executable, "encode_faces.py", "-i", str(folder), "--workers", "2"]
    done = subprocess.run([*command, "-e", str(clean)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    run = subprocess.Popen([*command, "-e", str(killed)], cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    cache = cache_path_for(str(killed))
    deadline = time.time() + 120
    saved = 0
    while time.time() < deadline and saved < 5:
        time.sleep(0.05)
        if os.path.exists(cache):
            try:
                with sqlite3.connect(cache) as db:
                    saved = db.execute("SELECT COUNT(*) FROM photos").fetchone()[0]
            except sqlite3.Error:
                pass
    os.killpg(run.pid, signal.SIGKILL)  # the script and its workers, mid-run
    run.wait()
    assert 5 <= saved < total, f"could not catch the run mid-way ({saved} of {total} saved)"
    assert not killed.exists()  # the file is only written whole, at the end

    resumed = subprocess.run([*command, "-e", str(killed)], cwd=ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    reused = int(resumed.stdout.split(" results reused")[0].rsplit("[INFO] ", 1)[1])
    assert reused >= 5
    assert same_records(load_encodings(killed), load_encodings(clean))


def test_a_photo_that_kills_its_worker_is_skipped_and_the_run_goes_on(small_set: Path, tmp_path: Path, monkeypatch) -> None:
    """A decoder crash (simulated: the worker process dies on one photo) costs that photo only."""
    from facecluster.encode import pipeline as encoding

    deadly = sorted(small_set.rglob("*.jpg"))[4]
    real_load = encoding.load_image

    def load_or_die(path: str, *args, **kwargs):
        if path == str(deadly):
            os._exit(11)  # as a segfaulting decoder would
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(encoding, "load_image", load_or_die)  # workers are forked: they inherit it
    records, summary = encode_dataset(list_dataset(str(small_set)), str(tmp_path / "e.pickle"), DetectionOptions(), workers=2)
    assert summary.skipped == {"crashed the image decoder": 1}
    assert summary.with_faces == 8
    assert str(deadly) not in {r["imagePath"] for r in records}

    # The crash may have been passing: the next run tries that photo again.
    monkeypatch.setattr(encoding, "load_image", real_load)
    records, summary = encode_dataset(list_dataset(str(small_set)), str(tmp_path / "e.pickle"), DetectionOptions(), workers=2)
    assert (summary.reused, summary.encoded, summary.with_faces) == (8, 1, 9)


def test_a_failing_cnn_batch_is_redone_photo_by_photo(small_set: Path, monkeypatch) -> None:
    from facecluster.encode import pipeline as encoding

    def broken_batch(*args, **kwargs):
        raise RuntimeError("dlib choked on one photo of the batch")

    monkeypatch.setattr(encoding, "detect_faces_batch", broken_batch)
    paths = [str(p) for p in sorted(small_set.rglob("*.jpg"))[:2]]
    results = encoding.encode_photos(paths, DetectionOptions(method="cnn", upsample=0), batch_size=2)
    assert [r.path for r in results] == paths
    assert all(r.status == "faces" for r in results)
