"""LAM avatar packages (the chat-avatar zip of aigc3d/LAM) in the hub: read, animate, align to a photo.

Package layout (a zip; the members sit in one top folder, as LAM writes them, or at its root):

    offset.ply         N Gaussians with 3DGS property names but LAM's meanings: x, y, z = offset of
                       Gaussian i from mesh vertex i (metres); f_dc_0..2 = RGB in [0, 1] (not SH: LAM
                       predicts RGB and its web renderer reads f_dc as colour); opacity a logit; scale_*
                       natural logs; rot_0..3 a unit quaternion (w, x, y, z). No f_rest.
    skin.glb           one skinned mesh of exactly N vertices (bind positions, JOINTS_0/WEIGHTS_0) with
                       morph targets named by ARKit blendshapes (mesh.extras.targetNames, Blender's
                       convention, which three.js reads); LAM ships 51 (all but tongueOut).
    vertex_order.json  a permutation of 0..N-1: LAM's Blender tool sorts the mesh's vertex indices by
                       height. LAM's web renderer (npm gaussian-splat-renderer-for-lam 0.0.8) loads it but
                       pairs Gaussian i with mesh vertex i; so does this reader (checked on p2-1: vertex i
                       + offset i renders a sharp head, any permutation by vertex_order a speckled one).
    animation.glb      body/idle clips for LAM's web renderer (not needed to import).
    __MACOSX/, .DS_Store and ._* entries (archive noise) are ignored.

Frame. skin.glb is in glTF's frame: +y up, the face looks down +z, metres. Measured on p2-1: the mesh
spans y = 1.49..1.80 m (neck to crown of a standing 1.8 m figure), the head joint sits at y = 1.63 m,
and a render from +z shows the face. Our head world (model/core/camera.py) has the same axes, so the
two differ by a translation only: our origin is the head joint's bind position minus
model.head.fitting.NECK_PIVOT (both rigs turn the head about the skull base), or, for packages this
project wrote (model/ours/lam_export.py), the origin recorded in skin.glb's scene extras.

Animation (LamAvatar.gaussians): Gaussian i = vertex i + offset i + sum over morph targets of
weight x displacement, then linear blend skinning with the skin's own weights. Controls are the rig's
(model.head.rig.CONTROLS: ARKit's 52 blendshape names + headYaw/headPitch/headRoll), checked as
rig.validate checks them (an unknown name -> its ValueError; values clipped to the rig's ranges). A
package's ARKit morph target is driven by the control of the same name (tongueOut too, when a package
has that target; the rig itself ignores it). ARKit controls without a target: eyeLook* turn the eye
joints, when the package has them, by the rig's own gaze angles (rig.gaze_from_arkit, per eye);
jawOpen turns a "jaw" joint by JAW_JOINT_MAX; the others move nothing (metadata lists them).
headYaw/Pitch/Roll turn the "head" joint (and its children) about its bind position. Gaussians keep
their shape under morph targets (as in LAM's renderer) and turn with the skinning. LAM's web renderer
moves every splat with the head bone alone; this reader uses the mesh's skin weights, so the neck
fades as the skin says.

Prediction folder of the registered method `lam-import` (LamImport), keyed to a dataset's photos like
baselines/external.py (plain file names, no paths, no '..'):

    <root>/<subject>/input.png    the photo LAM was given (identifies the subject by its pixels)
    <root>/<subject>/avatar.zip   LAM's package for it

root: LamImport(root=...) or the environment variable HEADSPLAT_LAM_PACKAGES. Each avatar is aligned
to its photo's camera by the landmark fit our method uses (align_to_photo); metadata reports the
alignment error.
"""
from __future__ import annotations

import io
import json
import os
import posixpath
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from baselines.common import FIT_PARAMETERS
from model.core.camera import Camera, framing_camera, head_extent
from model.core.errors import InputError
from model.core.gaussians import Gaussians, normalize_quats, rgb_to_sh, rotmat_to_quat
from model.core.image_io import load_image, pixels_sha256, to_uint8
from model.head import rig
from model.head.fitting import NECK_PIVOT, rotation_from_euler
from model.head.landmarks import landmarks_of
from model.interface import Controls, GaussianAvatar, Method, MethodInfo
from model.ours.lam_export import ORIGIN_KEY  # scene extras: our head world's origin in the file

MEMBERS = ("offset.ply", "skin.glb", "vertex_order.json")  # required; animation.glb is optional here
OPTIONAL_MEMBERS = ("animation.glb",)
MAX_ENTRIES = 512  # entries in the zip (LAM's has 12, noise included)
MAX_MEMBER_BYTES = 64 << 20  # declared (and actually read) uncompressed size of one member
MAX_TOTAL_BYTES = 160 << 20  # declared uncompressed size of the whole archive
MAX_RATIO = 200  # compression ratio above which a member > 1 MiB is taken for a zip bomb
MAX_GAUSSIANS = 500_000
EYE_LOOK = ("eyeLookOutLeft", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutRight",
            "eyeLookDownLeft", "eyeLookDownRight", "eyeLookUpLeft", "eyeLookUpRight")
