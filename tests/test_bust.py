"""Issue 20, item 4: the bust (the neck's base and the upper shoulders) under the head, model.ours.bust."""
import numpy as np
import pytest
import skimage.data

from model.core.image_io import to_uint8
from model.head.ict_fit import fit
from model.head.landmarks import detect_landmarks
from model.head.segmentation import photo_evidence
from model.ours.avatar import HeadSplat
from model.ours.bust import DROP_RANGE, REGION, UNSEEN_CLOTHING, shoulder_line, shoulder_widths


@pytest.fixture(scope="module")
def astronaut():
    return HeadSplat().reconstruct(skimage.data.astronaut())


def _bust(avatar) -> np.ndarray:
    return avatar.face_region[avatar.binding.faces] == REGION


def _lateral_axis(avatar) -> np.ndarray:
    """The bust's left-right axis (unit [3], head frame): the main axis of its vertices across the body,
    by PCA of the lower rings (the shoulders are wider than the chest is deep)."""
    v = avatar.bust.vertices[len(avatar.bust.vertices) // 2:]
    v = v - v.mean(0)
    return np.linalg.svd(v, full_matrices=False)[2][0]


def _drawn_shoulders(top: float, right: float, left: float):
    """Astronaut's fit and a person mask whose body is drawn in pixels (not with the bust's geometry): the
    photo's person down to the chin, a neck 10 cm wide, then shoulders whose flat top lies `top` metres
    below the template neck's base (negative: above), `right` and `left` metres out from the neck's axis
    on the neck's plane. Returns (fitted, mask [H,W] bool, neck base row, pixels per metre there)."""
    photo = skimage.data.astronaut()
    lm = detect_landmarks(photo)
    fitted = fit(photo, landmarks=lm)
    neck = fitted.vertices()[fitted.template.region_vertices("neck")]
    base = neck[neck[:, 1] < neck[:, 1].min() + 0.01].mean(0)
    uv, z = fitted.camera.project(base[None])
    cx, cy, px_per_m = float(uv[0, 0]), float(uv[0, 1]), fitted.camera.fx / float(z[0])
    mask = photo_evidence(photo, lm).person > 0.5
    chin = int(lm.xy[152, 1]) + 3
    mask[chin:] = False  # the photo's own suit rises high round the neck
    cols = np.arange(mask.shape[1])
    mask[chin:, (cols >= cx - 0.05 * px_per_m) & (cols <= cx + 0.05 * px_per_m)] = True
    mask[int(round(cy + top * px_per_m)):, (cols >= cx - right * px_per_m) & (cols <= cx + left * px_per_m)] = True
    return fitted, mask, cy, px_per_m


def test_the_photos_shoulders_are_read_on_each_side():
    """Shoulder widths drawn at known metres, narrower on the subject's right (the image's left), read back
    within 1.5 cm; the shoulder line's height within a centimetre (the neck's base is the lowest ring of
    the neck, which the head's tilt changes a little), and how far it moves within 3 mm."""
    right, left = 0.17, 0.22
    roots = []
    for top in (0.02, -0.03):
        fitted, mask, cy, px_per_m = _drawn_shoulders(top, right, left)
        got = shoulder_widths(fitted, mask)
        assert got[0] is not None and got[1] is not None
        # within 1.5 cm: on ICT's neck both sides read ~1.2 cm to the subject's left (an axis offset, issue 30)
        assert abs(got[0] - right) < 0.015 and abs(got[1] - left) < 0.015, got
        root, drops = shoulder_line(fitted, mask, got)
        assert root is not None and abs(root - top) < 0.01, (top, root)
        assert drops == (DROP_RANGE[0], DROP_RANGE[0])  # a flat top: the least drop allowed
        roots.append(root)
    assert abs((roots[0] - roots[1]) - 0.05) < 0.003, roots
    # cropped just below the neck: no shoulder to read
    cut = int(cy + 0.04 * px_per_m)
    assert shoulder_widths(fitted, mask[:cut]) == (None, None)
    assert shoulder_line(fitted, mask[:cut], (None, None)) == (None, (None, None))


def test_the_bust_stays_put_while_the_head_turns_and_nods(astronaut):
    bust = _bust(astronaut)
    assert bust.sum() > 5000 and (~bust).sum() > 50_000
    g0 = astronaut.gaussians()
    g1 = astronaut.gaussians({"headYaw": 0.6, "headPitch": 0.3, "jawOpen": 1.0})
    assert np.array_equal(g0.means[bust], g1.means[bust])
    moved = np.linalg.norm(g1.means[~bust] - g0.means[~bust], axis=1)
    assert np.median(moved) > 0.03  # the head itself turns


def test_the_bust_lies_under_the_neck_and_is_as_wide_as_shoulders(astronaut):
    tpl = astronaut.fitted.template
    v = astronaut.vertices()
    neck = v[tpl.region_vertices("neck")]
    b = astronaut.bust.vertices
    chin = tpl.landmarks(v)[152]
    axis = neck[:, [0, 2]].mean(0)
    outside = np.linalg.norm(b[:, [0, 2]] - axis, axis=1) > np.linalg.norm(neck[:, [0, 2]] - axis, axis=1).max() + 0.005
    assert b[outside, 1].max() < chin[1] - 0.02  # what shows of it is below the chin
    assert b[:, 1].max() > neck[:, 1].min() + 0.02  # its top is inside the neck: no gap between them
    width = np.ptp(b @ _lateral_axis(astronaut))
    assert 0.3 < width < 0.5, width  # shoulder to shoulder, metres


def test_the_shirt_goes_round_the_back(astronaut):
    """Astronaut's orange suit, seen at the front, colours the bust's back (which the photo does not show)."""
    from model.core.gaussians import quat_to_rotmat
    g = astronaut.gaussians()
    bust = _bust(astronaut)
    normal = quat_to_rotmat(g.quats)[:, :, 2]  # a bound Gaussian's third axis is its surface's normal
    facing = (normal * (astronaut.input_camera.position[None] - g.means)).sum(1)
    side = np.abs(normal[:, 1]) < 0.5  # the body's side, not its flat bottom
    low = side & (g.means[:, 1] < np.percentile(g.means[bust & side, 1], 25))  # the chest, below the suit's ring
    front, back = bust & low & (facing > 0), bust & low & (facing < 0)
    assert front.sum() > 200 and back.sum() > 200, (front.sum(), back.sum())
    f, b = np.median(g.rgb[front], 0), np.median(g.rgb[back], 0)
    assert f[0] > f[2] + 0.2 and b[0] > b[2] + 0.2, (f, b)  # orange, front and back
    assert np.abs(f - b).max() < 0.2


def test_a_turned_head_sits_on_shoulders_square_to_the_camera(astronaut):
    """The photo of a head turned 35 degrees on a body facing the camera: the bust built from it faces the
    camera (its shoulder line across the view), not the head's way."""
    photo = to_uint8(astronaut.render(astronaut.input_camera, {"headYaw": np.deg2rad(35.0)},
                                      background=(1.0, 1.0, 1.0)).rgb)
    turned = HeadSplat().reconstruct(photo)
    axis = _lateral_axis(turned)
    cam_right = turned.input_camera.R[0]  # the camera's x axis in the head frame
    head_right = np.array([1.0, 0.0, 0.0])
    assert abs(axis @ cam_right) > np.cos(np.deg2rad(8))
    assert abs(axis @ head_right) < np.cos(np.deg2rad(20))


def test_a_photo_cropped_at_the_chin_gets_a_plain_bust_square_to_the_head():
    """Nothing of the body in the photo: the bust follows the head's frame (there is no body to face the
    camera with) and is the unseen clothing's grey, not a stretched neck."""
    photo = skimage.data.astronaut()
    lm = detect_landmarks(photo)
    crop = photo[:int(lm.xy[152, 1]) + 6]
    avatar = HeadSplat().reconstruct(crop)
    axis = _lateral_axis(avatar)
    assert abs(axis[0]) > np.cos(np.deg2rad(3))
    g = avatar.gaussians()
    bust = _bust(avatar)
    low = bust & (g.means[:, 1] < np.percentile(g.means[bust, 1], 50))
    assert np.abs(np.median(g.rgb[low], 0) - UNSEEN_CLOTHING).max() < 0.02


def test_the_bust_is_carved_to_the_photos_silhouette(astronaut):
    """At the input view, the bust covers the photo's person: almost none of it lies on the background."""
    from model.core.gaussians import Gaussians
    from model.core.render import render
    g = astronaut.gaussians()
    label = Gaussians.from_rgb(g.means, g.quats, g.scales, g.opacities,
                               np.repeat(_bust(astronaut)[:, None], 3, 1).astype(np.float32))
    drawn = render(label, astronaut.input_camera, background=(0.0, 0.0, 0.0)).rgb[..., 0] > 0.5
    lm = detect_landmarks(skimage.data.astronaut())
    person = photo_evidence(skimage.data.astronaut(), lm).person > 0.5
    assert drawn.sum() > 10_000
    assert (drawn & ~person).sum() / drawn.sum() < 0.03


def test_a_shirt_seen_only_at_the_shoulders_goes_on_down_the_chest():
    """london_005 is cut just below the shoulders: its white T-shirt shows on no chest ring. The chest below
    the photo's edge takes the shirt's colour (the parser's clothes pixels in the photo), not the plain grey
    of unseen clothing."""
    from evaluation.datasets import DEV_DIR
    from model.core.image_io import load_image, to_float
    photo = load_image(DEV_DIR / "london_005.jpg")
    avatar = HeadSplat().reconstruct(photo)
    g = avatar.gaussians()
    uv, _ = avatar.input_camera.project(g.means)
    below_photo = _bust(avatar) & (uv[:, 1] > photo.shape[0] + 5)  # what the photo cannot show
    assert below_photo.sum() > 500
    shirt = np.median(to_float(photo)[photo_evidence(photo, detect_landmarks(photo)).clothes], 0)
    got = np.median(g.rgb[below_photo], 0)
    assert np.abs(got - shirt).max() < 0.15, (got, shirt)
    assert np.abs(got - UNSEEN_CLOTHING).max() > 0.3


@pytest.mark.parametrize("name", ["obama_2010_blue_room", "london_005"])
def test_the_bust_stands_under_the_neck_and_nothing_of_the_neck_hangs_behind_it(name):
    """ICT's neck ends in its own shoulders' flare and a flap over the collarbones. Centred on that flap's lowest
    centimetre, the bust stood 5.8-8 cm forward of the neck, and the flare hung out behind it like a cape
    (short-haired obama_2010 and london_005 seen at 90-180°). The bust's top ring is centred on the neck (the
    middle of its extent 1-3 cm below the chin) within 1.5 cm, and no Gaussian of the head's neck behind that
    axis lies below the height where the bust takes over (bust.takes_over)."""
    from evaluation.datasets import portraits_dev
    from model.head import rig
    from model.head.template import REGIONS
    from model.ours.bust import COLS
    avatar = HeadSplat().reconstruct(portraits_dev().subject(name).image)
    fitted, bust = avatar.fitted, avatar.bust
    v = rig.deform(fitted, None)
    chin = fitted.template.landmarks(v)[152, 1]
    neck = v[fitted.template.region_vertices("neck")]
    band = neck[(neck[:, 1] < chin - 0.01) & (neck[:, 1] > chin - 0.03)]
    axis = (band.min(0) + band.max(0)) / 2
    top = bust.vertices[:COLS].mean(0)
    assert np.abs(top[[0, 2]] - axis[[0, 2]]).max() < 0.015, (top, axis)
    g = avatar.gaussians()
    m = g.means[avatar.face_region[avatar.binding.faces] == REGIONS.index("neck")]
    height = ((m - fitted.neck_pivot) @ bust.body.T + fitted.neck_pivot)[:, 1]  # in the body frame, as Bust.cut
    assert not ((height < bust.cut) & (m[:, 2] < axis[2])).any()


def test_what_the_photo_does_not_show_of_the_bust_is_a_quarter_of_the_gaussians_covering_as_much(astronaut):
    """texel_gaussians' coarse texels (the bust's back, which the photo does not show: a ring's colour): one
    Gaussian for 2 x 2 texels, twice the size, so the surface is as covered; 80k of astronaut's 168k Gaussians
    had been on the bust at its chart's 384 texels."""
    from model.ours.avatar import texel_gaussians
    from model.ours.bust import bust_layout, grid
    layout, (faces, face_uvs) = bust_layout(), grid()
    keep = np.ones(len(layout.rc), bool)
    fine = texel_gaussians(layout, faces, face_uvs, astronaut.bust.vertices, keep)
    coarse = texel_gaussians(layout, faces, face_uvs, astronaut.bust.vertices, keep, coarse=keep)
    assert 0.2 < len(coarse[0]) / len(fine[0]) < 0.3
    area = lambda scales: float((scales[:, 0].astype(np.float64) * scales[:, 1]).sum())  # noqa: E731
    assert abs(area(coarse[3]) / area(fine[3]) - 1) < 0.15, (area(coarse[3]), area(fine[3]))
    assert len(astronaut.gaussians()) < 140_000  # 124k; 168k with every bust texel fine
