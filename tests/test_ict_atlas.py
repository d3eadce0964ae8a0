"""The ICT head's symmetric UV atlas (model/head/ict_atlas.py): the template's contract on ICT's islands."""
import numpy as np
import pytest

from model.core.raster_mesh import rasterize_uv
from model.head.head_model import REGIONS, load_head_model
from model.head.ict_atlas import symmetric_atlas


@pytest.fixture(scope="module")
def H():
    return load_head_model()


@pytest.fixture(scope="module")
def A():
    return symmetric_atlas()


def _area(p):
    a, b = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    if p.shape[-1] == 2:
        return 0.5 * np.abs(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])
    return 0.5 * np.linalg.norm(np.cross(a, b), axis=1)


def _island_grid(A, res):
    """[res,res] atlas island of each texel (-1 empty), and how many islands cover it (each rasterized alone)."""
    grid, count = np.full((res, res), -1), np.zeros((res, res), int)
    for i in range(len(A.island_kind)):
        f = np.nonzero(A.island == i)[0]
        hit = rasterize_uv(A.face_uvs[f], res)[0] >= 0
        assert hit.any(), f"island {i} covers no texel at {res}"
        grid[hit], count = i, count + hit
    return grid, count


def test_islands_and_kinds(A, H):
    assert A.face_uvs.shape == H.face_uvs.shape and A.island.shape == (len(H.faces),)
    assert symmetric_atlas() is A and symmetric_atlas(H) is A  # cached on the default model
    assert np.isfinite(A.face_uvs).all() and A.face_uvs.min() >= 0 and A.face_uvs.max() <= 1
    kinds = {k: A.island_kind.count(k) for k in set(A.island_kind)}
    # ICT: 64 UV islands; face and head-and-neck whole, 8 other self-mirror ones cut in halves, 27 twin pairs
    assert kinds == {"whole": 2, "half": 16, "pair": 54}, kinds
    assert len(set(A.ict_island.tolist())) == 64
    assert np.array_equal(A.island_mirror[A.island_mirror], np.arange(len(A.island_kind)))
    whole = [i for i, k in enumerate(A.island_kind) if k == "whole"]
    assert [A.island_part[i] for i in whole] == ["face", "head_neck"] and (A.island_mirror[whole] == whole).all()
    assert A.ict_asymmetry[whole].max() < 1e-5  # ICT lays out face and head symmetrically (float32 noise)
    relaid = {A.island_part[i] for i in A.relaid()}
    print("\nre-laid (ICT twin not a mirror image):", len(A.relaid()), "islands, parts", sorted(relaid))
    assert {"teeth", "gums_tongue", "eye_socket_R"} <= relaid or {"teeth", "gums_tongue", "eye_socket_L"} <= relaid


def test_mirror_triangles_have_mirror_uvs(A, H):
    """For every triangle f and its mirror twin g (vertices the mirrors of f's), g's corner UVs are the
    mirror (u -> 1 - u) of f's corresponding corners."""
    key = {tuple(sorted(t)): i for i, t in enumerate(H.faces.tolist())}
    g = np.array([key[tuple(sorted(t))] for t in H.vertex_mirror[H.faces].tolist()])
    corner = np.argmax(H.faces[g][:, None, :] == H.vertex_mirror[H.faces][:, :, None], axis=2)
    twin_uv = np.take_along_axis(A.face_uvs[g], corner[..., None], 1)
    np.testing.assert_allclose(twin_uv, A.uv_mirror(A.face_uvs), atol=1e-6, rtol=0)
    assert np.array_equal(A.island_mirror[A.island], A.island[g])
    np.testing.assert_array_equal(A.uv_mirror(np.array([[0.25, 0.5]])), [[0.75, 0.5]])


