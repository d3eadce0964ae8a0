"""Gaussians bound to the template surface: UV texel layout, tangent frames, per-Gaussian frames.

Everything a Gaussian needs to ride on a triangle: where it sits (barycentric point plus an offset
along the vertex normal) and how it is oriented (the triangle's UV tangent frame).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np

from model.core.raster_mesh import rasterize_uv
from model.head.mesh import barycentric_matrix, face_normals
from model.head.template import REGIONS, load_template


def _uv_edges(face_uvs: np.ndarray):
    """[F,3,2] triangle UVs -> their edges d1 = uv1 - uv0, d2 = uv2 - uv0 [F,2] and the signed
    determinant [F] of (d1, d2), kept away from 0 so degenerate UV triangles do not divide by zero."""
    d1, d2 = face_uvs[:, 1] - face_uvs[:, 0], face_uvs[:, 2] - face_uvs[:, 0]
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    return d1, d2, np.where(np.abs(det) < 1e-14, 1e-14, det)


def tangent_frames(vertices: np.ndarray, faces: np.ndarray, face_uvs: np.ndarray):
    """Per-triangle orthonormal frames and UV stretch.

    Returns R [F,3,3] whose columns are (tangent along +u, bitangent = n x t, normal n), and
    (su [F], sv [F]): metres of surface per unit of u and of v along those axes.
    """
    v = vertices[faces]
    e1, e2 = v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]
    d1, d2, det = _uv_edges(face_uvs)
    dpdu = (e1 * d2[:, 1:2] - e2 * d1[:, 1:2]) / det[:, None]
    dpdv = (e2 * d1[:, 0:1] - e1 * d2[:, 0:1]) / det[:, None]
    n = face_normals(vertices, faces)
    t = dpdu - (dpdu * n).sum(1, keepdims=True) * n
    t_len = np.linalg.norm(t, axis=1, keepdims=True)
    fallback = np.cross(n, np.where(np.abs(n[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]]))
    t = np.where(t_len > 1e-12, t / np.maximum(t_len, 1e-20), fallback / np.linalg.norm(fallback, axis=1, keepdims=True))
    b = np.cross(n, t)
    R = np.stack([t, b, n], axis=2)
    su = np.abs((dpdu * t).sum(1))
    sv = np.abs((dpdv * b).sum(1))
    return R, su, sv


def uv_tangent_coefficients(face_uvs: np.ndarray) -> np.ndarray:
    """[F,3,2] UVs -> [F,2] (a, b) with dP/du = a*(p1 - p0) + b*(p2 - p0): fixed per template,
    so re-posing a surface needs only its edges (see face_quaternions)."""
    d1, d2, det = _uv_edges(face_uvs)
    return np.stack([d2[:, 1] / det, -d1[:, 1] / det], 1)


@numba.njit(cache=True, fastmath=True, parallel=True)
def _face_quaternions(V, faces, coef, out, area):
    # Per triangle: the frame (t, n x t, n) of tangent_frames(), straight to a (w, x, y, z) quaternion,
    # and the triangle's area (half the normal's length, computed anyway).
    # Hand-written loop because re-posing ~40k triangles per rig update must take well under 5 ms.
    for f in numba.prange(faces.shape[0]):
        i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
        e1x, e1y, e1z = V[i1, 0] - V[i0, 0], V[i1, 1] - V[i0, 1], V[i1, 2] - V[i0, 2]
        e2x, e2y, e2z = V[i2, 0] - V[i0, 0], V[i2, 1] - V[i0, 1], V[i2, 2] - V[i0, 2]
        nx, ny, nz = e1y * e2z - e1z * e2y, e1z * e2x - e1x * e2z, e1x * e2y - e1y * e2x
        ln = np.sqrt(nx * nx + ny * ny + nz * nz) + 1e-30
        area[f] = 0.5 * ln
        nx, ny, nz = nx / ln, ny / ln, nz / ln
        a, b = coef[f, 0], coef[f, 1]
        tx, ty, tz = a * e1x + b * e2x, a * e1y + b * e2y, a * e1z + b * e2z
        d = tx * nx + ty * ny + tz * nz
        tx, ty, tz = tx - d * nx, ty - d * ny, tz - d * nz
        lt = np.sqrt(tx * tx + ty * ty + tz * tz)
        if lt < 1e-12:  # degenerate UV: any tangent
            tx, ty, tz = (ny, -nx, 0.0) if abs(nz) < 0.9 else (0.0, nz, -ny)
            lt = np.sqrt(tx * tx + ty * ty + tz * tz) + 1e-30
        tx, ty, tz = tx / lt, ty / lt, tz / lt
        bx, by, bz = ny * tz - nz * ty, nz * tx - nx * tz, nx * ty - ny * tx
        # rotation matrix columns (t, b, n): m_rc
        m00, m01, m02 = tx, bx, nx
        m10, m11, m12 = ty, by, ny
        m20, m21, m22 = tz, bz, nz
        tr = m00 + m11 + m22
        if tr > 0:
            s = np.sqrt(tr + 1.0) * 2
            w, x, y, z = 0.25 * s, (m21 - m12) / s, (m02 - m20) / s, (m10 - m01) / s
        elif m00 > m11 and m00 > m22:
            s = np.sqrt(1.0 + m00 - m11 - m22) * 2
            w, x, y, z = (m21 - m12) / s, 0.25 * s, (m01 + m10) / s, (m02 + m20) / s
        elif m11 > m22:
            s = np.sqrt(1.0 + m11 - m00 - m22) * 2
            w, x, y, z = (m02 - m20) / s, (m01 + m10) / s, 0.25 * s, (m12 + m21) / s
        else:
            s = np.sqrt(1.0 + m22 - m00 - m11) * 2
            w, x, y, z = (m10 - m01) / s, (m02 + m20) / s, (m12 + m21) / s, 0.25 * s
        out[f, 0], out[f, 1], out[f, 2], out[f, 3] = w, x, y, z


@numba.njit(cache=True, parallel=True)
def _bary_points(V, corners, bary, out):
    # The same sum as the sparse [T,V] interpolation matrix, one Gaussian per iteration on both cores (the
    # scipy product ran on one: 1.6 ms of a ~8 ms re-pose for 105k Gaussians).
    for t in numba.prange(corners.shape[0]):
        a, b, c = corners[t, 0], corners[t, 1], corners[t, 2]
        for k in range(3):
            out[t, k] = bary[t, 0] * V[a, k] + bary[t, 1] * V[b, k] + bary[t, 2] * V[c, k]


def bary_points(vertices: np.ndarray, corners: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """Points [T,3] float64 at barycentric coordinates bary [T,3] of the triangles whose vertex ids are
    corners [T,3] (int64), on vertices [V,3]."""
    out = np.empty((len(corners), 3), np.float64)
    _bary_points(np.ascontiguousarray(vertices, np.float64), np.ascontiguousarray(corners, np.int64),
                 np.ascontiguousarray(bary, np.float64), out)
    return out


def face_quaternions(vertices: np.ndarray, faces: np.ndarray, coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Orientation of each triangle's tangent frame as unit quaternions [F,4] (w, x, y, z), and the
    triangles' areas [F] (units of vertices, squared); coef from uv_tangent_coefficients(face_uvs) of
    the same faces."""
    out = np.empty((len(faces), 4), np.float32)
    area = np.empty(len(faces), np.float64)
    _face_quaternions(np.ascontiguousarray(vertices, np.float64), np.ascontiguousarray(faces, np.int64),
                      np.ascontiguousarray(coef, np.float64), out, area)
    return out, area


