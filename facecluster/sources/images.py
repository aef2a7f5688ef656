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
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .skips import ImageSkipped, skipped_for_oserror

try:  # phone photos; optional so a minimal install still runs
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - exercised only without pillow-heif
    pillow_heif = None

# A photo is kept at most this large (a 24 MP camera photo stays whole); bigger
# ones are reduced while (JPEG) or right after (other formats) decoding, which
# keeps each worker well under 1 GB even for 100+ MP panoramas.
MAX_DECODE_PIXELS = 24_000_000
# Above this, a non-JPEG would need too much memory to decode at all.
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


def load_image(path: str, max_pixels: int = MAX_DECODE_PIXELS) -> LoadedImage:
    """Decode the photo at ``path`` into an upright 8-bit RGB array.

    Raises :class:`ImageSkipped` with a one-line reason when it can't.
    Photos over ``max_pixels`` come back reduced, with ``scale`` < 1.
    """
    # A truncated photo is reported, not half-read.  Set on every call because
    # importing face_recognition turns this global on.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if image.format == "JPEG" and width * height > max_pixels:
                    # JPEG can decode at 1/2, 1/4, 1/8 size without ever
                    # holding the full-size pixels.
                    factor = (max_pixels / (width * height)) ** 0.5
                    image.draft("RGB", (int(width * factor), int(height * factor)))
                image.seek(0)  # GIF/TIFF/HEIF: the first frame
                image.load()
                upright = ImageOps.exif_transpose(image)
                turned = upright.size != image.size  # a quarter turn swaps the sides
    except Image.DecompressionBombError:
        too_large = f"too large to decode safely (over {MAX_SOURCE_PIXELS // 1_000_000} megapixels)"
        raise ImageSkipped(too_large, "too large") from None
    except UnidentifiedImageError:
        raise ImageSkipped("not an image (unrecognised content)", "not an image") from None
    except MemoryError:
        raise ImageSkipped("out of memory while decoding", "out of memory", passing=True) from None
    except OSError as error:
        if error.errno is not None:
            raise skipped_for_oserror(error) from None
        raise ImageSkipped(f"corrupt or truncated image: {error}", "corrupt") from None
    except (ValueError, SyntaxError, EOFError) as error:
        raise ImageSkipped(f"corrupt image: {type(error).__name__}: {error}", "corrupt") from None

    original_w, original_h = (height, width) if turned else (width, height)
    if upright.width * upright.height > max_pixels:
        # An integer box reduction: cheap, and never a second full-size copy.
        upright = upright.reduce(math.ceil((upright.width * upright.height / max_pixels) ** 0.5))
    rgb = _to_rgb_array(upright)
    scale = rgb.shape[1] / original_w if original_w else 1.0
    return LoadedImage(rgb=rgb, scale=scale, original_size=(original_w, original_h))
