"""The montage windows for real: OpenCV's Qt windows on a virtual X server.

A fixture starts ``Xvfb`` on a free display; a child Python process calls
``show_montages`` there, and the test drives it with ``xdotool`` as a user
would with the keyboard.  There is no window manager, so windows are focused
with ``windowfocus`` (``windowactivate`` needs one).

Without Xvfb/xdotool these tests skip -- unless ``CI`` is set, where a
missing tool is a failure.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facecluster.present import windows

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
TITLES = ["Face ID #0", "Face ID #1", "Unknown Faces"]

# The child: three montages with their title drawn on, shown with
# show_montages.  cv2.imshow is wrapped so the test learns exactly which
# windows were opened, in which order.
PROGRAM = r"""
import sys
import cv2
import numpy as np
from facecluster.present.windows import show_montages

real_imshow = cv2.imshow
def logged_imshow(title, image):
    print("SHOW", title, flush=True)
    real_imshow(title, image)
cv2.imshow = logged_imshow

montages = []
for title, color in zip(sys.argv[1:], [(60, 90, 200), (70, 160, 60), (150, 150, 150)]):
    image = np.zeros((480, 480, 3), np.uint8)
    image[:] = color
    for k in range(25):  # a 5x5 grid, like a real montage
        r, c = divmod(k, 5)
        cv2.rectangle(image, (c * 96 + 8, r * 96 + 8), (c * 96 + 88, r * 96 + 88), (255, 255, 255), 2)
    cv2.putText(image, title, (20, 250), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 3)
    montages.append((title, image))
show_montages(montages)
print("DONE", flush=True)
"""


def _require(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not missing:
        return
    message = f"{', '.join(missing)} not installed (apt-get install xvfb xdotool)"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {message}")
    pytest.skip(message)


@pytest.fixture(scope="module")
def xdisplay():
    """A running ``Xvfb`` on a free display; yields its name, e.g. ``":3"``."""
    _require("Xvfb", "xdotool")
    # -displayfd: Xvfb picks a free display itself and writes its number to
    # the pipe once it accepts connections -- no guessing, no race.
    # -noreset: by default the server resets whenever its last client leaves,
    # and a connection made during that reset fails (seen as a flaky test).
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1280x1024x24", "-nolisten", "tcp", "-noreset"],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    os.close(write_end)
    try:
        number = b""
        deadline = time.monotonic() + 30
        while not number.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([read_end], [], [], 0.5)
            if ready:
                chunk = os.read(read_end, 16)
                if not chunk:
                    break
                number += chunk
        if not number.strip().isdigit():
            server.kill()
            error = server.communicate(timeout=10)[1].decode(errors="replace")
            pytest.fail(f"Xvfb did not start: {error[-2000:]}")
        yield f":{number.strip().decode()}"
    finally:
        os.close(read_end)
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _env(display: str) -> dict:
    env = dict(os.environ, DISPLAY=display)
    env.pop("WAYLAND_DISPLAY", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _xdotool(display: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["xdotool", *args], env=_env(display), capture_output=True, text=True, timeout=20)


def _name_regex(title: str) -> str:
    """An anchored POSIX regex matching exactly ``title``."""
    return "^" + re.sub(r"([.\[\](){}*+?|^$\\])", r"\\\1", title) + "$"


def _visible(display: str, title: str) -> list[str]:
    result = _xdotool(display, "search", "--onlyvisible", "--name", _name_regex(title))
    return result.stdout.split()


def _wait_for_window(display: str, title: str, child: subprocess.Popen, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        windows = _visible(display, title)
        if windows:
            return windows[0]
        if child.poll() is not None:
            out, err = child.communicate()
            pytest.fail(f"viewer exited ({child.returncode}) before showing {title!r}:\n{out}\n{err[-3000:]}")
        time.sleep(0.1)
    pytest.fail(f"no visible window named {title!r} after {timeout}s")


def _wait_until_gone(display: str, title: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while _visible(display, title):
        if time.monotonic() > deadline:
            pytest.fail(f"window {title!r} still open {timeout}s after the key")
        time.sleep(0.1)


def _press(display: str, window: str, key: str) -> None:
    # No window manager: give the window the keyboard focus directly.
    focus = _xdotool(display, "windowfocus", "--sync", window)
    assert focus.returncode == 0, focus.stderr
    sent = _xdotool(display, "key", key)
    assert sent.returncode == 0, sent.stderr


def _screenshot(display: str, name: str) -> None:
    """Save the whole virtual screen to test-artifacts/ (best effort)."""
    try:
        from PIL import ImageGrab

        ARTIFACTS.mkdir(exist_ok=True)
        ImageGrab.grab(xdisplay=display).save(ARTIFACTS / name)
    except Exception as error:  # a screenshot is a nicety, never a failure
        print(f"no screenshot: {error}")


def _start_viewer(display: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", PROGRAM, *TITLES],
        cwd=ROOT,
        env=_env(display),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _shown(stdout: str) -> list[str]:
    return [line[len("SHOW "):] for line in stdout.splitlines() if line.startswith("SHOW ")]


def test_display_available_on_xvfb(xdisplay, monkeypatch):
    monkeypatch.setenv("DISPLAY", xdisplay)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    windows._probe_display.cache_clear()
    try:
        assert windows.display_available() is True
    finally:
        windows._probe_display.cache_clear()


def _page_through(display: str, child: subprocess.Popen, titles: list[str], screenshot: str = "") -> tuple[str, str]:
    """Expect each window in turn, alone, press space in it; return the child's output."""
    try:
        for position, title in enumerate(titles):
            window = _wait_for_window(display, title, child)
            others = [other for other in titles if other != title and _visible(display, other)]
            assert others == [], f"{others} open together with {title!r}: one window at a time"
            if position == 0 and screenshot:
                time.sleep(0.3)  # let Qt paint before the picture is taken
                _screenshot(display, screenshot)
            _press(display, window, "space")
            _wait_until_gone(display, title)
        return child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()


