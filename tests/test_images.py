"""Finding and decoding photos: formats by content, orientation, modes, size, bad files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import require

from facecluster.sources.folder import list_images
from facecluster.sources.images import MAX_DECODE_PIXELS, load_image, sniff_format
from facecluster.sources.skips import ImageSkipped, display_path


def gradient(width: int = 64, height: int = 48) -> Image.Image:
    """An RGB picture whose every pixel is distinct enough to check orientation."""
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, np.full_like(x, 100)], axis=-1))


@pytest.mark.parametrize(
    "fmt, name",
    [
        ("PNG", "photo.jpg"),  # a PNG named .jpg
        ("WEBP", "photo.jpg"),
        ("BMP", "photo.JPG"),
        ("TIFF", "photo.jpeg"),
        ("GIF", "photo.gif"),
        ("JPEG", "PHOTO.JPEG"),
        ("PNG", "no_extension"),
    ],
)
def test_decodes_by_content_not_extension(tmp_path: Path, fmt: str, name: str) -> None:
    path = tmp_path / name
    gradient().save(path, format=fmt)
    assert list_images(str(tmp_path)).images == [str(path)]
    loaded = load_image(str(path))
    assert loaded.rgb.shape == (48, 64, 3) and loaded.rgb.dtype == np.uint8
    assert loaded.scale == 1.0


def test_heic(tmp_path: Path) -> None:
    pillow_heif = require("pillow_heif")
    path = tmp_path / "phone.HEIC"
    pillow_heif.from_pillow(gradient()).save(str(path), quality=90)
    assert sniff_format(path.read_bytes()[:32]) == "HEIF"
    assert load_image(str(path)).rgb.shape == (48, 64, 3)


def test_gif_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (20, 10), color) for color in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    rgb = load_image(str(path)).rgb
    assert rgb[5, 10, 0] > 200 and rgb[5, 10, 2] < 50  # red: the first frame


def test_exif_orientation_applied(tmp_path: Path) -> None:
    image = gradient(64, 48)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90 degrees clockwise
    path = tmp_path / "sideways.jpg"
    image.save(path, exif=exif, quality=95)
    loaded = load_image(str(path))
    assert loaded.rgb.shape == (64, 48, 3)
    assert loaded.original_size == (48, 64)
    expected = np.asarray(image.transpose(Image.Transpose.ROTATE_270))
    assert np.abs(loaded.rgb.astype(int) - expected.astype(int)).mean() < 6


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "1"])
def test_modes_become_rgb(tmp_path: Path, mode: str) -> None:
    path = tmp_path / f"{mode}.tiff"
    gradient().convert(mode).save(path)
    rgb = load_image(str(path)).rgb
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8


def test_16_bit_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)  # a 16-bit grayscale PNG
    rgb = load_image(str(path)).rgb
    assert rgb.shape == (48, 64, 3)
    assert rgb.max() == 255 and rgb.min() == 0
    assert 110 < rgb[24, 32, 0] < 145  # mid-grey stays mid-grey (clipping would give 255)


def test_rgba_transparent_area_is_white(tmp_path: Path) -> None:
    path = tmp_path / "alpha.png"
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(path)
    assert load_image(str(path)).rgb.min() == 255


def test_huge_jpeg_is_decoded_reduced(tmp_path: Path) -> None:
    import cv2

    width, height = 12_000, 9_000  # 108 megapixels
    path = tmp_path / "huge.jpg"
    cv2.imwrite(str(path), np.zeros((height, width, 3), np.uint8))
    loaded = load_image(str(path))
    assert loaded.rgb.shape[0] * loaded.rgb.shape[1] <= MAX_DECODE_PIXELS
    assert loaded.original_size == (width, height)
    assert loaded.scale == pytest.approx(loaded.rgb.shape[1] / width)


def test_huge_png_is_decoded_reduced(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    Image.new("L", (10_000, 7_000)).save(path)  # 70 megapixels
    loaded = load_image(str(path), max_pixels=4_000_000)
    assert loaded.rgb.shape[0] * loaded.rgb.shape[1] <= 4_000_000
    assert loaded.original_size == (10_000, 7_000)


def bad_folder(root: Path) -> dict[str, str]:
    """A folder of awkward files; returns name -> expected reason fragment."""
    (root / "empty.jpg").write_bytes(b"")
    gradient(400, 300).save(root / "whole.jpg", quality=90)
    data = (root / "whole.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "notes.jpg").write_text("this is text, not a photo\n")
    (root / "x.jpg").mkdir()
    os.symlink(root / "nowhere.jpg", root / "dangling.jpg")
    os.symlink(root / "loop_b.jpg", root / "loop_a.jpg")
    os.symlink(root / "loop_a.jpg", root / "loop_b.jpg")
    os.symlink(root, root / "x.jpg" / "back_up")  # a folder symlink loop
    (root / "readme.txt").write_text("not a photo, not named like one")
    return {
        "empty.jpg": "empty",
        "truncated.jpg": "truncated",
        "notes.jpg": "not an image",
        "dangling.jpg": "broken symlink",
        "loop_a.jpg": "symlink loop",
        "loop_b.jpg": "symlink loop",
        "x.jpg": "a folder, not an image",
    }


def test_listing_sorts_out_bad_files(tmp_path: Path) -> None:
    expected = bad_folder(tmp_path)
    listing = list_images(str(tmp_path))
    skipped = {os.path.basename(path): reason for path, _, reason in listing.skipped}
    categories = {os.path.basename(path): category for path, category, _ in listing.skipped}
    loadable = []
    for path in listing.images:
        try:
            load_image(path)
            loadable.append(os.path.basename(path))
        except ImageSkipped as error:
            skipped[os.path.basename(path)] = str(error)
            categories[os.path.basename(path)] = error.category
    assert loadable == ["whole.jpg"]
    for name, fragment in expected.items():
        assert fragment in skipped[name], (name, skipped.get(name))
    assert categories == {"empty.jpg": "empty", "truncated.jpg": "corrupt", "notes.jpg": "not an image",
                          "dangling.jpg": "missing", "loop_a.jpg": "symlink loop", "loop_b.jpg": "symlink loop",
                          "x.jpg": "folder"}
    assert "(" not in skipped["truncated.jpg"].split(":", 1)[0]  # one level: "corrupt or truncated image: ..."
    assert listing.ignored == 1  # readme.txt, quietly


def test_non_utf8_file_name(tmp_path: Path) -> None:
    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9.jpg")
    gradient().save(os.fsdecode(raw), format="JPEG")
    listing = list_images(str(tmp_path))
    assert len(listing.images) == 1
    assert load_image(listing.images[0]).rgb.shape == (48, 64, 3)
    assert display_path(listing.images[0]).endswith("caf\ufffd.jpg")


def test_unreadable_file_is_skipped_with_reason() -> None:
    """A file the user may not read; as root, the check runs without the
    capabilities that let root read anything (setpriv, from util-linux)."""
    folder = Path(tempfile.mkdtemp(prefix="facecluster-perm-", dir="/tmp"))
    try:
        os.chmod(folder, 0o755)
        path = folder / "secret.jpg"
        gradient().save(path)
        os.chmod(path, 0o000)
        code = (
            "from facecluster.sources.folder import list_images\n"
            "from facecluster.sources.images import load_image\n"
            "from facecluster.sources.skips import ImageSkipped\n"
            f"listing = list_images({str(folder)!r})\n"
            "print(listing.skipped)\n"
        )
        command = [sys.executable, "-c", code]
        if os.geteuid() == 0:
            caps = "-dac_override,-dac_read_search"
            command = ["setpriv", "--bounding-set", caps, "--inh-caps", caps, "--ambient-caps", caps, *command]
        out = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
        assert out.returncode == 0, out.stderr
        assert "permission denied" in out.stdout
    finally:
        shutil.rmtree(folder, ignore_errors=True)
