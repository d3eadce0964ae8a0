"""The one container for 3D Gaussians, and the small maths every part shares.

Conventions (the same as gsplat and the 3DGS .ply layout):
- means [N,3] in metres, world frame (see model/core/camera.py);
- quats [N,4] unit quaternions in (w, x, y, z) order, rotating the Gaussian's local axes into world;
- scales [N,3] standard deviations along those axes, metres (linear here; the .ply stores logs);
- opacities [N] in [0, 1] (the .ply stores logits);
- sh [N,K,3] real spherical-harmonic coefficients, K = (degree+1)^2; colour = clamp(SH(dir) + 0.5, 0)
  as in 3DGS, so a DC-only Gaussian of RGB c has sh[:, 0] = (c - 0.5) / SH_C0.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

SH_C0 = 0.28209479177387814  # Y_0^0
_SH_C1 = 0.4886025119029199
_SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
          -0.4570457994644658, 1.445305721320277, -0.5900435899266435)


@dataclass
class Gaussians:
    means: np.ndarray  # [N,3] float32, metres
    quats: np.ndarray  # [N,4] float32, (w, x, y, z), unit
    scales: np.ndarray  # [N,3] float32, metres
    opacities: np.ndarray  # [N] float32, [0, 1]
    sh: np.ndarray  # [N,K,3] float32

    def __post_init__(self):
        self.means = np.ascontiguousarray(self.means, dtype=np.float32).reshape(-1, 3)
        n = len(self.means)
        self.quats = np.ascontiguousarray(self.quats, dtype=np.float32).reshape(n, 4)
        self.scales = np.ascontiguousarray(self.scales, dtype=np.float32).reshape(n, 3)
        self.opacities = np.ascontiguousarray(self.opacities, dtype=np.float32).reshape(n)
        sh = np.asarray(self.sh, dtype=np.float32)
        if sh.ndim == 2:  # [N,3] -> DC only
            sh = sh[:, None, :]
        k = sh.shape[1] if sh.ndim == 3 else -1
        if sh.ndim != 3 or sh.shape[0] != n or sh.shape[2] != 3 or k not in (1, 4, 9, 16):
            raise ValueError(f"sh must be [N,K,3] with K in 1/4/9/16, got {sh.shape} for N={n}")
        self.sh = np.ascontiguousarray(sh)

    def __len__(self) -> int:
        return len(self.means)

    @property
    def sh_degree(self) -> int:
        return int(round(np.sqrt(self.sh.shape[1]))) - 1

    @classmethod
    def from_rgb(cls, means, quats, scales, opacities, rgb) -> "Gaussians":
        """Gaussians with view-independent colour rgb [N,3] in [0, 1]."""
        return cls(means, quats, scales, opacities, rgb_to_sh(np.asarray(rgb, dtype=np.float32)))

    @property
    def rgb(self) -> np.ndarray:
        """DC colour [N,3] in [0, 1] (what a viewer without SH shows)."""
        return np.clip(self.sh[:, 0] * SH_C0 + 0.5, 0.0, 1.0)

    def colors(self, camera_position: np.ndarray | None = None) -> np.ndarray:
        """Colour [N,3] seen from `camera_position` [3] (metres); DC only when None or degree 0."""
        if self.sh_degree == 0 or camera_position is None:
            return np.maximum(self.sh[:, 0] * SH_C0 + 0.5, 0.0)
        dirs = self.means - np.asarray(camera_position, dtype=np.float32)
        dirs /= np.maximum(np.linalg.norm(dirs, axis=1, keepdims=True), 1e-12)
        return np.maximum(eval_sh(self.sh, dirs) + 0.5, 0.0)

    def take(self, index: np.ndarray) -> "Gaussians":
        """The Gaussians at index ([M] int or [N] bool), in that order."""
        return Gaussians(*(getattr(self, f.name)[index] for f in fields(self)))

    def copy(self) -> "Gaussians":
        return Gaussians(*(getattr(self, f.name).copy() for f in fields(self)))

    @staticmethod
    def concat(parts: list["Gaussians"]) -> "Gaussians":
        k = max(p.sh.shape[1] for p in parts)
        sh = [np.pad(p.sh, ((0, 0), (0, k - p.sh.shape[1]), (0, 0))) for p in parts]
        return Gaussians(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Gaussians)[:4]),
                         np.concatenate(sh))


def rgb_to_sh(rgb: np.ndarray) -> np.ndarray:
    """RGB [N,3] in [0,1] -> DC coefficients [N,1,3]."""
    return ((np.asarray(rgb, dtype=np.float32) - 0.5) / SH_C0)[:, None, :]


def normalize_quats(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=np.float32)
    return q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)


def quat_to_rotmat(q: np.ndarray) -> np.ndarray:
    """Unit quaternions [N,4] (w, x, y, z) -> rotation matrices [N,3,3]."""
    q = normalize_quats(q).astype(np.float64)
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], axis=1)


def rotmat_to_quat(R: np.ndarray) -> np.ndarray:
    """Rotation matrices [N,3,3] -> unit quaternions [N,4] (w, x, y, z), w >= 0."""
    R = np.asarray(R, dtype=np.float64).reshape(-1, 3, 3)
    m = lambda i, j: R[:, i, j]  # noqa: E731
    # Shepperd's method: build the quaternion from its largest component, for stability.
    w = np.stack([1 + m(0, 0) + m(1, 1) + m(2, 2), m(2, 1) - m(1, 2), m(0, 2) - m(2, 0), m(1, 0) - m(0, 1)], 1)
    x = np.stack([m(2, 1) - m(1, 2), 1 + m(0, 0) - m(1, 1) - m(2, 2), m(0, 1) + m(1, 0), m(0, 2) + m(2, 0)], 1)
    y = np.stack([m(0, 2) - m(2, 0), m(0, 1) + m(1, 0), 1 - m(0, 0) + m(1, 1) - m(2, 2), m(1, 2) + m(2, 1)], 1)
    z = np.stack([m(1, 0) - m(0, 1), m(0, 2) + m(2, 0), m(1, 2) + m(2, 1), 1 - m(0, 0) - m(1, 1) + m(2, 2)], 1)
    cand = np.stack([w, x, y, z], 1)  # [N,4 candidates,4]; candidate k is 4*q_k*q
    k = np.argmax(np.stack([w[:, 0], x[:, 1], y[:, 2], z[:, 3]], 1), axis=1)
    q = cand[np.arange(len(R)), k]
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q *= np.where(q[:, :1] < 0, -1.0, 1.0)
    return q.astype(np.float32)


def covariances(quats: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """World covariances [N,3,3] = R S S^T R^T (metres^2)."""
    R = quat_to_rotmat(quats)
    M = R * np.asarray(scales, dtype=np.float64)[:, None, :]
    return M @ np.transpose(M, (0, 2, 1))


def eval_sh(sh: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Real SH (3DGS basis and sign convention) [N,K,3] at unit directions [N,3] -> [N,3]."""
    k = sh.shape[1]
    out = SH_C0 * sh[:, 0]
    if k < 4:
        return out
    x, y, z = dirs[:, 0:1], dirs[:, 1:2], dirs[:, 2:3]
    out = out - _SH_C1 * y * sh[:, 1] + _SH_C1 * z * sh[:, 2] - _SH_C1 * x * sh[:, 3]
    if k < 9:
        return out
    xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
    out = (out + _SH_C2[0] * xy * sh[:, 4] + _SH_C2[1] * yz * sh[:, 5] + _SH_C2[2] * (2 * zz - xx - yy) * sh[:, 6]
           + _SH_C2[3] * xz * sh[:, 7] + _SH_C2[4] * (xx - yy) * sh[:, 8])
    if k < 16:
        return out
    return (out + _SH_C3[0] * y * (3 * xx - yy) * sh[:, 9] + _SH_C3[1] * xy * z * sh[:, 10]
            + _SH_C3[2] * y * (4 * zz - xx - yy) * sh[:, 11] + _SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy) * sh[:, 12]
            + _SH_C3[4] * x * (4 * zz - xx - yy) * sh[:, 13] + _SH_C3[5] * z * (xx - yy) * sh[:, 14]
            + _SH_C3[6] * x * (xx - 3 * yy) * sh[:, 15])
