"""Both scripts end to end, by subprocess, on real faces, as a user runs them."""

from __future__ import annotations

import csv
import os
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, run_script
from test_images import bad_folder

from facecluster.files import OUTPUT_MARKER


def awkward_real_folder(folder: Path, lfw: Path, fr_examples: Path) -> list[str]:
    """Real faces in every awkward form, plus the bad files; returns the real photos' names."""
    folder.mkdir()
    people = ["Aaron_Peirsol", "Abdullah_Gul", "Adrien_Brody"]
    sources = [sorted((lfw / p).glob("*.jpg"))[i] for p in people for i in range(3)]
    real = []
    for index, source in enumerate(sources):
        image = Image.open(source)
        name = f"photo_{index:02d}.jpg"
        if index == 0:
            image.save(folder / name, format="PNG")  # PNG named .jpg
        elif index == 1:
            image.save(folder / name, format="WEBP", quality=90)  # WEBP named .jpg
        elif index == 2:
            exif = Image.Exif()
            exif[0x0112] = 8  # stored rotated; the viewer turns it upright
            image.transpose(Image.Transpose.ROTATE_270).save(folder / name, exif=exif, quality=95)
        elif index == 3:
            gray = np.asarray(image.convert("L"), dtype=np.uint16) * 257
            Image.fromarray(gray).save(folder / (name := f"photo_{index:02d}.PNG"))  # 16-bit grayscale
        elif index == 4:
            image.convert("RGBA").save(folder / (name := f"photo_{index:02d}.png"))
        elif index == 5:
            image.convert("CMYK").save(folder / (name := f"photo_{index:02d}.TIFF"))
        else:
            shutil.copy(source, folder / name)
        real.append(name)
    large = fr_examples / "obama" / "examples__obama-1080p.jpg"
    shutil.copy(large, folder / "large.jpg")
    real.append("large.jpg")
    latin1 = os.fsdecode(b"caf\xe9.jpg")  # a name that is not valid UTF-8
    shutil.copy(sources[-1], folder / latin1)
    real.append(latin1)
    bad_folder(folder)
    return real


def test_awkward_folder_through_both_scripts(tmp_path: Path, lfw: Path, fr_examples: Path) -> None:
    dataset = tmp_path / "dataset"
    real = awkward_real_folder(dataset, lfw, fr_examples)
    encodings = tmp_path / "encodings.pickle"
    out = run_script("encode_faces.py", "--dataset", str(dataset), "--encodings", str(encodings), "-d", "hog")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    for line in ("[INFO] quantifying faces...", "[INFO] serializing encodings...", "[INFO] processing image 1/"):
        assert line in out.stdout
    with open(encodings, "rb") as handle:
        records = pickle.load(handle)  # plain pickle, as the tutorial loads it
    found = {os.path.basename(r["imagePath"]) for r in records}
    assert set(real) <= found, set(real) - found
    for name in ("empty.jpg", "truncated.jpg", "notes.jpg", "dangling.jpg", "loop_a.jpg", "x.jpg"):
        assert any(name in line and line.startswith("[WARNING] skipped") for line in out.stderr.splitlines()), name
    assert "[INFO] skipped, symlink loop: 2" in out.stdout
    for line in out.stdout.splitlines():  # grouped by a short category, never by nested messages
        if line.startswith("[INFO] skipped, "):
            assert re.fullmatch(r"\[INFO\] skipped, [a-z ]+: \d+", line), line
    listed = Path(f"{encodings}.skipped.txt").read_bytes().splitlines()
    assert sorted(os.path.basename(line.split(b"\t")[0]) for line in listed) == sorted(
        n.encode() for n in ("empty.jpg", "truncated.jpg", "notes.jpg", "dangling.jpg", "loop_a.jpg", "loop_b.jpg", "x.jpg"))
    # whole.jpg is a gradient: a photo with no face, named on screen and in the list for a -d cnn run
    assert "[INFO] no face found in 1 images" in out.stdout and f"[INFO]   {dataset / 'whole.jpg'}" in out.stdout
    assert Path(f"{encodings}.no-face.txt").read_bytes() == os.fsencode(dataset / "whole.jpg") + b"\n"

    output = tmp_path / "output"
    out = run_script("cluster_faces.py", "--encodings", str(encodings), "--output", str(output),
                     "--method", "chinese-whispers", "--organize", "link")
    assert out.returncode == 0, out.stderr
    assert "[INFO] # unique faces: 3" in out.stdout  # the three people; the one obama photo is unknown
    montages = [line for line in out.stdout.splitlines() if line.startswith("[INFO] faces for face ID: ")]
    assert montages == [f"[INFO] faces for face ID: {label}" for label in (-1, 0, 1, 2)]  # np.unique order
    with open(output / "clusters.csv", newline="", errors="surrogateescape") as handle:  # raw bytes of odd names kept
        rows = list(csv.reader(handle))
    assert rows[0] == ["image", "top", "right", "bottom", "left", "label", "frame", "time", "name"]
    assert len(rows) - 1 == len(records)
    assert {"face_id_00.jpg", "face_id_01.jpg", "face_id_02.jpg"} <= {p.name for p in output.glob("face_id_*.jpg")}
    assert "face_id_00.jpg" in (output / "index.html").read_text(errors="surrogateescape")
    people = sorted(p for p in output.glob("person_*") if p.is_dir())
    assert len(people) == 3  # one folder a person, each linking that person's photos in the dataset
    assert all(list(person.iterdir()) for person in people)
    assert all(os.path.realpath(link).startswith(str(dataset)) for person in people for link in person.iterdir())