HEAD_JOINTS, JAW_JOINTS = ("head",), ("jaw", "Jaw", "jaw_joint")
EYE_JOINTS = {"right": ("rEye", "eye_r", "rightEye", "RightEye"), "left": ("lEye", "eye_l", "leftEye", "LeftEye")}
# jaw-joint rotation (radians, opening) at jawOpen = 1, for a package with a jaw joint and no jawOpen target
# (the procedural rig's jaw hinge at 1 had this angle; LAM's own packages have the target)
JAW_JOINT_MAX = 0.32


class LamPackageError(InputError):
    """A LAM package that cannot be used; the message says what is wrong (an InputError: a ValueError)."""


# ------------------------------------------------------------------------------------------ reading
@dataclass
class LamPackage:
    """The contents of a package, in the file's frame (glTF: +y up, face +z, metres). N Gaussians/vertices."""

    name: str
    vertices: np.ndarray  # [N,3] float32 bind positions of the skinned mesh
    offsets: np.ndarray  # [N,3] float32 Gaussian i = vertices[i] + offsets[i]
    rgb: np.ndarray  # [N,3] float32 in [0, 1]
    opacities: np.ndarray  # [N] float32 in [0, 1]
    scales: np.ndarray  # [N,3] float32 metres
    quats: np.ndarray  # [N,4] float32 (w, x, y, z)
    targets: dict  # ARKit name -> [N,3] float32 displacement at weight 1 (metres)
    other_targets: list  # names of morph targets that are not ARKit blendshapes (not driven)
    joint_names: list  # [J] skin joint names
    joint_parent: np.ndarray  # [J] index of the nearest ancestor joint in the skin, -1 at the root
    joint_position: np.ndarray  # [J,3] bind-pose world positions (metres)
    bind_fix: np.ndarray  # [J,4,4] rest world x inverse bind matrix (identity when the rest pose is the bind pose)
    skin_joints: np.ndarray  # [N,4] int indices into joint_names
    skin_weights: np.ndarray  # [N,4] float32, rows sum to 1
    vertex_order: np.ndarray  # [N] int permutation (see the module docstring)
    origin: np.ndarray  # [3] our head world's origin in the file's frame
    origin_source: str  # "headsplat" (recorded by our exporter) | "head joint"
    has_animation: bool = False

    def __len__(self) -> int:
        return len(self.vertices)


