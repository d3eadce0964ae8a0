"""An ARKit-52-native rig on the fitted ICT-FaceKit head (model/head/ict_fit.py), and retargeting.

    from model.head.ict_rig import deform, retarget
    v = deform(fit, {"jawOpen": 0.4, "mouthSmileLeft": 0.7, "eyeLookOutLeft": 0.5, "headYaw": 0.2})
    c = retarget(detect_landmarks(frame), fit)    # another frame of the same person -> controls for deform

Controls are ARKit's 52 blendshape names (model.head.rig.ARKIT_NAMES; Left/Right are the subject's, Left
is +x, as everywhere in this project) plus the head pose headYaw/headPitch/headRoll (radians,
model.head.fitting's convention: > 0 turns the face towards +x / down / lifts the subject's left side).
ICT's 53 shapes are ARKit's set with `_L`/`_R` for Left/Right; ARKIT_TO_ICT is the one table between
the two vocabularies:
- xLeft -> x_L, xRight -> x_R, unsided names -> the same name;
- browInnerUp and cheekPuff -> both ICT halves (browInnerUp_L + _R, cheekPuff_L + _R) at the same weight;
- tongueOut -> nothing: ICT has no tongue-out shape (its gums_tongue part never leaves the mouth). It is
  accepted and ignored (IGNORED_ARKIT), as model.head.rig ignores the names it cannot model.
ICT's `_L` is the subject's left: checked on the asset, eyeBlink_L moves vertices at mean x +32 mm,
eyeBlink_R at -32 mm, mouthSmile_L at +25 mm; jawLeft and mouthLeft (directions, named alike in both
sets) move the jaw / mouth by +5.8 / +8.4 mm in x on average, towards the subject's left, as ARKit's
(tests/test_ict_rig.py asserts it).

deform(fit, controls) = the fitted identity (+ the fit's landmark corrective `offsets`, which belongs to
the person's shape in every expression) + the ARKit expression given, *absolute*: the photo's own
fitted expression (fit.expression) and gaze (fit.gaze) are NOT added (an empty control dict is the
person's neutral face looking straight ahead; pass arkit_from_ict(fit.expression) to start from the
photo's face). Then:
- gaze: ICT's eyeLook* shapes move only the lids; the eyeballs are turned about their centres
  (ict_fit.turn_eyes, from the model's rest direction) by the angles the same weights express, per eye:
  eyeLookIn/Out 1.0 -> 30 degrees yaw (towards the nose / away from it), eyeLookUp 1.0 -> 25 degrees up,
  eyeLookDown 1.0 -> 30 degrees down (EYE_LOOK_DEG). Why these: Apple does not publish the angle of
  weight 1; ARKit trackers reach 1.0 near the end of the comfortable gaze range rather than the
  mechanical limit (~45-50 degrees), which is ~30 degrees sideways and down and less upwards (upward
  gaze is the most limited human eye motion, and the upper lid hides the iris early); ICT's own
  eyeLook* lid shapes are sculpted for about that range (eyeLookUp raises the upper lid 3.7 mm, about
  what a 25-degree upward gaze uncovers), and it keeps the eyes inside the range that
  model.head.fitting (MAX_GAZE = 0.6 rad = 34 degrees) reads from irises. (model.head.rig folds a pair
  of eyeLook weights into one shared gaze of 0.5 rad = 29 deg sideways and 0.4 rad = 23 deg vertically
  at 1: nearly the same figures.)
- head pose: the head rotates by rotation_from_euler(headYaw, headPitch, headRoll) about
  fitting.NECK_PIVOT, with a weight that fades down the neck (neck_weights: 1 at and above the chin, 0
  from where ICT's neck starts to flare into the shoulders, smoothstep between): the shoulders' flare
  and the neck's base stay put.
Cost (`python -m benchmarks.ict_rig`, 2 busy cores): the dense basis is used for the non-zero weights only
(one pass over the whole basis once more than a quarter are non-zero, not a gathered copy of it):
median 0.7-0.9 ms for a typical frame (5 shapes), 4.4-4.6 ms for all 52 controls + gaze + head pose.

retarget(landmarks, fit): another frame's 478 points of the same person -> controls for deform (all 52
ARKit names, tongueOut 0, + headYaw/headPitch/headRoll). It reuses ict_fit.fit_head_model unchanged on
the person's own model: a HeadModel whose neutral is the fitted identity (+ offsets) and which has no
identity modes (identity_k = 0), so the identity is fixed and each frame solves only pose + the bounded
expression weights (ict_fit's relaxed lasso, its eyeLook* left out: SKIP_EXPRESSIONS) + gaze from the
irises; the gaze is expressed back as eyeLook* weights through EYE_LOOK_DEG (which also drive the
lids in deform). Head controls are relative to the fitted photo's camera, as model.head.rig.retarget's:
fit.camera shows deform(fit, retarget(frame, fit)) with the frame's head orientation.
Synthetic figures (benchmarks.ict_rig, 30 frames, |yaw| <= 30 degrees, 0.5 px noise): MAE 0.05 on the
set shapes, other weights summing to 0.18 a frame (median), head pose within 0.8 degrees, ~25-45 ms a
frame on 2 busy cores. Known limits, inherited from ict_fit's solve: its lasso zeroes weights below
~0.25 on some frames; turned heads read ~0.1-0.17 of jawLeft/jawRight; with the eyes turned, the
eyeLook* lid motion (not in the solve) can read as blinks of ~0.25 (worst weight error in 30 such
frames: 0.67; MAE 0.06).
"""
from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Mapping

