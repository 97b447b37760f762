"""Turn whatever a user uploads into a safe RGB (or L) PIL image, or a clear `UploadError` message.

Every upload path of every tab goes through `read_image`: corrupt, empty, non-image, enormous (decompression
bombs are refused from the header, before any pixels are decoded), RGBA, palette, 16-bit and CMYK files all end
either as an ordinary 8-bit image or as one sentence that tells the user what to do.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000  # ~ 6300×6300: larger uploads are refused before decoding
MAX_BYTES = 40 * 1024 * 1024  # every upload, also the server's limit: an uncompressed float32 BraTS volume (35.7 MB) fits


class UploadError(ValueError):
    """Raised with a message meant for the user."""


def _to_8bit(image: Image.Image) -> Image.Image:
    """16/32-bit gray and float images → 8-bit L, stretched over their own range."""
    array = np.asarray(image, dtype=np.float64)
    low, high = float(array.min()), float(array.max())
    scaled = np.zeros_like(array) if high <= low else (array - low) / (high - low) * 255.0
    return Image.fromarray(scaled.round().astype(np.uint8), mode="L")


def normalise_mode(image: Image.Image, mode: str = "RGB") -> Image.Image:
    """Any PIL mode → `mode` ('RGB' or 'L'); transparency is composited onto black (MRI/MNIST backgrounds)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        image = _to_8bit(image)
    if mode in ("RGBA", "LA"):
        return image.convert(mode)  # the caller wants the alpha channel (e.g. sketch strokes)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert(mode)


def read_image(source, mode: str = "RGB", max_pixels: int = MAX_PIXELS) -> Image.Image:
    """A path, bytes, numpy array or PIL image → a fully decoded image in `mode`, or UploadError."""
    if source is None:
        raise UploadError("No image given: upload one, draw one or pick an example.")
    if isinstance(source, Image.Image):
        return normalise_mode(source, mode)
    if isinstance(source, np.ndarray):
        if source.size == 0:
            raise UploadError("The image is empty.")
        if source.dtype != np.uint8:
            source = np.clip(source, 0, 255).astype(np.uint8)
        return normalise_mode(Image.fromarray(source), mode)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise UploadError(f"File not found: {path.name}")
        size = path.stat().st_size
        if size == 0:
            raise UploadError(f"{path.name} is empty (0 bytes). Upload an image file (PNG or JPEG).")
        if size > MAX_BYTES:
            raise UploadError(f"{path.name} is {size / 2**20:.0f} MB; the limit is {MAX_BYTES // 2**20} MB.")
        data, name = path.read_bytes(), path.name
    elif isinstance(source, (bytes, bytearray)):
        data, name = bytes(source), "upload"
        if not data:
            raise UploadError("The upload is empty (0 bytes). Upload an image file (PNG or JPEG).")
    else:
        raise UploadError(f"Cannot read an image from a {type(source).__name__}.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise UploadError(f"{name} is {width}×{height} pixels; the limit is {max_pixels / 1e6:.0f} megapixels. Resize it first.")
            image = ImageOps.exif_transpose(image)
            image.load()
    except UploadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise UploadError(f"{name} is larger than {max_pixels / 1e6:.0f} megapixels. Resize it first.") from error
    except UnidentifiedImageError as error:
        raise UploadError(f"{name} is not an image this demo can read (PNG, JPEG, BMP, WebP, TIFF): {type(error).__name__}.") from error
    except (OSError, SyntaxError, ValueError) as error:  # truncated or corrupt data inside a valid header
        raise UploadError(f"{name} looks corrupt or truncated and could not be decoded ({error}).") from error
    return normalise_mode(image, mode)



class _RawImage(gr.Image):
    """A gr.Image whose server side hands the uploaded file to the demo undecoded. (Gradio's own preprocessing
    opens it with PIL first and answers corrupt, empty or enormous files with a generic "Error".) No __init__ of
    its own: Gradio reads the component's props from the constructor's signature."""

    is_template = True  # the browser renders the parent's ("image") component

    def preprocess(self, payload):
        if payload is None or (payload.url or "").startswith("data:"):
            return super().preprocess(payload)  # webcam / clipboard data URLs: small, made by the browser
        return payload.path


def image_upload(**kwargs) -> gr.Image:
    """An image input that looks like gr.Image and gives the demo a file path for `read_image` to check."""
    return _RawImage(type="filepath", image_mode=None, **kwargs)