@pytest.mark.parametrize("res", [256, 512])
def test_islands_apart_and_texels_mirror(A, res):
    grid, count = _island_grid(A, res)
    assert count.max() == 1  # no texel covered by two islands
    # a gutter: no texel of another island within 2 texels at 512 (1 at 256) of an island's texel
    g = 2 * res // 512
    pad = np.pad(grid, g, constant_values=-1)
    for dy in range(2 * g + 1):
        for dx in range(2 * g + 1):
            other = pad[dy:dy + res, dx:dx + res]
            assert not ((grid >= 0) & (other >= 0) & (other != grid)).any()
    # the mirror texel (row, res-1-col) of island i's texel is island_mirror[i]'s, and empty mirrors empty
    assert np.array_equal(np.where(grid >= 0, A.island_mirror[np.maximum(grid, 0)], -1), grid[:, ::-1])
    masks = A.region_masks(res)
    assert list(masks) == list(REGIONS) and sum(m.astype(int) for m in masks.values()).max() == 1
    assert np.array_equal(sum(masks.values()) > 0, grid >= 0)
    assert all(np.array_equal(m, m[:, ::-1]) for m in masks.values())  # regions are symmetric too
    if res == 512:
        face = [i for i, p in enumerate(A.island_part) if p == "face"]
        share = np.isin(grid, face).sum() / (grid >= 0).sum()
        print(f"\nfill ratio at 512: {(grid >= 0).mean():.3f}; face island: {share:.3f} of the used texels")
        assert share >= 0.25


def test_density(A, H):
    """Texels per metre at 512 roughly even: face skin, scalp and neck within 2x of each other; the face
    island at least as dense relative to the head-and-neck island as in ICT's layout."""
    a3, a2 = _area(H.neutral[H.faces]), _area(A.face_uvs)
    dens = {r: np.sqrt(a2[H.face_region == i].sum() / a3[H.face_region == i].sum()) * 512
            for i, r in enumerate(REGIONS)}
    print("\ntexels per metre at 512 by region:", {r: round(float(d)) for r, d in dens.items()})
    print("by island (kind, part: scale):", sorted({(k, p, round(float(s))) for k, p, s in
                                                    zip(A.island_kind, A.island_part, A.island_scale)}))
    skin = [dens[r] for r in ("face_skin", "scalp", "neck")]
    assert max(skin) / min(skin) < 2
    # island_scale is the measured density (islands are scaled uniformly; a twin's surface is ICT's, 0.3 mm off)
    for i in range(len(A.island_kind)):
        f = A.island == i
        np.testing.assert_allclose(np.sqrt(a2[f].sum() / a3[f].sum()) * 512, A.island_scale[i], rtol=1e-3)
    part = np.asarray(H.part_names)[H.face_part]
    ict = lambda p: np.sqrt(_area(H.face_uvs[part == p]).sum() / a3[part == p].sum())  # noqa: E731
    scale = dict(zip(A.island_part, A.island_scale))
    assert scale["face"] / scale["head_neck"] >= ict("face") / ict("head_neck") * (1 - 1e-6)
    rest = [s for p, s in zip(A.island_part, A.island_scale) if p not in ("face", "eyeball_L", "eyeball_R")]
    assert np.ptp(rest) < 1e-9  # all but the face and the eyes at one density


def test_head_cut_in_halves_variant(A, H):
    """whole_parts=("face",): the head and neck cut at the back midline like the template's seam; still the
    contract, and denser (the face no longer stacks on the head)."""
    B = symmetric_atlas(H, whole_parts=("face",))
    assert B.island_kind.count("whole") == 1 and B.island_kind.count("half") == 18
    mir, key = H.vertex_mirror, {tuple(sorted(t)): i for i, t in enumerate(H.faces.tolist())}
    g = np.array([key[tuple(sorted(t))] for t in mir[H.faces].tolist()])
    corner = np.argmax(H.faces[g][:, None, :] == mir[H.faces][:, :, None], axis=2)
    np.testing.assert_allclose(np.take_along_axis(B.face_uvs[g], corner[..., None], 1), B.uv_mirror(B.face_uvs),
                               atol=1e-6, rtol=0)
    grid, count = _island_grid(B, 512)
    assert count.max() == 1 and np.array_equal(np.where(grid >= 0, B.island_mirror[np.maximum(grid, 0)], -1),
                                               grid[:, ::-1])
    scales = lambda atlas: sorted(set(np.round(atlas.island_scale).tolist()))  # noqa: E731
    print(f"\nhead in halves: fill {(grid >= 0).mean():.3f}, texels per metre at 512 {scales(B)} "
          f"(head whole: {scales(A)})")
    assert B.island_scale.min() > 1.1 * A.island_scale.min()
