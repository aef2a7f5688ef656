"""Models built once and kept on disk between runs, so a run starts fast.

Two things every run used to build from scratch are pure functions of files
that rarely change: dlib's HOG face detector, which
``dlib.get_frontal_face_detector()`` decompresses from a string built into
dlib (0.33-0.54 s here, where reading its saved form takes 1 ms), and the
ResNet's ONNX graph, built from dlib's weight file (~0.2 s with importing
onnx).  Both are kept in :func:`cache_folder` under a key of what they are built
from, written whole or not at all.  Where the folder cannot be written the model
is simply built every time; a kept file found damaged is built again, and
one kept under the same name for an older key is removed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable, TypeVar

Model = TypeVar("Model")

# Bump when a kept model's form changes, so files kept by older code are rebuilt.
VERSION = 1

_DIGEST_CHARS = 16  # of the key's digest in a kept file's name


def cache_folder() -> Path | None:
    """``$XDG_CACHE_HOME/facecluster`` (default ``~/.cache/facecluster``); None where
    there is no home to keep it in (then every run builds its models)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser(os.path.join("~", ".cache")))
    return base / "facecluster" if base.is_absolute() else None


def file_key(path: str) -> str:
    """What a model built from the file at ``path`` depends on: its real path, size and time."""
    info = os.stat(path)
    return f"{os.path.realpath(path)}|{info.st_size}|{info.st_mtime_ns}"


def kept(name: str, key: str, build: Callable[[Path], None], load: Callable[[Path], Model]) -> Model:
    """``load(path)`` of the file ``build(path)`` writes, kept between runs under
    ``name`` (``stem.suffix``: kept as ``stem-<digest of key>.suffix``) and ``key``.

    ``build`` writes the model to the path it is given; ``load`` reads it back
    (and raises if it cannot: the file is then built again).
    """
    folder = cache_folder()
    if folder is None:
        return _built(name, build, load)
    digest = hashlib.blake2b(f"{VERSION}|{key}".encode(), digest_size=_DIGEST_CHARS // 2).hexdigest()
    path = folder / f"{Path(name).stem}-{digest}{Path(name).suffix}"
    if path.is_file():
        try:
            return load(path)
        except Exception:  # a damaged file, in whatever way the model's own loader says so
            pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{name}-") as scratch:
            fresh = Path(scratch) / name
            build(fresh)
            model = load(fresh)
            os.replace(fresh, path)  # whole or not at all, whichever worker finishes first
        _forget_others(path, name)
        return model
    except OSError:  # nowhere to keep it
        return _built(name, build, load)


def _forget_others(path: Path, name: str) -> None:
    """Remove the files kept under ``name`` for other keys (an older dlib, a
    reinstalled model file): each is the size of its model, and none is read again."""
    for other in path.parent.glob(f"{Path(name).stem}-{'?' * _DIGEST_CHARS}{Path(name).suffix}"):
        if other != path:
            try:
                other.unlink()
            except OSError:
                pass


def _built(name: str, build: Callable[[Path], None], load: Callable[[Path], Model]) -> Model:
    """The model built in a scratch folder and loaded, kept nowhere."""
    with tempfile.TemporaryDirectory(prefix=f"facecluster-{name}-") as scratch:
        fresh = Path(scratch) / name
        build(fresh)
        return load(fresh)
