"""3DGS .ply and antimatter15 .splat files: what SuperSplat, gsplat.js and gr.Model3D read.

.ply (Kerbl et al. 2023 layout, float32 vertex properties): x y z, nx ny nz (zeros), f_dc_0..2,
f_rest_* (channel-major: all R coefficients, then G, then B), opacity as a logit, scale_0..2 as
natural logs, rot_0..3 as a quaternion (w, x, y, z).
.splat: 32 bytes a Gaussian, largest-and-most-opaque first: position 3×f32, scale 3×f32 (linear),
RGBA 4×u8 (DC colour and opacity), rotation 4×u8 as round(q·128 + 128), q = (w, x, y, z).

Frame of the files: the 3DGS/COLMAP convention that captures and their viewers use (OpenCV camera
axes: +y down, +z forward), i.e. the head world of model/core/camera.py turned 180° about x:
(x, y, z) -> (x, -y, -z). The head is then upright in SuperSplat, gsplat.js and the antimatter15
viewer, and in three.js/Spark with the customary flip of captures (`mesh.quaternion.set(1, 0, 0, 0)`)
it is upright and faces a default camera on +z (tests/test_browser.py checks this with Spark's own
loader). The readers turn files back into the head world, so a write/read round trip is exact.
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
from plyfile import PlyData, PlyElement, PlyParseError

from model.core.gaussians import Gaussians, normalize_quats

_EPS = 1e-7
_FLIP = np.array([1.0, -1.0, -1.0], np.float32)  # head world <-> file frame: 180° about x (its own inverse)


def to_file_frame(g: Gaussians) -> Gaussians:
    """Gaussians in the head world -> the files' frame (and back: the turn is its own inverse).
    Means (x, y, z) -> (x, -y, -z); rotations q -> q_x(180°)·q, i.e. (w, x, y, z) -> (-x, w, -z, y)."""
    w, x, y, z = normalize_quats(g.quats).T
    q = np.stack([-x, w, -z, y], 1)
    return Gaussians(g.means * _FLIP, q * np.where(q[:, :1] < 0, -1.0, 1.0), g.scales, g.opacities,
                     _flip_sh(g.sh))


def _flip_sh(sh: np.ndarray) -> np.ndarray:
    """SH coefficients [N,K,3] of a colour field turned 180° about x: each real basis function is even
    or odd under (y, z) -> (-y, -z), so the turn only flips signs."""
    k = sh.shape[1]
    if k == 1:
        return sh
    # signs of the real SH basis (3DGS order) under y -> -y, z -> -z, per band up to degree 3
    signs = np.array([1, -1, -1, 1, -1, 1, 1, -1, 1, -1, 1, -1, -1, 1, -1, 1][:k], np.float32)
    return sh * signs[None, :, None]


def atomic_write(path: Path, write) -> Path:
    """write(f) into a temporary file beside `path`, then rename it over `path`: readers see the old file or
    the whole new one; on any error (write raising included) nothing is left behind. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# what a reader needs (normals and f_rest are optional), in the order the writer lays them out
PLY_PROPERTIES = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
                  "rot_0", "rot_1", "rot_2", "rot_3")


def ply_bytes(means, f_dc, opacities, scales, quats, f_rest=None, opacity_eps: float = _EPS) -> bytes:
    """A binary little-endian 3DGS .ply (module docstring) of the arrays [N,...] as given, in their own frame:
    f_dc [N,3], f_rest [N,3(K-1)] channel-major or None, opacities in [0, 1] (clipped to [eps, 1 - eps]
    before the logit), scales linear. The one writer of the layout: write_ply, and LAM's offset.ply
    (model/ours/lam_export.py), which gives its own meanings to the same properties."""
    n = len(means)
    rest = np.zeros((n, 0), np.float32) if f_rest is None else f_rest
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(rest.shape[1])]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    op = np.clip(opacities, opacity_eps, 1 - opacity_eps)
    cols = [means, np.zeros((n, 3), np.float32), f_dc, rest, np.log(op / (1 - op))[:, None],
            np.log(np.maximum(scales, 1e-12)), normalize_quats(quats)]
    data = np.concatenate(cols, axis=1).astype(np.float32)
    arr = np.empty(n, dtype=[(name, "<f4") for name in names])
    for i, name in enumerate(names):
        arr[name] = data[:, i]
    out = io.BytesIO()
    PlyData([PlyElement.describe(arr, "vertex")], text=False, byte_order="<").write(out)
    return out.getvalue()


