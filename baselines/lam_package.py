"""LAM avatar packages (the chat-avatar zip of aigc3d/LAM): the zip read and checked, nothing animated
(baselines/lam.py makes the avatar of a package). No entry is extracted to disk.

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
"""
from __future__ import annotations

import io
import json
import posixpath
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.core.camera import rigid_matrix
from model.core.errors import InputError
from model.core.export import PLY_PROPERTIES
from model.core.gaussians import normalize_quats
from model.head import rig
from model.head.fitting import NECK_PIVOT
from model.ours.lam_export import ORIGIN_KEY  # scene extras: our head world's origin in the file

MEMBERS = ("offset.ply", "skin.glb", "vertex_order.json")  # required; animation.glb is optional here
OPTIONAL_MEMBERS = ("animation.glb",)
MAX_ENTRIES = 512  # entries in the zip (LAM's has 12, noise included)
MAX_MEMBER_BYTES = 64 << 20  # declared (and actually read) uncompressed size of one member
MAX_TOTAL_BYTES = 160 << 20  # declared uncompressed size of the whole archive
MAX_RATIO = 200  # compression ratio above which a member > 1 MiB is taken for a zip bomb
MAX_GAUSSIANS = 500_000
HEAD_JOINTS = ("head",)  # the joint whose bind position places the head (and that head controls turn)


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
    missing = [n for n in PLY_PROPERTIES if n not in names]
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
    R = Rotation.from_quat(node.rotation).as_matrix() if node.rotation else np.eye(3)  # glTF and scipy: (x, y, z, w)
    if node.scale:
        R = R * np.asarray(node.scale, np.float64)  # T R S: the scale acts first
    return rigid_matrix(R, node.translation or np.zeros(3))


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

