"""The output folder (``cluster_faces.py -o DIR``): checked before any work, and nobody else's files touched.

A folder facecluster writes holds a marker file, :data:`~facecluster.files.OUTPUT_MARKER`.
In a marked folder, the names facecluster writes (``index.html``,
``clusters.csv``, ``face_id_07.jpg``, ``thumbs/`` ...) are its own, so a
re-run replaces them and tidies up after itself; any other file there is
left alone.  A folder that already holds files and no marker is someone
else's: it is refused with one line unless ``--overwrite`` says to write
there anyway (and then it is marked).  A folder of an older version, made
before the marker, is recognised by its ``clusters.json``.

The marker also tells ``encode_faces.py`` that the folder is output, not
photos, when it sits inside a dataset.
"""

from __future__ import annotations

import json
import os

from ..files import OUTPUT_MARKER, check_output_folder, display_path, open_regular, write_text_atomically

NAMES_SHOWN = 3  # of someone else's files, in the refusal


def _made_by_an_older_version(folder: str) -> bool:
    """Whether ``folder`` holds the ``clusters.json`` (or organize manifest) facecluster wrote before the marker."""
    if os.path.isfile(os.path.join(folder, ".facecluster-organize.json")):
        return True
    try:
        with open_regular(os.path.join(folder, "clusters.json")) as handle:
            head = handle.read(4096)  # the file may hold a million faces: its start is enough
    except OSError:
        return False
    return head.startswith(b'{\n  "run": ') and b'\n  "counts": {"faces": ' in head


def is_ours(folder: str) -> bool:
    """Whether ``folder`` is facecluster's output (marked, or an older version's)."""
    return os.path.isfile(os.path.join(folder, OUTPUT_MARKER)) or _made_by_an_older_version(folder)


def check_output(folder: str, overwrite: bool = False) -> str | None:
    """Why ``cluster_faces.py`` must not write into ``folder``, in one line, or ``None`` when it may.

    Checked before the encodings are read: the folder (or the nearest one
    above it, if it is to be made) is writable, has space, is not a dangling
    symlink or a file, and is new, empty, ours, or ``overwrite`` was given.
    """
    what = f"--output {display_path(folder)}"
    problem = check_output_folder(folder, what)
    if problem or not os.path.isdir(folder) or overwrite or is_ours(folder):
        return problem
    theirs = sorted(os.listdir(folder))
    if not theirs:
        return None
    shown = ", ".join(display_path(name) for name in theirs[:NAMES_SHOWN])
    more = f" and {len(theirs) - NAMES_SHOWN:,} more" if len(theirs) > NAMES_SHOWN else ""
    return (f"{what}: the folder holds files facecluster did not write ({shown}{more}); give a new or empty "
            "folder, or --overwrite to write into it anyway (files with facecluster's names are then replaced)")


def mark(folder: str) -> None:
    """Mark ``folder`` as facecluster's output (before anything else is written there)."""
    marker = os.path.join(folder, OUTPUT_MARKER)
    if not os.path.isfile(marker):
        write_text_atomically(marker, json.dumps({"written_by": "facecluster cluster_faces.py", "version": 1,
                                                  "note": "this folder is facecluster's output: its files "
                                                          "may be replaced by the next run"}) + "\n")
