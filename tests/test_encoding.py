"""The encoding run on real faces: worker-count independence, reuse, resume after kill -9, the cache."""

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

from facecluster.store.photo_cache import cache_path_for
from facecluster.detect.detectors import CnnDetector, HogDetector
from facecluster.embed.encoders import DEFAULT_MIRROR, OnnxEncoder
from facecluster.run.pipeline import DatasetError, Method, encode_dataset, list_dataset
from facecluster.store import load_encodings

# encode_faces.py's encoder (the mirror pass), so records compare with the script's
HOG = Method(HogDetector(), OnnxEncoder(mirror=DEFAULT_MIRROR))
HOG_1X = Method(HogDetector(upsample=0), OnnxEncoder(mirror=DEFAULT_MIRROR))

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


def encoding_of(records: list[dict], photo: Path) -> np.ndarray:
    (record,) = [r for r in records if r["imagePath"] == str(photo)]
    return record["encoding"]


@pytest.fixture()
def small_set(tmp_path: Path, lfw: Path) -> Path:
    folder = tmp_path / "photos"
    copy_photos(lfw, folder, ["Aaron_Peirsol", "Abdullah_Gul", "Adrien_Brody"], 3)
    return folder


def test_same_result_whatever_the_number_of_workers(small_set: Path, tmp_path: Path) -> None:
    listing = list_dataset(str(small_set))
    one, summary_one = encode_dataset(listing, str(tmp_path / "a.pickle"), HOG, workers=1)
    two, _ = encode_dataset(listing, str(tmp_path / "b.pickle"), HOG, workers=2)
    assert summary_one.images == 9 and summary_one.with_faces == 9
    assert same_records(one, two)
    assert [r["imagePath"] for r in one] == sorted(r["imagePath"] for r in one)


def test_incremental_reuse_change_and_delete(small_set: Path, tmp_path: Path, lfw: Path) -> None:
    encodings = str(tmp_path / "enc.pickle")
    options = HOG
    first, summary = encode_dataset(list_dataset(str(small_set)), encodings, options, workers=2)
    assert summary.encoded == 9 and summary.reused == 0

    again, summary = encode_dataset(list_dataset(str(small_set)), encodings, options, workers=2)
    assert summary.encoded == 0 and summary.reused == 9
    assert same_records(first, again)

    photos = sorted(small_set.rglob("*.jpg"))
    photos[0].unlink()
    shutil.copy(sorted((lfw / "Al_Gore").glob("*.jpg"))[0], photos[1])  # replaced by a photo never seen
    shutil.copy(photos[5], photos[2])  # replaced by a copy of another: known by its content
    for photo in photos[1:3]:
        os.utime(photo, ns=(time.time_ns(), time.time_ns() + 10**9))
    changed, summary = encode_dataset(list_dataset(str(small_set)), encodings, options, workers=2)
    assert summary.images == 8 and summary.encoded == 1 and summary.reused == 7
    assert str(photos[0]) not in {r["imagePath"] for r in changed}
    assert not np.array_equal(encoding_of(changed, photos[1]), encoding_of(first, photos[1]))
    assert np.array_equal(encoding_of(changed, photos[2]), encoding_of(first, photos[5]))

    # Other options are other results: nothing is reused across them.
    _, summary = encode_dataset(list_dataset(str(small_set)), encodings, HOG_1X, workers=2)
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
                    saved = db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
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
    from facecluster.run import pipeline as encoding

    deadly = sorted(small_set.rglob("*.jpg"))[4]
    real_load = encoding.load_image

    def load_or_die(path: str, *args, **kwargs):
        if path == str(deadly):
            os._exit(11)  # as a segfaulting decoder would
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(encoding, "load_image", load_or_die)  # workers are forked: they inherit it
    records, summary = encode_dataset(list_dataset(str(small_set)), str(tmp_path / "e.pickle"), HOG, workers=2)
    assert summary.skipped_by_category() == {"crashed": 1}
    assert summary.skipped[0].reason == "crashed the image decoder"
    assert summary.with_faces == 8
    assert str(deadly) not in {r["imagePath"] for r in records}

    # The crash may have been passing: the next run tries that photo again.
    monkeypatch.setattr(encoding, "load_image", real_load)
    records, summary = encode_dataset(list_dataset(str(small_set)), str(tmp_path / "e.pickle"), HOG, workers=2)
    assert (summary.reused, summary.encoded, summary.with_faces) == (8, 1, 9)


