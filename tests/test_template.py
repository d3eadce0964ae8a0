"""The open head template: closed, symmetric, one non-overlapping symmetric UV atlas, regions, landmark map."""
import numpy as np
import pytest

from model.head import landmarks as LM
from model.head.template import REGIONS, TEMPLATE_VERSION, load_template


@pytest.fixture(scope="module")
def T():
    return load_template()


def test_size_and_version(T):
    assert 5_000 <= len(T.vertices) <= 20_000
    assert T.faces.dtype == np.int32 and T.faces.min() >= 0 and T.faces.max() < len(T.vertices)
    assert T.version == TEMPLATE_VERSION and TEMPLATE_VERSION


def test_closed_and_outward(T):
    F = T.faces.astype(np.int64)
    e = np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]])
    n = len(T.vertices)
    directed = e[:, 0] * n + e[:, 1]
    assert len(np.unique(directed)) == len(directed), "an edge is used twice in the same direction"
    assert np.isin(e[:, 1] * n + e[:, 0], directed).all(), "an edge has no opposite half: surface not closed"
    # every closed component encloses positive volume (outward normals)
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components
    adj = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
    k, lab = connected_components(adj, directed=False)
    assert k == 5  # head (skin + mouth and eye pockets), two eyeballs, two ears
    v = T.vertices[F]
    vol = np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])) / 6
    comp_vol = np.bincount(lab[F[:, 0]], weights=vol, minlength=k)
    assert (comp_vol > 0).all()
    assert comp_vol.max() > 2e-3  # the head: litres, not a sliver


def test_mirror_symmetry(T):
    m = T.vertex_mirror
    assert np.array_equal(m[m], np.arange(len(m)))
    assert np.abs(T.vertices[m] - T.vertices * [-1, 1, 1]).max() < 1e-5
    # the mirror of every triangle is a triangle, with mirrored UVs (u -> 1 - u)
    key = {tuple(sorted(f)): i for i, f in enumerate(T.faces.tolist())}
    for f in range(len(T.faces)):
        g = key[tuple(sorted(m[T.faces[f]].tolist()))]
        uv_f = dict(zip(T.faces[f].tolist(), T.face_uvs[f]))
        uv_g = dict(zip(T.faces[g].tolist(), T.uv_mirror(T.face_uvs[g])))
        assert all(np.abs(uv_g[int(m[v])] - uv_f[v]).max() < 1e-9 for v in uv_f)
    assert np.allclose(T.uv_mirror(T.uv_mirror(T.face_uvs[:5])), T.face_uvs[:5])


def test_uv_atlas_covers_every_triangle_without_overlap(T):
    uv = T.face_uvs
    assert uv.min() >= 0 and uv.max() <= 1
    d1, d2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    area = 0.5 * (d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0])
    assert (np.abs(area) > 1e-10).all(), "a triangle has no UV area"
    assert (area > 0).all() or (area < 0).all(), "UV orientation flips: folded atlas"
    # covered texels match the summed triangle areas: overlapping triangles would count twice
    from model.core.raster_mesh import rasterize_uv
    res = 1024
    face_id, _ = rasterize_uv(uv, res)
    covered = (face_id >= 0).mean()
    assert abs(covered - np.abs(area).sum()) < 0.01


def test_regions(T):
    assert set(REGIONS) >= {"face_skin", "scalp", "ears", "neck", "eyes", "lips", "mouth_interior", "brows"}
    masks = T.region_masks(256)
    for name, mask in masks.items():
        assert mask.any(), name
        assert np.array_equal(mask, mask[:, ::-1]), f"{name} mask is not mirror symmetric"
    total = sum(m.astype(int) for m in masks.values())
    assert total.max() == 1
    # face skin sits in front, scalp covers the top and back
    c = T.vertices[T.faces].mean(1)
    assert c[T.face_region == REGIONS.index("face_skin"), 2].min() > 0
    top = c[:, 1] > 0.1
    assert (T.face_region[top] == REGIONS.index("scalp")).all()


def test_landmark_map(T):
    assert T.landmark_faces.shape == (478,) and T.landmark_bary.shape == (478, 3)
    assert np.allclose(T.landmark_bary.sum(1), 1) and (T.landmark_bary >= -1e-9).all()
    L = T.landmarks(T.vertices)
    canon = T.parts["canonical_landmarks"]
    # the template passes (within a few mm) through the canonical points it was built from
    skin = np.setdiff1d(np.arange(468), LM.LIPS_INNER_UPPER + LM.LIPS_INNER_LOWER)
    assert np.median(np.linalg.norm(L[skin] - canon[skin], axis=1)) < 0.002
    # mirror twins are mirror images; the mouth is closed and the eyes open at neutral
    pair = T.parts["landmark_pair"]
    assert np.abs(L[pair] * [-1, 1, 1] - L).max() < 2e-3
    assert (pair[pair] == np.arange(478)).all() and (T.landmark_mirror() == pair).all()
    assert pair[61] == 291 and pair[33] == 263 and pair[468] == 473 and pair[13] == 13 and pair[14] == 14
    assert np.linalg.norm(L[13] - L[14]) < 1e-6
    assert np.linalg.norm(L[159] - L[145]) > 0.005
    # iris points sit on the eyeballs, lid points on their slit
    eye = T.region_vertices("eyes")
    assert np.isin(T.faces[T.landmark_faces[468:]], eye).all()


def test_landmark_groups_match_mediapipe():
    from mediapipe.python.solutions import face_mesh_connections as C

    def edges(*seqs):
        return {tuple(sorted(e)) for s in seqs for e in zip(s[:-1], s[1:])}

    def conn(s):
        return {tuple(sorted(e)) for e in s}

    assert edges(LM.LIPS_OUTER_UPPER, LM.LIPS_OUTER_LOWER, LM.LIPS_INNER_UPPER, LM.LIPS_INNER_LOWER) == conn(C.FACEMESH_LIPS)
    assert edges(LM.RIGHT_EYE_UPPER, LM.RIGHT_EYE_LOWER) == conn(C.FACEMESH_RIGHT_EYE)
    assert edges(LM.LEFT_EYE_UPPER, LM.LEFT_EYE_LOWER) == conn(C.FACEMESH_LEFT_EYE)
    assert edges(LM.RIGHT_BROW_UPPER, LM.RIGHT_BROW_LOWER) == conn(C.FACEMESH_RIGHT_EYEBROW)
    assert edges(LM.LEFT_BROW_UPPER, LM.LEFT_BROW_LOWER) == conn(C.FACEMESH_LEFT_EYEBROW)
    assert edges(LM.FACE_OVAL + (LM.FACE_OVAL[0],)) == conn(C.FACEMESH_FACE_OVAL)
    assert edges(LM.RIGHT_IRIS[1:] + LM.RIGHT_IRIS[1:2]) == conn(C.FACEMESH_RIGHT_IRIS)
    assert edges(LM.LEFT_IRIS[1:] + LM.LEFT_IRIS[1:2]) == conn(C.FACEMESH_LEFT_IRIS)


def test_deterministic_build():
    from model.head._template_build import build
    a, b = build(), build()
    # topology exactly; positions to 1e-12 m (multithreaded BLAS may reorder a sum under load)
    assert np.array_equal(a["faces"], b["faces"])
    assert np.allclose(a["vertices"], b["vertices"], rtol=0, atol=1e-12)
