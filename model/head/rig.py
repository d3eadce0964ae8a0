"""Expression and head rig on a fitted head, and retargeting from another frame's landmarks.

Controls (ARKit blendshape names where one exists; `CONTROLS` holds the documented ranges):
expressions are linear blendshapes built per subject from its fitted identity (so they follow the
subject's own lid and lip positions), eye gaze rotates the eyeballs, head controls rotate the head
about the neck pivot with weights that fade down the neck (the neck cap stays put).

- jawOpen: lower face, lower lip, lower teeth and tongue rotate about the jaw hinge by up to
  JAW_MAX rad; the lips part and the mouth cavity shows.
- eyeBlinkLeft/Right: the upper lid turns about the eyeball centre down onto the lower lid (the
  lid skin keeps its distance from the eyeball, so it stays in front of it). eyeWide* is the
  opposite (the upper lid lifts).
- mouthSmile*/mouthFrown*: mouth corners up-and-back / down; mouthPucker: lips forward and
  narrower; mouthFunnel: lips forward and slightly apart.
- browInnerUp, browOuterUp*, browDown*: brow skin up / down (above the upper lid only).
- eyeYaw, eyePitch (radians): gaze of both eyes; > 0 looks towards +x (subject's left) / down.
- headYaw, headPitch, headRoll (radians): same convention as model.head.fitting's pose.

"Left/Right" are the subject's (Left is +x). `deform` returns vertices in the fitted head's world
(canonical head frame), so `fitted.camera` shows the result as in the photo.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

import numpy as np
from scipy.spatial.transform import Rotation

from model.head import landmarks as LM
from model.head.fitting import R_FRONT, FittedHead, euler_from_rotation, photo_camera_K, rotation_from_euler, solve_pnp
from model.head.landmarks import Landmarks

JAW_MAX = 0.32  # radians of jaw rotation at jawOpen = 1
JAW_PIVOT = np.array([0.0, -0.022, -0.008])  # metres, template frame: the temporomandibular hinge axis (x)
NECK_FADE = (-0.19, -0.10)  # y (metres, template frame): head rotation weight 0 below, 1 above


@dataclass(frozen=True)
class ControlSpec:
    name: str
    min: float
    max: float
    neutral: float
    description: str


def _c(name, lo, hi, desc):
    return ControlSpec(name, lo, hi, 0.0, desc)


_EXPR = [
    _c("jawOpen", 0, 1, "open the jaw (1 = %.2f rad), lips part" % JAW_MAX),
    _c("mouthSmileLeft", 0, 1, "left mouth corner up and back (11 mm at 1)"),
    _c("mouthSmileRight", 0, 1, "right mouth corner up and back (11 mm at 1)"),
    _c("mouthFrownLeft", 0, 1, "left mouth corner down (7 mm at 1)"),
    _c("mouthFrownRight", 0, 1, "right mouth corner down (7 mm at 1)"),
    _c("mouthPucker", 0, 1, "lips forward and narrower"),
    _c("mouthFunnel", 0, 1, "lips forward and slightly apart"),
    _c("eyeBlinkLeft", 0, 1, "close the left upper lid onto the lower lid"),
    _c("eyeBlinkRight", 0, 1, "close the right upper lid onto the lower lid"),
    _c("eyeWideLeft", 0, 1, "raise the left upper lid"),
    _c("eyeWideRight", 0, 1, "raise the right upper lid"),
    _c("browInnerUp", 0, 1, "inner brows up (9 mm at 1)"),
    _c("browOuterUpLeft", 0, 1, "left outer brow up (8 mm at 1)"),
    _c("browOuterUpRight", 0, 1, "right outer brow up (8 mm at 1)"),
    _c("browDownLeft", 0, 1, "left brow down and in (6 mm at 1)"),
    _c("browDownRight", 0, 1, "right brow down and in (6 mm at 1)"),
]
_ANGLES = [
    _c("eyeYaw", -0.5, 0.5, "gaze of both eyes, radians; > 0 towards +x (subject's left)"),
    _c("eyePitch", -0.4, 0.4, "gaze of both eyes, radians; > 0 down"),
    _c("headYaw", -1.2, 1.2, "head turn about the neck, radians; > 0 face towards +x"),
    _c("headPitch", -0.7, 0.7, "head nod, radians; > 0 face down"),
    _c("headRoll", -0.7, 0.7, "head tilt, radians; > 0 lifts the subject's left side"),
]
CONTROLS: dict[str, ControlSpec] = {c.name: c for c in _EXPR + _ANGLES}
EXPRESSIONS = tuple(c.name for c in _EXPR)


# ARKit's 52 blendshapes (Apple's ARFaceAnchor names, the ones LAM and chat-avatar stacks send). The 16
# the rig models are CONTROLS of the same name; the others map onto the nearest controls with the
# weights below (eye look directions -> gaze angles in radians at 1), or are ignored (IGNORED_ARKIT:
# the rig has no cheek, nose, tongue or sideways jaw motion). The one place this mapping is held: the
# live viewer receives it in its pack.
ARKIT_NAMES = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
    "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft",
    "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft",
    "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft",
    "jawOpen", "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft",
    "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight", "tongueOut")
ARKIT_MAP: dict[str, dict[str, float]] = {
    # both eyes share one gaze: each eye's look contributes half (ARKit's 1 is about 30 degrees)
    "eyeLookOutLeft": {"eyeYaw": 0.25}, "eyeLookInLeft": {"eyeYaw": -0.25},
    "eyeLookInRight": {"eyeYaw": 0.25}, "eyeLookOutRight": {"eyeYaw": -0.25},
    "eyeLookDownLeft": {"eyePitch": 0.2}, "eyeLookDownRight": {"eyePitch": 0.2},
    "eyeLookUpLeft": {"eyePitch": -0.2}, "eyeLookUpRight": {"eyePitch": -0.2},
    "eyeSquintLeft": {"eyeBlinkLeft": 0.25}, "eyeSquintRight": {"eyeBlinkRight": 0.25},
    "mouthLowerDownLeft": {"jawOpen": 0.15}, "mouthLowerDownRight": {"jawOpen": 0.15},  # lower lip down
    "mouthClose": {"jawOpen": -0.5},  # lips held shut over an open jaw
    "mouthStretchLeft": {"mouthSmileLeft": 0.4}, "mouthStretchRight": {"mouthSmileRight": 0.4},
    "mouthDimpleLeft": {"mouthSmileLeft": 0.3}, "mouthDimpleRight": {"mouthSmileRight": 0.3},
    "mouthPressLeft": {"mouthFrownLeft": 0.2}, "mouthPressRight": {"mouthFrownRight": 0.2},
    "mouthRollLower": {"mouthPucker": 0.2}, "mouthRollUpper": {"mouthPucker": 0.2},
    "mouthShrugLower": {"mouthFrownLeft": 0.2, "mouthFrownRight": 0.2},
    "mouthUpperUpLeft": {"mouthSmileLeft": 0.2}, "mouthUpperUpRight": {"mouthSmileRight": 0.2},
    "cheekSquintLeft": {"mouthSmileLeft": 0.2}, "cheekSquintRight": {"mouthSmileRight": 0.2},
}
IGNORED_ARKIT = tuple(n for n in ARKIT_NAMES if n not in CONTROLS and n not in ARKIT_MAP)


def from_arkit(weights: Mapping[str, float]) -> dict[str, float]:
    """Controls named in ARKit's or this rig's vocabulary -> this rig's controls (not yet clipped).
    ARKit-only names are folded in through ARKIT_MAP; IGNORED_ARKIT names are dropped; any other
    unknown name is an error (a typo should not pass silently)."""
    out: dict[str, float] = {}
    for k, v in weights.items():
        v = float(v)
        if not np.isfinite(v):
            raise ValueError(f"rig control {k!r} must be finite, got {v}")
        if k in CONTROLS:
            out[k] = out.get(k, 0.0) + v
        elif k in ARKIT_MAP:
            for name, w in ARKIT_MAP[k].items():
                out[name] = out.get(name, 0.0) + w * v
        elif k not in IGNORED_ARKIT:
            raise ValueError(f"unknown rig control {k!r}; known controls: {', '.join(CONTROLS)} "
                             f"(and ARKit's 52 blendshape names)")
    return out


def read_sequence(data: Mapping) -> tuple[list[float], list[dict[str, float]]]:
    """A control sequence -> (times [N] seconds, controls [N] validated dicts).

    The format is LAM's recorded-performance JSON, which this project also writes:
    {"names": [K control names, rig or ARKit], "frames": [{"weights": [K floats], "time": s}, ...],
     "head_pose": optional [N][3] rotation vector (x, y, z) radians -> headPitch, headYaw, headRoll}.
    Malformed input -> ValueError naming what is wrong."""
    if not isinstance(data, Mapping) or not isinstance(data.get("names"), list) or not isinstance(
            data.get("frames"), list):
        raise ValueError("a control sequence is a JSON object with a 'names' list and a 'frames' list")
    names, frames = data["names"], data["frames"]
    if not frames:
        raise ValueError("the control sequence has no frames")
    pose = data.get("head_pose") or []
    if pose and len(pose) != len(frames):
        raise ValueError(f"head_pose has {len(pose)} entries for {len(frames)} frames")
    times, out = [], []
    for i, f in enumerate(frames):
        w = f.get("weights") if isinstance(f, Mapping) else None
        if not isinstance(w, list) or len(w) != len(names):
            raise ValueError(f"frame {i}: 'weights' must be a list of {len(names)} numbers")
        c = dict(zip(names, w))
        if pose:
            c.update(headPitch=pose[i][0], headYaw=pose[i][1], headRoll=pose[i][2])
        times.append(float(f.get("time", i / 30.0)))
        out.append(validate(c))
    if any(b < a for a, b in zip(times, times[1:])):
        raise ValueError("frame times must not decrease")
    return times, out


def sequence_dict(times: list[float], controls: list[Mapping[str, float]]) -> dict:
    """Controls per frame -> the sequence JSON that read_sequence reads (LAM's format; every control
    as a column, head pose in head_pose)."""
    names = [n for n in CONTROLS if not n.startswith("head")]
    return {"names": names,
            "frames": [{"weights": [float(c.get(n, CONTROLS[n].neutral)) for n in names], "time": float(t)}
                       for t, c in zip(times, controls)],
            "head_pose": [[float(c.get("headPitch", 0.0)), float(c.get("headYaw", 0.0)), float(c.get("headRoll", 0.0))]
                          for c in controls]}


def validate(controls: Mapping[str, float] | None) -> dict[str, float]:
    """Names checked (rig or ARKit names, see from_arkit; unknown -> ValueError listing the known
    ones), values clipped to their ranges."""
    return {k: float(np.clip(v, CONTROLS[k].min, CONTROLS[k].max)) for k, v in from_arkit(controls or {}).items()}


def _smooth(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _yz_angle(v):
    """Angle of vectors [...,3] about +x such that R_x(a) @ (0, 0, 1) has angle a."""
    return np.arctan2(-v[..., 1], v[..., 2])


@dataclass(frozen=True)
class _Rig:
    deltas: np.ndarray  # [C, V*3] per-expression displacement at control = 1
    lm_deltas: np.ndarray  # [C, 478, 3]
    neck_w: np.ndarray  # [V] head-rotation weight
    eyeballs: tuple  # (right ids, left ids)
    iris: tuple  # (right landmark ids, left landmark ids)
    rigid: np.ndarray  # landmarks unaffected by expressions (for PnP)
    lm0: np.ndarray  # [478,3] fitted identity landmarks
    lm_pairs: tuple = ()  # (i, j, [478,3]): landmarks also move by x_i * x_j * delta (tracker-space terms)


def _build(fitted: FittedHead) -> _Rig:
    t = fitted.template
    p = t.parts
    X = fitted.vertices
    T0 = t.vertices  # template neutral: weights are defined there (subject independent)
    s = fitted.scale
    V = len(X)
    n_grid = p["n_grid"]
    skin = np.zeros(V, bool)
    skin[:n_grid] = True
    mouth_bag = np.concatenate([p["mouth_bag"].ravel(), [p["mouth_pole"]]])
    soft = skin.copy()
    soft[mouth_bag] = True
    deltas = {}

    # jaw: side-aware weight (lower lip and below = 1, upper lip = 0), fading towards the ears and neck
    row, side, col = (np.full(V, -10**6), np.full(V, -1), np.full(V, -10**6))
    row[:n_grid], side[:n_grid], col[:n_grid] = p["grid_row"], p["side"], p["grid_col"]
    m = p["mouth"]
    corner = T0[p["mouth_loop"][0]]  # right (x < 0) corner
    xc, y_m = abs(corner[0]), corner[1]
    x, y, z = np.abs(T0[:, 0]), T0[:, 1], T0[:, 2]
    lower = np.zeros(V, bool)
    lower[:n_grid] = (row[:n_grid] > m["row"]) | ((row[:n_grid] == m["row"]) & (side[:n_grid] == 1))
    y_line = y_m + np.maximum(x - xc, 0) * 0.9  # jaw line rises from the mouth corners to the hinge
    w_outer = _smooth((y_line - y) / 0.014 + 0.5)
    blend = _smooth((x - 0.6 * xc) / (0.6 * xc))
    w = (1 - blend) * lower + blend * w_outer
    w *= _smooth((z + 0.015) / 0.03) * _smooth((y + 0.175) / 0.05)
    w[~soft] = 0.0
    # the mouth cavity: its lower half (lower teeth, tongue, floor) turns with the jaw, the upper stays
    w[mouth_bag] = np.append(np.tile(p["mouth_bag_lower"], len(p["mouth_bag"])), 0.5)
    c = JAW_PIVOT * s
    deltas["jawOpen"] = w[:, None] * ((X - c) @ rotation_from_euler(0.0, JAW_MAX, 0.0).T + c - X)

    # lids: turn about the eyeball centre by the angle between upper and lower lid, per column
    for name, k, up, lo, bag in (("Right", 0, p["eye_up_r"], p["eye_lo_r"], p["eye_bag_r"]),
                                 ("Left", 1, p["eye_up_l"], p["eye_lo_l"], p["eye_bag_l"])):
        ce = fitted.eye_centres[k]
        phi = (_yz_angle(X[lo] - ce) - _yz_angle(X[up] - ce)) * 0.97
        cols = col[up]
        e = p["eye_r"] if k == 0 else p["eye_l"]
        band_rows = 4
        ang = np.zeros(V)
        sel = np.nonzero(skin & (row <= e["row"]) & (row > e["row"] - band_rows) & (side == 0)
                         & (col > e["c0"]) & (col < e["c1"]))[0]
        falloff = (1 - (e["row"] - row[sel]) / band_rows) ** 2
        ang[sel] = np.interp(col[sel], cols, phi) * falloff
        ring_src = p["eye_loop_r"] if k == 0 else p["eye_loop_l"]
        ang[bag] = ang[ring_src][None, :].repeat(len(bag), 0)  # sockets follow their rim
        moved = np.nonzero(ang)[0]
        d = np.zeros_like(X)
        d[moved] = Rotation.from_rotvec(np.outer(ang[moved], [1.0, 0, 0])).apply(X[moved] - ce) + ce - X[moved]
        # the lid margin itself lands exactly on the lower lid (2% of the opening left)
        d[up] = 0.98 * (X[lo] - X[up])
        deltas[f"eyeBlink{name}"] = d
        deltas[f"eyeWide{name}"] = -0.35 * d

    # mouth corners, lips, brows: smooth bumps (weights on the template, displacements scaled)
    lm_t = t.landmarks(T0)

    def bump(centre, sx, sy, sz=None, mask=None):
        q = (T0 - centre) / np.array([sx, sy, sz or sx])
        g = np.exp(-0.5 * (q ** 2).sum(1))
        g[~soft] = 0.0
        return g if mask is None else g * mask

    for name, sign, cid in (("Left", 1, p["mouth_loop"][len(p["mouth_up"]) + 1]), ("Right", -1, p["mouth_loop"][0])):
        g = bump(T0[cid], 0.014, 0.014)
        deltas[f"mouthSmile{name}"] = g[:, None] * (np.array([0.4 * sign, 0.8, -0.45]) * 0.011 * s)
        deltas[f"mouthFrown{name}"] = g[:, None] * (np.array([0.1 * sign, -1.0, 0.0]) * 0.007 * s)
    mc = T0[p["mouth_loop"]].mean(0)
    g = bump(mc, 0.024, 0.016)
    dx = -(T0[:, 0] - mc[0])
    up_side = np.where(lower, -1.0, 1.0)
    deltas["mouthPucker"] = g[:, None] * np.stack([0.35 * dx, np.zeros(V), np.full(V, 0.009)], 1) * s
    deltas["mouthFunnel"] = g[:, None] * np.stack([0.2 * dx, 0.004 * up_side, np.full(V, 0.007)], 1) * s
    above_lid = _smooth((T0[:, 1] - 0.004) / 0.016)
    inner = 0.5 * (lm_t[LM.RIGHT_BROW_UPPER[-1]] + lm_t[LM.LEFT_BROW_UPPER[-1]])
    g = bump(inner, 0.022, 0.016, mask=above_lid)
    deltas["browInnerUp"] = g[:, None] * (np.array([0.0, 0.009, 0.001]) * s)
    for name, sign, up_ids, lo_ids in (("Left", 1, LM.LEFT_BROW_UPPER, LM.LEFT_BROW_LOWER),
                                       ("Right", -1, LM.RIGHT_BROW_UPPER, LM.RIGHT_BROW_LOWER)):
        brow = lm_t[list(up_ids + lo_ids)].mean(0)
        g = bump(brow, 0.024, 0.013, mask=above_lid)
        deltas[f"browDown{name}"] = g[:, None] * (np.array([-0.3 * sign, -1.0, 0.0]) * 0.006 * s)
        g = bump(lm_t[up_ids[0]], 0.016, 0.014, mask=above_lid)
        deltas[f"browOuterUp{name}"] = g[:, None] * (np.array([0.0, 1.0, 0.0]) * 0.008 * s)

    D = np.stack([deltas[n] for n in EXPRESSIONS])  # [C,V,3]
    lm_d = np.stack([t.landmarks(d) for d in D])
    neck_w = _smooth((T0[:, 1] - NECK_FADE[0]) / (NECK_FADE[1] - NECK_FADE[0]))
    motion = np.linalg.norm(lm_d, axis=2).max(0)
    rigid = np.nonzero((motion < 5e-4) & (np.arange(478) < 468))[0]
    return _Rig(D.reshape(len(D), -1), lm_d, neck_w, (p["eyeball_r"], p["eyeball_l"]),
                (np.array(LM.RIGHT_IRIS), np.array(LM.LEFT_IRIS)), rigid, t.landmarks(X))


def rig_of(fitted: FittedHead) -> _Rig:
    r = fitted.cache.get("rig")
    if r is None or r[0] is not fitted.vertices:
        r = (fitted.vertices, _build(fitted))
        fitted.cache["rig"] = r
    return r[1]


def deform(fitted: FittedHead, controls: Mapping[str, float] | None = None) -> np.ndarray:
    """Vertices [V,3] (metres, canonical head frame) of `fitted` under `controls` (see CONTROLS)."""
    c = validate(controls)
    rig = rig_of(fitted)
    X = fitted.vertices
    w = np.array([c.get(n, 0.0) for n in EXPRESSIONS])
    nz = np.nonzero(w)[0]
    out = X + (w[nz] @ rig.deltas[nz]).reshape(X.shape) if len(nz) else X.copy()
    ey, ep = c.get("eyeYaw", 0.0), c.get("eyePitch", 0.0)
    if ey or ep:
        Rg = rotation_from_euler(ey, ep, 0.0)
        for k, ids in enumerate(rig.eyeballs):
            ce = fitted.eye_centres[k]
            out[ids] = (out[ids] - ce) @ Rg.T + ce
    hy, hp, hr = c.get("headYaw", 0.0), c.get("headPitch", 0.0), c.get("headRoll", 0.0)
    if hy or hp or hr:
        out = _rotate_head(out, rotation_from_euler(hy, hp, hr), fitted.neck_pivot, rig.neck_w)
    return out


def _rotate_head(X, R, pivot, w):
    return X + w[:, None] * ((X - pivot) @ R.T + pivot - X)


# ---------------------------------------------------------------- retargeting
# What the expression solve reads: the landmarks on visible features (lips, eyelids, brows, irises) and
# those expressions do not move (pose). mediapipe regresses its other points (cheeks, chin, outline) from
# the features and the face outline, with little image evidence on smooth skin, and they under-move: on
# renders of astronaut's avatar under known jawOpen its chin moved 40% of the rig's motion, so a lip
# opening read as mouthFunnel + mouthFrown instead of jawOpen. Measured by benchmarks.mirror (rendered
# frames of known controls through the mirror's path, rest face taken), all landmarks -> these: jawOpen
# MAE 0.068 -> 0.028, mouthSmile MAE 0.18/0.15 -> 0.16/0.09, correlation with the ARKit performance's
# jawOpen 0.88 -> 0.96; its smile curve, which the cheeks' points followed, 0.68 -> 0.46.
# The inner lip contour is left out too: once the lips part, the tracker follows the edge of the dark
# cavity rather than the lip vertices (with jawOpen 0.3 + smile 0.5 the inner upper lip was seen to stay
# put where the rig lifts it 2 px), so an open mouth read as "no smile". Without it, ARKit correlation
# of the smile curve 0.51 -> 0.65 and of jawOpen 0.967 -> 0.980, the sweep's MAE unchanged.
FEATURE_LANDMARKS = np.array(sorted(set(
    LM.LIPS_OUTER_UPPER + LM.LIPS_OUTER_LOWER
    + LM.RIGHT_EYE_UPPER + LM.RIGHT_EYE_LOWER + LM.LEFT_EYE_UPPER + LM.LEFT_EYE_LOWER
    + LM.RIGHT_BROW_UPPER + LM.RIGHT_BROW_LOWER + LM.LEFT_BROW_UPPER + LM.LEFT_BROW_LOWER
    + LM.RIGHT_IRIS + LM.LEFT_IRIS)))
# pairs of controls that pull one feature opposite ways; the solve never reads both of a pair at once (_solve)
ANTAGONISTS = (("mouthSmileLeft", "mouthFrownLeft"), ("mouthSmileRight", "mouthFrownRight"),
               ("eyeBlinkLeft", "eyeWideLeft"), ("eyeBlinkRight", "eyeWideRight"),
               ("browDownLeft", "browOuterUpLeft"), ("browDownRight", "browOuterUpRight"))


def _expression_landmarks(rig: _Rig, fitted: FittedHead, expr: np.ndarray, gaze: np.ndarray,
                          base: np.ndarray) -> np.ndarray:
    L = base + np.tensordot(expr, rig.lm_deltas, axes=1)
    for i, j, d in rig.lm_pairs:
        L = L + expr[i] * expr[j] * d
    if gaze[0] or gaze[1]:
        Rg = rotation_from_euler(gaze[0], gaze[1], 0.0)
        for k, ids in enumerate(rig.iris):
            ce = fitted.eye_centres[k]
            L[ids] = (L[ids] - ce) @ Rg.T + ce
    return L


def _solve(landmarks: Landmarks, fitted: FittedHead, neutral: np.ndarray | None = None, reg: float = 1e-3,
           iters: int = 12):
    """Frame landmarks -> (camera R [3,3], t [3], expression weights [C], gaze (yaw, pitch)).

    Bounded Gauss-Newton on the 2D reprojection of the feature landmarks and of those expressions do
    not move (normalised by the inter-ocular distance) over camera rotation/translation, expression
    weights and gaze, with a small ridge on the controls; starts from PnP on the latter.
    neutral: [478,3] offsets from neutral_offsets() (the tracked face at rest), or None (the fitted head's)."""
    from scipy.linalg import solve_triangular
    from scipy.optimize import lsq_linear
    rig = rig_of(fitted)
    w, h = landmarks.image_size
    K = photo_camera_K(w, h)
    obs = landmarks.xy
    base = rig.lm0 if neutral is None else rig.lm0 + neutral
    R, tv = solve_pnp(base[rig.rigid], obs[rig.rigid], K)
    iod = max(LM.inter_ocular(landmarks.points), 1.0)
    C = len(EXPRESSIONS)
    names = EXPRESSIONS + ("eyeYaw", "eyePitch")
    lo = np.array([CONTROLS[n].min for n in names])
    hi = np.array([CONTROLS[n].max for n in names])
    x = np.zeros(C + 2)
    fx, fy = K[0, 0], K[1, 1]

    use = np.union1d(FEATURE_LANDMARKS, rig.rigid)  # see FEATURE_LANDMARKS
    obs, deltas = obs[use], rig.lm_deltas[:, use]

    def landmarks_at(x):
        return _expression_landmarks(rig, fitted, x[:C], x[C:], base)[use]

    # antagonist controls (a corner up vs down, a lid closed vs wide, a brow down vs up) never act together:
    # left free, a pair co-activates to absorb landmark noise and small pose errors (smile + frown move a
    # mouth corner back with no lift), reading expressions that are not there (smile MAE on
    # benchmarks.mirror's sweep 0.13/0.11 -> 0.08/0.08). When both of a pair are on, the weaker is held at
    # 0 from then on.
    pairs = [(names.index(a), names.index(b)) for a, b in ANTAGONISTS]
    free = np.ones(6 + C + 2, bool)  # camera rotation, translation, controls
    for _ in range(iters):
        L = landmarks_at(x)
        pc = L @ R.T + tv
        zz = pc[:, 2:3]
        uv = np.stack([fx * pc[:, 0] / pc[:, 2] + K[0, 2], fy * pc[:, 1] / pc[:, 2] + K[1, 2]], 1)
        r = ((uv - obs) / iod).ravel()
        # d uv / d pc  [N,2,3]
        Jp = np.zeros((len(L), 2, 3))
        Jp[:, 0, 0] = fx / zz[:, 0]
        Jp[:, 0, 2] = -fx * pc[:, 0] / zz[:, 0] ** 2
        Jp[:, 1, 1] = fy / zz[:, 0]
        Jp[:, 1, 2] = -fy * pc[:, 1] / zz[:, 0] ** 2
        Jp /= iod
        rp = pc - tv  # rotated points: d(R p)/d omega = -[Rp]x for R <- exp(omega) R
        skew = np.zeros((len(L), 3, 3))
        skew[:, 0, 1], skew[:, 0, 2], skew[:, 1, 2] = -rp[:, 2], rp[:, 1], -rp[:, 0]
        skew[:, 1, 0], skew[:, 2, 0], skew[:, 2, 1] = rp[:, 2], -rp[:, 1], rp[:, 0]
        J_rot = np.einsum("nij,njk->nik", Jp, -skew).reshape(-1, 3)
        J_t = Jp.reshape(-1, 3)
        eff = deltas
        if rig.lm_pairs:
            eff = deltas.copy()
            for i, j, d in rig.lm_pairs:
                eff[i] += x[j] * d[use]
                eff[j] += x[i] * d[use]
        J_e = np.einsum("nij,cnj->nic", Jp, eff @ R.T).reshape(-1, C)
        eps = 1e-4
        J_g = []
        for k in range(2):
            xe = x.copy()
            xe[C + k] += eps
            J_g.append(np.einsum("nij,nj->ni", Jp, (landmarks_at(xe) - L) @ R.T / eps).ravel())
        J = np.concatenate([J_rot, J_t, J_e, np.stack(J_g, 1)], 1)
        J = np.concatenate([J, np.concatenate([np.zeros((C + 2, 6)), np.sqrt(reg) * np.eye(C + 2)], 1)])
        res = np.concatenate([r, np.sqrt(reg) * x])
        blo = np.concatenate([np.full(6, -np.inf), lo - x])
        bhi = np.concatenate([np.full(6, np.inf), hi - x])
        # the same bounded least squares on a 24x24 triangular factor: bvls' inner lstsq on the tall
        # [2 x landmarks + 18, 24] system cost ~90% of a retarget. The factor is Cholesky's of J'J (J'J = U'U, so
        # |J s + res|^2 = |U s + U^-T J' res|^2 + const), ~50x cheaper than a QR that forms Q; the ridge
        # rows keep J'J well conditioned.
        J, blo, bhi = J[:, free], blo[free], bhi[free]  # held controls keep their value (0)
        U = np.linalg.cholesky(J.T @ J).T
        step = np.zeros(len(free))
        step[free] = lsq_linear(U, -solve_triangular(U.T, J.T @ res, lower=True), bounds=(blo, bhi),
                                method="bvls").x
        R = Rotation.from_rotvec(step[:3]).as_matrix() @ R
        tv = tv + step[3:6]
        x = np.clip(x + step[6:], lo, hi)
        clash = [(i, j) for i, j in pairs if x[i] > 1e-3 and x[j] > 1e-3]
        for i, j in clash:
            k = i if x[i] < x[j] else j
            x[k], free[6 + k] = 0.0, False
        if np.abs(step).max() < 1e-7 and not clash:
            break
    return R, tv, x[:C], x[C:]


def estimate_pose(landmarks: Landmarks, fitted: FittedHead) -> np.ndarray:
    """Absolute head pose (yaw, pitch, roll) radians of another frame, comparable to fitted.pose."""
    R, _, _, _ = _solve(landmarks, fitted)
    return euler_from_rotation(R_FRONT.T @ R)


def _on_rays(xy: np.ndarray, points: np.ndarray, K: np.ndarray, R: np.ndarray, tv: np.ndarray) -> np.ndarray:
    """[N,3] head frame: the points seen at pixels xy [N,2] by the camera (K; head -> camera R, tv), each on
    its viewing ray at the camera depth of the matching head-frame point of `points` [N,3]."""
    z = (points @ R.T + tv)[:, 2]
    cam = np.stack([(xy[:, 0] - K[0, 2]) * z / K[0, 0], (xy[:, 1] - K[1, 2]) * z / K[1, 1], z], 1)
    return (cam - tv) @ R


def neutral_offsets(landmarks: Landmarks, fitted: FittedHead) -> np.ndarray:
    """[478,3] offsets (metres, the fitted head's frame) that take the fitted head's landmarks onto a
    frame of the tracked face at rest, at that frame's head pose: pass them to retarget() so that the
    tracked person's own face shape and resting mouth/eyes/brows are not read as expression (a mirror
    visitor is not the person of the photo). Pose: PnP on the landmarks expressions do not move; each
    landmark keeps its depth along its viewing ray."""
    rig = rig_of(fitted)
    w, h = landmarks.image_size
    K = photo_camera_K(w, h)
    R, tv = solve_pnp(rig.lm0[rig.rigid], landmarks.xy[rig.rigid], K)
    return _on_rays(landmarks.xy, rig.lm0, K, R, tv) - rig.lm0


# The poses calibrate() reads: the jaw alone, and the jaw with both corners smiling. The tracker follows the
# jaw less than linearly: calibrated at jawOpen 0.4, our own render at jawOpen 1 read 0.75 and 0.5 read 0.45;
# at 0.7 they read 0.91 and 0.51 (astronaut; benchmarks.mirror jawOpen MAE 0.027 -> 0.017, the smiles' and
# the ARKit correlations unchanged).
CALIBRATION_POSES = {"jaw": {"jawOpen": 0.7},
                     "jaw_smile": {"jawOpen": 0.3, "mouthSmileLeft": 0.5, "mouthSmileRight": 0.5}}


def calibrate(fitted: FittedHead, seen: Mapping[str, Landmarks]) -> None:
    """Make the solve read the jaw, and the jaw with a smile, the way the face tracker sees them.

    seen: landmarks detected on renders of this head at its photo camera under the neutral face
    ("neutral") and each of CALIBRATION_POSES. The tracker does not follow the mesh's lip vertices once
    the lips part: it puts the mouth's corners where the lips meet and rounds the opening, so with the
    mesh's own motion an opening jaw read as a smile and pucker, and a smile with the mouth open as none
    (benchmarks.mirror: jawOpen 1 -> mouthSmile 0.59/0.51; jawOpen 0.3 + smile 0.5 -> smile 0.19/0.00).
    So the jaw's landmark motion becomes the one the tracker saw (in the image; depths stay the mesh's),
    and the jaw x smile product gets a term of its own: what the tracker saw of the two together beyond
    their sum, split between the two corners' smiles by side. Only the features the solve reads change
    (FEATURE_LANDMARKS); the mesh's deformation does not."""
    rig = rig_of(fitted)
    K = photo_camera_K(*seen["neutral"].image_size)
    R, tv = solve_pnp(rig.lm0[rig.rigid], seen["neutral"].xy[rig.rigid], K)
    E = {n: i for i, n in enumerate(EXPRESSIONS)}

    def at(name: str) -> np.ndarray:
        """[478,3] head frame: the points the tracker saw for a calibration pose, each on its viewing ray at
        the depth the mesh gives it in that pose (neutral_offsets' rule: the tracker reads no depth)."""
        x = np.zeros(len(EXPRESSIONS))
        for n, v in CALIBRATION_POSES.get(name, {}).items():
            x[E[n]] = v
        return _on_rays(seen[name].xy, rig.lm0 + np.tensordot(x, rig.lm_deltas, axes=1), K, R, tv)

    rest = at("neutral")
    feat = FEATURE_LANDMARKS
    jaw, sl, sr = E["jawOpen"], E["mouthSmileLeft"], E["mouthSmileRight"]
    deltas = rig.lm_deltas.copy()
    a = CALIBRATION_POSES["jaw"]["jawOpen"]
    deltas[jaw, feat] = ((at("jaw") - rest) / a)[feat]
    pose = CALIBRATION_POSES["jaw_smile"]
    a, b, c = pose["jawOpen"], pose["mouthSmileLeft"], pose["mouthSmileRight"]
    both = np.zeros_like(rest)
    both[feat] = (at("jaw_smile") - rest - a * deltas[jaw] - b * deltas[sl] - c * deltas[sr])[feat]
    left = np.clip(0.5 + rig.lm0[:, 0] / 0.004, 0.0, 1.0)[:, None]  # subject's left is +x; 4 mm midline blend
    pairs = ((jaw, sl, both * left / (a * b)), (jaw, sr, both * (1 - left) / (a * c)))
    fitted.cache["rig"] = (fitted.vertices, replace(rig, lm_deltas=deltas, lm_pairs=pairs))


def retarget(landmarks: Landmarks, fitted: FittedHead, neutral: np.ndarray | None = None) -> dict[str, float]:
    """Controls that make `fitted` (rendered with fitted.camera) show the frame's expression and head pose.

    Head controls are relative to the fitted photo's pose; expressions and gaze are absolute values
    on top of the fitted identity (which includes the photo's own expression and gaze), or, with
    `neutral` (neutral_offsets() of a frame of the same person at rest), relative to that rest face."""
    R, _, expr, gaze = _solve(landmarks, fitted, neutral)
    Q = fitted.camera.R.T @ R  # world rotation of the head that the fitted camera must see
    hy, hp, hr = euler_from_rotation(Q)
    out = {n: float(v) for n, v in zip(EXPRESSIONS, expr)}
    out.update(eyeYaw=float(gaze[0]), eyePitch=float(gaze[1]), headYaw=float(hy), headPitch=float(hp),
               headRoll=float(hr))
    return validate(out)
