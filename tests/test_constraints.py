"""Who appears together (facecluster.cluster.constraints) on synthetic 128-d encodings.

Scale as in test_clustering: one person's faces ~0.3-0.45 apart, different
people ~1.0+; look-alikes here are people whose centres are only 0.2 apart,
so every method links them into one cluster unless told who appears together.
"""

from __future__ import annotations

import numpy as np
import pytest

from facecluster.cluster import METHODS, cluster_encodings
from facecluster.cluster.constraints import Constraints, count_repeated, repeated_pictures, respect

DIM = 128


def person(rng, centre, n, spread=0.025):
    return centre + rng.normal(0, spread, (n, DIM))


def look_alikes(seed=0, together=12, alone=10, apart=0.2):
    """Records of two look-alike people A and B (centres ``apart`` apart) seen
    together in ``together`` photos and alone in ``alone`` each, plus a third,
    unrelated person C alone in 15.  Returns (records, true identities)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 0.09, DIM)
    direction = rng.normal(0, 1, DIM)
    b = a + apart * direction / np.linalg.norm(direction)
    c = rng.normal(0, 0.09, DIM)
    records, truth = [], []
    for k in range(together):
        for name, centre in (("A", a), ("B", b)):
            records.append({"imagePath": f"together_{k}.jpg", "encoding": person(rng, centre, 1)[0]})
            truth.append(name)
    for name, centre, count in (("A", a, alone), ("B", b, alone), ("C", c, 15)):
        for k, encoding in enumerate(person(rng, centre, count)):
            records.append({"imagePath": f"{name}_alone_{k}.jpg", "encoding": encoding})
            truth.append(name)
    return records, np.array(truth)


def encodings(records):
    return np.array([r["encoding"] for r in records])


def purity(labels, truth):
    """Whether every cluster holds one identity and each identity is one cluster."""
    pairs = {(int(l), t) for l, t in zip(labels, truth) if l >= 0}
    return len(pairs) == len({p[0] for p in pairs}) == len({p[1] for p in pairs}) == len(set(truth))


def test_constraints_read_pictures_frames_and_tracks():
    records = [{"imagePath": "a.jpg"}, {"imagePath": "a.jpg"}, {"imagePath": "b.jpg"},
               {"imagePath": "v.mp4", "frame": 10, "track": 0}, {"imagePath": "v.mp4", "frame": 10, "track": 1},
               {"imagePath": "v.mp4", "frame": 20, "track": 0}, {"imagePath": "w.mp4", "frame": 10, "track": 0},
               {"imagePath": "v.mp4", "frame": 30}]  # an older record: no track
    c = Constraints.from_records(records)
    assert c.pictures[0] == c.pictures[1] != c.pictures[2]
    assert c.pictures[3] == c.pictures[4] != c.pictures[5]
    assert c.pictures[6] != c.pictures[3]  # same frame number, another video
    assert c.tracks[3] == c.tracks[5] != c.tracks[4]
    assert c.tracks[6] not in (c.tracks[3], c.tracks[4])  # track 0 of another video
    assert c.tracks[0] == c.tracks[7] == -1
    assert c.multi_face_pictures() == 2


def test_repeated_pictures_counts_pictures_that_hold_one_cluster_twice():
    c = Constraints.from_records([{"imagePath": p} for p in ("x", "x", "x", "y", "y", "z")])
    labels = np.array([0, 0, 0, 1, -1, 1])
    assert [r.faces for r in repeated_pictures(labels, c)] == [(0, 1, 2)]
    assert count_repeated(labels, c) == 1
    assert count_repeated(np.array([0, 1, 2, 1, 1, 1]), c) == 1  # y holds cluster 1 twice
    assert count_repeated(np.array([-1, -1, 0, 1, -1, 1]), c) == 0  # outliers never count


@pytest.mark.parametrize("method", [m for m in METHODS if m != "dbscan"])
def test_co_occurring_look_alikes_are_split(method):
    records, truth = look_alikes()
    X, c = encodings(records), Constraints.from_records(records)
    merged = cluster_encodings(X, method)
    assert count_repeated(merged, c) > 0  # without the constraints, A and B are one cluster
    labels = cluster_encodings(X, method, constraints=c)
    assert count_repeated(labels, c) == 0
    assert purity(labels, truth), labels


def test_split_reassigns_faces_by_closeness_not_only_the_co_occurring_ones():
    """A and B seen together only twice: the split still sends every photo of
    each alone to its own side."""
    records, truth = look_alikes(together=2, alone=20, seed=3)
    X, c = encodings(records), Constraints.from_records(records)
    labels = cluster_encodings(X, "adaptive", constraints=c)
    assert count_repeated(labels, c) == 0
    assert purity(labels, truth), labels


def test_dbscan_keeps_the_tutorials_labels():
    records, _ = look_alikes()
    X = encodings(records)
    assert np.array_equal(cluster_encodings(X, "dbscan"),
                          cluster_encodings(X, "dbscan", constraints=Constraints.from_records(records)))


def test_a_bystander_pulled_into_a_cluster_leaves_it_alone():
    rng = np.random.default_rng(5)
    star, stranger = rng.normal(0, 0.09, DIM), rng.normal(0, 0.09, DIM)
    X = np.vstack([person(rng, star, 30), stranger])
    raw = np.zeros(31, dtype=np.int64)  # one cluster holding the star and the stranger
    records = [{"imagePath": f"{k}.jpg"} for k in range(30)] + [{"imagePath": "0.jpg"}]  # together in 0.jpg
    labels = respect(X, raw, Constraints.from_records(records), 0.3)
    assert (labels[:30] == labels[0]).all() and labels[30] != labels[0]


def test_near_identical_faces_of_one_picture_may_stay_together():
    """A face and its reflection encode alike: closer than ``same_below``, the cannot-link is waived."""
    rng = np.random.default_rng(2)
    X = person(rng, rng.normal(0, 0.09, DIM), 10)
    X[1] = X[0] + 0.001
    records = [{"imagePath": "mirror.jpg"}, {"imagePath": "mirror.jpg"}] + [{"imagePath": f"{k}.jpg"} for k in range(8)]
    raw = np.zeros(10, dtype=np.int64)
    assert (respect(X, raw, Constraints.from_records(records), 0.3) == 0).all()
    # ...but two ordinary photos of one person in one picture are split.
    assert len(set(respect(X[2:], raw[2:], Constraints.from_records(records[:2] + records[4:]), 0.3).tolist())) == 2


def test_a_track_stays_one_cluster():
    """Faces of one track far apart (a turned head, dim light) stay with the
    rest of the track, whatever the method split off."""
    rng = np.random.default_rng(4)
    centre = rng.normal(0, 0.09, DIM)
    X = person(rng, centre, 24)
    X[20:] = centre + rng.normal(0, 0.065, (4, DIM))  # four poor faces, ~0.75 from the centre, ~1 from each other
    records = [{"imagePath": "clip.mp4", "frame": 10 * k, "time": float(k), "track": 0 if k >= 12 else 1}
               for k in range(24)]
    X = np.vstack([X, person(rng, rng.normal(0, 0.09, DIM), 20)])  # and someone else, in photos
    records += [{"imagePath": f"{k}.jpg"} for k in range(20)]
    c = Constraints.from_records(records)
    for method in ("adaptive", "chinese-whispers", "hdbscan", "agglomerative"):
        if method != "hdbscan":  # its density levels keep them anyway
            assert (cluster_encodings(X, method)[20:24] == -1).all()  # alone, the poor faces match nobody
        labels = cluster_encodings(X, method, constraints=c)
        assert (labels[12:24] == labels[12]).all() and labels[12] >= 0, (method, labels)


def test_a_track_is_split_off_as_a_whole():
    """Two look-alikes each followed on one track, seen together in a few
    frames: each side of the split holds whole tracks."""
    rng = np.random.default_rng(7)
    a = rng.normal(0, 0.09, DIM)
    b = a + 0.2 * rng.normal(0, 1, DIM) / np.sqrt(DIM)
    records = []
    for k in range(10):
        records.append({"imagePath": "dinner.mp4", "frame": k, "track": 0, "encoding": person(rng, a, 1)[0]})
        records.append({"imagePath": "dinner.mp4", "frame": k, "track": 1, "encoding": person(rng, b, 1)[0]})
    X, c = encodings(records), Constraints.from_records(records)
    labels = cluster_encodings(X, "adaptive", constraints=c)
    assert len(set(labels[0::2].tolist())) == len(set(labels[1::2].tolist())) == 1
    assert labels[0] != labels[1] and min(labels) >= 0


def test_constraints_must_match_the_encodings():
    records, _ = look_alikes()
    with pytest.raises(ValueError, match="constraints"):
        cluster_encodings(encodings(records)[:-1], "adaptive", constraints=Constraints.from_records(records))


def test_group_photos_of_look_alike_relatives_never_show_one_cluster_twice(lfw, tmp_path):
    """Real faces: side-by-side composites of 2-4 of the Williams sisters and
    the Bush family, encoded by the real pipeline.  Without the constraints the
    recommended method puts sisters or father and son into one cluster; with
    them no composite shows one cluster twice, and the people are still found."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import group_photos
    from quality import load_or_encode

    from facecluster.cluster import RECOMMENDED_METHOD
    from facecluster.cluster.evaluation import evaluate

    made = group_photos.make_composites(lfw, tmp_path / "groups", 30, names=group_photos.RELATIVES, seed=1)
    records, _ = load_or_encode(str(tmp_path / "groups.pickle"), [c.path for c in made])
    truth = group_photos.composite_labels(records, made)
    assert sum(t is not None for t in truth) >= 0.95 * sum(len(c.people) for c in made)
    X, c = encodings(records), Constraints.from_records(records)
    assert c.multi_face_pictures() == len(made)
    plain = cluster_encodings(X, RECOMMENDED_METHOD)
    labels = cluster_encodings(X, RECOMMENDED_METHOD, constraints=c)
    assert count_repeated(plain, c) > 0
    assert count_repeated(labels, c) == 0
    assert evaluate(labels, truth)["pairwise_f1"] >= evaluate(plain, truth)["pairwise_f1"] - 0.01 > 0.85


