"""Synthetic head-like Gaussian scenes and a framing camera, for render benchmarks and tests.

The scene is Gaussians lying flat on a closed head-sized surface (an ellipsoid with semi-axes
0.09 x 0.12 x 0.10 m, x/y/z as in model/core/camera.py) plus a neck (a cylinder under it), spread
uniformly by area, sized so neighbours overlap, with smooth colours: what a one-shot avatar's
splats look like to a rasterizer (a few opaque layers per pixel), not a photoreal head.
"""
from __future__ import annotations

import numpy as np

from model.core.camera import Camera, orbit_camera
from model.core.gaussians import Gaussians, rotmat_to_quat

HEAD_AXES = np.array([0.09, 0.12, 0.10])  # metres
NECK_RADIUS = 0.05  # metres
NECK_Y = (-0.22, -0.08)  # metres: the neck's extent along y, its top hidden inside the head
TARGET = np.array([0.0, 0.0, 0.0])


def _ellipsoid_points(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n points uniform by area on the head ellipsoid, with outward unit normals."""
    pts, nrm = [], []
    # rejection sampling: a uniform direction d maps to axes*d; keep it with probability ∝ its area
    # element |axes*d|·|d/axes| relative to the largest
    max_w = np.prod(HEAD_AXES) * np.max(1 / HEAD_AXES) * 1.0001
    while sum(len(p) for p in pts) < n:
        d = rng.normal(size=(2 * n + 16, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        normal = d / HEAD_AXES
        w = np.prod(HEAD_AXES) * np.linalg.norm(normal, axis=1)
        keep = rng.random(len(d)) < w / max_w
        pts.append(d[keep] * HEAD_AXES)
        nrm.append(normal[keep] / np.linalg.norm(normal[keep], axis=1, keepdims=True))
    return np.concatenate(pts)[:n], np.concatenate(nrm)[:n]


def _neck_points(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n points uniform on the neck cylinder (axis y, slightly behind the head centre), normals."""
    phi = rng.uniform(0, 2 * np.pi, n)
    y = rng.uniform(*NECK_Y, n)
    normal = np.stack([np.sin(phi), np.zeros(n), np.cos(phi)], 1)
    return normal * NECK_RADIUS + np.stack([np.zeros(n), y, np.full(n, -0.01)], 1), normal


def _frames(normals: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotations [N,3,3] whose third column is the normal, with a random in-plane angle."""
    a = np.where(np.abs(normals[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
    t1 = np.cross(normals, a)
    t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
    t2 = np.cross(normals, t1)
    ang = rng.uniform(0, 2 * np.pi, len(normals))[:, None]
    u = np.cos(ang) * t1 + np.sin(ang) * t2
    v = np.cross(normals, u)
    return np.stack([u, v, normals], axis=2)


def head_scene(n: int, seed: int = 0) -> Gaussians:
    """A head-like scene of n Gaussians (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    head_area = 4 * np.pi * ((HEAD_AXES[0] * HEAD_AXES[1]) ** 1.6 + (HEAD_AXES[0] * HEAD_AXES[2]) ** 1.6
                             + (HEAD_AXES[1] * HEAD_AXES[2]) ** 1.6) ** (1 / 1.6) / 3 ** (1 / 1.6)  # Thomsen
    neck_area = 2 * np.pi * NECK_RADIUS * (NECK_Y[1] - NECK_Y[0])
    n_neck = int(round(n * neck_area / (head_area + neck_area)))
    p_head, n_head = _ellipsoid_points(rng, n - n_neck)
    p_neck, n_nk = _neck_points(rng, n_neck)
    means, normals = np.concatenate([p_head, p_neck]), np.concatenate([n_head, n_nk])

    spacing = np.sqrt((head_area + neck_area) / max(n, 1))  # metres between neighbours
    tangent = spacing * rng.uniform(0.7, 1.1, (n, 2))
    scales = np.concatenate([tangent, 0.1 * tangent[:, :1]], 1)
    quats = rotmat_to_quat(_frames(normals, rng))
    opacities = rng.uniform(0.5, 1.0, n)

    # skin with a smooth tint; darker "hair" on top and at the back
    skin = np.array([0.80, 0.60, 0.50]) + 0.08 * np.sin(means @ np.array([[30.0, 0, 0], [0, 25, 0], [0, 0, 20]]))
    hair = np.array([0.25, 0.17, 0.12]) + 0.05 * np.sin(60 * means[:, 1:2])
    hairness = np.clip((means[:, 1] - 0.02) / 0.04 - (means[:, 2] - 0.02) / 0.03, 0, 1)[:, None]
    rgb = np.clip((1 - hairness) * skin + hairness * hair, 0, 1)
    return Gaussians.from_rgb(means, quats, scales, opacities, rgb)


def head_camera(size: int, yaw: float = 0.0, pitch: float = 0.0, fill: float = 0.85) -> Camera:
    """Orbit camera (radians) whose square size x size image shows the head ellipsoid's height
    filling `fill` of the frame."""
    fov_y = np.deg2rad(20.0)
    half = HEAD_AXES[1] / fill  # metres of half-height visible in the plane of the head's silhouette
    return orbit_camera(yaw, pitch, half / np.tan(fov_y / 2), TARGET, size, size, fov_y=fov_y)
