"""The ICT-FaceKit head model: the build script on a tiny OBJ folder, and the committed asset against ICT."""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model.head.head_model import ASSET_PATH, REGIONS, HeadModelAssetError, load_head_model
from model.head.ict_build import BUILD_VERSION, Part, build

M = np.array([-1.0, 1.0, 1.0])


# ---------------------------------------------------------------- the build script on a tiny source
# Part "a": two squares side by side across x = 0, mirror images of each other but for v4, 10 µm off the
# midline: it makes 0-4 longer than 1-3 but 2-4 shorter than 1-5, so "each quad's shorter diagonal" alone
# would split them asymmetrically. Part "drop": one triangle, dropped; part "c": one quad at the back.
TINY_V = [(-2, 0, 5), (0, 0, 5), (2, 0, 5), (-2, 2, 5), (0.001, 2, 5), (2, 2, 5),
          (5, 5, 5), (6, 5, 5), (5, 6, 5),
          (1, 0, -5), (-1, 0, -5), (-1, 2, -5), (1, 2, -5)]
TINY_VT = [(0.1, 0.1), (0.5, 0.1), (0.9, 0.1), (0.1, 0.9), (0.5, 0.9), (0.9, 0.9), (0.5, 0.1),  # 7: seam copy
           (0, 0), (1, 0), (0, 1), (1.2, 0.2), (1.8, 0.2), (1.8, 0.8), (1.2, 0.8)]
TINY_F = [((1, 2, 5, 4), (1, 2, 5, 4)), ((2, 3, 6, 5), (7, 3, 6, 5)), ((7, 8, 9), (8, 9, 10)),
          ((10, 11, 12, 13), (11, 12, 13, 14))]  # 1-based, as in OBJ
TINY_PARTS = (Part("a", (0, 6), (0, 2), "face_skin"), Part("drop", (6, 9), (2, 3), "eyes", why="test"),
              Part("c", (9, 13), (3, 4), "scalp"))
ID_DELTA = {0: (0.1, 0, 0), 4: (0, 0.5, 0), 11: (0, 0, -0.2)}  # cm
EX_DELTA = {0: (0, -1.0, 0), 12: (0, 1e-5, 0)}  # the second is 0.1 µm: below MOVE_EPS, not stored
CENTRE_CM = (0.0, 1.0, 0.0)


def _obj(v, delta=None, faces=True) -> str:
    v = np.array(v, dtype=float)
    for i, d in (delta or {}).items():
        v[i] += d
    text = "# tiny\n" + "".join(f"v {x:.9g} {y:.9g} {z:.9g}\n" for x, y, z in v)
    if faces:
        text += "".join(f"vt {u} {w}\n" for u, w in TINY_VT)
        text += "".join("f " + " ".join(f"{a}/{b}" for a, b in zip(*f)) + "\n" for f in TINY_F)
    return text


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    src = tmp_path_factory.mktemp("ict")
    fx = src / "FaceXModel"
    fx.mkdir()
    (fx / "generic_neutral_mesh.obj").write_text(_obj(TINY_V))
    (fx / "identity000.obj").write_text(_obj(TINY_V, ID_DELTA, faces=False))
    (fx / "jawOpen.obj").write_text(_obj(TINY_V, EX_DELTA))
    (fx / "vertex_indices.json").write_text(json.dumps({"expressions": ["jawOpen"], "idx_to_landmark_verts": [1, 10]}))
    (src / "LICENSE").write_text("MIT License\n")
    out = src / "out" / "tiny.npz"
    meta = build(src, out, commit="test-commit", parts=TINY_PARTS, tongue_polys=(), skin_rule=None,
                 centre_cm=CENTRE_CM, landmark_map=False, log=lambda *a: None)
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    return src, out, meta, load_head_model(out, sha)


