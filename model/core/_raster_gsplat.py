"""CUDA backend: gsplat.rasterization with the same rules as model/core/_raster_cpu.py.

Imported only when used (importing torch and gsplat is slow and needs no GPU, but rendering does).
"""
from __future__ import annotations

import numpy as np

from model.core._raster_cpu import EPS2D, NEAR_PLANE


def rasterize(means, quats, scales, opacities, colors, K, world_to_cam, width: int, height: int, background=None):
    """Same signature and outputs as model.core._raster_cpu.rasterize: (rgb [H,W,3] premultiplied with no
    background, alpha [H,W], expected depth [H,W] metres, 0 where alpha is 0), float32 numpy.
    background (an RGB triple or [H,W,3], in [0,1]): rgb comes back composited over it and clipped to
    [0,1] instead, done on the GPU. The host's share is what makes render() slow here, not the kernel (on
    an H200 at 100k Gaussians and 512²: rasterizer 0.6 ms, numpy compositing and copies ~5 ms), so the
    per-Gaussian arrays go up in one transfer and only the final images come down."""
    import torch
    if not torch.cuda.is_available():
        raise RuntimeError("backend 'gsplat' needs a CUDA GPU and none is available; use backend='cpu'")
    from gsplat import rasterization
    from gsplat.cuda._backend import _C
    if _C is None:
        raise RuntimeError("gsplat's CUDA extension is not available (gsplat from PyPI compiles it on first use and "
                           "needs the CUDA toolkit's nvcc); use backend='cpu'")

    dev = torch.device("cuda")
    n = len(means)
    packed = np.empty((n, 14), np.float32)  # means 3, quats 4, scales 3, opacity 1, colour 3
    packed[:, 0:3], packed[:, 3:7], packed[:, 7:10] = means, quats, scales
    packed[:, 10], packed[:, 11:14] = np.reshape(opacities, n), colors
    g = torch.from_numpy(packed).to(dev, non_blocking=False)
    Kg = np.array(K, dtype=np.float32)
    # gsplat samples pixel j at j + 0.5; this project's pixel centres are integers (model/core/camera.py)
    Kg[0, 2] += 0.5
    Kg[1, 2] += 0.5
    cams = torch.from_numpy(np.concatenate([np.asarray(world_to_cam, np.float32).ravel(), Kg.ravel()])).to(dev)
    with torch.no_grad():
        out, alphas, _ = rasterization(
            means=g[:, 0:3], quats=g[:, 3:7], scales=g[:, 7:10], opacities=g[:, 10], colors=g[:, 11:14],
            viewmats=cams[:16].reshape(1, 4, 4), Ks=cams[16:].reshape(1, 3, 3), width=int(width),
            height=int(height), near_plane=NEAR_PLANE, eps2d=EPS2D, sh_degree=None, packed=False,
            backgrounds=None, render_mode="RGB+ED", rasterize_mode="classic")
        out, alpha = out[0], alphas[0, ..., 0]  # [H,W,4]: rgb, expected depth (already divided by alpha)
        rgb = out[..., :3]
        if background is not None:
            bg = torch.as_tensor(np.asarray(background, np.float32), device=dev)
            rgb = (rgb + (1.0 - alpha)[..., None] * bg).clamp_(0.0, 1.0)
        return tuple(x.contiguous().cpu().numpy() for x in (rgb, alpha, out[..., 3]))
