"""Faults a hostile tester found (issue 22), each on real files: nothing lost, nothing hung, nothing overwritten.

A full disk is a size-limited tmpfs mounted for the test (root can mount one;
elsewhere the test skips with the reason, but never when ``FACES_DATA`` or
``CI`` is set, where it fails instead).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import PYTHON, ROOT, run_script
from test_encoding import copy_photos

from facecluster.store.photo_cache import cache_path_for
from facecluster.files import OUTPUT_MARKER, display_path
from facecluster.sources.images import load_image
from facecluster.sources.skips import ImageSkipped

PEOPLE = ["Aaron_Peirsol", "Abdullah_Gul", "Adrien_Brody", "Alejandro_Toledo"]


# --------------------------------------------------------------------------
# helpers


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "600k", read_only: bool = False):
    """A tmpfs of ``size`` mounted at ``folder`` for the block."""
    folder.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)
    if mounted.returncode != 0:
        reason = f"cannot mount a small tmpfs here ({mounted.stderr.strip() or 'mount failed'}): a full disk needs one"
        if os.environ.get("FACES_DATA") or os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path) -> Path:
    """Fill the disk holding ``folder`` to the last byte; returns the filler file."""
    filler = folder / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(descriptor, b"\0" * size)
    finally:
        os.close(descriptor)
    return filler


def errors_of(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def one_error(result, status: int = 2) -> str:
    """The single stderr line of a run that ended with ``status``."""
    assert result.returncode == status, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in errors_of(result) if line.startswith("[ERROR]")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def cache_rows(encodings: Path) -> int:
    with contextlib.closing(sqlite3.connect(cache_path_for(str(encodings)))) as db:
        return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]


def encode(dataset: Path, encodings: Path, *options: str, **kwargs):
    return run_script("encode_faces.py", "-i", str(dataset), "-e", str(encodings), "-d", "hog", "-w", "2", *options,
                      timeout=600, **kwargs)


@pytest.fixture()
def twelve(tmp_path: Path, lfw: Path) -> Path:
    """12 real photos of 4 people."""
    folder = tmp_path / "photos"
    copy_photos(lfw, folder, PEOPLE, 3)
    return folder


@pytest.fixture()
def encoded(twelve: Path, tmp_path: Path) -> Path:
    encodings = tmp_path / "e.pickle"
    done = encode(twelve, encodings)
    assert done.returncode == 0, done.stderr
    return encodings


def write_png(path: Path, width: int, height: int) -> Path:
    """An RGB PNG of ``width`` x ``height`` (a gradient), written row by row: megabytes on disk, never in memory."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    squeeze = zlib.compressobj(6)
    row = np.repeat((np.arange(width) * 255 // max(1, width - 1)).astype(np.uint8), 3).tobytes()
    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", width.to_bytes(4, "big") + height.to_bytes(4, "big")
                                                + bytes([8, 2, 0, 0, 0])))
        for _ in range(height):
            data = squeeze.compress(b"\0" + row)
            if data:
                out.write(chunk(b"IDAT", data))
        out.write(chunk(b"IDAT", squeeze.flush()) + chunk(b"IEND", b""))
    return path


def crafted_pickle(path: Path, paths: list[str], box=(10, 60, 60, 10)) -> Path:
    records = [{"imagePath": p, "loc": box, "encoding": np.full(128, 0.01 * i)} for i, p in enumerate(paths)]
    path.write_bytes(pickle.dumps(records))
    return path


# --------------------------------------------------------------------------
# 1. a full disk never deletes the cache


