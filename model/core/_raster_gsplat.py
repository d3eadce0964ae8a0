"""CUDA backend: gsplat.rasterization with the same rules as model/core/_raster_cpu.py.

Imported only when used (importing torch and gsplat is slow and needs no GPU, but rendering does).
"""
from __future__ import annotations

import numpy as np

from model.core._raster_cpu import EPS2D, NEAR_PLANE


def rasterize(means, quats, scales, opacities, colors, K, world_to_cam, width: int, height: int):
    """Same signature and outputs as model.core._raster_cpu.rasterize: (rgb [H,W,3] premultiplied with no
    background, alpha [H,W], expected depth [H,W] metres, 0 where alpha is 0), float32 numpy."""
    import torch
    if not torch.cuda.is_available():
        raise RuntimeError("backend 'gsplat' needs a CUDA GPU and none is available; use backend='cpu'")
    from gsplat import rasterization
    from gsplat.cuda._backend import _C
    if _C is None:
        raise RuntimeError("gsplat's CUDA extension is not available (gsplat from PyPI compiles it on first use and "
                           "needs the CUDA toolkit's nvcc); use backend='cpu'")

    dev = torch.device("cuda")
    t = lambda a: torch.as_tensor(np.ascontiguousarray(a, dtype=np.float32), device=dev)  # noqa: E731
    Kg = np.array(K, dtype=np.float64)
    # gsplat samples pixel j at j + 0.5; this project's pixel centres are integers (model/core/camera.py)
    Kg[0, 2] += 0.5
    Kg[1, 2] += 0.5
    with torch.no_grad():
        out, alphas, _ = rasterization(
            means=t(means), quats=t(quats), scales=t(scales), opacities=t(opacities), colors=t(colors),
            viewmats=t(world_to_cam)[None], Ks=t(Kg)[None], width=int(width), height=int(height),
            near_plane=NEAR_PLANE, eps2d=EPS2D, sh_degree=None, packed=False, backgrounds=None,
            render_mode="RGB+ED", rasterize_mode="classic")
    out = out[0].float().cpu().numpy()  # [H,W,4]: rgb, expected depth (already divided by alpha)
    alpha = alphas[0, ..., 0].float().cpu().numpy()
    return np.ascontiguousarray(out[..., :3]), alpha, np.ascontiguousarray(out[..., 3])
