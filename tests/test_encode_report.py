"""What encode_faces.py tells a user about photos with no face and photos skipped."""

from __future__ import annotations

from pathlib import Path

from facecluster.run import report
from facecluster.run.pipeline import RunSummary
from facecluster.sources.skips import Skip


def summary_of(no_face: int, skipped: int) -> RunSummary:
    return RunSummary(
        images=no_face + skipped,
        no_face=[f"photos/blank_{i:02d}.jpg" for i in range(no_face)],
        skipped=[Skip(f"photos/bad_{i:02d}.jpg", "corrupt" if i % 3 else "empty", f"reason {i}") for i in range(skipped)],
    )


def test_ten_named_then_counted_and_all_listed(tmp_path: Path, capsys) -> None:
    encodings = str(tmp_path / "enc.pickle")
    summary = summary_of(no_face=13, skipped=12)
    report.warn_skipped(summary, encodings)
    report.write_lists(summary, encodings)
    report.print_summary(summary, encodings)
    out, err = capsys.readouterr()

    warnings = err.splitlines()
    assert warnings[0] == "[WARNING] skipped photos/bad_00.jpg: reason 0"
    assert len(warnings) == 11
    assert warnings[-1] == f"[WARNING] ... and 2 more skipped; all 12 are listed in {encodings}.skipped.txt"
    assert "[INFO] skipped, corrupt: 8\n[INFO] skipped, empty: 4\n" in out
    assert f"[INFO] no face found in 13 images (all listed in {encodings}.no-face.txt; -d cnn may find faces in them):" in out
    assert "[INFO]   photos/blank_09.jpg\n[INFO]   ... and 3 more\n" in out
    assert "blank_10" not in out
    assert (tmp_path / "enc.pickle.no-face.txt").read_text().splitlines() == summary.no_face
    assert (tmp_path / "enc.pickle.skipped.txt").read_text().splitlines()[1] == "photos/bad_01.jpg\tcorrupt\treason 1"


def test_lists_of_an_earlier_run_do_not_linger(tmp_path: Path, capsys) -> None:
    encodings = str(tmp_path / "enc.pickle")
    report.write_lists(summary_of(no_face=2, skipped=1), encodings)
    report.write_lists(summary_of(no_face=0, skipped=0), encodings)
    report.print_summary(summary_of(no_face=0, skipped=0), encodings)
    assert list(tmp_path.iterdir()) == []
    out = capsys.readouterr().out
    assert "no face found" not in out and "[INFO] skipped," not in out


def test_the_no_face_hint_names_what_has_not_run_yet(tmp_path: Path, capsys) -> None:
    encodings = str(tmp_path / "enc.pickle")
    report.print_summary(summary_of(no_face=1, skipped=0), encodings, "hog+cnn")
    out = capsys.readouterr().out
    assert "--upsample 2 may find smaller faces in them" in out
    assert "-d cnn" not in out
