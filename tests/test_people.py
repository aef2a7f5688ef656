"""People, not clusters: naming from known people, the people store (stable IDs, renames), search.

Unit tests use synthetic encodings; the script tests run the real models on LFW faces.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_script
from facecluster.people.naming import NAME_MARGIN, NAME_THRESHOLD, KnownPeople, name_clusters, pull_in_unknown
from facecluster.people.store import PeopleStore, match_centroids, person_id
from facecluster.present.clusters import group_clusters, person_dirname, safe_name
from facecluster.present.export import CLUSTERS_CSV_HEADER, write_clusters_csv
from facecluster.present.montage import montage_filename

PEOPLE = ("Ariel_Sharon", "Colin_Powell", "Hugo_Chavez", "Jean_Chretien")


# --------------------------------------------------------------------------
# Synthetic encodings: people as directions, faces scattered around them


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _people(count: int, seed: int = 0) -> np.ndarray:
    """``count`` person centres ~0.85 apart (different people, as on LFW)."""
    rng = np.random.default_rng(seed)
    return _unit(rng.standard_normal((count, 128))) * 0.6


def _faces(centre: np.ndarray, n: int, spread: float, seed: int) -> np.ndarray:
    """``n`` faces ~``spread`` from ``centre`` (same person: ~0.3)."""
    rng = np.random.default_rng(seed)
    return (centre + _unit(rng.standard_normal((n, 128))) * spread).astype(np.float32)


def test_naming_names_the_right_person_and_not_a_stranger():
    centres = _people(3)
    X = np.concatenate([_faces(centres[0], 6, 0.3, 1), _faces(centres[1], 6, 0.3, 2), _faces(centres[2], 6, 0.3, 3)])
    labels = np.repeat([0, 1, 2], 6)
    known = KnownPeople(["Ada", "Ada", "Bob"], np.concatenate([_faces(centres[0], 2, 0.3, 9), _faces(centres[1], 1, 0.3, 8)]))
    names = name_clusters(X, labels, known)
    assert names == {0: "Ada", 1: "Bob"}  # cluster 2 is a stranger: no name


def test_a_tie_stays_unnamed():
    centres = _people(2)
    X = _faces(centres[0], 6, 0.3, 1)
    # "Twin" is as near to the cluster as "Ada": a known photo of each a hair apart.
    twin = _faces(centres[0], 1, 0.3, 7)
    known = KnownPeople(["Ada", "Twin"], np.concatenate([twin, twin + 1e-4]))
    assert name_clusters(X, np.zeros(6, int), known) == {}
    # Moved clearly away, the twin no longer ties: Ada is named.
    known = KnownPeople(["Ada", "Twin"], np.concatenate([twin, _faces(centres[1], 1, 0.3, 5)]))
    assert name_clusters(X, np.zeros(6, int), known) == {0: "Ada"}
    assert 0 < NAME_MARGIN < NAME_THRESHOLD


def test_a_known_person_pulls_in_an_unknown_face_that_matches_clearly():
    centres = _people(3)
    ada, stranger = _faces(centres[0], 5, 0.25, 1), _faces(centres[2], 1, 0.3, 4)
    X = np.concatenate([ada[:4], ada[4:], stranger])
    labels = np.array([0, 0, 0, 0, -1, -1])
    known = KnownPeople(["Ada"], _faces(centres[0], 1, 0.25, 9))
    new_labels, names = pull_in_unknown(X, labels, known, {0: "Ada"})
    assert new_labels.tolist() == [0, 0, 0, 0, 0, -1] and names == {0: "Ada"}
    # With no named cluster, the pulled face starts the person's own.
    new_labels, names = pull_in_unknown(X, np.array([-1] * 6), known, {})
    assert new_labels[4] == 0 and names == {0: "Ada"} and new_labels[5] == -1


def _store_run(store: PeopleStore, groups: list[np.ndarray], known_names=None) -> tuple[np.ndarray, dict]:
    X = np.concatenate(groups)
    labels = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    assigned = store.assign(X, labels, known_names)
    return assigned.labels, assigned.names


def test_ids_stay_when_photos_are_added_and_clusters_renumber(tmp_path):
    centres = _people(4)
    store = PeopleStore(str(tmp_path / "people.sqlite"))
    first = [_faces(centres[i], 5, 0.3, i) for i in range(3)]
    before, _ = _store_run(store, first)
    assert sorted(set(before.tolist())) == [0, 1, 2]  # the first run numbers as the clustering does
    # More photos, a new person, and the clustering numbers everyone differently.
    second = [np.concatenate([first[2], _faces(centres[2], 3, 0.3, 12)]), _faces(centres[3], 4, 0.3, 13),
              np.concatenate([first[0], _faces(centres[0], 2, 0.3, 10)]), np.concatenate([first[1], _faces(centres[1], 1, 0.3, 11)])]
    after, _ = _store_run(store, second)
    assert after[:5].tolist() == [2] * 5  # the old faces of person 2 ...
    assert after[8:12].tolist() == [3] * 4  # a new person gets a new ID
    assert after[12:17].tolist() == [0] * 5 and after[19:24].tolist() == [1] * 5
    # A person whose faces are gone is hidden, kept, and comes back.
    _store_run(store, [first[0], first[1]])
    assert store.people()[2].hidden
    again, _ = _store_run(store, [first[2]])
    assert again.tolist() == [2] * 5 and not store.people()[2].hidden
    store.close()


def test_no_faces_or_no_people_leave_the_store_as_it_was(tmp_path):
    store = PeopleStore(str(tmp_path / "people.sqlite"))
    _store_run(store, [_faces(_people(1)[0], 3, 0.3, 0)])
    assert store.assign(np.empty((0, 128), np.float32), np.empty(0, np.int64)).labels.tolist() == []
    assert store.assign(_faces(_people(1)[0], 2, 0.3, 1), np.array([-1, -1])).labels.tolist() == [-1, -1]
    assert store.people()[0].hidden and store.people()[0].faces == 3
    store.close()


def test_a_rename_survives_later_runs_and_beats_known_names(tmp_path):
    centres = _people(2)
    path = str(tmp_path / "people.sqlite")
    store = PeopleStore(path)
    groups = [_faces(centres[0], 5, 0.3, 0), _faces(centres[1], 5, 0.3, 1)]
    _store_run(store, groups, {1: "Bob"})
    store.rename(0, "Ada Lovelace")
    store.close()
    store = PeopleStore(path)  # a later run: the clusters come in the other order, --known says otherwise
    labels, names = _store_run(store, [np.concatenate([groups[1], _faces(centres[1], 2, 0.3, 5)]), groups[0]],
                               {1: "Someone Else"})
    assert labels[-5:].tolist() == [0] * 5 and names == {0: "Ada Lovelace", 1: "Bob"}
    with pytest.raises(KeyError):
        store.rename(7, "Nobody")
    store.close()


def test_a_merged_person_is_shown_as_the_other_in_every_later_run(tmp_path):
    centres = _people(3)
    store = PeopleStore(str(tmp_path / "people.sqlite"))
    # The clustering split one person in two (0 and 1, far apart looks); 2 is someone else.
    split = [_faces(centres[0], 4, 0.3, 0), _faces(centres[1], 4, 0.3, 1), _faces(centres[2], 4, 0.3, 2)]
    _store_run(store, split)
    store.rename(0, "Ada")
    store.merge(1, 0)
    labels, names = _store_run(store, [split[1], split[0], split[2]])
    assert labels.tolist() == [0] * 8 + [2] * 4 and names == {0: "Ada"}
    assert store.people()[1].hidden and store.people()[1].merged_into == 0
    with pytest.raises(ValueError):
        store.merge(0, 1)  # a loop
    with pytest.raises(KeyError):
        store.merge(1, 9)
    store.merge(1, None)  # undone: the two are shown apart again
    labels, _ = _store_run(store, split)
    assert labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    store.close()


def test_matching_is_one_to_one_with_the_least_total_distance():
    stored = np.array([[0.0, 0.0], [1.0, 0.0]], np.float32)
    # Row 0 is nearest to stored 1 but row 1 needs it more: greedy would give 0->1 and leave row 1 out.
    new = np.array([[0.6, 0.0], [1.05, 0.0]], np.float32)
    assert match_centroids(new, stored, threshold=0.65) == {0: 0, 1: 1}
    assert match_centroids(np.array([[5.0, 5.0]], np.float32), stored, threshold=0.5) == {}


def test_a_large_index_is_kept_beside_the_encodings_and_read_back(tmp_path, monkeypatch):
    from facecluster.people import search as search_module
    from facecluster.records import make_record, make_video_record
    from facecluster.store import save_encodings

    monkeypatch.setattr(search_module, "EXACT_MAX_FACES", 100)  # 600 faces count as large
    centres = _people(30)
    X = np.concatenate([_faces(centre, 20, 0.3, i) for i, centre in enumerate(centres)])
    records = [make_record(f"p/{i}.jpg", (1, 2, 3, 4), x) for i, x in enumerate(X[:-1])]
    records.append(make_video_record("clip.mp4", (5, 6, 7, 8), X[-1], 30, 1.5))
    path = str(tmp_path / "enc.pickle")
    save_encodings(path, records)
    first = search_module.open_index(path)
    assert not first.exact and first.saved == "written"
    again = search_module.open_index(path)
    assert again.saved == "read" and again.encodings is None and again.records[-1]["time"] == 1.5
    query = X[-1] + 0.01
    expected = [(m.face, round(m.distance, 4)) for m in search_module.search(first, query, top=25)]
    assert [(m.face, round(m.distance, 4)) for m in search_module.search(again, query, top=25)] == expected
    assert {face for face, _ in expected[:20]} == set(range(580, 600))  # the query's person, nearest first
    save_encodings(path, records[:-1])  # the file changed: the kept index is not used
    assert search_module.open_index(path).saved == "written"


def test_person_ids_read_from_the_command_line():
    assert person_id("person_03") == 3 and person_id("12") == 12
    with pytest.raises(ValueError):
        person_id("Ada")


def test_names_are_safe_file_names_on_every_file_system():
    for name in ("Ada Lovelace", 'a/b\\c:d*e?f"g<h>i|j', "..", "CON", "José  Ortega", "x" * 300, "\x00\x1f tab\t"):
        safe = safe_name(name)
        assert not set(safe) & set('/\\:*?"<>| .\t\x00') and len(safe) <= 60
    assert safe_name("Ada Lovelace") == "Ada_Lovelace" and safe_name("José  Ortega") == "José_Ortega"
    assert person_dirname(3, "Ada Lovelace") == "person_03_Ada_Lovelace" and person_dirname(3) == "person_03"
    assert montage_filename(3, "..") == "face_id_03.jpg" and montage_filename(-1, "x") == "unknown_faces.jpg"


def test_the_name_column_comes_last_and_is_empty_when_unnamed(tmp_path):
    records = [{"imagePath": f"p{i}.jpg", "loc": (1, 2, 3, 4)} for i in range(3)]
    clusters = group_clusters(records, [0, 1, -1], {0: "Ada Lovelace"})
    write_clusters_csv(tmp_path / "clusters.csv", records, clusters)
    rows = list(csv.reader(open(tmp_path / "clusters.csv", encoding="utf-8")))
    assert rows[0] == list(CLUSTERS_CSV_HEADER) and rows[0][:8] == ["image", "top", "right", "bottom", "left", "label", "frame", "time"]
    assert rows[0][-1] == "name" and [row[-1] for row in rows[1:]] == ["Ada Lovelace", "", ""]


# --------------------------------------------------------------------------
# The scripts, on real faces


@pytest.fixture(scope="module")
def people_set(tmp_path_factory, lfw):
    """A folder of 8 photos of each of 4 LFW people, encoded; a known folder of 3 *other* photos of
    the first 3 (the 4th is a stranger), with a broken file, a photo with no face and one of 3 people."""
    root = tmp_path_factory.mktemp("people")
    dataset, known = root / "dataset", root / "known"
    dataset.mkdir()
    for person in PEOPLE:
        photos = sorted((lfw / person).iterdir())
        for photo in photos[:8]:
            shutil.copy(photo, dataset / photo.name)
        if person != PEOPLE[-1]:
            (known / person).mkdir(parents=True)
            for photo in photos[-3:]:
                shutil.copy(photo, known / person / photo.name)
    (known / "Colin_Powell" / "broken.jpg").write_bytes(b"not a photo at all")
    Image.new("RGB", (200, 200), (120, 140, 160)).save(known / "Hugo_Chavez" / "wall.jpg")
    group = lfw.parent / "face_recognition_examples" / "_multi_face" / "examples__knn_examples__test__obama_and_biden.jpg"
    shutil.copy(group, known / "Ariel_Sharon" / "group.jpg")
    result = run_script("encode_faces.py", "-i", str(dataset), "-e", str(root / "enc.pickle"), "-w", "2")
    assert result.returncode == 0, result.stderr
    return root


def _csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_known_people_name_the_clusters_everywhere(people_set, tmp_path):
    out = tmp_path / "out"
    result = run_script("cluster_faces.py", "-e", str(people_set / "enc.pickle"), "-m", "adaptive", "--known",
                        str(people_set / "known"), "-o", str(out), "--organize", "link",
                        "--people-store", str(tmp_path / "people.sqlite"))
    assert result.returncode == 0, result.stderr
    # Bad known photos: one line each, and the run went on.
    problems = [line for line in result.stderr.splitlines() if "known photo" in line]
    assert len(problems) == 3, result.stderr
    assert any("broken.jpg" in line for line in problems) and any("wall.jpg: no face" in line for line in problems)
    assert any("group.jpg: 3 faces of similar size, not used" in line for line in problems)
    rows = _csv(out / "clusters.csv")
    for row in rows:
        person = Path(row["image"]).stem.rsplit("_", 1)[0]
        if person == PEOPLE[-1] or row["label"] == "-1":
            assert row["name"] == ""  # a stranger gets no name
        else:
            assert row["name"] == person.replace("_", " ")
    named = {row["name"] for row in rows if row["name"]}
    assert named == {"Ariel Sharon", "Colin Powell", "Hugo Chavez"}
    clusters = json.loads((out / "clusters.json").read_text(encoding="utf-8"))["clusters"]
    by_person = {c["person"]: c for c in clusters if c["person"]}
    assert set(by_person) == named and by_person["Colin Powell"]["title"].startswith("Colin Powell (Face ID #")
    label = by_person["Colin Powell"]["label"]
    assert (out / f"person_{label:02d}_Colin_Powell").is_dir() and (out / f"face_id_{label:02d}_Colin_Powell.jpg").is_file()
    assert "Colin Powell (Face ID #" in (out / "index.html").read_text(encoding="utf-8")
    assert f"[INFO] faces for face ID: {label} (Colin Powell)" in result.stdout


def test_a_rename_survives_a_rerun_with_more_photos_and_ids_hold(people_set, lfw, tmp_path):
    dataset, encodings, out = tmp_path / "dataset", tmp_path / "enc.pickle", tmp_path / "out"
    shutil.copytree(people_set / "dataset", dataset)
    # The module's cache: its 32 photos are found by their content, not encoded again (the new ones below are)
    shutil.copy(people_set / "enc.pickle.cache.sqlite", tmp_path / "enc.pickle.cache.sqlite")
    run = lambda *more: run_script("cluster_faces.py", "-e", str(encodings), "-m", "adaptive", "-o", str(out), *more)  # noqa: E731
    assert run_script("encode_faces.py", "-i", str(dataset), "-e", str(encodings), "-w", "2").returncode == 0
    assert run().returncode == 0
    before = {row["image"]: row["label"] for row in _csv(out / "clusters.csv")}
    chretien = {label for image, label in before.items() if "Jean_Chretien" in image and label != "-1"}
    assert len(chretien) == 1
    pid = int(chretien.pop())
    result = run("--name", f'person_{pid:02d}="Jean Chrétien"')
    assert result.returncode == 0, result.stderr
    # 20%+ more photos: 2 more of each person; the clustering may number them differently, the IDs hold.
    for person in PEOPLE:
        for photo in sorted((lfw / person).iterdir())[8:10]:
            shutil.copy(photo, dataset / photo.name)
    assert run_script("encode_faces.py", "-i", str(dataset), "-e", str(encodings), "-w", "2").returncode == 0
    result = run()
    assert result.returncode == 0, result.stderr
    after = {row["image"]: row for row in _csv(out / "clusters.csv")}
    kept = [image for image, label in before.items() if label != "-1"]
    assert sum(after[image]["label"] == before[image] for image in kept) >= 0.95 * len(kept)
    renamed = [row for row in after.values() if "Jean_Chretien" in row["image"] and row["label"] == str(pid)]
    assert len(renamed) >= 9 and all(row["name"] == "Jean Chrétien" for row in renamed)
    assert (out / f"person_{pid:02d}_Jean_Chrétien").exists() is False  # no --organize: no folders
    assert (out / f"face_id_{pid:02d}_Jean_Chrétien.jpg").is_file()
    listed = run_script("cluster_faces.py", "-e", str(encodings), "--list-people")
    assert f"person_{pid:02d}\tJean Chrétien (from user)" in listed.stdout


def test_bad_people_options_are_one_line(people_set, tmp_path):
    encodings = str(people_set / "enc.pickle")
    for args, words in ((["--known", str(tmp_path / "nobody")], "no such folder"),
                        (["--name", "Ada=Ada"], "not a person ID"),
                        (["--name", "person_99=Ada", "--people-store", str(tmp_path / "none.sqlite")], "no people stored"),
                        (["--name", "person_00=Ada", "--people-store", "none"], "need the people store")):
        result = run_script("cluster_faces.py", "-e", encodings, "-o", str(tmp_path / "out"), *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("[ERROR]")]
        assert len(errors) == 1 and words in errors[0], result.stderr


def test_search_finds_the_person_ranked(people_set, lfw, tmp_path):
    out = tmp_path / "found"
    query = sorted((lfw / "Hugo_Chavez").iterdir())[20]  # not in the encoded folder
    result = run_script("search_faces.py", "-e", str(people_set / "enc.pickle"), "--query", str(query),
                        "--query", str(people_set / "known" / "Colin_Powell"), "-o", str(out), "--top", "12")
    assert result.returncode == 0, result.stderr
    rows = _csv(out / "matches.csv")
    assert list(rows[0]) == ["image", "top", "right", "bottom", "left", "frame", "time", "distance", "query", "match"]
    for name, person in ((str(query), "Hugo_Chavez"), ("Colin_Powell", "Colin_Powell")):
        mine = [row for row in rows if row["query"].rstrip("/").endswith(name)]
        distances = [float(row["distance"]) for row in mine]
        assert distances == sorted(distances) and len(mine) >= 12
        same = [row for row in mine if row["match"] == "same"]
        assert len(same) >= 7 and all(person in row["image"] for row in same)  # recall and precision
        assert all(row["match"] == "nearest" for row in mine[len(same):])  # same-person faces come first
    total = sum(row["match"] == "same" for row in rows)
    assert f"[INFO] # matches: {total}" in result.stdout
    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.count("<section>") == 2 and os.path.isfile(out / "thumbs" / "query_1_1.jpg")
    # A query with no face is one line; with no face at all, the run stops with one line.
    Image.new("RGB", (200, 200), (90, 90, 90)).save(tmp_path / "wall.jpg")
    result = run_script("search_faces.py", "-e", str(people_set / "enc.pickle"), "-q", str(tmp_path / "wall.jpg"),
                        "-o", str(out))
    assert result.returncode == 2 and "wall.jpg: no face found" in result.stderr and "Traceback" not in result.stderr