def test_a_photo_that_hangs_its_worker_is_skipped_and_the_run_goes_on(small_set: Path, tmp_path: Path,
                                                                      monkeypatch) -> None:
    """A decoder caught in a loop (simulated: the worker sleeps on one photo) costs that photo only,
    after the stall limit (15 minutes; 2 s here), instead of holding this run and every later one."""
    from facecluster.run import pipeline as encoding
    from facecluster.run import pool

    stuck = sorted(small_set.rglob("*.jpg"))[4]
    real_load = encoding.load_image

    def load_or_hang(path: str, *args, **kwargs):
        if path == str(stuck):
            time.sleep(3600)
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(encoding, "load_image", load_or_hang)  # workers are forked: they inherit it
    monkeypatch.setattr(pool, "STALL_SECONDS", 2.0)
    records, summary = encode_dataset(list_dataset(str(small_set)), str(tmp_path / "e.pickle"), HOG, workers=2)
    assert summary.skipped_by_category() == {"stalled": 1}
    assert summary.skipped[0].reason == "the image decoder stopped responding"
    assert summary.with_faces == 8
    assert str(stuck) not in {r["imagePath"] for r in records}


def test_a_failing_cnn_batch_is_redone_photo_by_photo(small_set: Path, monkeypatch) -> None:
    from facecluster.run import pipeline as encoding

    def broken_batch(*args, **kwargs):
        raise RuntimeError("dlib choked on one photo of the batch")

    detector = CnnDetector(upsample=0, batch_size=2)
    monkeypatch.setattr(CnnDetector, "detect_batch", lambda self, rgbs: broken_batch() if len(rgbs) > 1 else [self.detect(rgbs[0])])
    paths = [str(p) for p in sorted(small_set.rglob("*.jpg"))[:2]]
    results = encoding.encode_photos(paths, Method(detector, OnnxEncoder()))
    assert [r.path for r in results] == paths
    assert all(r.status == "faces" for r in results)


def test_relative_then_absolute_run_and_a_moved_folder_reuse_everything(small_set: Path, tmp_path: Path, monkeypatch) -> None:
    encodings = str(tmp_path / "enc.pickle")
    monkeypatch.chdir(tmp_path)
    relative, summary = encode_dataset(list_dataset("photos"), encodings, HOG, workers=2)
    assert summary.encoded == 9 and relative[0]["imagePath"].startswith("photos/")  # as the user gave it
    absolute, summary = encode_dataset(list_dataset(str(small_set)), encodings, HOG, workers=2)
    assert (summary.reused, summary.encoded) == (9, 0)
    assert absolute[0]["imagePath"].startswith(str(small_set))

    moved = tmp_path / "renamed" / "photos"
    moved.parent.mkdir()
    small_set.rename(moved)
    for photo in moved.rglob("*.jpg"):  # and touched, as a careless copy would
        os.utime(photo, ns=(time.time_ns(), time.time_ns()))
    again, summary = encode_dataset(list_dataset(str(moved)), encodings, HOG, workers=2)
    assert (summary.reused, summary.encoded) == (9, 0)
    assert [r["imagePath"] for r in again] == [r["imagePath"].replace(str(small_set), str(moved)) for r in absolute]
    assert same_records([dict(r, imagePath="") for r in again], [dict(r, imagePath="") for r in absolute])


def test_options_and_folders_sharing_one_cache_keep_their_results(tmp_path: Path, lfw: Path) -> None:
    """-d hog / -d cnn alternating, or two folders encoded into one file, never undo each other."""
    first = tmp_path / "first"
    second = tmp_path / "second"
    copy_photos(lfw, first, ["Aaron_Peirsol"], 3)
    copy_photos(lfw, second, ["Abdullah_Gul"], 3)
    encodings = str(tmp_path / "enc.pickle")
    for method in (HOG, HOG_1X):
        for folder in (first, second):
            _, summary = encode_dataset(list_dataset(str(folder)), encodings, method, workers=1)
            assert summary.encoded == 3
    for method in (HOG, HOG_1X):
        for folder in (first, second):
            _, summary = encode_dataset(list_dataset(str(folder)), encodings, method, workers=1)
            assert (summary.reused, summary.encoded) == (3, 0), (method, folder)
    # A photo deleted from a folder is forgotten; the other folder's rows stay.
    sorted(first.rglob("*.jpg"))[0].unlink()
    encode_dataset(list_dataset(str(first)), encodings, HOG, workers=1)
    with sqlite3.connect(cache_path_for(encodings)) as db:
        rows = db.execute("SELECT COUNT(*) FROM results WHERE options = ?", (HOG.cache_key(),)).fetchone()[0]
    assert rows == 5


