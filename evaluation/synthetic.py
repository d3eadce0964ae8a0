"""Generators of the synthetic evaluation set (ground-truth multi-view images + a video), pluggable.

A generator returns the subject dicts that evaluation.datasets.write_multiview stores. The heads are
built here, procedurally, and rendered with the project's own renderer (model.core.render); they do not
come from any evaluated method, so no method is scored against its own output.

"photo-ellipsoid-v1": an ellipsoidal skull + neck of Gaussians; the face region is replaced by a relief
surface lifted from mediapipe's landmarks (their relative depth) of a real bundled photo and coloured
by that photo; hair/skin colours elsewhere come from the same photo. Rendered on white. The input view
is frontal; the novel views are a yaw/pitch set; the video is the head turning rigidly (no expressions in
v1) in front of the fixed input camera. Deterministic: no random numbers are drawn.
"""
from __future__ import annotations

import numpy as np

from model.core.camera import Camera, orbit_camera
from model.core.image_io import to_float, to_uint8

DEFAULT = "photo-ellipsoid-v1"
LICENSE = "derived from public-domain photos (NASA, US Navy); generated images: public domain"

HEAD_AXES = np.array([0.078, 0.100, 0.095])  # ellipsoid semi-axes x, y, z (metres)
FACE_WIDTH = 0.14  # metres between the face oval's extreme landmarks
FOV_Y = np.deg2rad(20.0)
FRAMING = 1.35  # camera distance = FRAMING * head radius / sin(fov/2): head + neck in view
INPUT_SIZE = 512
VIEW_SIZE = 256
VIEWS = [(-90, 0), (-60, 0), (-30, 0), (30, 0), (60, 0), (90, 0), (180, 0), (0, 20), (0, -20)]  # degrees
FRAME_POSES = [(0, 0), (8, 0), (16, 3), (8, 5), (0, 0), (-8, -3), (-16, 0), (-8, 4)]  # head yaw, pitch (deg)


def _head_from_photo(photo: np.ndarray):
    """Gaussians (model.core.gaussians.Gaussians) of a procedural head textured by `photo` [H,W,3] uint8."""
    import cv2
    from scipy.interpolate import LinearNDInterpolator
    from scipy.spatial import Delaunay

    from model.core.gaussians import Gaussians
    from model.head.landmarks import detect_landmarks
    from model.head.segmentation import FACE_OVAL

    lm = detect_landmarks(photo)
    img = to_float(photo)
    h, w = photo.shape[:2]
    oval_px = lm.xy[list(FACE_OVAL)]
    s = FACE_WIDTH / (oval_px[:, 0].max() - oval_px[:, 0].min())  # metres per pixel
    cx, cy = oval_px.mean(0)

    def to_xy(p):  # photo pixels -> world x, y (the oval centre sits slightly below the skull centre)
        return np.stack([(p[:, 0] - cx) * s, -(p[:, 1] - cy) * s - 0.012], 1)

    def ell_z(x, y):
        return HEAD_AXES[2] * np.sqrt(np.clip(1 - (x / HEAD_AXES[0]) ** 2 - (y / HEAD_AXES[1]) ** 2, 0, None))

    lxy = to_xy(lm.xy)
    lz = -lm.points[:, 2] * s * 0.8  # mediapipe z: smaller = nearer; flatten a little, it overstates relief
    ovxy = lxy[list(FACE_OVAL)]
    lz += np.median(ell_z(ovxy[:, 0], ovxy[:, 1]) - lz[list(FACE_OVAL)])  # face rim onto the skull
    face_z = LinearNDInterpolator(lxy, lz)

    # face: one Gaussian per 2x2 photo pixels inside the oval, coloured by the photo
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(oval_px).astype(np.int32)], 1)
    ys, xs = np.nonzero(mask[::2, ::2])
    ys, xs = ys * 2, xs * 2
    fxy = to_xy(np.stack([xs, ys], 1).astype(np.float64))
    fz = face_z(fxy[:, 0], fxy[:, 1])
    ok = np.isfinite(fz)
    face = np.c_[fxy[ok], fz[ok]]
    face_rgb = cv2.GaussianBlur(img, (3, 3), 0)[ys[ok], xs[ok]]

    # skull: Fibonacci points on the ellipsoid, minus the face region in front
    n = 36000
    i = np.arange(n) + 0.5
    phi, th = np.arccos(1 - 2 * i / n), np.pi * (1 + 5 ** 0.5) * i
    u = np.c_[np.cos(th) * np.sin(phi), np.cos(phi), np.sin(th) * np.sin(phi)]
    skull = u * HEAD_AXES
    normal = skull / HEAD_AXES ** 2
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    keep = ~((Delaunay(ovxy).find_simplex(skull[:, :2]) >= 0) & (skull[:, 2] > 0))
    skull, normal = skull[keep], normal[keep]

    # neck: a vertical cylinder under the skull
    a, y = np.meshgrid(np.linspace(0, 2 * np.pi, 90, endpoint=False), np.linspace(-0.22, -0.06, 40))
    neck = np.c_[0.052 * np.sin(a.ravel()), y.ravel(), -0.015 + 0.05 * np.cos(a.ravel())]

    # colours: skin = median of the face; hair = median of a band above the oval top in the photo
    skin = np.median(face_rgb, 0)
    top = int(oval_px[:, 1].min())
    x0, x1 = np.percentile(oval_px[:, 0], [30, 70]).astype(int)
    band = img[max(top - int(0.12 / s * 0.4), 0):max(top - 2, 1), max(x0, 0):x1].reshape(-1, 3)
    hair = np.median(band, 0) if len(band) >= 16 else np.array([0.25, 0.18, 0.12])
    hair_w = np.maximum(np.clip((skull[:, 1] + 0.015) / 0.04, 0, 1), np.clip(-normal[:, 2] * 2.5, 0, 1))
    skull_rgb = hair_w[:, None] * hair + (1 - hair_w[:, None]) * skin * 0.95
    neck_rgb = np.tile(skin * 0.85, (len(neck), 1))

    means = np.concatenate([face, skull, neck])
    rgb = np.concatenate([face_rgb, skull_rgb, neck_rgb])
    scales = np.concatenate([np.full((len(face), 3), 1.4 * s), np.full((len(skull), 3), 0.0019),
                             np.full((len(neck), 3), 0.0022)])
    quats = np.tile(np.array([1.0, 0, 0, 0], np.float32), (len(means), 1))
    return Gaussians.from_rgb(means, quats, scales, np.full(len(means), 0.95, np.float32), rgb)


