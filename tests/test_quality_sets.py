"""benchmarks/quality_sets.py: the labels it scores against, corrections included."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import quality_sets as qs  # noqa: E402


def _corrections() -> dict[str, list[dict[str, str]]]:
    return {path.stem: list(csv.DictReader(path.open(encoding="utf-8")))
            for path in sorted(qs.CORRECTIONS.glob("*.csv"))}


def test_a_correction_file_relabels_only_the_photos_it_names(tmp_path: Path, monkeypatch) -> None:
    import quality

    for name in ("Ann/1.png", "Ann/2.png", "Bob/3.png"):
        (tmp_path / "set" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "set" / name).write_bytes(b"")
    photos = sorted(str(p) for p in (tmp_path / "set").rglob("*.png"))
    records = [{"imagePath": p, "loc": (0, 10, 10, 0), "encoding": np.zeros(128)} for p in photos]
    monkeypatch.setattr(quality, "load_or_encode", lambda cache, paths, mirror=True: (records, 0.0))
    corrections = tmp_path / "corrections"
    corrections.mkdir()
    (corrections / "set.csv").write_text("path,identity\nAnn/2.png,Cy\n")
    monkeypatch.setattr(qs, "CORRECTIONS", corrections)

    _, largest, single, _ = qs.encoded(tmp_path / "set", "set", photos)
    assert largest == single == ["Ann", "Cy", "Bob"]
    _, largest, _, _ = qs.encoded(tmp_path / "set", "set", photos, corrected=False)
    assert largest == ["Ann", "Ann", "Bob"]


def test_every_correction_names_a_photo_of_the_set_and_a_new_identity(faces_data: Path) -> None:
    corrections = _corrections()
    assert "glint_aligned_crops" in corrections
    for set_name, rows in corrections.items():
        assert set_name in qs.FOLDER_SETS
        for row in rows:
            photo = faces_data / set_name / row["path"]
            assert photo.is_file(), photo
            assert row["identity"] and row["identity"] != Path(row["path"]).parent.name


def test_the_photos_relabelled_in_glint_are_another_person_to_the_encoder(faces_data: Path, tmp_path: Path) -> None:
    """The 26 crops filed as Gwyneth Paltrow but showing Blythe Danner: their
    encodings sit as far from the folder's other crops as two people's do,
    and each group is as tight as one person's."""
    from quality import load_or_encode

    folder = faces_data / "glint_aligned_crops" / "Gwyneth Paltrow"
    moved = {row["path"] for row in _corrections()["glint_aligned_crops"] if row["path"].startswith(folder.name + "/")}
    photos = sorted(str(p) for p in folder.iterdir())
    records, _ = load_or_encode(str(tmp_path / "gwyneth.pickle"), photos)
    largest: dict[str, np.ndarray] = {}
    for record in records:  # one face a photo: the largest
        top, right, bottom, left = record["loc"]
        area = (bottom - top) * (right - left)
        if record["imagePath"] not in largest or area > largest[record["imagePath"]][0]:
            largest[record["imagePath"]] = (area, np.asarray(record["encoding"]))
    in_group = {path: f"{folder.name}/{Path(path).name}" in moved for path in largest}
    danner = np.array([enc for path, (_, enc) in largest.items() if in_group[path]])
    paltrow = np.array([enc for path, (_, enc) in largest.items() if not in_group[path]])
    assert len(danner) == len(moved) == 26 and len(paltrow) >= 13

    def mean_distance(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.linalg.norm(a[:, None] - b[None], axis=2).mean())

    between = mean_distance(danner, paltrow)
    assert between > 0.6  # dlib's encoder: different people ~0.8, the same person ~0.45 on LFW
    assert mean_distance(danner, danner) < 0.5 and mean_distance(paltrow, paltrow) < 0.5


def test_small_collections_hold_3_to_8_people_of_10_to_40_faces() -> None:
    labels = [f"p{i % 12}" for i in range(12 * 45)] + [None] * 5 + ["few"] * 9
    X = np.arange(len(labels), dtype=float)[:, None]
    drawn = qs.small_collections({"big": (X, labels, labels)}, ("big",), draws=30)
    assert len(drawn) == 30
    for source, encodings, truth in drawn:
        people = {label: truth.count(label) for label in truth}
        assert source == "big" and 3 <= len(people) <= 8 and None not in people and "few" not in people
        assert all(10 <= count <= 40 for count in people.values())
        assert [labels[int(row)] for row in encodings[:, 0]] == truth  # each face keeps its own label
    assert len({len(truth) for _, _, truth in drawn}) > 5  # sizes vary from draw to draw


def test_strangers_are_other_peoples_faces_added_unlabelled() -> None:
    labels = [f"p{i % 40}" for i in range(40 * 45)]
    X = np.arange(len(labels), dtype=float)[:, None]
    for _, encodings, truth in qs.small_collections({"big": (X, labels, labels)}, ("big",), draws=10, strangers=2):
        people = {label for label in truth if label is not None}
        labelled = sum(label is not None for label in truth)
        assert truth.count(None) == 2 * labelled and truth[:labelled].count(None) == 0
        assert not people & {labels[int(row)] for row in encodings[labelled:, 0]}  # none of them is in the collection