def _safe_entries(zf: zipfile.ZipFile, where: str) -> dict[str, zipfile.ZipInfo]:
    """Check every entry (noise included) and return the wanted files by base name.
    Unsafe names, bombs and ambiguity -> LamPackageError; nothing is extracted to disk."""
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise LamPackageError(f"{where}: {len(infos)} entries in the zip (at most {MAX_ENTRIES})")
    total = 0
    found: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if "\\" in name or name.startswith("/") or ".." in parts or (len(parts[0]) == 2 and parts[0][1] == ":"):
            raise LamPackageError(f"{where}: unsafe entry name {name!r} (absolute or '..' path)")
        total += info.file_size
        if info.file_size > MAX_MEMBER_BYTES or total > MAX_TOTAL_BYTES:
            raise LamPackageError(f"{where}: entry {name!r} declares {info.file_size} bytes uncompressed "
                                  f"(limits: {MAX_MEMBER_BYTES} a member, {MAX_TOTAL_BYTES} in all): refused as a zip bomb")
        if info.file_size > 1 << 20 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise LamPackageError(f"{where}: entry {name!r} compresses {info.file_size / max(info.compress_size, 1):.0f}:1 "
                                  f"(more than {MAX_RATIO}:1): refused as a zip bomb")
        base = parts[-1]
        if info.is_dir() or parts[0] == "__MACOSX" or base.startswith("._") or base == ".DS_Store":
            continue
        if base in MEMBERS + OPTIONAL_MEMBERS:
            if len(parts) > 2:
                raise LamPackageError(f"{where}: {name!r} is nested too deep (members sit at the root or in one folder)")
            if base in found:
                raise LamPackageError(f"{where}: two {base} entries ({found[base].filename!r}, {name!r})")
            found[base] = info
    missing = [m for m in MEMBERS if m not in found]
    if missing:
        raise LamPackageError(f"{where}: missing member(s) {', '.join(missing)} (a LAM package has "
                              f"{', '.join(MEMBERS)})")
    folders = {posixpath.dirname(i.filename) for i in found.values()}
    if len(folders) > 1:
        raise LamPackageError(f"{where}: members are spread over folders {sorted(folders)}")
    return found


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    # Read at most the declared size + 1: a header that lies about the size cannot make us inflate more.
    try:
        with zf.open(info) as f:
            data = f.read(min(info.file_size, MAX_MEMBER_BYTES) + 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as e:
        raise LamPackageError(f"{where}: cannot read {info.filename!r} ({e})") from None
    if len(data) > info.file_size:
        raise LamPackageError(f"{where}: {info.filename!r} inflates beyond its declared size: refused as a zip bomb")
    return data


def _read_ply(data: bytes, where: str) -> dict[str, np.ndarray]:
    from plyfile import PlyData, PlyListProperty, PlyParseError
    try:
        # plyfile reads a binary element from a non-file stream one value at a time (1.6 s for LAM's
        # 20k Gaussians); its header parser plus one np.frombuffer reads the same in milliseconds.
        stream = io.BytesIO(data)
        header = PlyData._parse_header(stream)
        el = header["vertex"]
        if header.text or any(isinstance(p, PlyListProperty) for p in el.properties):
            v = PlyData.read(io.BytesIO(data))["vertex"].data  # ASCII or list properties: the general path
        else:
            dtype = el.dtype(header.byte_order)
            available = (len(data) - stream.tell()) // dtype.itemsize
            if available < el.count:
                raise ValueError(f"{el.count} vertices declared, data for {available}")
            v = np.frombuffer(data, dtype, el.count, stream.tell())
    except (PlyParseError, KeyError, ValueError, EOFError, IndexError, TypeError) as e:
        raise LamPackageError(f"{where}: offset.ply is not a readable .ply ({e})") from None
    names = set(v.dtype.names or ())
    need = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
            "rot_0", "rot_1", "rot_2", "rot_3")
    missing = [n for n in need if n not in names]
    if missing:
        raise LamPackageError(f"{where}: offset.ply lacks properties {missing}")
    col = lambda *ns: np.stack([np.asarray(v[n], np.float32) for n in ns], 1)  # noqa: E731
    out = {"offsets": col("x", "y", "z"), "rgb": col("f_dc_0", "f_dc_1", "f_dc_2"), "logit": col("opacity")[:, 0],
           "log_scales": col("scale_0", "scale_1", "scale_2"), "quats": col("rot_0", "rot_1", "rot_2", "rot_3")}
    for k, a in out.items():
        if not np.isfinite(a).all():
            raise LamPackageError(f"{where}: offset.ply has non-finite values in {k}")
    return out


_COMPONENTS = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


def _accessor(gltf, blob: bytes, index, where: str) -> np.ndarray:
    """glTF accessor -> array [count, width] (normalized integers -> floats), sparse entries applied."""
    try:
        a = gltf.accessors[index]
        dtype = np.dtype(_COMPONENTS[a.componentType]).newbyteorder("<")
        width = _WIDTH[a.type]

        def view(view_index, offset, count, dt, w):
            bv = gltf.bufferViews[view_index]
            start = (bv.byteOffset or 0) + (offset or 0)
            stride = bv.byteStride or dt.itemsize * w
            if count and start + stride * (count - 1) + dt.itemsize * w > min(len(blob), (bv.byteOffset or 0) + bv.byteLength):
                raise ValueError("reads past its buffer view")
            return np.ndarray((count, w), dt, blob, start, (stride, dt.itemsize)).copy()

        out = (view(a.bufferView, a.byteOffset, a.count, dtype, width) if a.bufferView is not None
               else np.zeros((a.count, width), dtype))
        if a.sparse is not None and a.sparse.count:
            s = a.sparse
            idx = view(s.indices.bufferView, s.indices.byteOffset, s.count,
                       np.dtype(_COMPONENTS[s.indices.componentType]).newbyteorder("<"), 1)[:, 0]
            if idx.max() >= a.count:
                raise ValueError("sparse index out of range")
            out[idx.astype(np.int64)] = view(s.values.bufferView, s.values.byteOffset, s.count, dtype, width)
        if a.normalized and dtype.kind in "iu":
            out = out.astype(np.float32) / np.iinfo(dtype).max
        return out
    except (IndexError, KeyError, ValueError, TypeError, AttributeError) as e:
        raise LamPackageError(f"{where}: skin.glb accessor {index} is malformed ({e})") from None


def _node_local(node) -> np.ndarray:
    from scipy.spatial.transform import Rotation
    if node.matrix:
        return np.asarray(node.matrix, np.float64).reshape(4, 4).T  # glTF matrices are column-major
    M = np.eye(4)
    if node.rotation:
        M[:3, :3] = Rotation.from_quat(node.rotation).as_matrix()  # glTF and scipy: (x, y, z, w)
    if node.scale:
        M[:3, :3] = M[:3, :3] * np.asarray(node.scale, np.float64)
    if node.translation:
        M[:3, 3] = node.translation
    return M