@numba.njit(cache=True, parallel=True)
def _spread_frames(face_quats, face_grow, slot, scales, out_q, out_s):
    # One pass per Gaussian: numpy's two gathers and a broadcast product took ~1.9 ms for 100k
    # Gaussians, a third of a rig update; this takes ~0.2 ms.
    for t in numba.prange(slot.shape[0]):
        f = slot[t]
        for j in range(4):
            out_q[t, j] = face_quats[f, j]
        g = face_grow[f]
        out_s[t, 0] = scales[t, 0] * g
        out_s[t, 1] = scales[t, 1] * g
        out_s[t, 2] = scales[t, 2]


def bound_frames(face_quats: np.ndarray, face_grow: np.ndarray, slot: np.ndarray,
                 scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gaussians take their triangle's frame: quats [T,4] = face_quats[slot] and scales [T,3] (metres:
    tangent, bitangent, normal) with both tangent axes times face_grow[slot]; float32.
    face_quats [U,4], face_grow [U], slot [T] indices into U, scales [T,3]."""
    out_q = np.empty((len(slot), 4), np.float32)
    out_s = np.empty((len(slot), 3), np.float32)
    _spread_frames(np.ascontiguousarray(face_quats, np.float32), np.ascontiguousarray(face_grow, np.float32),
                   np.ascontiguousarray(slot, np.int64), np.ascontiguousarray(scales, np.float32), out_q, out_s)
    return out_q, out_s


@dataclass(frozen=True, eq=False)  # hashed by identity: cached per resolution, used as a cache key
class UVLayout:
    """The valid texels of the atlas at one resolution, each bound to one template triangle."""

    res: int
    rc: np.ndarray  # [T,2] int (row, col) of each valid texel
    face: np.ndarray  # [T] triangle index
    bary: np.ndarray  # [T,3] barycentric coordinates of the texel centre in its triangle
    region: np.ndarray  # [T] index into model.head.template.REGIONS
    mirror: np.ndarray  # [T] index of the mirror texel (u -> 1 - u), -1 where that texel is empty
    grid: np.ndarray  # [res,res] texel index, -1 where empty
    left: np.ndarray  # [T] bool: the texel lies on the subject's left (x > 0; its mirror is on the right)

    def in_region(self, *names: str) -> np.ndarray:
        """[T] bool: the texels of the template regions `names` (model.head.template.REGIONS)."""
        return np.isin(self.region, [REGIONS.index(n) for n in names])

    def to_grid(self, values: np.ndarray, fill=0.0) -> np.ndarray:
        """Per-texel values [T,...] -> UV image [res,res,...]."""
        out = np.full((self.res, self.res) + values.shape[1:], fill, dtype=values.dtype)
        out[self.rc[:, 0], self.rc[:, 1]] = values
        return out

    def from_grid(self, image: np.ndarray) -> np.ndarray:
        return image[self.rc[:, 0], self.rc[:, 1]]

    def sampling_matrix(self, n_vertices: int, faces: np.ndarray):
        """Sparse [T,V] matrix interpolating per-vertex values at the texel centres."""
        return barycentric_matrix(faces[self.face], self.bary, n_vertices)


def split_texels(layout: UVLayout, face_uvs: np.ndarray, counts: np.ndarray, along_u: np.ndarray):
    """Spread counts[t] >= 1 samples evenly across texel t, along u where along_u[t] else along v.

    face_uvs [F,3,2] of the template. Returns (texel [N] int: the texel each sample comes from,
    bary [N,3]: its barycentric coordinates in that texel's triangle). A sample past the triangle's
    edge is clamped onto the triangle, so every sample stays on the surface.
    """
    texel = np.repeat(np.arange(len(counts)), counts)
    start = np.cumsum(counts) - counts
    j = np.arange(len(texel)) - start[texel]
    offset = ((j + 0.5) / counts[texel] - 0.5) / layout.res  # in UV units, centred on the texel
    tri = face_uvs[layout.face[texel]]  # [N,3,2]
    uv = np.einsum("ni,nij->nj", layout.bary[texel], tri)
    uv[:, 0] += np.where(along_u[texel], offset, 0.0)
    uv[:, 1] += np.where(along_u[texel], 0.0, offset)
    d1, d2, det = _uv_edges(tri)
    dp = uv - tri[:, 0]
    b1 = (dp[:, 0] * d2[:, 1] - d2[:, 0] * dp[:, 1]) / det
    b2 = (d1[:, 0] * dp[:, 1] - dp[:, 0] * d1[:, 1]) / det
    bary = np.clip(np.stack([1 - b1 - b2, b1, b2], 1), 0, None)
    return texel, bary / np.maximum(bary.sum(1, keepdims=True), 1e-12)


def layout_of(face_uvs: np.ndarray, face_region: np.ndarray, res: int, vertices: np.ndarray | None = None,
              faces: np.ndarray | None = None) -> UVLayout:
    """The texel layout of a chart whose triangles have UVs face_uvs [F,3,2] (in [0,1], symmetric about
    u = 0.5) and regions face_region [F], at `res` x `res`. vertices [V,3], faces [F,3]: the chart's mesh,
    which says on which side of the body each texel lies (an island may be laid out seen from behind,
    the subject's left at u < 0.5); without them the subject's left is u >= 0.5."""
    face_id, bary = rasterize_uv(face_uvs, res)
    rows, cols = np.nonzero(face_id >= 0)
    grid = np.full((res, res), -1, np.int64)
    grid[rows, cols] = np.arange(len(rows))
    mirror = grid[rows, res - 1 - cols]  # the chart is symmetric about u = 0.5: column c <-> res-1-c
    face = face_id[rows, cols].astype(np.int64)
    b = bary[rows, cols]
    if vertices is None:
        left = cols >= res / 2
    else:
        left = np.einsum("tk,tk->t", b, np.asarray(vertices)[np.asarray(faces)[face], 0]) > 0
    return UVLayout(res, np.stack([rows, cols], 1), face, b, np.asarray(face_region)[face], mirror, grid, left)


@lru_cache(maxsize=4)
def uv_layout(res: int) -> UVLayout:
    """The texel layout of the project's template at `res` x `res` (cached)."""
    template = load_template()
    return layout_of(template.face_uvs, template.face_region, res, template.vertices, template.faces)