def test_sparse_collections_are_thousands_of_people_most_seen_once_or_twice() -> None:
    """Like LFW: most people have one photo, some a few, a few hundreds; a draw
    keeps singletons single, everyone else twice or more, and a few many times."""
    rng = np.random.default_rng(1)
    sizes = [1] * 4000 + [int(n) for n in rng.integers(2, 6, 1200)] + [int(n) for n in rng.integers(10, 200, 150)]
    labels = [f"p{i}" for i, size in enumerate(sizes) for _ in range(size)] + [None] * 50
    X = np.arange(len(labels), dtype=float)[:, None]
    drawn = qs.sparse_collections(X, labels, draws=3, people=(2000, 3000))
    assert len(drawn) == 3 and len({len(truth) for _, _, truth in drawn}) == 3  # seeded, different draws
    for name, encodings, truth in drawn:
        people = {label: truth.count(label) for label in truth}
        assert None not in people and 2000 <= len(people) <= 3000
        counts = np.array(list(people.values()))
        assert (counts <= 2).mean() > 0.8 and (counts >= 10).sum() >= 3  # mostly once or twice, some many
        assert counts.max() <= qs.SPARSE_MOST
        assert all(people[label] >= 2 for label in people if sizes[int(label[1:])] >= 2)  # no one with more left single
        assert [labels[int(row)] for row in encodings[:, 0]] == truth and len(set(encodings[:, 0])) == len(truth)
    assert qs.sparse_collections(X, labels, draws=1)[0][2] == qs.sparse_collections(X, labels, draws=1)[0][2]


def test_web_collections_hold_5_to_20_people_one_identity_per_name_across_sets() -> None:
    def named(names: list[str], per: int) -> tuple[np.ndarray, list, list]:
        labels = [name for name in names for _ in range(per)]
        return np.arange(len(labels), dtype=float)[:, None], labels, labels

    sets = {"five_celebs": named(["ben_afflek", "madonna"], 12),
            "glint_aligned_crops": named([f"Star {i}" for i in range(20)] + ["Tom Hanks"], 40),
            "LFW, all": named(["Tom_Hanks", "Madonna", "Few_Photos"] + [f"Pol_{i}" for i in range(5)], 30)}
    pool = qs.web_pool(sets, lfw_min=30)
    assert len(pool["tom hanks"]) == 70 and len(pool["madonna"]) == 42 and "ben affleck" in pool
    assert len(pool) == 2 + 20 + 1 + 1 + 5
    assert len(qs.web_pool(sets, lfw_min=None)) == 2 + 20 + 1
    sets["LFW, all"] = named(["Few_Photos"], 29)
    assert "few photos" not in qs.web_pool(sets, lfw_min=30)
    drawn = qs.web_collections(pool, "web", draws=20)
    assert len({len(truth) for _, _, truth in drawn}) > 5
    for source, encodings, truth in drawn:
        people = {label: truth.count(label) for label in truth}
        assert source == "web" and 5 <= len(people) <= 20 and all(10 <= n <= 40 for n in people.values())
        assert len(encodings) == len(truth)


def test_a_composite_face_takes_its_tiles_person_and_bystanders_none() -> None:
    import group_photos

    made = [group_photos.Composite("/x/group_0000.jpg", ("Ann", "Bob", "Cy"), ("a", "b", "c"), 250)]
    records = [{"imagePath": "/x/group_0000.jpg", "loc": loc} for loc in
               [(80, 170, 170, 80), (80, 420, 170, 330), (80, 670, 170, 580), (0, 260, 40, 220)]]
    records.append({"imagePath": "/x/other.jpg", "loc": (80, 170, 170, 80)})
    assert group_photos.composite_labels(records, made) == ["Ann", "Bob", "Cy", None, None]


def test_hand_labels_find_faces_by_place_and_moment(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "set.csv").write_text("image,time,x,y,identity\nclip.mp4,1.500,100,100,Ann\n"
                                      "clip.mp4,1.500,300,100,Bob\nphoto.jpg,,50,50,Cy\n")
    monkeypatch.setattr(qs, "LABELS", tmp_path)
    root = tmp_path / "data"
    records = [{"imagePath": str(root / "clip.mp4"), "time": 1.5, "loc": (80, 120, 120, 80)},
               {"imagePath": str(root / "clip.mp4"), "time": 1.5, "loc": (80, 320, 120, 280)},
               {"imagePath": str(root / "clip.mp4"), "time": 2.0, "loc": (80, 120, 120, 80)},
               {"imagePath": str(root / "photo.jpg"), "loc": (30, 70, 70, 30)},
               {"imagePath": str(root / "photo.jpg"), "loc": (130, 170, 170, 130)}]
    assert qs.hand_labels(records, root, "set") == ["Ann", "Bob", None, "Cy", None]
