"""The encodings file: the tutorial's pickle, read as untrusted input, written atomically.

Format (unchanged from the tutorial, so either side reads the other's file)::

    [{"imagePath": str, "loc": (top, right, bottom, left), "encoding": ndarray(128,) float64}, ...]

Reading never trusts the file: :class:`RestrictedUnpickler` admits only the
few numpy globals an array needs, so a pickle that would run code is refused
before anything it names is imported or called; then every record is checked.
Writing goes to a temporary file that replaces the old one only when whole.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..files import NotRegularFile, open_regular, write_atomically
from ..records import ENCODING_SIZE, FaceRecord

# What unpickling a list of dicts of str, int tuples and float arrays needs
# (numpy 1.x and 2.x spell the module differently; protocol 5 uses _frombuffer).
# Each only builds data; none can run code or touch files.
_ALLOWED_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # protocol 2 stores the arrays' bytes through it
    }
)
PICKLE_PROTOCOL = 4  # readable by every Python 3 the tutorial ran on

log = logging.getLogger(__name__)


class EncodingsError(Exception):
    """The encodings file can't be used; ``str()`` is a one-line reason."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the numpy names an encodings file needs."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise EncodingsError(
                f"refused: the file asks for {module}.{name}, which an encodings file never needs "
                "(it may be malicious); nothing in it was run"
            )
        with _quiet_numpy_core():
            return super().find_class(module, name)


class _quiet_numpy_core:
    """numpy 2 warns when a 1.x-era pickle names ``numpy.core``; that is expected here."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore", DeprecationWarning)

    def __exit__(self, *exc):
        return self._catch.__exit__(*exc)


def _check_record(index: int, record: object) -> FaceRecord:
    where = f"record {index}"
    if not isinstance(record, dict):
        raise EncodingsError(f"{where} is a {type(record).__name__}, expected a dict")
    missing = {"imagePath", "loc", "encoding"} - record.keys()
    if missing:
        raise EncodingsError(f"{where} lacks {', '.join(sorted(missing))}")
    path, loc, encoding = record["imagePath"], record["loc"], record["encoding"]
    if not isinstance(path, str):
        raise EncodingsError(f"{where}: imagePath is a {type(path).__name__}, expected a string")
    if not (isinstance(loc, (tuple, list)) and len(loc) == 4 and all(isinstance(v, (int, np.integer)) for v in loc)):
        raise EncodingsError(f"{where}: loc must be 4 whole numbers (top, right, bottom, left)")
    if not isinstance(encoding, np.ndarray) or encoding.dtype.kind not in "fiu":
        raise EncodingsError(f"{where}: encoding is not a numeric array")
    if encoding.size != ENCODING_SIZE:
        raise EncodingsError(f"{where}: encoding has {encoding.size} values, expected {ENCODING_SIZE}")
    if not np.all(np.isfinite(encoding)):
        raise EncodingsError(f"{where}: encoding holds NaN or infinite values")
    checked = {
        "imagePath": path,
        "loc": tuple(int(v) for v in loc),
        "encoding": np.asarray(encoding, dtype=np.float64).reshape(ENCODING_SIZE),
    }
    return {**checked, **_video_keys(where, record)}  # type: ignore[return-value]


def _video_keys(where: str, record: dict) -> dict:
    """The optional keys of a face from a video: ``frame`` (whole, >= 0), ``time`` (seconds, >= 0)
    and ``track`` (whole, >= 0: faces of one video with the same track are one person followed on screen)."""
    keys = {}
    if "frame" in record:
        frame = record["frame"]
        if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or frame < 0:
            raise EncodingsError(f"{where}: frame must be a whole number >= 0")
        keys["frame"] = int(frame)
    if "time" in record:
        time = record["time"]
        if isinstance(time, bool) or not isinstance(time, (int, float, np.integer, np.floating)) or not 0 <= time < 1e9:
            raise EncodingsError(f"{where}: time must be seconds >= 0")
        keys["time"] = float(time)
    if "track" in record:
        track = record["track"]
        if isinstance(track, bool) or not isinstance(track, (int, np.integer)) or track < 0:
            raise EncodingsError(f"{where}: track must be a whole number >= 0")
        keys["track"] = int(track)
    return keys


def _face_key(record: object) -> int | None:
    """A hash of a record's photo, box and moment, or ``None`` when it has none to hash (it is then checked)."""
    try:
        return hash((record["imagePath"], tuple(record["loc"]), record.get("frame"), record.get("time")))  # type: ignore[index, union-attr]
    except Exception:  # not a dict, unhashable parts ...: _check_record says what is wrong
        return None


def _checked(records: list) -> Iterator[tuple[int, FaceRecord]]:
    """``(index, checked record)`` for each record that is not a repeat of an earlier one.

    A face is its photo, box and moment; a record that repeats one (a crafted
    file can name one record two million times in a few MB, and each repeat
    would then cost as much as a real face) is dropped, with one warning for all.
    Each unchecked record is released as it goes.
    """
    seen: set[int] = set()
    repeats, previous = 0, None
    for index, record in enumerate(records):
        records[index] = None
        if record is previous:  # the same object again: the cheap case of a repeat
            repeats += 1
            continue
        previous = record
        key = _face_key(record)
        if key in seen:  # looked up before the (costlier) check: a repeat costs a hash
            repeats += 1
            continue
        checked = _check_record(index, record)
        seen.add(key if key is not None else _face_key(checked))
        yield index, checked
    if repeats:
        log.warning("%s records repeat an earlier one (the same photo, box and moment): left out", f"{repeats:,}")


