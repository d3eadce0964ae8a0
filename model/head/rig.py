"""The ARKit-52 rig of a fitted head (ICT-FaceKit, model/head/ict_fit.py), and retargeting.

    from model.head import rig
    v = rig.deform(fit, {"jawOpen": 0.4, "mouthSmileLeft": 0.7, "eyeLookOutLeft": 0.5, "headYaw": 0.2})
    c = rig.retarget(detect_landmarks(frame), fit)    # another frame of the same person -> controls

Controls (CONTROLS, with their ranges) are ARKit's 52 blendshape names (Apple's ARFaceAnchor names, the ones
LAM and chat-avatar stacks send; Left/Right are the subject's, Left is +x, as everywhere in this project)
plus the head pose headYaw/headPitch/headRoll (radians, model.head.fitting's convention: > 0 turns the face
towards +x / down / lifts the subject's left side). The model's own shapes drive the avatar: ICT's 53 are
ARKit's set with `_L`/`_R`, and ARKIT_TO_ICT is the one table between the two vocabularies:
- xLeft -> x_L, xRight -> x_R, unsided names -> the same name;
- browInnerUp and cheekPuff -> both ICT halves at the same weight;
- tongueOut -> nothing: ICT has no tongue-out shape (its gums_tongue part never leaves the mouth). It is
  accepted and ignored (IGNORED_ARKIT) and has no slider.
ICT's `_L` is the subject's left: checked on the asset, eyeBlink_L moves vertices at mean x +32 mm,
mouthSmile_L at +25 mm; jawLeft and mouthLeft move the jaw / mouth towards +x, as ARKit's
(tests/test_rig.py asserts it).

The rest face is the photo's face: deform(fit, {}) is the fitted identity (+ the fit's landmark
corrective `offsets`) with the photo's fitted expression (fit.expression) and gaze (fit.gaze). Controls
add to it: the ICT weights deformed are the photo's plus the controls' (no clipping: weights add linearly,
as the model's), the gaze is the photo's plus the eyeLook* controls'. Why: the texture is projected from
the photo onto the photo's own face, so that face is what the input view must reproduce at rest, and
what a visitor sees first; a smiling photo gives a smiling avatar, jawOpen opens its jaw. ARKit's weights
are >= 0, so no control takes the photo's smile away (a neutralised rest would need the smile's texture
moved back, which a single photo does not show).
- gaze: ICT's eyeLook* shapes move only the lids; the eyeballs are turned about their centres
  (ict_fit.turn_eyes, from the model's rest direction) by the angles the same weights express, per eye:
  eyeLookIn/Out 1.0 -> 30 degrees yaw (towards the nose / away from it), eyeLookUp 1.0 -> 25 degrees up,
  eyeLookDown 1.0 -> 30 degrees down (EYE_LOOK_DEG). Why these: Apple does not publish the angle of
  weight 1; ARKit trackers reach 1.0 near the end of the comfortable gaze range rather than the
  mechanical limit (~45-50 degrees), which is ~30 degrees sideways and down and less upwards; ICT's own
  eyeLook* lid shapes are sculpted for about that range (eyeLookUp raises the upper lid 3.7 mm, about
  what a 25-degree upward gaze uncovers), and it keeps the eyes inside the range the fit reads from
  irises (fitting.MAX_GAZE = 0.6 rad = 34 degrees).
- head pose: the head rotates by rotation_from_euler(headYaw, headPitch, headRoll) about
  fitting.NECK_PIVOT, with a weight that fades down the neck (neck_weights: 1 at and above the chin, 0
  from where ICT's neck starts to flare into the shoulders, smoothstep between): the shoulders' flare
  and the neck's base stay put.

retarget(landmarks, fit, neutral): another frame's 478 points of a face -> controls for deform, relative to
the rest face (all 52 ARKit names, tongueOut 0, + headYaw/headPitch/headRoll relative to fit.camera, so
fit.camera shows deform(fit, retarget(frame, fit)) with the frame's head orientation). It reuses
ict_fit.fit_head_model unchanged on the person's own model: a HeadModel whose neutral is the rest face
and which has no identity modes, so each frame solves only pose + the bounded expression weights
(ict_fit's relaxed lasso, its eyeLook* left out) + gaze from the irises; the gaze, less the photo's, is
expressed as eyeLook* weights through EYE_LOOK_DEG. `neutral` (neutral_offsets() of a frame of the tracked
face at rest) moves the rest face's landmarks onto that face's (spread over the mesh by the fit's landmark
corrective), so that a mirror visitor's own face shape and resting mouth are not read as expression.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping

import numpy as np

from model.core.errors import InputError
from model.head.fitting import NECK_PIVOT, euler_from_rotation, photo_camera_K, rotation_from_euler, solve_pnp
from model.head.head_model import HeadModel
from model.head.ict_fit import HeadFit, _corrective_offsets, _prep, _rest_angles, eye_centres, fit_head_model, turn_eyes
from model.head.landmarks import Landmarks

# ARKit's 52 blendshape names, Apple's order
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
# ICT-FaceKit's 53 expression shapes, in the asset's order (HeadModel.expression_names; checked on use)
ICT_NAMES = (
    "browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R", "cheekPuff_L",
    "cheekPuff_R", "cheekSquint_L", "cheekSquint_R", "eyeBlink_L", "eyeBlink_R", "eyeLookDown_L", "eyeLookDown_R",
    "eyeLookIn_L", "eyeLookIn_R", "eyeLookOut_L", "eyeLookOut_R", "eyeLookUp_L", "eyeLookUp_R", "eyeSquint_L",
    "eyeSquint_R", "eyeWide_L", "eyeWide_R", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimple_L", "mouthDimple_R", "mouthFrown_L", "mouthFrown_R", "mouthFunnel", "mouthLeft",
    "mouthLowerDown_L", "mouthLowerDown_R", "mouthPress_L", "mouthPress_R", "mouthPucker", "mouthRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmile_L", "mouthSmile_R",
    "mouthStretch_L", "mouthStretch_R", "mouthUpperUp_L", "mouthUpperUp_R", "noseSneer_L", "noseSneer_R")


def _ict_of(name: str) -> tuple[str, ...]:
    if name == "tongueOut":
        return ()  # ICT has no tongue-out shape
    if name in ("browInnerUp", "cheekPuff"):
        return (name + "_L", name + "_R")  # ARKit has one, ICT sculpts each half
    if name in ICT_NAMES:  # jawLeft/jawRight, mouthLeft/mouthRight: a direction, named alike in both
        return (name,)
    if name.endswith("Left"):
        return (name[:-4] + "_L",)
    if name.endswith("Right"):
        return (name[:-5] + "_R",)
    return (name,)


# THE table: ARKit's 52 names (subject's Left/Right) -> ICT shapes driven at the ARKit weight
ARKIT_TO_ICT: dict[str, tuple[str, ...]] = {n: _ict_of(n) for n in ARKIT_NAMES}
IGNORED_ARKIT = tuple(n for n, ict in ARKIT_TO_ICT.items() if not ict)  # ("tongueOut",)

_ICT_INDEX = {n: i for i, n in enumerate(ICT_NAMES)}
_MAP_ROWS = [(a, [_ICT_INDEX[i] for i in ict]) for a, ict in ARKIT_TO_ICT.items()]
assert sorted(i for _, ids in _MAP_ROWS for i in ids) == list(range(len(ICT_NAMES))), "table must cover ICT once"


@dataclass(frozen=True)
class ControlSpec:
    name: str
    min: float
    max: float
    neutral: float
    description: str


_HEAD = (ControlSpec("headYaw", -1.2, 1.2, 0.0, "head turn about the neck, radians; > 0 face towards +x"),
         ControlSpec("headPitch", -0.7, 0.7, 0.0, "head nod, radians; > 0 face down"),
         ControlSpec("headRoll", -0.7, 0.7, 0.0, "head tilt, radians; > 0 lifts the subject's left side"))
HEAD_CONTROLS = tuple(c.name for c in _HEAD)
EXPRESSIONS = tuple(n for n in ARKIT_NAMES if n not in IGNORED_ARKIT)  # the ARKit controls that move the head
CONTROLS: dict[str, ControlSpec] = {
    **{n: ControlSpec(n, 0.0, 1.0, 0.0, "ARKit blendshape: ICT " + " + ".join(ARKIT_TO_ICT[n])) for n in EXPRESSIONS},
    **{c.name: c for c in _HEAD}}
# eyeball turn (degrees) at eyeLook* weight 1: in / out (yaw), up / down (pitch); see the module docstring
EYE_LOOK_DEG = {"In": 30.0, "Out": 30.0, "Up": 25.0, "Down": 30.0}
NECK_FLARE_RATIO = 1.15  # the shoulders start where the neck is this much wider than at its waist


def validate(controls: Mapping[str, float] | None) -> dict[str, float]:
    """Names checked (ARKit's 52 and the head controls; any other name -> ValueError naming it and the known
    ones; non-finite -> ValueError), IGNORED_ARKIT dropped, values clipped to their CONTROLS ranges."""
    unknown = [k for k in (controls or {}) if k not in ARKIT_TO_ICT and k not in CONTROLS]
    if unknown:
        raise ValueError(f"unknown rig control(s) {', '.join(map(repr, unknown))}; known: ARKit's 52 blendshape "
                         f"names ({', '.join(ARKIT_NAMES)}) and {', '.join(c.name for c in _HEAD)}")
    out: dict[str, float] = {}
    for k, v in (controls or {}).items():
        v = float(v)
        if not np.isfinite(v):
            raise ValueError(f"rig control {k!r} must be finite, got {v}")
        if k in CONTROLS:
            out[k] = min(max(v, CONTROLS[k].min), CONTROLS[k].max)
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


MAX_SEQUENCE_FRAMES = 20 * 60 * 30  # 20 minutes at 30 fps
MAX_SEQUENCE_MB = 50


def read_sequence_file(path: str | Path) -> tuple[list[str], list[float], list[dict[str, float]]]:
    """A control sequence file (read_sequence's JSON) -> (its names as written, frame times [s], validated
    controls). InputError naming what is wrong: too large, not JSON, not a sequence, too many frames."""
    path = Path(path)
    if path.stat().st_size > MAX_SEQUENCE_MB * 1e6:
        raise InputError(f"the sequence file is larger than {MAX_SEQUENCE_MB} MB")
    try:
        data = json.loads(path.read_text())
        times, controls = read_sequence(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"not a JSON control sequence ({type(e).__name__})") from None
    except ValueError as e:
        raise InputError(f"not a usable control sequence: {e}") from None
    if len(controls) > MAX_SEQUENCE_FRAMES:
        raise InputError(f"the sequence has {len(controls)} frames; the limit is {MAX_SEQUENCE_FRAMES}")
    return list(data["names"]), times, controls


def sequence_dict(times: list[float], controls: list[Mapping[str, float]]) -> dict:
    """Controls per frame -> the sequence JSON that read_sequence reads (LAM's format; every control
    as a column, head pose in head_pose)."""
    names = [n for n in CONTROLS if not n.startswith("head")]
    return {"names": names,
            "frames": [{"weights": [float(c.get(n, CONTROLS[n].neutral)) for n in names], "time": float(t)}
                       for t, c in zip(times, controls)],
            "head_pose": [[float(c.get("headPitch", 0.0)), float(c.get("headYaw", 0.0)), float(c.get("headRoll", 0.0))]
                          for c in controls]}


def ict_weights(controls: Mapping[str, float] | None) -> np.ndarray:
    """ARKit controls (validated as `validate`: unknown names -> ValueError, tongueOut ignored, head
    controls accepted and not part of the result) -> ICT weights [53] in ICT_NAMES order."""
    return _weights(validate(controls))


def _weights(c: Mapping[str, float]) -> np.ndarray:
    w = np.zeros(len(ICT_NAMES))
    for a, ids in _MAP_ROWS:
        x = c.get(a)
        if x:
            w[ids] = x
    return w


def arkit_deltas(model: HeadModel) -> np.ndarray:
    """[len(EXPRESSIONS),V,3] float32: each ARKit expression's displacement at weight 1, the sum of its ICT
    shapes (ARKIT_TO_ICT), as deform adds them (the live pack ships these)."""
    _check_model(model)
    rows = dict(_MAP_ROWS)
    return np.stack([model.expression_basis[rows[a]].sum(0) for a in EXPRESSIONS])


def arkit_from_ict(weights) -> dict[str, float]:
    """ICT weights [53] (ICT_NAMES order) -> all 52 ARKit names (browInnerUp/cheekPuff: the mean of the two
    halves; tongueOut: 0)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(ICT_NAMES),):
        raise ValueError(f"ICT weights must have shape ({len(ICT_NAMES)},), got {w.shape}")
    return {a: float(w[ids].mean()) if ids else 0.0 for a, ids in _MAP_ROWS}


