"""Predictions made elsewhere (e.g. LAM or GAGAvatar on a GPU), scored exactly like built-in methods.

Folder format (all names are plain file names inside their folder; no paths, no '..'):

    <root>/method.json              {"id", "name", "version", "description", "animatable": false,
                                     "link"?, "license"?, "parameters"?}
    <root>/<subject>/input.png      the photo the method was given (identifies the subject)
    <root>/<subject>/views.json     {"head_center": [x,y,z], "head_radius": r, "input_camera": CAMERA,
                                     "views": [{"id": "yaw+015", "camera": CAMERA, "image": "yaw+015.png",
                                                "alpha": "yaw+015_alpha.png"?, "depth": "yaw+015_depth.npy"?}]}
    CAMERA = {"K": 3x3, "world_to_cam": 4x4, "width": W, "height": H}  (OpenCV, metres; model/core/camera.py)

Images are RGB (or RGBA, whose alpha is used) of exactly the camera's size; alpha PNGs are 8-bit
grey; depth is a float32 .npy [H,W] of camera-frame z in metres. Views are rendered at the cameras
the protocols ask for: orbit views follow model.core.camera.framing_camera(head_center, head_radius, yaw,
pitch, size). The evaluation asks the avatar for a camera; the view whose camera matches is returned,
an unknown camera is an error (never a silent substitute).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from model.core.camera import Camera
from model.core.image_io import load_image, pixels_sha256
from model.core.render import RenderResult
from model.interface import Avatar, Method, MethodInfo

CAMERA_TOL = 1e-4  # relative tolerance when matching a requested camera to a stored view


class PredictionFormatError(ValueError):
    pass


def _safe_name(folder: Path, name, what: str) -> Path:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", "..") \
            or name.startswith("."):
        raise PredictionFormatError(f"{folder.name}: {what} {name!r} must be a plain file name inside the folder")
    path = folder / name
    if not path.is_file():
        raise PredictionFormatError(f"{folder.name}: {what} file {name!r} is missing")
    return path


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise PredictionFormatError(f"missing {path.parent.name}/{path.name}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PredictionFormatError(f"{path.parent.name}/{path.name}: bad JSON ({e})") from None
    if not isinstance(data, dict):
        raise PredictionFormatError(f"{path.parent.name}/{path.name}: expected a JSON object")
    return data


def _camera(d, where: str) -> Camera:
    try:
        cam = Camera.from_dict(d)
    except (ValueError, TypeError, AttributeError) as e:
        raise PredictionFormatError(f"{where}: {e}") from None
    if cam.K.shape != (3, 3) or not np.isfinite(cam.K).all() or not np.isfinite(cam.world_to_cam).all():
        raise PredictionFormatError(f"{where}: camera has non-finite values")
    return cam


@dataclass
class _View:
    id: str
    camera: Camera
    image: Path
    alpha: Path | None
    depth: Path | None


def _same_camera(a: Camera, b: Camera) -> bool:
    return (a.width, a.height) == (b.width, b.height) and np.allclose(a.K, b.K, rtol=CAMERA_TOL, atol=1e-6) \
        and np.allclose(a.world_to_cam, b.world_to_cam, rtol=CAMERA_TOL, atol=1e-6)


class ExternalAvatar(Avatar):
    def __init__(self, info: MethodInfo, subject: str, views: list[_View], input_camera: Camera,
                 head_center, head_radius: float):
        self.info, self.subject, self.views = info, subject, views
        self.input_camera = input_camera
        self.head_center = np.asarray(head_center, np.float64)
        self.head_radius = float(head_radius)
        self.provides_depth = all(v.depth is not None for v in views)

    def render(self, camera: Camera, controls=None, background=(1.0, 1.0, 1.0)) -> RenderResult:
        if controls:
            raise ValueError(f"external predictions of {self.info.id!r} cannot be animated")
        view = next((v for v in self.views if _same_camera(v.camera, camera)), None)
        if view is None:
            raise PredictionFormatError(
                f"{self.info.id}/{self.subject}: no prediction for the requested camera "
                f"({camera.width}x{camera.height}, centre {np.round(camera.position, 4).tolist()}); "
                f"{len(self.views)} views available")
        img = Image.open(view.image)
        arr = np.asarray(img.convert("RGBA" if img.mode in ("RGBA", "LA") else "RGB"), np.float32) / 255
        alpha = arr[..., 3] if arr.shape[2] == 4 else np.ones(arr.shape[:2], np.float32)
        if view.alpha is not None:
            alpha = np.asarray(Image.open(view.alpha).convert("L"), np.float32) / 255
        rgb = arr[..., :3]
        if arr.shape[2] == 4 or view.alpha is not None:  # re-composite on the requested background
            rgb = rgb * alpha[..., None] + (1 - alpha[..., None]) * np.asarray(background, np.float32)
        depth = np.load(view.depth).astype(np.float32) if view.depth is not None else np.zeros_like(alpha)
        return RenderResult(rgb, alpha, depth)


class ExternalMethod(Method):
    """A method whose avatars are folders of pre-rendered views (see the module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise PredictionFormatError(f"predictions folder not found: {self.root}")
        meta = _read_json(self.root / "method.json")
        missing = [k for k in ("id", "name", "version", "description") if not isinstance(meta.get(k), str)]
        if missing:
            raise PredictionFormatError(f"method.json: missing or non-string fields {missing}")
        self.info = MethodInfo(meta["id"], meta["name"], meta["version"], meta["description"],
                               animatable=False, link=str(meta.get("link", "")),
                               license=str(meta.get("license", "")),
                               parameters={**dict(meta.get("parameters") or {}), "external": True})
        self.subjects: dict[str, tuple[str, dict]] = {}
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            key = pixels_sha256(load_image(_safe_name(folder, "input.png", "input photo")))
            self.subjects[key] = (folder.name, self._load_views(folder))
        if not self.subjects:
            raise PredictionFormatError(f"{self.root}: no subject folders")

    def _load_views(self, folder: Path) -> dict:
        meta = _read_json(folder / "views.json")
        views_raw = meta.get("views")
        if not isinstance(views_raw, list) or not views_raw:
            raise PredictionFormatError(f"{folder.name}/views.json: 'views' must be a non-empty list")
        try:
            center = np.asarray(meta["head_center"], np.float64).reshape(3)
            radius = float(meta["head_radius"])
        except (KeyError, ValueError, TypeError):
            raise PredictionFormatError(f"{folder.name}/views.json: need head_center [3] and head_radius") from None
        input_cam = _camera(meta.get("input_camera"), f"{folder.name}/views.json input_camera")
        views, ids = [], set()
        for i, v in enumerate(views_raw):
            where = f"{folder.name}/views.json views[{i}]"
            if not isinstance(v, dict) or not isinstance(v.get("id"), str):
                raise PredictionFormatError(f"{where}: each view needs a string 'id'")
            if v["id"] in ids:
                raise PredictionFormatError(f"{where}: duplicate view id {v['id']!r}")
            ids.add(v["id"])
            cam = _camera(v.get("camera"), where)
            image = _safe_name(folder, v.get("image"), "image")
            with Image.open(image) as im:
                if im.size != (cam.width, cam.height):
                    raise PredictionFormatError(f"{where}: image is {im.size[0]}x{im.size[1]}, camera says "
                                                f"{cam.width}x{cam.height}")
            alpha = _safe_name(folder, v["alpha"], "alpha") if v.get("alpha") else None
            depth = _safe_name(folder, v["depth"], "depth") if v.get("depth") else None
            if depth is not None:
                d = np.load(depth, mmap_mode="r", allow_pickle=False)
                if d.shape != (cam.height, cam.width):
                    raise PredictionFormatError(f"{where}: depth is {d.shape}, expected {(cam.height, cam.width)}")
            views.append(_View(v["id"], cam, image, alpha, depth))
        return {"views": views, "input_camera": input_cam, "head_center": center, "head_radius": radius}

    def reconstruct(self, image) -> ExternalAvatar:
        key = pixels_sha256(load_image(image))
        if key not in self.subjects:
            raise PredictionFormatError(f"{self.info.id}: no predictions for this input photo "
                                        f"(subjects: {', '.join(s for s, _ in self.subjects.values())})")
        subject, d = self.subjects[key]
        return ExternalAvatar(self.info, subject, d["views"], d["input_camera"], d["head_center"], d["head_radius"])


def load_predictions(path: str | Path) -> ExternalMethod:
    """Validate and load an external predictions folder (raises PredictionFormatError with the reason)."""
    return ExternalMethod(path)