def test_tiny_renumbering_units_and_provenance(tiny):
    src, out, meta, m = tiny
    keep = [0, 1, 2, 3, 4, 5, 9, 10, 11, 12]
    assert m.source_vertex.tolist() == keep
    np.testing.assert_allclose(m.neutral, (np.array(TINY_V)[keep] - CENTRE_CM) * 0.01, atol=1e-12)
    homog = np.c_[np.array(TINY_V)[keep], np.ones(len(keep))] @ m.transform.T
    np.testing.assert_allclose(homog[:, :3], m.neutral, atol=1e-12)
    assert m.landmarks68.tolist() == [1, 7]  # ICT vertex 10 -> 7 once the dropped triangle's 3 are gone
    assert m.part_names == ("a", "c")
    assert [REGIONS[r] for r in m.face_region] == ["face_skin"] * 4 + ["scalp"] * 2
    assert meta["source"]["commit"] == "test-commit" and meta["build"]["version"] == BUILD_VERSION
    files = meta["source"]["files"]
    assert set(files) == {"FaceXModel/generic_neutral_mesh.obj", "FaceXModel/identity000.obj",
                          "FaceXModel/jawOpen.obj", "FaceXModel/vertex_indices.json", "LICENSE"}
    for rel, h in files.items():
        assert h == hashlib.sha256((src / rel).read_bytes()).hexdigest()
    assert (out.parent / "ICT-FaceKit.LICENSE").read_text() == "MIT License\n"
    assert m.meta == meta and [p.get("dropped") for p in meta["parts"]] == [None, "test", None]


def test_tiny_triangulation_uvs_and_mirror(tiny):
    _, _, meta, m = tiny
    assert m.vertex_mirror.tolist() == [2, 1, 0, 5, 4, 3, 7, 6, 9, 8]
    assert np.array_equal(m.vertex_mirror[m.vertex_mirror], np.arange(10))
    # each quad split along its shorter diagonal, its mirror quad along the mirror of that diagonal
    # (part c's quad straddles x = 0: it is its own mirror, and no split of it can be symmetric)
    tris = {tuple(sorted(f)) for f in m.faces[:4].tolist()}
    assert len(m.faces) == 6 and tris == {tuple(sorted(m.vertex_mirror[list(f)])) for f in tris}
    assert tris == {(0, 1, 3), (1, 3, 4), (1, 2, 5), (1, 4, 5)}  # diagonal 1-3 and its mirror 1-5
    assert meta["triangulation"] == {"self_mirror_quads": 1, "quads_without_mirror": 0}
    # per-corner UVs follow the corners (the seam copy vt 7 on the second quad), v flipped to image rows
    vt = np.array(TINY_VT)
    corner_vt = {(0, 0): 0, (1, 0): 1, (4, 0): 4, (3, 0): 3, (1, 1): 6, (2, 1): 2, (5, 1): 5, (4, 1): 4}
    for f, uv, poly in zip(m.faces, m.face_uvs, [0, 0, 1, 1]):
        for vid, c in zip(f, uv):
            np.testing.assert_allclose(c, vt[corner_vt[(vid, poly)]] * [1, -1] + [0, 1], atol=1e-6)
    # counter-clockwise as ICT wrote them: part a faces +z, part c (at the back) faces -z
    n = np.cross(*(m.neutral[m.faces[:, 1:]] - m.neutral[m.faces[:, :1]]).transpose(1, 0, 2))
    assert (n[:4, 2] > 0).all() and (n[4:, 2] < 0).all()


def test_tiny_deltas_and_determinism(tiny):
    src, out, meta, m = tiny
    keep = [0, 1, 2, 3, 4, 5, 9, 10, 11, 12]
    want = np.zeros((13, 3))
    for i, d in ID_DELTA.items():
        want[i] = np.array(d) * 0.01
    np.testing.assert_allclose(m.identity_basis[0], want[keep], atol=1.5e-6)
    np.testing.assert_allclose(m.vertices(identity=[2.0]), m.neutral + 2 * want[keep], atol=3e-6)
    assert m.expression_names == ("jawOpen",)
    ex = m.vertices(expression={"jawOpen": 1.0}) - m.neutral
    np.testing.assert_allclose(ex[0], [0, -0.01, 0], atol=1.5e-6)
    assert np.abs(ex[1:]).max() == 0  # vertex 12's 0.1 µm is below MOVE_EPS
    assert meta["errors_m"]["int16_identity_m"] <= 1e-6
    again = out.with_name("again.npz")
    build(src, again, commit="test-commit", parts=TINY_PARTS, tongue_polys=(), skin_rule=None,
          centre_cm=CENTRE_CM, landmark_map=False, log=lambda *a: None)
    assert again.read_bytes() == out.read_bytes()  # byte-deterministic: a rebuild keeps the pinned sha256


