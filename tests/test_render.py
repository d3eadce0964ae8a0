"""The renderer against an independent float64 reference (every Gaussian at every pixel, no tiles)."""
from __future__ import annotations

import numpy as np
import pytest

from model.core.camera import Camera, intrinsics, look_at, orbit_camera
from model.core.gaussians import Gaussians, covariances
from model.core.render import available_backends, render

W, H = 64, 48


def reference_render(g: Gaussians, cam: Camera, bg):
    """gsplat 1.5.3 classic rules, written from its CUDA sources, in float64 and brute force.
    Returns rgb [H,W,3] over bg, alpha, depth and the mask of pixels stopped on transmittance."""
    W, H = cam.width, cam.height
    pc = cam.to_camera(g.means)
    x, y, z = pc.T
    o = g.opacities.astype(np.float64)
    col = g.colors(cam.position).astype(np.float64)
    cov_c = cam.R @ covariances(g.quats, g.scales) @ cam.R.T
    # gsplat samples pixel j at j + 0.5: shift the principal point for its clamp limits
    fx, fy, gcx, gcy = cam.fx, cam.fy, cam.cx + 0.5, cam.cy + 0.5
    tfx, tfy = 0.5 * W / fx, 0.5 * H / fy
    with np.errstate(divide="ignore", invalid="ignore"):
        tx = z * np.clip(x / z, -(gcx / fx + 0.3 * tfx), (W - gcx) / fx + 0.3 * tfx)
        ty = z * np.clip(y / z, -(gcy / fy + 0.3 * tfy), (H - gcy) / fy + 0.3 * tfy)
        J = np.zeros((len(z), 2, 3))
        J[:, 0, 0], J[:, 0, 2] = fx / z, -fx * tx / z**2
        J[:, 1, 1], J[:, 1, 2] = fy / z, -fy * ty / z**2
        cov2 = J @ cov_c @ J.transpose(0, 2, 1) + 0.3 * np.eye(2)
        conic = np.linalg.inv(np.where((z >= 0.01)[:, None, None], cov2, np.eye(2)))
        uv = np.stack([fx * x / z + cam.cx, fy * y / z + cam.cy], 1)
    keep = (z >= 0.01) & (o >= 1 / 255)
    order = np.flatnonzero(keep)[np.argsort(z[keep].astype(np.float32), kind="stable")]  # float32 z, as gsplat

    py, px = np.mgrid[0:H, 0:W].astype(np.float64)
    T = np.ones((H, W))
    done = np.zeros((H, W), bool)
    rgb, dsum = np.zeros((H, W, 3)), np.zeros((H, W))
    for i in order:
        dx, dy = px - uv[i, 0], py - uv[i, 1]
        sigma = 0.5 * (conic[i, 0, 0] * dx * dx + conic[i, 1, 1] * dy * dy) + conic[i, 0, 1] * dx * dy
        a = np.minimum(0.999, o[i] * np.exp(-sigma))
        hit = ~done & (sigma >= 0) & (a >= 1 / 255)
        nT = T * (1 - a)
        stop = hit & (nT <= 1e-4)
        done |= stop
        use = hit & ~stop
        w = np.where(use, a * T, 0.0)
        rgb += w[..., None] * col[i]
        dsum += w * z[i]
        T = np.where(use, nT, T)
    alpha = 1 - T
    depth = np.where(alpha > 0, dsum / np.where(alpha > 0, alpha, 1), 0.0)
    return np.clip(rgb + T[..., None] * np.asarray(bg, np.float64), 0, 1), alpha, depth, done


