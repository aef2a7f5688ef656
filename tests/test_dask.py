"""Encoding on a real Dask cluster: ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1.

Every run is compared with a local run of the same photos: the same records in
the same order, the same encodings file, and caches either run can resume from.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from conftest import ROOT, require, run_script
from test_encoding import HOG, copy_photos, same_records

require("distributed")

from facecluster.store.photo_cache import cache_path_for  # noqa: E402
from facecluster.run import dask_runner  # noqa: E402
from facecluster.run.dask_local import LocalCluster, free_port, local_cluster  # noqa: E402
from facecluster.run.pipeline import encode_dataset, list_dataset  # noqa: E402
from facecluster.store import load_encodings  # noqa: E402

PEOPLE = ["Aaron_Peirsol", "Abdullah_Gul", "Adrien_Brody", "Al_Gore", "Alejandro_Toledo", "Ali_Naimi",
          "Alvaro_Uribe", "Amelia_Vega"]

# Test-only: a worker that imports this dies on a photo named deadly*, as on a crashing decoder.
DEADLY_PRELOAD = """
import os
from facecluster.run import pipeline

_load_image = getattr(pipeline.load_image, "original", pipeline.load_image)  # imported twice: nanny, worker

def _load_or_die(path, *args, **kwargs):
    if os.path.basename(path).startswith("deadly"):
        os._exit(11)
    return _load_image(path, *args, **kwargs)

_load_or_die.original = _load_image
pipeline.load_image = _load_or_die
"""


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, lfw: Path) -> Path:
    """24 real faces of 8 people, a truncated photo and a text file named like one."""
    folder = tmp_path_factory.mktemp("dask") / "photos"
    copied = copy_photos(lfw, folder, PEOPLE, 3)
    (folder / "truncated.jpg").write_bytes(copied[0].read_bytes()[:2000])
    (folder / "notes.jpg").write_text("not a photo")
    return folder


@pytest.fixture(scope="module")
def local_run(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The encodings file of a local run (2 processes), to compare with."""
    encodings = tmp_path_factory.mktemp("local") / "local.pickle"
    done = run_script("encode_faces.py", "-i", str(photos), "-e", str(encodings), "--workers", "2", timeout=300)
    assert done.returncode == 0, done.stderr
    return encodings


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, local_run: Path):
    """A scheduler and two workers; a task is given up after its second worker death.

    One task per worker at a time (worker-saturation 1.0), so a photo that
    kills its worker takes no innocent photo down with it.
    """
    logs = tmp_path_factory.mktemp("dask-logs")
    (logs / "deadly_preload.py").write_text(DEADLY_PRELOAD)
    settings = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1",
                "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0"}
    with local_cluster(logs, workers=2, scheduler_env=settings,
                       worker_options=("--preload", str(logs / "deadly_preload.py"))) as running:
        yield running


def encode_on(cluster: LocalCluster, folder: Path, encodings: Path, photos: str = "auto", **options):
    """``encode_dataset`` through :func:`dask_runner.connect`; returns (records, summary, runner, lines)."""
    cluster.wait_for_workers(2)  # a worker killed by an earlier test is back
    lines: list[str] = []
    listing = list_dataset(str(folder))
    runner = dask_runner.connect(cluster.address, HOG, listing, photos, say=lines.append)
    records, summary = encode_dataset(listing, str(encodings), HOG, runner=runner, **options)
    runner.close()
    return records, summary, runner, lines


