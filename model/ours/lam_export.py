"""Our avatar as a LAM avatar package: the zip that LAM's web renderer (npm gaussian-splat-renderer-for-lam)
and chat-avatar stacks animate from ARKit weights. baselines/lam_package.py documents the layout and reads it.

What goes in (all in the package's glTF frame: our head world's axes, translated by LAM_ORIGIN):
- Gaussians: ours has ~100k; LAM's renderer expects one Gaussian per mesh vertex and LAM's own avatars
  have 20k (its paper also 5k and 80k). We merge ours, never drop them: each merged Gaussian is one
  cluster of our Gaussians that share a template region and a block of UV texels whose size adapts to
  the detail and to how the rig moves them (a quadtree: see cluster_ids), moment-matched (weights
  opacity x footprint area: mean, covariance including the members' spread, colour, opacity). The
  default count, 40k, is the top of LAM's 20k-40k web sizes: the merge costs least there (see the
  measurements at cluster_ids). Clusters that the rig would pull apart are not made, so each rides
  on one piece of the rig (upper and lower lip never merge across the mouth slit).
- skin.glb: one skinned mesh with one vertex per merged Gaussian: the weighted mean of its members'
  points on the template surface; offset.ply holds the rest (hair thickness). Triangles: a Delaunay
  triangulation of the vertices' UVs, long 3D edges (seams, islands) removed; LAM's renderer hides
  the mesh, other tools show it. 52 morph targets named by ARKit (mesh.extras.targetNames), each the
  displacement of the merged Gaussians under that ARKit control at 1. Our rig is ARKit-native
  (model.head.rig: an ARKit name drives the head model's own shape(s) of that name; eyeLook* also
  turn the eyeballs), so each target is the model's own shape as the rig shows it on this person,
  merged; IGNORED_ARKIT names (tongueOut: the model has no shape) are empty targets. Targets add as
  the model's shapes do; only the eyeballs' turns are linearised. Joints hip -> neckUpper -> head
  (LAM's names: its renderer looks the "hip" and "head" bones up by name); the head joint sits on our
  neck pivot and carries the rig's head-rotation weight (the neck fade), neckUpper the rest. The
  origin of our head world in the file is recorded in the scene extras (ORIGIN_KEY).
- offset.ply: LAM's meaning of the 3DGS properties: x, y, z the offset from the vertex, f_dc RGB in
  [0, 1] (LAM's renderer reads colour there, not SH), opacity logit, log scales, (w, x, y, z).
- animation.glb: 12 gentle head clips on the same joints (LAM's renderer loads that file and plays its
  idle/speak clips; it does not start without it). vertex_order.json: vertex indices sorted by height,
  as LAM's tool writes it.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from model.core.camera import rigid_matrix
from model.core.export import atomic_write, ply_bytes
from model.core.gaussians import covariances, rotmat_to_quat
from model.head import rig
from model.head.template import REGIONS

LAM_ORIGIN = np.array([0.0, 1.67, 0.0])  # where LAM's exports put a head (p2-1: head joint - NECK_PIVOT)
ORIGIN_KEY = "headsplat_origin"  # scene extras of skin.glb: our head world's origin in the file's frame
MIN_GAUSSIANS, MAX_GAUSSIANS = 20_000, 40_000
DEFAULT_TARGET = MAX_GAUSSIANS  # the merge costs least at the top of LAM's sizes
MAX_BYTES = 15 * 1000 * 1000
ARKIT_NAMES = rig.ARKIT_NAMES
_FLOAT, _UBYTE, _UINT = 5126, 5121, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


# ------------------------------------------------------------------------------------------ merging
# Clusters are cells of a quadtree in UV, per template region (face skin, scalp, lips, eyes, ... and the
# bust): a Gaussian alone, then blocks of 1, 2, 4, 8, 16 texels. A block is kept whole when its members
# agree (cost below a threshold), else split; the threshold is bisected to the target count. Cost: the
# members' spread of colour (RGB in [0, 1]), of position and of motion under the rig (each shape's
# displacement at 1, projected on their MOTION_DIMS principal directions: 96% of their energy on
# astronaut) (both in units of GEOMETRY_SCALE x head radius), weighted by opacity x footprint area, so
# flat skin and the back of the head merge, eyes, lips, glasses and collar edges keep their Gaussians,
# and what the rig moves apart stays apart. Why not per triangle (as on the procedural template): the
# ICT head has 64k triangles, 41k of them carrying ours' ~105k Gaussians, so per-triangle clusters
# cannot come below ~43k (LAM's sizes end at 40k); without the motion term, blocks across the mouth slit
# merged the lips and the package's jawOpen did not part them (inner-lip gap / eye-corner distance at
# jawOpen 1: 0.005, with it 0.41; ours 0.45).
# Measured on the ICT head at 40k (merged vs our render, PSNR front / 45° / back, SPREAD 3): astronaut
# 33.5/34.1/34.8 dB, Grace Hopper 34.6/35.1/36.5 dB (on the procedural template, per triangle: uniform
# blocks 27.2/28.1/29.9 and 25.8/26.7/30.0 dB; the quadtree 34.2/35.4/36.1 and 34.0/34.1/34.0 dB).
LEVELS = (0, 1, 2, 4, 8, 16)  # block side in texels; 0: each Gaussian alone
HAIR_WEIGHT = 0.25
GEOMETRY_SCALE = 0.1
MOTION_DIMS = 16  # principal directions of the rig's motion in the clustering cost (0: none)
UV_RES = 384  # the atlas resolution when an avatar's parameters do not say (HeadSplat's default uv_res)


def cluster_ids(groups: np.ndarray, uv: np.ndarray, res: int, target: int, means: np.ndarray, rgb: np.ndarray,
                weights: np.ndarray, head_radius: float, motion: np.ndarray | None = None) -> np.ndarray:
    """Cluster index [N] (0..K-1, K <= target when possible) of each Gaussian. groups [N] int: clusters never
    straddle a group (ours: template regions); uv [N,2] >= 0 on a res x res atlas (a chart may lie past
    [0, 1]), means [N,3] metres, rgb [N,3] in [0, 1], weights [N] >= 0 (opacity x area); motion [N,M]
    metres (optional): the Gaussians' displacements under the rig's shapes, whose spread counts as the
    positions' does (members that move apart, as the lips across the mouth slit, do not merge)."""
    n = len(groups)
    cols = [rgb, means / (GEOMETRY_SCALE * head_radius)]
    if motion is not None:
        cols.append(motion / (GEOMETRY_SCALE * head_radius))
    feats = np.concatenate(cols, axis=1).astype(np.float64)
    _, group = np.unique(np.asarray(groups, np.int64), return_inverse=True)
    keys, costs = [], []
    for side in LEVELS:
        if side == 0:
            inv = np.arange(n)
        else:
            cells = np.floor(uv * res / side).astype(np.int64)
            cells -= cells.min(0)
            span = cells.max(0) + 1
            _, inv = np.unique((group * span[0] + cells[:, 0]) * span[1] + cells[:, 1], return_inverse=True)
        k = int(inv.max()) + 1
        w = np.bincount(inv, weights, k)
        mu = _segment_sum(inv, weights[:, None] * feats, k) / np.maximum(w, 1e-30)[:, None]
        keys.append(inv)
        costs.append(np.bincount(inv, weights * ((feats - mu[inv]) ** 2).sum(1), k))

    def ids_at(tau: float) -> np.ndarray:
        # a Gaussian's cluster is its coarsest block whose cost is within tau; a block's cost is never
        # below a sub-block's, so the blocks chosen this way partition the Gaussians
        level = np.zeros(n, np.int64)
        for li in range(len(LEVELS) - 1, 0, -1):
            level[(level == 0) & (costs[li][keys[li]] <= tau)] = li
        key = np.choose(level, keys) * len(LEVELS) + level
        return np.unique(key, return_inverse=True)[1]

    lo, hi = 0.0, float(max(c.max() for c in costs)) + 1e-30  # count(hi) = one block per cell of the top level
    best = ids_at(hi)
    for _ in range(40):  # bisection in log space: the count falls as tau grows
        mid = np.sqrt(lo * hi) if lo > 0 else hi * 1e-6
        ids = ids_at(mid)
        m = int(ids.max()) + 1
        if m > target:
            lo = mid
        else:
            hi, best = mid, ids
            if m >= 0.995 * target:
                break
    return best