def random_quats(rng, n):
    q = rng.normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def mixed_scene(seed: int = 0, sh_degree: int = 2) -> tuple[Gaussians, Camera]:
    """Blobs, needles, opaque stacks, Gaussians behind the camera, beyond the frame and straddling it."""
    rng = np.random.default_rng(seed)
    parts = []

    def add(means, scales, opac, quats=None):
        n = len(means)
        k = (sh_degree + 1) ** 2
        sh = rng.normal(scale=0.4, size=(n, k, 3))
        sh[:, 0] = (rng.uniform(0.1, 0.9, (n, 3)) - 0.5) / 0.28209479177387814
        parts.append(Gaussians(means, random_quats(rng, n) if quats is None else quats, scales, opac, sh))

    n = 120  # ordinary blobs around the origin
    add(rng.uniform([-0.15, -0.12, -0.1], [0.15, 0.12, 0.1], (n, 3)), rng.uniform(0.003, 0.03, (n, 3)),
        rng.uniform(0.05, 1.0, n))
    n = 20  # needles: one long axis, two tiny ones
    add(rng.uniform(-0.1, 0.1, (n, 3)), np.stack([rng.uniform(0.03, 0.1, n), np.full(n, 2e-4), np.full(n, 1e-4)], 1),
        rng.uniform(0.5, 1.0, n))
    n = 8  # fully opaque stack in front, centred: pixels there stop on transmittance
    add(np.stack([rng.uniform(-0.01, 0.01, n), rng.uniform(-0.01, 0.01, n), 0.15 + 0.01 * np.arange(n)], 1),
        np.full((n, 3), 0.03), np.ones(n))
    n = 10  # behind the camera (at z = +1 looking at -z) and between the camera and the near plane
    add(np.stack([rng.uniform(-0.05, 0.05, n), rng.uniform(-0.05, 0.05, n),
                  np.r_[rng.uniform(1.05, 1.5, n - 2), 1.0 - 0.005, 1.0 - 0.009]], 1), np.full((n, 3), 0.02),
        np.ones(n))
    n = 10  # far off-screen, and straddling the image border
    add(np.stack([np.r_[rng.uniform(1.0, 3.0, 5), np.full(5, 0.19)], rng.uniform(-0.05, 0.05, n),
                  np.zeros(n)], 1), np.full((n, 3), 0.02), np.full(n, 0.9))
    g = Gaussians.concat(parts)
    cam = Camera(intrinsics(70.0, W, H), look_at(np.array([0.0, 0.0, 1.0]), np.zeros(3)), W, H)
    return g, cam


def assert_matches(g, cam, bg=(0.2, 0.4, 0.6), tol=1e-4):
    out = render(g, cam, background=bg, backend="cpu")
    rgb, alpha, depth, done = reference_render(g, cam, bg)
    h, w = cam.height, cam.width
    assert out.rgb.shape == (h, w, 3) and out.alpha.shape == (h, w) and out.depth.shape == (h, w)
    assert out.rgb.dtype == out.alpha.dtype == out.depth.dtype == np.float32
    errs = (np.abs(out.rgb - rgb).max(), np.abs(out.alpha - alpha).max(), np.abs(out.depth - depth).max())
    print("max abs error rgb/alpha/depth", errs)
    assert max(errs) <= tol, f"max abs error rgb/alpha/depth = {errs}"
    return alpha, depth, done


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cpu_matches_reference_mixed_scene(seed):
    g, cam = mixed_scene(seed)
    alpha, depth, done = assert_matches(g, cam)
    # the scene really exercises what it claims to
    assert done.sum() > 20  # pixels stopped on transmittance
    assert ((alpha > 0) & (alpha < 0.5)).sum() > 50 and (alpha == 0).sum() > 0
    assert 0.75 < depth[alpha > 0.5].min() and depth.max() < 1.2  # metres from the camera at z = 1


@pytest.mark.parametrize("w,h", [(W, H), (61, 45)])  # 61 x 45: partial tiles at the right and bottom
def test_cpu_matches_reference_from_an_angle(w, h):
    g, _ = mixed_scene(3, sh_degree=3)
    cam = Camera(intrinsics(90.0, w, h), look_at(np.array([0.6, 0.3, 0.7]), np.array([-0.12, 0.05, 0.0])), w, h)
    alpha, _, _ = assert_matches(g, cam, bg=(1.0, 1.0, 1.0))
    assert alpha[-13:].max() > 0.1 and alpha[:, -5:].max() > 0.1  # partial tiles (8x16 px tiles) draw something


def test_big_gaussian_and_close_to_near_plane():
    """Gaussians far larger than a tile, and ones just past the near plane, whose x/z is clamped."""
    rng = np.random.default_rng(7)
    means = np.array([[0.0, 0.0, 0.0], [0.05, -0.02, 0.95], [0.0, 0.0, 0.985], [-0.004, 0.003, 0.989]])
    g = Gaussians.from_rgb(means, random_quats(rng, 4), [[0.3, 0.2, 0.05], [0.01, 0.08, 0.01],
                                                          [0.002, 0.001, 0.001], [0.003, 0.003, 0.001]],
                           [0.6, 0.7, 0.8, 0.9], rng.uniform(0, 1, (4, 3)))
    cam = Camera(intrinsics(70.0, W, H), look_at(np.array([0.0, 0.0, 1.0]), np.zeros(3)), W, H)
    alpha, _, _ = assert_matches(g, cam)
    assert alpha.min() > 0.0