def test_each_window_in_turn_then_exit(xdisplay):
    child = _start_viewer(xdisplay)
    out, err = _page_through(xdisplay, child, TITLES, "montage_window.png")
    assert child.returncode == 0, err[-3000:]
    assert "QFontDatabase" not in err, err  # show_montages points Qt at the system fonts
    assert _shown(out) == TITLES
    assert out.rstrip().endswith("DONE")


@pytest.mark.parametrize("key", ["q", "Escape"])
def test_q_or_escape_stops_early(xdisplay, key):
    child = _start_viewer(xdisplay)
    try:
        window = _wait_for_window(xdisplay, TITLES[0], child)
        _press(xdisplay, window, key)
        out, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, err[-3000:]
    assert _shown(out) == TITLES[:1]  # the second window never opened
    assert out.rstrip().endswith("DONE")
    assert not any(_visible(xdisplay, title) for title in TITLES)


def _synthetic_encodings(folder: Path) -> Path:
    """Two tight groups of 3 faces and one loner, on pictures made here."""
    import pickle

    import cv2
    import numpy as np

    rng = np.random.default_rng(7)
    centres = rng.normal(0, 0.09, (3, 128))
    records = []
    for index, group in enumerate([0, 0, 0, 1, 1, 1, 2]):
        path = folder / f"photo_{index}.png"
        cv2.imwrite(str(path), np.full((200, 200, 3), 40 + 30 * index, np.uint8))
        encoding = centres[group] + rng.normal(0, 0.01, 128)
        records.append({"imagePath": str(path), "loc": (20, 180, 180, 20), "encoding": encoding})
    target = folder / "encodings.pickle"
    target.write_bytes(pickle.dumps(records))
    return target


def test_cluster_faces_pages_through_its_windows(xdisplay, tmp_path):
    """The script itself, as a user runs it with a screen: one window per label, -1 first."""
    encodings = _synthetic_encodings(tmp_path)
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "cluster_faces.py"), "-e", str(encodings), "--min-samples", "2"],
        cwd=tmp_path, env=_env(xdisplay), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    out, err = _page_through(xdisplay, child, ["Unknown Faces", "Face ID #0", "Face ID #1"])
    assert child.returncode == 0, err[-3000:]
    assert "[INFO] # unique faces: 2" in out
    assert "[INFO] faces for face ID: -1\n[INFO] faces for face ID: 0\n[INFO] faces for face ID: 1\n" in out
    assert not (tmp_path / "output").exists()  # a screen: windows, not files
    assert "QFontDatabase" not in err and "Qt no longer ships fonts" not in err, err  # Qt found the system fonts