def test_a_full_disk_stops_with_one_line_and_keeps_every_result(twelve: Path, tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        encodings = disk / "e.pickle"
        assert encode(twelve, encodings).returncode == 0
        cache = Path(cache_path_for(str(encodings)))
        kept = cache.read_bytes()
        filler = fill(disk)
        line = one_error(encode(twelve, encodings))
        assert str(cache) in line or str(encodings) in line, line
        assert "disk is full" in line or "No space left" in line, line
        assert cache.read_bytes() == kept  # not deleted, not emptied
        filler.unlink()
        again = encode(twelve, encodings)
        assert again.returncode == 0, again.stderr
        assert "[INFO] 12 results reused from earlier runs, 0 images encoded now" in again.stdout


def test_an_io_error_on_the_cache_is_one_line_naming_it_and_the_cache_is_kept(twelve: Path, tmp_path: Path) -> None:
    """Past the scripts' own check (the disk filled after it): the cache can't be opened, and nothing in it is lost."""
    from facecluster.store.photo_cache import CacheError
    from facecluster.run.pipeline import encode_dataset, list_dataset
    from test_encoding import HOG

    with small_disk(tmp_path / "disk") as disk:
        encodings = disk / "e.pickle"
        assert encode(twelve, encodings).returncode == 0
        cache = Path(cache_path_for(str(encodings)))
        kept = cache.read_bytes()
        filler = fill(disk)
        with pytest.raises(CacheError) as failure:
            encode_dataset(list_dataset(str(twelve)), str(encodings), HOG, workers=1)
        assert str(failure.value).startswith(f"{cache}: cannot open the progress cache (")
        assert "the disk is full); nothing in it was lost" in str(failure.value)
        assert cache.read_bytes() == kept and not list(disk.glob("*.damaged-*"))
        filler.unlink()
        _, summary = encode_dataset(list_dataset(str(twelve)), str(encodings), HOG, workers=1)
        assert (summary.reused, summary.encoded) == (12, 0)


def test_a_full_disk_or_a_name_too_long_for_the_encodings_is_one_line_before_any_work(twelve: Path, tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        fill(disk)
        line = one_error(encode(twelve, disk / "e.pickle"))
        assert line.startswith(f"[ERROR] {disk / 'e.pickle'}: the disk holding {disk} is full"), line
    line = one_error(encode(twelve, tmp_path / ("e" * 250 + ".pickle")))
    assert "file name too long" in line


def test_a_file_that_is_not_a_database_is_moved_aside_under_a_dated_name(encoded: Path, twelve: Path) -> None:
    cache = Path(cache_path_for(str(encoded)))
    cache.write_bytes(b"not a database, " * 100)
    done = encode(twelve, encoded)
    assert done.returncode == 0, done.stderr
    (warning,) = [line for line in errors_of(done) if "progress cache" in line]
    moved = sorted(cache.parent.glob(cache.name + ".damaged-*"))
    assert len(moved) == 1 and moved[0].read_bytes() == b"not a database, " * 100
    assert f"moved it aside to {moved[0]}" in warning
    assert "12 images encoded now" in done.stdout and cache_rows(encoded) == 12


# --------------------------------------------------------------------------
# 4. damaged pages, malformed blobs, NaN


def damage_pages(cache: Path) -> None:
    """Overwrite the cache's pages after the first (its b-trees) with garbage, keeping its header."""
    data = bytearray(cache.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for start in range(page, len(data), page):
        data[start + 8:start + 200] = b"\xa5" * 192
    cache.write_bytes(bytes(data))


@pytest.mark.parametrize("fresh", [True, False])
def test_a_cache_with_damaged_pages_is_moved_aside_and_fresh_always_works(encoded: Path, twelve: Path, fresh: bool) -> None:
    cache = Path(cache_path_for(str(encoded)))
    damage_pages(cache)
    done = encode(twelve, encoded, *(["--fresh"] if fresh else []))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert any("damaged" in line and "moved it aside to" in line for line in errors_of(done)), done.stderr
    assert "12 images encoded now" in done.stdout
    assert len(list(cache.parent.glob(cache.name + ".damaged-*"))) == 1


@pytest.mark.parametrize("blob", [b"abc", np.full(132, np.nan).tobytes()], ids=["malformed", "nan"])
def test_a_bad_row_is_a_cache_miss_and_nan_never_reaches_the_pickle(encoded: Path, twelve: Path, blob: bytes) -> None:
    with contextlib.closing(sqlite3.connect(cache_path_for(str(encoded)))) as db:
        (photo,) = db.execute("SELECT photo FROM results WHERE status = 'faces' ORDER BY photo LIMIT 1").fetchone()
        db.execute("UPDATE results SET faces = ? WHERE photo = ?", (blob, photo))
        db.commit()
    done = encode(twelve, encoded)
    assert done.returncode == 0, done.stderr
    assert "[INFO] 11 results reused from earlier runs, 1 images encoded now" in done.stdout
    with open(encoded, "rb") as handle:
        records = pickle.load(handle)
    assert all(np.isfinite(r["encoding"]).all() for r in records)
    assert os.fsencode(os.path.realpath(os.fsdecode(photo))) in {os.fsencode(os.path.realpath(r["imagePath"])) for r in records}


# --------------------------------------------------------------------------
# 2. no worker outlives its parent


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_for_children(pid: int, count: int, timeout: float = 120) -> list[int]:
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = psutil.Process(pid).children(recursive=True)
        except psutil.NoSuchProcess:
            break
        if len(children) >= count:
            return [child.pid for child in children]
        time.sleep(0.2)
    raise AssertionError(f"the script never started {count} workers")


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killing_the_encoder_leaves_no_worker_behind(tmp_path: Path, lfw: Path, how: signal.Signals) -> None:
    dataset = tmp_path / "photos"
    copy_photos(lfw, dataset, ["George_W_Bush"], 120)
    log = open(tmp_path / "log", "wb")
    script = subprocess.Popen([PYTHON, "encode_faces.py", "-i", str(dataset), "-e", str(tmp_path / "e.pickle"),
                               "-d", "cnn", "-w", "2"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)  # its own process group: every worker is in it
    try:
        workers = _wait_for_children(script.pid, 2)
        script.send_signal(how)  # the script alone, as `kill PID` or the OOM killer does
        status = script.wait(60)
        deadline = time.monotonic() + 30
        while _group_alive(script.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _group_alive(script.pid), f"workers {workers} outlived the script"
        if how == signal.SIGTERM:
            assert status == 143 and "terminated; finished work is kept" in (tmp_path / "log").read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(script.pid, signal.SIGKILL)
        log.close()


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killing_the_clusterer_leaves_nothing_behind(tmp_path: Path, how: signal.Signals) -> None:
    rng = np.random.default_rng(0)
    people = rng.normal(size=(300, 128))
    records = [{"imagePath": f"p{i}.jpg", "loc": (1, 9, 9, 1), "encoding": (people[i % 300] + rng.normal(0, 0.3, 128)) / 4}
               for i in range(30000)]
    (tmp_path / "e.pickle").write_bytes(pickle.dumps(records))
    script = subprocess.Popen([PYTHON, "cluster_faces.py", "-e", str(tmp_path / "e.pickle"), "-m", "adaptive",
                               "-o", str(tmp_path / "out")], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, start_new_session=True,
                              env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        assert script.stdout.readline().startswith(b"[INFO]")  # running
        time.sleep(1)
        script.send_signal(how)
        script.wait(60)
        deadline = time.monotonic() + 30
        while _group_alive(script.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _group_alive(script.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(script.pid, signal.SIGKILL)


# --------------------------------------------------------------------------
# 3. --dask at something that is not a Dask scheduler


def _listener() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    return server


@pytest.mark.parametrize("address, expected", [
    ("http://127.0.0.1:8786", "give the scheduler's address as tcp://HOST:PORT"),
    ("inproc://x", "inproc:// is not a Dask scheduler's protocol"),
    ("tcp://host:port", "give the scheduler's address as tcp://HOST:PORT"),
    ("tls://127.0.0.1:8786", "TLS needs Dask's security settings"),
])
def test_a_malformed_dask_address_is_one_line_at_once(twelve: Path, tmp_path: Path, address: str, expected: str) -> None:
    done = run_script("encode_faces.py", "-i", str(twelve), "-e", str(tmp_path / "e.pickle"), "--dask", address,
                      timeout=60)
    line = one_error(done)
    assert expected in line and done.stderr.strip() == line  # no Client.__del__ traceback after it


def test_a_silent_listener_and_an_http_server_are_not_schedulers(twelve: Path, tmp_path: Path) -> None:
    # Both listeners stay silent, so each run waits out the whole connect timeout: set short.
    env = {"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"}
    with contextlib.closing(_listener()) as silent:
        address = "tcp://127.0.0.1:%d" % silent.getsockname()[1]
        done = run_script("encode_faces.py", "-i", str(twelve), "-e", str(tmp_path / "e.pickle"), "--dask", address,
                          env=env, timeout=60)
        line = one_error(done)
        assert line == (f"[ERROR] {address} is not a Dask scheduler: it took the connection but said nothing in 1 s "
                        "(a scheduler greets at once); check the host and port") and done.stderr.strip() == line
    with contextlib.closing(_listener()) as probe:
        port = probe.getsockname()[1]
    http = subprocess.Popen([PYTHON, "-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.1)
        done = run_script("encode_faces.py", "-i", str(twelve), "-e", str(tmp_path / "e.pickle"), "--dask",
                          f"tcp://127.0.0.1:{port}", env=env, timeout=60)
        line = one_error(done)
        assert "is not a Dask scheduler" in line and done.stderr.strip() == line
    finally:
        http.kill()
        http.wait()


def test_a_scheduler_that_answers_like_http_is_named(tmp_path: Path) -> None:
    """A listener that speaks first, but not Dask: what it said is in the line (no 3 EiB allocation)."""
    from facecluster.run.dask_runner import DaskError, probe_scheduler

    with contextlib.closing(_listener()) as server:
        address = "tcp://127.0.0.1:%d" % server.getsockname()[1]
        import threading

        def greet_like_http() -> None:
            connection, _ = server.accept()
            connection.sendall(b"HTTP/1.0 400 Bad request\r\n\r\n")
            connection.close()

        threading.Thread(target=greet_like_http, daemon=True).start()
        with pytest.raises(DaskError, match=r"answered 'HTTP/1.0 400 Bad'\.\.\., not Dask's handshake"):
            probe_scheduler(address, 5)


# --------------------------------------------------------------------------
# 5. -o into someone else's folder; every output location checked before the work


def cluster(encodings: Path, output: Path, *options: str):
    return run_script("cluster_faces.py", "-e", str(encodings), "-o", str(output), "-m", "chinese-whispers",
                      *options, timeout=300)


def test_an_output_folder_of_someone_elses_files_is_refused_unless_overwrite(encoded: Path, tmp_path: Path) -> None:
    output = tmp_path / "mine"
    (output / "thumbs").mkdir(parents=True)
    theirs = {"index.html": b"my page", "clusters.csv": b"my,data", "page-3.html": b"p3", "face_id_07.jpg": b"j",
              "unknown_faces.jpg": b"u", "thumbs/face_00099.jpg": b"t"}
    for name, content in theirs.items():
        (output / name).write_bytes(content)
    done = cluster(encoded, output)
    line = one_error(done)
    assert line.startswith(f"[ERROR] --output {output}: the folder holds files facecluster did not write (")
    assert "--overwrite" in line and "[INFO] loading encodings" not in done.stdout
    assert {name: (output / name).read_bytes() for name in theirs} == theirs
    done = cluster(encoded, output, "--overwrite")
    assert done.returncode == 0, done.stderr
    assert (output / OUTPUT_MARKER).is_file() and (output / "clusters.csv").read_bytes() != b"my,data"


def test_rerunning_into_our_own_folder_needs_no_overwrite_and_keeps_the_users_files(encoded: Path, tmp_path: Path) -> None:
    output = tmp_path / "out"
    assert cluster(encoded, output, "--organize", "copy").returncode == 0
    (output / "notes.txt").write_text("mine")
    (output / "person_00" / "my-photo.txt").write_text("mine too")
    again = cluster(encoded, output, "--organize", "copy")
    assert again.returncode == 0, again.stderr
    assert (output / "notes.txt").read_text() == "mine"
    assert (output / "person_00" / "my-photo.txt").read_text() == "mine too"
    assert (output / "index.html").is_file()


def test_an_output_folder_of_an_older_version_is_recognised_as_ours(tmp_path: Path) -> None:
    from facecluster.present.output import check_output

    older = tmp_path / "older"
    older.mkdir()
    (older / "clusters.json").write_text('{\n  "run": {"method": "dbscan"},\n  "counts": {"faces": 1, "images": 1},\n'
                                         '  "clusters": []\n}\n')
    (older / "face_id_00.jpg").write_bytes(b"ours")
    assert check_output(str(older)) is None
    (older / "clusters.json").write_text('{"my": "own json"}')
    assert "holds files facecluster did not write (clusters.json, face_id_00.jpg)" in check_output(str(older))


def test_a_dangling_read_only_or_full_output_is_refused_before_clustering(encoded: Path, tmp_path: Path) -> None:
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    done = cluster(encoded, dangling)
    assert one_error(done) == f"[ERROR] --output {dangling}: is a symlink to {tmp_path / 'nowhere'}, which does not exist"
    assert "[INFO] clustering" not in done.stdout
    with small_disk(tmp_path / "ro", read_only=True) as read_only:
        done = cluster(encoded, read_only / "out")
        assert one_error(done) == f"[ERROR] --output {read_only / 'out'}: cannot write in {read_only} (read-only disk)"
        assert "[INFO] clustering" not in done.stdout
    with small_disk(tmp_path / "full") as full:
        fill(full)
        done = cluster(encoded, full / "out")
        assert one_error(done).startswith(f"[ERROR] --output {full / 'out'}: the disk holding {full} is full")
        assert "[INFO] clustering" not in done.stdout


# --------------------------------------------------------------------------
# 6. our own outputs inside the dataset


def test_our_output_inside_the_dataset_is_skipped_and_said(encoded: Path, twelve: Path, tmp_path: Path) -> None:
    before = encode(twelve, encoded)
    faces = [line for line in before.stdout.splitlines() if " faces, " in line][0].split(",")[1]
    assert cluster(encoded, twelve / "out", "--organize", "copy").returncode == 0
    after = encode(twelve, encoded)
    assert after.returncode == 0, after.stderr
    assert f"[INFO] skipped {twelve / 'out'}: cluster_faces.py's output folder, not photos to encode" in after.stdout
    assert [line for line in after.stdout.splitlines() if " faces, " in line][0].split(",")[1] == faces


# --------------------------------------------------------------------------
# 7. very long photo names in the person folders; 9. nothing but photos copied


@pytest.mark.parametrize("mode", ["copy", "link"])
def test_very_long_photo_names_are_shortened_uniquely_and_the_presentation_completes(
        tmp_path: Path, lfw: Path, mode: str) -> None:
    dataset = tmp_path / "photos"
    sources = copy_photos(lfw, dataset, ["Abdullah_Gul"], 4)
    stem = "a-very-long-name-" * 14  # 238 bytes
    for number, source in enumerate(sources):
        source.rename(source.parent / f"{stem}{number}.jpg")  # 244 bytes: the temporary name would not fit
    encodings = tmp_path / "e.pickle"
    assert encode(dataset, encodings).returncode == 0
    done = cluster(encodings, tmp_path / "out", "--organize", mode, "--min-cluster-size", "2")
    assert done.returncode == 0, done.stderr
    assert "copying instead" not in done.stderr
    assert (tmp_path / "out" / "index.html").is_file() and (tmp_path / "out" / "face_id_00.jpg").is_file()
    placed = sorted((tmp_path / "out" / "person_00").iterdir())
    assert len(placed) == 4 and all(len(os.fsencode(p.name)) <= 255 for p in placed)
    assert all(p.is_symlink() == (mode == "link") for p in placed)


def test_organize_copies_nothing_that_is_not_a_photo_or_video(tmp_path: Path, lfw: Path) -> None:
    real = copy_photos(lfw, tmp_path / "photos", ["Abdullah_Gul"], 2)
    notes = tmp_path / "secret.txt"
    notes.write_text("a secret")
    fake = tmp_path / "fake.jpg"
    fake.write_text("not a photo either")
    encodings = crafted_pickle(tmp_path / "e.pickle", [str(real[0]), "/etc/passwd", str(notes), str(fake),
                                                         "../../etc/passwd", str(real[1])])
    done = cluster(encodings, tmp_path / "out", "--organize", "copy")
    assert done.returncode == 0, done.stderr
    copied = {p.name for p in (tmp_path / "out").rglob("*") if p.is_file() and not p.name.startswith(".")}
    assert not copied & {"passwd", "secret.txt", "fake.jpg"}
    assert {real[0].name, real[1].name} <= copied
    assert "files that are not photos or videos, not organized" in done.stderr


# --------------------------------------------------------------------------
# 8. only regular files are opened


def test_a_pickle_naming_a_fifo_or_stdin_does_not_hang(tmp_path: Path, lfw: Path) -> None:
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    (real,) = copy_photos(lfw, tmp_path / "photos", ["Abdullah_Gul"], 1)
    encodings = crafted_pickle(tmp_path / "e.pickle", ["/dev/stdin", str(fifo), str(real)])
    with open(tmp_path / "out.log", "wb") as log:
        script = subprocess.Popen([PYTHON, "cluster_faces.py", "-e", str(encodings), "-o", str(tmp_path / "out"),
                                   "--min-samples", "1"], cwd=ROOT, stdin=subprocess.PIPE, stdout=log,
                                  stderr=subprocess.STDOUT)  # stdin: a pipe that stays open and empty
        try:
            status = script.wait(120)
        finally:
            script.kill()
            script.stdin.close()
    text = (tmp_path / "out.log").read_text()
    assert status == 0, text
    assert "cannot show faces from photos that moved or broke" in text and "Traceback" not in text
    with pytest.raises(ImageSkipped, match="not a regular file"):
        load_image(str(fifo))


# --------------------------------------------------------------------------
# 10. decoding memory


def test_formats_decoded_whole_are_bounded_like_jpeg(tmp_path: Path) -> None:
    """A 15000x15000 PNG (900 MB to decode whole) is refused; a 108 MP one decodes reduced in bounded memory."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from decode_memory import measure

    huge = write_png(tmp_path / "huge.png", 15000, 15000)
    figures = measure(str(huge), str(ROOT))
    assert figures["outcome"].startswith("refused: too large to decode safely (15000x15000 PNG"), figures
    assert figures["added_mb"] < 50
    panorama = write_png(tmp_path / "pano.png", 12000, 9000)
    figures = measure(str(panorama), str(ROOT))
    assert figures["outcome"] == "decoded 4000x3000 (scale 0.333)", figures
    assert figures["added_mb"] < 600, figures  # 871 MB before: the upright copy of the whole picture is gone


# --------------------------------------------------------------------------
# low: CSV cells, control characters, list files, umask, repeated records


def test_csv_cells_that_would_run_as_formulas_are_quoted(tmp_path: Path) -> None:
    from facecluster.present.clusters import group_clusters
    from facecluster.present.export import write_clusters_csv
    from facecluster.records import make_record

    names = ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "/photos/a.jpg"]
    records = [make_record(name, (1, 2, 3, 4), np.zeros(128)) for name in names]
    write_clusters_csv(tmp_path / "c.csv", records, group_clusters(records, [0] * len(names)))
    import csv

    with open(tmp_path / "c.csv", newline="") as handle:
        cells = [row[0] for row in list(csv.reader(handle))[1:]]
    assert cells == ["'" + name for name in names[:-1]] + ["/photos/a.jpg"]


def test_control_characters_in_names_are_escaped_on_screen_in_lists_and_in_the_gallery(tmp_path: Path, lfw: Path) -> None:
    dataset = tmp_path / "photos"
    dataset.mkdir()
    (real,) = copy_photos(lfw, tmp_path / "src", ["Abdullah_Gul"], 1)
    evil = "evil\x1b[31m\u202egpj\tx\ny.jpg"
    (dataset / evil).write_bytes(real.read_bytes())
    (dataset / "empty\x1b[2J\tx.jpg").write_bytes(b"")
    Image.new("RGB", (200, 200), (90, 120, 150)).save(dataset / "no\tface\nhere.jpg")
    encodings = tmp_path / "e.pickle"
    done = encode(dataset, encodings)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout + done.stderr and "\u202e" not in done.stdout + done.stderr
    assert "empty\\x1b[2J\\x09x.jpg" in done.stderr
    listed = Path(f"{encodings}.no-face.txt").read_bytes()
    assert listed == os.fsencode(str(dataset)) + b"/no\\tface\\nhere.jpg\n"
    skipped = Path(f"{encodings}.skipped.txt").read_bytes().splitlines()
    assert len(skipped) == 1 and skipped[0].split(b"\t")[0].endswith(b"/empty\x1b[2J\\tx.jpg")
    out = cluster(encodings, tmp_path / "out")
    assert out.returncode == 0, out.stderr
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "\u202e" not in page and "\x1b" not in page
    assert display_path(str(dataset / evil)) in page.replace("&#x27;", "'")


def test_outputs_and_cache_honour_the_umask(tmp_path: Path, lfw: Path) -> None:
    dataset = tmp_path / "photos"
    copy_photos(lfw, dataset, ["Abdullah_Gul"], 2)
    for mask, mode in ((0o002, 0o664), (0o022, 0o644)):
        run = tmp_path / f"run-{mask:o}"
        run.mkdir()
        env = dict(os.environ)
        for script in (["encode_faces.py", "-i", str(dataset), "-e", str(run / "e.pickle"), "-d", "hog"],
                       ["cluster_faces.py", "-e", str(run / "e.pickle"), "-o", str(run / "out"), "--min-samples", "1"]):
            done = subprocess.run([PYTHON, *script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                                  preexec_fn=lambda mask=mask: os.umask(mask))
            assert done.returncode == 0, done.stderr
        files = [run / "e.pickle", Path(cache_path_for(str(run / "e.pickle"))), run / "out" / "clusters.csv",
                 run / "out" / "index.html", run / "out" / "face_id_00.jpg", run / "out" / OUTPUT_MARKER]
        modes = {f.name: oct(stat.S_IMODE(f.stat().st_mode)) for f in files if f.exists()}
        assert modes == {f.name: oct(mode) for f in files}


def test_a_pickle_repeating_one_record_two_million_times_loads_as_one(tmp_path: Path, caplog) -> None:
    from facecluster.store import load_encoding_columns, load_encodings

    record = {"imagePath": "x.jpg", "loc": (1, 2, 3, 4), "encoding": np.zeros(128)}
    path = tmp_path / "e.pickle"
    path.write_bytes(pickle.dumps([record] * 2_000_000 + [dict(record, loc=(5, 6, 7, 8))]))
    assert path.stat().st_size < 5_000_000
    records = load_encodings(path)
    assert [r["loc"] for r in records] == [(1, 2, 3, 4), (5, 6, 7, 8)]
    assert "1,999,999 records repeat an earlier one" in caplog.text
    columns = load_encoding_columns(path)
    assert columns.encodings.shape == (2, 128) and columns.paths == ["x.jpg", "x.jpg"]
