"""Single-image fitting of the open template: camera, head pose and identity shape.

Pose convention (one for the whole project): the *camera carries the head pose*. The world stays
the canonical head frame of model/core/camera.py, so `fitted.camera.project(fitted.vertices)` lands on
the photo; `fitted.pose` = (yaw, pitch, roll) radians is only reported: it is the head's rotation
as a frontal camera would see it, R_head = R_y(yaw) @ R_x(pitch) @ R_z(roll) (right-hand rule
about the head axes: yaw > 0 turns the face towards +x, the subject's left; pitch > 0 tilts the
face down; roll > 0 lifts the subject's left side). `posed_vertices` applies that rotation about
the neck pivot; `frontal_camera` then shows the posed head exactly as `camera` shows the unposed
one. The rig's headYaw/Pitch/Roll controls rotate the head in the world, on top of this.

Method (deterministic, a few milliseconds once the template basis is cached):
1. camera: square pixels, principal point at the image centre, focal = FOCAL_FACTOR x the long
   side (a ~30 degree field of view across the long side, typical of portraits; one photo cannot
   tell focal length from distance, so the head keeps the template's absolute size);
2. rotation and translation by PnP (OpenCV) on landmarks that expressions do not move
   (forehead, nose, cheeks, eye corners), alternated twice with a per-axis scale of the whole
   head (width, height, depth) fitted to all face landmarks: a wide or long face gets a
   correspondingly wide or long skull;
3. identity: every detected landmark is back-projected on its camera ray at the depth given by
   the detector's relative depth; the residual 3D displacements of the 468 face points are
   spread over the surface by a linear solve (soft landmark constraints with a bi-Laplacian
   smoothness energy that decays away from the face; factorized once per process); ears follow
   the skin where they attach, eyeballs follow their eye's lid landmarks and turn towards the
   detected irises, the mouth cavity (teeth) moves as one piece with the mean of the inner lips.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from model.core.camera import Camera, intrinsics
from model.head import landmarks as LM
from model.head._template_canonical import MEDIAPIPE_Z_SCALE
from model.head.landmarks import Landmarks
from model.head.template import Template, load_template

FOCAL_FACTOR = 1.0 / (2 * np.tan(np.deg2rad(30.0) / 2))  # focal / long side: 30 degree fov
NECK_PIVOT = np.array([0.0, -0.045, -0.02])  # metres, canonical head frame (upper cervical spine)
R_FRONT = np.diag([1.0, -1.0, -1.0])  # world-to-camera rotation of a frontal camera (looks down -z)
SMOOTH_EPS = 3e-4  # decay of the identity displacement away from landmarks (graph-Laplacian units)
LANDMARK_WEIGHT = 30.0  # soft-constraint weight of landmarks against smoothness
SCALE_RANGE = (0.8, 1.25)  # per-axis head scale bounds relative to the template
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


@dataclass(eq=False)
class FittedHead:
    template: Template
    vertices: np.ndarray  # [V,3] identity shape, neutral expression, canonical head frame, metres
    camera: Camera  # projects `vertices` (world = head frame) onto the photo; size = photo size
    pose: np.ndarray  # (yaw, pitch, roll) radians of the head in the photo (see module docstring)
    landmarks: Landmarks  # what was detected
    nme: float  # mean landmark reprojection error / outer-eye-corner distance
    scale: np.ndarray = field(default_factory=lambda: np.ones(3))  # per-axis head scale vs template
    eye_centres: np.ndarray = field(default_factory=lambda: np.zeros((2, 3)))  # [right, left] metres
    gaze: np.ndarray = field(default_factory=lambda: np.zeros((2, 2)))  # [eye, (yaw, pitch)] baked in, radians
    cache: dict = field(default_factory=dict, repr=False)  # per-subject rig data (model/head/rig.py)

    @property
    def version(self) -> str:
        return self.template.version

    @property
    def neck_pivot(self) -> np.ndarray:
        return NECK_PIVOT * self.scale

    @property
    def head_rotation(self) -> np.ndarray:
        """R_head [3,3] with camera.R == R_FRONT @ R_head."""
        return R_FRONT.T @ self.camera.R

    def posed_vertices(self, vertices: np.ndarray | None = None) -> np.ndarray:
        """Rotate vertices [V,3] (default: the identity shape) by the head pose about the neck pivot."""
        v = self.vertices if vertices is None else np.asarray(vertices, dtype=np.float64)
        c = self.neck_pivot
        return (v - c) @ self.head_rotation.T + c

    @property
    def frontal_camera(self) -> Camera:
        """Camera with frontal orientation that shows posed_vertices() exactly as `camera` shows vertices."""
        M = np.eye(4)
        M[:3, :3] = self.head_rotation
        M[:3, 3] = self.neck_pivot - self.head_rotation @ self.neck_pivot
        return Camera(self.camera.K, self.camera.world_to_cam @ np.linalg.inv(M), self.camera.width,
                      self.camera.height)

    def metadata(self) -> dict:
        return {"template_version": self.version, "pose_rad": self.pose.tolist(), "gaze_rad": self.gaze.tolist(),
                "nme": self.nme, "scale": self.scale.tolist(), "camera": self.camera.to_dict()}


# ---------------------------------------------------------------- subject-independent precompute
@dataclass(frozen=True)
class _Basis:
    solve: object  # factorized smoothness + landmark system: rhs [soft, k] -> [soft, k]
    AT: object  # sparse [soft, 468]: LANDMARK_WEIGHT * A^T
    soft: np.ndarray  # vertex ids of the deformable sheet (skin and eye sockets)
    ears: tuple  # ((ear vertex ids, attachment index into soft), ...)
    eye_lids: tuple  # (right lid landmark ids, left lid landmark ids)
    rigid: np.ndarray  # landmark ids used for PnP
    lm0: np.ndarray  # [478,3] template landmarks
    eyeball: tuple  # (right vertex ids, left vertex ids)
    eye_centre0: np.ndarray  # [2,3]
    mouth_bag: np.ndarray  # vertex ids of the mouth cavity (rings and pole)

    def displacement(self, n: int, residual: np.ndarray) -> np.ndarray:
        """Residuals of the 468 face landmarks [468,3] -> smooth vertex displacements [n,3]."""
        d = np.zeros((n, 3))
        d[self.soft] = self.solve(self.AT @ residual)
        for ids, k in self.ears:
            d[ids] = d[self.soft[k]]
        for ids, lids in zip(self.eyeball, self.eye_lids):
            d[ids] = residual[list(lids)].mean(0)
        # The cavity moves as one piece with the mouth: parted lips (a smile) must not part the teeth,
        # or the teeth the photo shows would be painted on the deep cavity behind them.
        d[self.mouth_bag] = residual[list(LM.LIPS_INNER_UPPER + LM.LIPS_INNER_LOWER)].mean(0)
        return d


def _uniform_laplacian(faces: np.ndarray, n: int):
    import scipy.sparse as sp
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    A = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    A = ((A + A.T) > 0).astype(np.float64)
    deg = np.asarray(A.sum(1)).ravel()
    return sp.eye(n) - sp.diags(1.0 / np.maximum(deg, 1)) @ A


@lru_cache(maxsize=2)
def _basis(template: Template) -> _Basis:
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu
    p = template.parts
    V = template.vertices
    n = len(V)
    mouth_bag = np.append(p["mouth_bag"].ravel(), p["mouth_pole"])
    solid = np.concatenate([p["eyeball_r"], p["eyeball_l"], p["ear_r"], p["ear_l"], mouth_bag])
    soft = np.setdiff1d(np.arange(n), solid)  # skin + eye sockets: the deformable sheet
    index = np.full(n, -1)
    index[soft] = np.arange(len(soft))
    fsel = np.all(index[template.faces] >= 0, axis=1)
    L = _uniform_laplacian(index[template.faces[fsel]], len(soft))
    A = template.landmark_matrix()[:468][:, soft]
    K = (L.T @ L + SMOOTH_EPS * sp.eye(len(soft)) + LANDMARK_WEIGHT * (A.T @ A)).tocsc()
    solve = splu(K).solve  # ~1 s once per process; each fit then costs three triangular solves
    from scipy.spatial import cKDTree
    tree = cKDTree(V[soft])
    ears = tuple((e, int(tree.query(V[e].mean(0))[1])) for e in (p["ear_r"], p["ear_l"]))  # follow the skin they attach to
    lids = (LM.RIGHT_EYE_UPPER + LM.RIGHT_EYE_LOWER[1:-1], LM.LEFT_EYE_UPPER + LM.LEFT_EYE_LOWER[1:-1])
    lm0 = template.landmarks(V)
    canon = p["canonical_landmarks"]
    moving = set(LM.LIPS_INNER_UPPER + LM.LIPS_INNER_LOWER + LM.RIGHT_EYE_UPPER[1:-1] + LM.RIGHT_EYE_LOWER[1:-1]
                 + LM.LEFT_EYE_UPPER[1:-1] + LM.LEFT_EYE_LOWER[1:-1] + LM.RIGHT_BROW_UPPER + LM.RIGHT_BROW_LOWER
                 + LM.LEFT_BROW_UPPER + LM.LEFT_BROW_LOWER)
    y_lip = canon[0, 1]  # top of the upper lip: below it the jaw and lips move
    rigid = np.array([i for i in range(468) if canon[i, 1] > y_lip + 0.004 and i not in moving])
    eye_c0 = np.stack([V[p["eyeball_r"]].mean(0), V[p["eyeball_l"]].mean(0)])
    return _Basis(solve, (LANDMARK_WEIGHT * A.T).tocsr(), soft, ears, lids, rigid, lm0,
                  (p["eyeball_r"], p["eyeball_l"]), eye_c0, mouth_bag)


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


def _back_project(lm: Landmarks, cam: Camera, model_pts: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Detected landmarks -> 3D head-frame points [478,3] on their camera rays, depth from the detector.

    The detector's relative depth (pixels) becomes metres at the face's distance; its offset is
    chosen so that the mean depth over `ids` equals that of `model_pts` seen by `cam`."""
    z_ref = cam.to_camera(model_pts[ids])[:, 2].mean()
    rel = lm.points[:, 2] * MEDIAPIPE_Z_SCALE * z_ref / cam.fx
    return cam.unproject(lm.points[:, :2], rel - rel[ids].mean() + z_ref)