# ---------------------------------------------------------------- gaze <-> eyeLook*
def gaze_from_arkit(c: Mapping[str, float]) -> np.ndarray:
    """eyeLook* weights -> gaze [2 eyes (right, left), (yaw, pitch)] radians (ict_fit's convention: yaw > 0
    towards +x, pitch > 0 down), from the model's rest direction. In/Out are per eye: the left eye's
    Out and the right eye's In turn towards +x."""
    d = {k: np.deg2rad(v) for k, v in EYE_LOOK_DEG.items()}
    g = np.zeros((2, 2))
    for k, side, out_sign in ((0, "Right", -1.0), (1, "Left", 1.0)):
        def w(x):
            return float(c.get(f"eyeLook{x}{side}", 0.0))
        g[k, 0] = out_sign * (d["Out"] * w("Out") - d["In"] * w("In"))
        g[k, 1] = d["Down"] * w("Down") - d["Up"] * w("Up")
    return g


def arkit_from_gaze(gaze) -> dict[str, float]:
    """Inverse of gaze_from_arkit: gaze [2,2] radians -> the 8 eyeLook* weights (one of each opposing pair
    non-zero), clipped to [0, 1]."""
    g = np.asarray(gaze, dtype=np.float64)
    d = {k: np.deg2rad(v) for k, v in EYE_LOOK_DEG.items()}
    out = {}
    for k, side, out_sign in ((0, "Right", -1.0), (1, "Left", 1.0)):
        yaw_out, pitch = out_sign * g[k, 0], g[k, 1]
        out[f"eyeLookOut{side}"] = float(np.clip(yaw_out / d["Out"], 0, 1))
        out[f"eyeLookIn{side}"] = float(np.clip(-yaw_out / d["In"], 0, 1))
        out[f"eyeLookDown{side}"] = float(np.clip(pitch / d["Down"], 0, 1))
        out[f"eyeLookUp{side}"] = float(np.clip(-pitch / d["Up"], 0, 1))
    return out


