"""The live pack: everything a browser needs to re-pose one of our avatars itself, in one binary file.

The browser viewer (web/src/pack.js reads it, web/src/pose.js re-poses it) deforms the template under
the rig controls and head pose and re-evaluates each Gaussian's binding, exactly as
HeadSplatAvatar.gaussians(controls) does on the server, so sliders, presets and sequences need no
server call. This docstring is the one description of the layout.

File layout (little-endian):

    bytes 0-3     magic b"HSLP"
    bytes 4-7     uint32 format version (FORMAT_VERSION)
    bytes 8-11    uint32 H: length of the header
    bytes 12..    header: UTF-8 JSON, H bytes, then zero padding to a multiple of 8
    then          the data: sections at the 8-byte aligned offsets (from the data's start) that the
                  header lists, each {"offset", "dtype" (u8 u16 u32 i16 f32), "shape"}

Header keys: format, version, method (id, version), counts (vertices V, faces F, used_faces U,
gaussians T, expressions C, delta_entries K), head_center [3], head_radius, neck_pivot [3],
eye_centres [[3], [3]] (right, left: the eyeball centres the gaze turns about), eye_rest [[yaw, pitch],
[yaw, pitch]] (right, left: the direction, radians, each eyeball of `vertices` looks in), eye_look_deg
{In, Out, Up, Down} (model.head.rig.EYE_LOOK_DEG: the eyeball turn at eyeLook* weight 1), expressions
[C names: ARKit's, model.head.rig.EXPRESSIONS, the order of the delta sections], controls [{name, min, max,
neutral}] (every rig control: the C expressions and headYaw/headPitch/headRoll), arkit_ignored (ARKit
names the rig accepts and that move nothing: tongueOut), frame (see FRAME), quantization notes, sections.

Sections (units: metres, radians):

    vertices      f32 [V,3]   the rest face (rig.deform(fit, {}): the photo's expression and gaze), then
                              the bust (model.ours.bust; it never moves)
    faces         u16|u32 [F,3]
    delta_start   u32 [C+1]   expression c moves vertices delta_index[start[c]:start[c+1]]
    delta_index   u16|u32 [K]
    delta_value   i16 [K,3]   displacement at weight 1 (the sum of the expression's ICT shapes,
                              model.head.rig.ARKIT_TO_ICT), times delta_scale[c] (metres per unit)
    delta_scale   f32 [C]
    neck_weight   f32 [V]     head-rotation weight (1 head, fading to 0 down the neck)
    eyeball_r     u32 [*]     vertices of the right / left eyeball (they rotate with the gaze)
    eyeball_l     u32 [*]
    hair          f32 [V]     offset along the area-weighted vertex normal (hair volume)
    used_faces    u32 [U]     the triangles that carry Gaussians
    uv_coef       f32 [U,2]   tangent = a·e1 + b·e2 (e1, e2: the triangle's edges from corner 0)
    rest_area     f32 [U]     neutral area of each used triangle (m²): Gaussians grow with stretch
    slot          u16|u32 [T] each Gaussian's triangle, as an index into used_faces
    bary          u16 [T,2]   its barycentric coordinates b1, b2 times 65535 (b0 = 1 - b1 - b2)
    scales        f32 [T,3]   neutral scales (tangent, bitangent, normal)
    rgb           u8 [T,3]    colour (DC), sRGB in [0, 255]
    opacity       u8 [T]      opacity times 255

Re-posing (the rules the JS follows, those of model.head.rig.deform and HeadSplatAvatar._pose), with
the controls clipped to their ranges (names not in `controls` move nothing):
1. vertices + Σ_c w_c·delta_c (the bust's vertices have no deltas);
2. the gaze, per eye k (0 right, 1 left; rig.gaze_from_arkit): yaw g_k = s_k·(Out·w(eyeLookOut) -
   In·w(eyeLookIn)) with s_0 = -1, s_1 = +1 (the right eye's Out turns it towards -x, the left eye's
   towards +x), pitch g_k = Down·w(eyeLookDown) - Up·w(eyeLookUp) (> 0 down), the weights of that eye's
   side (Right / Left) and the angles of eye_look_deg in radians; the eyeball_r / eyeball_l vertices
   turned about eye_centres[k] by R(eye_rest[k] + g_k)·R(eye_rest[k])^T, R(yaw, pitch) =
   rotation_from_euler(yaw, pitch, 0) (= R_y(yaw) R_x(pitch)). `vertices` already hold the photo's own
   gaze, so no eyeLook* weight leaves them as they are;
3. the head turned by rotation_from_euler(headYaw, headPitch, headRoll) about neck_pivot, blended per
   vertex by neck_weight;
4. surface = vertices + hair·normal; a Gaussian's centre is its barycentric point on the surface, its
   rotation the tangent frame (t, n×t, n) of its triangle, its tangent scales times
   sqrt(clip(area / rest_area, 1, 9)).
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

from model.head import rig
from model.head.ict_fit import _prep

MAGIC = b"HSLP"
FORMAT_VERSION = 2  # 2: ARKit-52 expressions on the ICT head, per-eye gaze from eyeLook* (eye_rest)
# The pack's world frame is the avatar's (model/core/camera.py): +y up, the face looking down +z,
# metres, origin near the head centre. three.js uses the same handedness and up axis.
FRAME = "head world: +x subject's left, +y up, +z out of the face (right-handed, metres)"
BARY_SCALE = 65535
MIN_DELTA_M = 1e-6  # vertices an expression moves by less than this are left out of its section
_DTYPES = {"u8": np.uint8, "u16": np.uint16, "u32": np.uint32, "i16": np.int16, "f32": np.float32}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}
_SECTIONS = ("vertices", "faces", "delta_start", "delta_index", "delta_value", "delta_scale", "neck_weight",
             "eyeball_r", "eyeball_l", "hair", "used_faces", "uv_coef", "rest_area", "slot", "bary", "scales",
             "rgb", "opacity")


class PackError(ValueError):
    """A live pack that cannot be read (truncated, foreign, a newer version, inconsistent counts)."""


def _index_dtype(n: int):
    return np.uint16 if n <= 0xFFFF else np.uint32


def pack_arrays(avatar) -> tuple[dict, dict[str, np.ndarray]]:
    """A HeadSplatAvatar -> (header fields, sections) before serialisation (see the module docstring)."""
    fitted, b = avatar.fitted, avatar.binding
    vertices, C = avatar.vertices(), len(rig.EXPRESSIONS)
    V = len(vertices)
    starts, index, values, scales = [0], [], [], []
    for d in rig.arkit_deltas(fitted.model):  # the head's vertices: the bust never moves
        moved = np.flatnonzero(np.abs(d).max(1) > MIN_DELTA_M)
        scale = max(float(np.abs(d[moved]).max()) / 32767.0, 1e-12) if len(moved) else 1e-12
        index.append(moved)
        values.append(np.round(d[moved] / scale).astype(np.int16))
        scales.append(scale)
        starts.append(starts[-1] + len(moved))
    eyeballs = _prep(fitted.model).eyeballs  # (right ids, left ids): ICT's eyeball_R / eyeball_L parts
    centres, angles = rig.eye_rest(fitted)
    neutral = avatar.gaussians()
    bary = np.clip(np.round(b.bary[:, 1:] * BARY_SCALE), 0, BARY_SCALE)
    sections = {
        "vertices": vertices.astype(np.float32),
        "faces": avatar.faces.astype(_index_dtype(V)),
        "delta_start": np.asarray(starts, np.uint32),
        "delta_index": np.concatenate(index).astype(_index_dtype(V)),
        "delta_value": np.concatenate(values).reshape(-1, 3),
        "delta_scale": np.asarray(scales, np.float32),
        "neck_weight": avatar.neck_weight.astype(np.float32),
        "eyeball_r": np.asarray(eyeballs[0], np.uint32),
        "eyeball_l": np.asarray(eyeballs[1], np.uint32),
        "hair": b.hair.astype(np.float32),
        "used_faces": b.used_faces.astype(np.uint32),
        "uv_coef": b.uv_coef.astype(np.float32),
        "rest_area": b.rest_area.astype(np.float32),
        "slot": b.face_slot.astype(_index_dtype(len(b.used_faces))),
        "bary": bary.astype(np.uint16),
        "scales": b.scales.astype(np.float32),
        "rgb": np.round(neutral.rgb * 255).astype(np.uint8),
        "opacity": np.round(np.clip(neutral.opacities, 0, 1) * 255).astype(np.uint8),
    }
    header = {
        "format": "headsplat-live", "version": FORMAT_VERSION,
        "method": {"id": avatar.info.id, "version": avatar.info.version},
        "counts": {"vertices": V, "faces": len(avatar.faces), "used_faces": len(b.used_faces),
                   "gaussians": len(b.faces), "expressions": C, "delta_entries": int(starts[-1])},
        "head_center": [float(x) for x in avatar.head_center], "head_radius": float(avatar.head_radius),
        "neck_pivot": [float(x) for x in fitted.neck_pivot],
        "eye_centres": np.asarray(centres, float).tolist(), "eye_rest": np.asarray(angles, float).tolist(),
        "eye_look_deg": {k: float(v) for k, v in rig.EYE_LOOK_DEG.items()},
        "expressions": list(rig.EXPRESSIONS),
        "controls": [{"name": c.name, "min": c.min, "max": c.max, "neutral": c.neutral}
                     for c in rig.CONTROLS.values()],
        "arkit_ignored": list(rig.IGNORED_ARKIT),
        "frame": FRAME,
        "quantization": {"bary": f"u16 / {BARY_SCALE}", "delta_value": "i16 * delta_scale",
                         "delta_min_m": MIN_DELTA_M, "rgb": "u8 / 255", "opacity": "u8 / 255"},
    }
    return header, sections


def write_pack(avatar) -> bytes:
    """The live pack of a HeadSplatAvatar (bytes; 6.9 MB for the astronaut: 105k Gaussians, 51 expressions
    moving 355k vertex entries)."""
    header, sections = pack_arrays(avatar)
    blobs, table, offset = [], {}, 0
    for name in _SECTIONS:
        a = np.ascontiguousarray(sections[name])
        table[name] = {"offset": offset, "dtype": _NAMES[a.dtype], "shape": list(a.shape)}
        raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        raw += b"\0" * (-len(raw) % 8)
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps({**header, "sections": table}, separators=(",", ":")).encode()
    prefix = MAGIC + struct.pack("<II", FORMAT_VERSION, len(head)) + head
    return prefix + b"\0" * (-len(prefix) % 8) + b"".join(blobs)


@dataclass
class LivePack:
    header: dict
    sections: dict[str, np.ndarray]


def read_pack(data: bytes) -> LivePack:
    """Parse and check a live pack (PackError on anything malformed); arrays are read-only views."""
    data = memoryview(data)
    if len(data) < 12 or bytes(data[:4]) != MAGIC:
        raise PackError("not a HeadSplat live pack (bad magic)")
    version, n = struct.unpack("<II", data[4:12])
    if version != FORMAT_VERSION:
        raise PackError(f"live pack version {version}; this reader reads version {FORMAT_VERSION}")
    if 12 + n > len(data):
        raise PackError("truncated live pack (header)")
    try:
        header = json.loads(bytes(data[12:12 + n]))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PackError(f"live pack header is not JSON: {e}") from None
    start = 12 + n + (-(12 + n) % 8)
    sections = {}
    for name in _SECTIONS:
        s = (header.get("sections") or {}).get(name)
        if not s or s.get("dtype") not in _DTYPES:
            raise PackError(f"live pack: section {name!r} missing or of unknown type")
        dt = np.dtype(_DTYPES[s["dtype"]]).newbyteorder("<")
        count = int(np.prod(s["shape"])) if s["shape"] else 1
        lo = start + int(s["offset"])
        if lo < start or lo + count * dt.itemsize > len(data):
            raise PackError(f"truncated live pack (section {name!r})")
        sections[name] = np.frombuffer(data, dt, count, lo).reshape(s["shape"])
    _check(header, sections)
    return LivePack(header, sections)


def _check(header: dict, s: dict[str, np.ndarray]) -> None:
    c = header.get("counts", {})
    want = {"vertices": (c.get("vertices"), 3), "faces": (c.get("faces"), 3), "neck_weight": (c.get("vertices"),),
            "hair": (c.get("vertices"),), "used_faces": (c.get("used_faces"),), "uv_coef": (c.get("used_faces"), 2),
            "rest_area": (c.get("used_faces"),), "slot": (c.get("gaussians"),), "bary": (c.get("gaussians"), 2),
            "scales": (c.get("gaussians"), 3), "rgb": (c.get("gaussians"), 3), "opacity": (c.get("gaussians"),),
            "delta_start": (c.get("expressions", -1) + 1,), "delta_scale": (c.get("expressions"),),
            "delta_index": (c.get("delta_entries"),), "delta_value": (c.get("delta_entries"), 3)}
    for name, shape in want.items():
        if tuple(s[name].shape) != shape:
            raise PackError(f"live pack: section {name!r} has shape {tuple(s[name].shape)}, counts say {shape}")
    V, U = c["vertices"], c["used_faces"]
    bad = [("faces", V), ("delta_index", V), ("eyeball_r", V), ("eyeball_l", V), ("used_faces", c["faces"]),
           ("slot", U)]
    for name, limit in bad:
        if s[name].size and int(s[name].max()) >= limit:
            raise PackError(f"live pack: section {name!r} indexes past its target ({limit})")
    if s["delta_start"][-1] != c["delta_entries"] or np.any(np.diff(s["delta_start"].astype(np.int64)) < 0):
        raise PackError("live pack: delta_start is not a running count of delta entries")
    if not isinstance(header.get("expressions"), list) or len(header["expressions"]) != c["expressions"]:
        raise PackError("live pack: the expression names do not match the count")
    try:
        eyes = (np.asarray(header["eye_centres"], np.float64).shape == (2, 3)
                and np.asarray(header["eye_rest"], np.float64).shape == (2, 2)
                and all(np.isfinite(float(header["eye_look_deg"][k])) for k in ("In", "Out", "Up", "Down")))
    except (KeyError, TypeError, ValueError):
        eyes = False
    if not eyes:
        raise PackError("live pack: the eyes' header (eye_centres [2,3], eye_rest [2,2], eye_look_deg "
                        "{In, Out, Up, Down}) is missing or malformed")
