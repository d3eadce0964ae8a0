"""The head every avatar stands on: the ICT head joined with the symmetric atlas (model/head/template.py).
The asset and the atlas are tested on their own (test_head_model.py, test_ict_atlas.py); here, what the
avatar reads from the join: one mesh, one atlas whose mirror is the model's mirror, regions whose UV masks
are mirror images, the landmark map and its twins."""
import numpy as np
import pytest

from model.head import landmarks as LM
from model.head.head_model import load_head_model
from model.head.template import REGIONS, TEMPLATE_VERSION, load_template


@pytest.fixture(scope="module")
def T():
    return load_template()


def test_the_template_is_the_head_model(T):
    H = load_head_model()
    assert T.model is H and T.vertices is H.neutral and T.faces is H.faces
    assert T.face_uvs.shape == H.faces.shape + (2,) and T.face_uvs.min() >= 0 and T.face_uvs.max() <= 1
    assert T.version == TEMPLATE_VERSION and "ict-facekit" in TEMPLATE_VERSION
    for a in (T.vertices, T.faces, T.face_uvs, T.face_region, T.landmark_pair):
        assert not a.flags.writeable


def test_atlas_mirror_is_the_vertex_mirror(T):
    """For a triangle and its mirror triangle (vertex_mirror), the UVs are mirror images (u -> 1 - u): what
    symmetric fusion relies on when it reads texel (row, R-1-col) as the mirror of (row, col)."""
    m = T.vertex_mirror
    assert np.array_equal(m[m], np.arange(len(m)))
    key = {tuple(sorted(f)): i for i, f in enumerate(T.faces.tolist())}
    rng = np.random.default_rng(0)
    for f in rng.choice(len(T.faces), 2000, replace=False):
        g = key[tuple(sorted(m[T.faces[f]].tolist()))]
        uv_f = dict(zip(T.faces[f].tolist(), T.face_uvs[f]))
        uv_g = dict(zip(T.faces[g].tolist(), T.uv_mirror(T.face_uvs[g])))
        assert all(np.abs(uv_g[int(m[v])] - uv_f[v]).max() < 1e-6 for v in uv_f)


def test_region_masks_are_mirror_images(T):
    masks = T.region_masks(256)
    for name in REGIONS:
        assert masks[name].any(), name
        assert (masks[name] != masks[name][:, ::-1]).mean() < 1e-3, f"{name} mask is not mirror symmetric"
    assert sum(m.astype(int) for m in masks.values()).max() == 1
    c = T.vertices[T.faces].mean(1)
    assert np.median(c[T.face_region == REGIONS.index("face_skin"), 2]) > 0.03  # the face is in front
    assert np.median(c[T.face_region == REGIONS.index("scalp"), 1]) > 0.0  # the scalp above the eyes
    assert np.median(c[T.face_region == REGIONS.index("neck"), 1]) < -0.08


def test_landmark_twins_are_mirror_images(T):
    L = T.landmarks(T.vertices)
    pair = T.landmark_mirror()
    assert (pair[pair] == np.arange(478)).all()
    assert pair[61] == 291 and pair[33] == 263 and pair[468] == 473 and pair[13] == 13 and pair[14] == 14
    assert np.abs(L[pair] * [-1, 1, 1] - L).max() < 1e-3
    assert np.linalg.norm(L[159] - L[145]) > 0.005  # the eyes are open at neutral
    eye = T.region_vertices("eyes")
    assert np.isin(T.faces[T.landmark_faces[468:]], eye).all()  # irises on the eyeballs


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