# ---------------------------------------------------------------- neck
def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


@lru_cache(maxsize=4)
def neck_levels(model: HeadModel) -> tuple[float, float]:
    """(y_flare, y_chin) metres: where ICT's neck starts to flare into the shoulders (head-rotation weight 0
    at and below) and the chin's height (mediapipe point 152; weight 1 at and above). Found by height in
    the head_neck part: its width (x extent) in 5 mm slabs below the chin has a waist; going down from the
    waist, the first slab NECK_FLARE_RATIO wider than it is the flare."""
    part_of = np.full(model.n_vertices, -1)
    part_of[model.faces.ravel()] = np.repeat(model.face_part, 3)
    p = model.neutral[part_of == model.part_names.index("head_neck")]
    y_chin = float(model.landmarks(model.neutral)[152, 1])
    edges = np.arange(p[:, 1].min(), y_chin, 0.005)
    width = np.array([np.ptp(s[:, 0]) if len(s := p[(p[:, 1] >= e) & (p[:, 1] < e + 0.005)]) > 2 else np.inf
                      for e in edges])
    waist = int(np.argmin(width))
    wide = np.nonzero(width[:waist] > NECK_FLARE_RATIO * width[waist])[0]
    if not len(wide):
        raise ValueError("no shoulder flare found below the neck's waist")
    y_flare = float(edges[wide[-1]] + 0.005)  # the top of the highest flared slab
    return y_flare, y_chin


