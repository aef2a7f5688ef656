"""The browsable outputs: CSV, JSON, per-person folders and the gallery's files.

Synthetic photos in ``tmp_path``.  The gallery is made by ``present()``, the
call cluster_faces.py makes; the gallery in a real browser is in
``test_gallery.py``.
"""

from __future__ import annotations

import csv
import json
import os
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlsplit

import numpy as np
import pytest
from PIL import Image
from facecluster.present import PresentOptions, gallery, present
from facecluster.present.crops import PLACEHOLDER_GRAY
from facecluster.present.clusters import group_clusters, person_dirname
from facecluster.present.export import write_clusters_csv, write_clusters_json
from facecluster.present.gallery import GalleryOptions
from facecluster.present.organize import ORGANIZE_MANIFEST
from facecluster.present.organize import organize as organize_clusters
from facecluster.records import make_record

LATIN1_NAME = os.fsdecode(b"caf\xe9.jpg")  # a name that is not valid UTF-8


def photo(path: Path, color=(200, 150, 120), size=(200, 160)) -> str:
    """Write a small JPEG with a darker 'face' square at (40..120, 60..140)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, color)
    image.paste((60, 40, 30), (60, 40, 140, 120))
    with open(os.fsencode(path), "wb") as handle:  # works for undecodable names too
        image.save(handle, format="JPEG", quality=92)
    return os.fspath(path)


def rec(path: str, box=(40, 140, 120, 60)):
    return make_record(path, box, np.zeros(128))


@pytest.fixture()
def library(tmp_path):
    """Photos in two folders, two of them sharing a basename, one with two people.

    records / labels:
      0 a/img1.jpg   person 0        3 b/img1.jpg   person 1
      1 a/group.jpg  person 0        4 a/group.jpg  person 1 (same photo, 2nd face)
      2 a/IMG2.jpg   person 0        5 b/img2.jpg   person 0  (IMG2 vs img2: case clash)
      6 b/stray.png  unknown
    """
    src = tmp_path / "photos"
    paths = {
        "a1": photo(src / "a" / "img1.jpg", (250, 10, 10)),
        "group": photo(src / "a" / "group.jpg", (10, 250, 10), size=(320, 160)),
        "A2": photo(src / "a" / "IMG2.jpg", (10, 10, 250)),
        "b1": photo(src / "b" / "img1.jpg", (250, 250, 10)),
        "b2": photo(src / "b" / "img2.jpg", (10, 250, 250)),
        "stray": photo(src / "b" / "stray.png", (128, 128, 128)),
    }
    records = [
        rec(paths["a1"]),
        rec(paths["group"], (20, 120, 120, 20)),
        rec(paths["A2"]),
        rec(paths["b1"]),
        rec(paths["group"], (20, 300, 120, 200)),
        rec(paths["b2"]),
        rec(paths["stray"]),
    ]
    labels = np.array([0, 0, 0, 1, 1, 0, -1])
    return paths, records, labels


def organize(out_dir, records, labels, mode="copy"):
    """organize() on the clusters of ``labels``, as present() calls it."""
    return organize_clusters(out_dir, records, group_clusters(records, labels), mode)


def gallery_of(out_dir, records, labels, **options):
    """The gallery (and everything else) as cluster_faces.py writes it."""
    gallery_options = {k: options.pop(k) for k in ("title", "people_per_page", "thumbs_per_person") if k in options}
    return present(os.fspath(out_dir), records, labels, PresentOptions(gallery=GalleryOptions(**gallery_options), **options))


def tree(root: Path) -> dict[str, str]:
    """Everything under root: relative path -> 'link:<target>' / 'file:<size>' / 'dir'."""
    found = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[relative] = f"link:{os.readlink(path)}"
        elif path.is_dir():
            found[relative] = "dir"
        else:
            found[relative] = f"file:{path.stat().st_size}"
    return found


def snapshot(root: Path) -> dict[str, tuple]:
    """Identity of every entry (inode, mtime) to prove a re-run changed nothing."""
    return {p.relative_to(root).as_posix(): (p.lstat().st_ino, p.lstat().st_mtime_ns) for p in root.rglob("*")}


# --------------------------------------------------------------------------
# CSV


def test_csv_content_exactly(tmp_path):
    records = [
        make_record("photos/a.jpg", (1, 20, 30, 4), np.zeros(128)),
        make_record("photos/b, with comma.jpg", (np.int64(5), 60, 70, 8), np.zeros(128)),
        make_record('photos/quote"d.jpg', (-3, 100, 250, -2), np.zeros(128)),
    ]
    path = tmp_path / "clusters.csv"
    write_clusters_csv(path, records, group_clusters(records, np.array([0, -1, 12])))
    assert path.read_bytes() == (
        b"image,top,right,bottom,left,label,frame,time,name\n"
        b"photos/a.jpg,1,20,30,4,0,,,\n"
        b'"photos/b, with comma.jpg",5,60,70,8,-1,,,\n'
        b'"photos/quote""d.jpg",-3,100,250,-2,12,,,\n'
    )
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["image"] for row in rows] == [r["imagePath"] for r in records]
    assert [row["label"] for row in rows] == ["0", "-1", "12"]


def test_csv_keeps_undecodable_names_byte_exact(tmp_path):
    name = os.path.join(str(tmp_path), LATIN1_NAME)
    unicode_name = os.path.join(str(tmp_path), "Zoë 😀.jpg")
    path = tmp_path / "clusters.csv"
    write_clusters_csv(path, [rec(name), rec(unicode_name)], group_clusters([rec(name), rec(unicode_name)], [3, 4]))
    data = path.read_bytes()
    assert os.fsencode(name) in data  # the raw \xe9 byte, as on disk
    assert "Zoë 😀.jpg".encode() in data  # ordinary names are plain UTF-8
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["image"] for row in rows] == [name, unicode_name]


def test_csv_empty_and_misaligned(tmp_path):
    path = tmp_path / "clusters.csv"
    write_clusters_csv(path, [], group_clusters([], np.array([], dtype=int)))
    assert path.read_text() == "image,top,right,bottom,left,label,frame,time,name\n"
    with pytest.raises(ValueError):
        group_clusters([rec("x.jpg")], [0, 1])


# --------------------------------------------------------------------------
# JSON


def test_json_per_person_with_counts(tmp_path, library):
    paths, records, labels = library
    path = tmp_path / "clusters.json"
    extra = {"method": "dbscan", "eps": np.float64(0.5), "jobs": np.int64(2), "encodings": Path("enc.pickle")}
    write_clusters_json(path, records, group_clusters(records, labels), extra)
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["run"] == {"method": "dbscan", "eps": 0.5, "jobs": 2, "encodings": "enc.pickle"}
    assert document["counts"] == {"faces": 7, "images": 6, "people": 2, "unknown_faces": 1}
    clusters = document["clusters"]
    assert [c["label"] for c in clusters] == [-1, 0, 1]  # the windows' and the gallery's order
    assert [c["name"] for c in clusters] == ["unknown", "person_00", "person_01"]
    assert [c["title"] for c in clusters] == ["Unknown Faces", "Face ID #0", "Face ID #1"]
    assert [c["faces"] for c in clusters] == [1, 4, 2]
    assert [c["images"] for c in clusters] == [1, 4, 2]
    assert clusters[2]["members"] == [
        {"image": paths["b1"], "box": [40, 140, 120, 60]},
        {"image": paths["group"], "box": [20, 300, 120, 200]},
    ]
    assert all(set(member) == {"image", "box"} for c in clusters for member in c["members"])  # no encodings


def test_json_undecodable_name_round_trips(tmp_path):
    name = os.path.join(str(tmp_path), LATIN1_NAME)
    path = tmp_path / "clusters.json"
    write_clusters_json(path, [rec(name)], group_clusters([rec(name)], [0]), {})
    path.read_bytes().decode("utf-8")  # strict: the file itself is valid UTF-8
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["clusters"][0]["members"][0]["image"] == name
    assert os.fsencode(document["clusters"][0]["members"][0]["image"]).endswith(b"caf\xe9.jpg")


# --------------------------------------------------------------------------
# organize


def test_organize_copy(tmp_path, library):
    paths, records, labels = library
    out = tmp_path / "out"
    result = organize(out, records, labels, mode="copy")
    assert result.mode == "copy" and result.missing == []
    assert result.folders == {0: str(out / "person_00"), 1: str(out / "person_01"), -1: str(out / "unknown")}
    files = {k: v for k, v in tree(out).items() if v != "dir" and not k.startswith(".")}
    assert sorted(files) == [
        "person_00/IMG2 (a).jpg",  # IMG2.jpg and img2.jpg clash on a case-insensitive disk
        "person_00/group.jpg",
        "person_00/img1.jpg",
        "person_00/img2 (b).jpg",
        "person_01/group.jpg",  # the two-person photo is in both folders
        "person_01/img1.jpg",
        "unknown/stray.png",
    ]
    assert result.placed == 7
    assert (out / "person_00" / "img1.jpg").read_bytes() == Path(paths["a1"]).read_bytes()
    assert (out / "person_01" / "img1.jpg").read_bytes() == Path(paths["b1"]).read_bytes()
    assert (out / "person_00" / "IMG2 (a).jpg").read_bytes() == Path(paths["A2"]).read_bytes()
    assert not any(p.is_symlink() for p in out.rglob("*"))


def test_organize_same_basename_in_one_folder_is_not_overwritten(tmp_path):
    src = tmp_path / "photos"
    a = photo(src / "2019" / "holiday" / "IMG_0001.JPG", (255, 0, 0))
    b = photo(src / "2020" / "holiday" / "IMG_0001.JPG", (0, 0, 255))  # same parent name too
    c = photo(src / "IMG_0001 (holiday).JPG", (0, 255, 0))  # already looks like a suffixed name
    out = tmp_path / "out"
    organize(out, [rec(a), rec(b), rec(c)], [0, 0, 0])
    placed = sorted(p.name for p in (out / "person_00").iterdir())
    assert len(placed) == 3
    contents = sorted(p.read_bytes() for p in (out / "person_00").iterdir())
    assert contents == sorted(Path(x).read_bytes() for x in (a, b, c))


def test_organize_rerun_is_idempotent(tmp_path, library):
    _, records, labels = library
    out = tmp_path / "out"
    organize(out, records, labels, mode="copy")
    before = snapshot(out)
    organize(out, records, labels, mode="copy")
    after = snapshot(out)
    manifest = ORGANIZE_MANIFEST
    assert {k: v for k, v in after.items() if k != manifest} == {k: v for k, v in before.items() if k != manifest}
    assert not [k for k in after if k.endswith((".part", ".tmp"))]


def test_organize_rerun_with_new_clusters_tidies_only_its_own_files(tmp_path, library):
    _, records, labels = library
    out = tmp_path / "out"
    organize(out, records, labels)
    (out / "notes.txt").write_text("mine")
    (out / "person_01" / "my_edit.txt").write_text("mine too")
    # Second run: everyone is one person now.
    organize(out, records, np.zeros(len(records), dtype=int))
    found = tree(out)
    assert found["notes.txt"] == "file:4"
    assert found["person_01/my_edit.txt"] == "file:8"  # a file we did not place stays...
    assert "person_01/img1.jpg" not in found  # ...ours from last time go
    assert "unknown" not in found  # emptied folder removed
    assert "person_00/stray.png" in found and "person_00/img1 (b).jpg" in found


def test_organize_link(tmp_path, library):
    paths, records, labels = library
    out = tmp_path / "out"
    result = organize(out, records, labels, mode="link")
    assert result.mode == "link"
    link = out / "person_00" / "img1.jpg"
    assert link.is_symlink() and os.readlink(link) == os.path.abspath(paths["a1"])
    assert link.read_bytes() == Path(paths["a1"]).read_bytes()
    before = snapshot(out)
    organize(out, records, labels, mode="link")
    assert {k: v for k, v in snapshot(out).items() if k != ORGANIZE_MANIFEST} == {
        k: v for k, v in before.items() if k != ORGANIZE_MANIFEST
    }
    # Switching modes replaces the links with copies (and back).
    organize(out, records, labels, mode="copy")
    assert not link.is_symlink() and link.read_bytes() == Path(paths["a1"]).read_bytes()
    organize(out, records, labels, mode="link")
    assert link.is_symlink()


def test_organize_link_falls_back_to_copy(tmp_path, library, monkeypatch, caplog):
    paths, records, labels = library

    def no_symlinks(*args, **kwargs):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    out = tmp_path / "out"
    result = organize(out, records, labels, mode="link")
    assert result.mode == "copy"
    assert "copying instead" in caplog.text
    assert not any(p.is_symlink() for p in out.rglob("*"))
    assert (out / "unknown" / "stray.png").read_bytes() == Path(paths["stray"]).read_bytes()
    assert not [p for p in out.rglob("*.tmp")] and not [p for p in out.rglob("*.part")]


def test_organize_missing_photo(tmp_path, library, caplog):
    paths, records, labels = library
    out = tmp_path / "out"
    organize(out, records, labels)
    os.unlink(paths["stray"])
    os.unlink(paths["a1"])
    with caplog.at_level("WARNING"):
        result = organize(out, records, labels)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["photos not found, not organized (2 photos)"]
    assert result.missing == sorted([os.path.abspath(paths["stray"]), os.path.abspath(paths["a1"])])
    # The copies made earlier are all that is left of those photos: kept.
    assert (out / "unknown" / "stray.png").is_file()
    assert (out / "person_00" / "img1.jpg").is_file()
    fresh = organize(tmp_path / "fresh", records, labels)
    assert fresh.placed == 5 and not (tmp_path / "fresh" / "unknown" / "stray.png").exists()


def test_organize_undecodable_name(tmp_path):
    source = photo(tmp_path / "src" / LATIN1_NAME)
    out = tmp_path / "out"
    organize(out, [rec(source)], [0])
    assert (out / "person_00" / LATIN1_NAME).read_bytes() == Path(source).read_bytes()
    manifest = json.loads((out / ORGANIZE_MANIFEST).read_text(encoding="utf-8"))  # valid UTF-8
    assert manifest["files"] == [f"person_00/{LATIN1_NAME}"]  # the name round-trips
    before = snapshot(out)
    organize(out, [rec(source)], [0])  # the same name read back: the copy is up to date, left alone
    assert {k: v for k, v in snapshot(out).items() if k != ORGANIZE_MANIFEST} == {
        k: v for k, v in before.items() if k != ORGANIZE_MANIFEST
    }
    organize(out, [rec(source)], [-1])  # and recognised as ours when it must go
    assert sorted(tree(out)) == [ORGANIZE_MANIFEST, "unknown", f"unknown/{LATIN1_NAME}"]


def test_organize_ignores_a_tampered_manifest(tmp_path, library):
    _, records, labels = library
    out = tmp_path / "out"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    tampered = ["../victim.txt", "person_00/../../victim.txt", "notes.txt", "person_00/../notes.txt", "/etc/hosts"]
    (out / ORGANIZE_MANIFEST).write_text(json.dumps({"files": tampered}))
    organize(out, records, labels)
    assert victim.read_text() == "keep me"
    assert (out / "notes.txt").read_text() == "mine"
    placed = json.loads((out / ORGANIZE_MANIFEST).read_text())["files"]
    assert len(placed) == 7 and not set(placed) & set(tampered)  # the manifest now lists what is there
    assert all((out / name).is_file() for name in placed)
    (out / ORGANIZE_MANIFEST).write_text("not json")
    before = snapshot(out)
    organize(out, records, labels)  # an unreadable manifest: nothing removed, nothing re-made
    assert {k: v for k, v in snapshot(out).items() if k != ORGANIZE_MANIFEST} == {
        k: v for k, v in before.items() if k != ORGANIZE_MANIFEST
    }
    assert json.loads((out / ORGANIZE_MANIFEST).read_text())["files"] == placed


def test_organize_rejects_unknown_mode(tmp_path, library):
    _, records, labels = library
    with pytest.raises(ValueError):
        organize(tmp_path / "out", records, labels, mode="move")


def test_person_dirname():
    assert person_dirname(0) == "person_00"
    assert person_dirname(np.int64(42)) == "person_42"
    assert person_dirname(-1) == "unknown"


# --------------------------------------------------------------------------
# gallery files (the page in a browser: test_gallery.py)


class PageParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links, self.sections, self.scripts, self.texts = [], [], [], 0, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        elif tag == "a":
            self.links.append(attrs["href"])
        elif tag == "section":
            self.sections.append(attrs["id"])
        elif tag in ("script", "iframe", "object"):
            self.scripts += 1
        elif tag == "link":
            self.scripts += 1  # no stylesheets from elsewhere either

    def handle_data(self, data):
        self.texts.append(data)


def local_target(page_dir: Path, href: str) -> bytes:
    """The file a relative (or file://) href in the page points at, as bytes."""
    parts = urlsplit(href)
    raw = unquote_to_bytes(parts.path)
    if parts.scheme == "file":
        return raw
    assert not parts.scheme and not parts.netloc, href
    return os.path.normpath(os.fsencode(page_dir) + b"/" + raw)


def parse(page: Path) -> PageParser:
    parsed = PageParser()
    parsed.feed(page.read_text(encoding="utf-8"))  # valid UTF-8
    return parsed


def test_gallery_files(tmp_path, library):
    paths, records, labels = library
    out = tmp_path / "out"
    done = gallery_of(out, records, labels, title="Family <2024> & friends")
    assert done.pages == [str(out / "index.html")] and done.left_out == 0
    text = (out / "index.html").read_text(encoding="utf-8")
    page = parse(out / "index.html")
    assert page.sections == ["unknown", "person_00", "person_01"]  # the windows' order
    assert page.scripts == 0 and "http://" not in text and "https://" not in text
    assert "<title>Family &lt;2024&gt; &amp; friends</title>" in text
    thumbs = [img for img in page.images if img["src"].startswith("thumbs/")]
    assert len(thumbs) == len(records)
    montages = [img["src"] for img in page.images if "montage" in img.get("class", "")]
    assert montages == ["unknown_faces.jpg", "face_id_00.jpg", "face_id_01.jpg"]
    for img in page.images:  # every picture on the page exists on disk
        assert os.path.isfile(local_target(out, img["src"])), img["src"]
    photo_links = {local_target(out, href) for href in page.links if not href.startswith("#")}
    for path in paths.values():
        assert os.fsencode(os.path.abspath(path)) in photo_links
    body = " ".join(page.texts)
    assert "4 faces in 4 photos" in body and "2 faces in 2 photos" in body and "1 face in 1 photo" in body
    assert "Unknown Faces" in body and "Face ID #1" in body
    assert "Pages" not in text  # one page: no page links


def test_gallery_thumbnails_are_small_face_crops(tmp_path, library):
    _, records, labels = library
    out = tmp_path / "out"
    gallery_of(out, records, labels)
    thumb = Image.open(out / "thumbs" / "face_00000.jpg")
    assert max(thumb.size) == gallery.THUMB_SIZE
    # The dark 'face' square is in the middle of the crop.
    center = thumb.convert("RGB").getpixel((thumb.width // 2, thumb.height // 2))
    assert max(center) < 100


def test_gallery_escapes_names_and_handles_odd_paths(tmp_path):
    src = tmp_path / "we <b>ird & 'odd' \"names\" #1 %20"
    odd = photo(src / "a&b <c>.jpg")
    latin1 = photo(src / LATIN1_NAME)
    gone = photo(src / "gone.jpg")
    records = [rec(odd), rec(latin1), rec(gone)]
    os.unlink(gone)  # vanished after encoding: gray thumbnail, no crash
    out = tmp_path / "out"
    gallery_of(out, records, [0, 0, -1], title="x")
    text = (out / "index.html").read_text(encoding="utf-8")  # valid UTF-8
    assert "<b>" not in text and "a&b" not in text
    page = parse(out / "index.html")
    targets = {local_target(out, href) for href in page.links if not href.startswith("#")}
    assert os.fsencode(os.path.abspath(odd)) in targets
    assert os.fsencode(os.path.abspath(latin1)) in targets
    assert [img["src"] for img in page.images if "gone.jpg" in img["alt"]] == ["thumbs/unavailable.jpg"]
    gray = np.asarray(Image.open(out / "thumbs" / "unavailable.jpg").convert("RGB")).astype(int)
    assert np.abs(gray - PLACEHOLDER_GRAY).max() <= 3


def test_gallery_links_the_folders_organize_made_and_no_others(tmp_path, library):
    _, records, labels = library
    out = tmp_path / "out"
    gallery_of(out, records, labels, organize="copy")
    page = parse(out / "index.html")
    assert [href for href in page.links if href.endswith("/")] == ["unknown/", "person_00/", "person_01/"]
    # A folder that merely exists is not linked: the gallery gets organize()'s folders, it does not look.
    other = tmp_path / "other"
    (other / "person_00").mkdir(parents=True)
    gallery_of(other, records, labels)
    assert not [href for href in parse(other / "index.html").links if href.endswith("/")]


def test_gallery_rerun_removes_stale_thumbnails(tmp_path, library):
    _, records, labels = library
    out = tmp_path / "out"
    gallery_of(out, records, labels)
    assert len(list((out / "thumbs").iterdir())) == 7
    (out / "thumbs" / "keep.txt").write_text("not ours")
    gallery_of(out, records[:3], labels[:3])
    assert sorted(p.name for p in (out / "thumbs").iterdir()) == [
        "face_00000.jpg",
        "face_00001.jpg",
        "face_00002.jpg",
        "keep.txt",
    ]


def many_people(tmp_path, people: int, faces_each) -> tuple[list, np.ndarray]:
    """``people`` clusters on a few real photos; person k has ``faces_each(k)`` faces."""
    photos = [photo(tmp_path / "photos" / f"p{k}.jpg", (20 * k % 250, 90, 160)) for k in range(5)]
    labels = np.concatenate([np.full(faces_each(k), k) for k in range(people)])
    records = [rec(photos[i % len(photos)]) for i in range(len(labels))]
    return records, labels


def test_gallery_pages_with_links_between_them(tmp_path):
    records, labels = many_people(tmp_path, 10, lambda k: 12 - k)
    out = tmp_path / "out"
    done = gallery_of(out, records, labels, people_per_page=4)
    assert [os.path.basename(p) for p in done.pages] == ["index.html", "page-2.html", "page-3.html"]
    pages = [parse(Path(p)) for p in done.pages]
    assert [p.sections for p in pages] == [
        [person_dirname(k) for k in range(0, 4)], [person_dirname(k) for k in range(4, 8)], ["person_08", "person_09"]
    ]
    assert "page-2.html" in pages[0].links and "page-3.html" in pages[0].links and "index.html" not in pages[0].links
    assert "index.html" in pages[1].links and "page-3.html" in pages[1].links
    assert "index.html" in pages[2].links and "page-2.html" in pages[2].links
    for number, page in enumerate(pages):
        assert all(os.path.isfile(local_target(out, img["src"])) for img in page.images)
        assert [href for href in page.links if href.startswith("#")] == [f"#{name}" for name in page.sections]
    # Fewer people next time: the extra pages go.
    assert len(gallery_of(out, records, labels, people_per_page=8).pages) == 2
    assert sorted(p.name for p in out.glob("*.html")) == ["index.html", "page-2.html"]


def test_gallery_caps_thumbnails_per_person(tmp_path):
    records, labels = many_people(tmp_path, 2, lambda k: 9 if k == 0 else 2)
    out = tmp_path / "out"
    gallery_of(out, records, labels, thumbs_per_person=4)
    page = parse(out / "index.html")
    assert len([img for img in page.images if img["src"].startswith("thumbs/")]) == 4 + 2
    assert len(list((out / "thumbs").iterdir())) == 6  # thumbnails only for what the page shows
    assert "9 faces in 5 photos" in " ".join(page.texts) and "the first 4 shown" in " ".join(page.texts)


def test_max_montages_keeps_every_face_in_the_files(tmp_path, capsys):
    records, labels = many_people(tmp_path, 6, lambda k: 8 - k)
    labels[-2:] = -1  # person 5 keeps one face
    out = tmp_path / "out"
    done = gallery_of(out, records, labels, max_montages=3)
    printed = capsys.readouterr().out
    assert "for the 3 largest of 7 clusters (--max-montages)" in printed
    assert printed.count("[INFO] faces for face ID:") == 3
    assert sorted(done.montages) == [-1, 0, 1] and done.left_out == 4
    assert sorted(p.name for p in out.glob("*.jpg")) == ["face_id_00.jpg", "face_id_01.jpg", "unknown_faces.jpg"]
    assert parse(out / "index.html").sections == ["unknown", "person_00", "person_01"]
    with open(out / "clusters.csv", newline="") as handle:
        assert len(list(csv.reader(handle))) == len(records) + 1
    clusters = json.loads((out / "clusters.json").read_text())["clusters"]
    assert [c["label"] for c in clusters] == [-1, 0, 1, 2, 3, 4, 5]
    assert sum(c["faces"] for c in clusters) == len(records)
    gallery_of(out, records, labels, max_montages=2)  # a re-run showing fewer: the other montages go
    assert sorted(p.name for p in out.glob("*.jpg")) == ["face_id_00.jpg", "unknown_faces.jpg"]
    with pytest.raises(ValueError):
        gallery_of(out, records, labels, max_montages=0)


def test_present_without_a_folder_writes_nothing(tmp_path, library, monkeypatch):
    _, records, labels = library
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    done = present(None, records, labels, PresentOptions())
    assert done.montages == {} and done.pages == []
    assert sorted(p.name for p in tmp_path.iterdir()) == before