def test_the_script_counts_pictures_showing_one_cluster_twice_and_names_what_helps(lfw, tmp_path):
    """Both scripts on group photos of relatives: the recommended method shows
    no cluster twice in a picture; the tutorial's DBSCAN keeps its labels, and
    when its largest cluster is seen twice in many pictures the warning says
    so and names the method that does better, never DBSCAN itself."""
    import json
    import re
    import sys

    from conftest import ROOT, run_script

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import group_photos

    made = group_photos.make_composites(lfw, tmp_path / "groups", 30, names=group_photos.RELATIVES, seed=1)
    encodings_file = tmp_path / "enc.pickle"
    assert run_script("encode_faces.py", "-i", str(tmp_path / "groups"), "-e", str(encodings_file)).returncode == 0
    out = run_script(str(ROOT / "cluster_faces.py"), "-e", str(encodings_file), "-m", "adaptive", "-o", "adaptive",
                     cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"[INFO] pictures holding one cluster twice: 0 (of {len(made)} with two or more faces)" in out.stdout
    assert "merged" not in out.stderr
    document = json.loads((tmp_path / "adaptive" / "clusters.json").read_text(encoding="utf-8"))
    assert document["counts"]["pictures_with_a_cluster_twice"] == 0 and document["repeated"] == []

    out = run_script(str(ROOT / "cluster_faces.py"), "-e", str(encodings_file), "-o", "dbscan", "--min-samples", "3",
                     cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    twice = int(re.search(r"pictures holding one cluster twice: (\d+) ", out.stdout).group(1))
    assert twice >= 3
    warning = [line for line in out.stderr.splitlines() if "merged into one" in line]
    assert len(warning) == 1 and "show two of its faces together" in warning[0], out.stderr
    assert "--method adaptive finds" in warning[0] and "none of them twice in one picture" in warning[0]
    assert "--method dbscan" not in warning[0]
    document = json.loads((tmp_path / "dbscan" / "clusters.json").read_text(encoding="utf-8"))
    assert document["counts"]["pictures_with_a_cluster_twice"] == twice
    assert 'class="twice"' in (tmp_path / "dbscan" / "index.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("method", METHODS)
def test_the_collapse_warning_never_suggests_the_method_running(method):
    from facecluster.cluster.collapse import collapse_warning

    records, _ = look_alikes(together=20)
    X, c = encodings(records), Constraints.from_records(records)
    one = np.zeros(len(X), dtype=np.int64)  # everyone in one cluster
    message = collapse_warning(one, X, method, c, threshold=0.5)
    assert message is not None and "holds at least 2 people" in message
    assert f"--method {method} " not in message + " "
    assert collapse_warning(one, X, method, c, better=("adaptive", 3, 0)) is not None
    if method != "adaptive":
        assert "--method adaptive finds 3 people here, none of them twice" in collapse_warning(
            one, X, method, c, better=("adaptive", 3, 0))
    assert collapse_warning(cluster_encodings(X, "adaptive", constraints=c), X, method, c) is None