def test_rows_where_all_but_one_pixel_stopped():
    """Pixel-sized opaque Gaussians, two layers deep, stop every pixel but one of the first and last rows of
    each 8-row band; a large Gaussian behind must still reach that pixel (the kernel skips rows with no live
    pixel at the top and bottom of a Gaussian's rows in a tile)."""
    cam = Camera(intrinsics(70.0, W, H), look_at(np.array([0.0, 0.0, 1.0]), np.zeros(3)), W, H)
    rows = [y for y in range(H) if y % 8 in (0, 7)]
    px = [(x, y) for y in rows for x in range(W) if x != (5 + y) % W]
    uv = np.array(px, np.float64)
    means = []
    for depth in (0.5, 0.49):  # camera-frame z = 1 - world z
        z = 1.0 - depth
        pts_c = np.stack([(uv[:, 0] - cam.cx) * z / cam.fx, (uv[:, 1] - cam.cy) * z / cam.fy, np.full(len(uv), z)], 1)
        means.append((pts_c - cam.t) @ cam.R)  # camera -> world
    means = np.concatenate(means + [np.array([[0.0, 0.0, -0.2]])])
    n = len(means)
    scales = np.full((n, 3), 1e-6)
    scales[-1] = 0.3
    rgb = np.tile([[0.9, 0.1, 0.1]], (n, 1))
    rgb[-1] = [0.1, 0.2, 0.9]
    g = Gaussians.from_rgb(means, np.tile([1.0, 0, 0, 0], (n, 1)), scales, np.ones(n), rgb)
    alpha, _, done = assert_matches(g, cam, bg=(0.0, 0.0, 0.0))
    assert done[rows].sum(1).tolist() == [W - 1] * len(rows)


def test_projection_matches_gsplats_torch_reference():
    """EWA projection against gsplat's own pure-PyTorch version (gsplat.cuda._torch_impl, private API; it runs
    on the CPU): centres and the quadratic form σ(d) at sample offsets, for the valid Gaussians."""
    torch = pytest.importorskip("torch")
    timpl = pytest.importorskip("gsplat.cuda._torch_impl")
    from model.core import _raster_cpu as rc

    g, cam = mixed_scene(6, sh_degree=0)
    n = len(g)
    proj, bbox, valid = np.empty((n, rc._NCOL), np.float32), np.empty((n, 4), np.int32), np.empty(n, bool)
    rc._project(g.means, g.quats, g.scales, g.opacities, cam.world_to_cam, cam.fx, cam.fy, cam.cx, cam.cy,
                W, H, rc.NEAR_PLANE, rc.EPS2D, proj, bbox, valid)
    Kg = cam.K.copy()
    Kg[:2, 2] += 0.5  # gsplat's pixel centres are at +0.5
    f64 = lambda a: torch.as_tensor(np.asarray(a, np.float64))  # noqa: E731
    radii, means2d, depths, conics, _ = timpl._fully_fused_projection(
        f64(g.means), f64(covariances(g.quats, g.scales)), f64(cam.world_to_cam)[None], f64(Kg)[None], W, H)
    radii, means2d, depths, conics = (t[0].numpy() for t in (radii, means2d, depths, conics))
    theirs = (radii > 0).all(1) & (g.opacities >= 1 / 255)
    assert valid.sum() > 100 and not (valid & ~theirs).any()  # we never keep what gsplat culls
    np.testing.assert_allclose(proj[valid, rc._U] + 0.5, means2d[valid, 0], atol=2e-3)
    np.testing.assert_allclose(proj[valid, rc._V] + 0.5, means2d[valid, 1], atol=2e-3)
    np.testing.assert_allclose(proj[valid, rc._Z], depths[valid], rtol=1e-6)
    d = np.random.default_rng(0).normal(size=(2, 5)) * 3.0  # px offsets
    dx, dy = d[0][None], d[1][None]
    A, beta, gamma = (proj[valid, c][:, None].astype(np.float64) for c in (rc._A, rc._BETA, rc._GAMMA))
    ours = 0.5 * A * (dx + beta * dy) ** 2 + gamma * dy**2
    c0, c1, c2 = (conics[valid, c][:, None] for c in range(3))
    np.testing.assert_allclose(ours, 0.5 * (c0 * dx**2 + c2 * dy**2) + c1 * dx * dy, rtol=1e-4, atol=1e-6)
    # what gsplat keeps and we cull must have its alpha >= 1/255 ellipse's box off the image (gsplat's own
    # box is a little larger); a box corner (x0, y0) in gsplat's pixel frame, pixel centres at j + 0.5
    extra = theirs & ~valid
    cov = np.linalg.inv(np.stack([conics[:, [0, 1]], conics[:, [1, 2]]], 1)[extra])
    k = 2 * np.log(255 * g.opacities[extra])
    hx, hy = np.sqrt(k * cov[:, 0, 0]), np.sqrt(k * cov[:, 1, 1])
    mx, my = means2d[extra, 0], means2d[extra, 1]
    assert ((mx + hx < 0.5) | (mx - hx > W - 0.5) | (my + hy < 0.5) | (my - hy > H - 0.5)).all()


