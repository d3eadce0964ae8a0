"""What every protocol shares: the run's Settings, the Protocol base and its Output, the Context a run
hands each protocol (identity models, memoised face masks and tracks), and the image and camera helpers.

Shared rendering rules (every method gets exactly the same cameras and compositing):
- Background: white (1, 1, 1). Every render is composited on white by Avatar.render, and ground-truth
  images of the synthetic set are rendered on white too. Real photos keep their own background, so on
  real photos the *full-image* numbers include the background and the *masked* ones are the fair ones.
- Orbit cameras (sweep-360) are model.core.camera.framing_camera(head_center, head_radius, yaw, pitch, size):
  fov_y = 20°, the head's bounding sphere spans `fill` = 0.85 of the image height, square images of
  `size` px: the same intrinsics for every method; only the target and distance follow the avatar's
  own head centre and radius.
- Images are compared at `size` px on their long side: the photo is downscaled with PIL's area-averaging
  "reduce"+LANCZOS resize and the camera with Camera.resized (intrinsics scaled, pixel centres kept).

Head mask (input-view, reenactment). The photo has no ground-truth mask, so the masked metrics use the
face region of the *target*: the filled polygon of mediapipe's face-oval landmarks
(model.head.segmentation.FACE_OVAL) dilated by MASK_DILATE of the face's size, less the target's background
(pixels outside its person mask, taken inside the mask's soft edge: model.head.segmentation.core_of) and less
its hands (model.head.segmentation.hand_mask: a hand over the chin is not the head, nor what it holds or
its forearm; each protocol's version notes say from which version on). It
depends only on the target image, so every method is scored on the same pixels (the avatar's own alpha
would let a method shrink the region it is judged on). The avatar's coverage of that region is reported
as `alpha_face_coverage`. Hair and ears are outside this mask: masked numbers measure the face. (v1 kept
the background beside the jaw, 2-5% of astronaut's mask: it rewarded avatars that paint the photo's
background onto the head there.)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from model.core.camera import Camera, framing_camera
from model.core.image_io import pixels_sha256, to_uint8

WHITE = (1.0, 1.0, 1.0)
MASK_DILATE = 0.06  # fraction of the face's larger side


@dataclass(frozen=True)
class Settings:
    size: int = 256  # compared / rendered image side, px
    fov_y_deg: float = 20.0
    fill: float = 0.85  # the head's bounding sphere spans this fraction of the image height
    lpips_nets: tuple = ("alex", "vgg")
    identity_max_yaw_deg: float = 90.0  # sweep views further round than this get no identity score
    thumbs: bool = True

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lpips_nets"] = list(self.lpips_nets)
        return d


# ------------------------------------------------------------------------------------ helpers

def fit_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(w, h) with the long side = size, aspect kept."""
    s = size / max(width, height)
    return max(1, round(width * s)), max(1, round(height * s))


def resize_image(img: np.ndarray, wh: tuple[int, int]) -> np.ndarray:
    """uint8 [H,W,3] -> uint8 [h,w,3] (antialiased; identity when the size already matches)."""
    from PIL import Image
    if (img.shape[1], img.shape[0]) == tuple(wh):
        return img
    return np.asarray(Image.fromarray(to_uint8(img)).resize(wh, Image.LANCZOS, reducing_gap=2.0))


def face_mask(image: np.ndarray) -> np.ndarray | None:
    """Dilated face-oval mask [H,W] bool of the largest face in `image` (uint8), less the image's
    background and its hands (segmentation.hand_mask, with what they hold and their forearms: a hand over the
    chin is not the head, and scoring it rewarded a method that copies it onto the face); None when no face
    is found."""
    import cv2

    from model.core.errors import InputError
    from model.head.landmarks import detect_landmarks
    from model.head.segmentation import FACE_OVAL, core_of, hand_mask, hand_points, person_mask
    image = to_uint8(image)
    try:
        lm = detect_landmarks(image, min_face_px=8)
    except InputError:
        return None
    oval = lm.xy[list(FACE_OVAL)]
    m = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(m, [np.round(oval).astype(np.int32)], 1)
    r = max(1, int(round(MASK_DILATE * float((oval.max(0) - oval.min(0)).max()))))
    m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return m.astype(bool) & (core_of(person_mask(image)) > 0.5) & ~hand_mask(hand_points(image), image.shape)


