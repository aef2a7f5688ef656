"""Videos as input: found by content, sampled, tracked, cached, shown; bad videos reported in one line.

The real clips are in ``$FACES_DATA/videos`` (see its SOURCE.txt).  Broken,
rotated, variable-rate, 4K and long variants are made here at run time with
PyAV and never committed.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import PYTHON, ROOT, require, run_script
from test_gallery import browser  # noqa: F401  (the headless Chromium fixture)
from facecluster.records import make_video_record
from facecluster.store import EncodingsError, load_encodings, save_encodings

SELFIE = "selfie_talking_glasses_12s.mp4"
STAGE = "hamilton_short_clip.mp4"
AUDIENCE_FROM = 7.4  # seconds: the stage clip cuts to the audience here
# The performer's own shots before that (about 1-3 s is a close-up of the
# pianist in profile, whom the CNN look finds): (from, to) in seconds.
PERFORMER_SHOTS = ((0.0, 0.9), (3.0, AUDIENCE_FROM))


@pytest.fixture(scope="module")
def clips(faces_data: Path) -> Path:
    folder = faces_data / "videos"
    for name in (SELFIE, STAGE):
        if not (folder / name).is_file():
            pytest.fail(f"{folder / name} is missing")
    return folder


def frames_of(path: Path, every: int = 1, size: tuple[int, int] | None = None):
    """The upright RGB frames of a clip (every ``every``-th), optionally resized to ``size`` (w, h)."""
    av = require("av")
    import cv2

    with av.open(str(path)) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number % every == 0:
                rgb = frame.to_ndarray(format="rgb24")
                yield cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) if size else rgb


def write_clip(path: Path, frames, fps: int = 30, rotation: int | None = None, times: list[float] | None = None,
               codec: str = "libx264") -> Path:
    """Encode RGB ``frames`` (H.264 by default); ``rotation`` sets the display matrix, ``times`` the stamps (VFR)."""
    av = require("av")
    frames = iter(frames)
    first = next(frames)
    with av.open(str(path), "w") as container:
        options = {"preset": "ultrafast"} if codec == "libx264" else {"deadline": "realtime", "cpu-used": "8"}
        stream = container.add_stream(codec, rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = first.shape[1] // 2 * 2, first.shape[0] // 2 * 2, "yuv420p"
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for number, rgb in enumerate([first, *frames]):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[: stream.height, : stream.width]), format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = int(times[number] * 1000), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def remux(source: Path, target: Path) -> Path:
    """Copy the video stream of ``source`` into another container (by ``target``'s suffix), not re-encoded."""
    av = require("av")
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return target


def encode(dataset: Path, encodings: Path, *extra: str) -> subprocess.CompletedProcess:
    out = run_script("encode_faces.py", "-i", str(dataset), "-e", str(encodings), *extra)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    return out


def cluster(encodings: Path, output: Path, *extra: str) -> list[dict]:
    """Cluster with the defaults; returns the clusters.csv rows."""
    out = run_script("cluster_faces.py", "-e", str(encodings), "-o", str(output), *extra)
    assert out.returncode == 0, out.stderr
    with open(output / "clusters.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def people(rows: list[dict]) -> set[str]:
    return {row["label"] for row in rows if row["label"] != "-1"}


# --------------------------------------------------------------------------
# The real clips


def test_selfie_and_stage_clips(clips: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "feeds"
    dataset.mkdir()
    shutil.copy(clips / SELFIE, dataset / "selfie.mov")  # the name says MOV: content decides
    shutil.copy(clips / STAGE, dataset / "stage")  # no extension at all
    encodings = tmp_path / "enc.pickle"
    out = encode(dataset, encodings)
    assert "s of video" in out.stdout and "ETA" in out.stdout
    records = load_encodings(encodings)
    assert records and all(isinstance(r["frame"], int) and isinstance(r["time"], float) for r in records)
    rows = cluster(encodings, tmp_path / "out")

    selfie = [row for row in rows if row["image"].endswith("selfie.mov")]
    assert 3 <= len(selfie) <= 15, "one person on screen for 12 s gives a handful of records"
    assert len({row["label"] for row in selfie}) == 1 and selfie[0]["label"] != "-1"

    stage = [row for row in rows if row["image"].endswith("stage")]
    performer = {row["label"] for row in stage if any(a <= float(row["time"]) < b for a, b in PERFORMER_SHOTS)}
    audience = {row["label"] for row in stage if float(row["time"]) >= AUDIENCE_FROM}
    assert len(performer) == 1 and performer != {"-1"}, "the performer is one cluster across his shots"
    assert not performer & audience
    assert not performer & {selfie[0]["label"]}
    assert all(row["frame"] and row["time"] for row in rows)

    again = encode(dataset, encodings)
    assert re.search(r"2 videos and (\d+) of \1 segments reused", again.stdout), again.stdout
    assert [r["time"] for r in load_encodings(encodings)] == [r["time"] for r in records]


def test_photos_and_a_clip_of_one_person_are_one_cluster(lfw: Path, tmp_path: Path) -> None:
    import cv2

    photos = sorted((lfw / "Colin_Powell").glob("*.jpg"))
    dataset = tmp_path / "case"
    dataset.mkdir()
    for photo in photos[:8]:
        shutil.copy(photo, dataset / photo.name)
    # The others shown one second each, like a slide show: a clip of the same person.
    slides = [cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB) for photo in photos[8:20]]
    write_clip(dataset / "powell.mp4", (slide for slide in slides for _ in range(10)), fps=10)
    encodings = tmp_path / "enc.pickle"
    encode(dataset, encodings)
    rows = cluster(encodings, tmp_path / "out", "--organize", "copy")
    from_video = [row for row in rows if row["image"].endswith("powell.mp4")]
    from_photos = [row for row in rows if not row["image"].endswith("powell.mp4")]
    assert from_video and from_photos
    assert len(people(rows)) == 1
    (label,) = people(rows)
    assert sum(row["label"] == label for row in from_video) >= len(from_video) * 0.8
    assert sum(row["label"] == label for row in from_photos) >= len(from_photos) * 0.8
    folder = tmp_path / "out" / f"person_{int(label):02d}"
    assert any(name.startswith("powell.mp4 at ") and name.endswith(".jpg") for name in os.listdir(folder))


# --------------------------------------------------------------------------
# Bad and unusual videos


def test_bad_videos_one_line_each_and_the_run_goes_on(clips: Path, tmp_path: Path) -> None:
    av = require("av")
    dataset = tmp_path / "feeds"
    dataset.mkdir()
    data = (clips / STAGE).read_bytes()
    (dataset / "truncated.mp4").write_bytes(data[: len(data) * 6 // 10])  # its index is at the end: lost
    remuxed = remux(clips / SELFIE, tmp_path / "selfie.mkv").read_bytes()  # Matroska: readable as far as it goes
    (dataset / "cut.mkv").write_bytes(remuxed[: len(remuxed) // 2])
    (dataset / "empty.mp4").write_bytes(b"")
    (dataset / "notes.mp4").write_text("not a video at all\n" * 20)
    with av.open(str(dataset / "voice.m4a"), "w", format="mp4") as container:  # audio only
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    shutil.copy(clips / SELFIE, dataset / "selfie.mp4")
    encodings = tmp_path / "enc.pickle"
    out = encode(dataset, encodings)
    warnings = out.stderr.splitlines()
    for name, reason in (("empty.mp4", "empty"), ("notes.mp4", "not a video"), ("voice.m4a", "audio only")):
        assert sum(name in line and reason in line for line in warnings) == 1, out.stderr
    records = load_encodings(encodings)
    assert any(r["imagePath"].endswith("selfie.mp4") for r in records)
    assert sum("truncated.mp4" in line and "corrupt or truncated" in line for line in warnings) == 1, out.stderr
    cut = [line for line in warnings if "cut.mkv" in line]
    assert len(cut) == 1 and "read only to" in cut[0] and "faces of the readable part kept" in cut[0], out.stderr
    kept = [r["time"] for r in records if r["imagePath"].endswith("cut.mkv")]
    assert kept and max(kept) < 8


def test_rotated_phone_video_is_turned_upright(clips: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "phone"
    dataset.mkdir()
    # Stored lying on its side, with a display matrix that turns it upright again.
    sideways = (np.rot90(rgb, -1) for rgb in frames_of(clips / SELFIE, every=3, size=(360, 640)))
    write_clip(dataset / "phone.mp4", sideways, fps=10, rotation=90)
    encodings = tmp_path / "enc.pickle"
    encode(dataset, encodings)
    records = load_encodings(encodings)
    assert records, "an upright face is found; a sideways one would not be"
    assert all(r["loc"][2] <= 640 and r["loc"][1] <= 360 for r in records)


def test_variable_frame_rate_times_come_from_the_stamps(clips: Path, tmp_path: Path) -> None:
    from facecluster.sources.video import FrameSampler, probe_video

    frames = list(frames_of(clips / SELFIE, every=2, size=(360, 640)))[:90]
    # 30 fps for the first half, 5 fps after: a frame count alone would misplace every later look.
    times = [i / 30 if i < 45 else 1.5 + (i - 45) / 5 for i in range(len(frames))]
    path = write_clip(tmp_path / "vfr.mp4", frames, fps=30, times=times)
    info = probe_video(str(path))
    assert info.duration == pytest.approx(times[-1], abs=0.5)
    looks = [look.time for look in FrameSampler(str(path), info, 0, float("inf"), 1.0)]
    assert looks == pytest.approx([float(t) for t in range(len(looks))], abs=0.21)
    assert looks[-1] >= 9


def test_4k_video_is_streamed(clips: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "uhd"
    dataset.mkdir()
    # 4 frames of 3840x2160 (2 s at 2 fps): enough to stream and encode a 4K clip; more only costs time
    write_clip(dataset / "uhd.mp4", frames_of(clips / SELFIE, every=90, size=(2160, 3840)), fps=2)
    encodings = tmp_path / "enc.pickle"
    encode(dataset, encodings, "--workers", "1")
    assert load_encodings(encodings)


def test_killed_mid_video_resumes(clips: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "long"
    dataset.mkdir()
    small = list(frames_of(clips / SELFIE, every=3, size=(320, 568)))
    # About 36 s: 4 segments of 9 s, so the kill after the first leaves three to do (more only costs time)
    write_clip(dataset / "long.mp4", (frame for _ in range(3) for frame in small), fps=10)
    encodings = tmp_path / "enc.pickle"
    command = [PYTHON, "encode_faces.py", "-i", str(dataset), "-e", str(encodings), "--workers", "1"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               start_new_session=True)
    for line in process.stdout:  # the first segment is done and kept
        if "s of video" in line:
            break
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    out = encode(dataset, encodings)
    reused = [line for line in out.stdout.splitlines() if "segments reused" in line]
    assert reused and "0 videos and 0 of" not in reused[0] and "1 videos and" not in reused[0], out.stdout


# --------------------------------------------------------------------------
# Records


def test_video_records_round_trip_and_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "enc.pickle"
    record = make_video_record("clip.mp4", (1, 20, 30, 4), np.zeros(128), 45, 1.5)
    save_encodings(path, [record])
    (loaded,) = load_encodings(path)
    assert (loaded["frame"], loaded["time"]) == (45, 1.5)
    record["time"] = float("nan")
    save_encodings(path, [record])
    with pytest.raises(EncodingsError, match="time"):
        load_encodings(path)


# --------------------------------------------------------------------------
# The gallery in a browser


def test_gallery_plays_the_clip_from_the_face(browser, clips: Path, tmp_path: Path) -> None:  # noqa: F811 (a fixture)
    from selenium.webdriver.common.by import By

    from test_gallery import _all_images_loaded, _open

    dataset = tmp_path / "feeds"
    dataset.mkdir()
    write_clip(dataset / "selfie.webm", frames_of(clips / SELFIE, every=3, size=(360, 640)), fps=10, codec="libvpx")
    encodings = tmp_path / "enc.pickle"
    encode(dataset, encodings)
    cluster(encodings, tmp_path / "out", "--min-samples", "2")
    _open(browser, str(tmp_path / "out" / "index.html"))
    assert _all_images_loaded(browser) == [], "the thumbnails are cut from the frames"
    timeline = browser.find_element(By.CSS_SELECTOR, "section ol.timeline a")
    assert "selfie.webm" in timeline.text and "0:00" in timeline.text
    links = browser.find_elements(By.CSS_SELECTOR, ".faces a")
    later = [link for link in links if float(link.get_attribute("href").split("#t=")[1]) > 2][0]
    moment = float(later.get_attribute("href").split("#t=")[1])
    later.click()
    deadline = time.monotonic() + 20
    state = None
    while time.monotonic() < deadline:
        state = browser.execute_script(
            "const v = document.querySelector('video');"
            "return v ? [v.readyState, v.currentTime, v.error && v.error.code] : null;")
        if state and state[0] >= 1:
            break
        time.sleep(0.2)
    assert state and state[2] is None and state[0] >= 1, state
    assert state[1] == pytest.approx(moment, abs=0.6), "the clip plays from the face's moment"


def test_csv_and_json_place_video_faces(tmp_path: Path) -> None:
    from facecluster.present.clusters import group_clusters
    from facecluster.present.export import write_clusters_csv, write_clusters_json
    from facecluster.records import make_record

    records = [make_record("a.jpg", (1, 20, 30, 4), np.zeros(128)),
               make_video_record("v.mp4", (5, 60, 70, 8), np.zeros(128), 45, 1.5)]
    clusters = group_clusters(records, [0, 0])
    write_clusters_csv(tmp_path / "c.csv", records, clusters)
    assert (tmp_path / "c.csv").read_text().splitlines()[1:] == ["a.jpg,1,20,30,4,0,,,", "v.mp4,5,60,70,8,0,45,1.5,"]
    write_clusters_json(tmp_path / "c.json", records, clusters)
    members = json.loads((tmp_path / "c.json").read_text())["clusters"][0]["members"]
    assert "time" not in members[0] and (members[1]["frame"], members[1]["time"]) == (45, 1.5)


# --------------------------------------------------------------------------
# Tracks and appearances, on made-up faces


def _seen(time: float, box, person: int, quality: float = 1.0):
    from facecluster.records import Sighting

    encoding = np.zeros(128)
    encoding[person] = 1.0  # people 1.41 apart; one person's faces 0 apart
    return Sighting(int(time * 30), time, box, encoding, quality)


def test_tracks_follow_people_and_end_at_cuts() -> None:
    from facecluster.run.tracks import Tracker, representatives, stitch

    tracker = Tracker(step=0.5)
    for look in range(10):  # two people walk past each other: identity, not place, decides
        t = look * 0.5
        tracker.add(t, [_seen(t, (10, 20 + 10 * look, 50, 10 * look), 0), _seen(t, (10, 120 - 10 * look, 50, 100 - 10 * look), 1)])
    tracker.cut()
    tracker.add(5.0, [_seen(5.0, (10, 40, 50, 0), 0)])
    tracks = tracker.finish()
    assert [len(track.sightings) for track in tracks] == [10, 10, 1]
    assert all(len({int(np.argmax(s.encoding)) for s in track.sightings}) == 1 for track in tracks)
    kept = representatives(tracks[0].sightings, 3)
    assert len(kept) == 3 and kept[0].time < 1.5 <= kept[1].time < 3.5 <= kept[2].time
    # A track cut by a segment boundary is joined again; a face far in time is not.
    later = Tracker(0.5)
    later.add(9.0, [_seen(9.0, (10, 40, 50, 0), 0)])
    joined = stitch([[tracks[0]], [tracks[2]], later.finish()], step=0.5)
    assert [len(track.sightings) for track in joined] == [11, 1]


def test_appearances_and_clip_links() -> None:
    from facecluster.present.video import appearances, clip_href, timeline_html

    records = [make_video_record("feeds/cam 1.mp4", (0, 9, 9, 0), np.zeros(128), 30 * t, t) for t in (1.0, 3.0, 20.0, 22.5)]
    found = appearances(records, range(4))
    assert [(seen.start, seen.end) for seen in found] == [(1.0, 3.0), (20.0, 22.5)]
    assert clip_href("cam%201.mp4", 20.0) == "cam%201.mp4#t=20.00"
    page = timeline_html(found, lambda path: "cam%201.mp4")
    assert "cam 1.mp4 <span>0:01&ndash;0:03</span>" in page and 'href="cam%201.mp4#t=20.00"' in page


def test_avi_and_transport_stream(clips: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "feeds"
    dataset.mkdir()
    # 6 s (two segments, the second decoded from the one keyframe in the .ts); a longer clip only costs time
    frames = list(frames_of(clips / SELFIE, every=3, size=(360, 640)))[:60]
    write_clip(dataset / "cam.avi", frames, fps=10, codec="mpeg4")
    write_clip(dataset / "cam.ts", frames, fps=10)  # one keyframe, no index: segments decode from the start
    out = encode(dataset, tmp_path / "enc.pickle")
    assert "WARNING" not in out.stderr, out.stderr
    found = {os.path.basename(r["imagePath"]) for r in load_encodings(tmp_path / "enc.pickle")}
    assert found == {"cam.avi", "cam.ts"}


def test_a_segment_or_probe_that_kills_or_hangs_its_worker_is_a_skip_that_is_tried_again() -> None:
    """What the pool gives for a lost video task becomes a one-line skip, never kept in the cache."""
    from facecluster.run import videos
    from facecluster.run.pool import KILLED, STALLED
    from facecluster.sources.skips import ImageSkipped

    crashed, stalled = videos._as_skipped(KILLED), videos._as_skipped(STALLED)
    assert isinstance(crashed, ImageSkipped) and isinstance(stalled, ImageSkipped)
    assert (crashed.category, crashed.reason) == ("crashed", "crashed the video decoder")
    assert (stalled.category, stalled.reason) == ("stalled", "the video decoder stopped responding")
    assert crashed.transient and stalled.transient
    done = object()
    assert videos._as_skipped(done) is done
