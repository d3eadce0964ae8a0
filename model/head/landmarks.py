"""Face landmarks from one image: mediapipe 0.10.21 face mesh, 478 points, offline.

Points are returned in pixel units of the image: x right, y down (pixel centres at integers, as
model/core/camera.py), z is mediapipe's relative depth scaled to pixels (smaller = nearer the camera,
zero near the face's centre), so the three axes share one unit.
"""
from __future__ import annotations

import os
import queue
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import cv2
import numpy as np

N_LANDMARKS = 478
MAX_FACES = 4  # detect a few so that "several faces" is reported, not silently ignored
MIN_FACE_PX = 48  # below this inter-landmark extent the mesh is unreliable


@dataclass
class Landmarks:
    points: np.ndarray  # [478,3] pixels (x, y, z)
    image_size: tuple[int, int]  # (width, height)
    n_faces: int = 1
    warnings: list[str] = field(default_factory=list)

    @property
    def xy(self) -> np.ndarray:
        return self.points[:, :2]

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the landmarks, pixels."""
        lo, hi = self.xy.min(0), self.xy.max(0)
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


# One mediapipe graph runs one image at a time (it is not re-entrant) on about one core: visitors'
# frames are spread over a pool of graphs, one per core (two graphs on 2 cores: 4.3 ms a frame
# against 8.7 through one). The pool starts as empty places (None), each made into a graph when first
# taken; last in, first out, so a new graph is made only when every graph made so far is busy.
_GRAPHS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
_pool: queue.LifoQueue = queue.LifoQueue()
for _ in range(_GRAPHS):
    _pool.put(None)


@contextmanager
def _face_mesh():
    """A graph of the pool for one image, waiting for one when all are busy."""
    mesh = _pool.get()
    try:
        if mesh is None:
            from mediapipe.python.solutions.face_mesh import FaceMesh
            mesh = FaceMesh(static_image_mode=True, max_num_faces=MAX_FACES, refine_landmarks=True,
                            min_detection_confidence=0.5)
        yield mesh
    finally:
        _pool.put(mesh)


def detect_all(image: np.ndarray, twins: np.ndarray | None = None) -> list[Landmarks]:
    """All faces found in an RGB uint8 image [H,W,3], largest first (possibly empty).

    twins: [478] int, each landmark's mirror twin (model.head.template's Template.landmark_mirror()):
    also track the mirrored image and average each face with its mirror image (twice the time). The
    face mesh reads the subject's two sides differently (on renders of a smile the right mouth corner
    moved 0.1 px outwards where the left moved 2.9 px) and its points jitter; the average has
    neither bias nor half the jitter's variance. Tracking (the mirror, driving clips) uses it: on
    benchmarks.mirror's ARKit performance the smile curve's correlation went 0.65 -> 0.73, blink
    0.93 -> 0.97, jawOpen 0.980 -> 0.987."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"landmark detection needs RGB [H,W,3], got {image.shape}")
    faces = _detect(image)
    if twins is not None and faces:
        w = image.shape[1]
        # the mirror image's faces in this image's frame: x -> (w - 1) - x, indices left <-> right
        # cv2.flip: numpy's copy of a reversed view took 5 ms at 640 px, a third of a detection
        flipped = [g.points[twins] * np.array([-1.0, 1, 1]) + np.array([w - 1.0, 0, 0])
                   for g in _detect(cv2.flip(image, 1))]
        for f in faces:
            if not flipped:
                break
            gap = [np.abs(q[:, :2] - f.xy).mean() for q in flipped]
            k = int(np.argmin(gap))
            x0, y0, x1, y1 = f.bbox
            if gap[k] < 0.1 * max(x1 - x0, y1 - y0):  # the same face (not a neighbour's)
                f.points = 0.5 * (f.points + flipped.pop(k))
    return faces


