import numpy as np
import pytest
from plyfile import PlyData

from model.core.camera import orbit_camera
from model.core.export import read_ply, read_splat, to_file_frame, write_ply, write_splat
from model.core.gaussians import Gaussians, normalize_quats
from model.core.render import render


def _scene(n=300, k=4, seed=0):
    r = np.random.default_rng(seed)
    return Gaussians(r.normal(scale=0.05, size=(n, 3)), normalize_quats(r.normal(size=(n, 4))),
                     r.uniform(0.003, 0.02, (n, 3)), r.uniform(0.2, 0.95, n), r.normal(scale=0.3, size=(n, k, 3)))


def test_ply_round_trip_renders_the_same_image(tmp_path):
    g = _scene()
    h = read_ply(write_ply(g, tmp_path / "a.ply"))
    assert h.sh.shape == g.sh.shape
    cam = orbit_camera(0.4, 0.1, 0.5, width=64, height=64)
    a, b = render(g, cam, backend="cpu"), render(h, cam, backend="cpu")
    assert np.abs(a.rgb - b.rgb).max() < 1e-5 and np.abs(a.alpha - b.alpha).max() < 1e-5


def test_ply_is_the_standard_3dgs_layout_for_third_party_readers(tmp_path):
    g = _scene(n=10, k=4)
    ply = PlyData.read(str(write_ply(g, tmp_path / "a.ply")))
    v = ply["vertex"]
    names = [p.name for p in v.properties]
    assert names[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert names[9:18] == [f"f_rest_{i}" for i in range(9)]
    assert names[18:] == ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert all(p.val_dtype in ("f4", "float32") for p in v.properties)
    # opacity is a logit, scales are logs, f_rest is channel-major (R coefficients first)
    assert np.allclose(1 / (1 + np.exp(-v["opacity"])), g.opacities, atol=1e-6)
    assert np.allclose(np.exp(v["scale_1"]), g.scales[:, 1], rtol=1e-6)
    f = to_file_frame(g)  # files hold the 3DGS frame (y down): the y-odd SH terms change sign
    assert np.allclose(v["f_rest_0"], f.sh[:, 1, 0]) and np.allclose(v["f_rest_3"], f.sh[:, 1, 1])
    assert np.allclose(v["f_rest_0"], -g.sh[:, 1, 0])


def test_splat_round_trip_keeps_geometry_and_quantises_colour(tmp_path):
    g = _scene(k=1)
    raw = write_splat(g, tmp_path / "a.splat").read_bytes()
    assert len(raw) == 32 * len(g)
    h = read_splat(tmp_path / "a.splat")
    order = np.argsort(-(g.scales.prod(1) * g.opacities), kind="stable")
    assert np.allclose(h.means, g.means[order]) and np.allclose(h.scales, g.scales[order])
    assert np.abs(h.rgb - g.rgb[order]).max() <= 0.5 / 255 + 1e-6
    dots = np.abs((h.quats * normalize_quats(g.quats[order])).sum(1))
    assert dots.min() > 0.99


def test_malformed_files_are_rejected_clearly(tmp_path):
    (tmp_path / "bad.splat").write_bytes(b"\0" * 33)
    with pytest.raises(ValueError, match="multiple of 32"):
        read_splat(tmp_path / "bad.splat")
    (tmp_path / "bad.ply").write_bytes(b"not a ply")
    with pytest.raises(ValueError, match="not a readable 3DGS"):
        read_ply(tmp_path / "bad.ply")


def test_files_use_the_3dgs_frame_and_sh_turns_with_it(tmp_path):
    """Files are y-down/z-forward (the head turned 180° about x); colours seen from a direction are
    the same after the turn when seen from the turned direction (checked on the SH evaluation)."""
    from model.core.gaussians import eval_sh
    rng = np.random.default_rng(3)
    n = 50
    q = rng.normal(size=(n, 4))
    g = Gaussians(rng.normal(size=(n, 3)), q / np.linalg.norm(q, axis=1, keepdims=True), rng.uniform(0.01, 0.1, (n, 3)),
                  rng.uniform(0.1, 1, n), rng.normal(size=(n, 16, 3)) * 0.2)
    f = to_file_frame(g)
    assert np.allclose(f.means, g.means * [1, -1, -1])
    # rotation matrices: R_file = R_x(180) R
    from model.core.gaussians import quat_to_rotmat
    assert np.allclose(quat_to_rotmat(f.quats), np.diag([1, -1, -1]) @ quat_to_rotmat(g.quats), atol=1e-6)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    assert np.allclose(eval_sh(f.sh, d * [1, -1, -1]), eval_sh(g.sh, d), atol=1e-5)
    raw = np.fromfile(write_splat(g, tmp_path / "a.splat"), np.float32).reshape(n, 8)
    assert np.allclose(np.sort(raw[:, 1]), np.sort(-g.means[:, 1]), atol=1e-6)  # y stored downwards
