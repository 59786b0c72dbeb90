"""One image file to pixels: the extensions read, a cheap sniff, decoding, resizing.

    pixels = load_image("cat.jpg", (224, 224), resize_mode="center_crop")
    pixels = load_image(uploaded_bytes, (224, 224), max_pixels=64_000_000)   # an upload, bounded

Pillow decodes every format; odd modes (greyscale, palette, CMYK, 16-bit,
transparent) become 8-bit RGB, and a file that cannot be used raises
`BadImage` with a reason in a few words.
"""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import numpy as np

from mobilenets.env import first_line
from mobilenets.errors import MobilenetsError

# The one list of image files, for folders, face crops, prediction and calibration alike.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
RESIZE_MODES = ("stretch", "center_crop")
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


class BadImage(MobilenetsError):
    """A file that cannot be used as an image; `reason` says why in a few words."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class ImageTooLarge(BadImage):
    """An image with more pixels than may be decoded (a decompression bomb, or just too big)."""


def load_image(path: "str | os.PathLike | bytes", size=None, resize_mode: str = "stretch",
               max_pixels: int | None = None) -> np.ndarray:
    """Decode an image file (or the bytes of one) to an RGB uint8 array, whatever its format.

    Greyscale, palette, CMYK and 16-bit images become 8-bit RGB (16-bit
    values are scaled, not clipped); transparent images are composited on
    white; JPEG EXIF orientation is applied; GIF/WebP give their first frame.

    Args:
        path: the image file, or its contents as bytes (an upload).
        size: `(height, width)` (or one int: square) to resize to with
            bilinear filtering; `None` keeps the image's own size.
        resize_mode: "stretch" (resize to exactly `size`) or "center_crop"
            (crop the largest centred box of the target aspect ratio first).
        max_pixels: refuse images with more pixels than this, read from the
            header before anything is decoded (a decompression bomb: a small
            file that would decode to gigabytes). Default: Pillow's own limit.

    Returns:
        An `(H, W, 3)` uint8 array.

    Raises:
        BadImage: the file is empty, not an image, truncated or corrupt.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    size = _size(size)
    _check_resize_mode(resize_mode)
    data = bytes(path) if isinstance(path, (bytes, bytearray, memoryview)) else None
    path = Path("upload") if data is not None else Path(path)
    try:
        if (len(data) if data is not None else path.stat().st_size) == 0:
            raise BadImage(path, "empty file (0 bytes)")
        with Image.open(io.BytesIO(data) if data is not None else path) as im:
            if max_pixels and im.width * im.height > max_pixels:
                raise ImageTooLarge(path, f"too large to decode safely: {im.width}x{im.height} pixels, "
                                          f"over the limit of {max_pixels:,}")
            if size is not None:
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when the target
                # is much smaller; the draft stays at least `size` each way,
                # in either orientation.
                side = max(size)
                im.draft(None, (side, side))
            im.load()
            im = ImageOps.exif_transpose(im)
            im = _to_rgb(im)
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage(path, "not an image (unrecognised file contents)") from None
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(path, f"too large to decode safely: {first_line(e)}") from None
    except FileNotFoundError:
        if path.is_symlink():
            raise BadImage(path, f"broken symbolic link (to {os.readlink(path)}, which does not exist)") from None
        raise BadImage(path, "file not found") from None
    except PermissionError:
        raise BadImage(path, "permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        if isinstance(e, OSError) and e.errno == errno.ELOOP:
            raise BadImage(path, "symbolic link loop") from None
        message = first_line(e)
        if "truncated" in message.lower():
            raise BadImage(path, "truncated image data") from None
        raise BadImage(path, f"corrupt image: {message}") from None
    if size is not None:
        im = _resize(im, size, resize_mode)
    return np.array(im, dtype=np.uint8)


def _to_rgb(im):
    """Any Pillow image as an 8-bit RGB Pillow image."""
    from PIL import Image

    mode = im.mode
    if mode == "RGB":
        return im
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(im, dtype=np.float64)
        top = values.max(initial=0)
        if mode.startswith("I;16") or 255 < top <= 65535:
            top = 65535
        elif top <= 255:
            top = 255
        grey = np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def _resize(im, size: tuple[int, int], resize_mode: str):
    from PIL import Image

    h, w = size
    if resize_mode == "center_crop":
        # Crop first, so no pixel from outside the box bleeds in.
        iw, ih = im.size
        cw, ch = min(iw, round(ih * w / h)), min(ih, round(iw * h / w))
        left, top = (iw - cw) // 2, (ih - ch) // 2
        im = im.crop((left, top, left + cw, top + ch))
    if im.size == (w, h):
        return im
    return im.resize((w, h), Image.Resampling.BILINEAR)


def _sniff(path: Path) -> str | None:
    """Why `path` is not an image, from its first bytes; None if it looks fine."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        return f"cannot read: {e.strerror or e}"
    if not head:
        return "empty file (0 bytes)"
    if head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return None
    # Not one of the usual signatures: ask Pillow (a TIFF named .png is fine).
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path):
            return None
    except UnidentifiedImageError:
        return "not an image (unrecognised file contents)"
    except Exception as e:  # noqa: BLE001 - any failure here means unusable
        return f"corrupt image: {first_line(e)}"


def _list_images(folder: Path) -> tuple[list[Path], int]:
    """Image files under `folder` (recursive, sorted, hidden skipped), and how many other files."""
    images, others = [], 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            if name.lower().endswith(IMAGE_EXTENSIONS):
                images.append(Path(dirpath) / name)
            else:
                others += 1
    return images, others


def _subdirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _loose_images(folder: Path) -> int:
    return sum(1 for f in folder.iterdir() if f.is_file() and f.name.lower().endswith(IMAGE_EXTENSIONS))


def resize_images(images: np.ndarray, size, resize_mode: str = "stretch") -> np.ndarray:
    """Resize a uint8 `(N, H, W, 3)` batch with Pillow's bilinear filter.

    Args:
        images: the batch.
        size: `(height, width)` or one int.
        resize_mode: "stretch" or "center_crop".
    """
    from PIL import Image

    size = _size(size)
    out = np.empty((len(images), *size, 3), np.uint8)
    for i, image in enumerate(images):
        out[i] = np.asarray(_resize(Image.fromarray(image), size, resize_mode))
    return out


def _size(image_size) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if isinstance(image_size, (int, np.integer)):
        image_size = (image_size, image_size)
    try:
        h, w = (int(v) for v in image_size)
    except (TypeError, ValueError):
        h = w = 0
    if h < 1 or w < 1:
        raise MobilenetsError(f"image_size must be an int or (height, width). Received image_size={image_size!r}")
    return h, w


def _check_resize_mode(resize_mode: str) -> None:
    if resize_mode not in RESIZE_MODES:
        raise MobilenetsError(f"resize_mode must be one of {', '.join(RESIZE_MODES)}. "
                              f"Received resize_mode={resize_mode!r}")
