"""Geometry / multi-view metrics: depth reprojection error, identity consistency over yaw, AKD.

Depth reprojection error between two rendered views A and B of one avatar (cameras in the
model/core/camera.py convention, depth = the renderer's expected z-depth in metres):
  1. every pixel p of A with alpha_A(p) > alpha_threshold and depth_A(p) > 0 is unprojected,
     X = cam_A^-1(p, depth_A(p)) (pixel centres at integer coordinates);
  2. X is projected into B: (q, z) = cam_B(X); pixels off B's image or with z <= 0 are skipped;
  3. B's depth is sampled bilinearly at q, only where all 4 neighbours are B foreground
     (alpha_B > alpha_threshold), so that no background (depth 0) is blended in;
  4. occlusion test: if z > depth_B(q) + occlusion_tol, X lies behind B's visible surface (hidden in
     B, legitimately) and is skipped; otherwise the error is |z - depth_B(q)|. A surface that sits in
     front of where B sees it (z < depth_B - tol) is an inconsistency and is counted;
  5. the same from B to A; mean_abs_m = mean of the two directional means (those that have points).
A floater in one view only is caught by the direction starting from that view.
"""
from __future__ import annotations

import numpy as np

from model.core.camera import Camera


def _unproject(cam: Camera, depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """World points [N,3] of the pixels in `mask` [H,W] at z-depth `depth` [H,W] (metres)."""
    v, u = np.nonzero(mask)
    return cam.unproject(np.stack([u, v], 1), depth[v, u])


def _check_view(depth, alpha, cam: Camera, name: str) -> tuple[np.ndarray, np.ndarray]:
    depth = np.asarray(depth, dtype=np.float64)
    alpha = np.asarray(alpha, dtype=np.float64)
    if depth.shape != (cam.height, cam.width) or alpha.shape != depth.shape:
        raise ValueError(f"{name}: depth {depth.shape} and alpha {alpha.shape} must both be "
                         f"[{cam.height}, {cam.width}] (the camera's size)")
    if not (np.all(np.isfinite(depth)) and np.all(np.isfinite(alpha))):
        raise ValueError(f"{name}: depth and alpha must be finite")
    return depth, alpha


def _directional(depth_a, fg_a, cam_a: Camera, depth_b, fg_b, cam_b: Camera, occlusion_tol: float):
    """Absolute depth errors [M] (metres) of A's foreground seen from B, and A's foreground count."""
    n_fg = int(fg_a.sum())
    if n_fg == 0:
        return np.zeros(0), 0
    uv, z = cam_b.project(_unproject(cam_a, depth_a, fg_a))
    h, w = depth_b.shape
    x0, y0 = np.floor(uv[:, 0]), np.floor(uv[:, 1])
    ok = (z > 0) & (x0 >= 0) & (y0 >= 0) & (x0 + 1 <= w - 1) & (y0 + 1 <= h - 1)
    x0, y0, z, uv = x0[ok].astype(int), y0[ok].astype(int), z[ok], uv[ok]
    # all four bilinear neighbours must be B foreground: no blending with the background's depth 0
    ok = fg_b[y0, x0] & fg_b[y0, x0 + 1] & fg_b[y0 + 1, x0] & fg_b[y0 + 1, x0 + 1]
    x0, y0, z, uv = x0[ok], y0[ok], z[ok], uv[ok]
    fx, fy = uv[:, 0] - x0, uv[:, 1] - y0
    zb = ((1 - fx) * (1 - fy) * depth_b[y0, x0] + fx * (1 - fy) * depth_b[y0, x0 + 1]
          + (1 - fx) * fy * depth_b[y0 + 1, x0] + fx * fy * depth_b[y0 + 1, x0 + 1])
    visible = z <= zb + occlusion_tol  # farther than B's surface: hidden in B, not an error
    return np.abs(z[visible] - zb[visible]), n_fg


def depth_reprojection_error(depth_a, alpha_a, cam_a: Camera, depth_b, alpha_b, cam_b: Camera,
                             alpha_threshold: float = 0.5, occlusion_tol: float = 0.01) -> dict:
    """Depth consistency of two views (see the module docstring).

    depth_*: [H,W] expected z-depth in metres (0 = empty); alpha_*: [H,W] in [0,1]; cameras of the
    same size as the maps. Returns mean_abs_m (metres; NaN when no pixel could be compared),
    valid_fraction (compared pixels / foreground pixels of both views), and per-direction details.
    """
    depth_a, alpha_a = _check_view(depth_a, alpha_a, cam_a, "view A")
    depth_b, alpha_b = _check_view(depth_b, alpha_b, cam_b, "view B")
    fg_a = (alpha_a > alpha_threshold) & (depth_a > 0)
    fg_b = (alpha_b > alpha_threshold) & (depth_b > 0)
    err_ab, n_a = _directional(depth_a, fg_a, cam_a, depth_b, fg_b, cam_b, occlusion_tol)
    err_ba, n_b = _directional(depth_b, fg_b, cam_b, depth_a, fg_a, cam_a, occlusion_tol)
    means = [float(e.mean()) for e in (err_ab, err_ba) if e.size]
    return {
        "mean_abs_m": float(np.mean(means)) if means else float("nan"),
        "valid_fraction": (err_ab.size + err_ba.size) / (n_a + n_b) if n_a + n_b else 0.0,
        "a_to_b_mean_abs_m": float(err_ab.mean()) if err_ab.size else float("nan"),
        "b_to_a_mean_abs_m": float(err_ba.mean()) if err_ba.size else float("nan"),
        "n_compared": int(err_ab.size + err_ba.size),
        "n_foreground": int(n_a + n_b),
    }


def sweep_depth_reprojection_error(depths, alphas, cameras, wrap: bool = False, **kw) -> dict:
    """Depth reprojection error averaged over neighbouring pairs (i, i+1) of a view sweep; with wrap,
    the last view pairs with the first too (a full turn)."""
    n = len(cameras)
    pairs = [depth_reprojection_error(depths[i], alphas[i], cameras[i], depths[(i + 1) % n], alphas[(i + 1) % n],
                                      cameras[(i + 1) % n], **kw) for i in range(n if wrap and n > 2 else n - 1)]
    vals = [p["mean_abs_m"] for p in pairs if np.isfinite(p["mean_abs_m"])]
    return {"mean_abs_m": float(np.mean(vals)) if vals else float("nan"),
            "valid_fraction": float(np.mean([p["valid_fraction"] for p in pairs])) if pairs else 0.0,
            "pairs": pairs}


# ------------------------------------------------------------------------------ identity over yaw

def identity_consistency(model, reference, views, yaws=None) -> dict:
    """Cosine similarity between the identity embedding of `reference` (e.g. the frontal render or
    the input photo, RGB [H,W,3]) and each view of a yaw sweep. Views without a detected face are
    reported as None and counted in face_detect_fail_rate, not dropped."""
    from evaluation.identity import cosine
    views = list(views)
    if not model.available:
        return {"id": model.id, "available": False, "reason": model.reason, "mean": None, "values": [],
                "yaws": list(yaws) if yaws is not None else None, "face_detect_fail_rate": None}
    ref = model.embed(reference)
    if ref is None:
        raise ValueError("identity consistency: no face found in the reference image")
    values = []
    for v in views:
        e = model.embed(v)
        values.append(None if e is None else cosine(ref, e))
    ok = [x for x in values if x is not None]
    return {"id": model.id, "available": True, "reason": "", "mean": float(np.mean(ok)) if ok else None,
            "values": values, "yaws": list(yaws) if yaws is not None else None,
            "face_detect_fail_rate": (len(values) - len(ok)) / len(values) if values else None}


# --------------------------------------------------------------------------------------------- AKD

def akd(landmarks_pred, landmarks_gt) -> float:
    """Average keypoint distance: mean Euclidean distance (pixels) between corresponding 2D landmarks
    [N,2] (extra columns such as mediapipe's z are ignored)."""
    p = np.asarray(landmarks_pred, dtype=np.float64)
    g = np.asarray(landmarks_gt, dtype=np.float64)
    if p.ndim != 2 or p.shape != g.shape or p.shape[1] < 2 or p.shape[0] == 0:
        raise ValueError(f"landmarks must be matching [N, 2] arrays, got {p.shape} and {g.shape}")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(g))):
        raise ValueError("landmarks must be finite")
    return float(np.linalg.norm(p[:, :2] - g[:, :2], axis=1).mean())


def akd_images(pred_image, target_image) -> float | None:
    """AKD (pixels) between the largest face's 478 mediapipe landmarks in two RGB images of the same
    size (uint8, or float in [0,1]); None when a face is missing in either (count it as a failure)."""
    from evaluation.images import as_uint8
    from model.head.landmarks import detect_all
    p, t = as_uint8(pred_image), as_uint8(target_image)
    if p.shape != t.shape:
        raise ValueError(f"AKD needs images of the same size, got {p.shape} and {t.shape}")
    fp = detect_all(p)
    ft = detect_all(t) if fp else []
    if not fp or not ft:
        return None
    return akd(fp[0].xy, ft[0].xy)