def load_encodings(path: str | os.PathLike) -> list[FaceRecord]:
    """Read and check an encodings file (repeated records dropped, see :func:`_checked`).  Raises :class:`EncodingsError`."""
    records = _load_list(path)
    kept = 0
    for _, checked in _checked(records):  # in place: kept records move to the front
        records[kept] = checked
        kept += 1
    del records[kept:]
    return records


def take_encodings(records: list[FaceRecord], dtype: type = np.float32) -> np.ndarray:
    """Move the records' encodings into one ``(n, 128)`` array of ``dtype``.

    Each record's own array is dropped as it is copied, so the encodings are
    held once, not twice (at a million faces the tutorial's
    ``np.array([d["encoding"] for d in data])`` keeps 1 GB of float64 beside
    the records' 1.1 GB of arrays; this keeps 0.5 GB).  The records keep their
    path, box and any video keys, which is all the presentation needs.
    float32 changes distances by under 1e-6.
    """
    encodings = np.empty((len(records), ENCODING_SIZE), dtype=dtype)
    for index, record in enumerate(records):
        encodings[index] = record.pop("encoding")
    return encodings


@dataclass(frozen=True)
class FaceColumns:
    """An encodings file as columns: ``paths[i]`` (str), ``boxes[i]`` (top,
    right, bottom, left; int32) and ``encodings[i]`` (128 floats) of face ``i``."""

    paths: list[str]
    boxes: np.ndarray
    encodings: np.ndarray


def load_encoding_columns(path: str | os.PathLike, dtype: type = np.float32) -> FaceColumns:
    """Read and check an encodings file into one ``(n, 128)`` array of
    ``dtype`` (float32 halves the memory; distances change by < 1e-6).

    Each record is checked, copied into the array and released in turn: the
    peak is the unpickled list plus the array, and what stays is the array
    alone, not the records *and* a stacked copy of their encodings (at a
    million faces ~0.7 GB kept instead of ~2.6 GB).  Raises
    :class:`EncodingsError` as :func:`load_encodings` does.
    """
    records = _load_list(path)
    n = len(records)
    encodings = np.empty((n, ENCODING_SIZE), dtype=dtype)
    boxes = np.empty((n, 4), dtype=np.int32)
    paths: list[str] = []
    for _, record in _checked(records):
        encodings[len(paths)] = record["encoding"]
        boxes[len(paths)] = record["loc"]
        paths.append(record["imagePath"])
    return FaceColumns(paths, boxes[:len(paths)], encodings[:len(paths)])


def _load_list(path: str | os.PathLike) -> list:
    """The file's list of (unchecked) records, unpickled straight from the
    file: its bytes are never held in memory as well."""
    try:
        handle = open_regular(path)
    except FileNotFoundError:
        raise EncodingsError("no such file (run encode_faces.py first)") from None
    except (IsADirectoryError, NotRegularFile):
        if os.path.isdir(path):
            raise EncodingsError("is a folder, not an encodings file") from None
        raise EncodingsError("not a regular file (a FIFO or a device is never read)") from None
    except OSError as error:
        raise EncodingsError(f"cannot read it ({error.strerror})") from None
    with handle:
        if os.fstat(handle.fileno()).st_size == 0:
            raise EncodingsError("the file is empty")
        try:
            records = RestrictedUnpickler(handle).load()
        except EncodingsError:
            raise
        except (pickle.UnpicklingError, EOFError) as error:
            raise EncodingsError(f"not a valid pickle or truncated ({error or 'ran out of data'})") from None
        except Exception as error:  # anything else a crafted or damaged stream provokes
            raise EncodingsError(f"not a readable encodings file ({type(error).__name__}: {error})") from None
    if not isinstance(records, list):
        raise EncodingsError(f"holds a {type(records).__name__}, expected a list of face records")
    return records


class _TutorialCompatiblePickler(pickle._Pickler):  # type: ignore[name-defined]
    """Names numpy's array rebuilder as ``numpy.core.multiarray``.

    numpy 2 calls it ``numpy._core.multiarray``, which numpy 1.x cannot import;
    the old name still resolves in numpy 2, so both read our files.
    """

    def save_global(self, obj, name=None):
        if getattr(obj, "__name__", None) == "_reconstruct" and "multiarray" in getattr(obj, "__module__", ""):
            self.save("numpy.core.multiarray")
            self.save("_reconstruct")
            self.write(pickle.STACK_GLOBAL)
            self.memoize(obj)
            return
        super().save_global(obj, name)


def dumps_encodings(records: list[FaceRecord]) -> bytes:
    buffer = io.BytesIO()
    _TutorialCompatiblePickler(buffer, protocol=PICKLE_PROTOCOL).dump(list(records))
    return buffer.getvalue()


def save_encodings(path: str | os.PathLike, records: list[FaceRecord]) -> None:
    """Write records in the tutorial's format, atomically."""
    write_atomically(path, dumps_encodings(records))
