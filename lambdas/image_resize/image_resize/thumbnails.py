"""Thumbnail generation: pure Pillow, no AWS.

``make_thumbnails`` turns the bytes of one JPEG, PNG or WebP image into one thumbnail per
bounding-box size, in the input's format, EXIF orientation applied, metadata stripped.
Content that can never be turned into thumbnails raises a ``RejectedImage`` subclass:
retrying cannot fix it.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Iterable
from typing import Any, NamedTuple

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

JPEG_QUALITY = 85
WEBP_QUALITY = 85


class _OutputFormat(NamedTuple):
    pillow_format: str
    content_type: str
    extension: str


# Detected format (from the bytes, never the key's extension) -> output format.
# MPO is how Pillow opens JPEGs with a multi-picture index (many phones and cameras).
_OUTPUT_FORMATS: dict[str, _OutputFormat] = {
    "JPEG": _OutputFormat("JPEG", "image/jpeg", "jpg"),
    "MPO": _OutputFormat("JPEG", "image/jpeg", "jpg"),
    "PNG": _OutputFormat("PNG", "image/png", "png"),
    "WEBP": _OutputFormat("WEBP", "image/webp", "webp"),
}
_ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")  # the Pillow plugins tried when opening

# What Pillow raises while decoding broken data (truncated files, bad chunks, bad CRCs...).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


class RejectedImage(Exception):
    """The content cannot be made into thumbnails; ``reason`` is a short, stable label."""

    reason = "rejected"

    def __init__(self, detail: str, *, reason: str | None = None) -> None:
        super().__init__(detail)
        if reason is not None:
            self.reason = reason


class InvalidImage(RejectedImage):
    """Zero bytes, truncated or corrupt data, or not an image at all."""

    reason = "invalid_image"


class UnsupportedImage(RejectedImage):
    """A real image, in a format other than JPEG, PNG or WebP."""

    reason = "unsupported_format"


class ImageTooLarge(RejectedImage):
    """Too many bytes or too many pixels (image-bomb guard)."""

    reason = "too_large"


class Thumbnail(NamedTuple):
    size: int  # the bounding box it was made for
    data: bytes
    content_type: str
    extension: str
    width: int
    height: int


def make_thumbnails(data: bytes, sizes: Iterable[int], *, max_pixels: int) -> list[Thumbnail]:
    """One thumbnail per size (ascending), each fitting in a size x size box.

    Aspect ratio is kept and images are never upscaled; animated images give their first
    frame. Raises InvalidImage, UnsupportedImage or ImageTooLarge (all RejectedImage).
    """
    boxes = sorted(set(sizes))
    if not boxes:
        raise ValueError("at least one thumbnail size is required")
    if not data:
        raise InvalidImage("the object is empty (0 bytes)", reason="empty")

    image = _open(data)
    output = _OUTPUT_FORMATS[image.format or ""]
    width, height = image.size
    # Image.open only parsed the header: refuse before anything is decoded.
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"{width}x{height} is {width * height} pixels, more than the {max_pixels} allowed",
            reason="too_many_pixels",
        )

    base = _decode(image, largest_box=boxes[-1])
    base = _normalise_mode(base, output.pillow_format)
    icc_profile = image.info.get("icc_profile")

    thumbnails = []
    for box in boxes:
        thumb = base.copy()
        thumb.thumbnail((box, box), Image.Resampling.LANCZOS)  # never enlarges
        thumbnails.append(
            Thumbnail(
                size=box,
                data=_encode(thumb, output.pillow_format, icc_profile),
                content_type=output.content_type,
                extension=output.extension,
                width=thumb.width,
                height=thumb.height,
            )
        )
    return thumbnails


def _open(data: bytes) -> ImageFile.ImageFile:
    """Parse the header only (Image.open is lazy) and identify the format from the bytes."""
    try:
        with warnings.catch_warnings():
            # Pillow warns above Image.MAX_IMAGE_PIXELS and raises above twice that.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=_ACCEPTED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(str(exc), reason="too_many_pixels") from exc
    except UnidentifiedImageError as exc:
        raise _unidentified(data) from exc
    except _DECODE_ERRORS as exc:
        raise InvalidImage(f"corrupt image header: {exc}", reason="corrupt") from exc
    if image.format not in _OUTPUT_FORMATS:  # defensive: formats= already restricts this
        raise UnsupportedImage(f"{image.format} images are not supported")
    return image


def _unidentified(data: bytes) -> RejectedImage:
    """Tell a real image in another format (GIF, TIFF, HEIC...) from data that is no image."""
    if data[4:8] == b"ftyp":  # ISO-BMFF container: HEIC/HEIF/AVIF from phones
        return UnsupportedImage("HEIC/HEIF/AVIF images are not supported")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            other = Image.open(io.BytesIO(data))  # header only, never decoded
    except Exception:  # anything at all: it is not an image Pillow knows
        return InvalidImage("the object is not an image", reason="not_an_image")
    return UnsupportedImage(
        f"{other.format} images are not supported (only JPEG, PNG and WebP)",
    )


def _decode(image: ImageFile.ImageFile, *, largest_box: int) -> Image.Image:
    """Decode the first frame and apply the EXIF orientation."""
    try:
        if getattr(image, "is_animated", False):
            image.seek(0)
        # JPEG only (no-op otherwise): let libjpeg decode at 1/2, 1/4 or 1/8 scale while
        # keeping at least twice the largest box, which saves most of the decoding work
        # and memory on camera-sized photos. The box is square, so rotation does not matter.
        image.draft(None, (largest_box * 2, largest_box * 2))
        image.load()
    except _DECODE_ERRORS as exc:
        raise InvalidImage(
            f"the image data is truncated or corrupt: {exc}", reason="corrupt"
        ) from exc
    try:
        # A copy without the orientation tag, the frame loaded above only.
        return ImageOps.exif_transpose(image)
    except (*_DECODE_ERRORS, KeyError, TypeError):
        # Malformed EXIF: the pixels are fine, keep the image as stored.
        return image.copy()


def _normalise_mode(image: Image.Image, pillow_format: str) -> Image.Image:
    """Give the image a mode that resizes well and that the output format can store."""
    if image.mode in ("P", "PA", "1", "L", "RGB") and image.has_transparency_data:
        image = image.convert("RGBA" if image.mode in ("P", "PA", "RGB") else "LA")
    elif image.mode in ("P", "PA"):
        image = image.convert("RGB")  # resizing palette images would use nearest-neighbour
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGB")
    elif image.mode in ("La", "RGBa"):
        image = image.convert("LA" if image.mode == "La" else "RGBA")
    elif image.mode.startswith("I;16"):
        # 16-bit greyscale: scale to 8 bits (a plain convert would clip), which resizes
        # with every filter and is plenty for a thumbnail.
        image = image.convert("I").point(lambda value: value / 257).convert("L")
    elif image.mode in ("I", "F"):
        image = image.convert("L")

    if pillow_format == "JPEG" and image.mode not in ("L", "RGB"):
        image = _flatten(image)
    return image


def _flatten(image: Image.Image) -> Image.Image:
    """JPEG has no alpha: composite over white, then RGB."""
    if "A" not in image.getbands():
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _encode(image: Image.Image, pillow_format: str, icc_profile: bytes | None) -> bytes:
    # Only pixels and the colour profile are written: EXIF (GPS, camera, orientation), XMP
    # and PNG text chunks are dropped because nothing else is passed to save().
    options: dict[str, Any] = {"exif": b""}
    if icc_profile:
        options["icc_profile"] = icc_profile  # colour, not metadata: wide-gamut photos need it
    if pillow_format == "JPEG":
        options.update(quality=JPEG_QUALITY, optimize=True)
    elif pillow_format == "PNG":
        options.update(optimize=True)
    elif pillow_format == "WEBP":
        options.update(quality=WEBP_QUALITY)
    buffer = io.BytesIO()
    image.save(buffer, format=pillow_format, **options)
    return buffer.getvalue()