import numpy as np

from model.head.fitting import NECK_PIVOT, euler_from_rotation, rotation_from_euler
from model.head.head_model import HeadModel
from model.head.ict_fit import HeadFit, fit_head_model, turn_eyes
from model.head.landmarks import Landmarks
from model.head.rig import ARKIT_NAMES, CONTROLS as RIG_CONTROLS

__all__ = ["ARKIT_TO_ICT", "ICT_NAMES", "IGNORED_ARKIT", "HEAD_CONTROLS", "EYE_LOOK_DEG", "ict_weights",
           "arkit_from_ict", "validate", "gaze_from_arkit", "arkit_from_gaze", "neck_weights", "deform",
           "retarget", "person_model", "neck_levels", "NECK_FLARE_RATIO", "random_expression"]

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
HEAD_CONTROLS = ("headYaw", "headPitch", "headRoll")
# eyeball turn (degrees) at eyeLook* weight 1: in / out (yaw), up / down (pitch); see the module docstring
EYE_LOOK_DEG = {"In": 30.0, "Out": 30.0, "Up": 25.0, "Down": 30.0}
NECK_FLARE_RATIO = 1.15  # the shoulders start where the neck is this much wider than at its waist

_ICT_INDEX = {n: i for i, n in enumerate(ICT_NAMES)}
_MAP_ROWS = [(a, [_ICT_INDEX[i] for i in ict]) for a, ict in ARKIT_TO_ICT.items()]
assert sorted(i for _, ids in _MAP_ROWS for i in ids) == list(range(len(ICT_NAMES))), "table must cover ICT once"


def validate(controls: Mapping[str, float] | None) -> dict[str, float]:
    """Names checked (ARKit's 52 and HEAD_CONTROLS; any other name -> ValueError naming it and the known
    ones; non-finite -> ValueError), IGNORED_ARKIT dropped, ARKit weights clipped to [0, 1] and head
    angles to model.head.rig's ranges (as rig.validate does)."""
    out: dict[str, float] = {}
    unknown = [k for k in (controls or {}) if k not in ARKIT_TO_ICT and k not in HEAD_CONTROLS]
    if unknown:
        raise ValueError(f"unknown control(s) {', '.join(map(repr, unknown))}; known: ARKit's 52 blendshape "
                         f"names ({', '.join(ARKIT_NAMES)}) and {', '.join(HEAD_CONTROLS)}")
    for k, v in (controls or {}).items():
        v = float(v)
        if not np.isfinite(v):
            raise ValueError(f"control {k!r} must be finite, got {v}")
        if k in HEAD_CONTROLS:
            out[k] = min(max(v, RIG_CONTROLS[k].min), RIG_CONTROLS[k].max)
        elif k not in IGNORED_ARKIT:
            out[k] = min(max(v, 0.0), 1.0)
    return out


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


