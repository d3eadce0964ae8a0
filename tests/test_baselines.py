"""Each baseline behaves as its description says (on a real portrait shipped with scikit-image)."""
import numpy as np
import pytest
import skimage.data
from scipy.ndimage import binary_fill_holes

from baselines.registry import get_method
from evaluation.metrics import psnr
from model.core.camera import framing_camera
from model.head.segmentation import person_mask


@pytest.fixture(scope="module")
def photo():
    return skimage.data.astronaut()


@pytest.fixture(scope="module")
def avatars(photo):
    return {m: get_method(m).reconstruct(photo) for m in ("billboard", "depth-lift", "template-texture", "ours")}


def _view(avatar, yaw_deg, size=128):
    return avatar.render(framing_camera(avatar.head_center, avatar.head_radius, np.deg2rad(yaw_deg), 0.0, size))


def _hole_fraction(alpha):
    sil = binary_fill_holes(alpha > 0.5)
    return float((alpha[sil] < 0.5).mean()) if sil.any() else 1.0


def test_every_builtin_speaks_the_interface(avatars, photo):
    for mid, a in avatars.items():
        assert a.info.id == mid
        assert (a.input_camera.width, a.input_camera.height) == (photo.shape[1], photo.shape[0])
        out = _view(a, 0)
        assert out.rgb.shape == (128, 128, 3) and out.alpha.max() > 0.9
    assert not avatars["billboard"].animatable and not avatars["depth-lift"].animatable
    with pytest.raises(ValueError, match="not animatable"):
        avatars["billboard"].render(avatars["billboard"].input_camera, {"jawOpen": 1.0})


def test_billboard_reproduces_the_photo_at_yaw_0_and_vanishes_edge_on(avatars, photo):
    b = avatars["billboard"]
    out = b.render(b.input_camera, background=(1, 1, 1))
    person = person_mask(photo) > 0.5
    assert psnr(out.rgb, photo.astype(np.float32) / 255, person) > 25
    front, side = ((_view(b, yaw).alpha > 0.5).sum() for yaw in (0, 90))
    assert side < 0.15 * front


def test_depth_lift_adds_nothing_the_photo_does_not_show(avatars, photo):
    d = avatars["depth-lift"]
    g = d.gaussians()
    uv, z = d.input_camera.project(g.means)
    px = np.round(uv).astype(int)
    assert np.abs(uv - px).max() < 1e-3 and (z > 0).all()  # one Gaussian on each sampled pixel's ray
    assert np.abs(g.rgb - photo[px[:, 1], px[:, 0]] / 255).max() < 1e-5  # with that pixel's colour
    ours = avatars["ours"]
    # seen from behind-left, its single layer breaks up where ours stays closed
    assert _hole_fraction(_view(d, 135).alpha) > _hole_fraction(_view(ours, 135).alpha)


def test_template_texture_has_an_untextured_back(avatars):
    back = _view(avatars["template-texture"], 180)
    skull = (back.alpha > 0.9) & (np.arange(len(back.alpha))[:, None] < 0.6 * len(back.alpha))  # above the ears'
    # lobes and the neck's base, which the photo sees from the front and textures
    assert np.abs(back.rgb[skull].mean(0) - 0.5).max() < 0.02
    ours = _view(avatars["ours"], 180)
    assert np.abs(ours.rgb[ours.alpha > 0.9].mean(0) - 0.5).max() > 0.03  # hair, not grey