def write_ply(g: Gaussians, path: str | Path) -> Path:
    """Gaussians in the head world -> a 3DGS .ply in the files' frame (see the module docstring)."""
    g = to_file_frame(g)
    n = len(g)
    data = ply_bytes(g.means, g.sh[:, 0], g.opacities, g.scales, g.quats,
                     g.sh[:, 1:].transpose(0, 2, 1).reshape(n, -1))  # [N,3,K-1]: channel-major like 3DGS
    return atomic_write(path, lambda f: f.write(data))


def read_ply(path: str | Path) -> Gaussians:
    try:
        v = PlyData.read(str(path))["vertex"]
    except (PlyParseError, KeyError, ValueError, OSError, EOFError) as e:
        raise ValueError(f"{Path(path).name}: not a readable 3DGS .ply ({e})") from None
    props = {p.name for p in v.properties}
    need = set(PLY_PROPERTIES)
    if not need <= props:
        raise ValueError(f"{Path(path).name}: missing 3DGS properties {sorted(need - props)}")
    col = lambda *names: np.stack([np.asarray(v[nm], np.float32) for nm in names], 1)  # noqa: E731
    n_rest = len([p for p in props if p.startswith("f_rest_")])
    k = 1 + n_rest // 3
    if k not in (1, 4, 9, 16) or n_rest % 3:
        raise ValueError(f"{Path(path).name}: {n_rest} f_rest properties is not a valid SH degree")
    sh = np.empty((len(v["x"]), k, 3), np.float32)
    sh[:, 0] = col("f_dc_0", "f_dc_1", "f_dc_2")
    if k > 1:
        sh[:, 1:] = col(*[f"f_rest_{i}" for i in range(n_rest)]).reshape(-1, 3, k - 1).transpose(0, 2, 1)
    logit = col("opacity")[:, 0]
    return to_file_frame(Gaussians(col("x", "y", "z"), normalize_quats(col("rot_0", "rot_1", "rot_2", "rot_3")),
                                   np.exp(col("scale_0", "scale_1", "scale_2")), 1 / (1 + np.exp(-logit)), sh))


def write_splat(g: Gaussians, path: str | Path) -> Path:
    """Gaussians in the head world -> an antimatter15 .splat in the files' frame (DC colour only)."""
    g = to_file_frame(g)
    order = np.argsort(-(g.scales.prod(1) * g.opacities), kind="stable")  # viewers stream big ones first
    n = len(g)
    buf = np.empty(n, dtype=[("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
    buf["pos"] = g.means[order]
    buf["scale"] = g.scales[order]
    rgba = np.concatenate([g.rgb, g.opacities[:, None]], 1)[order]
    buf["rgba"] = np.clip(np.round(rgba * 255), 0, 255)
    buf["rot"] = np.clip(np.round(normalize_quats(g.quats)[order] * 128 + 128), 0, 255)
    return atomic_write(path, lambda f: f.write(buf.tobytes()))


def read_splat(path: str | Path) -> Gaussians:
    raw = Path(path).read_bytes()
    if len(raw) % 32:
        raise ValueError(f"{Path(path).name}: size {len(raw)} is not a multiple of 32 bytes")
    buf = np.frombuffer(raw, dtype=[("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
    rgba = buf["rgba"].astype(np.float32) / 255
    return to_file_frame(Gaussians.from_rgb(buf["pos"], normalize_quats((buf["rot"].astype(np.float32) - 128) / 128),
                                            buf["scale"], rgba[:, 3], rgba[:, :3]))
