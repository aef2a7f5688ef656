"""Following a face across a video's looks, and choosing the few faces each track keeps.

A *look* is one sampled frame (every ``--video-step`` seconds).  A face seen at
one look joins the track of a face seen at the look before when they are the
same person by encoding and plausibly the same place on screen (box overlap);
a face with no such partner starts a track.  A track survives a look or two
with no detection (a head turned away), and every track ends at a shot change.

Each track keeps a handful of faces for the records (``--faces-per-track``):
its looks are split into that many runs in time and the best face of each run
is kept, so the faces are good (large, sharp, frontal) *and* spread over the
track (poses, expressions), which is what clustering needs.

Segments of a long video are tracked in separate workers; :func:`stitch` joins
the tracks that run across a segment boundary, so a person who stays on
screen for a minute still gives a handful of records.
"""

from __future__ import annotations

import numpy as np

from ..records import Box, Sighting, Track

# Same person, whatever the place on screen: well inside the clustering's 0.5.
SURE_DISTANCE = 0.4
# Same person when the boxes also overlap (the face moved little between looks).
LINK_DISTANCE = 0.55
MIN_OVERLAP = 0.1
# Looks without a detection a track survives (a blink of the detector).
MAX_MISSED_LOOKS = 2


def overlap(a: Box, b: Box) -> float:
    """Intersection over union of two ``(top, right, bottom, left)`` boxes (0..1)."""
    top, bottom = max(a[0], b[0]), min(a[2], b[2])
    left, right = max(a[3], b[3]), min(a[1], b[1])
    inter = max(0, bottom - top) * max(0, right - left)
    area = (a[2] - a[0]) * (a[1] - a[3]) + (b[2] - b[0]) * (b[1] - b[3]) - inter
    return inter / area if area > 0 else 0.0


def same_face(earlier: Sighting, later: Sighting) -> float | None:
    """The encoding distance when ``later`` continues ``earlier``'s track, else ``None``."""
    distance = float(np.linalg.norm(earlier.encoding - later.encoding))
    if distance < SURE_DISTANCE or (distance < LINK_DISTANCE and overlap(earlier.box, later.box) >= MIN_OVERLAP):
        return distance
    return None


def _pairs(ends: list[Sighting], starts: list[Sighting]) -> list[tuple[int, int]]:
    """Greedy one-to-one matching of ``ends`` to ``starts``, closest encodings first."""
    candidates = []
    for i, end in enumerate(ends):
        for j, start in enumerate(starts):
            distance = same_face(end, start)
            if distance is not None:
                candidates.append((distance, i, j))
    used_i: set[int] = set()
    used_j: set[int] = set()
    pairs = []
    for _, i, j in sorted(candidates):
        if i not in used_i and j not in used_j:
            used_i.add(i)
            used_j.add(j)
            pairs.append((i, j))
    return pairs


class Tracker:
    """Builds the tracks of one run of looks; see the module docstring.

    Call :meth:`add` once per look, in time order, and :meth:`cut` at a shot
    change; :meth:`finish` returns every track, in order of their start.
    """

    def __init__(self, step: float):
        self.step = step
        self.open: list[Track] = []
        self.done: list[Track] = []

    def cut(self) -> None:
        """A shot change: no face after it continues a track from before it."""
        self.done.extend(self.open)
        self.open = []

    def add(self, time: float, faces: list[Sighting]) -> None:
        """The faces of the look at ``time``: each continues a track or starts one."""
        horizon = time - (MAX_MISSED_LOOKS + 1.5) * self.step
        self.done.extend(track for track in self.open if track.last.time < horizon)
        self.open = [track for track in self.open if track.last.time >= horizon]
        pairs = _pairs([track.last for track in self.open], faces)
        for i, j in pairs:
            self.open[i].sightings.append(faces[j])
        linked = {j for _, j in pairs}
        self.open.extend(Track([face]) for j, face in enumerate(faces) if j not in linked)

    def finish(self) -> list[Track]:
        self.cut()
        return sorted(self.done, key=lambda track: (track.first.time, track.first.box))


def representatives(sightings: list[Sighting], count: int) -> list[Sighting]:
    """The ``count`` faces a track keeps: the best of each of ``count`` runs of looks, in time order."""
    ordered = sorted(sightings, key=lambda s: s.time)
    if len(ordered) <= count:
        return ordered
    runs = np.array_split(np.arange(len(ordered)), count)
    return [max((ordered[i] for i in run), key=lambda s: s.quality) for run in runs]


def stitch(segments: list[list[Track]], step: float) -> list[Track]:
    """Join the tracks of consecutive segments of one video where one runs on into the next.

    A track of one segment continues a track of the next when the gap
    between them is at most a few looks and the faces pass the same test as
    between two looks.  Returns all tracks, in order of their start.
    """
    reach = (MAX_MISSED_LOOKS + 1.5) * step
    tracks: list[Track] = []
    previous: list[Track] = []
    for segment in segments:
        starts = sorted(segment, key=lambda track: track.first.time)
        joined: dict[int, Track] = {}
        for i, j in _pairs([track.last for track in previous], [track.first for track in starts]):
            if 0 < starts[j].first.time - previous[i].last.time <= reach:
                previous[i].sightings.extend(starts[j].sightings)
                joined[j] = previous[i]
        tracks.extend(track for j, track in enumerate(starts) if j not in joined)
        previous = [joined.get(j, track) for j, track in enumerate(starts)]
    return sorted(tracks, key=lambda track: (track.first.time, track.first.box))


def face_quality(gray_face: np.ndarray, side: int) -> float:
    """How good a picture of a face is, higher is better: large, sharp and frontal.

    ``gray_face`` is the face's crop, grayscale, resized to a fixed square;
    ``side`` its size in the frame, in pixels.  Sharpness is the variance of
    the Laplacian; frontality the left-right symmetry of the crop (a face
    turned aside is lopsided).  Logs, so no one term swamps the others.
    """
    import cv2

    face = gray_face.astype(np.float32)
    sharpness = float(cv2.Laplacian(face, cv2.CV_32F).var())
    mirrored = face[:, ::-1]
    a, b = face - face.mean(), mirrored - mirrored.mean()
    symmetry = float((a * b).sum() / (np.sqrt((a * a).sum() * (b * b).sum()) + 1e-6))
    return float(np.log(max(side, 1)) + 0.5 * np.log1p(sharpness) + 2.0 * symmetry)
