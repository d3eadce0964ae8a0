"""Render 3D Gaussians to an image: one entry point, two backends with the same rules.

- "cpu": numba tile rasterizer (model/core/_raster_cpu.py), what runs here and in the Space;
- "gsplat": gsplat's CUDA rasterizer (model/core/_raster_gsplat.py), used when a GPU is present.

Both follow gsplat 1.5.3 "classic" rasterization (EWA splatting, +0.3 px² blur, near plane 0.01 m,
alpha = min(0.999, o·exp(-σ)), alpha < 1/255 skipped, a pixel stops when T·(1-alpha) <= 1e-4).
Colours are evaluated from SH per Gaussian for the camera centre before rasterizing.

HEADSPLAT_BACKEND=cpu|gsplat (environment) forces what backend="auto" picks, e.g. to evaluate the same
portrait on both backends (benchmarks/gpu_check.py); unset, empty or "auto" keeps the automatic choice.
Explicit backend= arguments are never overridden.
"""
from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass

import numpy as np

from model.core.camera import Camera
from model.core.gaussians import Gaussians

BACKENDS = ("cpu", "gsplat")


@dataclass
class RenderResult:
    rgb: np.ndarray  # [H,W,3] float32 in [0, 1], composited over the background
    alpha: np.ndarray  # [H,W] float32 in [0, 1], 1 - final transmittance
    depth: np.ndarray  # [H,W] float32 metres: expected camera-frame z Σ w_i z_i / alpha; 0 where alpha is 0


@functools.lru_cache(maxsize=1)
def _gsplat_usable() -> bool:
    """True when torch sees a CUDA GPU and gsplat's CUDA extension loads (gsplat from PyPI compiles it
    with nvcc on first use). Without an NVIDIA driver (Linux, or WSL's /dev/dxg) it answers without
    importing torch, which takes seconds."""
    if "torch" not in sys.modules and not any(map(os.path.exists, ("/proc/driver/nvidia/version", "/dev/dxg"))):
        return False
    try:
        import torch
        if not torch.cuda.is_available():
            return False
        from gsplat.cuda._backend import _C
    except Exception:  # no usable gsplat: "auto" renders on the CPU, which follows the same rules
        return False
    return _C is not None


def _auto_backend() -> str:
    """What backend="auto" renders with: HEADSPLAT_BACKEND when set (cpu | gsplat; a forced gsplat without
    CUDA fails in the gsplat backend with its own message), else gsplat when usable, else cpu."""
    forced = os.environ.get("HEADSPLAT_BACKEND", "").strip().lower()
    if forced in ("", "auto"):
        return "gsplat" if _gsplat_usable() else "cpu"
    if forced not in BACKENDS:
        raise ValueError(f"HEADSPLAT_BACKEND={forced!r}: choose 'auto' or one of {BACKENDS}")
    return forced


def available_backends() -> list[str]:
    """Backends that can run on this machine, preferred first."""
    return (["gsplat"] if _gsplat_usable() else []) + ["cpu"]


def render(gaussians: Gaussians, camera: Camera, background=(0.0, 0.0, 0.0), backend: str = "auto") -> RenderResult:
    """Render `gaussians` seen by `camera`.

    background: an RGB triple in [0, 1] or an [H,W,3] image; rgb = Σ w_i c_i + (1 - alpha)·background.
    backend: "auto" (gsplat when CUDA and gsplat are usable, else cpu), "cpu" or "gsplat".
    """
    h, w = camera.height, camera.width
    bg = np.asarray(background, dtype=np.float32)
    if bg.shape not in ((3,), (h, w, 3)):
        raise ValueError(f"background must be an RGB triple or [{h},{w},3], got shape {bg.shape}")
    if backend == "auto":
        backend = _auto_backend()
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose 'auto' or one of {BACKENDS}")
    K = camera.K
    if K[0, 1] != 0 or K[1, 0] != 0 or not np.array_equal(K[2], [0.0, 0.0, 1.0]):
        raise ValueError(f"the rasterizers take a pinhole K without skew, got {K.tolist()}")

    if len(gaussians) == 0:
        return RenderResult(np.broadcast_to(bg, (h, w, 3)).astype(np.float32).copy(),
                            np.zeros((h, w), np.float32), np.zeros((h, w), np.float32))
    colors = gaussians.colors(camera.position).astype(np.float32)
    args = (gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities, colors,
            camera.K, camera.world_to_cam, w, h)
    if backend == "gsplat":  # composited and clipped on the GPU by the same rule as below
        from model.core._raster_gsplat import rasterize
        return RenderResult(*rasterize(*args, background=bg))
    from model.core._raster_cpu import rasterize
    rgb, alpha, depth = rasterize(*args)
    # rgb is premultiplied and has no background; gsplat composites the same way (pix + T·bg)
    rgb = rgb + (1.0 - alpha)[..., None] * bg
    # SH colours are clamped at 0 only (3DGS/gsplat), so a sum can exceed 1: clip the image, not the maths
    return RenderResult(np.clip(rgb, 0.0, 1.0, out=rgb), alpha, depth)


def compositing_weights(gaussians: Gaussians, camera: Camera, select: np.ndarray | None = None,
                        min_weight: float = 0.0):
    """The image as a linear function of the Gaussians' colours: sparse A [H·W, N] (scipy CSR) with
    premultiplied rgb.reshape(-1, 3) = A @ colours [N,3], for the pixels where select [H,W] is true
    (all by default) and weights >= min_weight (all by default; A is then exact to float32 rounding).
    Same rules as the CPU backend, which computes it (no rasterizer API exposes these weights).
    Used to fit colours to a photo."""
    import scipy.sparse as sp

    from model.core._raster_cpu import compositing_weights as weights
    h, w = camera.height, camera.width
    if select is not None and np.shape(select) != (h, w):
        raise ValueError(f"select must be [{h},{w}], got shape {np.shape(select)}")
    indptr, gid, wgt = weights(gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities, camera.K,
                               camera.world_to_cam, w, h, select, min_weight)
    return sp.csr_matrix((wgt, gid, indptr), shape=(h * w, len(gaussians)))