@lru_cache(maxsize=4)
def neck_weights(model: HeadModel) -> np.ndarray:
    """[V] head-rotation weight by height: 0 at and below the shoulders' flare, 1 at and above the chin."""
    lo, hi = neck_levels(model)
    w = _smoothstep((model.neutral[:, 1] - lo) / (hi - lo))
    w.setflags(write=False)
    return w


# ---------------------------------------------------------------- deform
def _check_model(model: HeadModel) -> None:
    if tuple(model.expression_names) != ICT_NAMES:
        raise ValueError("this head model's expression shapes are not ICT-FaceKit's 53 (ICT_NAMES)")


def _rest(fit: HeadFit) -> np.ndarray:
    """[V,3] the rest face with the eyes unturned: identity (+ offsets) + the photo's expression; cached."""
    hit = fit.cache.get("rig_rest")
    if hit is None:
        _check_model(fit.model)
        hit = fit.vertices(gaze=False)
        hit.setflags(write=False)
        fit.cache["rig_rest"] = hit
    return hit


def deform(fit: HeadFit, controls: Mapping[str, float] | None = None) -> np.ndarray:
    """Vertices [V,3] (metres, head frame: fit.camera shows them as the photo's camera would) of the fitted
    person's rest face (the photo's) with ARKit controls added, and the head pose (module docstring)."""
    c = validate(controls)
    base = _rest(fit)
    w = _weights(c)
    nz = np.nonzero(w)[0]
    basis = fit.model.expression_basis
    if len(nz) > len(w) // 4:  # many shapes: one pass over the whole basis (no gathered copy of it)
        v = base + (w.astype(np.float32) @ basis.reshape(len(w), -1)).reshape(base.shape)
    else:  # a few shapes: one in-place add per shape (tensordot gathered and copied them: 3 ms for one)
        v = base.copy()
        for k in nz:
            v += w[k] * basis[k]
    v = turn_eyes(fit.model, v, fit.gaze + gaze_from_arkit(c))
    hy, hp, hr = (c.get(k, 0.0) for k in HEAD_CONTROLS)
    if hy or hp or hr:
        R = rotation_from_euler(hy, hp, hr)
        # v + w (R (v - p) + p - v) = v + w ((v - p) (R' - I)); weights 0 below the flare keep the shoulders
        v += neck_weights(fit.model)[:, None] * ((v - NECK_PIVOT) @ (R.T - np.eye(3)))
    return v


