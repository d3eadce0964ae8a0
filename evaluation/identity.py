"""Identity similarity (CSIM): face embeddings from two independent models, never substituted.

- csim_dlib: dlib's face-recognition ResNet (128-d descriptor; same person when L2 < 0.6), weights
  from the face-recognition-models package, offline. Detection: dlib's HOG frontal detector on a
  downscaled copy (speed), the largest face; where it finds none, dlib's CNN (MMOD) face detector,
  which also finds faces turned 60-75° away that the HOG detector misses (benchmarks.reconstruct
  renders), on a copy at most 320 px (~0.4 s); alignment: the 5-point shape predictor, trained for
  both detectors.
- csim_arcface: insightface ArcFace (512-d) when a recognition ONNX of a model pack is present on
  this machine (~/.insightface/models/<pack>/, or $INSIGHTFACE_HOME/models/<pack>/). Packs are never
  downloaded; without one the model reports available=False and why. Its 5 alignment points are
  taken from the project's mediapipe face mesh (eye centres, nose tip, mouth corners), not from the
  pack's detector, so the value can differ slightly from insightface's own pipeline.

CSIM = cosine similarity of the two embeddings. The scales differ by model: dlib descriptors of any
two faces have a high cosine (astronaut vs Grace Hopper: 0.88, the same photo blurred: 0.97), so
csim_dlib and csim_arcface are separate columns and never substitute for one another. `embed` returns None when no face is found; callers
count those as detection failures (see `csim_many`), never drop them silently.
"""
from __future__ import annotations

import glob
import hashlib
import importlib.metadata
import importlib.util
import os
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from evaluation.images import as_uint8

DLIB_DETECT_MAX_SIDE = 640  # HOG detection runs on a copy at most this large (speed), upsampled once by dlib
DLIB_CNN_MAX_SIDE = 320  # the CNN fallback's copy: faces in renders and portraits are large; it costs O(pixels)
DLIB_SAME_PERSON_L2 = 0.6
ARCFACE_NAME_PATTERNS = ("*w600k*.onnx", "glintr100*.onnx", "*arcface*.onnx")


def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class IdentityModel:
    """A face-embedding model. `available` False -> `reason` says why, and embed() raises."""

    id: str
    available: bool
    reason: str = ""
    weights: dict = field(default_factory=dict)  # file name -> sha256

    def embed(self, image) -> np.ndarray | None:
        """Embedding of the largest face in an RGB image [H,W,3] (uint8, or float in [0,1]); None when no
        face is found. Raw model output (dlib: 128-d, same person when L2 < 0.6; ArcFace: 512-d)."""
        if not self.available:
            raise RuntimeError(f"identity model {self.id} is not available: {self.reason}")
        return self._embed(as_uint8(image))

    def _embed(self, image: np.ndarray) -> np.ndarray | None:  # pragma: no cover - overridden
        raise NotImplementedError


# ----------------------------------------------------------------------------------------------- dlib

