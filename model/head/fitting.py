"""Camera and pose conventions of the project's head fit, and the single-image fit's entry point.

Pose convention (one for the whole project): the *camera carries the head pose*. The world stays
the canonical head frame of model/core/camera.py, so `fitted.camera.project(fitted.vertices())` lands on
the photo; `fitted.pose` = (yaw, pitch, roll) radians is only reported: it is the head's rotation
as a frontal camera would see it, R_head = R_y(yaw) @ R_x(pitch) @ R_z(roll) (right-hand rule
about the head axes: yaw > 0 turns the face towards +x, the subject's left; pitch > 0 tilts the
face down; roll > 0 lifts the subject's left side). `posed_vertices` applies that rotation about
the neck pivot; `frontal_camera` then shows the posed head exactly as `camera` shows the unposed
one. The rig's headYaw/Pitch/Roll controls rotate the head in the world, on top of this.

Camera: square pixels, principal point at the image centre, focal = FOCAL_FACTOR x the long side (a ~30
degree field of view across the long side, typical of portraits; one photo cannot tell focal length from
distance, so the head keeps the model's mean absolute size). The fit itself (identity, expression, gaze,
pose of the ICT-FaceKit head from mediapipe's 478 points) is model/head/ict_fit.py (`fit` is its entry).
"""
from __future__ import annotations

import numpy as np

from model.core.camera import Camera, intrinsics

FOCAL_FACTOR = 1.0 / (2 * np.tan(np.deg2rad(30.0) / 2))  # focal / long side: 30 degree fov
NECK_PIVOT = np.array([0.0, -0.045, -0.02])  # metres, canonical head frame (upper cervical spine)
R_FRONT = np.diag([1.0, -1.0, -1.0])  # world-to-camera rotation of a frontal camera (looks down -z)
MAX_GAZE = 0.6  # radians


def rotation_from_euler(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """R [3,3] = R_y(yaw) @ R_x(pitch) @ R_z(roll) (radians, right-hand rule, head axes)."""
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return ry @ rx @ rz


def euler_from_rotation(R: np.ndarray) -> np.ndarray:
    """Inverse of rotation_from_euler -> (yaw, pitch, roll) radians."""
    pitch = -np.arcsin(np.clip(R[1, 2], -1, 1))
    yaw = np.arctan2(R[0, 2], R[2, 2])
    roll = np.arctan2(R[1, 0], R[1, 1])
    return np.array([yaw, pitch, roll])


def _uniform_laplacian(faces: np.ndarray, n: int):
    import scipy.sparse as sp
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    A = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    A = ((A + A.T) > 0).astype(np.float64)
    deg = np.asarray(A.sum(1)).ravel()
    return sp.eye(n) - sp.diags(1.0 / np.maximum(deg, 1)) @ A



# ---------------------------------------------------------------- fitting
def photo_camera_K(width: int, height: int) -> np.ndarray:
    return intrinsics(FOCAL_FACTOR * max(width, height), width, height)


def solve_pnp(object_points: np.ndarray, image_points: np.ndarray, K: np.ndarray,
              rvec=None, tvec=None) -> tuple[np.ndarray, np.ndarray]:
    """World points [N,3] + pixels [N,2] -> (R [3,3], t [3]) world-to-camera (OpenCV, deterministic)."""
    import cv2
    obj = np.ascontiguousarray(object_points, np.float64)
    img = np.ascontiguousarray(image_points, np.float64)
    if rvec is None:
        # start from a frontal head at a plausible distance, then refine (Levenberg-Marquardt)
        rvec = cv2.Rodrigues(R_FRONT)[0]
        span = np.ptp(img, axis=0).max()
        z = K[0, 0] * np.ptp(obj[:, 1]) / max(span, 1.0)
        c = img.mean(0)
        tvec = np.array([(c[0] - K[0, 2]) * z / K[0, 0], (c[1] - K[1, 2]) * z / K[1, 1], z]) - R_FRONT @ obj.mean(0)
    ok, rvec, tvec = cv2.solvePnP(obj, img, K, None, rvec=np.array(rvec, np.float64).reshape(3, 1),
                                  tvec=np.array(tvec, np.float64).reshape(3, 1), useExtrinsicGuess=True,
                                  flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        raise RuntimeError("PnP failed")
    return cv2.Rodrigues(rvec)[0], tvec.ravel()


def _gaze_rotation(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit direction [3] -> (R taking +z to d as R_y(yaw) R_x(pitch), (yaw, pitch))."""
    yaw = np.arctan2(d[0], d[2])
    pitch = -np.arcsin(np.clip(d[1], -1, 1))
    yaw, pitch = np.clip(yaw, -MAX_GAZE, MAX_GAZE), np.clip(pitch, -MAX_GAZE, MAX_GAZE)
    return rotation_from_euler(yaw, pitch, 0.0), np.array([yaw, pitch])


def _iris_direction(cam: Camera, centre: np.ndarray, radius: float, pixel: np.ndarray) -> np.ndarray:
    """Head-frame unit direction from the eyeball centre to where the iris pixel's ray meets the eyeball
    (front intersection; the closest point on the ray when it misses)."""
    ray_cam = np.array([(pixel[0] - cam.cx) / cam.fx, (pixel[1] - cam.cy) / cam.fy, 1.0])
    ray = cam.R.T @ (ray_cam / np.linalg.norm(ray_cam))
    o = cam.position
    oc = o - centre
    b = ray @ oc
    disc = b * b - (oc @ oc - radius * radius)
    tt = -b - np.sqrt(disc) if disc > 0 else -b
    d = o + tt * ray - centre
    return d / np.linalg.norm(d)