# ---------------------------------------------------------------- the committed asset
# Independent reference: `v` lines copied from ICT-FaceKit da5f95a (FaceXModel/*.obj, centimetres), by
# their 1-based OBJ vertex number; spread over face, head, neck, mouth socket, gums, teeth and eyeballs.
NEUTRAL_OBJ = """
1: v 0 -2.48251 11.8387
1053: v -6.93758 -0.461395 4.53291
4529: v 0.223393 2.61227 11.4839
9500: v -3.0783 -1.61988 -5.47829
10800: v -7.76454 -16.2721 2.83084
12000: v -3.36355 -1.93676 6.68494
15000: v -2.8353 -5.16442 6.76212
18100: v 0.858734 -3.40478 10.4735
20300: v 0.688275 -3.92816 10.1547
22000: v 2.25418 4.8281 7.56982
24000: v -4.51896 4.04585 8.1075
"""
IDENTITY000_OBJ = """
1: v -2.36702e-08 -2.22893 11.7028
1053: v -6.6228 -0.310662 4.73205
4529: v 0.214156 2.60644 11.3272
9500: v -2.89532 -1.55689 -4.71646
10800: v -7.28597 -15.4795 3.01669
12000: v -3.20795 -1.69698 6.80928
15000: v -2.70457 -4.76456 6.81173
18100: v 0.819373 -3.10035 10.3577
20300: v 0.656499 -3.59914 10.0516
22000: v 2.14408 4.65785 7.56377
24000: v -4.33902 3.93693 8.08791
"""
JAWOPEN_OBJ = """
1: v 1.32271e-12 -2.71799 11.8076
1053: v -7.20726 -0.572235 4.5694
4529: v 0.22648 2.58388 11.5041
9500: v -3.0783 -1.61988 -5.47829
10800: v -7.76371 -16.2728 2.83099
12000: v -3.25853 -2.16875 6.50369
15000: v -2.83512 -6.83519 4.32125
18100: v 0.858734 -3.40478 10.4735
20300: v 0.688232 -7.16648 7.89254
22000: v 2.25418 4.8281 7.56982
24000: v -4.51896 4.04585 8.1075
"""
ICT_EXPRESSIONS = (
    "browDown_L browDown_R browInnerUp_L browInnerUp_R browOuterUp_L browOuterUp_R cheekPuff_L cheekPuff_R "
    "cheekSquint_L cheekSquint_R eyeBlink_L eyeBlink_R eyeLookDown_L eyeLookDown_R eyeLookIn_L eyeLookIn_R "
    "eyeLookOut_L eyeLookOut_R eyeLookUp_L eyeLookUp_R eyeSquint_L eyeSquint_R eyeWide_L eyeWide_R jawForward "
    "jawLeft jawOpen jawRight mouthClose mouthDimple_L mouthDimple_R mouthFrown_L mouthFrown_R mouthFunnel "
    "mouthLeft mouthLowerDown_L mouthLowerDown_R mouthPress_L mouthPress_R mouthPucker mouthRight "
    "mouthRollLower mouthRollUpper mouthShrugLower mouthShrugUpper mouthSmile_L mouthSmile_R mouthStretch_L "
    "mouthStretch_R mouthUpperUp_L mouthUpperUp_R noseSneer_L noseSneer_R").split()


def _reference(text: str) -> tuple[np.ndarray, np.ndarray]:
    rows = [line.replace(":", "").split() for line in text.strip().splitlines()]
    return np.array([int(r[0]) - 1 for r in rows]), np.array([[float(x) for x in r[2:5]] for r in rows])


@pytest.fixture(scope="module")
def H():
    return load_head_model()


