"""LAM avatar packages: import (a real LAM package when shared/ has it), export of ours, round trip,
malformed packages, and the registered method on a folder of packages."""
from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import binary_fill_holes

from baselines.lam import LamImport, LamPackageError, align_to_photo, load_lam_package, read_package
from baselines.registry import get_spec
from model.core.camera import framing_camera
from model.core.image_io import to_uint8
from model.head import rig
from model.head.landmarks import detect_landmarks, inter_ocular
from tests.helpers import shared_fixture


def coverage(alpha: np.ndarray) -> float:
    """Opaque share (alpha > 0.5) of the silhouette with its holes filled: 1 = no holes."""
    solid = alpha > 0.5
    return float(solid.sum() / max(binary_fill_holes(solid).sum(), 1))


def lip_gap(avatar, controls=None) -> float:
    """Inner-lip distance (landmarks 13/14) of a frontal render / outer-eye-corner distance."""
    cam = framing_camera(avatar.head_center, avatar.head_radius, 0.0, 0.0, size=512)
    lm = detect_landmarks(to_uint8(avatar.render(cam, controls).rgb))
    return float(np.linalg.norm(lm.points[13, :2] - lm.points[14, :2]) / inter_ocular(lm.points))


def app_presets() -> dict:
    """app.PRESETS, read from app.py's source (importing the app would import gradio)."""
    import ast
    tree = ast.parse((Path(__file__).resolve().parents[1] / "app.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "PRESETS")
    return ast.literal_eval(node.value)


def psnr(a, b) -> float:
    return float(10 * np.log10(1.0 / max(np.mean((a - b) ** 2), 1e-12)))


# ------------------------------------------------------------------------------ the real LAM package
@pytest.fixture(scope="module")
def lam_fixture():
    fixture = shared_fixture("lam", "p2-1.zip")
    t0 = time.perf_counter()
    avatar = load_lam_package(fixture)
    return avatar, time.perf_counter() - t0


def test_fixture_imports_fast_and_in_our_frame(lam_fixture):
    avatar, seconds = lam_fixture
    assert seconds <= 2.0
    pk = avatar.package
    assert len(pk) == 20018 and len(pk.targets) == 51 and "tongueOut" not in pk.targets
    assert pk.origin_source == "head joint"
    g = avatar.gaussians()
    lo, hi = g.means.min(0), g.means.max(0)
    assert 0.15 < hi[1] - lo[1] < 0.5 and abs(avatar.head_center).max() < 0.06  # metres, around our origin
    # the face looks down +z: the nose tip (frontmost opaque point) is in front of the head centre
    front = g.means[g.opacities > 0.5]
    assert front[:, 2].max() - avatar.head_center[2] > 0.08


def test_fixture_renders_a_solid_head_front_and_back(lam_fixture):
    avatar, _ = lam_fixture
    for yaw in (0.0, np.pi):
        cam = framing_camera(avatar.head_center, avatar.head_radius, yaw, 0.0, size=256)
        assert coverage(avatar.render(cam).alpha) > 0.99


def test_fixture_jaw_opens_and_controls_are_checked(lam_fixture):
    avatar, _ = lam_fixture
    assert lip_gap(avatar, {"jawOpen": 1.0}) > lip_gap(avatar) + 0.1
    # an ARKit name LAM has a target for moves exactly that target's vertices
    d = avatar.gaussians({"cheekPuff": 1.0}).means - avatar.gaussians().means
    assert np.allclose(d, avatar.package.targets["cheekPuff"], atol=1e-6)
    with pytest.raises(ValueError, match=r"unknown rig control\(s\) 'jawOpenn'"):
        avatar.gaussians({"jawOpenn": 1.0})
    turned = avatar.gaussians({"headYaw": 0.5}).means
    assert (turned - avatar.gaussians().means)[:, 0].max() > 0.02  # the face turns towards +x


def _eye_package(targets: dict | None = None):
    """A made-up package: a head joint with two eye joints (LAM's names lEye/rEye) and a jaw joint, each
    carrying one point 12 mm in front of its pivot (the pupils, the chin), plus a few head points."""
    from baselines.lam import LamPackage
    names = ["hip", "head", "lEye", "rEye", "jaw"]
    parent = np.array([-1, 0, 1, 1, 1])
    pos = np.array([[0, -0.5, 0], [0, 0, 0], [0.032, 0.03, 0.06], [-0.032, 0.03, 0.06], [0, -0.02, 0.0]])
    head_pts = np.array([[0, 0.1, 0], [0.08, 0, 0], [-0.08, 0, 0], [0, -0.1, 0], [0, 0, -0.09]])
    verts = np.concatenate([pos[2:] + [0, 0, 0.012], head_pts]).astype(np.float32)
    n = len(verts)
    joints = np.zeros((n, 4), np.int64)
    joints[:3, 0], joints[3:, 0] = (2, 3, 4), 1
    weights = np.zeros((n, 4), np.float32)
    weights[:, 0] = 1
    t = {k: v.astype(np.float32) for k, v in (targets or {}).items()}
    return LamPackage(
        name="eyes", vertices=verts, offsets=np.zeros((n, 3), np.float32), rgb=np.full((n, 3), 0.5, np.float32),
        opacities=np.ones(n, np.float32), scales=np.full((n, 3), 0.003, np.float32),
        quats=np.tile(np.float32([1, 0, 0, 0]), (n, 1)), targets=t, other_targets=[], joint_names=names,
        joint_parent=parent, joint_position=pos.astype(np.float64), bind_fix=np.tile(np.eye(4), (5, 1, 1)),
        skin_joints=joints, skin_weights=weights, vertex_order=np.arange(n), origin=np.zeros(3),
        origin_source="head joint")


def test_eye_and_jaw_joints_follow_the_arkit_controls_without_targets():
    """A package without eyeLook* targets turns its eye joints by the rig's own gaze angles
    (rig.gaze_from_arkit: per eye, Left/Right the subject's, Left at +x); jawOpen without a target turns
    the jaw joint; with targets, the same names drive the targets and no joint."""
    from baselines.lam import JAW_JOINT_MAX, LamAvatar
    avatar = LamAvatar(_eye_package())
    assert avatar._joint == {"head": 1, "eye_l": 2, "eye_r": 3, "jaw": 4}
    rest = avatar.gaussians().means

    def moved(controls):
        return avatar.gaussians(controls).means - rest

    out = np.radians(rig.EYE_LOOK_DEG["Out"])
    d = moved({"eyeLookOutLeft": 1.0})  # the left eye (at +x) looks out: its pupil goes towards +x
    assert np.allclose(d[0], [0.012 * np.sin(out), 0, 0.012 * (np.cos(out) - 1)], atol=1e-6)
    assert np.abs(d[1:]).max() < 1e-7
    d = moved({"eyeLookInRight": 0.5})  # the right eye (at -x) looks in, towards the nose: +x
    assert d[1, 0] > 0 and np.abs(d[[0, 2, 3, 4, 5, 6, 7]]).max() < 1e-7
    assert moved({"eyeLookUpLeft": 1.0, "eyeLookUpRight": 1.0})[:2, 1].min() > 0.004  # both pupils go up
    assert moved({"eyeLookDownLeft": 1.0})[0, 1] < -0.004
    chin = moved({"jawOpen": 1.0})[2]
    assert np.allclose(chin, [0, -0.012 * np.sin(JAW_JOINT_MAX), 0.012 * (np.cos(JAW_JOINT_MAX) - 1)], atol=1e-6)
    assert np.ptp(moved({"headYaw": 0.3})[:, 0]) > 0.01  # the head turns, eyes and jaw with it
    with pytest.raises(ValueError, match=r"unknown rig control\(s\) 'eyeYaw'"):  # the old rig's gaze control
        avatar.gaussians({"eyeYaw": 0.2})

    up = np.zeros((8, 3), np.float32)
    up[0, 1] = 0.001
    with_targets = LamAvatar(_eye_package({"eyeLookOutLeft": up, "jawOpen": -up, "tongueOut": up}))
    rest = with_targets.gaussians().means
    assert np.allclose(with_targets.gaussians({"eyeLookOutLeft": 0.5}).means - rest, up / 2, atol=1e-7)
    assert np.allclose(with_targets.gaussians({"jawOpen": 1.0}).means - rest, -up, atol=1e-7)
    # tongueOut: no motion in our rig, but a package's target of that name is driven
    assert np.allclose(with_targets.gaussians({"tongueOut": 2.0}).means - rest, up, atol=1e-7)  # clipped to 1


# ------------------------------------------------------------------------------ our export, round trip
@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    import skimage.data

    from model.ours.avatar import HeadSplat
    from model.ours.lam_export import export_lam_package
    avatar = HeadSplat().reconstruct(skimage.data.astronaut())
    path = export_lam_package(avatar, tmp_path_factory.mktemp("lam") / "astronaut.zip")
    return avatar, path, load_lam_package(path)


def test_export_layout_and_sizes(ours):
    _, path, lam = ours
    assert path.stat().st_size <= 15_000_000
    names = sorted(zipfile.ZipFile(path).namelist())
    # the folder's own entry first: LAM's loader finds the avatar's folder by it
    assert names == ["astronaut/"] + [f"astronaut/{n}" for n in ("animation.glb", "offset.ply", "skin.glb",
                                                                  "vertex_order.json")]
    assert 20_000 <= len(lam.package) <= 40_000
    assert sorted(lam.package.targets) == sorted(rig.ARKIT_NAMES)
    assert lam.package.origin_source == "headsplat" and lam.package.has_animation
    assert {"hip", "head"} <= set(lam.package.joint_names)  # the bones LAM's renderer looks up by name


def test_round_trip_renders_and_animates_like_ours(ours):
    """The issue's bar: the package renders within 28 dB of ours, at rest (front and back) and under
    every preset of the app (the morph targets are our rig linearised)."""
    avatar, _, lam = ours
    for yaw in (0.0, np.pi):
        cam = framing_camera(avatar.head_center, avatar.head_radius, yaw, 0.0, size=256)
        assert psnr(avatar.render(cam).rgb, lam.render(cam).rgb) > 28.0
    cam = framing_camera(avatar.head_center, avatar.head_radius, 0.0, 0.0, size=256)
    for name, controls in app_presets().items():
        ours_img, lam_img = avatar.render(cam, controls).rgb, lam.render(cam, controls).rgb
        assert psnr(ours_img, lam_img) > 28.0, name
        if controls:  # it moved, and the same way: closer to ours under the preset than its own rest pose is
            assert psnr(ours_img, lam_img) > psnr(ours_img, lam.render(cam).rgb) + 0.2, name
    assert lip_gap(lam, {"jawOpen": 1.0}) > lip_gap(lam) + 0.1


def test_export_is_atomic_and_checks_its_arguments(ours, tmp_path):
    from model.ours.lam_export import export_lam_package
    avatar = ours[0]
    with pytest.raises(ValueError, match="LAM's sizes"):
        export_lam_package(avatar, tmp_path / "x.zip", target=100_000)
    with pytest.raises(ValueError, match=r"\.zip"):
        export_lam_package(avatar, tmp_path / "x.tar")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ malformed packages
def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _write(tmp_path: Path, members: dict[str, bytes], name="bad.zip") -> Path:
    p = tmp_path / name
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    return p


def _expect(tmp_path: Path, path: Path, message: str):
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(LamPackageError, match=message):
        read_package(path)
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


def test_malformed_packages_are_refused_with_the_reason(ours, tmp_path):
    good = _members(ours[1])
    noise = {"__MACOSX/astronaut/._skin.glb": b"x", "astronaut/.DS_Store": b"\0" * 64}
    assert len(read_package(_write(tmp_path, {**good, **noise}, "noisy.zip"))) == len(ours[2].package)

    _expect(tmp_path, _write(tmp_path, {k: v for k, v in good.items() if not k.endswith("skin.glb")}),
            "missing member.*skin.glb")
    order = json.loads(good["astronaut/vertex_order.json"])
    _expect(tmp_path, _write(tmp_path, {**good, "astronaut/vertex_order.json": json.dumps(order[:-1]).encode()}),
            "vertex_order.json must be a permutation")
    # an offset.ply with one Gaussian fewer than the mesh has vertices
    from plyfile import PlyData, PlyElement
    v = PlyData.read(io.BytesIO(good["astronaut/offset.ply"]))["vertex"].data
    buf = io.BytesIO()
    PlyData([PlyElement.describe(v[:-1], "vertex")]).write(buf)
    _expect(tmp_path, _write(tmp_path, {**good, "astronaut/offset.ply": buf.getvalue()}),
            "offset.ply has .* Gaussians but skin.glb's mesh has")
    # a morph target whose displacements do not match the vertex count
    import pygltflib
    g = pygltflib.GLTF2.load_from_bytes(good["astronaut/skin.glb"])
    target = g.meshes[0].primitives[0].targets[0]["POSITION"]
    g.accessors[target].count -= 1
    _expect(tmp_path, _write(tmp_path, {**good, "astronaut/skin.glb": b"".join(g.save_to_bytes())}),
            "morph target 'browDownLeft' has .* displacements for")
    _expect(tmp_path, _write(tmp_path, {**good, "../x": b"escape"}), "unsafe entry name '../x'")


def test_zip_bomb_is_refused_before_inflating(ours, tmp_path):
    good = _members(ours[1])
    p = _write(tmp_path, good, "bomb.zip")
    # forge a member whose header declares 10 GB uncompressed (central directory and local header)
    with zipfile.ZipFile(p, "a", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("astronaut/huge.bin")
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, b"\0" * 1_000_000)
    raw = bytearray(p.read_bytes())
    idx = raw.rfind(b"PK\x01\x02")  # last central-directory entry: huge.bin
    raw[idx + 24:idx + 28] = (0xFFFFFFF0).to_bytes(4, "little")
    p.write_bytes(bytes(raw))
    _expect(tmp_path, p, "refused as a zip bomb")
    _expect(tmp_path, _write(tmp_path, {"a.txt": b"not a package"}, "empty.zip"), "missing member")
    (tmp_path / "junk.zip").write_bytes(b"not a zip at all")
    _expect(tmp_path, tmp_path / "junk.zip", "not a zip archive")


# ------------------------------------------------------------------------------ the registered method
def test_registered_method_reads_a_folder_and_aligns_to_the_photo(ours, tmp_path, monkeypatch):
    import shutil

    import skimage.data
    from PIL import Image
    assert get_spec("lam-import").kind == "external"
    monkeypatch.delenv("HEADSPLAT_LAM_PACKAGES", raising=False)
    with pytest.raises(LamPackageError, match="HEADSPLAT_LAM_PACKAGES"):
        LamImport()
    photo = skimage.data.astronaut()
    (tmp_path / "astronaut").mkdir()
    Image.fromarray(photo).save(tmp_path / "astronaut" / "input.png")
    shutil.copy(ours[1], tmp_path / "astronaut" / "avatar.zip")
    monkeypatch.setenv("HEADSPLAT_LAM_PACKAGES", str(tmp_path))
    avatar = get_spec("lam-import").load().reconstruct(photo)
    meta = avatar.metadata()["alignment"]
    # our own avatar comes back in the photo's frame: a near-identity similarity, landmarks on the photo
    assert abs(meta["scale"] - 1) < 0.05 and meta["rotation_deg"] < 5 and meta["nme"] < 0.08
    cam = avatar.input_camera
    assert psnr(avatar.render(cam).rgb, ours[0].render(cam).rgb) > 20.0
    with pytest.raises(LamPackageError, match="no LAM package for this photo"):
        LamImport(tmp_path).reconstruct(photo[::-1].copy())
    assert align_to_photo(ours[2], photo).metadata()["alignment"]["nme"] == meta["nme"]


def test_export_merges_flat_regions_and_keeps_detail():
    """cluster_ids on a made-up atlas: two groups (regions), each a 64 x 64 grid of Gaussians (one per texel
    of a 256 atlas), the left half of each flat grey, the right half random colours. At a third of the
    count, clusters stay within a group, hit the target, and the flat half merges far more. With a rig
    motion that moves part of the flat half (a lip across the mouth slit), no cluster holds both
    moving and still Gaussians; without it, some do."""
    from model.ours.lam_export import cluster_ids
    rng = np.random.default_rng(0)
    g = (np.arange(64) + 0.5) / 256
    u, v = np.meshgrid(g, g, indexing="ij")
    uv = np.concatenate([np.stack([u.ravel(), v.ravel()], 1), np.stack([u.ravel() + 0.5, v.ravel()], 1)])
    faces = np.repeat([0, 1], 64 * 64)
    means = np.concatenate([uv * 0.1, np.zeros((len(uv), 1))], 1)  # a flat sheet, 0.4 mm between Gaussians
    flat = (uv[:, 0] % 0.5) < 32 / 256
    rgb = np.where(flat[:, None], 0.5, rng.random((len(uv), 3)))
    target = len(uv) // 3
    ids = cluster_ids(faces, uv, 256, target, means, rgb, np.ones(len(uv)), head_radius=0.1)
    k = ids.max() + 1
    assert 0.9 * target <= k <= target
    assert all(len(np.unique(faces[ids == c])) == 1 for c in range(k))
    sizes = np.bincount(ids)
    assert sizes[ids[flat]].mean() > 4 * sizes[ids[~flat]].mean()

    moving = flat & (uv[:, 1] * 256 > 37)  # a boundary off the quadtree's block edges
    motion = np.where(moving[:, None], [0.0, -0.01, 0.0], 0.0)  # 10 mm down at weight 1
    for m, mixed in ((None, True), (motion, False)):
        ids = cluster_ids(faces, uv, 256, target, means, rgb, np.ones(len(uv)), head_radius=0.1, motion=m)
        assert 0.9 * target <= ids.max() + 1 <= target
        assert np.isin(ids[moving], ids[~moving]).any() == mixed


def test_an_imported_package_follows_a_face_through_the_hubs_tracker(ours):
    """LAM packages have no tracker of their own: the hub's (our template fitted to the package's own
    render) drives them, so the mirror, clip driving and the reenactment protocols animate them."""
    from model.core.image_io import to_uint8
    _, _, lam = ours
    cam = lam.input_camera
    rest = lam.neutral_offsets(to_uint8(lam.render(cam).rgb))
    assert max(abs(v) for k, v in lam.retarget(to_uint8(lam.render(cam).rgb), neutral=rest).items()
               if k in rig.EXPRESSIONS) < 0.05
    assert lam.retarget(to_uint8(lam.render(cam, {"jawOpen": 1.0}).rgb), neutral=rest)["jawOpen"] > 0.5
