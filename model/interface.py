"""The method interface, defined once: ours, every baseline and external predictions speak it.

    method = SomeMethod(); avatar = method.reconstruct(image)   # image: RGB uint8 [H,W,3]
    out = avatar.render(camera, controls)                      # RenderResult: rgb, alpha, depth
    avatar.input_camera                                        # the fitted camera of the photo

The evaluation and the app use nothing but this module (and model.core.camera for cameras).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from model.core.camera import Camera
from model.core.errors import InputError  # noqa: F401  (re-exported: part of the interface)
from model.core.render import RenderResult, render

Controls = Mapping[str, float]  # rig control name -> value (see model.head.rig for names and ranges)


@dataclass(frozen=True)
class MethodInfo:
    id: str
    name: str
    version: str
    description: str
    animatable: bool
    link: str = ""
    license: str = ""
    parameters: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class Avatar(ABC):
    """A reconstructed head. Units: metres, radians; images RGB in [0, 1]."""

    info: MethodInfo
    input_camera: Camera  # the camera under which the avatar reproduces the input photo
    head_center: np.ndarray  # [3] world point that orbit views circle around (metres)
    head_radius: float  # metres: rough radius of the head, for framing orbit views
    provides_depth: bool = True  # False: render()'s depth is meaningless (e.g. external images without depth)

    @abstractmethod
    def render(self, camera: Camera, controls: Controls | None = None,
               background=(1.0, 1.0, 1.0)) -> RenderResult:
        """rgb [H,W,3], alpha [H,W], expected depth [H,W] (metres, 0 where alpha is 0)."""

    @property
    def animatable(self) -> bool:
        return self.info.animatable

    def metadata(self) -> dict:
        return {"method": self.info.to_dict()}


class GaussianAvatar(Avatar):
    """An avatar that is a set of 3D Gaussians, optionally re-posed by rig controls."""

    @abstractmethod
    def gaussians(self, controls: Controls | None = None):
        """model.core.gaussians.Gaussians under `controls` (neutral when None)."""

    def render(self, camera: Camera, controls: Controls | None = None, background=(1.0, 1.0, 1.0)) -> RenderResult:
        if controls and not self.animatable:
            raise ValueError(f"method {self.info.id!r} is not animatable; controls are not accepted")
        return render(self.gaussians(controls), camera, background=background)

    def export_ply(self, path: str | Path, controls: Controls | None = None) -> Path:
        from model.core.export import write_ply
        return write_ply(self.gaussians(controls), path)

    def export_splat(self, path: str | Path, controls: Controls | None = None) -> Path:
        from model.core.export import write_splat
        return write_splat(self.gaussians(controls), path)

    def live_pack(self) -> bytes | None:
        """The avatar as a live pack that the browser re-poses itself (model/ours/live.py documents the
        format), or None when the method has none: the viewer then shows its .splat, not animated."""
        return None

    def metadata(self) -> dict:
        return {**super().metadata(), "gaussians": len(self.gaussians())}


class Method(ABC):
    """A reconstruction method. Subclasses set `info` and implement `reconstruct`."""

    info: MethodInfo

    @abstractmethod
    def reconstruct(self, image: np.ndarray) -> Avatar:
        """One RGB photo, uint8 [H,W,3] (see model.core.image_io.load_image) -> Avatar."""


class StaticGaussianAvatar(GaussianAvatar):
    """A fixed set of Gaussians (methods that cannot animate)."""

    def __init__(self, info: MethodInfo, gaussians, input_camera: Camera, head_center, head_radius: float,
                 extra: dict | None = None):
        self.info = info
        self._g = gaussians
        self.input_camera = input_camera
        self.head_center = np.asarray(head_center, dtype=np.float64)
        self.head_radius = float(head_radius)
        self._extra = extra or {}

    def gaussians(self, controls: Controls | None = None):
        if controls:
            raise ValueError(f"method {self.info.id!r} is not animatable; controls are not accepted")
        return self._g

    def metadata(self) -> dict:
        return {**super().metadata(), **self._extra}