def test_single_pass_results_are_not_taken_for_the_mirror_pass(small_set: Path, tmp_path: Path) -> None:
    """A cache written without the mirror pass (--no-mirror, as every run was before it) is not taken for the mirror pass's."""
    encodings = str(tmp_path / "enc.pickle")
    single = Method(HogDetector(), OnnxEncoder(mirror=False))
    before, summary = encode_dataset(list_dataset(str(small_set)), encodings, single, workers=1)
    assert summary.encoded == 9
    now, summary = encode_dataset(list_dataset(str(small_set)), encodings, Method(HogDetector(), OnnxEncoder(mirror=True)),
                                  workers=1)
    assert (summary.reused, summary.encoded) == (0, 9)
    assert [r["loc"] for r in now] == [r["loc"] for r in before]
    assert all(0.02 < np.linalg.norm(a["encoding"] - b["encoding"]) < 0.3 for a, b in zip(now, before))
    _, summary = encode_dataset(list_dataset(str(small_set)), encodings, single, workers=1)
    assert (summary.reused, summary.encoded) == (9, 0)  # each kept its own rows


def test_transient_failures_are_retried_lasting_ones_kept(small_set: Path, tmp_path: Path, monkeypatch) -> None:
    from facecluster.run import pipeline

    photos = sorted(small_set.rglob("*.jpg"))
    (small_set / "truncated.jpg").write_bytes(photos[0].read_bytes()[:2000])
    real_load = pipeline.load_image

    def out_of_memory(path: str, *args, **kwargs):
        if path == str(photos[3]):
            raise MemoryError()
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(pipeline, "load_image", out_of_memory)  # workers are forked: they inherit it
    encodings = str(tmp_path / "e.pickle")
    _, summary = encode_dataset(list_dataset(str(small_set)), encodings, HOG, workers=2)
    assert summary.skipped_by_category() == {"out of memory": 1, "corrupt": 1}
    monkeypatch.setattr(pipeline, "load_image", real_load)
    _, summary = encode_dataset(list_dataset(str(small_set)), encodings, HOG, workers=2)
    assert (summary.reused, summary.encoded, summary.with_faces) == (9, 1, 9)  # the corrupt one is known
    assert summary.skipped_by_category() == {"corrupt": 1}


def test_a_cache_of_the_first_format_is_carried_over(small_set: Path, tmp_path: Path, monkeypatch) -> None:
    """Rows of the first schema (one per path as given) are moved, not lost; relative paths resolve."""
    encodings = tmp_path / "e.pickle"
    photo = sorted(small_set.rglob("*.jpg"))[0]
    info = photo.stat()
    marker = np.arange(4 + 128, dtype=np.float64)  # a face no detector would find: proves the row was used
    with sqlite3.connect(cache_path_for(str(encodings))) as db:
        db.execute("CREATE TABLE photos (path BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, "
                   "options TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL, faces BLOB NOT NULL)")
        db.execute("INSERT INTO photos VALUES (?, ?, ?, ?, 'faces', '', ?)",
                   (os.fsencode(os.path.relpath(photo, tmp_path)), info.st_size, info.st_mtime_ns, HOG.cache_key(),
                    marker.tobytes()))
    monkeypatch.chdir(tmp_path)
    lines: list[str] = []
    records, summary = encode_dataset(list_dataset(str(small_set)), str(encodings), HOG, workers=2, warn=lines.append)
    assert (summary.reused, summary.encoded) == (1, 8)
    assert lines == [f"[INFO] {cache_path_for(str(encodings))}: 1 results carried over from an older cache format"]
    assert np.array_equal(encoding_of(records, photo), marker[4:])


def test_an_unreadable_cache_is_replaced_with_one_line(small_set: Path, tmp_path: Path) -> None:
    encodings = str(tmp_path / "e.pickle")
    Path(cache_path_for(encodings)).write_bytes(b"not a database, " * 100)
    lines: list[str] = []
    _, summary = encode_dataset(list_dataset(str(small_set)), encodings, HOG, workers=2, warn=lines.append)
    assert summary.encoded == 9 and len(lines) == 1 and "the progress cache is damaged" in lines[0]
    assert "moved it aside to " + cache_path_for(encodings) + ".damaged-" in lines[0]


def test_any_load_error_in_a_cnn_batch_is_that_photos_result(small_set: Path, monkeypatch) -> None:
    """The batch path and the single path are one: a decoder's RuntimeError costs only its photo."""
    from facecluster.run import pipeline

    paths = [str(p) for p in sorted(small_set.rglob("*.jpg"))[:3]]
    real_load = pipeline.load_image

    def load_or_fail(path: str, *args, **kwargs):
        if path == paths[1]:
            raise RuntimeError("decoder bug")
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(pipeline, "load_image", load_or_fail)
    results = pipeline.encode_photos(paths, Method(CnnDetector(upsample=0, batch_size=3), OnnxEncoder()))
    assert [r.path for r in results] == paths
    assert [r.status for r in results] == ["faces", "skipped", "faces"]
    assert (results[1].category, results[1].reason) == ("failed", "could not be processed: RuntimeError: decoder bug")
    assert all(r.fingerprint is not None and len(r.fingerprint.digest) == 16 for r in results)