def dlib_models_dir() -> Path | None:
    """Folder of the face-recognition-models .dat files, found without importing the package
    (its __init__ imports pkg_resources, which recent setuptools no longer ships)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "models"


_DLIB_FILES = {"recognition": "dlib_face_recognition_resnet_model_v1.dat",
               "shape5": "shape_predictor_5_face_landmarks.dat",
               "cnn_detector": "mmod_human_face_detector.dat"}


def dlib_weights_sha256() -> str | None:
    """One hash over the files the dlib pipeline uses (descriptor, alignment, CNN detector; the HOG
    detector is built into dlib), or None when any is missing."""
    d = dlib_models_dir()
    files = [None if d is None else d / n for n in sorted(_DLIB_FILES.values())]
    if any(f is None or not f.is_file() for f in files):
        return None
    return hashlib.sha256("".join(_sha256(f) for f in files).encode()).hexdigest()


DLIB_LOCK = threading.Lock()  # dlib objects are not documented as thread-safe: one call at a time


@lru_cache(maxsize=1)
def hog_detector():
    """dlib's HOG frontal face detector, built once per process (building one takes ~1 s: its model is
    parsed from text); call it under DLIB_LOCK."""
    import dlib
    return dlib.get_frontal_face_detector()


class _DlibModel(IdentityModel):
    def __init__(self, folder: Path):
        import dlib
        super().__init__("csim_dlib", True, "", {n: _sha256(folder / n) for n in _DLIB_FILES.values()})
        self._detector = hog_detector()
        self._cnn = dlib.cnn_face_detection_model_v1(str(folder / _DLIB_FILES["cnn_detector"]))
        self._shape = dlib.shape_predictor(str(folder / _DLIB_FILES["shape5"]))
        self._rec = dlib.face_recognition_model_v1(str(folder / _DLIB_FILES["recognition"]))

    def detect(self, image: np.ndarray):
        """Largest face rectangle (dlib.rectangle, full-resolution pixels) or None: HOG first, the CNN
        detector where HOG finds nothing."""
        import cv2
        import dlib

        def shrink(limit):
            h, w = image.shape[:2]
            s = min(1.0, limit / max(h, w))
            return s, image if s == 1.0 else cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)

        s, small = shrink(DLIB_DETECT_MAX_SIDE)
        with DLIB_LOCK:
            rects = list(self._detector(small, 1))
        if not rects:
            s, small = shrink(DLIB_CNN_MAX_SIDE)
            with DLIB_LOCK:
                rects = [d.rect for d in self._cnn(small, 0)]
        if not rects:
            return None
        r = max(rects, key=lambda r: r.width() * r.height())
        return dlib.rectangle(int(r.left() / s), int(r.top() / s), int(r.right() / s), int(r.bottom() / s))

    def _embed(self, image):
        rect = self.detect(image)
        if rect is None:
            return None
        with DLIB_LOCK:
            shape = self._shape(image, rect)
            return np.asarray(self._rec.compute_face_descriptor(image, shape), dtype=np.float64)


_cache: dict[str, IdentityModel] = {}
_cache_lock = threading.Lock()


def dlib_model() -> IdentityModel:
    """dlib ResNet face descriptor (cached)."""
    with _cache_lock:
        if "dlib" not in _cache:
            folder = dlib_models_dir()
            missing = [n for n in _DLIB_FILES.values() if folder is None or not (folder / n).is_file()]
            if importlib.util.find_spec("dlib") is None:
                _cache["dlib"] = IdentityModel("csim_dlib", False, "dlib is not installed (pip install dlib-bin)")
            elif missing:
                _cache["dlib"] = IdentityModel("csim_dlib", False, "face-recognition-models files missing: "
                                               + ", ".join(missing))
            else:
                _cache["dlib"] = _DlibModel(folder)
        return _cache["dlib"]


def dlib_version() -> str:
    for dist in ("dlib-bin", "dlib"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return "not installed"


# -------------------------------------------------------------------------------------------- ArcFace

def insightface_roots() -> list[Path]:
    roots = [Path(os.environ["INSIGHTFACE_HOME"]).expanduser()] if os.environ.get("INSIGHTFACE_HOME") else []
    return roots + [Path("~/.insightface").expanduser()]


def find_arcface_onnx(roots: list[Path] | None = None) -> Path | None:
    """First local ArcFace recognition ONNX under <root>/models/<pack>/ (w600k_r50 of buffalo_l,
    glintr100 of antelopev2, ...); None when no pack is on this machine."""
    for root in roots if roots is not None else insightface_roots():
        for pattern in ARCFACE_NAME_PATTERNS:
            hits = sorted(glob.glob(str(root / "models" / "*" / pattern)))
            if hits:
                return Path(hits[0])
    return None


# mediapipe face-mesh indices for insightface's 5 points (subject's right eye, left eye, nose tip,
# right mouth corner, left mouth corner, in image order left-to-right for a frontal face)
_MP_RIGHT_EYE = [33, 133, 159, 145]
_MP_LEFT_EYE = [362, 263, 386, 374]
_MP_NOSE, _MP_MOUTH_R, _MP_MOUTH_L = 1, 61, 291


def five_points(landmarks_xy: np.ndarray) -> np.ndarray:
    """insightface's 5 alignment points [5,2] (pixels) from 478 mediapipe landmarks [478,2]."""
    p = np.asarray(landmarks_xy, dtype=np.float64)
    return np.stack([p[_MP_RIGHT_EYE].mean(0), p[_MP_LEFT_EYE].mean(0), p[_MP_NOSE], p[_MP_MOUTH_R],
                     p[_MP_MOUTH_L]]).astype(np.float32)