def test_asset_is_compact_and_complete(H):
    assert ASSET_PATH.stat().st_size <= 15e6
    assert H.identity_basis.shape == (100, H.n_vertices, 3) and H.expression_names == tuple(ICT_EXPRESSIONS)
    assert H.expression_basis.shape == (53, H.n_vertices, 3)
    assert H.landmarks68.shape == (68,) and len(set(H.landmarks68.tolist())) == 68
    assert H.faces.min() >= 0 and H.faces.max() < H.n_vertices and H.face_uvs.shape == H.faces.shape + (2,)
    assert {"face", "head_neck", "mouth_socket", "gums_tongue", "teeth", "eyeball_L", "eyeball_R"} <= set(H.part_names)
    assert all((H.face_region == i).any() for i in range(len(REGIONS)))
    from model.head.template import REGIONS as TEMPLATE_REGIONS
    assert REGIONS == TEMPLATE_REGIONS
    src = H.meta["source"]
    assert src["commit"].startswith("da5f95a") and len(src["files"]) == 100 + 53 + 3
    for a in (H.neutral, H.faces, H.identity_basis, H.expression_basis, H.vertex_mirror, H.landmark_bary):
        assert not a.flags.writeable


def test_asset_reproduces_ict(H):
    """Neutral, identity000 at weight 1 and jawOpen at weight 1 against ICT's own OBJ lines, < 0.1 mm."""
    to_m = lambda p: p @ H.transform[:3, :3].T + H.transform[:3, 3]  # noqa: E731
    for text, v in ((NEUTRAL_OBJ, H.neutral), (IDENTITY000_OBJ, H.vertices(identity=np.eye(100)[0])),
                    (JAWOPEN_OBJ, H.vertices(expression={"jawOpen": 1.0}))):
        ict_index, ict_cm = _reference(text)
        ours = np.array([np.nonzero(H.source_vertex == i)[0][0] for i in ict_index])
        assert np.abs(v[ours] - to_m(ict_cm)).max() < 1e-4
    # the units and frame: ICT centimetres -> metres, the pupils' height at y = 0
    np.testing.assert_allclose(np.diag(H.transform)[:3], 0.01)
    eyes = np.isin(H.face_part, [H.part_names.index("eyeball_L"), H.part_names.index("eyeball_R")])
    y = H.neutral[np.unique(H.faces[eyes]), 1]
    assert abs(y.min() + y.max()) < 1e-9 and 0.11 < np.ptp(H.neutral[:, 0]) < 0.27


def test_asset_mirror_and_orientation(H):
    mir = H.vertex_mirror
    assert np.array_equal(mir[mir], np.arange(H.n_vertices))
    skin = np.unique(H.faces[np.isin(H.face_part, [H.part_names.index("face"), H.part_names.index("head_neck")])])
    assert np.abs(H.neutral[mir[skin]] * M - H.neutral[skin]).max() < 1e-4
    assert np.abs(H.neutral[mir] * M - H.neutral).max() < 5e-4  # the gums: 0.29 mm off in ICT
    # the triangulation is mirror-symmetric as a whole, and so are the regions
    key = lambda f: {tuple(sorted(t)): i for i, t in enumerate(f.tolist())}  # noqa: E731
    tri, mtri = key(H.faces), key(mir[H.faces])
    assert tri.keys() == mtri.keys()
    twin = np.array([tri[k] for k in mtri])  # face i's mirror twin, in mtri's order (= face order)
    assert np.array_equal(H.face_region[twin], H.face_region)
    # counter-clockwise seen from outside: the scalp's normals point away from the head centre, the
    # eyeballs' away from their centres
    n = np.cross(*(H.neutral[H.faces[:, 1:]] - H.neutral[H.faces[:, :1]]).transpose(1, 0, 2))
    c = H.neutral[H.faces].mean(1)
    top = H.region_faces("scalp")[c[H.region_faces("scalp"), 1] > 0.03]
    assert len(top) > 500 and (np.einsum("ij,ij->i", n[top], c[top]) > 0).all()
    for name in ("eyeball_L", "eyeball_R"):
        f = np.nonzero(H.face_part == H.part_names.index(name))[0]
        centre = H.neutral[np.unique(H.faces[f])].mean(0)
        assert (np.einsum("ij,ij->i", n[f], c[f] - centre) > 0).mean() > 0.8  # the iris dips inwards
    # closed shells enclose positive volume; the sockets are seen from inside (through the lips and lids)
    vol = np.bincount(H.face_part, np.einsum("ij,ij->i", c, n) / 6)
    sign = {p: np.sign(vol[i]) for i, p in enumerate(H.part_names)}
    assert sign["teeth"] == sign["eyeball_L"] == sign["eyeball_R"] == sign["face"] == 1
    assert sign["mouth_socket"] == sign["eye_socket_L"] == -1


