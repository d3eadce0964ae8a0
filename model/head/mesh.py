"""Triangle-mesh geometry shared by the template, the fit and the method: normals and barycentric
interpolation. Lives below the template (which needs barycentric_matrix for its landmark map) and
the binding of Gaussians (which needs normals), so neither imports the other."""
from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """[V,3], [F,3] -> unit outward normals [F,3] (counter-clockwise winding seen from outside)."""
    v = vertices[faces]
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-20)


@numba.njit(cache=True, fastmath=True)
def _vertex_normals(V, faces, out):
    # Hand-written (not np.add.at / sparse): it runs on every rig update and must cost well under 1 ms.
    out[:] = 0.0
    for f in range(faces.shape[0]):
        i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
        e1x, e1y, e1z = V[i1, 0] - V[i0, 0], V[i1, 1] - V[i0, 1], V[i1, 2] - V[i0, 2]
        e2x, e2y, e2z = V[i2, 0] - V[i0, 0], V[i2, 1] - V[i0, 1], V[i2, 2] - V[i0, 2]
        n0 = e1y * e2z - e1z * e2y  # |n| = 2 * area: area weighting for free
        n1 = e1z * e2x - e1x * e2z
        n2 = e1x * e2y - e1y * e2x
        for k in range(3):
            i = faces[f, k]
            out[i, 0] += n0
            out[i, 1] += n1
            out[i, 2] += n2
    for v in range(out.shape[0]):
        ln = np.sqrt(out[v, 0] ** 2 + out[v, 1] ** 2 + out[v, 2] ** 2) + 1e-30
        out[v, 0] /= ln
        out[v, 1] /= ln
        out[v, 2] /= ln


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals [V,3] of a mesh (vertices [V,3], faces [F,3])."""
    out = np.empty((len(vertices), 3), np.float64)
    _vertex_normals(np.ascontiguousarray(vertices, np.float64), np.ascontiguousarray(faces, np.int64), out)
    return out


def barycentric_matrix(corners: np.ndarray, bary: np.ndarray, n_vertices: int):
    """Sparse [N,V] matrix M with (M @ X)[n] = sum_i bary[n,i] * X[corners[n,i]] (corners [N,3] vertex ids)."""
    rows = np.repeat(np.arange(len(corners)), 3)
    return sp.csr_matrix((np.asarray(bary, np.float64).ravel(), (rows, np.asarray(corners).ravel())),
                         shape=(len(corners), n_vertices))
