"""Shared fixtures.

Real-face tests read ../shared/datasets through ``FACES_DATA`` (``.ci/run`` and
``make test`` set it).  When the variable is set and the data is missing the
tests *fail*; only when it is unset do they skip, with the reason.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


# The test files that take longest (seconds of a worker, 2 cores, measured 2026-12-04), slowest
# first.  `make test` gives each xdist worker whole files in collection order
# (--no-loadscope-reorder): started first, they leave the quick files to even out the end, where
# xdist's own order (most tests first) left one worker finishing a slow file while the other idled.
SLOWEST_FIRST = ("test_hostile.py", "test_video.py", "test_dask.py", "test_scripts.py", "test_people.py",
                 "test_mmod.py", "test_clustering.py", "test_encoding.py", "test_constraints.py", "test_resnet.py",
                 "test_faces.py", "test_recall.py", "test_gallery.py", "test_tutorial_defaults.py",
                 "test_model_cache.py", "test_gui.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slowest files' tests first (:data:`SLOWEST_FIRST`); each file's own order is kept."""
    rank = {name: place for place, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def _faces_data() -> Path:
    value = os.environ.get("FACES_DATA")
    if not value:
        pytest.skip("FACES_DATA is not set: real-face tests need ../shared/datasets")
    path = Path(value).resolve()  # make test passes ../shared/datasets: tests link to it from elsewhere
    if not (path / "lfw-deepfunneled").is_dir():
        pytest.fail(f"FACES_DATA={value} is set but holds no lfw-deepfunneled/ folder")
    return path


@pytest.fixture(scope="session")
def faces_data() -> Path:
    """The real labelled photos (``lfw-deepfunneled/``, ``face_recognition_examples/`` ...)."""
    return _faces_data()


@pytest.fixture(scope="session")
def lfw(faces_data: Path) -> Path:
    return faces_data / "lfw-deepfunneled"


@pytest.fixture(scope="session")
def fr_examples(faces_data: Path) -> Path:
    path = faces_data / "face_recognition_examples"
    if not path.is_dir():
        pytest.fail(f"{path} is missing")
    return path


def require(module: str):
    """Import ``module`` for a test; skip without it, but fail under CI (``CI`` set),
    where a missing dependency is an install defect, not a reason to skip."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


def inclusive_iou(a: tuple, b: tuple) -> float:
    """Intersection over union of two ``(top, right, bottom, left)`` boxes whose
    right and bottom pixels are inside (dlib's rectangles), as detector tests compare them."""
    ih = min(a[2], b[2]) - max(a[0], b[0]) + 1
    iw = min(a[1], b[1]) - max(a[3], b[3]) + 1
    if ih <= 0 or iw <= 0:
        return 0.0
    area = lambda r: (r[2] - r[0] + 1) * (r[1] - r[3] + 1)  # noqa: E731
    return ih * iw / (area(a) + area(b) - ih * iw)


def run_script(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run one of the project's scripts the way a user would, capturing output."""
    full_env = dict(os.environ)
    full_env.pop("DISPLAY", None)
    full_env.pop("WAYLAND_DISPLAY", None)
    if env:
        full_env.update(env)
    return subprocess.run(
        [PYTHON, *args], cwd=cwd or ROOT, env=full_env, capture_output=True, text=True, timeout=timeout
    )