def _base(fit: HeadFit) -> np.ndarray:
    """The fitted identity (+ offsets), no expression, eyes at rest; cached on the fit."""
    key = (id(fit.identity), id(fit.offsets))
    hit = fit.cache.get("ict_rig_base")
    if hit is None or hit[0] != key:
        _check_model(fit.model)
        v = fit.model.vertices(fit.identity_full)
        if fit.offsets is not None:
            v = v + fit.offsets
        v.setflags(write=False)
        hit = (key, v)
        fit.cache["ict_rig_base"] = hit
    return hit[1]


def deform(fit: HeadFit, controls: Mapping[str, float] | None = None) -> np.ndarray:
    """Vertices [V,3] (metres, head frame: fit.camera shows them as the photo's camera would) of the fitted
    person under ARKit controls + head pose. Absolute: the photo's own expression and gaze are not added
    (see the module docstring)."""
    c = validate(controls)
    base = _base(fit)
    w = _weights(c)
    nz = np.nonzero(w)[0]
    basis = fit.model.expression_basis
    if len(nz) > len(w) // 4:  # many shapes: one pass over the whole basis (no gathered copy of it)
        v = base + (w.astype(np.float32) @ basis.reshape(len(w), -1)).reshape(base.shape)
    elif len(nz):
        v = base + np.tensordot(w[nz].astype(np.float32), basis[nz], 1)
    else:
        v = base.copy()
    gaze = gaze_from_arkit(c)
    if gaze.any():
        v = turn_eyes(fit.model, v, gaze)
    hy, hp, hr = (c.get(k, 0.0) for k in HEAD_CONTROLS)
    if hy or hp or hr:
        R = rotation_from_euler(hy, hp, hr)
        # v + w (R (v - p) + p - v) = v + w ((v - p) (R' - I)); weights 0 below the flare keep the shoulders
        v += neck_weights(fit.model)[:, None] * ((v - NECK_PIVOT) @ (R.T - np.eye(3)))
    return v


# ---------------------------------------------------------------- retarget
def person_model(fit: HeadFit) -> HeadModel:
    """The fitted person's own head model: neutral = identity (+ offsets), no identity modes; cached on the
    fit. fit_head_model(..., model=person_model(fit), identity_k=0) then solves pose, expression, gaze."""
    key = (id(fit.identity), id(fit.offsets))
    hit = fit.cache.get("ict_rig_person")
    if hit is None or hit[0] != key:
        m = fit.model
        neutral = np.array(_base(fit))
        neutral.setflags(write=False)
        none = np.zeros((0,) + m.neutral.shape, np.float32)
        hit = (key, dataclasses.replace(m, neutral=neutral, identity_basis=none))
        fit.cache["ict_rig_person"] = hit
    return hit[1]


def retarget(landmarks: Landmarks, fit: HeadFit, return_fit: bool = False):
    """Another frame's 478 points of the person `fit` was fitted on -> controls for deform: the 52 ARKit
    weights (eyeLook* from the irises' gaze, tongueOut 0) and headYaw/headPitch/headRoll relative to
    fit.camera. return_fit=True: (controls, the frame's HeadFit on person_model(fit))."""
    frame = fit_head_model(landmarks, model=person_model(fit), identity_k=0, corrective=False)
    out = arkit_from_ict(frame.expression)
    out.update(arkit_from_gaze(frame.gaze))
    hy, hp, hr = euler_from_rotation(fit.camera.R.T @ frame.camera.R)  # world rotation fit.camera must see
    out.update(headYaw=float(hy), headPitch=float(hp), headRoll=float(hr))
    return (out, frame) if return_fit else out



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