def _read_glb(data: bytes, where: str) -> dict:
    import pygltflib
    try:
        gltf = pygltflib.GLTF2.load_from_bytes(data)
        blob = gltf.binary_blob() or b""
    except Exception as e:  # noqa: BLE001 - pygltflib raises many kinds on garbage; all mean "not a glb"
        raise LamPackageError(f"{where}: skin.glb is not a readable binary glTF ({type(e).__name__}: {e})") from None
    skinned = [(i, n) for i, n in enumerate(gltf.nodes) if n.mesh is not None and n.skin is not None]
    if len(skinned) != 1:
        raise LamPackageError(f"{where}: skin.glb must hold exactly one skinned mesh, found {len(skinned)}")
    _, node = skinned[0]
    try:
        mesh, skin = gltf.meshes[node.mesh], gltf.skins[node.skin]
    except IndexError:
        raise LamPackageError(f"{where}: skin.glb's mesh or skin index is out of range") from None
    if len(mesh.primitives) != 1:
        raise LamPackageError(f"{where}: skin.glb's mesh must have one primitive, found {len(mesh.primitives)}")
    prim = mesh.primitives[0]
    at = prim.attributes
    if at.POSITION is None or at.JOINTS_0 is None or at.WEIGHTS_0 is None:
        raise LamPackageError(f"{where}: skin.glb's mesh lacks POSITION, JOINTS_0 or WEIGHTS_0")
    vertices = _accessor(gltf, blob, at.POSITION, where).astype(np.float32)
    n = len(vertices)
    joints = _accessor(gltf, blob, at.JOINTS_0, where).astype(np.int64)
    weights = _accessor(gltf, blob, at.WEIGHTS_0, where).astype(np.float32)
    if vertices.shape[1] != 3 or joints.shape != (n, 4) or weights.shape != (n, 4):
        raise LamPackageError(f"{where}: skin.glb's POSITION/JOINTS_0/WEIGHTS_0 do not match ({vertices.shape}, "
                              f"{joints.shape}, {weights.shape})")
    names = list((mesh.extras or {}).get("targetNames") or [])
    targets_raw = prim.targets or []
    if len(names) != len(targets_raw):
        raise LamPackageError(f"{where}: skin.glb has {len(targets_raw)} morph targets but {len(names)} targetNames")
    targets, other = {}, []
    for name, t in zip(names, targets_raw):
        pos = t.get("POSITION") if isinstance(t, dict) else getattr(t, "POSITION", None)
        if pos is None:
            raise LamPackageError(f"{where}: morph target {name!r} has no POSITION")
        d = _accessor(gltf, blob, pos, where).astype(np.float32)
        if d.shape != (n, 3):
            raise LamPackageError(f"{where}: morph target {name!r} has {d.shape[0]} displacements for {n} vertices")
        if name in rig.ARKIT_NAMES:
            targets[name] = d
        else:
            other.append(str(name))
    # skeleton: rest world matrices of every node, inverse bind matrices of the skin's joints
    parent = {c: i for i, nd in enumerate(gltf.nodes) for c in (nd.children or [])}
    world: dict[int, np.ndarray] = {}

    def world_of(i, depth=0):
        if depth > len(gltf.nodes):
            raise LamPackageError(f"{where}: skin.glb's node hierarchy has a cycle")
        if i not in world:
            world[i] = (world_of(parent[i], depth + 1) if i in parent else np.eye(4)) @ _node_local(gltf.nodes[i])
        return world[i]

    J = len(skin.joints)
    if J == 0 or joints.max() >= J or joints.min() < 0:
        raise LamPackageError(f"{where}: skin.glb's JOINTS_0 index past its {J} joints")
    ibm = (_accessor(gltf, blob, skin.inverseBindMatrices, where).reshape(-1, 4, 4).transpose(0, 2, 1)
           if skin.inverseBindMatrices is not None else np.tile(np.eye(4), (J, 1, 1)))
    if len(ibm) != J:
        raise LamPackageError(f"{where}: skin.glb has {len(ibm)} inverse bind matrices for {J} joints")
    try:
        rest = np.stack([world_of(j) for j in skin.joints])
        bind_pos = np.linalg.inv(ibm)[:, :3, 3]
    except (IndexError, np.linalg.LinAlgError) as e:
        raise LamPackageError(f"{where}: skin.glb's skeleton is malformed ({e})") from None
    jpos = {j: k for k, j in enumerate(skin.joints)}
    jparent = np.full(J, -1)
    for k, j in enumerate(skin.joints):
        p = parent.get(j)
        while p is not None and p not in jpos:
            p = parent.get(p)
        jparent[k] = -1 if p is None else jpos[p]
    wsum = weights.sum(1, keepdims=True)
    if (wsum <= 0).any() or not np.isfinite(weights).all():
        raise LamPackageError(f"{where}: skin.glb has vertices without skin weights")
    scene_extras = {}
    if gltf.scenes:
        scene_extras = gltf.scenes[gltf.scene or 0].extras or {}
    return {"vertices": vertices, "joints": joints, "weights": weights / wsum, "targets": targets, "other": other,
            "joint_names": [str(gltf.nodes[j].name or f"joint{k}") for k, j in enumerate(skin.joints)],
            "joint_parent": jparent, "joint_position": bind_pos, "bind_fix": rest @ ibm,
            "origin": scene_extras.get(ORIGIN_KEY) if isinstance(scene_extras, dict) else None}


