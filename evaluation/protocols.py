"""Evaluation protocols (each versioned) and the runner that writes result files.

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
(pixels outside its person mask, taken inside the mask's soft edge: model.head.segmentation.core_of). It
depends only on the target image, so every method is scored on the same pixels (the avatar's own alpha
would let a method shrink the region it is judged on). The avatar's coverage of that region is reported
as `alpha_face_coverage`. Hair and ears are outside this mask: masked numbers measure the face. (v1 kept
the background beside the jaw, 2-5% of astronaut's mask: it rewarded avatars that paint the photo's
background onto the head there.)
"""
from __future__ import annotations

import random
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from model.core.camera import Camera, framing_camera
from model.core.image_io import pixels_sha256, to_float, to_uint8

WHITE = (1.0, 1.0, 1.0)
MASK_DILATE = 0.06  # fraction of the face's larger side
THUMB_PX = 128


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


# Metrics the protocols compute themselves (the image/identity/consistency metrics are described in
# evaluation.metrics.METRICS; these complete that registry for the leaderboard's directions).
EXTRA_METRICS = {
    "hole_fraction": (False, "fraction of pixels inside the filled silhouette (scipy binary_fill_holes of "
                             "alpha > 0.5) whose alpha is < 0.5: see-through holes in the head; mean over views"),
    "hole_fraction_max": (False, "largest hole_fraction of any view of the sweep"),
    "silhouette_min_ratio": (True, "smallest / largest silhouette area (alpha > 0.5) over the pitch-0 yaw ring: a "
                                   "head keeps its bulk all round (~0.7+), a flat or front-only avatar collapses "
                                   "seen edge-on (billboard ~0); the identity and depth metrics cannot see this"),
    "alpha_face_coverage": (True, "mean rendered alpha over the target's face mask: does the avatar cover the face"),
}
WIDE_YAW_DEG = 45.0  # sweep views at least this far round are the "wide" views of the *_yaw45 metrics
for _m in ("dlib", "arcface"):
    EXTRA_METRICS[f"csim_{_m}_yaw45"] = (
        True, f"mean csim_{_m} over the pitch-0 sweep views with 45° <= |yaw| <= the identity limit, a view "
              "where no face is found counting as 0: the identity a method keeps as the head turns away, "
              "failures included (csim_" + _m + " averages found faces only)")
    EXTRA_METRICS[f"face_detect_fail_rate_{_m}_yaw45"] = (False, "face detection failure rate over those views")