def _rotate(g, yaw_deg: float, pitch_deg: float):
    """The head turned about its centre (yaw about +y, then pitch about +x)."""
    from model.core.gaussians import Gaussians, quat_to_rotmat, rotmat_to_quat
    cy, sy = np.cos(np.deg2rad(yaw_deg)), np.sin(np.deg2rad(yaw_deg))
    cp, sp = np.cos(np.deg2rad(pitch_deg)), np.sin(np.deg2rad(pitch_deg))
    R = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]]) @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rq = R[None] @ quat_to_rotmat(g.quats)
    return Gaussians(g.means @ R.T, rotmat_to_quat(Rq), g.scales, g.opacities, g.sh)


def _camera(yaw_deg: float, pitch_deg: float, size: int) -> Camera:
    radius = FRAMING * HEAD_AXES.max() / np.sin(FOV_Y / 2)
    return orbit_camera(np.deg2rad(yaw_deg), np.deg2rad(pitch_deg), radius, (0.0, 0.0, 0.0), size, size, FOV_Y)


def photo_ellipsoid_v1(photos: dict[str, np.ndarray]) -> list[dict]:
    """One synthetic subject per photo ({id: RGB uint8 [H,W,3]}): the photo's face on a procedural head."""
    from model.core.render import render
    from model.head.landmarks import detect_landmarks

    white = (1.0, 1.0, 1.0)
    subjects = []
    for sid, photo in photos.items():
        head = _head_from_photo(photo)
        cam_in = _camera(0, 0, INPUT_SIZE)
        inp = to_uint8(render(head, cam_in, white, backend="cpu").rgb)
        detect_landmarks(inp)  # the input must show a detectable face, else no method can run on it
        views = {}
        for yaw, pitch in VIEWS:
            cam = _camera(yaw, pitch, VIEW_SIZE)
            r = render(head, cam, white, backend="cpu")
            views[f"yaw{yaw:+04d}_pitch{pitch:+03d}"] = (cam, to_uint8(r.rgb), r.alpha > 0.5)
        frames = [to_uint8(render(_rotate(head, yaw, pitch), cam_in, white, backend="cpu").rgb)
                  for yaw, pitch in FRAME_POSES]
        subjects.append({"id": f"synth-{sid}", "input": inp, "input_camera": cam_in,
                         "head_center": np.zeros(3), "views": views, "frames": frames})
    if not subjects:
        raise RuntimeError("no photo given to build the synthetic set from")
    return subjects


GENERATORS = {"photo-ellipsoid-v1": photo_ellipsoid_v1}
DESCRIPTION = {"photo-ellipsoid-v1": "SYNTHETIC: procedural Gaussian heads (ellipsoid skull, landmark-relief "
                                     "face textured by a bundled real photo), rendered by model.core.render on white"}