def _detect(image: np.ndarray) -> list[Landmarks]:
    h, w = image.shape[:2]
    with _face_mesh() as mesh:
        result = mesh.process(image)
    faces = []
    for lm in result.multi_face_landmarks or []:
        p = np.array([[q.x, q.y, q.z] for q in lm.landmark], dtype=np.float64)
        # mediapipe normalises x by width, y by height and z roughly by width; pixel centres at integers
        p = p * np.array([w, h, w]) - np.array([0.5, 0.5, 0.0])
        faces.append(Landmarks(p, (w, h)))
    faces.sort(key=lambda f: -(f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
    for f in faces:
        f.n_faces = len(faces)
    return faces


def landmarks_of(image, twins: np.ndarray | None = None) -> Landmarks:
    """Landmarks as given, or those of the largest face in an image (anything load_image reads);
    twins: see detect_all."""
    if isinstance(image, Landmarks):
        return image
    from model.core.image_io import load_image
    return detect_landmarks(load_image(image), twins=twins)


def detect_landmarks(image: np.ndarray, min_face_px: int = MIN_FACE_PX, twins: np.ndarray | None = None) -> Landmarks:
    """The largest face's landmarks. No face -> InputError; several faces -> largest, with a warning.
    twins: see detect_all."""
    from model.core.errors import InputError
    faces = detect_all(image, twins)
    if not faces:
        raise InputError("no face found in the image: use a photo with one clearly visible face")
    face = faces[0]
    x0, y0, x1, y1 = face.bbox
    if max(x1 - x0, y1 - y0) < min_face_px:
        raise InputError(f"the face is too small ({max(x1 - x0, y1 - y0):.0f} px); "
                         f"use a photo where the face is at least {min_face_px} px wide")
    if len(faces) > 1:
        msg = f"{len(faces)} faces found; using the largest"
        face.warnings.append(msg)
        warnings.warn(msg, stacklevel=2)
    return face


# Named index groups of the 478-point mesh (facts about mediapipe's topology, checked against
# mediapipe.python.solutions.face_mesh_connections in tests/test_template.py). "right"/"left" are
# the subject's: the right eye is on the viewer's left (x < 0 in the head frame of model/core/camera.py).
# Each lid/lip curve runs from one corner to the other, corners included: upper and lower curves
# of one feature share both ends.
LIPS_OUTER_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIPS_OUTER_LOWER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
LIPS_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_INNER_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
RIGHT_EYE_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
RIGHT_EYE_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
LEFT_EYE_UPPER = (263, 466, 388, 387, 386, 385, 384, 398, 362)
LEFT_EYE_LOWER = (263, 249, 390, 373, 374, 380, 381, 382, 362)
RIGHT_BROW_UPPER = (70, 63, 105, 66, 107)
RIGHT_BROW_LOWER = (46, 53, 52, 65, 55)
LEFT_BROW_UPPER = (300, 293, 334, 296, 336)
LEFT_BROW_LOWER = (276, 283, 282, 295, 285)
RIGHT_IRIS = (468, 469, 470, 471, 472)  # centre first
LEFT_IRIS = (473, 474, 475, 476, 477)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
RIGHT_EYE_OUTER, RIGHT_EYE_INNER, LEFT_EYE_OUTER, LEFT_EYE_INNER = 33, 133, 263, 362
NOSE_TIP, CHIN, FOREHEAD = 1, 152, 10


def inter_ocular(points: np.ndarray) -> float:
    """Outer-eye-corner distance of landmarks [478, 2 or 3] (the NME normaliser), same unit as points."""
    return float(np.linalg.norm(points[RIGHT_EYE_OUTER, :2] - points[LEFT_EYE_OUTER, :2]))


DARK = 0.08  # mean luminance below this: "too dark"
BLUR = 12.0  # variance of the Laplacian (grey levels²) below this: "blurred"


def why_no_face(image: np.ndarray) -> str | None:
    """Why a frame [H,W,3] uint8 without a face may have none: "too dark" or "blurred" (None: neither)."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if grey.mean() / 255 < DARK:
        return "too dark"
    if cv2.Laplacian(grey, cv2.CV_64F).var() < BLUR:
        return "blurred"
    return None