def orbit_cameras(avatar, views: list[tuple[float, float]], settings: Settings) -> list[Camera]:
    """Cameras at (yaw, pitch) degrees around the avatar's head: model.core.camera.framing_camera, the one
    framing rule (external predictions are rendered at exactly these cameras)."""
    return [framing_camera(np.asarray(avatar.head_center, np.float64), float(avatar.head_radius), np.deg2rad(y),
                           np.deg2rad(p), settings.size, np.deg2rad(settings.fov_y_deg), settings.fill)
            for y, p in views]


def _mean(values) -> float | None:
    v = [x for x in values if x is not None and np.isfinite(x)]
    return float(np.mean(v)) if v else None


class Identity:
    """The identity models of a run, loaded once; embeds each target once."""

    def __init__(self):
        from evaluation import identity
        self._mod = identity
        self.models = [m for m in (identity.dlib_model(), identity.arcface_model())]
        self._cache: dict[tuple[str, str], object] = {}

    @property
    def available(self):
        return [m for m in self.models if m.available]

    def notes(self) -> list[str]:
        return [f"{m.id}: not available ({m.reason})" for m in self.models if not m.available]

    def _embed_target(self, model, img: np.ndarray):
        # keyed by the pixels embedded, so every protocol and view of a subject shares one embedding
        key = (model.id, pixels_sha256(img))
        if key not in self._cache:
            self._cache[key] = model.embed(img)
        return self._cache[key]

    def scores(self, pred: np.ndarray, target: np.ndarray) -> dict:
        """{csim_<model>: float|None, face_found_<model>: bool|None} per available model. CSIM is None when a
        face is missing; face_found is None when the *target* has no face (not the method's failure)."""
        out = {}
        for m in self.available:
            ref = self._embed_target(m, target)
            emb = m.embed(pred) if ref is not None else None
            out[m.id] = None if emb is None else self._mod.cosine(emb, ref)
            out[f"face_found_{_short(m)}"] = None if ref is None else emb is not None
        return out


def _short(model) -> str:
    return model.id.removeprefix("csim_")


def _fail_rate(found) -> float | None:
    """Detection failure rate over views whose target had a face (found is None otherwise)."""
    f = [x for x in found if x is not None]
    return 1.0 - float(np.mean(f)) if f else None


@dataclass
class Output:
    metrics: dict
    views: list
    curves: dict = field(default_factory=dict)
    images: dict = field(default_factory=dict)  # view name -> rgb float [H,W,3] (for thumbnails)
    notes: list = field(default_factory=list)
    status: str = "ok"
    reason: str | None = None


class Protocol:
    id: str
    version: str
    description: str
    primary: tuple[str, ...]  # metrics the leaderboard's overall rank averages

    def applicable(self, dataset) -> str | None:
        """None when the dataset supports this protocol, else why not."""
        return None

    def source(self, subject) -> np.ndarray:
        """The image the method reconstructs from."""
        return subject.image

    def config(self, settings: Settings) -> dict:
        return settings.to_dict()

    def run(self, avatar, subject, ctx: "Context") -> Output:
        raise NotImplementedError


class Context:
    """What protocols share during a run: settings, identity models, cached face masks."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.identity = Identity()
        self._masks: dict[str, np.ndarray | None] = {}
        self._tracks: dict[str, object] = {}

    def reset(self) -> None:
        """Forget per-image caches (face masks, target embeddings): called at each job, so a long-lived
        worker's memory does not grow with the subjects it has seen. Pure memos: no number changes."""
        self._masks.clear()
        self._tracks.clear()
        self.identity._cache.clear()

    def track(self, image: np.ndarray):
        """evaluation.tracker.track of an image (uint8 or float), memoised by its pixels."""
        from evaluation.tracker import track
        img = to_uint8(image)
        k = pixels_sha256(img)
        if k not in self._tracks:
            self._tracks[k] = track(img)
        return self._tracks[k]

    def face_mask(self, image: np.ndarray):
        k = pixels_sha256(image)
        if k not in self._masks:
            self._masks[k] = face_mask(image)
        return self._masks[k]

    def image_metrics(self, pred, target, mask):
        from evaluation.metrics import image_metrics
        return image_metrics(pred, target, mask, nets=self.settings.lpips_nets)