def higher_is_better(metric: str) -> bool | None:
    """Direction of a result metric key; None when unknown (then it is shown but not ranked)."""
    from evaluation.metrics import METRICS
    if metric in EXTRA_METRICS:
        return EXTRA_METRICS[metric][0]
    for key in (metric, metric.rsplit("_", 1)[0]):  # face_detect_fail_rate_dlib -> face_detect_fail_rate
        if key in METRICS:
            return METRICS[key].higher_is_better
    return None


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
    background; None when no face is found."""
    import cv2

    from model.core.errors import InputError
    from model.head.landmarks import detect_landmarks
    from model.head.segmentation import FACE_OVAL, core_of, person_mask
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
    return m.astype(bool) & (core_of(person_mask(image)) > 0.5)


def hole_fraction(alpha: np.ndarray) -> float | None:
    """Fraction of the filled silhouette (alpha > 0.5, holes filled) that is see-through; None if empty."""
    from scipy.ndimage import binary_fill_holes
    sil = alpha > 0.5
    filled = binary_fill_holes(sil)
    n = int(filled.sum())
    return None if n == 0 else float((filled & ~sil).sum() / n)


def orbit_cameras(avatar, views: list[tuple[float, float]], settings: Settings) -> list[Camera]:
    """Cameras at (yaw, pitch) degrees around the avatar's head: model.core.camera.framing_camera, the one
    framing rule (external predictions are rendered at exactly these cameras)."""
    return [framing_camera(np.asarray(avatar.head_center, np.float64), float(avatar.head_radius), np.deg2rad(y),
                           np.deg2rad(p), settings.size, np.deg2rad(settings.fov_y_deg), settings.fill)
            for y, p in views]


def view_name(yaw: float, pitch: float) -> str:
    return f"yaw{int(round(yaw)):+04d}_pitch{int(round(pitch)):+03d}"


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


# ---------------------------------------------------------------------------------- protocols

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


class InputView(Protocol):
    # v2: the face mask leaves out the photo's background
    id, version = "input-view", "2"
    description = ("render at the avatar's fitted input camera; compare with the photo (full image and "
                   "the photo's dilated face-oval mask) and its identity")
    primary = ("psnr_masked", "ssim_masked", "lpips_alex_masked", "csim_dlib")

    def run(self, avatar, subject, ctx):
        photo = subject.image
        wh = fit_size(photo.shape[1], photo.shape[0], ctx.settings.size)
        target = resize_image(photo, wh)
        cam = avatar.input_camera.resized(*wh)
        r = avatar.render(cam, None, WHITE)
        mask = ctx.face_mask(target)
        pred, tgt = r.rgb, to_float(target)
        m = ctx.image_metrics(pred, tgt, mask)
        notes = []
        if mask is None:
            notes.append("no face found in the photo at this size: masked metrics not computed")
        else:
            m["alpha_face_coverage"] = float(r.alpha[mask].mean())
        ident = ctx.identity.scores(pred, tgt)
        m.update({k: v for k, v in ident.items() if k.startswith("csim_")})
        view = {"view": "input", **m, **{k: v for k, v in ident.items() if k.startswith("face_found")}}
        return Output(m, [view], images={"input": pred, "photo": tgt}, notes=notes)


class Sweep360(Protocol):
    # v2: identity detection falls back to dlib's CNN detector; csim_*_yaw45 added
    id, version = "sweep-360", "2"
    description = ("yaw sweep every 15° over the full circle at pitch 0, plus pitch ±20° at yaw 0: identity "
                   "vs the photo per yaw (detection failures counted), depth reprojection between "
                   "neighbouring yaws, hole fraction inside the silhouette, silhouette area over yaw")
    primary = ("csim_dlib", "csim_dlib_yaw45", "face_detect_fail_rate_dlib", "depth_reproj_error", "hole_fraction",
               "silhouette_min_ratio")
    YAWS = tuple(range(-180, 180, 15))
    PITCHES = (20, -20)
    THUMB_VIEWS = ("yaw+000_pitch+00", "yaw+045_pitch+00", "yaw+090_pitch+00", "yaw-180_pitch+00",
                   "yaw-090_pitch+00", "yaw-045_pitch+00", "yaw+000_pitch+20")

    def config(self, settings):
        return {**settings.to_dict(), "yaws_deg": list(self.YAWS), "pitches_deg_at_yaw0": list(self.PITCHES)}

    def run(self, avatar, subject, ctx):
        from evaluation.consistency import sweep_depth_reprojection_error
        poses = [(y, 0) for y in self.YAWS] + [(0, p) for p in self.PITCHES]
        cams = orbit_cameras(avatar, poses, ctx.settings)
        photo = subject.image
        target = to_float(resize_image(photo, fit_size(photo.shape[1], photo.shape[0], ctx.settings.size)))
        renders, views, images = [], [], {}
        for (yaw, pitch), cam in zip(poses, cams):
            r = avatar.render(cam, None, WHITE)
            renders.append(r)
            name = view_name(yaw, pitch)
            v = {"view": name, "yaw_deg": yaw, "pitch_deg": pitch, "hole_fraction": hole_fraction(r.alpha),
                 "silhouette_fraction": float((r.alpha > 0.5).mean())}
            if abs(yaw) <= ctx.settings.identity_max_yaw_deg:
                v.update(ctx.identity.scores(r.rgb, target))
            views.append(v)
            if name in self.THUMB_VIEWS:
                images[name] = r.rgb
        ring = len(self.YAWS)
        pairs, notes = [], []
        if not getattr(avatar, "provides_depth", True):  # e.g. external predictions without depth maps
            notes.append("no depth from this method: depth reprojection not computed")
        else:  # neighbours on the pitch-0 ring, wrapping 165° -> -180°
            sweep = sweep_depth_reprojection_error([r.depth for r in renders[:ring]], [r.alpha for r in renders[:ring]],
                                                   cams[:ring], wrap=True)
            pairs = [{"yaw_a_deg": self.YAWS[i], "yaw_b_deg": self.YAWS[(i + 1) % ring],
                      "depth_reproj_error": d["mean_abs_m"], "depth_reproj_valid_fraction": d["valid_fraction"]}
                     for i, d in enumerate(sweep["pairs"])]
        sil = [v["silhouette_fraction"] for v in views[:ring]]
        metrics = {"silhouette_min_ratio": min(sil) / max(sil) if max(sil) > 0 else None,
                   "hole_fraction": _mean(v["hole_fraction"] for v in views),
                   "hole_fraction_max": max((v["hole_fraction"] for v in views if v["hole_fraction"] is not None),
                                            default=None),
                   "depth_reproj_error": _mean(p["depth_reproj_error"] for p in pairs),
                   "depth_reproj_valid_fraction": _mean(p["depth_reproj_valid_fraction"] for p in pairs)}
        scored = [v for v in views if abs(v["yaw_deg"]) <= ctx.settings.identity_max_yaw_deg]
        wide = [v for v in scored if v["pitch_deg"] == 0 and abs(v["yaw_deg"]) >= WIDE_YAW_DEG]
        for m in ctx.identity.available:
            found = f"face_found_{_short(m)}"
            metrics[m.id] = _mean(v.get(m.id) for v in scored)
            metrics[f"face_detect_fail_rate_{_short(m)}"] = _fail_rate(v.get(found) for v in scored)
            # a missed face scores 0; views whose target has no face (found is None) stay out
            metrics[f"{m.id}_yaw45"] = _mean((v.get(m.id) or 0.0) if v.get(found) is not None else None for v in wide)
            metrics[f"face_detect_fail_rate_{_short(m)}_yaw45"] = _fail_rate(v.get(found) for v in wide)
        curves = {"yaw_deg": list(self.YAWS),
                  "hole_fraction": [v["hole_fraction"] for v in views[:ring]],
                  "silhouette_fraction": sil,
                  "pairs": pairs}
        for m in ctx.identity.available:
            curves[m.id] = [v.get(m.id) for v in views[:ring]]
            curves[f"face_found_{_short(m)}"] = [v.get(f"face_found_{_short(m)}") for v in views[:ring]]
        notes += [f"identity scored for |yaw| <= {ctx.settings.identity_max_yaw_deg:g}°; CSIM means are over "
                 f"views where a face was found, failures are in face_detect_fail_rate_*"]
        return Output(metrics, views, curves, images, notes)


class MultiviewGT(Protocol):
    id, version = "multiview-gt", "1"
    description = ("novel views with ground-truth cameras and images: PSNR/SSIM/LPIPS (full and masked by "
                   "the dataset's head mask) and CSIM per view")
    primary = ("psnr_masked", "ssim_masked", "lpips_alex_masked", "csim_dlib")

    def applicable(self, dataset):
        return None if dataset.has_views else f"dataset {dataset.id!r} has no ground-truth views"

    @staticmethod
    def align(avatar, subject, view_cam: Camera) -> Camera:
        """The ground-truth view camera expressed in the avatar's world.

        The avatar's input camera and the dataset's input camera are the same physical camera; the
        relative pose input -> view is taken from the dataset, with its translation scaled by
        s = (depth of the avatar's head centre in its input camera) / (depth of the dataset's head centre
        in the dataset's input camera), since one photo fixes the scene only up to scale."""
        gt_in, av_in = subject.input_camera, avatar.input_camera
        rel = view_cam.world_to_cam @ np.linalg.inv(gt_in.world_to_cam)  # dataset input cam -> view cam
        z_gt = float(gt_in.to_camera(np.asarray(subject.head_center, np.float64)[None])[0, 2])
        z_av = float(av_in.to_camera(np.asarray(avatar.head_center, np.float64)[None])[0, 2])
        s = z_av / z_gt if z_gt > 0 and z_av > 0 else 1.0
        rel = rel.copy()
        rel[:3, 3] *= s
        return Camera(view_cam.K, rel @ av_in.world_to_cam, view_cam.width, view_cam.height)

    def run(self, avatar, subject, ctx):
        views, images, notes = [], {}, []
        for gv in subject.views:
            wh = fit_size(gv.camera.width, gv.camera.height, ctx.settings.size)
            cam = self.align(avatar, subject, gv.camera).resized(*wh)
            r = avatar.render(cam, None, WHITE)
            tgt = to_float(resize_image(gv.image, wh))
            mask = None
            if gv.mask is not None:
                mask = resize_image(np.repeat(gv.mask[..., None].astype(np.uint8) * 255, 3, 2), wh)[..., 0] >= 128
                mask = mask if mask.any() else None
            m = ctx.image_metrics(r.rgb, tgt, mask)
            m.update(ctx.identity.scores(r.rgb, tgt))
            views.append({"view": gv.name, **m})
            if len(images) < 6:
                images[gv.name] = r.rgb
        if not views:
            return Output({}, [], status="failed", reason="subject has no ground-truth views")
        keys = [k for k in views[0] if k != "view" and not k.startswith("face_found")]
        metrics = {k: _mean(v.get(k) for v in views) for k in keys}
        for m in ctx.identity.available:
            metrics[f"face_detect_fail_rate_{_short(m)}"] = _fail_rate(v.get(f"face_found_{_short(m)}") for v in views)
        if any(gv.mask is None for gv in subject.views):
            notes.append("some views have no mask: their masked metrics are missing")
        return Output(metrics, views, images=images, notes=notes)


class Reenactment(Protocol):
    # v2: the face mask leaves out the frame's background
    id, version = "reenactment", "2"
    description = ("self-reenactment: reconstruct from frame 0, drive with each later frame's retargeted "
                   "controls at the input camera, compare with that frame (PSNR/SSIM/LPIPS full and face-masked, "
                   "CSIM, AKD on mediapipe's 478 landmarks in px at the compared size); frame 0 is not scored")
    primary = ("psnr_masked", "ssim_masked", "lpips_alex_masked", "csim_dlib", "akd")

    def applicable(self, dataset):
        return None if dataset.has_frames else f"dataset {dataset.id!r} has no video frames"

    def source(self, subject):
        return subject.frames[0]

    def run(self, avatar, subject, ctx):
        from evaluation.consistency import akd_images
        if not getattr(avatar, "animatable", False) or not callable(getattr(avatar, "retarget", None)):
            return Output({}, [], status="skipped", reason="skipped: not animatable")
        if len(subject.frames) < 2:
            return Output({}, [], status="failed", reason="fewer than 2 frames")
        src = subject.frames[0]
        wh = fit_size(src.shape[1], src.shape[0], ctx.settings.size)
        cam = avatar.input_camera.resized(*wh)
        views, images, akd_fail = [], {}, 0
        for i, frame in enumerate(subject.frames[1:], start=1):
            controls = avatar.retarget(frame)
            r = avatar.render(cam, controls, WHITE)
            target = resize_image(frame, wh)
            tgt = to_float(target)
            mask = ctx.face_mask(target)
            m = ctx.image_metrics(r.rgb, tgt, mask)
            m.update(ctx.identity.scores(r.rgb, tgt))
            m["akd"] = akd_images(r.rgb, tgt)  # None when a face is missing in either image
            akd_fail += m["akd"] is None
            views.append({"view": f"frame{i:04d}", **m})
            if i in (1, len(subject.frames) // 2, len(subject.frames) - 1):
                images[f"frame{i:04d}"] = r.rgb
        keys = [k for k in views[0] if k != "view" and not k.startswith("face_found")]
        metrics = {k: _mean(v.get(k) for v in views) for k in keys}
        metrics["akd_fail_rate"] = akd_fail / len(views)
        for m in ctx.identity.available:
            metrics[f"face_detect_fail_rate_{_short(m)}"] = _fail_rate(v.get(f"face_found_{_short(m)}") for v in views)
        return Output(metrics, views, images=images,
                      notes=[f"AKD: frames where mediapipe found no face (render or frame): {akd_fail}"])


class SelfReenactment(Protocol):
    """Self-reenactment on real (or synthetic) clips, scored against each target frame.

    Source = the clip's first usable frame (subject.frames[0]; evaluation/videos.py documents the
    sampling). Each target frame is retargeted through the avatar's `retarget(image) -> controls` (the
    method's own tracker: expression and head pose relative to the source), rendered at the avatar's
    fitted input camera at the compared size, and compared with the real frame: PSNR/SSIM/LPIPS full and
    masked by the target's face mask (module docstring), CSIM to the target frame, and through
    evaluation.tracker (dlib's 68 points, a detector that does not drive the method): AKD-68 (px at the
    compared size), AED (expression) and APD (head pose, degrees) between render and frame. A method that
    cannot animate is rendered at the source frame's pose for every target and marked: metric
    `animated` = 0 and a note (its numbers then measure how far the clip moves from the source)."""
    id, version = "self-reenactment", "1"
    description = ("clip source frame -> avatar; every sampled target frame retargeted (expression + head pose), "
                   "rendered at the fitted camera, compared with the real frame: PSNR/SSIM/LPIPS full and "
                   "face-masked, CSIM, AKD on dlib's 68 landmarks, AED/APD from the evaluation's dlib tracker; "
                   "non-animatable methods scored at the source pose (animated = 0)")
    primary = ("psnr_masked", "ssim_masked", "lpips_alex_masked", "csim_dlib", "akd68", "aed", "apd")
    N_THUMBS = 3

    def applicable(self, dataset):
        return None if dataset.has_frames else f"dataset {dataset.id!r} has no video frames"

    def source(self, subject):
        return subject.frames[0]

    @staticmethod
    def animates(avatar) -> bool:
        return bool(getattr(avatar, "animatable", False)) and callable(getattr(avatar, "retarget", None))

    def drive(self, avatar, frame, cam, notes: list):
        """Render the avatar driven by one frame at cam; (RenderResult, retarget ok: bool | None)."""
        from model.interface import InputError
        if not self.animates(avatar):
            return avatar.render(cam, None, WHITE), None
        try:
            controls = avatar.retarget(frame)
        except InputError as e:  # the method's own tracker lost the face: neutral pose, counted
            notes.append(f"retarget failed on a frame ({e}); rendered at the source pose")
            return avatar.render(cam, None, WHITE), False
        return avatar.render(cam, controls, WHITE), True

    def run(self, avatar, subject, ctx):
        from evaluation import tracker as T
        if len(subject.frames) < 2:
            return Output({}, [], status="failed", reason="fewer than 2 frames (a source and a target)")
        src = subject.frames[0]
        wh = fit_size(src.shape[1], src.shape[0], ctx.settings.size)
        cam = avatar.input_camera.resized(*wh)
        ids = subject.frame_ids or list(range(len(subject.frames)))
        views, images, notes = [], {}, []
        thumbs = set(np.linspace(1, len(subject.frames) - 1, self.N_THUMBS).round().astype(int).tolist())
        for i, frame in enumerate(subject.frames[1:], start=1):
            r, ok = self.drive(avatar, frame, cam, notes)
            target = resize_image(frame, wh)
            tgt = to_float(target)
            mask = ctx.face_mask(target)
            m = ctx.image_metrics(r.rgb, tgt, mask)
            m.update(ctx.identity.scores(r.rgb, tgt))
            tp, tt = ctx.track(r.rgb), ctx.track(target)
            if tp is not None and tt is not None:
                m.update(akd68=T.akd68(tp, tt), aed=T.aed(tp, tt), apd=T.apd(tp, tt))
            else:
                m.update(akd68=None, aed=None, apd=None)
            name = f"frame{ids[i]:05d}"
            views.append({"view": name, **m, "tracked": tp is not None and tt is not None, "retargeted": ok})
            if i in thumbs:
                images[name], images[f"{name}_real"] = r.rgb, tgt
        return self.summarise(views, images, notes, avatar, ctx)

    def summarise(self, views, images, notes, avatar, ctx):
        keys = [k for k in views[0] if k not in ("view", "tracked", "retargeted") and not k.startswith("face_found")]
        metrics = {k: _mean(v.get(k) for v in views) for k in keys}
        metrics["frames_scored"] = float(len(views))
        metrics["track_fail_rate"] = 1.0 - float(np.mean([v["tracked"] for v in views]))
        metrics["animated"] = 1.0 if self.animates(avatar) else 0.0
        for m in ctx.identity.available:
            metrics[f"face_detect_fail_rate_{_short(m)}"] = _fail_rate(v.get(f"face_found_{_short(m)}") for v in views)
        if not self.animates(avatar):
            notes = [f"method {avatar.info.id!r} cannot animate: every frame is scored at the source frame's pose "
                     "(animated = 0)"] + notes
        notes.append(f"{len(views)} frame(s) scored; tracker (dlib 68) lost the face in "
                     f"{sum(not v['tracked'] for v in views)} (render or frame): no AKD-68/AED/APD there")
        return Output(metrics, views, images=images, notes=list(dict.fromkeys(notes)))


class CrossReenactment(SelfReenactment):
    """Cross-reenactment: the avatar of one clip's source frame driven by another clip's target frames
    (the dataset's pairing: the next subject, cyclic). No ground truth exists, so: CSIM to the *source*
    frame (identity kept), AED/APD to the *driver* frame (expression and pose transferred), measured by
    evaluation.tracker. The render is compared at the source's compared size; AED/APD are scale-free."""
    id, version = "cross-reenactment", "1"
    description = ("source frame of one clip -> avatar; driven by the sampled frames of the next clip (cyclic): "
                   "CSIM to the source frame, AED/APD to the driver frame (dlib tracker); non-animatable methods "
                   "scored at the source pose (animated = 0)")
    primary = ("csim_dlib", "aed", "apd")

    def applicable(self, dataset):
        if not dataset.has_frames:
            return f"dataset {dataset.id!r} has no video frames"
        return None if len(dataset.subject_ids) >= 2 else f"dataset {dataset.id!r} has one subject: no driver"

    def run(self, avatar, subject, ctx):
        from evaluation import tracker as T
        if subject.driver_loader is None:
            return Output({}, [], status="failed", reason="the dataset gives this subject no driver")
        driver = subject.driver_loader()
        if len(driver.frames) < 2:
            return Output({}, [], status="failed", reason=f"driver {driver.id!r} has fewer than 2 frames")
        src = subject.frames[0]
        wh = fit_size(src.shape[1], src.shape[0], ctx.settings.size)
        cam = avatar.input_camera.resized(*wh)
        src_t = to_float(resize_image(src, wh))
        ids = driver.frame_ids or list(range(len(driver.frames)))
        views, images, notes = [], {}, [f"driven by subject {driver.id!r}"]
        thumbs = set(np.linspace(1, len(driver.frames) - 1, self.N_THUMBS).round().astype(int).tolist())
        for i, frame in enumerate(driver.frames[1:], start=1):
            r, ok = self.drive(avatar, frame, cam, notes)
            drv = resize_image(frame, fit_size(frame.shape[1], frame.shape[0], ctx.settings.size))
            m = {k: v for k, v in ctx.identity.scores(r.rgb, src_t).items()}
            tp, td = ctx.track(r.rgb), ctx.track(drv)
            if tp is not None and td is not None:
                m.update(aed=T.aed(tp, td), apd=T.apd(tp, td))
            else:
                m.update(aed=None, apd=None)
            name = f"{driver.id}_frame{ids[i]:05d}"
            views.append({"view": name, **m, "tracked": tp is not None and td is not None, "retargeted": ok})
            if i in thumbs:
                images[name], images[f"{name}_driver"] = r.rgb, to_float(drv)
        return self.summarise(views, images, notes, avatar, ctx)


PROTOCOLS: dict[str, Protocol] = {p.id: p for p in (InputView(), Sweep360(), MultiviewGT(), Reenactment(),
                                                       SelfReenactment(), CrossReenactment())}
EXTRA_METRICS.update({
    "akd68": (False, "AKD on dlib's 68 landmarks (a detector that does not drive any method): mean px distance "
                     "between render and frame at the compared size (evaluation/tracker.py)"),
    "aed": (False, "average expression distance: mean |difference| of 7 landmark ratios (eye and mouth openings, "
                   "mouth width, brow heights, mouth-corner lift; evaluation/tracker.py), unitless"),
    "apd": (False, "average pose distance: mean |difference| of yaw, pitch, roll (degrees) from 6-point PnP of "
                   "dlib's landmarks on a generic face (evaluation/tracker.py)"),
    "track_fail_rate": (False, "fraction of scored frames where the tracker lost the face in the render or the frame"),
})
# not ranked (no direction): what was scored and how
NEUTRAL_METRICS = {"frames_scored": "target frames scored", "animated": "1 = driven by each frame; 0 = the method "
                   "cannot animate and was scored at the source frame's pose"}
EXTRA_METRICS["akd_fail_rate"] = (False, "fraction of reenacted frames without landmarks in the render or frame (no AKD)")


def resolve_protocols(text: str) -> list[str]:
    ids = list(PROTOCOLS) if text.strip() == "all" else [t.strip() for t in text.split(",") if t.strip()]
    unknown = [i for i in ids if i not in PROTOCOLS]
    if unknown or not ids:
        raise ValueError(f"unknown protocol(s) {unknown}; known: {', '.join(PROTOCOLS)}")
    return list(dict.fromkeys(ids))


# ------------------------------------------------------------------------------------- runner

class MethodLoadError(RuntimeError):
    """Some methods could not be instantiated (missing module or dependency); nothing was written for them."""


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


def _seed(seed: int = 0) -> dict:
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
        torch.manual_seed(seed)
    except ImportError:
        pass
    return {"python": seed, "numpy": seed, "torch": seed}


def _stale(path: Path, mrec: dict, proto, settings) -> str | None:
    """Why an existing result no longer describes this method and protocol (None: it still does)."""
    from evaluation import results as R
    try:
        old = R.load_result(path)
    except R.ResultError as e:
        return f"unreadable ({e})"
    for what, was, now in (("method version", old["method"].get("version"), mrec["version"]),
                           ("method config", old["method"].get("config"), mrec["config"]),
                           ("protocol version", old["protocol"].get("version"), proto.version),
                           ("protocol config", old["protocol"].get("config"), proto.config(settings))):
        if was != R.as_stored(now):
            return f"{what} changed ({was!r} -> {now!r})" if "version" in what else f"{what} changed"
    return None


def method_record(method, spec=None) -> dict:
    info = method.info
    cfg = dict(getattr(info, "parameters", {}) or {})
    if spec is not None:
        cfg.update(dict(getattr(spec, "options", ()) or ()))
    return {"id": spec.id if spec is not None else info.id, "name": spec.name if spec is not None else info.name,
            "version": str(info.version), "config": cfg, "animatable": bool(info.animatable),
            "kind": getattr(spec, "kind", None), "class_id": info.id}


def thumbnail_jpeg(rgb: np.ndarray, px: int = THUMB_PX) -> bytes:
    """rgb float [H,W,3] -> JPEG bytes of a thumbnail at most px on its long side (quality 85)."""
    import io

    from PIL import Image
    im = Image.fromarray(to_uint8(rgb))
    im.thumbnail((px, px), Image.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def save_thumbnail(path: Path, rgb: np.ndarray, px: int = THUMB_PX) -> None:
    from evaluation.results import atomic_write_bytes
    atomic_write_bytes(path, thumbnail_jpeg(rgb, px), force=True)


# ---------------------------------------------------------------------------------------- jobs
# A job is one method on one subject under every protocol that needs computing for that pair, so the
# avatar is reconstructed once. It runs wherever the engine puts it (evaluation.engines) and returns the
# result dicts and thumbnail bytes; only the driver writes files (no shared filesystem is assumed).

@dataclass(frozen=True)
class Job:
    method_id: str
    subject_id: str
    protocol_ids: tuple
    dataset: tuple  # evaluation.datasets.Dataset.ref(): (spec, cache_dir, manifest_sha256), opened on the worker
    settings: Settings
    method: object = None  # a Method instance to use instead of the registry's (tests, external predictions)
    strict: bool = False

    def label(self) -> str:
        return f"{self.method_id}/{self.subject_id}"


@dataclass
class JobOutput:
    results: list  # [(protocol id, result dict)] in the job's protocol order
    thumbnails: list  # [(path relative to the results folder, JPEG bytes)]


class WorkerState:
    """What one process keeps between jobs: opened datasets, loaded methods, the metric context (identity
    models, LPIPS nets), the environment record. Per-subject caches are emptied at each job, so a worker's
    memory does not grow with the number of subjects it has seen."""

    def __init__(self):
        self.datasets: dict = {}
        self.methods: dict = {}
        self.contexts: dict = {}
        self._env = None
        self._prov = None

    def dataset(self, ref: tuple):
        if ref not in self.datasets:
            from evaluation.datasets import open_ref
            self.datasets[ref] = open_ref(ref)
        return self.datasets[ref]

    def method(self, method_id: str):
        if method_id not in self.methods:
            from baselines.registry import get_spec
            self.methods[method_id] = get_spec(method_id).load()
        return self.methods[method_id]

    def context(self, settings: Settings) -> "Context":
        if settings not in self.contexts:
            self.contexts[settings] = Context(settings)
        ctx = self.contexts[settings]
        ctx.reset()
        return ctx

    def environment(self) -> dict:
        if self._env is None:
            from evaluation import results as R
            self._env = R.environment()
        return self._env

    def provenance(self) -> dict:
        if self._prov is None:
            from evaluation import metrics as metrics_mod
            self._prov = metrics_mod.provenance()
        return self._prov


_WORKER = WorkerState()  # of this process, when it is an engine's worker
# what every job imports (metrics, identity, LPIPS, landmarks, rendering): a local engine's workers start
# with these imported once for all of them (evaluation.engines, `preload`); the methods' own modules are added
WORKER_PRELOAD = ("numpy", "scipy.optimize", "scipy.ndimage", "scipy.signal", "scipy.stats", "torch",
                  "torchmetrics", "cv2", "dlib", "mediapipe", "numba", "skimage.metrics", "evaluation.metrics",
                  "evaluation.lpips", "evaluation.identity", "evaluation.consistency", "evaluation.datasets",
                  "model.core.render")


def evaluate_job(job: Job, state: WorkerState | None = None) -> JobOutput:
    """Compute one job (worker side; writes nothing). A method that raises gets "failed" results with the
    error (job.strict re-raises instead)."""
    from evaluation import results as R
    state = state or _WORKER
    dataset = state.dataset(job.dataset)
    spec = None
    if job.method is not None:
        method = job.method
    else:
        from baselines.registry import get_spec
        spec, method = get_spec(job.method_id), state.method(job.method_id)
    mrec = method_record(method, spec)
    ctx = state.context(job.settings)
    env, prov, ds_rec = state.environment(), state.provenance(), dataset.record()
    sid, mid, settings = job.subject_id, job.method_id, job.settings
    subject = dataset.subject(sid)
    avatars: dict[str, tuple] = {}  # source image key -> (avatar | exception, seconds)
    out = JobOutput([], [])
    for pid in job.protocol_ids:
        proto = PROTOCOLS[pid]
        t0 = time.perf_counter()
        src = proto.source(subject)
        key = pixels_sha256(src)
        seeds = _seed(0)
        fresh = key not in avatars
        if fresh:
            t = time.perf_counter()
            try:
                avatars[key] = (method.reconstruct(src), time.perf_counter() - t)
            except Exception as e:  # noqa: BLE001 - recorded as a failed result, shown in the table
                if job.strict:
                    raise
                avatars[key] = (e, time.perf_counter() - t)
        avatar, rec_s = avatars[key]
        t1 = time.perf_counter()
        if isinstance(avatar, Exception):
            o = Output({}, [], status="failed", reason=f"reconstruct: {type(avatar).__name__}: {avatar}")
        else:
            try:
                o = proto.run(avatar, subject, ctx)
            except Exception as e:  # noqa: BLE001
                if job.strict:
                    raise
                print(traceback.format_exc(limit=-3), file=sys.stderr)
                o = Output({}, [], status="failed", reason=f"{proto.id}: {type(e).__name__}: {e}")
        t2 = time.perf_counter()
        thumbs = {}
        if settings.thumbs and o.images:
            for name, img in o.images.items():
                rel = (R.result_dir(".", dataset.slug, proto.id, mid) / R.THUMBS_DIR / R.slug(sid)
                       / f"{R.slug(name)}.jpg").as_posix().removeprefix("./")
                out.thumbnails.append((rel, thumbnail_jpeg(img)))
                thumbs[name] = rel
        res = R.new_result(
            method=mrec, dataset=ds_rec, protocol=_protocol_record(proto, settings), subject=sid,
            status=o.status, reason=o.reason, metrics=o.metrics, views=o.views, curves=o.curves,
            thumbnails=thumbs, provenance={"metrics": prov}, environment_info=env, seeds=seeds,
            notes=o.notes + ctx.identity.notes(),
            timings={"reconstruct_s": rec_s, "protocol_s": t2 - t1, "total_s": time.perf_counter() - t0,
                     "reconstruct_reused": not fresh})
        out.results.append((pid, res))
    return out


def _protocol_record(proto: Protocol, settings: Settings) -> dict:
    return {"id": proto.id, "version": proto.version, "description": proto.description,
            "config": proto.config(settings)}


def _summary_view(r: dict, datasets: dict) -> dict:
    """The fields results.summarize reads (no views/curves; one shared copy of the dataset record, whose
    subject list has one entry per subject: a summary of N subjects then holds O(N) memory, not O(N^2))."""
    d = r["dataset"]
    key = (d["id"], d["manifest_sha256"])
    return {"method": r["method"], "dataset": datasets.setdefault(key, d), "protocol": r["protocol"],
            "subject": r["subject"], "status": r["status"], "reason": r["reason"], "metrics": r["metrics"],
            "date": r["date"]}


def _worker_preload(method_ids: list[str], methods: dict) -> tuple[str, ...]:
    """WORKER_PRELOAD and the modules of the methods (found in the registry without importing them)."""
    from baselines.registry import get_spec
    mods = set()
    for mid in method_ids:
        try:
            mods.add(type(methods[mid]).__module__ if mid in methods else get_spec(mid).target.partition(":")[0])
        except ValueError:  # an unknown id: reported where the methods are loaded
            pass
    return WORKER_PRELOAD + tuple(sorted(mods))


def run_evaluation(method_ids: list[str], dataset, protocol_ids: list[str], out: str | Path,
                   force: bool = False, settings: Settings = Settings(), methods: dict | None = None,
                   progress: bool = True, strict: bool = False, log=print, engine: str = "serial",
                   workers: int | None = None, address: str | None = None, stats: dict | None = None) -> list[Path]:
    """Evaluate methods on a dataset under protocols; write one result per subject + a summary.

    methods: optional {id: Method instance} (tests, external code); otherwise ids come from
    baselines.registry. Existing results are kept (and not recomputed) unless force or stale. A method that
    raises on a subject gets a "failed" result with the error (strict=True re-raises instead); so does a job
    whose worker process died on every attempt. engine: serial | local | ray (evaluation.engines), with
    workers / address; the files written do not depend on it (apart from timings and host fields).
    stats: a dict filled with the run's figures (engine, jobs, jobs_per_min, peak worker RSS, ...).
    Ctrl-C: results already written stay; the same call later computes only what is missing.
    Returns the paths of the result files written."""
    from evaluation import engines as E
    from evaluation import results as R
    preload = _worker_preload(method_ids, methods or {})
    if engine == "local":  # the workers' forkserver imports while the jobs are prepared below
        E.local_context(E.local_threads(workers), preload)
    out = Path(out)
    protos = []
    for pid in protocol_ids:
        why = PROTOCOLS[pid].applicable(dataset)
        if why:
            log(f"[skip] protocol {pid}: {why}")
        else:
            protos.append(PROTOCOLS[pid])
    ds_rec = dataset.record()
    if engine != "serial" and dataset.spec is None:
        raise ValueError(f"dataset {dataset.id!r} cannot be reopened by a worker (no spec): use engine 'serial'")
    state = WorkerState()  # the serial engine's worker is this process: it reuses what the driver opened
    state.datasets[dataset.ref()] = dataset
    by_method: dict[str, set] = {}
    load_errors: list[str] = []
    jobs: list[Job] = []
    overwrite: dict[tuple, bool] = {}  # (method, subject, protocol) -> the file exists and may be replaced
    records: dict[str, dict] = {}
    for mid in method_ids:
        spec = None
        if methods and mid in methods:
            method = methods[mid]
        else:
            from baselines.registry import get_spec
            spec = get_spec(mid)
            try:
                method = spec.load()
            except Exception as e:  # noqa: BLE001 - an install problem, not a result: write nothing
                if strict:
                    raise
                log(f"[error] method {mid}: cannot be loaded ({type(e).__name__}: {e}); no results written")
                load_errors.append(mid)
                continue
            state.methods[mid] = method
        mrec = records[mid] = method_record(method, spec)
        for sid in dataset.subject_ids:
            todo = []
            for proto in protos:
                by_method.setdefault(mid, set()).add(proto.id)
                path = R.result_path(out, dataset.slug, proto.id, mid, sid)
                stale = None
                if path.exists() and not force:
                    stale = _stale(path, mrec, proto, settings)
                    if not stale:
                        log(f"[keep] {path} exists (use --force to recompute)")
                        continue
                    log(f"[stale] {path}: {stale}; recomputing")
                overwrite[(mid, sid, proto.id)] = force or bool(stale)
                todo.append(proto.id)
            if todo:
                jobs.append(Job(mid, sid, tuple(todo), dataset.ref(), settings,
                                methods[mid] if methods and mid in methods else None, strict))

    fn = evaluate_job if engine != "serial" else _SerialJob(state)
    run_stats = E.RunStats(engine, 0, 0)
    env = None  # the driver's provenance, for failed jobs only (workers record their own); it imports torch
    written: list[Path] = []
    try:
        for oc in E.run_jobs(fn, jobs, engine=engine, workers=workers, address=address, progress=progress,
                             label=Job.label, stats=run_stats, strict=strict, preload=preload):
            job = oc.job
            if oc.error is not None:
                if strict:
                    raise RuntimeError(f"job {job.label()}: {oc.error}")
                log(f"[fail] {job.label()}: {oc.error}")
                env = env or R.environment()
                results = [(pid, R.new_result(
                    method=records[job.method_id], dataset=ds_rec, protocol=_protocol_record(PROTOCOLS[pid], settings),
                    subject=job.subject_id, status="failed", reason=f"{pid}: {oc.error}", environment_info=env,
                    timings={"attempts": oc.attempts})) for pid in job.protocol_ids]
                thumbnails = []
            else:
                results, thumbnails = oc.value.results, oc.value.thumbnails
            for rel, data in thumbnails:
                R.atomic_write_bytes(out / rel, data, force=True)
            for pid, res in results:
                if res["status"] == "failed" and oc.error is None:
                    log(f"[fail] {job.method_id} / {job.subject_id} / {pid}: {res['reason']}")
                path = R.result_path(out, dataset.slug, pid, job.method_id, job.subject_id)
                written.append(R.write_result(path, res, force=overwrite[(job.method_id, job.subject_id, pid)]))
    except KeyboardInterrupt:
        log(f"[interrupted] {run_stats.jobs} of {len(jobs)} job(s) finished; their results are kept and the same "
            f"command resumes the rest")
        raise
    finally:
        if stats is not None:
            stats.update(run_stats.to_dict(), jobs_planned=len(jobs), results_written=len(written))
    if jobs:
        log(f"[engine] {run_stats.line()}")
    # summaries are derived from all result files of each method x protocol (fresh or kept)
    for mid, pids in by_method.items():
        for pid in sorted(pids):
            d = R.result_dir(out, dataset.slug, pid, mid)
            shared: dict = {}
            res = []
            for p in sorted(d.glob("*.json")):
                if p.name != R.SUMMARY_NAME:
                    r = R.load_result(p)
                    if r["kind"] == "result":
                        res.append(_summary_view(r, shared))
            if res:
                R.write_result(d / R.SUMMARY_NAME, R.summarize(res), force=True)
    if load_errors:
        raise MethodLoadError(f"method(s) could not be loaded: {', '.join(load_errors)} (other results were written)")
    return written


class _SerialJob:
    """evaluate_job bound to the driver's own WorkerState (the serial engine runs jobs in this process)."""

    def __init__(self, state: WorkerState):
        self.state = state

    def __call__(self, job: Job) -> JobOutput:
        return evaluate_job(job, self.state)
