"""Compare two encodings pickles of the same photos: python .gpu/compare.py REFERENCE OTHER [LABEL].

Faces are matched per photo (path from its 'photos/' part on) by box overlap; prints the face
counts, the photos whose counts differ, the matched boxes' IoU and the encodings' distances.
Exit 0 always (a report, not a test); the last line starts with 'COMPARE <label>:'.
"""
from __future__ import annotations

import sys
from collections import defaultdict

import numpy as np

sys.path[:0] = [".", "tests"]
from conftest import inclusive_iou as iou  # noqa: E402  (boxes' overlap, right/bottom inclusive as dlib's)
from facecluster.store import load_encodings  # noqa: E402  (the project's own safe reader)


def by_photo(records: list) -> dict:
    """imagePath (from 'photos/' on) -> [(box, encoding)]."""
    out = defaultdict(list)
    for r in records:
        path = str(r["imagePath"])
        key = path[path.find("photos/"):] if "photos/" in path else path
        out[key].append((tuple(int(v) for v in r["loc"]), np.asarray(r["encoding"], float)))
    return out


def main() -> None:
    ref, other = by_photo(load_encodings(sys.argv[1])), by_photo(load_encodings(sys.argv[2]))
    label = sys.argv[3] if len(sys.argv) > 3 else sys.argv[2]
    photos = sorted(set(ref) | set(other))
    ious, dists, differ, unmatched = [], [], [], 0
    for p in photos:
        a, b = ref.get(p, []), other.get(p, [])
        if len(a) != len(b):
            differ.append(f"{p}: {len(a)} vs {len(b)}")
        free = list(b)
        for box, enc in a:
            if not free:
                unmatched += 1
                continue
            best = max(range(len(free)), key=lambda i: iou(box, free[i][0]))
            if iou(box, free[best][0]) < 0.5:
                unmatched += 1
                continue
            ious.append(iou(box, free[best][0]))
            dists.append(float(np.linalg.norm(enc - free[best][1])))
            free.pop(best)
    n_ref, n_other = sum(map(len, ref.values())), sum(map(len, other.values()))
    print(f"[{label}] photos {len(ref)} vs {len(other)}, faces {n_ref} vs {n_other}, matched {len(dists)}, "
          f"unmatched reference faces {unmatched}")
    for line in differ:
        print(f"[{label}]   face count differs: {line}")
    if dists:
        d, o = np.array(dists), np.array(ious)
        print(f"[{label}] box IoU min {o.min():.3f} median {np.median(o):.3f}; encoding distance "
              f"max {d.max():.2e} median {np.median(d):.2e} (same person < 0.6; same face, same boxes ~1e-5)")
        same = not differ and unmatched == 0 and o.min() > 0.9 and d.max() < 0.05
        print(f"COMPARE {label}: {'SAME' if same else 'DIFFERENT'} faces "
              f"(counts equal: {not differ}, min IoU {o.min():.3f}, max distance {d.max():.2e})")
    else:
        print(f"COMPARE {label}: NO matched faces")


if __name__ == "__main__":
    main()
