"""Single-image fitting: reaches the landmark bar on real portraits, recovers a known pose, clear input errors."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from model.core.errors import InputError
from model.head.fitting import euler_from_rotation, rotation_from_euler
from model.head.ict_fit import fit
from model.head.landmarks import detect_landmarks
from model.head.template import load_template


@pytest.fixture(scope="module")
def astronaut_fit():
    return fit(skimage.data.astronaut())


def _hopper():
    path = Path(importlib.util.find_spec("matplotlib").submodule_search_locations[0]) / "mpl-data/sample_data/grace_hopper.jpg"
    from model.core.image_io import load_image
    return load_image(path)


def test_astronaut_nme_and_projection(astronaut_fit):
    f = astronaut_fit
    assert f.nme <= 0.03
    # independent recomputation of the NME from the public pieces
    uv, z = f.camera.project(f.template.landmarks(f.vertices()))
    assert (z > 0).all()
    iod = np.linalg.norm(f.landmarks.xy[33] - f.landmarks.xy[263])
    assert np.isclose(np.linalg.norm(uv - f.landmarks.xy, axis=1).mean() / iod, f.nme)
    assert (f.camera.width, f.camera.height) == (512, 512)
    assert f.vertices().shape == f.template.vertices.shape and np.isfinite(f.vertices()).all()


def test_plausible_skull(astronaut_fit):
    v = astronaut_fit.vertices()
    v = v[v[:, 1] > -0.1]  # the head above the neck (ICT's neck flares into the shoulders' start)
    width, height, depth = np.ptp(v[:, 0]), np.ptp(v[:, 1]), np.ptp(v[:, 2])
    assert 0.13 < width < 0.22 and 0.12 < height < 0.3 and 0.17 < depth < 0.27


def test_other_portrait():
    f = fit(_hopper())
    assert f.nme <= 0.03
    assert np.all(np.abs(np.rad2deg(f.pose)) < 30)


def test_deterministic():
    lm = detect_landmarks(skimage.data.astronaut())
    a, b = fit(landmarks=lm), fit(landmarks=lm)
    assert np.array_equal(a.vertices(), b.vertices()) and np.array_equal(a.camera.world_to_cam, b.camera.world_to_cam)


def test_symmetric_tracking_reads_both_sides_alike():
    # the face mesh alone reads a mirrored photo differently (a side bias); tracked with its mirror image,
    # the photo and its mirror give mirror-image landmarks (twins from the template's landmark map)
    img = skimage.data.astronaut()
    w = img.shape[1]
    pair = load_template().landmark_mirror()

    def mirrored(lm):
        return lm.points[pair] * [-1, 1, 1] + [w - 1, 0, 0]

    plain = detect_landmarks(img), detect_landmarks(img[:, ::-1])
    assert np.abs(mirrored(plain[1]) - plain[0].points)[:, :2].max() > 0.5  # the bias exists
    sym = detect_landmarks(img, twins=pair), detect_landmarks(img[:, ::-1], twins=pair)
    assert np.abs(mirrored(sym[1]) - sym[0].points).max() < 1e-6
    assert np.abs(sym[0].points - plain[0].points)[:, :2].max() < 5  # an average, not another face


def test_frames_detected_at_once_get_what_each_gets_alone():
    # the mirror serves several visitors at once through a pool of face-mesh graphs: a frame's landmarks
    # must not depend on which graph read it or on what the others were reading meanwhile
    from concurrent.futures import ThreadPoolExecutor
    images = [skimage.data.astronaut(), _hopper()]
    alone = [detect_landmarks(im).points for im in images]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda i: detect_landmarks(images[i % 2]).points, range(12)))
    for i, p in enumerate(together):
        assert np.array_equal(p, alone[i % 2])


def test_recovers_known_pose_from_synthetic_landmarks():
    """Project the head model's own landmarks from a known head pose; the fit must find that pose."""
    from model.head.head_model import load_head_model
    from model.head.ict_fit import synthetic_landmarks
    truth = np.array([0.35, -0.15, 0.1])
    lm, _, _ = synthetic_landmarks(load_head_model(), np.zeros(100), None, truth, noise_px=0.0)
    f = fit(landmarks=lm)
    assert np.abs(f.pose - truth).max() < np.deg2rad(1.0)
    assert f.nme < 0.005


def test_pose_helpers_consistent(astronaut_fit):
    f = astronaut_fit
    assert np.allclose(euler_from_rotation(rotation_from_euler(*f.pose)), f.pose)
    assert np.allclose(f.head_rotation, rotation_from_euler(*f.pose))
    a, _ = f.camera.project(f.vertices())
    b, _ = f.frontal_camera.project(f.posed_vertices())
    assert np.abs(a - b).max() < 1e-6


def test_no_face_is_input_error():
    with pytest.raises(InputError, match="no face"):
        fit(skimage.data.coffee())


def test_unreadable_file_is_input_error(tmp_path):
    from model.core.image_io import load_image
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"this is not an image")
    with pytest.raises(InputError, match="not a readable image"):
        fit(load_image(bad))
    with pytest.raises(ValueError):
        fit()
