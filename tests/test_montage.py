"""Montages: face crops, the 5x5 tiles, grouping and order, file names, and the window loop's logic.

Everything here runs on synthetic images written to ``tmp_path``; the real
window path under Xvfb is in ``test_gui.py``.
"""

from __future__ import annotations

import logging
import os

import cv2
import numpy as np
import pytest
from PIL import Image
from facecluster.sources.images import LoadedImage, load_image
from facecluster.present import crops as crops_module
from facecluster.present import windows
from facecluster.present.crops import PLACEHOLDER_GRAY, PhotoReader, face_crop
from facecluster.present.clusters import group_clusters, montage_title
from facecluster.present.montage import TILE_SIZE, cluster_montage, montage_filename
from facecluster.files import write_image
from facecluster.present.windows import display_available, show_montages
from facecluster.records import make_record

RED_BGR = (0, 0, 255)
BLUE_BGR = (255, 0, 0)


def two_color_rgb(height=200, width=300, box=(50, 200, 150, 100)) -> np.ndarray:
    """A blue RGB picture with a red rectangle where the face ``box`` is."""
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:] = (0, 0, 255)  # blue
    top, right, bottom, left = box
    rgb[top:bottom, left:right] = (255, 0, 0)  # red
    return rgb


def save_png(path, rgb: np.ndarray) -> str:
    Image.fromarray(rgb).save(path, format="PNG")  # lossless: colours stay exact
    return str(path)


def solid_photo(path, rgb_color, size=(160, 120)) -> str:
    """A one-colour photo (``size`` = width, height) at ``path``."""
    Image.new("RGB", size, rgb_color).save(path, format="PNG")
    return str(path)


def record(path, box=(20, 100, 100, 20)):
    return make_record(str(path), box, np.zeros(128))


def face_tile(image, box, size=TILE_SIZE):
    """A montage tile, cropped exactly as cluster_montage crops it."""
    return face_crop(image, box, size)


def montage_of(records, indices, seed=0, reader=None, tiles=25):
    """cluster_montage with a fresh generator seeded ``seed``."""
    return cluster_montage(records, indices, np.random.default_rng(seed), reader or PhotoReader(), tiles)


def assert_color(tile, bgr, tolerance=2):
    assert np.abs(tile.astype(int) - np.array(bgr)).max() <= tolerance, tile.reshape(-1, 3)[:3]


# --------------------------------------------------------------------------
# face_tile


def test_face_tile_crops_the_box_and_resizes_to_96():
    image = LoadedImage(rgb=two_color_rgb(), scale=1.0, original_size=(300, 200))
    tile = face_tile(image, (50, 200, 150, 100))
    assert tile.shape == (96, 96, 3) and tile.dtype == np.uint8
    assert_color(tile, RED_BGR)  # BGR: the red face came out as red, not blue


def test_face_tile_size_parameter():
    image = LoadedImage(rgb=two_color_rgb(), scale=1.0, original_size=(300, 200))
    assert face_tile(image, (50, 200, 150, 100), size=40).shape == (40, 40, 3)


def test_face_tile_clips_an_overhanging_box():
    # The face sits in the top-left corner; the detector's box overhangs it.
    rgb = two_color_rgb(box=(0, 60, 60, 0))
    image = LoadedImage(rgb=rgb, scale=1.0, original_size=(300, 200))
    tile = face_tile(image, (-30, 60, 60, -30))
    assert tile.shape == (96, 96, 3)
    assert_color(tile, RED_BGR)  # only the part inside the picture, no wrap-around


def test_face_tile_huge_box_takes_the_whole_picture():
    rgb = np.zeros((200, 300, 3), np.uint8)
    rgb[:, :150] = (255, 0, 0)  # left half red, right half blue
    rgb[:, 150:] = (0, 0, 255)
    image = LoadedImage(rgb=rgb, scale=1.0, original_size=(300, 200))
    tile = face_tile(image, (-10**7, 10**7, 10**7, -10**7))
    assert tile.shape == (96, 96, 3)
    assert_color(tile[:, :40], RED_BGR)
    assert_color(tile[:, -40:], BLUE_BGR)