def eye_rest(fit: HeadFit) -> tuple[np.ndarray, np.ndarray]:
    """(centres [2,3] metres, angles [2,(yaw, pitch)] radians) of the rest face's eyeballs (right eye first),
    exactly as deform turns them: about the centres of the unturned rest face, by the photo's gaze + the
    eyeLook* gaze. So the rest face's eyeballs (turned by the photo's gaze) turn by a further g as
    R(angles + g) R(angles)^T about these centres, with angles = the unturned angles + the photo's gaze."""
    unturned = _rest(fit)
    centres = eye_centres(fit.model, unturned)
    return centres, _rest_angles(fit.model, unturned, centres) + np.asarray(fit.gaze, np.float64)


# ---------------------------------------------------------------- retarget
def person_model(fit: HeadFit, neutral: np.ndarray | None = None) -> HeadModel:
    """The fitted person's own head model: neutral = the rest face with the eyes unturned (+ the landmark
    offsets `neutral` [478,3] spread over the mesh), no identity modes; cached on the fit.
    fit_head_model(..., model=person_model(fit), identity_k=0) then solves pose, expression, gaze."""
    # keyed by content: a mirror stream passes the same rest face as a new array each frame
    key = None if neutral is None else hashlib.sha1(np.ascontiguousarray(neutral, np.float64).tobytes()).digest()
    hit = fit.cache.get("rig_person")
    if hit is None or hit[0] != key:
        m = fit.model
        rest = np.array(_rest(fit))
        if neutral is not None:
            rest += _corrective_offsets(m, np.asarray(neutral, np.float64)[:468])
        rest.setflags(write=False)
        none = np.zeros((0,) + m.neutral.shape, np.float32)
        hit = (key, dataclasses.replace(m, neutral=rest, identity_basis=none))
        fit.cache["rig_person"] = hit
    return hit[1]


# What retargeting trusts: mediapipe places the points on visible features (the lips' outer contour, eyelids,
# brows) from image evidence and regresses the others (cheeks, chin, jaw outline) from them, with little
# evidence on smooth skin; they under-move, so an opening jaw read as jawOpen 0.44 + mouthFunnel 0.39 +
# browOuterUp 0.28 on renders of astronaut's avatar at jawOpen 0.6 when every point counted alike. The inner
# lip contour follows the dark cavity's edge once the lips part, not the lips. Features and the points that
# expressions do not move (the pose) weigh 1, the rest REGRESSED_WEIGHT.
REGRESSED_WEIGHT = 0.1


