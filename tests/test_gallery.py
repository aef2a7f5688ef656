"""The HTML gallery in a real browser: headless Chromium driven by chromedriver.

The page is opened from ``file://`` exactly as a user would open it, and
every picture on it must actually load.  A screenshot of each page goes to
``test-artifacts/``.

Without Chromium, chromedriver or the ``selenium`` package these tests skip
-- unless ``CI`` is set, where a missing tool is a failure.
"""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlsplit

import numpy as np
import pytest

from conftest import require
from PIL import Image

from facecluster.sources.images import load_image
from facecluster.present import PresentOptions, present
from facecluster.present.clusters import person_dirname
from facecluster.present.gallery import GalleryOptions
from facecluster.records import make_record, make_video_record

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")

# Images that have not finished loading, or loaded as nothing (naturalWidth 0).
BROKEN_IMAGES_JS = """
return Array.from(document.images)
  .filter(img => !(img.complete && img.naturalWidth > 0))
  .map(img => img.getAttribute('src'));
"""


def _missing(message: str):
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {message}")
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A headless Chromium under chromedriver, with a fresh profile."""
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(tool) and os.access(tool, os.X_OK)):
            _missing(f"{tool} not installed (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("the selenium package is not installed (pip install selenium)")

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-breakpad",
        "--no-first-run",
        "--hide-scrollbars",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(argument)
    # An explicit driver path: Selenium Manager is never consulted (no downloads).
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _open(driver, index: str) -> None:
    driver.set_window_size(1280, 900)
    driver.get(Path(index).resolve().as_uri())
    assert driver.execute_script("return document.readyState") == "complete"


def _all_images_loaded(driver, timeout: float = 30) -> list[str]:
    """Bring every image into view (thumbnails load lazily), then wait for them.

    Returns the images that still failed to load (empty when all is well).
    """
    driver.execute_script("for (const img of document.images) img.scrollIntoView();")
    driver.execute_script("window.scrollTo(0, 0);")
    deadline = time.monotonic() + timeout
    broken = driver.execute_script(BROKEN_IMAGES_JS)
    while broken and time.monotonic() < deadline:
        time.sleep(0.2)
        driver.execute_script("for (const img of document.images) if (!img.complete || !img.naturalWidth) img.scrollIntoView();")
        broken = driver.execute_script(BROKEN_IMAGES_JS)
    return broken


def _screenshot(driver, name: str) -> Path:
    """A full-page screenshot in test-artifacts/ (the DevTools call sees past the viewport)."""
    width, height = driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": min(height, 12000), "scale": 1},
        },
    )
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def _link_target(href: str) -> bytes:
    """The local file a resolved ``file://`` href points at."""
    parts = urlsplit(href)
    assert parts.scheme == "file", href
    return unquote_to_bytes(parts.path)


def _check_page(driver, expected_sections: dict[str, int]) -> None:
    """Sections present in order with their face counts; every image shown; links resolve."""
    from selenium.webdriver.common.by import By

    sections = driver.find_elements(By.CSS_SELECTOR, "main > section")
    assert [s.get_attribute("id") for s in sections] == list(expected_sections)
    for section in sections:
        count = expected_sections[section.get_attribute("id")]
        thumbs = section.find_elements(By.CSS_SELECTOR, ".faces img")
        assert len(thumbs) == count
        meta = section.find_element(By.CSS_SELECTOR, ".meta").text
        assert meta.startswith(f"{count} face"), meta
    nav = [a.get_attribute("href").rsplit("#", 1)[1] for a in driver.find_elements(By.CSS_SELECTOR, "nav.people a")]
    assert nav == list(expected_sections)
    assert _all_images_loaded(driver) == []
    # Every face links to a photo that exists, as the browser resolves the link.
    for link in driver.find_elements(By.CSS_SELECTOR, ".faces a"):
        target = _link_target(link.get_attribute("href"))
        assert os.path.isfile(target), target


# --------------------------------------------------------------------------
# Real photos


REAL_PHOTOS = {
    "obama": [
        "examples__knn_examples__train__obama__obama.jpg",
        "examples__knn_examples__train__obama__obama2.jpg",
        "tests__test_images__32bit.png",  # 32-bit RGBA PNG
        "tests__test_images__obama_partial_face.jpg",  # box runs off the edge
    ],
    "biden": ["examples__knn_examples__train__biden__biden.jpg", "examples__knn_examples__train__biden__biden2.jpg"],
    "kit_harington": [
        "examples__knn_examples__train__kit_harington__john1.jpeg",
        "examples__knn_examples__train__kit_harington__john2.jpeg",
    ],
    "alex_lacamoire": ["examples__alex-lacamoire.png"],  # seen once: an outlier
    "_multi_face": ["examples__knn_examples__test__obama_and_biden.jpg"],
}
PEOPLE = ["obama", "biden", "kit_harington"]