@pytest.mark.parametrize(
    "box",
    [
        (100, 150, 100, 50),  # no height
        (50, 150, 150, 150),  # no width
        (150, 50, 50, 150),  # upside down
        (500, 900, 700, 600),  # entirely below and right of the picture
        (-90, -10, -20, -80),  # entirely above and left of it
        (None, 1, 2, 3),  # damaged record
        (1, 2, 3),  # wrong length
    ],
)
def test_face_tile_degenerate_box_gives_gray(box):
    image = LoadedImage(rgb=two_color_rgb(), scale=1.0, original_size=(300, 200))
    tile = face_tile(image, box)
    assert tile.shape == (96, 96, 3)
    assert (tile == PLACEHOLDER_GRAY).all()


def test_face_tile_maps_original_pixels_onto_a_reduced_photo():
    # The original is 600x400; only a half-size copy was decoded.
    full = two_color_rgb(height=400, width=600, box=(100, 400, 300, 200))
    half = cv2.resize(full, (300, 200), interpolation=cv2.INTER_NEAREST)
    image = LoadedImage(rgb=half, scale=0.5, original_size=(600, 400))
    assert_color(face_tile(image, (100, 400, 300, 200)), RED_BGR)


def test_face_tile_with_load_image_reduction(tmp_path):
    path = save_png(tmp_path / "big.png", two_color_rgb(height=400, width=600, box=(100, 400, 300, 200)))
    image = load_image(path, max_pixels=60_000)  # forces a reduced decode
    assert image.scale < 1
    tile = face_tile(image, (110, 390, 290, 210))  # inside the red face, original pixels
    assert_color(tile, RED_BGR, tolerance=8)


# --------------------------------------------------------------------------
# cluster_montage


@pytest.fixture()
def three_photos(tmp_path):
    """Three one-colour photos and 30 records: 10 faces in each photo."""
    colors = {"red.png": (255, 0, 0), "green.png": (0, 255, 0), "blue.png": (0, 0, 255)}
    paths = [solid_photo(tmp_path / name, color) for name, color in colors.items()]
    records = [record(path, (10 + k, 100, 90, 10 + k)) for path in paths for k in range(10)]
    return paths, records


def tiles_of(image: np.ndarray) -> list[np.ndarray]:
    """The 25 tiles of a 5x5 montage, row by row."""
    return [image[r * 96:(r + 1) * 96, c * 96:(c + 1) * 96] for r in range(5) for c in range(5)]


def test_cluster_montage_is_5x5_of_96(three_photos):
    _, records = three_photos
    image = montage_of(records, range(30), seed=42)
    assert image.shape == (480, 480, 3) and image.dtype == np.uint8
    # 25 of 30 faces drawn: every cell holds a face, none is black padding.
    assert all(tile.mean() > 50 for tile in tiles_of(image))


def test_cluster_montage_loads_each_photo_once(three_photos, monkeypatch):
    _, records = three_photos
    calls = []
    real = crops_module.load_image
    monkeypatch.setattr(crops_module, "load_image", lambda path, *a, **k: calls.append(path) or real(path, *a, **k))
    montage_of(records, range(30), seed=1)
    assert sorted(calls) == sorted(set(calls)) and len(calls) == 3


def test_cluster_montage_same_seed_same_montage(three_photos):
    _, records = three_photos
    first = montage_of(records, range(30), seed=7)
    assert np.array_equal(first, montage_of(records, range(30), seed=7))
    differs = [not np.array_equal(first, montage_of(records, range(30), seed=s)) for s in range(8, 14)]
    assert any(differs)


def test_cluster_montage_samples_only_the_given_indices(three_photos):
    _, records = three_photos
    # indices 10..19 are the green photo's faces
    image = montage_of(records, np.arange(10, 20), seed=0)
    cells = tiles_of(image)
    for tile in cells[:10]:
        assert_color(tile, (0, 255, 0))
    for tile in cells[10:]:
        assert (tile == 0).all()  # unused cells are build_montages' black


def test_cluster_montage_missing_photo_gives_gray_tile(three_photos, caplog):
    paths, records = three_photos
    os.unlink(paths[0])  # the red photo vanished after encoding
    reader = PhotoReader()
    image = montage_of(records, [0, 10], seed=3, reader=reader)  # one red, one green
    cells = tiles_of(image)[:2]
    grays = [bool((tile == PLACEHOLDER_GRAY).all()) for tile in cells]
    assert sorted(grays) == [False, True]
    assert list(reader.unreadable) == [paths[0]]
    with caplog.at_level(logging.WARNING, logger="facecluster.present.clusters"):
        reader.report()
    assert "red.png" in caplog.text and "(1 photo)" in caplog.text


