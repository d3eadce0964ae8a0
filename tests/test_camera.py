import numpy as np
import pytest

from model.core.camera import Camera, framing_camera, intrinsics, look_at, orbit_camera


def test_orbit_camera_axes_follow_opencv_and_the_head_frame():
    cam = orbit_camera(0.0, 0.0, 1.0, width=64, height=48)
    # frontal camera on +z looking down -z: world +x appears right, world +y appears up (smaller v)
    uv, z = cam.project(np.array([[0, 0, 0], [0.05, 0, 0], [0, 0.05, 0]]))
    assert np.allclose(uv[0], [(64 - 1) / 2, (48 - 1) / 2])
    assert z[0] == pytest.approx(1.0)
    assert uv[1, 0] > uv[0, 0] and uv[2, 1] < uv[0, 1]


def test_positive_yaw_moves_camera_towards_plus_x():
    cam = orbit_camera(np.pi / 2, 0.0, 2.0)
    assert np.allclose(cam.position, [2, 0, 0], atol=1e-12)
    assert np.allclose(orbit_camera(0, np.pi / 6, 2.0).position, [0, 1.0, np.sqrt(3)], atol=1e-12)


def test_world_to_cam_is_rigid_and_round_trips_through_dict():
    cam = orbit_camera(0.7, -0.3, 1.3, target=(0.01, 0.02, 0.03))
    R = cam.R
    assert np.allclose(R @ R.T, np.eye(3), atol=1e-12) and np.linalg.det(R) == pytest.approx(1.0)
    again = Camera.from_dict(cam.to_dict())
    assert np.allclose(again.K, cam.K) and np.allclose(again.world_to_cam, cam.world_to_cam)
    with pytest.raises(ValueError, match="malformed camera"):
        Camera.from_dict({"K": [[1, 0, 0]]})


def test_look_at_straight_down_is_defined():
    w2c = look_at([0, 2, 0], [0, 0, 0])
    assert np.isfinite(w2c).all()


def test_framing_camera_fills_the_requested_fraction():
    cam = framing_camera(np.zeros(3), 0.1, 0.0, 0.0, size=200, fill=0.8)
    uv, _ = cam.project(np.array([[0, 0.1, 0], [0, -0.1, 0]]))
    # the sphere's silhouette is slightly larger than its vertical diameter's projection
    assert 0.7 * 200 < abs(uv[1, 1] - uv[0, 1]) <= 0.8 * 200


def test_resized_keeps_the_view():
    cam = Camera(intrinsics(100, 64, 64), look_at([0, 0, 1], [0, 0, 0]), 64, 64)
    p = np.array([[0.03, -0.02, 0.0]])
    uv1, _ = cam.project(p)
    uv2, _ = cam.resized(128, 128).project(p)
    assert np.allclose((uv1 + 0.5) * 2 - 0.5, uv2)


def test_unproject_inverts_project():
    cam = orbit_camera(0.7, -0.3, 0.9, target=(0.01, 0.02, -0.03), width=80, height=60)
    pts = np.random.default_rng(0).normal(0, 0.1, (50, 3))
    uv, z = cam.project(pts)
    assert np.allclose(cam.unproject(uv, z), pts, atol=1e-12)