def read_package(path: str | Path) -> LamPackage:
    """Read and check a LAM package zip (see the module docstring). Nothing is written to disk.
    Any problem -> LamPackageError naming the member and what is wrong."""
    path = Path(path)
    where = path.name
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise LamPackageError(f"LAM package not found: {path}") from None
    except (zipfile.BadZipFile, OSError) as e:
        raise LamPackageError(f"{where}: not a zip archive ({e})") from None
    with zf:
        found = _safe_entries(zf, where)
        raw = {k: _read_member(zf, info, where) for k, info in found.items() if k in MEMBERS}
        has_animation = "animation.glb" in found
    ply = _read_ply(raw["offset.ply"], where)
    glb = _read_glb(raw["skin.glb"], where)
    try:
        order = np.asarray(json.loads(raw["vertex_order.json"]), dtype=np.int64)
    except (ValueError, TypeError, UnicodeDecodeError) as e:
        raise LamPackageError(f"{where}: vertex_order.json is not a JSON list of integers ({e})") from None
    n = len(glb["vertices"])
    if len(ply["offsets"]) != n:
        raise LamPackageError(f"{where}: offset.ply has {len(ply['offsets'])} Gaussians but skin.glb's mesh has "
                              f"{n} vertices (LAM pairs Gaussian i with vertex i)")
    if n == 0 or n > MAX_GAUSSIANS:
        raise LamPackageError(f"{where}: {n} Gaussians (expected 1..{MAX_GAUSSIANS})")
    if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
        raise LamPackageError(f"{where}: vertex_order.json must be a permutation of 0..{n - 1}, "
                              f"got {order.size} entries")
    names = glb["joint_names"]
    if glb["origin"] is not None:
        try:
            origin = np.asarray(glb["origin"], np.float64).reshape(3)
        except (ValueError, TypeError):
            raise LamPackageError(f"{where}: skin.glb's scene extras {ORIGIN_KEY!r} must be 3 numbers") from None
        source = "headsplat"
    else:
        head = next((names.index(h) for h in HEAD_JOINTS if h in names), None)
        if head is None:
            raise LamPackageError(f"{where}: skin.glb has no 'head' joint to place the head by")
        origin, source = glb["joint_position"][head] - NECK_PIVOT, "head joint"
    return LamPackage(
        name=path.stem, vertices=glb["vertices"], offsets=ply["offsets"], rgb=np.clip(ply["rgb"], 0, 1),
        opacities=(1 / (1 + np.exp(-ply["logit"]))).astype(np.float32),
        scales=np.exp(np.clip(ply["log_scales"], -30, 5)).astype(np.float32), quats=normalize_quats(ply["quats"]),
        targets=glb["targets"], other_targets=glb["other"], joint_names=names, joint_parent=glb["joint_parent"],
        joint_position=glb["joint_position"], bind_fix=glb["bind_fix"], skin_joints=glb["joints"],
        skin_weights=glb["weights"], vertex_order=order, origin=origin, origin_source=source,
        has_animation=has_animation)


# ------------------------------------------------------------------------------------------ the avatar
LAM_INFO = MethodInfo(
    id="lam-import", name="LAM (imported package)", version="2",  # 2: retargets (the reenactment protocols)
    description="an avatar package exported by LAM (aigc3d/LAM), read and animated here, aligned to the photo",
    animatable=True, link="https://github.com/aigc3d/LAM", license="Apache-2.0 (LAM code); packages: their own",
    # its retargeting tracks faces with our template fitted to its render (FIT_PARAMETERS)
    parameters={"external": True, "format": "LAM chat-avatar zip", **FIT_PARAMETERS})


