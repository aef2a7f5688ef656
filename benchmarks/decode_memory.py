"""Peak memory of decoding one large photo, as a worker does (``load_image``).

Each photo is decoded in a fresh process; the figure is the process's peak
resident memory (``ru_maxrss``) minus what it held after importing the
decoder, i.e. what decoding that photo adds to a worker.

    python benchmarks/decode_memory.py PHOTO [PHOTO ...] [--code DIR]

``--code DIR`` decodes with the ``facecluster`` package found in DIR (e.g. an
older checkout, for a before/after comparison).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

_CHILD = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
try:
    from facecluster.sources.images import ImageSkipped, load_image
except ImportError:  # a checkout from before the sources/ wing
    from facecluster.images import ImageSkipped, load_image
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    image = load_image(sys.argv[2])
    outcome = f"decoded {image.rgb.shape[1]}x{image.rgb.shape[0]} (scale {image.scale:.3f})"
except ImageSkipped as skipped:
    outcome = f"refused: {skipped}"
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"imported_mb": before / 1024, "peak_mb": after / 1024, "added_mb": (after - before) / 1024,
                  "outcome": outcome}))
"""


def measure(photo: str, code: str) -> dict:
    """Decode ``photo`` in a fresh process with the package in ``code``; its memory figures."""
    out = subprocess.run([sys.executable, "-c", _CHILD, code, photo], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", nargs="+")
    parser.add_argument("--code", default=str(Path(__file__).resolve().parent.parent))
    args = parser.parse_args()
    for photo in args.photos:
        figures = measure(photo, args.code)
        print(f"{photo}: peak {figures['peak_mb']:.0f} MB, decoding added {figures['added_mb']:.0f} MB "
              f"(after import {figures['imported_mb']:.0f} MB): {figures['outcome']}")


if __name__ == "__main__":
    main()
