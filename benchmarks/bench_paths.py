"""Where the benchmarks find the project and the labelled photos.

Every benchmark imports this first (``python benchmarks/x.py`` puts
``benchmarks/`` on ``sys.path``): it puts the repository root and
``benchmarks/`` there too, so a benchmark runs from any folder, with any Python
that has the requirements, and imports the project and its sibling benchmarks.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "benchmarks"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


def faces_data() -> Path:
    """The labelled photo sets: ``$FACES_DATA``, else ``../shared/datasets`` beside
    the checkout (where CI and the dev machine keep them)."""
    return Path(os.environ.get("FACES_DATA") or ROOT.parent / "shared" / "datasets")