def _detect(path: str):
    """Face boxes (original pixels) and encodings of one photo, found on a <=800 px copy."""
    import cv2
    import face_recognition

    loaded = load_image(path)
    rgb = loaded.rgb
    factor = min(1.0, 800 / max(rgb.shape[:2]))
    small = cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA) if factor < 1 else rgb
    boxes = face_recognition.face_locations(small, number_of_times_to_upsample=1, model="hog")
    encodings = face_recognition.face_encodings(small, known_face_locations=boxes)
    scale = 1 / (factor * loaded.scale)
    return [tuple(int(round(v * scale)) for v in box) for box in boxes], encodings


@pytest.fixture(scope="module")
def real_gallery(fr_examples, tmp_path_factory):
    """A gallery of real photos: known people by folder, the two-person photo by nearest face."""
    require("face_recognition")
    records, labels, multi = [], [], []
    for folder, names in REAL_PHOTOS.items():
        for name in names:
            path = str(fr_examples / folder / name)
            boxes, encodings = _detect(path)
            assert boxes, f"no face found in {path}"
            for box, encoding in zip(boxes, encodings):
                records.append(make_record(path, box, encoding))
                if folder in PEOPLE:
                    labels.append(PEOPLE.index(folder))
                else:
                    labels.append(-1)
                    multi.append(len(records) - 1)
    labels = np.array(labels)
    # Faces of the group photo join the person whose faces they are nearest to.
    encodings = np.array([r["encoding"] for r in records])
    centers = np.array([encodings[labels == k].mean(axis=0) for k in range(len(PEOPLE))])
    for index in multi:
        if "obama_and_biden" in records[index]["imagePath"]:
            distances = np.linalg.norm(centers - encodings[index], axis=1)
            labels[index] = int(distances.argmin()) if distances.min() < 0.6 else -1

    out = tmp_path_factory.mktemp("real-gallery") / "output"
    done = present(str(out), records, labels, PresentOptions(organize="link", seed=42))  # as cluster_faces.py does
    return done.pages[0], records, labels


def test_real_photo_gallery_in_chromium(browser, real_gallery):
    index, records, labels = real_gallery
    expected = {person_dirname(k): int(np.count_nonzero(labels == k)) for k in (-1, 0, 1, 2)}
    assert expected["person_00"] >= 5 and expected["person_01"] >= 3  # the group photo's faces joined them
    _open(browser, index)
    _check_page(browser, expected)
    # The person-folder links made by organize() resolve too.
    from selenium.webdriver.common.by import By

    folders = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, ".meta a")]
    assert len(folders) == 4 and all(os.path.isdir(_link_target(href)) for href in folders)
    shot = _screenshot(browser, "gallery.png")
    assert Image.open(shot).size[0] == 1280


# --------------------------------------------------------------------------
# Synthetic photos with awkward names (no FACES_DATA needed)


def _synthetic_photo(path: Path, color) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (240, 180), color)
    image.paste((245, 220, 190), (80, 40, 160, 140))  # a pale 'face'
    with open(os.fsencode(path), "wb") as handle:
        image.save(handle, format="JPEG")
    return os.fspath(path)


def test_synthetic_gallery_with_odd_names_in_chromium(browser, tmp_path):
    src = tmp_path / "photos & <more> #1 %20"
    paths = [
        _synthetic_photo(src / "plain.jpg", (200, 60, 60)),
        _synthetic_photo(src / "spaces and ' quotes \".jpg", (60, 200, 60)),
        _synthetic_photo(src / os.fsdecode(b"caf\xe9.jpg"), (60, 60, 200)),  # not UTF-8
        _synthetic_photo(src / "Zoë 😀.jpg", (200, 200, 60)),
        _synthetic_photo(src / "gone.jpg", (90, 90, 90)),
    ]
    box = (30, 170, 150, 70)
    records = [make_record(p, box, np.zeros(128)) for p in paths]
    records.append(make_record(paths[0], (-40, 400, 300, -60), np.zeros(128)))  # overhangs everywhere
    labels = np.array([0, 0, 1, 1, -1, 0])
    out = tmp_path / "out put"
    os.unlink(paths[4])  # vanished after encoding: gray tile and thumbnail
    done = present(str(out), records, labels, PresentOptions(seed=1, gallery=GalleryOptions(title="Odd <names> & friends")))
    _open(browser, done.pages[0])
    assert browser.title == "Odd <names> & friends"
    _check_page_except_missing(browser, {"unknown": 1, "person_00": 3, "person_01": 2}, missing=paths[4])
    _screenshot(browser, "gallery_synthetic.png")


def _check_page_except_missing(driver, expected_sections: dict[str, int], missing: str) -> None:
    """Like _check_page, but one photo was deleted: its thumbnail shows, its link dangles."""
    from selenium.webdriver.common.by import By

    sections = driver.find_elements(By.CSS_SELECTOR, "main > section")
    assert [s.get_attribute("id") for s in sections] == list(expected_sections)
    for section in sections:
        assert len(section.find_elements(By.CSS_SELECTOR, ".faces img")) == expected_sections[section.get_attribute("id")]
    assert _all_images_loaded(driver) == []
    targets = [_link_target(a.get_attribute("href")) for a in driver.find_elements(By.CSS_SELECTOR, ".faces a")]
    assert [t for t in targets if not os.path.isfile(t)] == [os.fsencode(missing)]