def _gaze_rotation(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit direction [3] -> (R taking +z to d as R_y(yaw) R_x(pitch), (yaw, pitch))."""
    yaw = np.arctan2(d[0], d[2])
    pitch = -np.arcsin(np.clip(d[1], -1, 1))
    yaw, pitch = np.clip(yaw, -MAX_GAZE, MAX_GAZE), np.clip(pitch, -MAX_GAZE, MAX_GAZE)
    return rotation_from_euler(yaw, pitch, 0.0), np.array([yaw, pitch])


def fit(image: np.ndarray | None = None, landmarks: Landmarks | None = None,
        template: Template | None = None) -> FittedHead:
    """One photo (RGB uint8 [H,W,3]) or its detected landmarks -> FittedHead. No face -> InputError."""
    if landmarks is None:
        if image is None:
            raise ValueError("fit() needs an image or landmarks")
        from model.head.landmarks import detect_landmarks
        landmarks = detect_landmarks(image)
    template = template or load_template()
    basis = _basis(template)
    w, h = landmarks.image_size
    K = photo_camera_K(w, h)
    uv = landmarks.xy
    scale = np.ones(3)
    R, t = solve_pnp(basis.lm0[basis.rigid], uv[basis.rigid], K)
    face = np.arange(468)
    for _ in range(2):
        target = _back_project(landmarks, Camera(K, _rt(R, t), w, h), basis.lm0 * scale, basis.rigid)
        # per-axis scale about the head centre, with a free offset (absorbed by the camera)
        a, b = basis.lm0[face], target[face]
        ac, bc = a - a.mean(0), b - b.mean(0)
        s = (ac * bc).sum(0) / np.maximum((ac * ac).sum(0), 1e-12)
        s = s / np.sqrt(s[0] * s[1])  # absolute size is not observable: keep the face area
        scale = np.clip(s, *SCALE_RANGE)
        R, t = solve_pnp(basis.lm0[basis.rigid] * scale, uv[basis.rigid], K, cv_rvec(R), t)
    target = _back_project(landmarks, Camera(K, _rt(R, t), w, h), basis.lm0 * scale, basis.rigid)
    residual = target[face] - basis.lm0[face] * scale
    vertices = template.vertices * scale + basis.displacement(len(template.vertices), residual)
    # eyeballs: isotropic size, turned towards the detected iris centres
    s_iso = float(np.cbrt(np.prod(scale)))
    cam = Camera(K, _rt(R, t), w, h)
    centres, gaze = np.zeros((2, 3)), np.zeros((2, 2))
    for k, (ids, iris) in enumerate(zip(basis.eyeball, (LM.RIGHT_IRIS[0], LM.LEFT_IRIS[0]))):
        c = vertices[ids].mean(0)
        local = (template.vertices[ids] - basis.eye_centre0[k]) * s_iso
        radius = template.parts["eye_radius"] * s_iso
        d = _iris_direction(cam, c, radius, uv[iris])
        Rg, gaze[k] = _gaze_rotation(d)
        vertices[ids] = c + local @ Rg.T
        centres[k] = c
    proj, _ = cam.project(template.landmarks(vertices))
    nme = float(np.linalg.norm(proj - uv, axis=1).mean() / max(LM.inter_ocular(landmarks.points), 1e-9))
    pose = euler_from_rotation(R_FRONT.T @ R)
    return FittedHead(template, vertices, cam, pose, landmarks, nme, scale, centres, gaze)


def cv_rvec(R: np.ndarray) -> np.ndarray:
    import cv2
    return cv2.Rodrigues(np.ascontiguousarray(R))[0]


def _rt(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    M = np.eye(4)
    M[:3, :3], M[:3, 3] = R, t
    return M


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
