"""Triangle rasterization with a z-buffer: which triangle covers each pixel, where, at what depth.

Used twice by the method: in UV space (texel -> triangle + barycentrics, the atlas lookup) and in
image space (visibility of the surface in the photo). Written with numba because no installed
library rasterizes triangles with barycentric output on the CPU (OpenCV fills polygons only).
"""
from __future__ import annotations

import numba
import numpy as np

from model.core.camera import Camera


@numba.njit(cache=True)
def _raster(xy, z, width, height, face_id, bary, zbuf):
    for f in range(xy.shape[0]):
        x0, y0 = xy[f, 0, 0], xy[f, 0, 1]
        x1, y1 = xy[f, 1, 0], xy[f, 1, 1]
        x2, y2 = xy[f, 2, 0], xy[f, 2, 1]
        z0, z1, z2 = z[f, 0], z[f, 1], z[f, 2]
        if z0 <= 0 or z1 <= 0 or z2 <= 0:
            continue  # behind the camera (or degenerate): skip rather than clip
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if abs(area) < 1e-12:
            continue
        xmin = max(int(np.ceil(min(x0, x1, x2) - 1e-9)), 0)
        xmax = min(int(np.floor(max(x0, x1, x2) + 1e-9)), width - 1)
        ymin = max(int(np.ceil(min(y0, y1, y2) - 1e-9)), 0)
        ymax = min(int(np.floor(max(y0, y1, y2) + 1e-9)), height - 1)
        inv_area = 1.0 / area
        for py in range(ymin, ymax + 1):
            for px in range(xmin, xmax + 1):
                l0 = ((x1 - px) * (y2 - py) - (x2 - px) * (y1 - py)) * inv_area
                l1 = ((x2 - px) * (y0 - py) - (x0 - px) * (y2 - py)) * inv_area
                l2 = 1.0 - l0 - l1
                if l0 < -1e-7 or l1 < -1e-7 or l2 < -1e-7:
                    continue
                # perspective-correct: interpolate 1/z linearly in screen space
                w0, w1, w2 = l0 / z0, l1 / z1, l2 / z2
                inv_z = w0 + w1 + w2
                depth = 1.0 / inv_z
                if depth < zbuf[py, px]:
                    zbuf[py, px] = depth
                    face_id[py, px] = f
                    bary[py, px, 0] = w0 * depth
                    bary[py, px, 1] = w1 * depth
                    bary[py, px, 2] = w2 * depth


def rasterize(tri_xy: np.ndarray, tri_z: np.ndarray, width: int, height: int):
    """Triangles in pixel coordinates -> (face_id [H,W] int32, -1 = empty; bary [H,W,3]; depth [H,W]).

    tri_xy: [F,3,2] corner positions in pixels (pixel centres at integers); tri_z: [F,3] positive
    depths (pass ones for a flat, e.g. UV-space, raster). Nearest triangle wins.
    """
    face_id = np.full((height, width), -1, np.int32)
    bary = np.zeros((height, width, 3), np.float32)
    zbuf = np.full((height, width), np.inf)
    _raster(np.ascontiguousarray(tri_xy, np.float64), np.ascontiguousarray(tri_z, np.float64),
            int(width), int(height), face_id, bary, zbuf)
    zbuf[face_id < 0] = 0.0
    return face_id, bary, zbuf


def rasterize_mesh(vertices: np.ndarray, faces: np.ndarray, camera: Camera):
    """Mesh (vertices [V,3] metres, faces [F,3]) seen by `camera` -> rasterize()'s outputs (depth in metres)."""
    uv, z = camera.project(vertices)
    return rasterize(uv[faces], z[faces], camera.width, camera.height)


def rasterize_uv(face_uvs: np.ndarray, res: int):
    """UV atlas lookup: face_uvs [F,3,2] in [0,1] -> (face_id [res,res], bary [res,res,3]) per texel.

    Texel (row, col) has its centre at u = (col + 0.5) / res, v = (row + 0.5) / res.
    """
    xy = np.asarray(face_uvs, np.float64) * res - 0.5
    face_id, bary, _ = rasterize(xy, np.ones(xy.shape[:2]), res, res)
    return face_id, bary
