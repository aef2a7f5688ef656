"""The encodings file: tutorial-compatible, refused when hostile or damaged, written atomically."""

from __future__ import annotations

import os
import pickle
import pickletools
import sys
from pathlib import Path

import numpy as np
import pytest

from facecluster import store
from facecluster.store import EncodingsError, dumps_encodings, load_encoding_columns, load_encodings, save_encodings

LOADERS = [load_encodings, load_encoding_columns]


def records(count: int = 3) -> list[dict]:
    rng = np.random.default_rng(0)
    return [
        {"imagePath": f"dataset/{i:08d}.jpg", "loc": (10 + i, 90, 95, 5), "encoding": rng.normal(size=128)}
        for i in range(count)
    ]


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "encodings.pickle"
    written = records()
    save_encodings(path, written)
    read = load_encodings(path)
    assert [r["imagePath"] for r in read] == [r["imagePath"] for r in written]
    assert [r["loc"] for r in read] == [r["loc"] for r in written]
    for a, b in zip(read, written):
        assert a["encoding"].dtype == np.float64 and np.array_equal(a["encoding"], b["encoding"])


def test_reads_a_file_the_tutorial_wrote(tmp_path: Path) -> None:
    """The tutorial did ``f.write(pickle.dumps(data))``: default protocol, plain lists and tuples."""
    path = tmp_path / "tutorial.pickle"
    for protocol in (2, 4, 5):
        path.write_bytes(pickle.dumps(records(), protocol=protocol))
        assert len(load_encodings(path)) == 3


def test_our_file_loads_with_plain_pickle_and_names_numpy_portably() -> None:
    data = dumps_encodings(records())
    loaded = pickle.loads(data)
    assert isinstance(loaded, list) and loaded[0]["encoding"].shape == (128,)
    globals_named = [arg for op, arg, _ in pickletools.genops(data) if op.name in ("SHORT_BINUNICODE", "BINUNICODE")]
    assert "numpy.core.multiarray" in globals_named  # numpy 1.x can import this; numpy._core it can't
    assert "numpy._core.multiarray" not in globals_named
    assert pickletools.genops(data).__next__()[1] == 4  # protocol 4: every Python 3 the tutorial ran on


class Exploit:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps([{"imagePath": "a.jpg", "loc": (0, 1, 1, 0), "encoding": Exploit(str(marker))}]))
    with pytest.raises(EncodingsError, match="refused.*system"):
        load_encodings(path)
    assert not marker.exists()


def test_refuses_builtins_eval(tmp_path: Path) -> None:
    path = tmp_path / "evil.pickle"
    path.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(EncodingsError, match="builtins.eval"):
        load_encodings(path)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"hello, I am text", "not a valid pickle|not a readable"),
        (pickle.dumps({"not": "a list"}), "expected a list"),
        (pickle.dumps(["a string"]), "record 0 is a str"),
        (pickle.dumps([{"imagePath": "a", "loc": (0, 1, 1, 0)}]), "lacks encoding"),
        (pickle.dumps([{"imagePath": "a", "loc": (0, 1, 1, 0), "encoding": np.zeros(64)}]), "64 values, expected 128"),
        (pickle.dumps([{"imagePath": "a", "loc": (0, 1, 1, 0), "encoding": np.full(128, np.nan)}]), "NaN"),
        (pickle.dumps([{"imagePath": "a", "loc": (0, 1, 1, 0), "encoding": np.full(128, np.inf)}]), "infinite"),
        (pickle.dumps([{"imagePath": "a", "loc": (0, 1), "encoding": np.zeros(128)}]), "loc must be 4"),
        (pickle.dumps([{"imagePath": 3, "loc": (0, 1, 1, 0), "encoding": np.zeros(128)}]), "imagePath"),
    ],
)
@pytest.mark.parametrize("load", LOADERS)
def test_damaged_files_give_one_clear_reason(tmp_path: Path, content: bytes, message: str, load) -> None:
    path = tmp_path / "bad.pickle"
    path.write_bytes(content)
    with pytest.raises(EncodingsError, match=message):
        load(path)


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.pickle"
    path.write_bytes(dumps_encodings(records(20))[:-300])
    with pytest.raises(EncodingsError, match="truncated|not a valid pickle|not a readable"):
        load_encodings(path)


@pytest.mark.parametrize("load", LOADERS)
def test_missing_file_and_folder(tmp_path: Path, load) -> None:
    with pytest.raises(EncodingsError, match="no such file"):
        load(tmp_path / "nope.pickle")
    with pytest.raises(EncodingsError, match="folder"):
        load(tmp_path)


def test_columns_hold_the_same_faces(tmp_path: Path) -> None:
    path = tmp_path / "encodings.pickle"
    written = records(5)
    save_encodings(path, written)
    for dtype in (np.float32, np.float64):
        columns = load_encoding_columns(path, dtype=dtype)
        assert columns.paths == [r["imagePath"] for r in written]
        assert columns.boxes.tolist() == [list(r["loc"]) for r in written]
        assert columns.encodings.dtype == dtype and columns.encodings.shape == (5, 128)
        assert np.allclose(columns.encodings, [r["encoding"] for r in written], atol=1e-6)


def test_columns_never_hold_a_second_copy(tmp_path: Path) -> None:
    """Loading records and stacking their encodings, the way a caller would,
    keeps two copies; the column loader peaks no higher and keeps only what it
    returns (its array, boxes and paths), so float32 keeps half as much again.

    Judged against the result's own bytes, not as a ratio of two runs: a few
    hundred KB the interpreter keeps (caches, garbage not yet collected) moved
    a ratio across its bound on CI."""
    import tracemalloc

    def own_bytes(columns) -> int:
        return (columns.encodings.nbytes + columns.boxes.nbytes
                + sys.getsizeof(columns.paths) + sum(map(sys.getsizeof, columns.paths)))

    path = tmp_path / "encodings.pickle"
    path.write_bytes(pickle.dumps(records(3000), protocol=4))
    one_copy = 3000 * 128 * 8
    peak, kept, own = [], [], []
    for load in (lambda: (load_encodings(path), np.asarray([r["encoding"] for r in load_encodings(path)])),
                 lambda: load_encoding_columns(path, dtype=np.float64),
                 lambda: load_encoding_columns(path)):
        tracemalloc.start()
        try:
            result = load()
            kept.append(tracemalloc.get_traced_memory()[0])
            peak.append(tracemalloc.get_traced_memory()[1])
            own.append(own_bytes(result) if hasattr(result, "encodings") else 0)
            del result
        finally:
            tracemalloc.stop()
    assert kept[0] > 2 * one_copy, kept  # the records' arrays and the stacked copy
    assert peak[1] <= 1.05 * peak[0], peak
    assert own[1] <= kept[1] < own[1] + one_copy / 4, (kept, own)
    assert own[2] <= kept[2] < own[2] + one_copy / 4, (kept, own)
    assert kept[2] < kept[1] - one_copy / 4, kept


def test_take_encodings_moves_them_into_one_float32_array() -> None:
    data = records(4)
    data[2] = {**data[2], "frame": 7, "time": 0.25}
    expected = np.array([r["encoding"] for r in data])
    taken = store.take_encodings(data)
    assert taken.dtype == np.float32 and taken.shape == (4, 128)
    assert np.allclose(taken, expected, atol=1e-6) and not np.array_equal(taken, np.zeros_like(taken))
    assert all("encoding" not in r for r in data)
    assert data[2]["frame"] == 7 and data[0]["loc"] == (10, 90, 95, 5)