def test_missing_photos_are_reported_once_with_a_count(tmp_path, caplog):
    records = [record(tmp_path / f"gone_{k:02d}.jpg") for k in range(40) for _ in range(2)]  # 2 faces a photo
    reader = PhotoReader()
    with caplog.at_level(logging.WARNING):
        for start in range(0, 80, 20):  # several montages over the same photos
            montage_of(records, range(start, start + 20), reader=reader)
        assert caplog.text == ""  # nothing per face or per photo
        reader.report()
    lines = caplog.text.strip().splitlines()
    assert len(lines) == 1, lines
    assert "(40 photos)" in lines[0] and lines[0].endswith("gone_02.jpg and 37 more")
    assert "gone_00.jpg" in lines[0] and "gone_01.jpg" in lines[0] and "gone_03.jpg" not in lines[0]


def test_cluster_montage_unreadable_photo_gives_gray_tile(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    image = montage_of([record(bad)], [0])
    assert (tiles_of(image)[0] == PLACEHOLDER_GRAY).all()


def test_cluster_montage_empty_cluster_is_black():
    image = montage_of([], [])
    assert image.shape == (480, 480, 3) and not image.any()


def test_cluster_montage_other_tile_counts(three_photos):
    _, records = three_photos
    assert montage_of(records, range(30), tiles=9).shape == (288, 288, 3)


def test_group_clusters_order_unknown_first_then_largest():
    labels = np.array([3, -1, 0, 3, 1, 1, 1, 2, -1])
    grouped = group_clusters([record(f"p{k}.jpg") for k in range(len(labels))], labels)
    assert grouped.order == [-1, 1, 3, 0, 2]  # sizes 3, 2, 1, 1: ties by label
    assert grouped.members(3).tolist() == [0, 3] and grouped.members(-1).tolist() == [1, 8]
    assert grouped.people == 4 and grouped.unknown_faces == 2
    # The clustering numbers people by size, so its labels come out in np.unique order.
    by_size = np.array([1, 0, -1, 0, 2, 1, 0])
    assert group_clusters([record("x.jpg")] * 7, by_size).order == np.unique(by_size).tolist()
    assert group_clusters([], np.array([], dtype=int)).order == []
    with pytest.raises(ValueError):
        group_clusters([record("x.jpg")], [0, 1])


def test_group_clusters_matches_a_scan_per_label():
    rng = np.random.default_rng(3)
    labels = rng.integers(-1, 40, 2000)
    records = [record(f"photo_{k}.jpg") for k in rng.integers(0, 700, 2000)]
    grouped = group_clusters(records, labels)
    assert sorted(grouped.order) == sorted(set(labels.tolist()))
    sizes = [grouped.size(label) for label in grouped.order[1:]]
    assert sizes == sorted(sizes, reverse=True)
    for label in set(labels.tolist()):
        assert grouped.members(label).tolist() == np.flatnonzero(labels == label).tolist()
        assert grouped.photo_counts[label] == len({records[i]["imagePath"] for i in np.flatnonzero(labels == label)})
    assert grouped.photos == len({r["imagePath"] for r in records})


# --------------------------------------------------------------------------
# titles, file names, writing


def test_titles_and_filenames():
    assert montage_title(0) == "Face ID #0"
    assert montage_title(np.int64(12)) == "Face ID #12"
    assert montage_title(-1) == "Unknown Faces"
    assert montage_filename(0) == "face_id_00.jpg"
    assert montage_filename(7) == "face_id_07.jpg"
    assert montage_filename(123) == "face_id_123.jpg"
    assert montage_filename(-1) == "unknown_faces.jpg"


def test_write_image_atomically(tmp_path):
    image = np.full((480, 480, 3), 120, np.uint8)
    path = tmp_path / montage_filename(3)
    write_image(path, image)
    back = cv2.imread(str(path))
    assert back.shape == (480, 480, 3) and abs(int(back.mean()) - 120) <= 2
    assert os.listdir(tmp_path) == ["face_id_03.jpg"]  # no temporary file left


def test_write_image_to_a_non_utf8_folder(tmp_path):
    folder = os.path.join(str(tmp_path), os.fsdecode(b"caf\xe9"))  # Latin-1 name
    os.makedirs(folder)
    image = np.zeros((96, 96, 3), np.uint8)
    image[:, 48:] = (0, 0, 255)  # BGR: red on the right
    write_image(os.path.join(folder, "x.jpg"), image)
    written = cv2.imdecode(np.fromfile(os.path.join(folder, "x.jpg"), np.uint8), cv2.IMREAD_COLOR)
    assert written.shape == (96, 96, 3)
    assert np.abs(written[:, :40].astype(int)).max() < 16  # black stays black
    assert np.abs(written[:, 56:].astype(int) - (0, 0, 255)).max() < 16  # and red stays red (not BGR-swapped)


# --------------------------------------------------------------------------
# display detection and the window loop (without a display)


@pytest.fixture()
def fresh_probe():
    windows._probe_display.cache_clear()
    yield
    windows._probe_display.cache_clear()


def test_no_display_without_display_variables(monkeypatch, fresh_probe):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert display_available() is False


def test_no_display_with_headless_opencv(monkeypatch, fresh_probe):
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(cv2, "getBuildInformation", lambda: "  GUI:  NONE\n")
    assert display_available() is False


def test_dead_display_is_not_available_and_does_not_abort(monkeypatch, fresh_probe):
    # Qt aborts the process on a display it cannot reach; the probe runs in a
    # child process, so this process only hears "no".
    unused = next(n for n in range(4000, 4100) if not os.path.exists(f"/tmp/.X11-unix/X{n}"))
    monkeypatch.setenv("DISPLAY", f":{unused}")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert display_available() is False


def test_show_montages_without_display_returns(monkeypatch, caplog, fresh_probe):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)

    def no_windows(*args):
        raise AssertionError("must not open a window")

    monkeypatch.setattr(cv2, "imshow", no_windows)
    with caplog.at_level(logging.WARNING, logger="facecluster.present.windows"):
        show_montages([("Face ID #0", np.zeros((96, 96, 3), np.uint8))])
    assert "no display" in caplog.text