def test_mediapipe_landmark_map(H):
    """mediapipe's 478 points lie on the surface within a few mm of the canonical points aligned as recorded,
    the irises on the eyeballs, and mirror twins at mirror positions."""
    from model.head.mediapipe_canon import load
    canon, pair = load()
    sim = H.meta["mediapipe"]["similarity"]
    target = sim["scale"] * canon @ np.array(sim["rotation"]).T + np.array(sim["translation"])
    pts = H.landmarks(H.neutral)
    d = np.linalg.norm(pts - target, axis=1)
    assert np.median(d[:468]) < 2.5e-3 and d.max() < 6e-3
    assert 1.0 < sim["scale"] < 1.1  # ICT's head is ~3.5% larger than the canonical 63 mm-IPD one
    parts = np.array(H.part_names)[H.face_part[H.landmark_faces]]
    assert set(parts[:468]) <= {"face", "head_neck"}
    assert (parts[468:473] == "eyeball_R").all() and (parts[473:] == "eyeball_L").all()
    assert (H.landmark_bary >= -1e-9).all() and np.allclose(H.landmark_bary.sum(1), 1)
    twins = pair != np.arange(478)
    assert np.abs(pts[pair[twins]] * M - pts[twins]).max() < 1e-4
    assert np.abs(pts[~twins, 0]).max() < 5e-4  # midline points: within 0.5 mm of x = 0
    # the 68 Multi-PIE points of both conventions agree where both are defined points (eyes: corners, lids)
    from model.head.ict_build import MP_OF_68
    eyes = np.arange(36, 48)
    assert np.linalg.norm(pts[list(np.array(MP_OF_68)[eyes])] - H.neutral[H.landmarks68[eyes]], axis=1).max() < 4e-3
    # the map follows the mesh: jawOpen lowers the chin (152) and the lower lip (17) by centimetres
    opened = H.landmarks(H.vertices(expression={"jawOpen": 1.0}))
    assert (pts[[152, 17], 1] - opened[[152, 17], 1] > 0.02).all()


def test_vertices_api(H):
    w = np.zeros(53)
    w[H.expression_names.index("eyeBlink_L")] = 0.7
    np.testing.assert_array_equal(H.vertices(expression=w), H.vertices(expression={"eyeBlink_L": 0.7}))
    np.testing.assert_array_equal(H.vertices(), H.neutral)
    with pytest.raises(KeyError, match="eyeBlinkLeft"):
        H.vertices(expression={"eyeBlinkLeft": 1.0})
    with pytest.raises(ValueError, match="100"):
        H.vertices(identity=np.zeros(3))


def test_corrupt_or_missing_asset_is_a_clear_error(tmp_path):
    bad = tmp_path / "ict_head.npz"
    data = bytearray(ASSET_PATH.read_bytes())
    data[len(data) // 2] ^= 0x01
    bad.write_bytes(bytes(data))
    with pytest.raises(HeadModelAssetError, match="sha256") as e:
        load_head_model(bad)
    assert str(bad) in str(e.value) and "ict_build" in str(e.value) and "git checkout" in str(e.value)
    with pytest.raises(HeadModelAssetError, match="missing"):
        load_head_model(tmp_path / "nowhere.npz")


def test_loader_is_numpy_only():
    code = ("import sys, model.head.head_model as h; h.load_head_model(); "
            "print([m for m in ('scipy', 'matplotlib', 'torch', 'gradio', 'numba', 'model.ours', 'evaluation', "
            "'baselines', 'model.head.template') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"
