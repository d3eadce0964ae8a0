"""Issue 20, item 4: the bust (the neck's base and the upper shoulders) under the head, model.ours.bust."""
import numpy as np
import pytest
import skimage.data

from model.core.image_io import to_uint8
from model.head.fitting import fit
from model.head.landmarks import detect_landmarks
from model.head.segmentation import photo_evidence
from model.ours.avatar import UNSEEN_CLOTHING, HeadSplat
from model.ours.bust import REGION, shoulder_widths


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


def test_the_photos_shoulder_widths_are_read_on_each_side():
    """A person mask whose shoulders are drawn in pixels (not with the bust's geometry) at known widths in
    metres on the neck's plane, narrower on the subject's right: both read back within a centimetre."""
    photo = skimage.data.astronaut()
    lm = detect_landmarks(photo)
    fitted = fit(photo, landmarks=lm)
    person = photo_evidence(photo, lm).person > 0.5
    tpl = fitted.template
    neck = fitted.vertices[tpl.region_vertices("neck")]
    base = neck[neck[:, 1] < neck[:, 1].min() + 0.01].mean(0)
    uv, z = fitted.camera.project(base[None])
    cx, cy, px_per_m = float(uv[0, 0]), float(uv[0, 1]), fitted.camera.fx / float(z[0])
    right, left = 0.17, 0.22  # metres; the subject's right is on the image's left
    mask = person.copy()
    mask[int(cy):] = False
    cols = np.arange(mask.shape[1])
    body = (cols >= cx - right * px_per_m) & (cols <= cx + left * px_per_m)
    mask[int(cy + 0.02 * px_per_m):, body] = True
    mask[int(cy):, int(cx - 0.05 * px_per_m):int(cx + 0.05 * px_per_m)] = True  # the neck
    got = shoulder_widths(fitted, mask)
    assert got[0] is not None and got[1] is not None
    assert abs(got[0] - right) < 0.01 and abs(got[1] - left) < 0.01, got
    # cropped just below the neck: no shoulder to read
    mask[int(cy + 0.04 * px_per_m):] = False
    assert shoulder_widths(fitted, mask[:int(cy + 0.04 * px_per_m)]) == (None, None)


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
    assert b[:, 1].max() < chin[1] - 0.05  # below the chin, overlapping the neck's base
    assert b[:, 1].max() > neck[:, 1].min()
    width = np.ptp(b @ _lateral_axis(astronaut))
    assert 0.3 < width < 0.5, width  # shoulder to shoulder, metres


def test_the_shirt_goes_round_the_back(astronaut):
    """Astronaut's orange suit, seen at the front, colours the bust's back (which the photo does not show)."""
    g = astronaut.gaussians()
    bust = _bust(astronaut)
    cam = astronaut.input_camera
    facing = ((cam.position[None] - g.means) * (g.means - astronaut.bust.vertices.mean(0))).sum(1)
    low = g.means[:, 1] < np.percentile(g.means[bust, 1], 40)  # the chest, below the shoulders
    front, back = bust & low & (facing > 0), bust & low & (facing < 0)
    assert front.sum() > 500 and back.sum() > 500
    f, b = np.median(g.rgb[front], 0), np.median(g.rgb[back], 0)
    assert f[0] > f[2] + 0.2 and b[0] > b[2] + 0.2, (f, b)  # orange, front and back
    assert np.abs(f - b).max() < 0.15


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