def _similarity_matrix(scale: float, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    M = np.eye(4)
    M[:3, :3], M[:3, 3] = scale * R, t
    return M


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton products a*b of quaternions [...,4] (w, x, y, z)."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], -1)


class LamAvatar(GaussianAvatar):
    """A LAM package as a GaussianAvatar in our head world (optionally aligned to a photo).

    `similarity` (s, R, t) maps the package's head world (file frame minus its origin) into the world
    of `input_camera`: x -> s R x + t. Everything is precomputed in that world, so gaussians(controls)
    is a weighted sum of morph targets plus skinning (~5 ms for 20k Gaussians on 2 cores)."""

    def __init__(self, package: LamPackage, info: MethodInfo = LAM_INFO, similarity=None,
                 input_camera: Camera | None = None, extra: dict | None = None):
        self.info, self.package = info, package
        s, R, t = similarity if similarity is not None else (1.0, np.eye(3), np.zeros(3))
        self.similarity = (float(s), np.asarray(R, np.float64), np.asarray(t, np.float64))
        S = _similarity_matrix(*self.similarity) @ _similarity_matrix(1.0, np.eye(3), -package.origin)
        A = S[:3, :3]
        self._base = ((package.vertices + package.offsets).astype(np.float64) @ A.T + S[:3, 3]).astype(np.float32)
        self._names = list(package.targets)
        self._deltas = (np.stack([package.targets[k] for k in self._names]).astype(np.float64) @ A.T).astype(np.float32) \
            if self._names else np.zeros((0, len(package), 3), np.float32)
        q_align = rotmat_to_quat(self.similarity[1][None])[0]
        self._quats = normalize_quats(_quat_mul(q_align[None], package.quats))
        self._scales = (package.scales * self.similarity[0]).astype(np.float32)
        self._sh = rgb_to_sh(package.rgb)
        # skinning in our world: B_j = S (rest x IBM) S^-1, joint pivots S p_j
        self._bind = S[None] @ package.bind_fix @ np.linalg.inv(S)[None]
        self._bind_identity = bool(np.allclose(self._bind, np.eye(4), atol=1e-5))
        self._pivots = package.joint_position @ A.T + S[:3, 3]
        names = package.joint_names
        used = np.zeros(len(names), bool)
        used[np.unique(package.skin_joints[package.skin_weights > 0])] = True
        find = lambda cands: next((names.index(c) for c in cands if c in names and used[self._subtree(names.index(c))].any()), None)  # noqa: E731
        self._joint = {"head": find(HEAD_JOINTS), "jaw": find(JAW_JOINTS),
                       "eye_r": find(EYE_JOINTS["right"]), "eye_l": find(EYE_JOINTS["left"])}
        self._neutral = None
        self._tracked = None  # see _tracking_head
        self.input_camera = input_camera
        neutral = self.gaussians()
        visible = neutral.opacities > 0.05
        self.head_center, self.head_radius = head_extent(neutral.means[visible] if visible.any() else neutral.means)
        if self.input_camera is None:
            self.input_camera = framing_camera(self.head_center, self.head_radius, 0.0, 0.0, size=512)
        self._extra = extra or {}

    def _subtree(self, j: int) -> np.ndarray:
        """Indices of joint j and its descendants in the skin."""
        parents = self.package.joint_parent
        members = np.zeros(len(parents), bool)
        members[j] = True
        while True:  # add children of members until none is new (depth of the skeleton passes)
            new = ~members & (parents >= 0) & members[np.maximum(parents, 0)]
            if not new.any():
                return np.flatnonzero(members)
            members |= new

    # ------------------------------------------------------------------ controls
    def _interpret(self, controls: Controls | None) -> tuple[np.ndarray, dict]:
        """Controls (the rig's: ARKit names + head pose) -> (morph weights [T], joint rotations {joint: R [3,3]})."""
        c = rig.validate(controls)  # unknown names, non-finite values -> the rig's ValueError; clipped
        w = dict.fromkeys(self._names, 0.0)
        for k in rig.IGNORED_ARKIT:  # no motion in our rig (validate drops them), but a package may have the target
            if k in w and controls and k in controls:
                w[k] = float(np.clip(float(controls[k]), 0.0, 1.0))
        for k, v in c.items():
            if k in w:  # an ARKit name with a morph target: drive it
                w[k] = v
        joints: dict[str, np.ndarray] = {}
        # eyeLook* without a target: the eye joints turn by the rig's gaze angles (right eye first)
        look = {k: v for k, v in c.items() if k in EYE_LOOK and k not in w and v}
        if look:
            gaze = rig.gaze_from_arkit(look)
            for e, (yaw, pitch) in zip(("eye_r", "eye_l"), gaze):
                if self._joint[e] is not None and (yaw or pitch):
                    joints[e] = rotation_from_euler(float(yaw), float(pitch), 0.0)
        jaw = c.get("jawOpen", 0.0) if "jawOpen" not in w else 0.0
        if jaw and self._joint["jaw"] is not None:
            joints["jaw"] = rotation_from_euler(0.0, jaw * JAW_JOINT_MAX, 0.0)
        hy, hp, hr = (c.get(k, 0.0) for k in rig.HEAD_CONTROLS)
        if (hy or hp or hr) and self._joint["head"] is not None:
            joints["head"] = rotation_from_euler(hy, hp, hr)
        weights = np.array([w[n] for n in self._names], np.float32)
        return weights, joints

    def _joint_matrices(self, joints: dict) -> np.ndarray | None:
        """World transforms [J,4,4] of the skin's joints under the joint rotations (each about its own
        bind position, children first), or None when nothing moves."""
        if not joints and self._bind_identity:
            return None
        J = len(self.package.joint_names)
        M = np.tile(np.eye(4), (J, 1, 1))
        for key in ("eye_r", "eye_l", "jaw", "head"):  # children before the head that carries them
            if key not in joints or self._joint[key] is None:
                continue
            j = self._joint[key]
            D = np.eye(4)
            D[:3, :3] = joints[key]
            D[:3, 3] = self._pivots[j] - joints[key] @ self._pivots[j]
            sub = self._subtree(j)
            M[sub] = D[None] @ M[sub]
        return M @ self._bind

    def gaussians(self, controls: Controls | None = None) -> Gaussians:
        if not controls and self._neutral is not None:
            return self._neutral
        weights, joints = self._interpret(controls)
        means = self._base.copy()
        nz = np.flatnonzero(weights)
        if len(nz):
            means += np.tensordot(weights[nz], self._deltas[nz], axes=1)
        quats = self._quats
        M = self._joint_matrices(joints)
        if M is not None:
            pk = self.package
            A = np.einsum("nk,nkij->nij", pk.skin_weights, M[pk.skin_joints])  # [N,4,4] blended transforms
            means = (np.einsum("nij,nj->ni", A[:, :3, :3], means) + A[:, :3, 3]).astype(np.float32)
            jq = rotmat_to_quat(M[:, :3, :3] / np.cbrt(np.abs(np.linalg.det(M[:, :3, :3])))[:, None, None])
            quats = normalize_quats(_quat_mul(np.einsum("nk,nkq->nq", pk.skin_weights, jq[pk.skin_joints]), quats))
        g = Gaussians(means, quats, self._scales, self.package.opacities, self._sh)
        if not controls:
            self._neutral = g
        return g

    # ------------------------------------------------------------------ tracking
    def _tracking_head(self):
        """The hub's head model fitted to this avatar's own neutral render at input_camera (a
        model.head.ict_fit.HeadFit, made once): what our tracker retargets frames against, so head controls
        are relative to the pose that camera sees and expressions to the face that render shows."""
        if self._tracked is None:
            from model.head.ict_fit import fit
            self._tracked = fit(to_uint8(self.render(self.input_camera).rgb))
        return self._tracked

    def retarget(self, image, neutral=None) -> dict:
        """The rig's controls (ARKit weights + head pose, which this avatar follows through its ARKit
        targets and joints) for the expression and head pose in `image` (RGB or Landmarks): the hub's
        tracker, model.head.rig.retarget, against _tracking_head(); neutral as there."""
        return rig.retarget(landmarks_of(image), self._tracking_head(), neutral)

    def neutral_offsets(self, image):
        """The tracked person's rest face in `image`, for retarget(neutral=...) (model.head.rig)."""
        return rig.neutral_offsets(landmarks_of(image), self._tracking_head())

    def metadata(self) -> dict:
        pk = self.package
        return {**super().metadata(), "package": pk.name, "morph_targets": len(pk.targets),
                "arkit_without_target": [n for n in rig.ARKIT_NAMES if n not in pk.targets],
                "other_targets": pk.other_targets, "origin_source": pk.origin_source,
                "driven_joints": {k: (pk.joint_names[v] if v is not None else None) for k, v in self._joint.items()},
                **self._extra}


def load_lam_package(path: str | Path) -> LamAvatar:
    """A LAM package zip -> an animatable Avatar in our head world (not aligned to any photo: its
    input_camera is the frontal framing camera). Malformed packages -> LamPackageError."""
    t0 = time.perf_counter()
    pkg = read_package(path)
    return LamAvatar(pkg, extra={"import_s": round(time.perf_counter() - t0, 4)})


# ------------------------------------------------------------------------------------------ alignment
def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) minimising sum |s R src_i + t - dst_i|² (points [N,3]; Umeyama 1991)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    U, D, Vt = np.linalg.svd(b.T @ a / len(src))
    E = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    R = U @ E @ Vt
    s = float(np.trace(np.diag(D) @ E) / max((a * a).sum() / len(src), 1e-18))
    return s, R, mu_d - s * R @ mu_s