@lru_cache(maxsize=4)
def retarget_weights(model: HeadModel) -> np.ndarray:
    """[468] the face-mesh points' weights in retarget()'s solve (see REGRESSED_WEIGHT)."""
    from model.head import landmarks as LM
    w = np.full(468, REGRESSED_WEIGHT)
    features = (LM.LIPS_OUTER_UPPER + LM.LIPS_OUTER_LOWER + LM.RIGHT_EYE_UPPER + LM.RIGHT_EYE_LOWER
                + LM.LEFT_EYE_UPPER + LM.LEFT_EYE_LOWER + LM.RIGHT_BROW_UPPER + LM.RIGHT_BROW_LOWER
                + LM.LEFT_BROW_UPPER + LM.LEFT_BROW_LOWER)
    w[list(features)] = 1.0
    w[_prep(model).rigid] = 1.0
    w.setflags(write=False)
    return w


def retarget(landmarks: Landmarks, fit: HeadFit, neutral: np.ndarray | None = None, return_fit: bool = False):
    """A frame's 478 points -> controls for deform, relative to the rest face: the 52 ARKit weights (eyeLook*
    from the irises' gaze less the photo's, tongueOut 0) and headYaw/headPitch/headRoll relative to
    fit.camera. neutral: neutral_offsets() of the tracked face at rest (module docstring).
    return_fit=True: (controls, the frame's HeadFit on person_model(fit, neutral))."""
    frame = fit_head_model(landmarks, model=person_model(fit, neutral), identity_k=0, corrective=False,
                           point_weights=retarget_weights(fit.model))
    out = arkit_from_ict(frame.expression)
    out.update(arkit_from_gaze(frame.gaze - fit.gaze))
    hy, hp, hr = euler_from_rotation(fit.camera.R.T @ frame.camera.R)  # world rotation fit.camera must see
    out.update(headYaw=float(hy), headPitch=float(hp), headRoll=float(hr))
    out = validate(out)
    return (out, frame) if return_fit else out


def _on_rays(xy: np.ndarray, points: np.ndarray, K: np.ndarray, R: np.ndarray, tv: np.ndarray) -> np.ndarray:
    """[N,3] head frame: the points seen at pixels xy [N,2] by the camera (K; head -> camera R, tv), each on
    its viewing ray at the camera depth of the matching head-frame point of `points` [N,3]."""
    z = (points @ R.T + tv)[:, 2]
    cam = np.stack([(xy[:, 0] - K[0, 2]) * z / K[0, 0], (xy[:, 1] - K[1, 2]) * z / K[1, 1], z], 1)
    return (cam - tv) @ R


def neutral_offsets(landmarks: Landmarks, fit: HeadFit) -> np.ndarray:
    """[478,3] offsets (metres, the fitted head's frame) that take the rest face's landmarks onto a frame of
    the tracked face at rest, at that frame's head pose: pass them to retarget() so that the tracked
    person's own face shape and resting mouth/eyes/brows are not read as expression (a mirror visitor is
    not the person of the photo). Pose: PnP on the points expressions move least (ict_fit's rigid set);
    each landmark keeps its depth along its viewing ray."""
    lm0 = fit.model.landmarks(deform(fit, None))
    rigid = _prep(fit.model).rigid
    w, h = landmarks.image_size
    K = photo_camera_K(w, h)
    R, tv = solve_pnp(lm0[rigid], landmarks.xy[rigid], K)
    return _on_rays(landmarks.xy, lm0, K, R, tv) - lm0


# ---------------------------------------------------------------- synthetic cases (tests, benchmark)
RANDOM_SHAPES = ("jawOpen", "mouthSmileLeft", "mouthSmileRight", "eyeBlinkLeft", "eyeBlinkRight", "browInnerUp",
                 "browOuterUpLeft", "browOuterUpRight", "browDownLeft", "browDownRight")
_ANTAGONISTS = {frozenset(p) for p in (("browOuterUpLeft", "browDownLeft"), ("browOuterUpRight", "browDownRight"),
                                       ("browInnerUp", "browDownLeft"), ("browInnerUp", "browDownRight"))}


def random_expression(rng: np.random.Generator) -> dict[str, float]:
    """2-3 of RANDOM_SHAPES (ARKit names) at U(0.2, 1), no antagonists together (brow up with brow down):
    the expression of a synthetic retargeting frame (ict_fit.synthetic_landmarks with ict_weights of it)."""
    while True:
        names = [str(n) for n in rng.choice(RANDOM_SHAPES, rng.integers(2, 4), replace=False)]
        if not any(frozenset((a, b)) in _ANTAGONISTS for a in names for b in names if a != b):
            return {n: float(rng.uniform(0.2, 1.0)) for n in names}