def test_the_script_on_a_cluster_writes_what_a_local_run_writes(cluster: LocalCluster, photos: Path,
                                                                local_run: Path, tmp_path: Path) -> None:
    encodings = tmp_path / "dask.pickle"
    done = run_script("encode_faces.py", "-i", str(photos), "-e", str(encodings), "--dask", cluster.address,
                      timeout=300)
    assert done.returncode == 0, done.stderr
    assert encodings.read_bytes() == local_run.read_bytes()  # same records, same order, same bytes
    assert Path(f"{encodings}.skipped.txt").read_bytes() == Path(f"{local_run}.skipped.txt").read_bytes()
    assert "[INFO] Dask: " + cluster.address + ", 2 workers, 2 threads; photos read by the workers" in done.stdout
    assert "[INFO] Dask: 25 photos encoded on 2 workers" in done.stdout  # 24 faces and the truncated one
    assert "0 results reused from earlier runs, 25 images encoded now" in done.stdout

    # Either run resumes the other's cache: switch from the cluster to local, and back.
    again = run_script("encode_faces.py", "-i", str(photos), "-e", str(encodings), "--workers", "1", timeout=300)
    assert "25 results reused from earlier runs, 0 images encoded now" in again.stdout, again.stderr
    shutil.copy(f"{local_run}.cache.sqlite", tmp_path / "from-local.pickle.cache.sqlite")
    back = run_script("encode_faces.py", "-i", str(photos), "-e", str(tmp_path / "from-local.pickle"),
                      "--dask", cluster.address, timeout=300)
    assert "25 results reused from earlier runs, 0 images encoded now" in back.stdout, back.stderr
    assert (tmp_path / "from-local.pickle").read_bytes() == local_run.read_bytes()


def test_the_script_lets_go_of_the_cluster_when_the_run_fails(cluster: LocalCluster, photos: Path, tmp_path: Path,
                                                               monkeypatch) -> None:
    """An error (a full disk, Ctrl-C) mid-run still closes the client: left open, it prints
    tracebacks as the process ends."""
    import encode_faces

    connected = []
    real_connect = dask_runner.connect
    monkeypatch.setattr(dask_runner, "connect", lambda *a, **k: connected.append(real_connect(*a, **k)) or connected[-1])

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(encode_faces, "encode_dataset", interrupted)
    monkeypatch.setattr(sys, "argv", ["encode_faces.py", "-i", str(photos), "-e", str(tmp_path / "e.pickle"),
                                      "--dask", cluster.address])
    cluster.wait_for_workers(2)
    with pytest.raises(KeyboardInterrupt):
        encode_faces.main()
    assert [runner.client.status for runner in connected] == ["closed"]


def test_photos_sent_from_the_client_are_decoded_like_local_files(cluster: LocalCluster, photos: Path,
                                                                  local_run: Path, tmp_path: Path) -> None:
    records, summary, _, lines = encode_on(cluster, photos, tmp_path / "sent.pickle", photos="send")
    assert same_records(records, load_encodings(local_run))
    assert summary.skipped_by_category() == {"corrupt": 1, "not an image": 1}
    assert "photos sent from this machine (--dask-photos send)" in lines[0]
    # The cache holds the files' own size, time and digest: a local run reuses every photo.
    _, summary = encode_dataset(list_dataset(str(photos)), str(tmp_path / "sent.pickle"), HOG, workers=1)
    assert (summary.reused, summary.encoded) == (25, 0)


@pytest.mark.parametrize("mode", ["send", "shared"])
def test_a_task_of_several_photos_keeps_each_result_with_its_photo(cluster: LocalCluster, photos: Path, mode: str,
                                                                  tmp_path: Path) -> None:
    """As a CNN batch is: one task, several photos, one of them gone since the listing."""
    folder = tmp_path / "photos"
    shutil.copytree(photos / PEOPLE[0], folder)
    paths = [str(path) for path in sorted(folder.glob("*.jpg"))]
    listing = list_dataset(str(folder))
    runner = dask_runner.connect(cluster.address, HOG, listing, mode, say=lambda line: None)
    os.unlink(paths[1])
    results = list(runner([paths], HOG, 2))
    assert sorted(result.path for result in results) == paths
    by_path = {result.path: result for result in results}
    assert (by_path[paths[1]].status, by_path[paths[1]].category) == ("skipped", "missing")
    assert by_path[paths[0]].status == by_path[paths[2]].status == "faces"
    assert by_path[paths[0]].fingerprint.size == os.stat(paths[0]).st_size