def _segment_sum(ids: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """Sums of values [N,...] by ids [N] (0..k-1) -> [k,...] float64."""
    import scipy.sparse as sp
    values = np.asarray(values, np.float64)
    n = len(ids)
    m = sp.csr_matrix((np.ones(n), (ids, np.arange(n))), shape=(k, n))
    return np.asarray(m @ values.reshape(n, -1)).reshape((k,) + values.shape[1:])


# Plain moment matching (SPREAD = 1) leaves faint gaps between merged Gaussians (a merged Gaussian's tails
# are thinner than a row of its members); inflating the members' spread closes them. Measured with the
# quadtree at 40k (front / 45° / back) on the ICT head: astronaut 2.0 -> 31.2/31.7/31.2 dB (a visible grid
# of the UV blocks on the skin), 2.5 -> 32.8/33.3/33.4, 3.0 -> 33.5/34.1/34.8, 3.5 -> 33.3/34.3/35.2,
# 4.0 -> 32.6/34.1/34.8 (blurred, halos at the silhouette); Grace Hopper 2.0 -> 33.1/33.0/31.5,
# 3.0 -> 34.6/35.1/36.5, 4.0 -> 34.0/35.1/38.0. (On the procedural template 2.0 was best, 34.2/35.4/36.1.)
SPREAD = 3.0


def footprint_weights(opacities: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """A Gaussian's share of what a cluster shows [N]: opacity x area of its two largest axes (m^2)."""
    s = np.sort(scales, axis=1)
    return np.maximum(opacities * s[:, 2] * s[:, 1], 1e-20).astype(np.float64)


def merge(ids: np.ndarray, means, quats, scales, opacities, rgb):
    """Merge Gaussians into clusters ids [N] (0..K-1): weighted mean, colour and opacity, covariance =
    members' mean covariance + SPREAD x their positional covariance. Weights: opacity x area of the
    two largest axes. Returns (weights [N] normalised per cluster, means [K,3], quats [K,4], scales [K,3],
    opacities [K], rgb [K,3])."""
    k = int(ids.max()) + 1
    w = footprint_weights(opacities, scales)
    w = w / _segment_sum(ids, w, k)[ids]
    mu = _segment_sum(ids, w[:, None] * means, k)
    d = means - mu[ids]
    cov = _segment_sum(ids, w[:, None, None] * (covariances(quats, scales) + SPREAD * d[:, :, None] * d[:, None, :]), k)
    evals, evecs = np.linalg.eigh(cov)
    evecs[:, :, 2] *= np.sign(np.linalg.det(evecs))[:, None]  # a proper rotation
    out_scales = np.sqrt(np.maximum(evals, 1e-12))
    return (w, mu.astype(np.float32), rotmat_to_quat(evecs), out_scales.astype(np.float32),
            _segment_sum(ids, w * opacities, k).astype(np.float32),
            np.clip(_segment_sum(ids, w[:, None] * rgb, k), 0, 1).astype(np.float32))


def uv_triangles(uv: np.ndarray, points: np.ndarray, max_edge_ratio: float = 3.0) -> np.ndarray:
    """Triangles [F,3] over points [K,3] from a Delaunay triangulation of their UVs [K,2], without the
    triangles that have a 3D edge longer than max_edge_ratio x the median edge (seams, separate islands)."""
    from scipy.spatial import Delaunay
    tri = Delaunay(uv).simplices
    e = np.stack([np.linalg.norm(points[tri[:, i]] - points[tri[:, (i + 1) % 3]], axis=1) for i in range(3)], 1)
    keep = e.max(1) <= max_edge_ratio * np.median(e)
    tri = tri[keep]
    # glTF's front faces are counter-clockwise; orient each triangle's normal away from the head's centre
    p = points[tri]
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    flip = ((p.mean(1) - points.mean(0)) * n).sum(1) < 0
    tri[flip] = tri[flip][:, ::-1]
    return tri.astype(np.uint32)


# ------------------------------------------------------------------------------------------ glTF
class _Blob:
    """Accumulates binary glTF data: buffer views and accessors (4-byte aligned)."""

    def __init__(self, gltf):
        self.gltf, self.data = gltf, bytearray()

    def view(self, array: np.ndarray, target: int | None = None) -> int:
        import pygltflib
        self.data += b"\0" * (-len(self.data) % 4)
        raw = np.ascontiguousarray(array).tobytes()
        self.gltf.bufferViews.append(pygltflib.BufferView(buffer=0, byteOffset=len(self.data), byteLength=len(raw),
                                                          target=target))
        self.data += raw
        return len(self.gltf.bufferViews) - 1

    def accessor(self, array: np.ndarray, kind: str, target: int | None = None, minmax: bool = False,
                 normalized: bool = False) -> int:
        import pygltflib
        ctype = {np.dtype(np.float32): _FLOAT, np.dtype(np.uint8): _UBYTE, np.dtype(np.uint32): _UINT}[array.dtype]
        acc = pygltflib.Accessor(bufferView=self.view(array, target), componentType=ctype, count=len(array), type=kind,
                                 normalized=normalized)
        if minmax:
            acc.min, acc.max = array.min(0).tolist(), array.max(0).tolist()
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1

    def sparse_target(self, delta: np.ndarray, eps: float = 1e-7) -> int:
        """A morph target's POSITION displacements [N,3] as a sparse accessor (only moving vertices;
        none at all -> an accessor without data, which glTF defines as zeros)."""
        import pygltflib
        moving = np.flatnonzero(np.abs(delta).max(1) > eps).astype(np.uint32)
        acc = pygltflib.Accessor(componentType=_FLOAT, count=len(delta), type="VEC3",
                                 min=(delta.min(0) if len(moving) else np.zeros(3)).tolist(),
                                 max=(delta.max(0) if len(moving) else np.zeros(3)).tolist())
        if len(moving):
            acc.sparse = pygltflib.Sparse(
                count=len(moving),
                indices=pygltflib.AccessorSparseIndices(bufferView=self.view(moving), componentType=_UINT),
                values=pygltflib.AccessorSparseValues(bufferView=self.view(delta[moving].astype(np.float32))))
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1

    def glb(self) -> bytes:
        import pygltflib
        self.data += b"\0" * (-len(self.data) % 4)
        self.gltf.buffers = [pygltflib.Buffer(byteLength=len(self.data))]
        self.gltf.set_binary_blob(bytes(self.data))
        return b"".join(self.gltf.save_to_bytes())


def _skeleton_nodes(head: np.ndarray) -> tuple[list, dict]:
    """Joint nodes hip -> neckUpper -> head for a head joint at `head` [3] (file frame, metres)."""
    import pygltflib
    pos = {"hip": head + np.array([0.0, -0.57, 0.035]), "neckUpper": head + np.array([0.0, -0.045, -0.004]),
           "head": head}
    nodes = [pygltflib.Node(name="hip", translation=pos["hip"].tolist(), children=[1]),
             pygltflib.Node(name="neckUpper", translation=(pos["neckUpper"] - pos["hip"]).tolist(), children=[2]),
             pygltflib.Node(name="head", translation=(pos["head"] - pos["neckUpper"]).tolist())]
    return nodes, pos


def skin_glb(vertices, triangles, joints, weights, targets: dict, head: np.ndarray, origin: np.ndarray) -> bytes:
    """skin.glb bytes. vertices [K,3], triangles [F,3], joints [K,4] uint8 into (hip, neckUpper, head),
    weights [K,4], targets {ARKit name: [K,3] displacement}, head joint position [3], origin [3]."""
    import pygltflib
    gltf = pygltflib.GLTF2(asset=pygltflib.Asset(generator="HeadSplat Hub model/ours/lam_export.py", version="2.0"))
    blob = _Blob(gltf)
    joint_nodes, pos = _skeleton_nodes(head)
    # node 0: scene root; 1..3: joints (children indices shifted by 1); 4: the skinned mesh
    for n in joint_nodes:
        n.children = [c + 1 for c in (n.children or [])] or None
    names = list(targets)
    attrs = pygltflib.Attributes(POSITION=blob.accessor(vertices.astype(np.float32), "VEC3", _ARRAY_BUFFER, minmax=True),
                                 JOINTS_0=blob.accessor(joints.astype(np.uint8), "VEC4", _ARRAY_BUFFER),
                                 WEIGHTS_0=blob.accessor(weights.astype(np.float32), "VEC4", _ARRAY_BUFFER))
    indices = blob.accessor(triangles.reshape(-1, 1).astype(np.uint32), "SCALAR", _ELEMENT_ARRAY_BUFFER)
    morph = [{"POSITION": blob.sparse_target(targets[n])} for n in names]
    ibm = np.stack([rigid_matrix(np.eye(3), -pos[k]).T for k in ("hip", "neckUpper", "head")])  # column-major
    gltf.meshes = [pygltflib.Mesh(name="head_final", primitives=[pygltflib.Primitive(
        attributes=attrs, indices=indices, mode=pygltflib.TRIANGLES, targets=morph)],
        weights=[0.0] * len(names), extras={"targetNames": names})]
    gltf.skins = [pygltflib.Skin(name="headsplat", joints=[1, 2, 3], skeleton=1,
                                 inverseBindMatrices=blob.accessor(ibm.reshape(3, 16).astype(np.float32), "MAT4"))]
    gltf.nodes = [pygltflib.Node(name="headsplat_avatar", children=[1, 4]), *joint_nodes,
                  pygltflib.Node(name="head_final", mesh=0, skin=0)]
    gltf.scenes = [pygltflib.Scene(name="Scene", nodes=[0], extras={ORIGIN_KEY: [float(x) for x in origin]})]
    gltf.scene = 0
    return blob.glb()


# Clip roles in the order LAM's renderer groups them (hello, idle, listen, speak, think): (name, seconds,
# yaw, pitch, roll amplitudes in radians, cycles). Small, slow head motions: a body idle in LAM's files.
CLIPS = (("hello", 2.2, 0.05, -0.08, 0.02, 1), ("idle", 10.0, 0.04, 0.02, 0.015, 2),
         ("listen_1", 3.0, 0.03, 0.05, 0.03, 1), ("listen_2", 3.0, -0.03, 0.04, -0.03, 1),
         ("speak_1", 2.0, 0.05, 0.03, 0.02, 2), ("speak_2", 2.0, -0.05, 0.03, -0.02, 2),
         ("speak_3", 3.0, 0.06, 0.04, 0.0, 3), ("speak_4", 2.3, -0.04, 0.05, 0.02, 2),
         ("speak_5", 3.0, 0.03, 0.02, -0.03, 2), ("think_1", 1.2, 0.08, -0.06, 0.05, 1),
         ("think_2", 3.0, 0.1, -0.05, 0.06, 1), ("think_3", 1.3, 0.05, -0.03, 0.03, 1))


def animation_glb(head: np.ndarray) -> bytes:
    """animation.glb bytes: the joints of skin.glb (same names and rest pose) and CLIPS on the head joint."""
    import pygltflib
    from scipy.spatial.transform import Rotation

    from model.head.fitting import rotation_from_euler
    gltf = pygltflib.GLTF2(asset=pygltflib.Asset(generator="HeadSplat Hub model/ours/lam_export.py", version="2.0"))
    blob = _Blob(gltf)
    gltf.nodes, _ = _skeleton_nodes(head)
    gltf.scenes, gltf.scene = [pygltflib.Scene(name="Scene", nodes=[0])], 0
    for name, seconds, yaw, pitch, roll, cycles in CLIPS:
        t = np.linspace(0.0, seconds, int(seconds * 15) + 1, dtype=np.float32)
        phase = np.sin(2 * np.pi * cycles * t / seconds)  # starts and ends at rest
        R = np.stack([rotation_from_euler(yaw * p, pitch * np.sin(np.pi * p), roll * p) for p in phase])
        q = Rotation.from_matrix(R).as_quat().astype(np.float32)  # glTF order (x, y, z, w)
        sampler = pygltflib.AnimationSampler(input=blob.accessor(t[:, None], "SCALAR", minmax=True),
                                             output=blob.accessor(q, "VEC4"), interpolation="LINEAR")
        gltf.animations.append(pygltflib.Animation(name=name, samplers=[sampler], channels=[
            pygltflib.AnimationChannel(sampler=0, target=pygltflib.AnimationChannelTarget(node=2, path="rotation"))]))
    return blob.glb()


# ------------------------------------------------------------------------------------------ export
def rig_displacements(avatar) -> dict[str, np.ndarray]:
    """{ARKit name: [N,3] float64 metres}: how each of our Gaussians moves under that control at 1 (one rig
    evaluation per name; IGNORED_ARKIT names, which the rig does not move, give zeros)."""
    g0 = avatar.gaussians().means.astype(np.float64)
    return {name: np.zeros_like(g0) if name in rig.IGNORED_ARKIT
            else avatar.gaussians({name: 1.0}).means.astype(np.float64) - g0 for name in ARKIT_NAMES}


def motion_features(displacements: dict[str, np.ndarray], weights: np.ndarray, dims: int = MOTION_DIMS) -> np.ndarray:
    """[N,dims] the displacements [N,3] per shape projected on their `dims` principal directions (weighted by
    weights [N], uncentred): distances between Gaussians in it ~ how far apart the rig moves them."""
    d = np.concatenate([v for v in displacements.values()], axis=1)  # [N,3S]
    evals, evecs = np.linalg.eigh((d * weights[:, None]).T @ d / weights.sum())
    return d @ evecs[:, ::-1][:, :dims]


def merged(avatar, target: int = DEFAULT_TARGET, displacements: dict | None = None):
    """Our avatar's Gaussians merged to ~target: (ids [N] cluster of each of ours, then merge()'s outputs,
    uv [N,2] of ours in the template atlas). avatar: model.ours.avatar.HeadSplatAvatar; displacements:
    rig_displacements(avatar), computed when not given."""
    b = avatar.binding
    g0 = avatar.gaussians()
    rgb = np.clip(g0.rgb, 0, 1).astype(np.float64)
    opac = g0.opacities.astype(np.float64)
    uv = np.einsum("ni,nij->nj", b.bary, avatar.face_uvs[b.faces])
    # the hair's texture would take the budget from the face by colour spread alone: its Gaussians count
    # for HAIR_WEIGHT of theirs, so eyes, lips and teeth keep their detail (and the mouth its opening)
    w = footprint_weights(opac, g0.scales) * np.where(avatar.face_region[b.faces] == REGIONS.index("scalp"),
                                                      HAIR_WEIGHT, 1.0)
    if displacements is None:
        displacements = rig_displacements(avatar)
    motion = motion_features(displacements, w) if MOTION_DIMS else None
    ids = cluster_ids(avatar.face_region[b.faces], uv, int(avatar.info.parameters.get("uv_res", UV_RES)), target,
                      g0.means, rgb, w, avatar.head_radius, motion)
    return (ids, *merge(ids, g0.means.astype(np.float64), g0.quats, g0.scales, opac, rgb), uv)


def package_contents(avatar, target: int = DEFAULT_TARGET) -> dict:
    """The package's members as bytes {"offset.ply", "skin.glb", "animation.glb", "vertex_order.json"},
    plus "stats" (counts, cluster sizes). avatar: model.ours.avatar.HeadSplatAvatar."""
    fitted, b = avatar.fitted, avatar.binding
    # one rig evaluation per ARKit name (the rig's controls are ARKit's names); IGNORED_ARKIT names (no rig
    # motion) give empty targets
    displacements = rig_displacements(avatar)
    ids, w, means, quats, scales, opac, crgb, uv = merged(avatar, target, displacements)
    k = len(means)
    avg = lambda x: _segment_sum(ids, w.reshape(-1, *([1] * (x.ndim - 1))) * x, k)
    surface = avg(b.sample @ avatar.vertices())  # [K,3] vertex on the avatar's surface
    targets = {name: avg(d).astype(np.float32) for name, d in displacements.items()}
    neck_w = np.clip(avg(b.sample @ avatar.neck_weight), 0.0, 1.0)
    joints = np.zeros((k, 4), np.uint8)
    joints[:, 0], joints[:, 1] = 2, 1  # head, neckUpper
    weights = np.zeros((k, 4), np.float32)
    weights[:, 0], weights[:, 1] = neck_w, 1.0 - neck_w
    cuv = avg(uv)
    origin = LAM_ORIGIN
    vertices = surface + origin
    head = fitted.neck_pivot + origin
    order = np.argsort(vertices[:, 1], kind="stable")  # LAM's vertex_order: vertex indices by height
    sizes = np.bincount(ids)
    return {
        # 3DGS's layout with LAM's meanings (module docstring); LAM clamps opacities to 1e-3 before its logit
        "offset.ply": ply_bytes((means - surface).astype(np.float32), crgb, opac, scales, quats, opacity_eps=1e-3),
        "skin.glb": skin_glb(vertices, uv_triangles(cuv, surface), joints, weights, targets, head, origin),
        "animation.glb": animation_glb(head),
        "vertex_order.json": json.dumps(order.tolist(), separators=(",", ":")).encode(),
        "stats": {"gaussians": k, "source_gaussians": len(ids), "mean_cluster": round(float(sizes.mean()), 3),
                  "max_cluster": int(sizes.max())},
    }


def export_lam_package(avatar, path: str | Path, target: int = DEFAULT_TARGET) -> Path:
    """Write `avatar` (model.ours.avatar.HeadSplatAvatar) as a LAM package zip at `path` (its members in
    a folder named after the file, that folder's own entry first, as LAM's renderer expects). Atomic: on
    any error (including a package over MAX_BYTES) nothing is written. Returns the path."""
    if not MIN_GAUSSIANS <= target <= MAX_GAUSSIANS:
        raise ValueError(f"target must be within {MIN_GAUSSIANS}..{MAX_GAUSSIANS} Gaussians (LAM's sizes), got {target}")
    path = Path(path)
    if path.suffix.lower() != ".zip":
        raise ValueError(f"a LAM package is a .zip, got {path.name!r}")
    members = package_contents(avatar, target)

    def write(f):
        with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            # the folder as an entry of its own, first (as LAM's own packages have it): LAM's renderer takes
            # the avatar's folder from the zip's directory entries and refuses a zip without one
            # ("file fold is not found"); implicit folders in member names do not count
            zf.mkdir(path.stem)
            for name in ("offset.ply", "skin.glb", "animation.glb", "vertex_order.json"):
                zf.writestr(f"{path.stem}/{name}", members[name])
        size = f.tell()
        if size > MAX_BYTES:
            raise ValueError(f"the LAM package would be {size / 1e6:.1f} MB, over the {MAX_BYTES / 1e6:.0f} MB limit")
    return atomic_write(path, write)