def test_non_finite_gaussians_are_culled():
    g, cam = mixed_scene(8, sh_degree=0)  # DC colour: no view directions from infinite means
    ref = render(g, cam, backend="cpu")
    bad = Gaussians.from_rgb([[np.nan, 0, 0], [0, 0, np.inf], [np.inf, 0, 0.5], [0, 0, 0], [0.01, 0, 0]],
                             [[1.0, 0, 0, 0]] * 4 + [[np.nan, 0, 0, 0]], [[0.05] * 3, [0.05] * 3, [0.05] * 3,
                                                                         [np.nan] * 3, [0.05] * 3],
                             [1.0, 1.0, 1.0, 1.0, 1.0], [[1.0, 0, 0]] * 5)
    out = render(Gaussians.concat([g, bad]), cam, backend="cpu")
    for name in ("rgb", "alpha", "depth"):
        np.testing.assert_array_equal(getattr(out, name), getattr(ref, name))


def test_background_image_and_color():
    g, cam = mixed_scene(4)
    bg_img = np.random.default_rng(0).uniform(0, 1, (H, W, 3)).astype(np.float32)
    a = render(g, cam, background=bg_img, backend="cpu")
    b = render(g, cam, background=(0.0, 0.0, 0.0), backend="cpu")
    np.testing.assert_allclose(a.rgb, np.clip(b.rgb + (1 - b.alpha)[..., None] * bg_img, 0, 1), atol=1e-6)
    np.testing.assert_array_equal(a.alpha, b.alpha)
    with pytest.raises(ValueError):
        render(g, cam, background=np.zeros((H + 1, W, 3)))


def test_empty_scene_is_background():
    g = Gaussians(np.zeros((0, 3)), np.zeros((0, 4)), np.zeros((0, 3)), np.zeros(0), np.zeros((0, 1, 3)))
    cam = orbit_camera(0.3, 0.1, 1.0, width=W, height=H)
    out = render(g, cam, background=(0.1, 0.5, 0.9), backend="cpu")
    np.testing.assert_array_equal(out.rgb, np.broadcast_to(np.float32([0.1, 0.5, 0.9]), (H, W, 3)))
    assert not out.alpha.any() and not out.depth.any()
    # Gaussians that are all culled (behind the camera) render the same
    g2 = Gaussians.from_rgb([[0, 0, 5.0]], [[1, 0, 0, 0]], [[0.1] * 3], [1.0], [[1, 0, 0]])
    out2 = render(g2, Camera(intrinsics(70.0, W, H), look_at(np.array([0.0, 0, 1]), np.zeros(3)), W, H),
                  background=(0.1, 0.5, 0.9), backend="cpu")
    np.testing.assert_allclose(out2.rgb, out.rgb)
    assert not out2.alpha.any()


