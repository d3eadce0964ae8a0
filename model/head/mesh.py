"""Triangle-mesh geometry shared by the head model, the fit and the method: normals, barycentric
interpolation and closest points. Lives below the template (which needs barycentric_matrix for its landmark map) and
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


def closest_on_faces(points, V, F, cand, k=48):
    """Closest point to each of points [N,3] on the triangles F[cand] of vertices V [V,3] -> (face ids [N],
    barycentrics [N,3]); k nearest triangles (by centroid) are tried per point."""
    from scipy.spatial import cKDTree
    tri = V[F[cand]]
    tree = cKDTree(tri.mean(1))
    _, nn = tree.query(points, k=min(k, len(cand)))
    nn = np.atleast_2d(nn)
    best_f, best_b = np.zeros(len(points), np.int64), np.zeros((len(points), 3))
    for i, p in enumerate(points):
        t = tri[nn[i]]
        bary = closest_bary(p, t)
        q = np.einsum("nk,nkd->nd", bary, t)
        j = int(np.argmin(((q - p) ** 2).sum(1)))
        best_f[i], best_b[i] = cand[nn[i][j]], bary[j]
    return best_f, best_b


def closest_bary(p, t):
    """Barycentrics of the closest point to p [3] on each triangle t [n,3,3] (Ericson, RTCD 5.1.5)."""
    a, b, c = t[:, 0], t[:, 1], t[:, 2]
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(1), (ac * ap).sum(1)
    bp = p - b
    d3, d4 = (ab * bp).sum(1), (ac * bp).sum(1)
    cp = p - c
    d5, d6 = (ab * cp).sum(1), (ac * cp).sum(1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    out = np.zeros((len(t), 3))
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = 1.0 / (va + vb + vc)
        v, w = vb * denom, vc * denom
        out[:] = np.stack([1 - v - w, v, w], 1)
        conds = [
            ((d1 <= 0) & (d2 <= 0), lambda: np.array([1.0, 0, 0])),
            ((d3 >= 0) & (d4 <= d3), lambda: np.array([0, 1.0, 0])),
            ((d6 >= 0) & (d5 <= d6), lambda: np.array([0, 0, 1.0])),
        ]
        vab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
        tab = d1 / (d1 - d3)
        vac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
        tac = d2 / (d2 - d6)
        vbc = (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0)
        tbc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
    out[vbc] = np.stack([np.zeros(vbc.sum()), 1 - tbc[vbc], tbc[vbc]], 1)
    out[vac] = np.stack([1 - tac[vac], np.zeros(vac.sum()), tac[vac]], 1)
    out[vab] = np.stack([1 - tab[vab], tab[vab], np.zeros(vab.sum())], 1)
    for cond, val in conds[::-1]:
        out[cond] = val()
    return np.nan_to_num(out, nan=1 / 3)
