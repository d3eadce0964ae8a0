"""Loading user images: every format problem becomes an InputError with a clear message."""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from model.core.errors import InputError

MAX_PIXELS = 50_000_000  # refuse decompression bombs before decoding
MAX_SIDE = 1024  # larger photos are downscaled: landmarks and texture gain nothing beyond this
MIN_SIDE = 64


def to_float(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float32 in [0, 1]; float input is only cast to float32. The inverse of to_uint8."""
    rgb = np.asarray(rgb)
    return rgb.astype(np.float32) / 255 if rgb.dtype == np.uint8 else rgb.astype(np.float32)


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] (clipped) -> uint8, rounded; uint8 passes through unchanged."""
    rgb = np.asarray(rgb)
    return rgb if rgb.dtype == np.uint8 else (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def pixels_sha256(image: np.ndarray) -> str:
    """Identity of decoded pixels: SHA-256 of the array's dtype, shape and bytes (not of a file's encoding)."""
    a = np.ascontiguousarray(image)
    return hashlib.sha256(f"{a.dtype.str}{a.shape}".encode() + a.tobytes()).hexdigest()


def load_image(source, max_side: int = MAX_SIDE) -> np.ndarray:
    """Path, bytes, PIL image or array -> RGB uint8 [H,W,3].

    Grayscale is replicated to RGB, RGBA/LA is composited on white, CMYK and palette images are
    converted, EXIF orientation is applied, and the long side is capped at `max_side` pixels.
    """
    if isinstance(source, np.ndarray):
        arr = source
        if arr.dtype != np.uint8:
            if np.issubdtype(arr.dtype, np.floating):
                if not np.isfinite(arr).all():
                    raise InputError("image contains NaN or infinite values")
                arr = to_uint8(arr)
            else:
                arr = np.clip(arr, 0, 255).astype(np.uint8)
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
            raise InputError(f"image array must be [H,W], [H,W,3] or [H,W,4], got shape {arr.shape}")
        img = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    elif isinstance(source, Image.Image):
        img = source
    else:
        if isinstance(source, (bytes, bytearray)):
            data = io.BytesIO(source)
            name = "upload"
        else:
            path = Path(source)
            if not path.is_file():
                raise InputError(f"no such image file: {path.name}")
            data, name = path, path.name
        try:
            Image.MAX_IMAGE_PIXELS = MAX_PIXELS
            img = Image.open(data)
            img.load()
        except Image.DecompressionBombError:
            raise InputError(f"{name}: image is too large (over {MAX_PIXELS // 1_000_000} megapixels)") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise InputError(f"{name}: not a readable image ({type(e).__name__})") from None
        img = ImageOps.exif_transpose(img)
    if img.width * img.height > MAX_PIXELS:
        raise InputError(f"image is too large ({img.width}x{img.height})")
    if min(img.width, img.height) < MIN_SIDE:
        raise InputError(f"image is too small ({img.width}x{img.height}); need at least {MIN_SIDE} px per side")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, rgba)
    img = img.convert("RGB")  # L, I;16, CMYK, YCbCr, P -> RGB
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)
    return np.asarray(img, dtype=np.uint8).copy()
