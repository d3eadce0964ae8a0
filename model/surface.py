"""Differential geometry of the template surface: normals, tangent frames, UV texel layout.

Everything a Gaussian needs to ride on a triangle: where it sits (barycentric point plus an offset
along the vertex normal) and how it is oriented (the triangle's UV tangent frame).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from model.raster_mesh import rasterize_uv
from model.template import load_template


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """[V,3], [F,3] -> unit outward normals [F,3] (counter-clockwise winding seen from outside)."""
    v = vertices[faces]
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-20)


@lru_cache(maxsize=4)
def _incidence(faces_bytes: bytes, n_vertices: int) -> sp.csr_matrix:
    faces = np.frombuffer(faces_bytes, np.int32).reshape(-1, 3)
    rows = faces.ravel()
    cols = np.repeat(np.arange(len(faces)), 3)
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_vertices, len(faces)))


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals [V,3] (unit)."""
    v = vertices[faces]
    fn = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])  # length = 2 * area: area weighting for free
    n = _incidence(np.ascontiguousarray(faces, np.int32).tobytes(), len(vertices)) @ fn
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-20)


def tangent_frames(vertices: np.ndarray, faces: np.ndarray, face_uvs: np.ndarray):
    """Per-triangle orthonormal frames and UV stretch.

    Returns R [F,3,3] whose columns are (tangent along +u, bitangent = n x t, normal n), and
    (su [F], sv [F]): metres of surface per unit of u and of v along those axes.
    """
    v = vertices[faces]
    e1, e2 = v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]
    d1, d2 = face_uvs[:, 1] - face_uvs[:, 0], face_uvs[:, 2] - face_uvs[:, 0]
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    det = np.where(np.abs(det) < 1e-14, 1e-14, det)
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


@dataclass(frozen=True)
class UVLayout:
    """The valid texels of the atlas at one resolution, each bound to one template triangle."""

    res: int
    rc: np.ndarray  # [T,2] int (row, col) of each valid texel
    face: np.ndarray  # [T] triangle index
    bary: np.ndarray  # [T,3] barycentric coordinates of the texel centre in its triangle
    region: np.ndarray  # [T] index into model.template.REGIONS
    mirror: np.ndarray  # [T] index of the mirror texel (u -> 1 - u), -1 where that texel is empty
    grid: np.ndarray  # [res,res] texel index, -1 where empty

    def to_grid(self, values: np.ndarray, fill=0.0) -> np.ndarray:
        """Per-texel values [T,...] -> UV image [res,res,...]."""
        out = np.full((self.res, self.res) + values.shape[1:], fill, dtype=values.dtype)
        out[self.rc[:, 0], self.rc[:, 1]] = values
        return out

    def from_grid(self, image: np.ndarray) -> np.ndarray:
        return image[self.rc[:, 0], self.rc[:, 1]]

    def sampling_matrix(self, n_vertices: int, faces: np.ndarray, vertex_weights: np.ndarray | None = None):
        """Sparse [T,V] matrix: (M @ X)[t] = sum_i bary[t,i] * w[f_i] * X[f_i]."""
        cols = faces[self.face].ravel()
        vals = self.bary.astype(np.float64).ravel()
        if vertex_weights is not None:
            vals = vals * vertex_weights[cols]
        rows = np.repeat(np.arange(len(self.face)), 3)
        return sp.csr_matrix((vals, (rows, cols)), shape=(len(self.face), n_vertices))


@lru_cache(maxsize=4)
def uv_layout(res: int) -> UVLayout:
    """The texel layout of the project's template at `res` x `res` (cached)."""
    template = load_template()
    face_id, bary = rasterize_uv(template.face_uvs, res)
    rows, cols = np.nonzero(face_id >= 0)
    grid = np.full((res, res), -1, np.int64)
    grid[rows, cols] = np.arange(len(rows))
    mirror = grid[rows, res - 1 - cols]  # the atlas is symmetric about u = 0.5: column c <-> res-1-c
    face = face_id[rows, cols].astype(np.int64)
    return UVLayout(res, np.stack([rows, cols], 1), face, bary[rows, cols], template.face_region[face],
                    mirror, grid)