class FakeGui:
    """Stands in for cv2's window functions; ``keys`` are what waitKey(50) returns."""

    def __init__(self, keys):
        self.keys = list(keys)
        self.shown, self.destroyed = [], []

    def imshow(self, title, image):
        self.shown.append(title)

    def waitKey(self, delay=0):
        if delay == 1:
            return -1
        return self.keys.pop(0) if self.keys else ord(" ")

    def getWindowProperty(self, title, prop):
        return 1.0

    def destroyWindow(self, title):
        self.destroyed.append(title)

    def destroyAllWindows(self):
        pass


@pytest.fixture()
def fake_gui(monkeypatch):
    def install(keys):
        gui = FakeGui(keys)
        monkeypatch.setattr(windows, "display_available", lambda: True)
        for name in ("imshow", "waitKey", "getWindowProperty", "destroyWindow", "destroyAllWindows"):
            monkeypatch.setattr(cv2, name, getattr(gui, name))
        return gui

    return install


MONTAGES = [(montage_title(k), np.zeros((96, 96, 3), np.uint8)) for k in (0, 1, -1)]


def test_any_key_pages_through_every_montage(fake_gui):
    gui = fake_gui([-1, -1, ord("a"), ord(" "), 13])  # two idle polls, then keys
    show_montages(MONTAGES)
    assert gui.shown == ["Face ID #0", "Face ID #1", "Unknown Faces"]
    assert gui.destroyed == gui.shown  # one window at a time


@pytest.mark.parametrize("key", [ord("q"), ord("Q"), 27])
def test_q_or_escape_stops_early(fake_gui, key):
    gui = fake_gui([ord(" "), key])
    show_montages(MONTAGES)
    assert gui.shown == ["Face ID #0", "Face ID #1"]


def test_key_codes_with_modifier_bits_are_masked(fake_gui):
    gui = fake_gui([0x100000 | ord("q")])  # e.g. NumLock set, as some backends report
    show_montages(MONTAGES)
    assert gui.shown == ["Face ID #0"]


def test_closing_a_window_pages_on(fake_gui, monkeypatch):
    gui = fake_gui([-1] * 100)
    monkeypatch.setattr(cv2, "getWindowProperty", lambda title, prop: 0.0)  # user closed it
    show_montages(MONTAGES)
    assert gui.shown == ["Face ID #0", "Face ID #1", "Unknown Faces"]


def test_window_errors_do_not_crash(fake_gui, monkeypatch, caplog):
    fake_gui([])

    def broken(title, image):
        raise cv2.error("cannot create window")

    monkeypatch.setattr(cv2, "imshow", broken)
    with caplog.at_level(logging.WARNING, logger="facecluster.present.windows"):
        show_montages(MONTAGES)
    assert "cannot show montages" in caplog.text