def avatar_landmarks(avatar: GaussianAvatar, size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """The avatar rendered frontally, its 478 mediapipe landmarks lifted to 3D by the render's depth:
    (points [478,3] in the avatar's world, valid [478] bool where the render is opaque there)."""
    from model.head.landmarks import detect_landmarks
    cam = framing_camera(avatar.head_center, avatar.head_radius, 0.0, 0.0, size=size)
    r = avatar.render(cam)
    try:
        lm = detect_landmarks(to_uint8(r.rgb))
    except InputError as e:
        raise LamPackageError(f"no face found in the avatar's frontal render ({e})") from None
    px = np.clip(np.round(lm.xy).astype(int), 0, size - 1)
    depth, alpha = r.depth[px[:, 1], px[:, 0]], r.alpha[px[:, 1], px[:, 0]]
    valid = (alpha > 0.5) & (depth > 0)
    return cam.unproject(lm.xy, np.where(valid, depth, 1.0)), valid


def align_to_photo(avatar: LamAvatar, image) -> LamAvatar:
    """The avatar placed in the world of the photo's fitted camera (the hub's landmark fit of our
    template), so that input_camera shows it as the photo shows the person.

    The avatar's frontal render gives 3D landmarks (mediapipe + the render's depth); a similarity
    (scale, rotation, translation) takes them onto the fitted template's landmarks (468 face points,
    refit on the 80% that agree best). metadata()["alignment"]: nme = mean 2D distance between the
    aligned landmarks seen by the photo's camera and the photo's detected landmarks / outer-eye-corner
    distance; rms_mm = 3D residual to the fitted template's landmarks; scale and rotation found."""
    from model.head.ict_fit import fit
    from model.head.landmarks import detect_landmarks, inter_ocular
    image = load_image(image)
    lm = detect_landmarks(image)
    fitted = fit(image, landmarks=lm)
    target = fitted.template.landmarks(rig.deform(fitted, None))[:468]  # the rest face our avatar stands on
    src, valid = avatar_landmarks(avatar)
    src, valid = src[:468], valid[:468]
    if valid.sum() < 100:
        raise LamPackageError(f"only {int(valid.sum())} face landmarks land on the avatar's render: cannot align")
    keep = np.flatnonzero(valid)
    s, R, t = umeyama(src[keep], target[keep])
    res = np.linalg.norm(src[keep] @ R.T * s + t - target[keep], axis=1)
    keep = keep[res <= np.quantile(res, 0.8)]
    s, R, t = umeyama(src[keep], target[keep])
    # compose with the avatar's current similarity: new world = (s, R, t) o old world
    s0, R0, t0 = avatar.similarity
    aligned = s * R @ src[keep].T
    rms = float(np.sqrt(((aligned.T + t - target[keep]) ** 2).sum(1).mean()))
    uv, _ = fitted.camera.project(src[:468] @ R.T * s + t)
    nme = float(np.linalg.norm(uv[valid] - lm.xy[:468][valid], axis=1).mean() / max(inter_ocular(lm.points), 1e-9))
    angle = float(np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1))))
    meta = {"alignment": {"nme": round(nme, 4), "rms_mm": round(1000 * rms, 2), "scale": round(s, 4),
                          "rotation_deg": round(angle, 2), "landmarks_used": int(len(keep)),
                          "fit_nme": round(float(fitted.nme), 4)}}
    return LamAvatar(avatar.package, avatar.info, (s * s0, R @ R0, s * R @ t0 + t), fitted.camera,
                     {**{k: v for k, v in avatar._extra.items() if k != "alignment"}, **meta})