def test_paged_gallery_in_chromium(browser, tmp_path):
    """More people than a page holds: page links lead on and back, every page's images load."""
    from selenium.webdriver.common.by import By

    photos = [_synthetic_photo(tmp_path / "photos" / f"p{k}.jpg", (40 * k, 120, 200 - 30 * k)) for k in range(5)]
    labels = np.concatenate([np.full(9 - k, k) for k in range(7)])  # 7 people, largest first
    records = [make_record(photos[i % 5], (30, 170, 150, 70), np.zeros(128)) for i in range(len(labels))]
    done = present(str(tmp_path / "out"), records, labels, PresentOptions(gallery=GalleryOptions(people_per_page=3)))
    assert len(done.pages) == 3
    _open(browser, done.pages[0])
    expected = [["person_00", "person_01", "person_02"], ["person_03", "person_04", "person_05"], ["person_06"]]
    for number, sections in enumerate(expected, 1):
        _check_page(browser, {name: 9 - int(name[-2:]) for name in sections})
        if number < len(expected):
            browser.find_element(By.CSS_SELECTOR, "nav.pages a[rel=next]").click()
            assert browser.current_url.endswith(f"page-{number + 1}.html")
    browser.find_element(By.CSS_SELECTOR, "nav.pages a[rel=prev]").click()
    assert browser.current_url.endswith("page-2.html")
    browser.find_element(By.LINK_TEXT, "1").click()
    assert browser.current_url.endswith("index.html")
    _screenshot(browser, "gallery_paged.png")


def _synthetic_clip(path: bytes, seconds: int = 2, fps: int = 10) -> str:
    """A short H.264 clip of the synthetic 'face' at ``path`` (bytes: any name), for a video face."""
    av = require("av")
    image = Image.new("RGB", (240, 180), (60, 120, 200))
    image.paste((245, 220, 190), (80, 40, 160, 140))
    rgb = np.asarray(image)
    with open(path, "wb") as handle, av.open(handle, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 240, 180, "yuv420p"
        for _ in range(seconds * fps):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    return os.fsdecode(path)


# Markup, quotes, ampersands (one already written as an entity) and bytes that are not UTF-8.
HOSTILE_FOLDER = b'<i>photos & "more" \xe9'
HOSTILE_NAMES = [b'<b>bold<b> & "quoted" &amp; caf\xe9.jpg',
                 b"<img src=x onerror=alert(1)> 'single' \xff.jpg"]
HOSTILE_CLIP = b'<u>clip & "v" \xe9.mp4'


def test_hostile_file_names_show_as_text_in_chromium(browser, tmp_path):
    """Every place a file name reaches the gallery -- link titles, alt texts, the video timeline, the
    links themselves -- shows it as text (U+FFFD for bytes that are not UTF-8): no element is made of it."""
    from selenium.webdriver.common.by import By

    from facecluster.sources.skips import display_path

    folder = os.path.join(os.fsencode(tmp_path), HOSTILE_FOLDER)
    photos = [_synthetic_photo(Path(os.fsdecode(os.path.join(folder, name))), (200, 60 + 60 * k, 60))
              for k, name in enumerate(HOSTILE_NAMES)]
    clip = _synthetic_clip(os.path.join(folder, HOSTILE_CLIP))
    box = (30, 170, 150, 70)
    records = [make_record(path, box, np.zeros(128)) for path in photos]
    records.append(make_video_record(clip, box, np.zeros(128), frame=10, time=1.0))
    title = 'Odd <title> & "quotes" &amp;'
    done = present(str(tmp_path / "out"), records, np.array([0, 0, 0]),
                   PresentOptions(seed=1, gallery=GalleryOptions(title=title)))
    _open(browser, done.pages[0])
    assert browser.title == title
    assert browser.find_element(By.TAG_NAME, "h1").text == title
    assert browser.execute_script(
        "return document.querySelectorAll('b, i, u, [onerror], script').length") == 0
    assert len(browser.find_elements(By.TAG_NAME, "img")) == 1 + 3  # the montage and three thumbnails
    assert _all_images_loaded(browser) == []

    shown = [display_path(path) for path in photos] + [f"{display_path(clip)} at 0:01"]
    assert "\ufffd" in shown[0] and "&amp;" in shown[0] and "<b>" in shown[0]
    links = browser.find_elements(By.CSS_SELECTOR, ".faces a")
    assert [link.get_attribute("title") for link in links] == shown
    assert [link.find_element(By.TAG_NAME, "img").get_attribute("alt") for link in links] == [
        f"face in {os.path.basename(name)}" for name in shown]
    assert [_link_target(link.get_attribute("href")) for link in links] == [os.fsencode(p) for p in (*photos, clip)]

    (moment,) = browser.find_elements(By.CSS_SELECTOR, ".timeline a")
    assert moment.text == f"{os.path.basename(display_path(clip))} 0:01"
    assert _link_target(moment.get_attribute("href")) == os.fsencode(clip)
    assert moment.get_attribute("href").endswith("#t=1.00")
    _screenshot(browser, "gallery_hostile_names.png")