def test_cluster_without_display_writes_files(tmp_path: Path, lfw: Path) -> None:
    dataset = tmp_path / "dataset"
    for person in ("Aaron_Peirsol", "Abdullah_Gul"):
        for photo in sorted((lfw / person).glob("*.jpg"))[:4]:
            shutil.copy(photo, dataset.mkdir(exist_ok=True) or dataset / photo.name)
    encodings = tmp_path / "enc.pickle"
    assert run_script("encode_faces.py", "-i", str(dataset), "-e", str(encodings)).returncode == 0
    out = run_script(str(ROOT / "cluster_faces.py"), "-e", str(encodings), "--min-samples", "3", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "no display" in out.stdout
    assert "[INFO] # unique faces: 2" in out.stdout
    assert sorted(p.name for p in (tmp_path / "output").glob("*.jpg")) == ["face_id_00.jpg", "face_id_01.jpg"]
    # the recommended method says what it read from the collection and what it ran
    out = run_script(str(ROOT / "cluster_faces.py"), "-e", str(encodings), "-m", "adaptive", "-o", "adaptive",
                     cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert re.search(r"^\[INFO\] adaptive: uncrowded collection \([\d.]+% of face pairs closer than 0\.465\): "
                     r"chinese-whispers at 0\.\d+ ", out.stdout, re.M), out.stdout
    assert "[INFO] # unique faces: 2" in out.stdout


def one_error_line(result) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("[ERROR]")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_encode_errors(tmp_path: Path) -> None:
    line = one_error_line(run_script("encode_faces.py", "-i", str(tmp_path / "nope"), "-e", str(tmp_path / "e.p")))
    assert "nope" in line and "no such folder" in line
    (tmp_path / "empty").mkdir()
    line = one_error_line(run_script("encode_faces.py", "-i", str(tmp_path / "empty"), "-e", str(tmp_path / "e.p")))
    assert "holds no image" in line
    line = one_error_line(run_script("encode_faces.py", "-i", str(tmp_path / "empty"), "-e", str(tmp_path / "no" / "e.p")))
    assert "does not exist" in line
    line = one_error_line(run_script("encode_faces.py", "-i", str(tmp_path / "empty"), "-e", str(tmp_path)))
    assert "is a folder" in line


class Exploit:
    """A pickle that runs ``touch marker`` when loaded by a trusting unpickler."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


@pytest.mark.parametrize("kind, reason", [
    ("missing", "no such file (run encode_faces.py first)"),
    ("empty", "the file is empty"),
    ("text", "not a valid pickle or truncated"),
    ("malicious", "refused: the file asks for posix.system"),
    ("short", "encoding has 12 values, expected 128"),
    ("folder", "is a folder, not an encodings file"),
])
def test_cluster_errors(tmp_path: Path, kind: str, reason: str) -> None:
    path = tmp_path / "enc.pickle"
    marker = tmp_path / "pwned"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("hello")
    elif kind == "malicious":
        path.write_bytes(pickle.dumps([Exploit(marker)]))
    elif kind == "short":
        path.write_bytes(pickle.dumps([{"imagePath": "a.jpg", "loc": (0, 1, 1, 0), "encoding": np.zeros(12)}]))
    elif kind == "folder":
        path.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / OUTPUT_MARKER).write_text("{}")  # an earlier run's output folder
    (tmp_path / "out" / "clusters.csv").write_text("earlier results")
    line = one_error_line(run_script("cluster_faces.py", "-e", str(path), "-o", str(tmp_path / "out")))
    assert line.startswith(f"[ERROR] {path}: ") and reason in line, line
    assert not marker.exists()
    assert (tmp_path / "out" / "clusters.csv").read_text() == "earlier results"  # nothing overwritten


@pytest.mark.parametrize("option, reason", [
    (["--eps", "-1"], "eps must be a positive number, got -1.0"),
    (["--eps", "nan"], "eps must be a positive number, got nan"),
    (["--min-samples", "0"], "min_samples must be an integer >= 1, got 0"),
    (["-m", "chinese-whispers", "--threshold", "0"], "threshold must be a positive number, got 0.0"),
    (["--threshold", "0.5"], "threshold applies to chinese-whispers, agglomerative and hdbscan; dbscan uses eps"),
    (["-m", "adaptive", "-t", "0.5"], "adaptive reads its threshold from the collection; to set one, use "
                                      "chinese-whispers or hdbscan"),
    (["--jobs", "0"], "jobs must be a non-zero integer"),
    (["--seed", "-3"], "seed must be a non-negative integer, got -3"),
    (["--min-cluster-size", "1"], "min_cluster_size must be an integer >= 2, got 1"),
    (["--max-montages", "0"], "--max-montages must be at least 1, got 0"),
])
def test_cluster_refuses_bad_options_before_reading(tmp_path: Path, option: list, reason: str) -> None:
    # The encodings file does not exist: the option must be refused first, without looking for it.
    missing = tmp_path / "huge.pickle"
    line = one_error_line(run_script("cluster_faces.py", "-e", str(missing), "-o", str(tmp_path / "out"), *option))
    assert line.startswith(f"[ERROR] bad option: {reason}"), line
    assert not (tmp_path / "out").exists()


def test_cluster_refuses_an_output_that_is_a_file_and_labels_that_do_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "huge.pickle"
    (tmp_path / "out").write_text("not a folder")
    line = one_error_line(run_script("cluster_faces.py", "-e", str(missing), "-o", str(tmp_path / "out")))
    assert line == f"[ERROR] --output {tmp_path / 'out'}: is a file, not a folder"
    line = one_error_line(run_script("cluster_faces.py", "-e", str(missing), "--labels", str(tmp_path / "k.csv")))
    assert line == f"[ERROR] --labels {tmp_path / 'k.csv'}: no such file"


def test_moved_photos_are_reported_once(tmp_path: Path) -> None:
    """Photos moved since encoding: gray faces, and one warning for montages and gallery together."""
    rng = np.random.default_rng(5)
    centres = rng.normal(0, 0.09, (3, 128))
    records = [{"imagePath": str(tmp_path / "moved" / f"photo_{k:03d}.jpg"), "loc": (0, 50, 50, 0),
                "encoding": centres[k % 3] + rng.normal(0, 0.01, 128)} for k in range(60)]
    path = tmp_path / "enc.pickle"
    path.write_bytes(pickle.dumps(records))
    out = run_script("cluster_faces.py", "-e", str(path), "-o", str(tmp_path / "out"), "--organize", "copy")
    assert out.returncode == 0, out.stderr
    assert "[INFO] # unique faces: 3" in out.stdout
    warnings = [line for line in out.stderr.splitlines() if line.startswith("[WARNING]")]
    assert len(warnings) == 2, out.stderr
    assert warnings[0].startswith("[WARNING] photos not found, not organized (60 photos): ")
    assert warnings[1].startswith("[WARNING] cannot show faces from photos that moved or broke since they were "
                                  "encoded (60 photos): ")
    assert warnings[1].endswith("photo_002.jpg and 57 more")


def test_zero_faces_and_too_few(tmp_path: Path) -> None:
    path = tmp_path / "enc.pickle"
    path.write_bytes(pickle.dumps([]))
    out = run_script("cluster_faces.py", "-e", str(path), "-o", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    assert "[INFO] # unique faces: 0" in out.stdout and "no faces" in out.stderr
    assert (tmp_path / "out" / "clusters.csv").read_text().strip() == "image,top,right,bottom,left,label,frame,time,name"

    rng = np.random.default_rng(1)
    path.write_bytes(pickle.dumps([{"imagePath": "a.jpg", "loc": (0, 1, 1, 0), "encoding": rng.normal(size=128)}] * 2))
    out = run_script("cluster_faces.py", "-e", str(path), "-o", str(tmp_path / "out2"))
    assert out.returncode == 0, out.stderr
    assert "fewer than --min-samples" in out.stderr


def test_progress_bar_on_a_terminal(tmp_path: Path, lfw: Path) -> None:
    """stderr on a terminal: a bar with rate and ETA instead of one line per photo."""
    import pty

    dataset = tmp_path / "dataset"
    dataset.mkdir()
    for photo in sorted((lfw / "Aaron_Peirsol").glob("*.jpg"))[:3]:
        shutil.copy(photo, dataset / photo.name)
    import fcntl
    import struct
    import subprocess
    import sys
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    env = dict(os.environ)

    done = subprocess.run([sys.executable, str(ROOT / "encode_faces.py"), "-i", str(dataset), "-e", str(tmp_path / "e.p")],
                          stdout=subprocess.PIPE, stderr=follower, env=env, timeout=300)
    os.close(follower)
    screen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    os.close(leader)
    assert done.returncode == 0
    text = screen.decode(errors="replace")
    assert "3/3" in text and "photo/s" in text and "<" in text  # count, rate, ETA
    assert "processing image" not in done.stdout.decode()


def test_no_mirror_gives_face_recognitions_own_encodings(tmp_path: Path, lfw: Path) -> None:
    """The mirror pass is the default and says so; --no-mirror is face_recognition.face_encodings exactly."""
    import face_recognition

    dataset = tmp_path / "dataset"
    dataset.mkdir()
    photo = sorted((lfw / "George_W_Bush").glob("*.jpg"))[0]
    shutil.copy(photo, dataset / photo.name)
    runs = {}
    for flags in ((), ("--no-mirror",)):
        encodings = tmp_path / f"enc{len(flags)}.pickle"
        out = run_script("encode_faces.py", "-i", str(dataset), "-e", str(encodings), "-d", "hog", *flags)
        assert out.returncode == 0, out.stderr
        runs[flags] = (out.stdout, pickle.loads(encodings.read_bytes()))
    default_out, default = runs[()]
    single_out, single = runs[("--no-mirror",)]
    assert "its mirror image, averaged" in default_out and "as face_recognition does (--no-mirror)" in single_out
    rgb = face_recognition.load_image_file(str(photo))
    expected = face_recognition.face_encodings(rgb, [tuple(r["loc"]) for r in single])
    assert np.abs(np.array([r["encoding"] for r in single]) - np.array(expected)).max() < 1e-5
    assert [r["loc"] for r in default] == [r["loc"] for r in single]
    assert min(np.linalg.norm(a["encoding"] - b["encoding"]) for a, b in zip(default, single)) > 0.02