# ------------------------------------------------------------------------------------------ the method
def _plain(folder: Path, name: str, what: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise LamPackageError(f"{folder.name}: {what} {name!r} is missing")
    return path


class LamImport(Method):
    """Registered as `lam-import`: LAM packages made elsewhere for a dataset's photos (folder format in
    the module docstring), each read, aligned to its photo and animated here."""

    info = LAM_INFO

    def __init__(self, root: str | Path | None = None):
        root = root or os.environ.get("HEADSPLAT_LAM_PACKAGES")
        if not root:
            raise LamPackageError("lam-import needs a folder of LAM packages: LamImport(root=DIR) or "
                                  "HEADSPLAT_LAM_PACKAGES=DIR (DIR/<subject>/input.png + avatar.zip)")
        self.root = Path(root)
        if not self.root.is_dir():
            raise LamPackageError(f"LAM packages folder not found: {self.root}")
        self.subjects: dict[str, Path] = {}
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            key = pixels_sha256(load_image(_plain(folder, "input.png", "input photo")))
            self.subjects[key] = _plain(folder, "avatar.zip", "LAM package")
        if not self.subjects:
            raise LamPackageError(f"{self.root}: no subject folders (<subject>/input.png + avatar.zip)")

    def reconstruct(self, image) -> LamAvatar:
        image = load_image(image)
        key = pixels_sha256(image)
        if key not in self.subjects:
            raise LamPackageError(f"lam-import: no LAM package for this photo (subjects: "
                                  f"{', '.join(p.parent.name for p in self.subjects.values())})")
        t0 = time.perf_counter()
        avatar = load_lam_package(self.subjects[key])
        t1 = time.perf_counter()
        aligned = align_to_photo(avatar, image)
        aligned._extra.update(subject=self.subjects[key].parent.name,
                              timings_s={"import": round(t1 - t0, 4), "align": round(time.perf_counter() - t1, 4)})
        return aligned