def test_a_worker_killed_mid_run_costs_only_its_unfinished_tasks(cluster: LocalCluster, photos: Path,
                                                                 local_run: Path, tmp_path: Path) -> None:
    cluster.wait_for_workers(2)
    listing = list_dataset(str(photos))
    runner = dask_runner.connect(cluster.address, HOG, listing, "shared", say=lambda line: None)
    worker_pids = runner.client.run(os.getpid)
    victim = sorted(worker_pids.values())[0]
    arrived: list[str] = []

    def kill_after_five(result, reused: bool) -> None:
        arrived.append(result.path)
        if len(arrived) == 5:
            os.kill(victim, signal.SIGKILL)  # its nanny starts a fresh one

    records, summary = encode_dataset(listing, str(tmp_path / "killed.pickle"), HOG, runner=runner,
                                      on_result=kill_after_five)
    assert len(arrived) == 25 == len(set(arrived))
    assert summary.skipped_by_category() == {"corrupt": 1, "not an image": 1}
    assert same_records(records, load_encodings(local_run))


def test_a_run_killed_mid_way_resumes_on_the_cluster(cluster: LocalCluster, photos: Path, local_run: Path,
                                                     tmp_path: Path) -> None:
    encodings = tmp_path / "killed.pickle"
    command = [sys.executable, "encode_faces.py", "-i", str(photos), "-e", str(encodings), "--dask", cluster.address]
    run = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    saved = 0
    deadline = time.monotonic() + 120
    while saved < 5 and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.05)
        if os.path.exists(cache_path_for(str(encodings))):
            with contextlib.suppress(sqlite3.Error), sqlite3.connect(cache_path_for(str(encodings))) as db:
                saved = db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    run.kill()  # the client only: its tasks are dropped by the scheduler
    run.wait()
    assert 5 <= saved < 25 and not encodings.exists(), saved
    resumed = run_script(*command[1:], timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    reused = int(resumed.stdout.split(" results reused")[0].rsplit("[INFO] ", 1)[1])
    assert reused >= 5
    assert encodings.read_bytes() == local_run.read_bytes()


def test_a_photo_that_kills_workers_is_isolated_and_reported(cluster: LocalCluster, lfw: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    copied = copy_photos(lfw, folder, PEOPLE[:2], 3)
    shutil.copy(copied[0], folder / "deadly.jpg")
    records, summary, runner, _ = encode_on(cluster, folder, tmp_path / "e.pickle", photos="shared")
    assert summary.skipped_by_category() == {"crashed": 1}
    assert summary.skipped[0].path == str(folder / "deadly.jpg")
    assert summary.with_faces == 6 and runner.photos_done == 6
    # A crash may be passing: not kept, so the next run tries that photo again.
    with sqlite3.connect(cache_path_for(str(tmp_path / "e.pickle"))) as db:
        assert db.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 6


def test_an_unreachable_scheduler_is_one_line(photos: Path, tmp_path: Path) -> None:
    encodings = tmp_path / "e.pickle"
    encodings.write_bytes(b"earlier results")
    done = run_script("encode_faces.py", "-i", str(photos), "-e", str(encodings), "--dask",
                      f"tcp://127.0.0.1:{free_port()}", env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"},
                      timeout=120)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("[ERROR] cannot reach the Dask scheduler at tcp://127.0.0.1:")
    assert encodings.read_bytes() == b"earlier results"


def bare_venv(folder: Path) -> Path:
    """The Python of a new venv that has this environment's packages but not this project (as before
    ``make install`` installed it): this site-packages is on its path, but the .pth files that import
    the editable install are not run there."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    site = next(folder.glob("lib/python*/site-packages"))
    ours = dict.fromkeys(sysconfig.get_paths()[kind] for kind in ("purelib", "platlib"))
    (site / "packages-of-the-project-venv.pth").write_text("".join(f"{path}\n" for path in ours))
    python = folder / "bin" / "python"
    found = subprocess.run([python, "-c", "import distributed, numpy, facecluster"], cwd=folder, capture_output=True,
                           text=True, env={**os.environ, "PYTHONPATH": ""})
    assert "No module named 'facecluster'" in found.stderr, found.stderr  # Dask and numpy import, the project not
    return python


def test_workers_without_the_models_or_the_project_are_one_line(photos: Path, tmp_path: Path) -> None:
    """A worker whose face_recognition_models can't be imported; then one from a venv without this project."""
    no_models = tmp_path / "no-models"
    no_models.mkdir()
    (no_models / "face_recognition_models.py").write_text("raise ImportError('no model files on this worker')\n")
    with local_cluster(tmp_path, workers=0) as running:
        running.add_worker("bare", env={"PYTHONPATH": f"{no_models}{os.pathsep}{running.env['PYTHONPATH']}"})
        running.wait_for_workers(1)
        done = run_script("encode_faces.py", "-i", str(photos), "-e", str(tmp_path / "e.pickle"),
                          "--dask", running.address, timeout=120)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip() == ("[ERROR] the Dask workers cannot load the models (ImportError: no model "
                                       "files on this worker): install requirements.txt on every worker")
    bare = bare_venv(tmp_path / "bare-venv")
    with local_cluster(tmp_path, workers=0) as running:
        running.start([str(bare), "-m", "distributed.cli.dask_worker", running.address, "--name", "bare",
                       "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"], "bare.log", {"PYTHONPATH": ""})
        running.wait_for_workers(1)
        done = run_script("encode_faces.py", "-i", str(photos), "-e", str(tmp_path / "e.pickle"),
                          "--dask", running.address, timeout=120)
        assert done.returncode == 2, done.stderr
        line = done.stderr.strip()
        assert line.startswith("[ERROR] the Dask workers cannot run facecluster (") and "\n" not in line, line
        assert "No module named 'facecluster'" in line and line.endswith("install this project on every worker"
                                                                         " (docs/dask.md)"), line


def test_a_scheduler_without_the_project_or_with_other_code_is_one_line(photos: Path, tmp_path: Path) -> None:
    """The scheduler unpickles the tasks, so it is checked as the workers are (no worker needed to see it)."""
    bare = bare_venv(tmp_path / "bare-venv")
    other_code = tmp_path / "other-code"
    shutil.copytree(ROOT / "facecluster", other_code / "facecluster", ignore=shutil.ignore_patterns("__pycache__"))
    with open(other_code / "facecluster" / "run" / "pipeline.py", "a") as changed:
        changed.write("\n# an edit on the scheduler's machine\n")
    encodings = tmp_path / "e.pickle"
    encodings.write_bytes(b"earlier results")
    lines = []
    for pythonpath in ("", str(other_code)):
        address = f"tcp://127.0.0.1:{free_port()}"
        scheduler = LocalCluster(address, tmp_path, dict(os.environ, PYTHONPATH=pythonpath))
        try:
            scheduler.start([str(bare), "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port",
                             address.rsplit(":", 1)[1], "--no-dashboard"], "scheduler.log")
            scheduler.wait_for_scheduler()
            done = run_script("encode_faces.py", "-i", str(photos), "-e", str(encodings), "--dask", address,
                              timeout=120)
        finally:
            scheduler.stop()
        assert done.returncode == 2, done.stderr
        lines.append(done.stderr.strip().replace(address, "ADDRESS"))
    assert lines[0] == ("[ERROR] the Dask scheduler cannot run facecluster (ModuleNotFoundError: No module named"
                        " 'facecluster'): start it from the .venv that make install made (docs/dask.md)")
    assert lines[1].startswith("[ERROR] version mismatch between this machine and Dask scheduler ADDRESS:"
                               " facecluster code "), lines[1]
    assert lines[1].endswith(" there; install the same versions everywhere")
    assert encodings.read_bytes() == b"earlier results"


def readme_dask_commands(port: int, photos: Path, encodings: Path) -> list[list[str]]:
    """The README's three Dask commands (scheduler, worker, client), verbatim but for the port, the
    scheduler's host (this machine), the photos and the encodings file."""
    section = (ROOT / "README.md").read_text().split("## Encoding on several machines (Dask)\n", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    ours = {"8786": str(port), "tcp://SCHEDULER:8786": f"tcp://127.0.0.1:{port}", "/mnt/archive": str(photos),
            "archive.pickle": str(encodings)}
    commands = [shlex.split(line) for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert [command[:2] for command in commands] == [[".venv/bin/dask", "scheduler"], [".venv/bin/dask", "worker"],
                                                     [".venv/bin/python", "encode_faces.py"]], commands
    assert sum(word in ours for command in commands for word in command) == 5, commands  # all of ours, once each
    return [[ours.get(word, word) for word in command] for command in commands]


def _two_cpus() -> None:
    """In the worker's process: two CPUs, so that the README's one process per core (``--nworkers -1``) is two."""
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])


def test_the_readmes_commands_encode_what_a_local_run_encodes(photos: Path, local_run: Path, tmp_path: Path) -> None:
    """From the project folder, no PYTHONPATH: what `make install` installed is what the scheduler and
    workers import (the tests above give theirs a PYTHONPATH, to test this checkout whatever is installed)."""
    port = free_port()
    scheduler, worker, client = readme_dask_commands(port, photos, tmp_path / "readme.pickle")
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    installed = subprocess.run([ROOT / ".venv/bin/python", "-c", "import facecluster; print(facecluster.__file__)"],
                               cwd=tmp_path, env=env, capture_output=True, text=True)
    where = f"(.venv imports facecluster from: {installed.stdout.strip() or installed.stderr.strip()[-200:]})"
    cluster = LocalCluster(f"tcp://127.0.0.1:{port}", tmp_path, env)
    try:
        for command, log, cpus in ((scheduler, "scheduler.log", None), (worker, "workers.log", _two_cpus)):
            with open(tmp_path / log, "ab") as output:
                cluster.processes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=output,
                                                          stderr=subprocess.STDOUT, start_new_session=True,
                                                          preexec_fn=cpus))
        cluster.wait_for_workers(2)
        done = subprocess.run(client, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    finally:
        cluster.stop()
    assert done.returncode == 0, f"{done.stderr} {where}"
    assert f"[INFO] Dask: tcp://127.0.0.1:{port}, 2 workers, 2 threads; photos read by the workers" in done.stdout
    assert "[INFO] Dask: 25 photos encoded on 2 workers" in done.stdout
    assert (tmp_path / "readme.pickle").read_bytes() == local_run.read_bytes()


def test_a_version_mismatch_names_the_worker_and_the_package() -> None:
    ours = {"python": "3.11", "numpy": "2.4.6", "facecluster code": "abc"}
    same = {"tcp://10.0.0.1:4000": dict(ours), "tcp://10.0.0.2:4000": dict(ours)}
    assert dask_runner.version_mismatch(ours, same) is None
    other = {**same, "tcp://10.0.0.2:4000": dict(ours, numpy="2.3.0")}
    assert dask_runner.version_mismatch(ours, other) == (
        "version mismatch between this machine and Dask worker tcp://10.0.0.2:4000: numpy 2.4.6 here, 2.3.0 there;"
        " install the same versions everywhere")
    assert dask_runner.version_mismatch(ours, {"tcp://10.0.0.3:8786": {}}, "scheduler") == (
        "version mismatch between this machine and Dask scheduler tcp://10.0.0.3:8786: python 3.11 here, missing"
        " there; install the same versions everywhere")
