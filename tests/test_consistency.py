"""Multi-view consistency and AKD: depth maps of an analytic sphere rendered by ray casting (an
independent, exactly consistent renderer), perturbed views, identity over views, landmark distances."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from evaluation import consistency as C
from model.core.camera import orbit_camera

RADIUS = 0.1  # metres, sphere at the world origin


def sphere_view(yaw: float, pitch: float = 0.0, size: int = 96, centre=(0.0, 0.0, 0.0)):
    """(z-depth [H,W] metres, alpha [H,W], camera) of a sphere, by exact ray casting per pixel centre."""
    cam = orbit_camera(yaw, pitch, radius=0.5, width=size, height=size, fov_y=np.deg2rad(30))
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    d_cam = np.stack([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, np.ones_like(u)], -1)  # z = 1
    d = d_cam @ cam.R  # world direction whose camera z-component is 1: the ray parameter is z-depth
    o = cam.position - np.asarray(centre)
    a, b, c = (d * d).sum(-1), 2 * (d @ o), o @ o - RADIUS ** 2
    disc = b * b - 4 * a * c
    hit = disc > 0
    z = np.where(hit, (-b - np.sqrt(np.where(hit, disc, 0))) / (2 * a), 0.0)
    return z, hit.astype(np.float64), cam


def test_consistent_views_have_near_zero_error():
    for yaw_a, yaw_b in [(0.0, 0.3), (0.0, np.pi / 2), (1.0, 1.4)]:
        za, aa, ca = sphere_view(yaw_a)
        zb, ab, cb = sphere_view(yaw_b, pitch=0.1)
        r = C.depth_reprojection_error(za, aa, ca, zb, ab, cb)
        # bilinear sampling of a curved surface at 96 px: < 0.5 mm even at grazing angles (90 deg apart)
        assert r["mean_abs_m"] < 5e-4, r
        assert r["valid_fraction"] > 0.2, r


def test_perturbed_view_has_clear_error():
    za, aa, ca = sphere_view(0.0)
    zb, ab, cb = sphere_view(0.3)
    base = C.depth_reprojection_error(za, aa, ca, zb, ab, cb)["mean_abs_m"]
    # B's surface pushed 1 cm away in its left half: caught from A to B
    far = zb.copy()
    far[:, :48] += 0.01 * (ab[:, :48] > 0)
    r_far = C.depth_reprojection_error(za, aa, ca, far, ab, cb)
    # B's surface pulled 1 cm nearer (a floater in front): hidden from A to B, caught from B to A
    near = zb - 0.01 * (ab > 0)
    r_near = C.depth_reprojection_error(za, aa, ca, near, ab, cb)
    # a view of a different geometry (sphere moved by 2 cm): inconsistent everywhere
    zm, am, cm = sphere_view(0.3, centre=(0.0, 0.0, 0.02))
    r_moved = C.depth_reprojection_error(za, aa, ca, zm, am, cm)
    for r in (r_far, r_near, r_moved):
        assert r["mean_abs_m"] > 2e-3 > 10 * base, (base, r)  # base ~0.08 mm
    assert r_near["b_to_a_mean_abs_m"] > 5e-3
    assert r_far["a_to_b_mean_abs_m"] > 2e-3


def test_occluded_points_are_not_errors():
    """Opposite views see disjoint halves: nothing visible in both, so nothing is compared."""
    za, aa, ca = sphere_view(0.0)
    zb, ab, cb = sphere_view(np.pi)
    r = C.depth_reprojection_error(za, aa, ca, zb, ab, cb)
    assert r["valid_fraction"] < 0.05
    assert not (r["mean_abs_m"] > 1e-3)  # NaN (nothing compared) or tiny at the rim


def test_sweep_and_guards():
    views = [sphere_view(y) for y in np.linspace(-0.6, 0.6, 4)]
    r = C.sweep_depth_reprojection_error([v[0] for v in views], [v[1] for v in views], [v[2] for v in views])
    assert len(r["pairs"]) == 3 and r["mean_abs_m"] < 2e-4
    ring = [sphere_view(y) for y in np.deg2rad(np.arange(-180, 180, 30))]
    w = C.sweep_depth_reprojection_error([v[0] for v in ring], [v[1] for v in ring], [v[2] for v in ring], wrap=True)
    assert len(w["pairs"]) == 12 and w["mean_abs_m"] < 2e-4  # 150° -> -180° closes the turn
    za, aa, ca = views[0]
    with pytest.raises(ValueError, match="camera"):
        C.depth_reprojection_error(za[:-1], aa[:-1], ca, za, aa, ca)
    empty = C.depth_reprojection_error(np.zeros_like(za), np.zeros_like(aa), ca, za, aa, ca)
    assert empty["valid_fraction"] < 0.05


def test_akd_formula():
    rng = np.random.default_rng(0)
    gt = rng.random((478, 2)) * 500
    assert C.akd(gt + np.array([3.0, 4.0]), gt) == pytest.approx(5.0)
    assert C.akd(gt, gt) == 0.0
    with pytest.raises(ValueError, match="matching"):
        C.akd(gt[:10], gt)


def test_akd_on_images_follows_a_shift():
    img = skimage.data.astronaut()
    shifted = np.zeros_like(img)
    shifted[:, 6:] = img[:, :-6]
    d = C.akd_images(shifted, img)
    assert d == pytest.approx(6.0, abs=1.0)
    assert C.akd_images(img, img) == pytest.approx(0.0, abs=1e-6)
    assert C.akd_images(np.full_like(img, 128), img) is None


def test_identity_consistency_counts_missing_faces():
    from evaluation.identity import dlib_model
    img = skimage.data.astronaut()
    m = dlib_model()
    r = C.identity_consistency(m, img, [img, np.full_like(img, 200)], yaws=[0.0, 1.5])
    assert r["values"][0] == pytest.approx(1.0) and r["values"][1] is None
    assert r["face_detect_fail_rate"] == 0.5 and r["mean"] == pytest.approx(1.0)


def test_project_renderer_views_are_consistent():
    """Expected depth from model/core/render.py of a shell of flat Gaussians (radius 10 cm): a few mm at
    most (splats have extent), and a 1 cm change of one view stands out clearly."""
    from model.core.gaussians import Gaussians, rotmat_to_quat
    from model.core.render import render
    rng = np.random.default_rng(0)
    n = 20000
    normal = rng.standard_normal((n, 3))
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    # local frame columns (t1, t2, normal): thin discs tangent to the sphere
    t1 = np.cross(normal, np.where(np.abs(normal[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]]))
    t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
    rotm = np.stack([t1, np.cross(normal, t1), normal], axis=2)
    g = Gaussians.from_rgb(RADIUS * normal, rotmat_to_quat(rotm), np.tile([0.006, 0.006, 0.0005], (n, 1)),
                           np.full(n, 0.9), np.full((n, 3), 0.5))
    views = []
    for yaw in (0.0, 0.3):
        cam = orbit_camera(yaw, 0.0, radius=0.5, width=128, height=128, fov_y=np.deg2rad(30))
        r = render(g, cam)
        views.append((r.depth, r.alpha, cam))
    ok = C.depth_reprojection_error(*views[0], *views[1])
    depth_b, alpha_b, cam_b = views[1]
    bad = depth_b.copy()
    bad[:, :64] += 0.01 * (alpha_b[:, :64] > 0.5)
    worse = C.depth_reprojection_error(*views[0], bad, alpha_b, cam_b)
    assert ok["mean_abs_m"] < 3e-3 and ok["valid_fraction"] > 0.8, ok
    assert worse["mean_abs_m"] > 2 * ok["mean_abs_m"] + 2e-3, (ok, worse)
