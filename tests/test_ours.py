"""Our method: determinism, symmetric fusion, Gaussians bound to triangles, animation, bad inputs."""
import io
import warnings

import numpy as np
import pytest
import skimage.data
from PIL import Image

from model.core.errors import InputError
from model.head.mesh import vertex_normals
from model.head.template import REGIONS, load_template
from model.ours.avatar import HeadSplat
from model.ours.binding import split_texels, uv_layout
from model.ours.texture import fuse_symmetric


@pytest.fixture(scope="module")
def astronaut():
    return skimage.data.astronaut()


@pytest.fixture(scope="module")
def avatar(astronaut):
    return HeadSplat().reconstruct(astronaut)


def test_same_image_gives_the_identical_avatar(astronaut, avatar):
    again = HeadSplat().reconstruct(astronaut)
    a, b = avatar.gaussians(), again.gaussians()
    assert len(a) >= 20_000
    for name in ("means", "quats", "scales", "opacities", "sh"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_input_view_is_the_photo_where_the_head_is(astronaut, avatar):
    out = avatar.render(avatar.input_camera)
    assert out.rgb.shape == astronaut.shape
    face = avatar.fitted.landmarks.xy.mean(0).round().astype(int)
    x, y = face
    assert out.alpha[y, x] > 0.99
    # colour at the face centre within a few levels of the photo (nose area is smooth)
    assert np.abs(out.rgb[y - 2:y + 3, x - 2:x + 3].mean((0, 1)) - astronaut[y - 2:y + 3, x - 2:x + 3].mean((0, 1)) / 255).max() < 0.08


def test_the_head_does_not_spill_onto_the_photos_background(astronaut, avatar):
    # The hair shell is carved to the photo's silhouette: at the input view the avatar covers almost
    # only the person. Without carving the shell hangs past the short hair down to the jaw (11%).
    from model.head.segmentation import person_mask
    head = avatar.render(avatar.input_camera).alpha > 0.5
    assert (head & (person_mask(astronaut) < 0.5)).sum() < 0.05 * head.sum()


def test_symmetric_fusion_fills_a_half_occluded_face_from_its_mirror():
    layout = uv_layout(64)
    u = (layout.rc[:, 1] + 0.5) / 64
    v = (layout.rc[:, 0] + 0.5) / 64
    # a symmetric pattern; the photo "sees" only the half u < 0.5
    truth = np.stack([0.5 + 0.4 * np.cos(6 * np.abs(u - 0.5)), 0.5 + 0.3 * np.sin(5 * v), 0.3 + 0 * u], 1)
    seen = u < 0.5
    rgb = np.where(seen[:, None], truth, 0.0)
    conf = seen.astype(np.float32)
    fused, fconf = fuse_symmetric(layout, rgb, conf)
    hidden = ~seen & (layout.mirror >= 0)
    assert hidden.sum() > 500
    assert np.abs(fused[hidden] - truth[hidden]).max() < 1e-3
    assert np.all(fconf[hidden] > 0.99)


def test_wide_uv_blur_on_a_smaller_grid_matches_the_full_size_blur():
    """The shading/completion blur runs on a 4x smaller grid (speed); it must stay that blur."""
    import cv2

    from model.ours.texture import _blur
    rng = np.random.default_rng(1)
    grid = rng.random((256, 256, 4)).astype(np.float32)
    grid[:, :100] *= 0.2  # a hard step, the worst case for a coarser grid
    for sigma in (10.0, 12.8):
        ref = cv2.GaussianBlur(grid, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
        err = np.abs(_blur(grid, sigma) - ref)
        assert err.mean() < 3e-3 and err[8:-8, 8:-8].max() < 0.05


def test_fusion_matches_shading_across_the_mirror():
    """A lit half copied onto a shaded half takes the shaded half's low-frequency brightness."""
    layout, skin, u, _ = _face_coords(128)
    rng = np.random.default_rng(0)
    detail = 0.05 * rng.standard_normal((len(u), 1))
    detail = 0.5 * (detail + detail[np.where(layout.mirror >= 0, layout.mirror, np.arange(len(u)))])
    lit, shaded = u > 0.5, (u < 0.5) & (u > 0.3)  # the shaded half is seen only near the midline
    rgb = np.where(lit[:, None], 0.8 + detail, 0.4 + detail) * np.ones((1, 3))
    conf = (lit | shaded).astype(np.float32)
    fused, _ = fuse_symmetric(layout, rgb, conf)
    filled = (u > 0.2) & (u < 0.3) & (layout.mirror >= 0)  # hidden, next to the seen shaded part
    assert (filled & skin).sum() > 20
    assert abs(fused[filled & skin].mean() - 0.4) < 0.1  # a naive copy would give 0.8


def test_teeth_a_smile_shows_sit_just_behind_the_lips(avatar):
    """Between the astronaut's parted lips the photo shows teeth: the fitted surface there must be the
    teeth, about a centimetre behind the lips, not the back of the mouth cavity; else they are painted
    several centimetres deep and slide away from the lips when the head turns."""
    from model.core.raster_mesh import rasterize_mesh
    from model.head import rig
    tpl = avatar.fitted.template
    v = rig.deform(avatar.fitted, None)
    face_id, _, depth = rasterize_mesh(v, tpl.faces, avatar.input_camera)
    region = np.where(face_id >= 0, tpl.face_region[np.maximum(face_id, 0)], -1)
    opening = np.isin(region, [REGIONS.index(n) for n in ("teeth", "mouth_interior", "tongue")])
    teeth = region == REGIONS.index("teeth")
    assert opening.sum() > 100
    assert teeth.sum() > 0.7 * opening.sum()
    _, lip_depth = avatar.input_camera.project(tpl.landmarks(v)[[13, 14]])
    # the incisors a few millimetres behind the lips (measured median 4.6 mm); the arch curves back
    # towards the corners, where the premolars show (75th percentile 10 mm)
    behind = depth[opening] - lip_depth.mean()
    assert np.median(behind) < 0.01 and np.percentile(behind, 75) < 0.02  # metres


def test_fusion_is_not_darkened_by_a_shadow_at_the_edge_of_what_the_photo_saw():
    """A turned face: the far half is seen only near the midline, with a shadow at its outer edge.
    Beyond it, the mirror copy takes the far half's overall brightness, not the shadow's."""
    layout, skin, u, v = _face_coords(128)
    lit, far_seen = u > 0.5, (u < 0.5) & (u > 0.3)
    shadow = far_seen & (u < 0.35) & (v > 0.3) & (v < 0.5)
    rgb = np.where(lit[:, None], 0.8, np.where(shadow[:, None], 0.25, 0.7)) * np.ones((1, 3))
    fused, _ = fuse_symmetric(layout, rgb, (lit | far_seen).astype(np.float32))
    beyond = (u > 0.1) & (u < 0.25) & (v > 0.3) & (v < 0.5) & (layout.mirror >= 0) & skin
    assert beyond.sum() > 20
    assert abs(np.median(fused[beyond, 0]) - 0.7) < 0.03  # 0.8 x (0.7 / 0.8)
    assert (np.abs(fused[beyond, 0] - 0.7) < 0.1).mean() > 0.85


def test_gaussians_stay_on_their_triangles_under_animation(avatar):
    b = avatar.binding
    for controls in (None, {"jawOpen": 1.0, "mouthSmileLeft": 0.7}, {"headYaw": 0.6, "eyeBlinkRight": 1.0}):
        g = avatar.gaussians(controls)
        v = avatar.vertices(controls)  # the template's, then the bust's
        surface = v + b.hair[:, None] * vertex_normals(v, avatar.faces)
        tri = surface[avatar.faces[b.faces]]
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        off_plane = np.abs(((g.means - tri[:, 0]) * n).sum(1))
        assert np.percentile(off_plane, 99) < 1e-6
        # each Gaussian's third axis is its triangle's normal
        from model.core.gaussians import quat_to_rotmat
        axis_n = quat_to_rotmat(g.quats)[:, :, 2]
        assert np.percentile(np.abs((axis_n * n).sum(1)), 1) > 0.999


def test_gaussian_centres_are_the_binding_matrix_applied(avatar):
    """The re-pose's parallel barycentric gather is the binding's sparse interpolation matrix."""
    b = avatar.binding
    v = avatar.vertices({"jawOpen": 0.5, "headYaw": 0.3})
    surface = v + b.hair[:, None] * vertex_normals(v, avatar.faces)
    np.testing.assert_allclose(avatar.gaussians({"jawOpen": 0.5, "headYaw": 0.3}).means, b.sample @ surface,
                               rtol=0, atol=1e-6)


def test_bound_frames_match_a_plain_gather():
    from model.ours.binding import bound_frames
    rng = np.random.default_rng(0)
    q, grow = rng.random((50, 4)), 1 + rng.random(50)
    slot, scales = rng.integers(0, 50, 400), rng.random((400, 3))
    quats, out = bound_frames(q, grow, slot, scales)
    np.testing.assert_allclose(quats, q[slot], rtol=1e-6)
    np.testing.assert_allclose(out, scales * np.stack([grow[slot], grow[slot], np.ones(400)], 1), rtol=1e-6)


def test_split_texel_samples_tile_the_texel_along_its_long_side_on_its_triangle():
    layout = uv_layout(256)
    tpl_uvs = load_template().face_uvs
    counts = np.ones(len(layout.face), np.int64)
    counts[::7] = 4
    along_u = np.arange(len(counts)) % 2 == 0
    texel, bary = split_texels(layout, tpl_uvs, counts, along_u)
    assert np.array_equal(np.bincount(texel, minlength=len(counts)), counts)
    assert np.all(bary >= 0) and np.allclose(bary.sum(1), 1)  # on the texel's own triangle
    uv = np.einsum("ni,nij->nj", bary, tpl_uvs[layout.face[texel]])
    centre = np.einsum("ni,nij->nj", layout.bary, tpl_uvs[layout.face])
    # a split texel whose samples all fall inside its triangle: 4 points 1/4 texel apart, centred on it
    t = np.flatnonzero((counts == 4) & along_u)
    inside = [i for i in t if np.all(bary[texel == i] > 1e-9)]
    assert len(inside) > 50
    for i in inside[:50]:
        pts = uv[texel == i]
        assert np.allclose(pts.mean(0), centre[i], atol=1e-9)
        assert np.allclose(np.diff(pts[:, 0]), 0.25 / 256) and np.allclose(pts[:, 1], centre[i, 1])


def test_stretched_texels_get_gaussians_that_are_not_needles(avatar):
    """The atlas stretches the neck's texels; split along their long side, no Gaussian is a long
    needle there (one per texel gave 20 mm x 0.3 mm streaks hanging below the neck)."""
    assert avatar.binding.scales[:, :2].max() < 0.006  # sigma, metres


def test_jaw_open_moves_the_lower_lip_and_nothing_moves_without_controls(avatar):
    neutral = avatar.gaussians().means
    open_ = avatar.gaussians({"jawOpen": 1.0}).means
    moved = np.linalg.norm(open_ - neutral, axis=1)
    assert moved.max() > 0.01  # centimetres, not numerical noise
    assert np.median(moved) < 1e-4  # the back of the head stays put (ICT's jawOpen: < 0.1 mm of noise there)
    assert np.array_equal(avatar.gaussians({}).means, neutral)


def test_the_back_of_the_head_has_no_holes(avatar):
    from benchmarks.reconstruct import silhouette_fill
    from model.core.camera import framing_camera
    for yaw in (90, 180):
        cam = framing_camera(avatar.head_center, avatar.head_radius, np.deg2rad(yaw), 0.0, 128)
        assert silhouette_fill(avatar.render(cam).alpha) > 0.99


def _encode(img: Image.Image, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK"])
def test_grey_rgba_and_cmyk_photos_are_handled(astronaut, mode):
    img = Image.fromarray(astronaut).convert(mode)
    data = _encode(img, "JPEG" if mode == "CMYK" else "PNG")
    avatar = HeadSplat().reconstruct(data)
    assert len(avatar.gaussians()) > 20_000


def test_huge_photo_is_downscaled_not_refused(astronaut):
    huge = np.asarray(Image.fromarray(astronaut).resize((6000, 6000), Image.NEAREST))[:6000, :, :]
    avatar = HeadSplat().reconstruct(huge[:, :4500])
    assert max(avatar.input_camera.width, avatar.input_camera.height) <= 1024


def test_no_face_tiny_face_and_several_faces(astronaut):
    with pytest.raises(InputError, match="no face"):
        HeadSplat().reconstruct(skimage.data.coffee())
    tiny = np.full((400, 400, 3), 255, np.uint8)
    tiny[150:214, 150:214] = np.asarray(Image.fromarray(astronaut[40:260, 120:340]).resize((64, 64)))
    with pytest.raises(InputError):  # a 64 px crop holds a ~30 px face: refused (too small or not found)
        HeadSplat().reconstruct(tiny)
    face = astronaut[0:300, 100:380]
    two = np.full((320, 620, 3), 255, np.uint8)
    two[:300, :280] = face
    two[10:280, 320:570] = np.asarray(Image.fromarray(face).resize((250, 270)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        avatar = HeadSplat().reconstruct(two)
    assert any("faces found; using the largest" in str(w.message) for w in caught)
    assert avatar.fitted.landmarks.xy[:, 0].mean() < 280  # the larger, left face
    assert avatar.metadata()["warnings"]


def test_colour_fit_reproduces_a_photo_that_sampling_blurs():
    """Overlapping splats blur colours sampled at their centres; fitting them to the view undoes it,
    and a Gaussian the view does not see keeps its colour."""
    from model.core.camera import Camera, intrinsics, look_at
    from model.core.gaussians import Gaussians
    from model.core.render import render
    from model.ours.avatar import fit_colours_to_view
    n = 48  # a grid of Gaussians on the plane z = 0, spaced like pixels, plus one hidden behind it
    xs = (np.arange(n) - n / 2 + 0.5) * 0.01
    gx, gy = np.meshgrid(xs, xs)
    means = np.concatenate([np.stack([gx.ravel(), gy.ravel(), np.zeros(n * n)], 1), [[0.0, 0.0, -0.1]]])
    m = len(means)
    g = Gaussians.from_rgb(means, np.tile([1.0, 0, 0, 0], (m, 1)), np.tile([0.007, 0.007, 0.001], (m, 1)),
                           np.full(m, 0.98), np.full((m, 3), 0.5))
    cam = Camera(intrinsics(100.0, 64, 64), look_at(np.array([0, 0, 1.0]), np.zeros(3)), 64, 64)  # 1 px = 1 cm
    yy, xx = np.mgrid[:64, :64]
    # detail a few pixels across, inside [0.2, 0.8] so that sharpening has room
    photo = 0.5 + 0.3 * np.stack([np.sin(xx * 1.1), np.cos(yy * 0.9), np.sin((xx + yy) * 0.7)], -1).astype(np.float32)
    uv, _ = cam.project(means)
    sampled = photo[np.clip(uv[:, 1].round().astype(int), 0, 63), np.clip(uv[:, 0].round().astype(int), 0, 63)]
    sampled[-1] = [0.2, 0.9, 0.1]
    inner = np.zeros((64, 64), bool)
    inner[12:52, 12:52] = True

    def error(colours):
        gg = Gaussians.from_rgb(g.means, g.quats, g.scales, g.opacities, colours)
        return np.abs(render(gg, cam, background=(0, 0, 0)).rgb - photo)[inner].mean()

    fitted = fit_colours_to_view(g, sampled, cam, photo, inner, iters=30)
    assert error(fitted) < 0.25 * error(sampled)
    assert np.array_equal(fitted[-1], sampled[-1])  # hidden: untouched
    assert fitted.min() >= 0 and fitted.max() <= 1

def test_damped_least_squares_takes_lsqrs_steps_for_every_channel():
    """The colour fit's solver (CGLS, all channels at once) against scipy's lsqr, one channel at a time: the
    same iterate after a few steps, and the exact damped solution (dense normal equations) when run long."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import lsqr

    from model.ours.avatar import damped_least_squares
    rng = np.random.default_rng(5)
    A = sp.random(300, 120, density=0.05, random_state=rng, format="csr") + sp.eye(300, 120, format="csr")
    B = rng.standard_normal((300, 3))
    got = damped_least_squares(A, B, 0.03, 6)
    want = np.stack([lsqr(A, B[:, k], damp=np.sqrt(0.03), iter_lim=6, atol=0, btol=0)[0] for k in range(3)], 1)
    assert np.allclose(got, want, rtol=1e-6, atol=1e-9)
    dense = A.toarray()
    exact = np.linalg.solve(dense.T @ dense + 0.03 * np.eye(120), dense.T @ B)
    assert np.allclose(damped_least_squares(A, B, 0.03, 300), exact, atol=1e-8)



def test_closed_eyelids_hide_the_eyeballs(avatar):
    """Blinking stretches the lids over the eyes; their Gaussians grow with the stretch, so the eyeball
    barely shows through (measured as the eyeballs' total compositing weight in the input view)."""
    from model.core.render import compositing_weights
    from model.head.template import REGIONS
    b = avatar.binding
    eye = avatar.face_region[b.faces] == REGIONS.index("eyes")

    def eyeball_pixels(controls):
        A = compositing_weights(avatar.gaussians(controls), avatar.input_camera)
        return float(np.asarray(A.sum(0)).ravel()[eye].sum())

    open_px = eyeball_pixels(None)
    assert open_px > 50
    # ICT's lids close over the eyes; a little of the eyeballs' rims stays between them (measured 6%)
    assert eyeball_pixels({"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}) < 0.1 * open_px
    # nothing grows in the neutral pose
    assert np.allclose(avatar.gaussians().scales, b.scales, rtol=1e-6, atol=0)


@pytest.mark.parametrize("controls, other, atmost", [
    ({"jawOpen": 0.6}, "mouthFunnel", 0.3),  # the lips part because the jaw dropped: not a funnel
    ({"jawOpen": 0.5}, "mouthFrownLeft", 0.3),
])
def test_the_tracker_reads_the_jaw_the_avatar_was_driven_with(avatar, controls, other, atmost):
    """Our own renders under a known jawOpen, tracked as the mirror tracks (rest face from the neutral
    render, then the frame): the jaw is read back, not explained by other mouth controls."""
    from model.core.image_io import to_uint8
    from model.head.landmarks import detect_landmarks
    cam = avatar.input_camera
    rest = avatar.neutral_offsets(detect_landmarks(to_uint8(avatar.render(cam).rgb)))
    got = avatar.retarget(to_uint8(avatar.render(cam, controls).rgb), neutral=rest)
    (name, value), = controls.items()
    assert abs(got[name] - value) < 0.25 and got[other] < atmost, got


def _stripes(h: int, w: int, period: float, along_rows: bool) -> np.ndarray:
    """[h,w,3] stripes of `period` texels: constant along rows (lines run across) or along columns."""
    i, j = np.mgrid[:h, :w]
    x = 0.5 + 0.4 * np.sin(2 * np.pi * (i if along_rows else j) / period)
    return np.repeat(x[..., None], 3, 2)


@pytest.mark.parametrize("along_rows", [False, True])
def test_hair_synthesis_keeps_the_grain_of_the_hair_it_copies(along_rows):
    """Quilting (model.ours.texture.quilt) of a half-seen striped grid: the synthesised half has the
    exemplar's stripe direction and period (its spectrum peaks where the exemplar's does), and the same
    seed gives the same texture."""
    from model.ours.texture import quilt
    h = w = 96
    seen = np.zeros((h, w), bool)
    seen[:, : w // 2] = True
    values = np.where(seen[..., None], _stripes(h, w, 6.0, along_rows), 0.0)
    out = quilt(values, seen, ~seen, seen, patch=8, seed=3)
    assert out is not None and np.array_equal(out, quilt(values, seen, ~seen, seen, patch=8, seed=3))
    filled = out[:, w // 2:, 0] - out[:, w // 2:, 0].mean()
    spec = np.abs(np.fft.fft2(filled))
    peak = np.unravel_index(np.argmax(spec), spec.shape)
    freq = np.fft.fftfreq(h)[peak[0]] if along_rows else np.fft.fftfreq(w // 2)[peak[1]]
    assert abs(abs(freq) - 1 / 6) < 0.02  # the period
    gi, gj = np.abs(np.diff(filled, axis=0)).mean(), np.abs(np.diff(filled, axis=1)).mean()
    assert (gi > 5 * gj) if along_rows else (gj > 5 * gi)  # the direction
    assert np.allclose(out[seen], values[seen])  # what the photo shows is never replaced


def test_hair_synthesis_does_not_copy_what_is_not_hair_all_round():
    """A dark, grainy scalp the photo sees in part, with a bright badge on it (a cap's emblem): the unseen
    scalp gets the grain, never the badge's colour; with too little hair seen, no synthesis (the prior)."""
    from model.head.template import REGIONS
    from model.ours.texture import SEEN_CONF, hair_exemplar, synthesize_hair
    layout, points = _scalp_points(384)
    scalp = layout.region == REGIONS.index("scalp")
    rng = np.random.default_rng(0)
    rgb = np.clip(0.15 + 0.05 * rng.standard_normal((len(scalp), 3)), 0, 1)
    top = points[:, 1] > np.percentile(points[scalp, 1], 60)  # the top of the head is seen
    conf = np.where(scalp & top, 1.0, 0.0)
    badge = scalp & top & (np.abs(points[:, 0]) < 0.02) & (points[:, 2] > 0)  # on the front, at the midline
    rgb[badge] = (0.95, 0.8, 0.2)
    kept = hair_exemplar(rgb, scalp & (conf > 0))
    assert not (kept & badge).any() and kept.sum() >= 0.85 * (scalp & (conf > 0) & ~badge).sum()
    out = synthesize_hair(layout, rgb, conf, scalp, points)
    unseen = scalp & (conf < SEEN_CONF)
    assert out is not None and unseen.sum() > 500
    assert out[unseen].max() < 0.5  # no badge copied
    assert out[unseen].std() > 0.5 * rgb[scalp & (conf > 0) & ~badge].std()  # the grain, not a flat fill
    assert synthesize_hair(layout, rgb, np.where(scalp & (points[:, 1] > np.percentile(points[scalp, 1], 99.5)),
                                                 1.0, 0.0), scalp, points) is None


def _face_coords(res: int):
    """The UV layout at res, and for its face-skin texels (face [T] bool) the atlas' coordinates as if the
    face were the whole chart: uu = 0.5 + 0.5 x / max|x| (0.5 the midline, > 0.5 the subject's left, as the
    atlas' u) and vv = 0 at the top of the face to 1 at its bottom, from the texels' neutral positions."""
    layout, points = _scalp_points(res)
    face = layout.region == REGIONS.index("face_skin")
    x, y = points[:, 0], points[:, 1]
    uu = 0.5 + 0.5 * x / np.abs(x[face]).max()
    vv = (y[face].max() - y) / np.ptp(y[face])
    return layout, face, uu, vv


def _scalp_points(res: int):
    """The UV layout at res and its texels' positions on the neutral template [T,3], metres."""
    from model.head.template import load_template
    from model.ours.binding import uv_layout
    tpl = load_template()
    layout = uv_layout(res)
    return layout, layout.sampling_matrix(len(tpl.vertices), tpl.faces) @ tpl.vertices


def _dominant_period(y: np.ndarray, v: np.ndarray, step: float = 0.001) -> float:
    """The period (metres) of the strongest frequency of values v sampled at heights y (binned by step)."""
    bins = np.floor((y - y.min()) / step).astype(int)
    n = np.bincount(bins)
    prof = np.bincount(bins, v) / np.maximum(n, 1)
    have = n > 0
    prof = np.interp(np.arange(len(prof)), np.flatnonzero(have), prof[have]) - prof[have].mean()
    spec = np.abs(np.fft.rfft(prof * np.hanning(len(prof))))
    k = 1 + int(np.argmax(spec[1:]))
    return len(prof) * step / k


def test_hair_copied_to_the_back_keeps_its_size_on_the_head():
    """Bands 12 mm apart down the head (by height, metres) on the front quarter of the scalp, which the
    photo sees: the back of the head, quilted from them, shows bands with the same spacing. In the UV atlas
    texels are ~2 mm tall at the hairline and ~1 mm at the back: quilting there gave 7-8 mm."""
    from model.head.template import REGIONS
    from model.ours.texture import synthesize_hair
    layout, points = _scalp_points(256)
    scalp = layout.region == REGIONS.index("scalp")
    x, y, z = points.T
    period = 0.012
    rgb = np.repeat((0.5 + 0.15 * np.sin(2 * np.pi * y / period))[:, None], 3, 1)
    front = scalp & (z > np.percentile(z[scalp], 75))
    out = synthesize_hair(layout, rgb, np.where(front, 1.0, 0.0), scalp, points)
    assert out is not None
    back = scalp & (z < np.percentile(z[scalp], 20)) & (np.abs(x) < 0.03)
    assert back.sum() > 500
    assert abs(_dominant_period(y[front], rgb[front, 0]) - period) < 0.0015  # the measure reads the exemplar
    assert abs(_dominant_period(y[back], out[back, 0]) - period) < 0.0015


def test_the_back_of_the_hair_is_not_a_patchwork_of_the_photos_light():
    """The front of the scalp, which the photo sees, is a fine grain lit from one side (twice as bright on the
    left as on the right): the unseen hair quilted from it keeps the grain, not the light. Blocks copied with
    their shading had tiled it over the back at the blocks' step: a patchwork of light and dark squares
    (if_009's basket weave, london_129's knit); here the 1 cm squares of the back had varied by 0.27 of the
    front's, now by 0.09."""
    from model.head.template import REGIONS
    from model.ours.texture import SEEN_CONF, synthesize_hair
    layout, points = _scalp_points(384)
    scalp = layout.region == REGIONS.index("scalp")
    x, y, z = points.T
    grain = np.random.default_rng(1).standard_normal(len(x))
    light = 1 + 0.33 * x / np.abs(x[scalp]).max()
    rgb = np.repeat((0.35 * light * (1 + 0.15 * grain))[:, None], 3, 1)
    front = scalp & (z > np.percentile(z[scalp], 60))
    conf = np.where(front, 1.0, 0.0)
    out = synthesize_hair(layout, rgb, conf, scalp, points)
    assert out is not None
    back = scalp & (conf < SEEN_CONF) & (z < np.percentile(z[scalp], 30))

    def squares(v, sel):  # mean of v over 1 cm squares (height x sideways) of the texels sel, those with 20+
        key = np.floor(y[sel] / 0.01).astype(int) * 1000 + np.floor(x[sel] / 0.01).astype(int)
        _, inv, n = np.unique(key, return_inverse=True, return_counts=True)
        return (np.bincount(inv, v[sel]) / n)[n >= 20]
    lit = squares(rgb[:, 0], front)
    assert lit.std() > 0.05  # the measure sees the light on the front
    assert squares(out[:, 0], back).std() < 0.15 * lit.std()  # no patchwork of it on the back (0.27 before)
    assert out[back, 0].std() > 0.5 * (0.35 * 0.15 * grain[front]).std()  # the grain is kept


def test_unseen_hair_is_quilted_only_from_where_the_photo_shows_hair():
    """synthesize_hair copies only from the exemplar places it is given (texture.complete gives the texels that
    land on the photo's hair mask): a skin-coloured ring round the ears, seen by the photo but outside the
    hair mask, is never copied to the back."""
    from model.head.template import REGIONS
    from model.ours.texture import SEEN_CONF, synthesize_hair
    layout, points = _scalp_points(128)
    scalp = layout.region == REGIONS.index("scalp")
    ears = layout.region == REGIONS.index("ears")
    d_ear = np.linalg.norm(points[:, None] - points[ears][None, ::7], axis=2).min(1)
    rng = np.random.default_rng(0)
    rgb = np.clip(0.15 + 0.05 * rng.standard_normal((len(points), 3)), 0, 1)
    skin = scalp & (d_ear < 0.02)
    rgb[skin] = (0.85, 0.65, 0.55)
    z = points[:, 2]
    conf = np.where(scalp & (z > np.median(z[scalp])), 1.0, 0.0)
    unseen = scalp & (conf < SEEN_CONF) & ~skin
    assert (skin & (conf > SEEN_CONF)).sum() > 50
    out = synthesize_hair(layout, rgb, conf, scalp, points, ~skin)
    assert out is not None and out[unseen].max() < 0.5
    # where the photo shows no hair at all, nothing is copied (the prior fills)
    assert synthesize_hair(layout, rgb, conf, scalp, points, np.zeros(len(points), bool)) is None


def test_a_collar_the_photo_shows_goes_round_the_back_of_the_neck():
    """The neck's rings (slabs of height) go round it: a dark collar seen at the front (its lowest part) and
    skin above it continue round the back, ring by ring (texture.ring_colours), not as one skin tone, although
    the atlas lays the front and the back of the neck out on different rows."""
    from model.head.template import REGIONS
    from model.ours.texture import NECK_RING_M, ring_colours
    layout, points = _scalp_points(256)
    neck = layout.region == REGIONS.index("neck")
    y, z = points[:, 1], points[:, 2]
    back = neck & (z < np.percentile(z[neck], 30))
    lo, hi = y[back].min(), y[back].max()  # the front of the neck reaches lower than its back
    collar = y <= lo + 0.4 * (hi - lo)
    rgb = np.where(collar[:, None], 0.05, np.array([0.8, 0.6, 0.5]))
    front = z > np.percentile(z[neck], 60)
    conf = np.where(neck & front, 1.0, 0.0)
    ring = ring_colours(layout, rgb, conf, neck, ring=np.floor(y / NECK_RING_M).astype(np.int64))
    assert back.sum() > 100
    assert not np.isnan(ring[neck]).any() and np.isnan(ring[~neck]).all()
    assert np.abs(ring[back & (y < lo + 0.3 * (hi - lo))] - 0.05).max() < 0.02
    assert np.abs(ring[back & (y > lo + 0.5 * (hi - lo))] - [0.8, 0.6, 0.5]).max() < 0.02


def test_what_goes_round_the_back_is_what_the_photo_shows_at_the_sides():
    """A ring seen from the front with a tie down its middle (most of what the photo sees of it) and a white
    collar at its sides: round the back the ring is the collar, not the tie (texture.ring_colours reading the
    ring's sides, RING_SIDE_SHARE). Without the sides it would be the tie's lilac."""
    from model.ours.bust import bust_layout
    from model.ours.texture import ring_colours
    layout = bust_layout()
    around = np.abs((layout.rc[:, 1] + 0.5) / layout.res - 0.5) * 2 * np.pi  # radians from the front
    tie, collar = np.array([0.6, 0.4, 0.7]), np.array([0.95, 0.95, 0.95])
    rgb = np.where((around < 0.8)[:, None], tie, collar)
    conf = np.where(around < 1.3, 1.0, 0.0)
    band = np.ones(len(rgb), bool)
    back = around > 2.5
    assert np.abs(ring_colours(layout, rgb, conf, band, around=around)[back] - collar).max() < 0.02
    assert np.abs(ring_colours(layout, rgb, conf, band)[back] - tie).max() < 0.02


def test_the_photos_skin_statistics_cover_its_cheeks_and_not_its_hair():
    """segmentation.photo_evidence on astronaut: her cheeks lie inside the skin distribution's radius
    (segmentation.SKIN_MAHALANOBIS), most of the light-brown hair above her forehead outside it."""
    from skimage import data
    from model.head.landmarks import detect_landmarks
    from model.head.segmentation import CHEEKS, SKIN_LOG_EPS, SKIN_MAHALANOBIS, photo_evidence, skin_distance
    img = data.astronaut()
    lm = detect_landmarks(img)
    ev = photo_evidence(img, lm)

    def radius(px):
        return skin_distance(np.log(np.clip(px / 255.0, 0, 1) + SKIN_LOG_EPS), ev.skin_log)

    xy = np.round(lm.xy).astype(int)
    cheeks = np.concatenate([img[y - 2:y + 3, x - 2:x + 3].reshape(-1, 3) for x, y in xy[list(CHEEKS)]])
    assert (radius(cheeks) <= SKIN_MAHALANOBIS).mean() > 0.8
    top = int(xy[10, 1])  # the face oval's top; her hair fills the band above it
    hair = img[top - 35:top - 15, xy[10, 0] - 20:xy[10, 0] + 20].reshape(-1, 3)
    assert (radius(hair) > SKIN_MAHALANOBIS).mean() > 0.75


def test_an_ear_under_long_hair_is_hair_and_an_ear_the_photo_shows_is_skin():
    """Dev portraits: long black hair over both ears (london_129); long hair with the head turned, one ear
    behind a curtain of hair whose edge the photo sees as hair (if_052's left); short hair with the ears in
    view (london_005). Seen from the side, each covered ear carries the photo's hair colour (they showed as
    pale discs in the hair, painted with the skin prior: if_052's left ear read 0.32 from the hair's mean,
    0.30 from the skin's, while 1% of it was seen, all of it hair); each shown ear keeps the skin's."""
    from evaluation.datasets import portraits_dev
    from model.head.landmarks import detect_landmarks
    from model.head.segmentation import photo_evidence
    dev = portraits_dev()

    def ear_colour_distances(name):  # per ear (subject's right, left): (to the hair's mean, to the skin's)
        image = dev.subject(name).image
        a = HeadSplat().reconstruct(image)
        ev = photo_evidence(image, detect_landmarks(image))
        ear = a.face_region[a.binding.faces] == REGIONS.index("ears")
        x = a.gaussians().means[:, 0]
        means = [a.binding.rgb[ear & side].mean(0) for side in (x < 0, x >= 0)]
        return [(np.linalg.norm(m - ev.hair_mean), np.linalg.norm(m - ev.skin_rgb)) for m in means]

    for name in ("london_129", "if_052_phone"):
        for to_hair, to_skin in ear_colour_distances(name):
            assert to_hair < 0.05 and to_skin > 0.3, (name, to_hair, to_skin)
    for to_hair, to_skin in ear_colour_distances("london_005"):
        assert to_skin < to_hair, (to_hair, to_skin)


def test_the_back_of_white_hair_has_the_photos_hair_colour():
    """Biden (dev set): white hair lit from the front, its sides in shade. Seen from behind, the upper back of
    the head has the mean colour of the photo's hair pixels (the parser's mask) within ΔE 3, without blotches
    (median per-pixel ΔE to that mean under 8): benchmarks.reconstruct.back_hair, issue 31's measure. The
    quilt had gathered blocks of the shaded sides there: ΔE 7.1, median 10."""
    from benchmarks.reconstruct import back_hair
    from evaluation.datasets import portraits_dev
    from model.head.landmarks import detect_landmarks
    from model.head.segmentation import photo_evidence
    image = portraits_dev().subject("biden_2010_blue_room").image
    scores = back_hair(HeadSplat().reconstruct(image), image, photo_evidence(image, detect_landmarks(image)))
    assert scores["back_hair_dE"] < 3.0 and scores["back_hair_dE_median_px"] < 8.0, scores


def test_hair_repetition_reads_a_lattice_of_one_block_as_one_and_blobs_that_do_not_recur_as_little():
    """benchmarks.reconstruct.hair_repetition against images whose answer is known: one 2 cm block of smooth
    random blobs tiled 6 x 6 (a quilt locked into a lattice) reads ~1; the same blobs drawn at random all
    over read under 0.3."""
    from scipy.ndimage import gaussian_filter

    from benchmarks.reconstruct import hair_repetition
    rng = np.random.default_rng(0)
    block = gaussian_filter(rng.random((20, 20, 3)), (1.5, 1.5, 0))
    region = np.ones((120, 120), bool)
    assert hair_repetition(np.tile(block, (6, 6, 1)), region, px_per_m=1000.0) > 0.95
    assert hair_repetition(gaussian_filter(rng.random((120, 120, 3)), (1.5, 1.5, 0)), region, 1000.0) < 0.3
    assert hair_repetition(np.zeros((10, 10, 3)), np.ones((10, 10), bool), 1000.0) is None  # too small to say


def test_the_back_of_wavy_hair_is_not_a_knit_of_a_few_repeated_blocks(monkeypatch):
    """if_009 (dev set): long wavy blond hair, of which the scalp seen from the front supplies the quilt ~4
    distinct 3 cm blocks. Seen from behind, the hair does not repeat itself sideways like a knit
    (benchmarks.reconstruct back_hair_repetition under 0.4 on average over five of the quilt's random draws):
    the quilt had locked into a lattice of one block, each the best match for its neighbour's copy of it
    (0.54), until a block may no longer repeat its left or upper neighbours' (texture.REPEAT_NEAR). One draw is
    not a test: its figure depends on the draw (0.18-0.49 over six), and the draw on the machine's last bits
    of the photo's parse (draw 0 read 0.24 and 0.31 on two machines at ours 1.7); a mean of five spreads by
    ~0.04. Each draw's colour stays the photo's hair's."""
    import functools

    from benchmarks.reconstruct import back_hair_colour, back_view, hair_repetition, photo_hair
    from evaluation.datasets import portraits_dev
    from model.head.landmarks import detect_landmarks
    from model.head.segmentation import photo_evidence
    from model.ours import texture
    image = portraits_dev().subject("if_009").image
    hair_lab = photo_hair(image, photo_evidence(image, detect_landmarks(image)))[1]
    quilt, repetition = texture.synthesize_hair, []
    for seed in range(5):
        monkeypatch.setattr(texture, "synthesize_hair", functools.partial(quilt, seed=seed))
        rgb, back, px_per_m = back_view(HeadSplat().reconstruct(image))  # back_hair's view, without its
        repetition.append(hair_repetition(rgb, back, px_per_m))  # texture distance (7 s a draw)
        assert back_hair_colour(rgb, back, hair_lab)["back_hair_dE"] < 3.0, seed
    assert np.mean(repetition) < 0.4, repetition


def test_long_hair_lies_on_down_the_back_to_where_the_photos_hair_ends():
    """if_052 (dev set): dark hair past the shoulders. Seen from behind, the hair (pixels of the photo's hair
    colour joined to the back of the head) ends within 3 cm (issue 31's target) of the height where the photo's
    hair ends (benchmarks.reconstruct.hair_length_error): the bust's back carries it on below the neck. It had
    ended 6.5 cm short, where the bust's back hides the neck's hanging hair, then 3.3 cm short with the photo's
    face heights scaled by the model's face (avatar.hair_end_height). And no band crosses it: every row of the
    back's middle (from above the head's centre to below the neck) keeps its darkest tenth within 80% of the
    hair's median brightness. Neck faces with corners on the scalp's border, lifted into the hair, had kept the
    neck's skin: a dark seam across the back (0.73)."""
    from benchmarks.reconstruct import hair_length_error, head_axis
    from evaluation.datasets import portraits_dev
    from model.core.camera import framing_camera
    from model.head.landmarks import detect_landmarks
    from model.head.segmentation import photo_evidence
    image = portraits_dev().subject("if_052_phone").image
    lm = detect_landmarks(image)
    avatar = HeadSplat().reconstruct(image)
    error = hair_length_error(avatar, image, lm, photo_evidence(image, lm))
    assert error is not None and error < 3.0, error
    cam = framing_camera(avatar.head_center, avatar.head_radius, np.pi, 0.0, 384)
    lum = avatar.render(cam).rgb @ np.array([0.299, 0.587, 0.114])
    cx, cy, r = head_axis(cam, avatar.head_center, avatar.head_radius)
    back = lum[int(cy - 0.3 * r):int(cy + 0.9 * r), int(cx - 0.4 * r):int(cx + 0.4 * r)]
    darkest = np.percentile(back, 10, axis=1) / np.median(back)
    assert darkest.min() > 0.8, (darkest.min(), darkest.argmin())


def test_the_neck_base_seen_from_the_front_is_the_photos():
    """The bust is open at its top, round the neck; from the input view the photo looks past the neck into that
    opening, onto the bust's inner wall. That wall takes the photo's colour there (project_texture, two-sided):
    painted its ring's mean, as an unseen texel, it had drawn a flat band across the neck's base and the collar
    (the bust's input-view PSNR over the photo's trusted pixels: london_120 25.1 dB, if_028 21.1 dB; now 30.1
    and 25.5)."""
    from benchmarks.reconstruct import bust_gaussians, head_mask, label_alpha
    from evaluation.datasets import portraits_dev
    from evaluation.metrics import psnr
    from model.core.image_io import to_float
    from model.head.landmarks import detect_landmarks
    from model.head.segmentation import photo_evidence
    for name, least in (("london_120", 28.0), ("if_028", 24.0)):
        image = portraits_dev().subject(name).image
        avatar = HeadSplat().reconstruct(image)
        cam = avatar.input_camera
        on_bust = head_mask(label_alpha(avatar, cam, bust_gaussians(avatar)),
                            photo_evidence(image, detect_landmarks(image)))  # as input_view_psnr_bust
        db = psnr(avatar.render(cam).rgb, to_float(image), on_bust)
        assert db > least, (name, db)


@pytest.mark.parametrize("name", ["microphone", "if_052_phone"])
def test_what_the_parser_calls_an_occluder_leaves_no_colour_on_the_avatar(astronaut, name):
    """A microphone drawn before astronaut's mouth; if_052 (dev set) holding a phone to her cheek. Its pixels are
    neither projected, mirrored, view-fitted nor quilted: built from the same fit and parse (HeadSplat.build)
    with the occluder's pixels painted magenta, every Gaussian keeps its colour. The control, a parse that does
    not see the occluder, lets the magenta onto the face (benchmarks.reconstruct.occluder_leak measures the
    same on renders turned ±30°)."""
    import dataclasses

    from benchmarks.reconstruct import draw_microphone
    from evaluation.datasets import portraits_dev
    from model.core.image_io import to_float
    from model.head.landmarks import detect_landmarks
    from model.head.segmentation import photo_evidence
    image = draw_microphone(astronaut, detect_landmarks(astronaut).xy)[0] if name == "microphone" \
        else portraits_dev().subject(name).image
    method = HeadSplat()
    fitted = method.reconstruct(image).fitted
    ev = photo_evidence(image, fitted.landmarks)
    assert ev.occluder.sum() > 500
    photo = to_float(image)
    changed = photo.copy()
    changed[ev.occluder] = (1.0, 0.0, 1.0)
    blind = dataclasses.replace(ev, occluder=np.zeros_like(ev.occluder))
    for parse, moved in ((ev, lambda d: d.max() < 1e-6), (blind, lambda d: (d > 0.2).sum() > 200)):
        a, b = method.build(photo, fitted, parse), method.build(changed, fitted, parse)
        d = np.abs(a.binding.rgb - b.binding.rgb).max(1)
        assert moved(d), (parse is ev, d.max(), (d > 0.2).sum())


def test_long_hair_beside_the_neck_does_not_go_round_its_back_below_the_hairs_end():
    """london_120: light-brown hair falls beside her neck in the photo. The neck's unseen back takes its rings'
    colours from what the photo shows at their sides (texture.ring_colours), read off the photo's hair: below
    where her hair ends, the back of her neck is skin (closer to the photo's skin than to its hair, CIELAB).
    Read with the hair, it had been a dark band of hair colour across the neck under the hanging hair."""
    from skimage.color import deltaE_cie76, rgb2lab

    from evaluation.datasets import portraits_dev
    from model.head import rig
    from model.head.landmarks import detect_landmarks
    from model.head.segmentation import hair_reach, photo_evidence
    from model.ours.avatar import hair_end_height
    image = portraits_dev().subject("london_120").image
    ev = photo_evidence(image, detect_landmarks(image))
    avatar = HeadSplat().reconstruct(image)
    fitted = avatar.fitted
    end = hair_end_height(fitted, rig.deform(fitted, None), hair_reach(fitted.landmarks, ev))
    g = avatar.gaussians()
    neck = avatar.face_region[avatar.binding.faces] == REGIONS.index("neck")
    axis_z = np.median(g.means[neck, 2])
    back = neck & (g.means[:, 1] < end - 0.005) & (g.means[:, 2] < axis_z - 0.02)
    assert back.sum() > 200, back.sum()
    lab = rgb2lab(np.median(g.rgb[back], 0)[None, None])[0, 0]
    to_skin = deltaE_cie76(lab, rgb2lab(ev.skin_rgb[None, None].astype(np.float64))[0, 0])
    to_hair = deltaE_cie76(lab, rgb2lab(ev.hair_rgb[None, None].astype(np.float64))[0, 0])
    assert to_skin < to_hair, (to_skin, to_hair)


def test_hair_lying_down_the_back_falls_straight_down():
    """texture.hanging_strands, the strands of the long hair painted on the bust's back (avatar.hair_down_the_back):
    they run straight down in the head frame, whatever the surface's chart (strands along the bust's columns had
    fanned out from its narrow top). 5 mm down a strand the texture changes far less than 5 mm across."""
    from model.ours.texture import hanging_strands
    x, y = np.meshgrid(np.linspace(-0.15, 0.15, 40), np.linspace(-0.4, -0.15, 40))
    p = np.stack([x.ravel(), y.ravel(), np.full(x.size, -0.1)], 1)
    n = hanging_strands(p)
    down = np.abs(hanging_strands(p - [0.0, 0.005, 0.0]) - n).mean()
    across = np.abs(hanging_strands(p + [0.005, 0.0, 0.0]) - n).mean()
    assert n.std() > 0.2 and down < 0.4 * across, (n.std(), down, across)