@pytest.mark.parametrize("yaw,pitch", [(0.0, 0.0), (1.2, 0.4), (-2.5, -0.7), (np.pi, 0.0)])
def test_orbit_camera_centres_its_target(yaw, pitch):
    target = np.array([0.02, -0.03, 0.01])
    cam = orbit_camera(yaw, pitch, 0.8, target, width=W + 1, height=H + 1)  # odd size: a centre pixel
    uv, z = cam.project(target[None])
    np.testing.assert_allclose(uv[0], [W / 2, H / 2], atol=1e-9)
    assert z[0] == pytest.approx(0.8)
    g = Gaussians.from_rgb(target[None], [[1, 0, 0, 0]], [[0.004] * 3], [1.0], [[1.0, 0.5, 0.25]])
    out = render(g, cam, backend="cpu")
    assert np.unravel_index(np.argmax(out.alpha), out.alpha.shape) == (H // 2, W // 2)
    assert out.depth[H // 2, W // 2] == pytest.approx(0.8, abs=1e-6)
    # symmetric footprint about the centre pixel
    np.testing.assert_allclose(out.alpha, out.alpha[::-1, ::-1], atol=1e-6)


def test_backend_selection():
    assert available_backends()[-1] == "cpu"
    g, cam = mixed_scene(5, sh_degree=0)
    with pytest.raises(ValueError):
        render(g, cam, backend="vulkan")
    skewed = cam.K.copy()
    skewed[0, 1] = 0.5
    with pytest.raises(ValueError, match="skew"):
        render(g, Camera(skewed, cam.world_to_cam, W, H), backend="cpu")
    if "gsplat" not in available_backends():
        with pytest.raises(RuntimeError, match="CUDA"):
            render(g, cam, backend="gsplat")


@pytest.mark.skipif("gsplat" not in available_backends(), reason="gsplat backend needs a CUDA GPU")
@pytest.mark.parametrize("seed", [0, 1])
def test_gsplat_matches_cpu(seed):
    """Same rules, but gsplat runs float32 with fast-math exp: a Gaussian right at the alpha or transmittance
    threshold may flip (a jump of ~1/255), and expected depth is a ratio, so compare it where alpha > 0.5."""
    g, cam = mixed_scene(seed)
    a = render(g, cam, background=(0.3, 0.3, 0.3), backend="gsplat")
    b = render(g, cam, background=(0.3, 0.3, 0.3), backend="cpu")
    for name in ("rgb", "alpha"):
        err = np.abs(getattr(a, name) - getattr(b, name))
        assert err.max() < 1e-2 and err.mean() < 2e-4, f"{name}: gsplat vs cpu max {err.max()}, mean {err.mean()}"
    solid = (a.alpha > 0.5) & (b.alpha > 0.5)
    assert solid.sum() > 100
    assert np.abs(a.depth - b.depth)[solid].max() < 1e-3


def test_benchmark_head_scene_is_deterministic_and_framed():
    from benchmarks.scenes import head_camera, head_scene
    g = head_scene(3000, seed=1)
    assert len(g) == 3000 and np.array_equal(g.means, head_scene(3000, seed=1).means)
    assert g.opacities.min() >= 0.5 and g.opacities.max() <= 1.0
    alpha = render(g, head_camera(96), backend="cpu").alpha
    rows = np.flatnonzero(alpha.max(1) > 0.5)
    assert 0.03 < rows[0] / 96 < 0.12 and rows[-1] == 95  # head top near the frame top, neck to the bottom
    assert (alpha[48, 20:76] > 0.99).all()  # the surface is covered: no see-through across the face


def test_concurrent_renders_from_threads():
    """Gradio serves requests from threads: parallel numba kernels must give the same images concurrently."""
    from concurrent.futures import ThreadPoolExecutor
    g, cam = mixed_scene(9)
    cams = [orbit_camera(yaw, 0.1, 1.0, width=W, height=H) for yaw in (0.0, 0.5, 1.0, 1.5)]
    serial = [render(g, c, backend="cpu").rgb for c in cams]
    with ThreadPoolExecutor(2) as pool:
        concurrent = list(pool.map(lambda c: render(g, c, backend="cpu").rgb, cams * 3))
    for k, img in enumerate(concurrent):
        np.testing.assert_array_equal(img, serial[k % 4])


@pytest.mark.parametrize("seed", [0, 1])
def test_compositing_weights_reproduce_the_render(seed):
    """The colours -> image map that colour fitting relies on equals what the rasterizer draws."""
    from model.core.render import compositing_weights
    g, cam = mixed_scene(seed, sh_degree=0)
    colours = g.colors(cam.position)
    out = render(g, cam, backend="cpu")
    A = compositing_weights(g, cam)
    assert A.shape == (cam.height * cam.width, len(g))
    assert np.abs(A @ colours - out.rgb.reshape(-1, 3)).max() < 1e-5
    assert np.abs(np.asarray(A.sum(1)).ravel() - out.alpha.ravel()).max() < 1e-5
    # a selection keeps exactly its rows; a weight floor drops only weights below it
    select = np.zeros((cam.height, cam.width), bool)
    select[10:30, 20:50] = True
    As = compositing_weights(g, cam, select, min_weight=0.05)
    rows = np.flatnonzero(np.diff(As.indptr))
    assert set(rows) <= set(np.flatnonzero(select.ravel())) and len(rows) > 0
    assert As.data.min() >= 0.05
    full = A[rows].toarray()
    kept = As[rows].toarray()
    assert np.allclose(kept[kept > 0], full[kept > 0], atol=1e-6)
    assert (full[(kept == 0) & (full > 0)] < 0.05 + 1e-6).all()