def arcface_crop(image: np.ndarray, points: np.ndarray, size: int = 112) -> np.ndarray:
    """insightface's norm_crop: similarity transform (least squares) of the 5 points [5,2] onto
    insightface's ArcFace template, warped to [size, size, 3]. Re-stated with skimage's
    non-deprecated estimator (insightface's own call uses an API that skimage 2.2 removes)."""
    import cv2
    from insightface.utils.face_align import arcface_dst
    from skimage.transform import SimilarityTransform
    if size % 112:
        raise ValueError(f"ArcFace crop size must be a multiple of 112, got {size}")
    tform = SimilarityTransform.from_estimate(np.asarray(points, np.float64), arcface_dst * (size / 112.0))
    if not tform:
        raise ValueError("could not estimate the ArcFace alignment from the 5 face points")
    return cv2.warpAffine(image, tform.params[:2], (size, size), borderValue=0.0)


class _ArcFaceModel(IdentityModel):
    def __init__(self, onnx_path: Path):
        import onnxruntime
        super().__init__("csim_arcface", True, "", {onnx_path.name: _sha256(onnx_path)})
        self.path = onnx_path
        self._session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        inp = self._session.get_inputs()[0]
        self._input_name = inp.name
        size = inp.shape[2] if isinstance(inp.shape[2], int) else 112
        self.size = int(size)

    def _embed(self, image):
        from model.head.landmarks import detect_all
        faces = detect_all(image)
        if not faces:
            return None
        crop = arcface_crop(image, five_points(faces[0].xy), self.size)
        # insightface's ArcFaceONNX: blobFromImage(BGR, swapRB=True) -> the network takes RGB, (x-127.5)/127.5
        x = ((crop.astype(np.float32) - 127.5) / 127.5).transpose(2, 0, 1)[None]
        return np.asarray(self._session.run(None, {self._input_name: x})[0], dtype=np.float64).ravel()


def arcface_model(roots: list[Path] | None = None) -> IdentityModel:
    """ArcFace when a recognition ONNX is present locally; otherwise available=False (never downloads)."""
    key = "arcface" if roots is None else "arcface:" + "|".join(map(str, roots))
    with _cache_lock:
        if key not in _cache:
            path = find_arcface_onnx(roots)
            if path is None:
                where = ", ".join(str(r / "models" / "*") for r in (roots or insightface_roots()))
                _cache[key] = IdentityModel("csim_arcface", False,
                                            f"not available: no insightface recognition model pack on this "
                                            f"machine (looked for {'/'.join(ARCFACE_NAME_PATTERNS)} in {where}); "
                                            f"packs are not downloaded")
            else:
                _cache[key] = _ArcFaceModel(path)
        return _cache[key]


# ------------------------------------------------------------------------------------------- scoring

def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def csim(model: IdentityModel, a, b) -> float | None:
    """Cosine similarity of the identity embeddings of images a and b; None if a face is missing in either."""
    ea = model.embed(a)
    if ea is None:
        return None
    eb = model.embed(b)
    return None if eb is None else cosine(ea, eb)


def csim_many(model: IdentityModel, preds, targets) -> dict:
    """CSIM over pairs (pred_i, target_i). Returns the mean over pairs where both faces were found, the
    per-pair values (None = detection failure) and the failure counts / rate; 'not available' as such."""
    preds, targets = list(preds), list(targets)
    if len(preds) != len(targets):
        raise ValueError(f"{len(preds)} predictions vs {len(targets)} targets")
    if not model.available:
        return {"id": model.id, "available": False, "reason": model.reason, "mean": None, "values": [],
                "n": len(preds), "n_failed": None, "face_detect_fail_rate": None}
    values, fail_pred, fail_target = [], 0, 0
    for p, t in zip(preds, targets):
        et, ep = model.embed(t), model.embed(p)
        fail_target += et is None
        fail_pred += ep is None
        values.append(None if et is None or ep is None else cosine(ep, et))
    ok = [v for v in values if v is not None]
    n_failed = sum(v is None for v in values)
    return {"id": model.id, "available": True, "reason": "", "mean": float(np.mean(ok)) if ok else None,
            "values": values, "n": len(values), "n_failed": n_failed, "n_failed_pred": fail_pred,
            "n_failed_target": fail_target,
            "face_detect_fail_rate": n_failed / len(values) if values else None}
