"""Decoding one photo, whatever it holds.

Photos are recognised by their first bytes (:func:`sniff_format`), never by
their name.  A photo that cannot be used raises an :class:`ImageSkipped` with a
short reason, so that one bad file never stops a run.

Decoded photos are upright (EXIF orientation applied) 8-bit RGB ``numpy``
arrays.  Very large photos are decoded at a reduced size so memory stays
bounded; :class:`LoadedImage` carries the factor that maps boxes back to the
original's pixels.
"""

from __future__ import annotations

import math
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from ..files import open_regular
from .skips import ImageSkipped, skipped_for_oserror

try:  # phone photos; optional so a minimal install still runs
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - exercised only without pillow-heif
    pillow_heif = None

# A photo is kept at most this large (a 24 MP camera photo stays whole); bigger
# ones are reduced while (JPEG) or right after (other formats) decoding.
MAX_DECODE_PIXELS = 24_000_000
# A format that can only be decoded whole (PNG, TIFF, WEBP ...) is refused when that takes more
# than this: 128 MP of RGB (Pillow holds 4 bytes a pixel), 512 MP of grayscale.  With it, decoding
# adds at most ~0.65 GB to a worker (README, "Very large photos").
MAX_WHOLE_DECODE_BYTES = 512 * 2**20
# Above this, even a JPEG is refused (Pillow's own decompression-bomb guard).
MAX_SOURCE_PIXELS = 250_000_000
Image.MAX_IMAGE_PIXELS = MAX_SOURCE_PIXELS // 2  # Pillow refuses at 2x this

# First bytes of each format we decode.  HEIF-family files are ISO-BMFF boxes.
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif")
IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .webp .bmp .dib .tif .tiff .gif .heic .heif .avif".split()
)


@dataclass(frozen=True)
class LoadedImage:
    """An upright RGB photo.

    ``rgb`` may be a reduced copy of a very large original; multiply a box in
    ``rgb`` pixels by ``1 / scale`` to get original pixels.
    """

    rgb: np.ndarray
    scale: float = 1.0
    original_size: tuple[int, int] = (0, 0)  # (width, height), upright


def sniff_format(head: bytes) -> str | None:
    """Name the image format from a file's first 16+ bytes, or ``None``."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if head.startswith(b"BM"):
        return "BMP"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "HEIF"
    return None


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    """Any Pillow mode -> 8-bit RGB, scaling 16/32-bit data rather than clipping it."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = values.max() if values.size else 0.0
        if top > 255:  # 16-bit (or wider) data: rescale its full range to 8 bits
            values = values * (255.0 / (65535.0 if top <= 65535 else top))
        gray = np.clip(values, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.stack([gray] * 3, axis=-1))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Put transparent areas on white, as a viewer would show them.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


# EXIF orientation -> the transpose that shows the photo upright (as ImageOps.exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def decoded_bytes(mode: str, width: int, height: int) -> int:
    """Bytes Pillow holds for a ``mode`` picture of ``width`` x ``height`` (RGB takes 4 a pixel)."""
    per_pixel = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4
    return per_pixel * width * height


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))
    except (ValueError, TypeError, SyntaxError, OSError, struct.error):  # a damaged EXIF block: as stored
        return 1


def _reduced(image: Image.Image, max_pixels: int) -> Image.Image:
    """``image`` brought to at most ``max_pixels`` by an integer factor (never a second full-size copy)."""
    factor = math.ceil((image.width * image.height / max_pixels) ** 0.5)
    if image.mode in ("1", "P") or image.mode.startswith("I;16"):  # modes reduce() refuses
        return image.resize((max(1, image.width // factor), max(1, image.height // factor)), Image.Resampling.NEAREST)
    return image.reduce(factor)


def load_image(path: str, max_pixels: int = MAX_DECODE_PIXELS) -> LoadedImage:
    """Decode the photo at ``path`` into an upright 8-bit RGB array.

    Raises :class:`ImageSkipped` with a one-line reason when it can't.
    Photos over ``max_pixels`` come back reduced, with ``scale`` < 1.
    Only a regular file is opened (never a FIFO or a device).  A JPEG is
    decoded reduced; a format that can only be decoded whole is refused when
    that would take over :data:`MAX_WHOLE_DECODE_BYTES`.
    """
    # A truncated photo is reported, not half-read.  Set on every call because
    # importing face_recognition turns this global on.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with open_regular(path) as handle, Image.open(handle) as image:
                width, height = image.size
                if image.format == "JPEG" and width * height > max_pixels:
                    # JPEG can decode at 1/2, 1/4, 1/8 size without ever
                    # holding the full-size pixels.
                    factor = (max_pixels / (width * height)) ** 0.5
                    image.draft("RGB", (int(width * factor), int(height * factor)))
                _check_whole_decode(image)
                orientation = _orientation(image)
                image.seek(0)  # GIF/TIFF/HEIF: the first frame
                image.load()
                picture = image
    except Image.DecompressionBombError:
        too_large = f"too large to decode safely (over {MAX_SOURCE_PIXELS // 1_000_000} megapixels)"
        raise ImageSkipped(too_large, "too large") from None
    except UnidentifiedImageError:
        raise ImageSkipped("not an image (unrecognised content)", "not an image") from None
    except MemoryError:
        raise ImageSkipped("out of memory while decoding", "out of memory", transient=True) from None
    except OSError as error:
        if error.errno is not None:
            raise skipped_for_oserror(error) from None
        raise ImageSkipped(f"corrupt or truncated image: {error}", "corrupt") from None
    except (ValueError, SyntaxError, EOFError, struct.error) as error:
        raise ImageSkipped(f"corrupt image: {type(error).__name__}: {error}", "corrupt") from None

    turned = orientation in (5, 6, 7, 8)  # a quarter turn swaps the sides
    original_w, original_h = (height, width) if turned else (width, height)
    if picture.width * picture.height > max_pixels:
        picture = _reduced(picture, max_pixels)  # before turning it: the turn then copies the small picture
    if orientation in _UPRIGHT:
        picture = picture.transpose(_UPRIGHT[orientation])
    rgb = _to_rgb_array(picture)
    scale = rgb.shape[1] / original_w if original_w else 1.0
    return LoadedImage(rgb=rgb, scale=scale, original_size=(original_w, original_h))


def _check_whole_decode(image: Image.Image) -> None:
    """Refuse (:class:`ImageSkipped`) a picture whose full-size decode would take over :data:`MAX_WHOLE_DECODE_BYTES`.

    Called after ``draft()``: a large JPEG's reduced decode passes; PNG, TIFF,
    WEBP ... can only be decoded whole, and one of 15000 x 15000 RGB would need 858 MB.
    """
    width, height = image.size  # after draft(): what will really be decoded
    needed = decoded_bytes(image.mode, width, height)
    if needed > MAX_WHOLE_DECODE_BYTES:
        raise ImageSkipped(
            f"too large to decode safely ({width}x{height} {image.format}: {needed / 2**20:,.0f} MB to decode whole, "
            f"at most {MAX_WHOLE_DECODE_BYTES // 2**20} MB; a JPEG of that size would be decoded reduced)", "too large")
