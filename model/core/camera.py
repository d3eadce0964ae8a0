"""The one camera convention of the project.

Camera frame (OpenCV): x right, y down, z forward (into the scene); pixel (0, 0) is the
*centre* of the top-left pixel, so pixel centres sit at integer coordinates.

World frame of every head (metres): origin at the head's centre, +y up, +z out of the face
(towards a viewer in front of it), +x towards the viewer's right when facing the head
(the subject's left). A frontal camera therefore sits on +z looking down -z.

Orbit angles (radians): yaw rotates the camera about world +y; positive yaw moves it towards
+x (it then sees the subject's left cheek). Pitch raises the camera towards +y.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    """Pinhole camera: intrinsics K [3,3] in pixels, world_to_cam [4,4] rigid, image size."""

    K: np.ndarray
    world_to_cam: np.ndarray
    width: int
    height: int

    def __post_init__(self):
        K = np.asarray(self.K, dtype=np.float64).reshape(3, 3)
        w2c = np.asarray(self.world_to_cam, dtype=np.float64).reshape(4, 4)
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera size must be positive, got {self.width}x{self.height}")
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "world_to_cam", w2c)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    @property
    def R(self) -> np.ndarray:
        """World-to-camera rotation [3,3]."""
        return self.world_to_cam[:3, :3]

    @property
    def t(self) -> np.ndarray:
        """World-to-camera translation [3] (metres)."""
        return self.world_to_cam[:3, 3]

    @property
    def position(self) -> np.ndarray:
        """Camera centre in world coordinates [3] (metres)."""
        return -self.R.T @ self.t

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points [N,3] -> camera-frame points [N,3]."""
        return np.asarray(points, dtype=np.float64) @ self.R.T + self.t

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points [N,3] -> (pixels [N,2], depth z [N] in metres). Depth <= 0 is behind."""
        pc = self.to_camera(points)
        z = pc[:, 2]
        safe = np.where(np.abs(z) < 1e-12, 1e-12, z)
        uv = np.stack([self.fx * pc[:, 0] / safe + self.cx, self.fy * pc[:, 1] / safe + self.cy], axis=1)
        return uv, z

    def mask_at(self, mask: np.ndarray, points: np.ndarray, outside: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """mask [H,W] bool (an image this camera took) at the nearest pixel of each world point [N,3] ->
        (values [N] bool, `outside` where the point is not in the frame; in_frame [N] bool: inside the
        mask's H x W and in front of the camera)."""
        uv, z = self.project(points)
        px = np.round(uv).astype(np.int64)  # pixel centres sit at integers
        h, w = mask.shape[:2]
        in_frame = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h) & (z > 0)
        values = np.full(len(px), outside, bool)
        values[in_frame] = mask[px[in_frame, 1], px[in_frame, 0]]
        return values, in_frame

    def unproject(self, pixels: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Pixels [N,2] (x, y) at camera z-depth [N] (metres) -> world points [N,3]; inverse of project."""
        pixels, z = np.asarray(pixels, dtype=np.float64), np.asarray(depth, dtype=np.float64)
        pc = np.stack([(pixels[:, 0] - self.cx) / self.fx * z, (pixels[:, 1] - self.cy) / self.fy * z, z], axis=1)
        return (pc - self.t) @ self.R  # R^T (pc - t), row-vector form

    def resized(self, width: int, height: int) -> "Camera":
        """The same view at another resolution (intrinsics scaled)."""
        sx, sy = width / self.width, height / self.height
        K = self.K.copy()
        K[0, 0] *= sx
        K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
        K[1, 1] *= sy
        K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
        return Camera(K, self.world_to_cam, width, height)

    def to_dict(self) -> dict:
        return {"K": self.K.tolist(), "world_to_cam": self.world_to_cam.tolist(),
                "width": self.width, "height": self.height, "convention": "opencv"}

    @classmethod
    def from_dict(cls, d: dict) -> "Camera":
        try:
            if d.get("convention", "opencv") != "opencv":
                raise ValueError(f"unsupported camera convention {d.get('convention')!r}")
            return cls(np.array(d["K"], dtype=np.float64), np.array(d["world_to_cam"], dtype=np.float64),
                       int(d["width"]), int(d["height"]))
        except (KeyError, TypeError) as e:
            raise ValueError(f"malformed camera (need K [3x3], world_to_cam [4x4], width, height): {e}") from None


def intrinsics(focal_px: float, width: int, height: int) -> np.ndarray:
    """K [3,3] with square pixels and the principal point at the image centre."""
    return np.array([[focal_px, 0, (width - 1) / 2], [0, focal_px, (height - 1) / 2], [0, 0, 1]], dtype=np.float64)


def focal_from_fov(fov_y: float, height: int) -> float:
    """Focal length in pixels for a vertical field of view in radians."""
    return 0.5 * height / np.tan(0.5 * fov_y)


def rigid_matrix(R: np.ndarray, t: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """[4,4] float64 of x -> scale R x + t (R [3,3], t [3]): world_to_cam, poses and the similarities
    that place heads (scale 1: rigid)."""
    M = np.eye(4)
    M[:3, :3], M[:3, 3] = scale * np.asarray(R, dtype=np.float64), t
    return M


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """World-to-camera [4,4] for a camera at `eye` looking at `target` (OpenCV axes)."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-9:  # looking straight along `up`: pick any right vector
        right = np.cross(forward, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])  # rows: camera axes in world coordinates
    return rigid_matrix(R, -R @ eye)


def orbit_position(yaw: float, pitch: float, radius: float, target=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Camera centre [3] on a sphere around `target` (angles in radians, radius in metres)."""
    return np.asarray(target, dtype=np.float64) + radius * np.array(
        [np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)])


def orbit_camera(yaw: float, pitch: float = 0.0, radius: float = 1.0, target=(0.0, 0.0, 0.0),
                 width: int = 512, height: int = 512, fov_y: float | None = None,
                 focal_px: float | None = None) -> Camera:
    """Camera orbiting `target`, looking at it, world +y up. Give fov_y (radians) or focal_px."""
    if focal_px is None:
        focal_px = focal_from_fov(np.deg2rad(20.0) if fov_y is None else fov_y, height)
    eye = orbit_position(yaw, pitch, radius, target)
    return Camera(intrinsics(focal_px, width, height), look_at(eye, np.asarray(target, dtype=np.float64)),
                  width, height)


def head_extent(vertices: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre [3] and framing radius (metres) of a head given as points [N,3]: the bounding box's
    centre and a radius 25% beyond its inscribed-sphere scale, so hair and ears stay in frame."""
    lo, hi = vertices.min(0), vertices.max(0)
    return 0.5 * (lo + hi), float(0.5 * np.linalg.norm(hi - lo) / np.sqrt(3) * 1.25)


def framing_camera(center, radius: float, yaw: float = 0.0, pitch: float = 0.0, size: int = 512,
                   fov_y: float = np.deg2rad(20.0), fill: float = 0.85) -> Camera:
    """Orbit camera at (yaw, pitch) radians so that a sphere of `radius` metres around `center`
    spans `fill` of the image height. The one framing rule for views of a head (app, evaluation)."""
    distance = radius / np.sin(0.5 * fill * fov_y)
    return orbit_camera(yaw, pitch, distance, center, size, size, fov_y=fov_y)
