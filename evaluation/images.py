"""Input guards shared by every metric: images are RGB [H,W,3] floats in [0, 1] (or uint8 where a
detector wants bytes), masks are [H,W] weights in [0, 1]. Torch tensors are accepted and detached."""
from __future__ import annotations

import numpy as np

RANGE_TOL = 1e-6


def check_image(x, name: str = "image") -> np.ndarray:
    """Validate an RGB image [H,W,3] float in [0,1] (tolerance 1e-6); return it as float64 clipped to [0,1]."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"{name}: expected an RGB image of shape [H, W, 3], got shape {x.shape}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name}: empty image {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name}: expected a float image in [0, 1], got dtype {x.dtype} "
                         "(convert uint8 images with img / 255.0)")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -RANGE_TOL or hi > 1 + RANGE_TOL:
        raise ValueError(f"{name}: values must lie in [0, 1], got [{lo:.6g}, {hi:.6g}]")
    return np.clip(x.astype(np.float64), 0.0, 1.0)


def check_mask(mask, shape: tuple[int, int], name: str = "mask") -> np.ndarray:
    """Validate a mask [H,W] (bool, or float weights in [0,1]) for images of `shape`; return float64 weights."""
    if hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[..., 0]
    if m.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)} (the image's [H, W]), got {m.shape}")
    if m.dtype != bool and not np.issubdtype(m.dtype, np.floating):
        raise ValueError(f"{name}: expected bool or float weights in [0, 1], got dtype {m.dtype}")
    m = m.astype(np.float64)
    if not np.all(np.isfinite(m)) or m.min() < -RANGE_TOL or m.max() > 1 + RANGE_TOL:
        raise ValueError(f"{name}: weights must be finite and in [0, 1]")
    m = np.clip(m, 0.0, 1.0)
    if m.sum() <= 0:
        raise ValueError(f"{name}: the mask is empty (no pixel to average over)")
    return m


def as_uint8(image) -> np.ndarray:
    """RGB [H,W,3] uint8, or float in [0,1] -> uint8 (float range checked by check_image)."""
    a = np.asarray(image)
    if a.dtype == np.uint8:
        if a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f"expected an RGB image [H, W, 3], got shape {a.shape}")
        return np.ascontiguousarray(a)
    return np.ascontiguousarray(np.round(check_image(a, "image") * 255).astype(np.uint8))
