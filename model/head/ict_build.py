"""Build the ICT-FaceKit head asset (model/head/data/ict_head.npz) from a checkout of ICT-FaceKit.

    python -m model.head.ict_build --source DIR --out model/head/data/ict_head.npz [--commit SHA]

DIR holds FaceXModel/ (generic_neutral_mesh.obj, identityNNN.obj, the expression OBJs named in
vertex_indices.json) and LICENSE, which is copied next to the asset as ICT-FaceKit.LICENSE.
ICT-FaceKit light is USC ICT's morphable head (MIT, https://github.com/ICT-VGL/ICT-FaceKit): 417 MB of
OBJ text, too big to ship; this script derives the ~10 MB the avatar needs, once. The asset is committed
and its sha256 pinned in model/head/head_model.py (ASSET_SHA256, printed at the end of a build); the
zip is written byte-deterministically, so rebuilding from the same commit gives the same sha256.
The asset's arrays are described once, in head_model.py; how they are made is described here:

- Parts: ICT's README lists its parts as vertex / polygon index ranges (ICT_PARTS). Kept: face, head and
  neck, mouth socket, eye sockets (they close the gap behind the lids), gums and tongue, teeth and
  eyeballs. Dropped (`why` in ICT_PARTS): lacrimal fluid, eye blend and eye occlusion are see-through
  shading layers made for Unreal's eye shaders, and the eyelashes are alpha-textured cards; drawn opaque
  they would all cover the eyes, and Gaussians fitted to the photo carry lashes better than bare cards.
  Vertices are renumbered in part order (`source_vertex` maps back; in ICT the kept parts happen to be
  its first 24,591 vertices, so the renumbering is the identity there).
- Units and frame: ICT is in centimetres, already x = the subject's left, +y up, +z out of the face.
  Metres = 0.01 * (cm - centre), with the head centre as the project's template places it
  (model/core/camera.py): x = 0 (ICT's symmetry plane), y = the eyeballs' centre height (pupils at
  y = 0, as the template), z = the middle of the cranium's front-to-back extent above that height
  (forehead to occiput). `transform` [4,4] maps ICT cm to these metres.
- Mirror: every kept vertex is paired with the vertex nearest its mirror image (x -> -x), matched
  greedily in order of distance so that the result is an involution even where ICT's gums are not
  exactly symmetric (two gum vertices 0.29 mm off); face and head pair within 0.05 mm.
- Triangles: ICT is mostly quads. Each quad is split along its shorter diagonal, and its mirror quad
  along the mirror of that diagonal, so that both halves of the head are triangulated as mirror
  images. A quad straddling the midline would be its own mirror, with either diagonal the other's
  mirror (no symmetric split; counted in meta), but ICT has none: its midline runs along edges. ICT's
  winding is kept: counter-clockwise seen from outside; the mouth and eye sockets face their inside,
  the side one sees through the lips and lids.
- UVs: per corner (ICT indexes vt apart from v). u as in ICT, whose integer part is a UDIM-like tile
  per material (0: face, and eyeballs on their own texture; 1: head, neck and sockets; 2: gums and
  tongue; 3: teeth); v = 1 - v_obj, i.e. image rows from the top, as the project's template.
- Regions (the template's names, model/head/head_model.py REGIONS): fixed per part, except skin (face
  and head-and-neck parts), which follows SKIN_RULE, and the tongue (TONGUE_POLYS, ICT's tongue UV
  islands: dorsum and underside).
- Shapes: identity and expression OBJs are whole meshes; deltas = shape - neutral in metres, stored
  as int16 multiples of DELTA_STEP (2 µm: error <= 1 µm). float16 was measured and is not harmless for
  the expressions (jawOpen reaches 42 mm, where float16 steps are 31 µm: 15 µm error), and int16
  at 2 µm compresses the identities better too (the errors are recorded in the asset's meta).
  Expressions are stored sparse: per shape only the vertices that move more than MOVE_EPS.
- Landmarks: ICT's Multi-PIE 68 vertices (vertex_indices.json idx_to_landmark_verts), renumbered.
- mediapipe's 478 face-mesh points on the surface (`landmark_faces`, `landmark_bary`): the project's
  canonical mediapipe points (model/head/mediapipe_canon.py: head frame, metres) are aligned to
  ICT's neutral by the least-squares similarity between the 51 inner Multi-PIE points (brows, nose, eyes,
  mouth; ICT's landmarks68 against mediapipe's MP_OF_68, the pairing commonly used; the jaw contour is a
  silhouette, not a fixed point, so it is left out) plus their mirror images, which makes the similarity
  symmetric. Points 0-467 then go to the closest point of the face and head-and-neck parts (median
  1.4 mm away, at most 5.2 mm); iris points 468-477 go onto the eyeball of their side, where the ray
  from the eyeball's centre through the aligned point leaves it (mediapipe's iris depth is loose).
  Points on the subject's left (x > 0) are not projected but set to the mirror (twin triangle, permuted
  barycentrics) of their mediapipe twin, so mirror twins sit at mirror positions (up to ICT's 0.05 mm);
  midline points are projected like the right's and land within 0.5 mm of x = 0 (in the philtrum's
  groove the closest point is off-centre).
"""
from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.core.pinned import sha256_file

BUILD_VERSION = "ict-build-1"
SOURCE_URL = "https://github.com/ICT-VGL/ICT-FaceKit"
CM = 0.01  # ICT's unit in metres
DELTA_STEP = 2e-6  # metres per int16 unit of a stored delta (|delta| < 65 mm)
MOVE_EPS = 1e-6  # metres: an expression's vertices that move less are not stored
MIRROR = np.array([-1.0, 1.0, 1.0])


@dataclass(frozen=True)
class Part:
    name: str
    verts: tuple[int, int]  # half-open range of the part's vertices in ICT's numbering
    polys: tuple[int, int]  # half-open range of its polygons
    region: str  # a REGIONS name, or "skin" (SKIN_RULE)
    mirror: str = ""  # the part its mirror image lies in ("" = itself)
    why: str = ""  # non-empty: dropped, and why


_SHADER_LAYER = "a see-through layer for Unreal's eye shaders: drawn opaque it covers the eye"
_LASHES = "alpha-textured cards: drawn opaque they are solid sheets; Gaussians carry lashes"
# ICT README "Face Model Topology" (its inclusive ranges made half-open).
ICT_PARTS = (
    Part("face", (0, 9409), (0, 9230), "skin"),
    Part("head_neck", (9409, 11248), (9230, 11144), "skin"),
    Part("mouth_socket", (11248, 13294), (11144, 13226), "mouth_interior"),
    Part("eye_socket_L", (13294, 13678), (13226, 13630), "eyes", "eye_socket_R"),
    Part("eye_socket_R", (13678, 14062), (13630, 14034), "eyes", "eye_socket_L"),
    Part("gums_tongue", (14062, 17039), (14034, 17006), "mouth_interior"),
    Part("teeth", (17039, 21451), (17006, 21496), "teeth"),
    Part("eyeball_L", (21451, 23021), (21496, 23094), "eyes", "eyeball_R"),
    Part("eyeball_R", (23021, 24591), (23094, 24692), "eyes", "eyeball_L"),
    Part("lacrimal_fluid_L", (24591, 24795), (24692, 24855), "eyes", why=_SHADER_LAYER),
    Part("lacrimal_fluid_R", (24795, 24999), (24855, 25018), "eyes", why=_SHADER_LAYER),
    Part("eye_blend_L", (24999, 25023), (25018, 25033), "eyes", why=_SHADER_LAYER),
    Part("eye_blend_R", (25023, 25047), (25033, 25048), "eyes", why=_SHADER_LAYER),
    Part("eye_occlusion_L", (25047, 25199), (25048, 25176), "eyes", why=_SHADER_LAYER),
    Part("eye_occlusion_R", (25199, 25351), (25176, 25304), "eyes", why=_SHADER_LAYER),
    Part("eyelashes_L", (25351, 26035), (25304, 25844), "eyes", why=_LASHES),
    Part("eyelashes_R", (26035, 26719), (25844, 26384), "eyes", why=_LASHES),
)
# ICT's gums-and-tongue part has no labels inside; its UV islands separate gums, palate, throat, uvula and
# tongue. These polygon ranges are the tongue's two islands (underside, dorsum), checked in plots.
TONGUE_POLYS = ((16254, 16522), (16572, 17006))
# Skin: ICT's "narrow face area" (README, Face Area Details: polygons 0-6559) is the face proper
# (forehead below the hairline, cheeks to the ears' front, chin) -> face_skin, and inside it lips and brows
# from ICT's Multi-PIE landmarks. The rest of the face and head-and-neck parts: ears inside a side-view
# ellipse fitted to ICT's dense ear patch, else neck below the template's neck height, else scalp.
SKIN_RULE = dict(
    narrow_face_polys=(0, 6560),
    neck_y=-0.085,  # metres (head frame): the procedural template's neck line (removed in issue 30)
    ear_centre_zy=(-0.0065, -0.0276),  # metres; ellipse in the side view (z, y), both sides (|x|)
    ear_semi_axes=(0.018, 0.032),  # along the ear's width and its height
    ear_tilt_deg=24.0,  # the ear's long axis leans back (top towards -z)
    ear_min_abs_x=0.06,  # metres: only the side of the head
    lips=tuple(range(48, 60)),  # Multi-PIE outer lip contour, polygon in the frontal (x, y) view
    brows=(tuple(range(17, 22)), tuple(range(22, 27))),  # iBUG puts them on the brow's upper edge
    brow_band=(0.002, -0.010),  # metres above / below that edge
)



def read_positions(path: Path) -> np.ndarray:
    """The `v x y z` lines of an OBJ -> [N,3] float64 (fast: one split of the contiguous v block)."""
    data = path.read_bytes()
    if not data.startswith(b"v "):
        data = b"\n" + data
    i = data.find(b"\nv ") + 1
    j = data.find(b"\n", data.rfind(b"\nv ") + 1)
    block = data[i:j if j > 0 else len(data)]
    if i == 0 or b"\n" in block.replace(b"\nv ", b""):
        raise ValueError(f"{path}: its `v` lines are not one contiguous block")
    return np.array(block.replace(b"v ", b" ").split(), dtype=np.float64).reshape(-1, 3)


def read_mesh(path: Path) -> tuple[np.ndarray, np.ndarray, list[tuple[tuple[int, ...], tuple[int, ...]]]]:
    """OBJ -> (v [N,3], vt [T,2], polygons [(vertex ids, vt ids)], 0-based)."""
    v, vt, polys = [], [], []
    for line in path.read_text().splitlines():
        if line.startswith("v "):
            v.append([float(t) for t in line.split()[1:4]])
        elif line.startswith("vt "):
            vt.append([float(t) for t in line.split()[1:3]])
        elif line.startswith("f "):
            corners = [c.split("/") for c in line.split()[1:]]
            if len(corners) not in (3, 4) or any(len(c) < 2 or not c[1] for c in corners):
                raise ValueError(f"{path}: polygon without UVs or with {len(corners)} corners: {line!r}")
            polys.append((tuple(int(c[0]) - 1 for c in corners), tuple(int(c[1]) - 1 for c in corners)))
    return np.array(v, dtype=np.float64).reshape(-1, 3), np.array(vt, dtype=np.float64).reshape(-1, 2), polys


def mirror_pairs(points: np.ndarray, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """[V,3] -> (mirror [V] involution, distance [V] from each mirror image to its partner).

    Candidates are each mirror image's k nearest vertices; pairs are taken greedily by distance so the
    map is an involution (plain nearest neighbour is not where a part is slightly asymmetric)."""
    from scipy.spatial import cKDTree
    dist, nn = cKDTree(points).query(points * MIRROR, k=k)
    a = np.repeat(np.arange(len(points)), k)
    order = np.argsort(dist.ravel(), kind="stable")
    mirror = np.full(len(points), -1)
    for i, j in zip(a[order], nn.ravel()[order]):
        if mirror[i] < 0 and mirror[j] < 0:
            mirror[i], mirror[j] = j, i
    if (mirror < 0).any():
        raise ValueError(f"{int((mirror < 0).sum())} vertices have no mirror partner among {k} candidates")
    return mirror, np.linalg.norm(points * MIRROR - points[mirror], axis=1)


def triangulate(polys, points: np.ndarray, mirror: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """Polygons [(vertex ids, vt ids)] -> (polygon of each triangle [T], its corners [T,3] as positions
    0..3 inside that polygon, stats). A quad is split along its shorter diagonal, and its mirror quad
    along the mirror of that diagonal."""
    key = {tuple(sorted(p[0])): n for n, p in enumerate(polys) if len(p[0]) == 4}
    diag: dict[int, int] = {}  # polygon -> 0 (split along corners 0-2) or 1 (along 1-3)
    stats = dict(self_mirror_quads=0, quads_without_mirror=0)
    for n, (vids, _) in enumerate(polys):
        if len(vids) != 4 or n in diag:
            continue
        d02 = np.linalg.norm(points[vids[0]] - points[vids[2]])
        d13 = np.linalg.norm(points[vids[1]] - points[vids[3]])
        diag[n] = 0 if d02 <= d13 else 1
        m = key.get(tuple(sorted(int(mirror[v]) for v in vids)))
        if m is None:
            stats["quads_without_mirror"] += 1
        elif m == n:
            stats["self_mirror_quads"] += 1
        else:
            ends = {int(mirror[vids[diag[n]]]), int(mirror[vids[diag[n] + 2]])}
            mv = polys[m][0]
            diag[m] = 0 if {mv[0], mv[2]} == ends else 1
            assert {mv[diag[m]], mv[diag[m] + 2]} == ends
    poly_of_tri, corners = [], []
    for n, (vids, _) in enumerate(polys):
        if len(vids) == 3:
            tris = [(0, 1, 2)]
        else:
            tris = [(0, 1, 2), (0, 2, 3)] if diag[n] == 0 else [(0, 1, 3), (1, 2, 3)]
        poly_of_tri += [n] * len(tris)
        corners += tris
    return np.array(poly_of_tri), np.array(corners), stats


def _head_centre_cm(v: np.ndarray, parts: list[Part]) -> np.ndarray:
    """ICT cm -> the head centre (see the module doc): x 0, y eyeball centres, z mid-cranium."""
    eyes = np.concatenate([np.arange(*p.verts) for p in parts if p.name.startswith("eyeball")])
    skin = np.concatenate([np.arange(*p.verts) for p in parts if p.region == "skin"])
    y = 0.5 * (v[eyes, 1].min() + v[eyes, 1].max())  # an eyeball's y extent is symmetric about its centre
    cranium = v[skin][v[skin, 1] >= y]
    return np.array([0.0, y, 0.5 * (cranium[:, 2].min() + cranium[:, 2].max())])


def skin_regions(centroids: np.ndarray, src_poly: np.ndarray, lm68: np.ndarray, rule: dict) -> np.ndarray:
    """Region names (REGIONS indices) of skin triangles from their centroids [T,3] (head frame, metres),
    their ICT polygon [T] and the 68 landmark positions [68,3] (head frame); see SKIN_RULE."""
    from matplotlib.path import Path as MplPath

    from model.head.head_model import REGIONS
    r = {n: i for i, n in enumerate(REGIONS)}
    out = np.full(len(centroids), r["scalp"])
    out[centroids[:, 1] < rule["neck_y"]] = r["neck"]
    c, (a, b) = np.array(rule["ear_centre_zy"]), rule["ear_semi_axes"]
    t = np.radians(rule["ear_tilt_deg"])
    d = centroids[:, [2, 1]] - c
    u = d @ np.array([np.cos(t), np.sin(t)])  # across the ear
    w = d @ np.array([-np.sin(t), np.cos(t)])  # along it (up, leaning back)
    ear = ((u / a) ** 2 + (w / b) ** 2 <= 1) & (np.abs(centroids[:, 0]) > rule["ear_min_abs_x"])
    out[ear] = r["ears"]
    narrow = (src_poly >= rule["narrow_face_polys"][0]) & (src_poly < rule["narrow_face_polys"][1])
    out[narrow] = r["face_skin"]
    xy = centroids[:, :2]
    up, down = rule["brow_band"]
    for brow in rule["brows"]:
        edge = lm68[list(brow), :2]
        poly = np.concatenate([edge + [0, up], (edge + [0, down])[::-1]])
        out[narrow & MplPath(poly).contains_points(xy)] = r["brows"]
    out[narrow & MplPath(lm68[list(rule["lips"]), :2]).contains_points(xy)] = r["lips"]
    return out


# Multi-PIE 68 -> mediapipe face-mesh index (the commonly used pairing; 0-16 jaw, 17-26 brows, 27-35 nose,
# 36-47 eyes, 48-67 lips)
MP_OF_68 = (162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389, 71, 63, 105, 66,
            107, 336, 296, 334, 293, 301, 168, 197, 5, 4, 75, 97, 2, 326, 305, 33, 160, 158, 133, 153, 144, 362,
            385, 387, 263, 373, 380, 61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181, 78, 82, 13, 312, 308,
            317, 14, 87)


def similarity(a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares s, R, t with b ~ s * a @ R.T + t (Umeyama)."""
    ma, mb = a.mean(0), b.mean(0)
    u, sv, vt = np.linalg.svd((b - mb).T @ (a - ma))
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    r = u @ d @ vt
    s = float((sv * np.diag(d)).sum() / ((a - ma) ** 2).sum())
    return s, r, mb - s * r @ ma


def mediapipe_map(neutral, faces, face_part, names, lm68, mirror) -> tuple[np.ndarray, np.ndarray, dict]:
    """mediapipe's 478 points -> (triangle [478], barycentrics [478,3], facts); see the module doc."""
    from model.head.mediapipe_canon import load as load_canonical
    from model.head.mesh import closest_on_faces
    canon, pair = load_canonical()
    a, b = canon[list(MP_OF_68[17:])], neutral[lm68[17:]]
    s, r, t = similarity(np.r_[a, a * MIRROR], np.r_[b, b * MIRROR])
    target = s * canon @ r.T + t
    tri_f = np.full(len(canon), -1)
    bary = np.zeros((len(canon), 3))
    # the subject's right and the midline are projected; the left mirrors them
    own = (pair == np.arange(len(pair))) | (canon[:, 0] < 0)
    if not own[pair[~own]].all():
        raise ValueError("the canonical mediapipe points are not mirror-paired across x = 0")
    face_ = lambda *parts: np.nonzero(np.isin(face_part, [names.index(p) for p in parts]))[0]  # noqa: E731
    own = np.nonzero(own)[0]
    skin = own[own < 468]
    tri_f[skin], bary[skin] = closest_on_faces(target[skin], neutral, faces, face_("face", "head_neck"))
    eye = face_("eyeball_R")
    ev = np.unique(faces[eye])
    centre = 0.5 * (neutral[ev].min(0) + neutral[ev].max(0))  # (the mean leans forward: the iris is dense)
    radius = np.linalg.norm(neutral[ev] - centre, axis=1).max()
    iris = own[own >= 468]
    ray = target[iris] - centre
    outside = centre + 2 * radius * ray / np.linalg.norm(ray, axis=1, keepdims=True)
    tri_f[iris], bary[iris] = closest_on_faces(outside, neutral, faces, eye)
    # the left half: twin triangle of the twin point, barycentrics permuted to the twin's corners
    index = {tuple(sorted(f)): i for i, f in enumerate(faces.tolist())}
    for i in np.nonzero(tri_f < 0)[0]:
        j = pair[i]
        g = index[tuple(sorted(mirror[faces[tri_f[j]]].tolist()))]
        src = mirror[faces[tri_f[j]]].tolist()
        tri_f[i], bary[i] = g, bary[j][[src.index(v) for v in faces[g]]]
    points = np.einsum("nk,nkd->nd", bary, neutral[faces[tri_f]])
    dist = np.linalg.norm(points - target, axis=1)
    facts = dict(similarity=dict(scale=s, rotation=r.tolist(), translation=t.tolist()), mp_of_68=list(MP_OF_68),
                 distance_m=dict(median=float(np.median(dist[:468])), max=float(dist[:468].max()),
                                 iris_max=float(dist[468:].max())))
    return tri_f.astype(np.int32), bary, facts


def _quantise(d: np.ndarray) -> np.ndarray:
    q = np.round(d / DELTA_STEP)
    if np.abs(q).max() > 32767:
        raise ValueError(f"a delta of {np.abs(d).max():.3f} m does not fit int16 at {DELTA_STEP} m")
    return q.astype(np.int16)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed's format (a deflated zip of .npy), but byte-deterministic: fixed entry order
    and timestamps, so that the same source gives the same sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w") as z:
        for name in sorted(arrays):
            buf = io.BytesIO()
            a = np.asarray(arrays[name])  # (np.ascontiguousarray would make 0-d arrays 1-d)
            np.lib.format.write_array(buf, a if a.flags.c_contiguous else a.copy(order="C"), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, buf.getvalue(), compresslevel=9)
    tmp.replace(path)


def _commit_of(source: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        raise SystemExit(f"{source} is not a git checkout: pass the ICT-FaceKit commit with --commit") from None


def build(source: Path, out: Path, commit: str, parts: tuple[Part, ...] = ICT_PARTS,
          tongue_polys=TONGUE_POLYS, skin_rule: dict | None = SKIN_RULE, centre_cm=None,
          landmark_map: bool = True, log=print) -> dict:
    """Read ICT-FaceKit at `source`, write the asset to `out` (+ the licence beside it); returns meta."""
    from model.head.head_model import REGIONS
    source, out = Path(source), Path(out)
    fx = source / "FaceXModel"
    files: dict[str, str] = {}

    def hashed(p: Path) -> Path:
        files[p.relative_to(source).as_posix()] = sha256_file(p)
        return p

    config = json.loads(hashed(fx / "vertex_indices.json").read_text())
    v_cm, vt, polys = read_mesh(hashed(fx / "generic_neutral_mesh.obj"))
    kept = [p for p in parts if not p.why]
    names = [p.name for p in kept]

    # -- renumber the kept vertices (part order) and select their polygons
    src_v = np.concatenate([np.arange(*p.verts) for p in kept])
    new_of = np.full(len(v_cm), -1)
    new_of[src_v] = np.arange(len(src_v))
    part_of_v = np.concatenate([np.full(p.verts[1] - p.verts[0], i) for i, p in enumerate(kept)])
    src_p = np.concatenate([np.arange(*p.polys) for p in kept])
    part_of_p = np.concatenate([np.full(p.polys[1] - p.polys[0], i) for i, p in enumerate(kept)])
    kept_polys = [(tuple(int(new_of[i]) for i in polys[n][0]), polys[n][1]) for n in src_p]
    if any(min(p[0]) < 0 for p in kept_polys):
        raise ValueError("a kept polygon uses a vertex of a dropped part")

    # -- frame: ICT cm -> head-frame metres
    centre = np.asarray(centre_cm, dtype=np.float64) if centre_cm is not None else _head_centre_cm(v_cm, kept)
    transform = np.diag([CM, CM, CM, 1.0])
    transform[:3, 3] = -CM * centre
    to_m = lambda p: p * CM - CM * centre  # noqa: E731  (same arithmetic as transform, applied the same way)
    neutral = to_m(v_cm[src_v])

    # -- mirror map, checked against the parts' declared mirror parts
    mirror, mdist = mirror_pairs(neutral)
    want = np.array([names.index(p.mirror) if p.mirror else i for i, p in enumerate(kept)])
    bad = want[part_of_v] != part_of_v[mirror]
    if bad.any():
        raise ValueError(f"{int(bad.sum())} vertices pair with a vertex outside their mirror part")
    worst = {p.name: float(mdist[part_of_v == i].max()) for i, p in enumerate(kept)}
    log(f"mirror: worst pair {mdist.max() * 1e3:.3f} mm; per part (mm): "
        + ", ".join(f"{k} {w * 1e3:.3f}" for k, w in worst.items()))

    # -- triangles, per-corner UVs, regions
    poly_of_tri, corners, tri_stats = triangulate(kept_polys, neutral, mirror)
    vids = np.array([kept_polys[n][0] + (0,) * (4 - len(kept_polys[n][0])) for n in range(len(kept_polys))])
    tids = np.array([polys[n][1] + (0,) * (4 - len(polys[n][1])) for n in src_p])
    faces = np.take_along_axis(vids[poly_of_tri], corners, 1).astype(np.int32)
    uv = vt[np.take_along_axis(tids[poly_of_tri], corners, 1)]
    uv[..., 1] = 1.0 - uv[..., 1]  # OBJ v up -> image rows (the template's convention)
    face_part = part_of_p[poly_of_tri].astype(np.int8)
    face_src = src_p[poly_of_tri].astype(np.int32)
    lm_src = np.array(config["idx_to_landmark_verts"], dtype=np.int64)
    if (new_of[lm_src] < 0).any():
        raise ValueError("a landmark lies on a dropped part")
    landmarks = new_of[lm_src]
    region = np.array([REGIONS.index(kept[i].region) if kept[i].region != "skin" else -1 for i in face_part])
    for lo, hi in tongue_polys:
        region[(face_src >= lo) & (face_src < hi)] = REGIONS.index("tongue")
    skin = region < 0
    if skin.any():
        if skin_rule is None:
            raise ValueError("skin parts need a skin_rule")
        region[skin] = skin_regions(neutral[faces[skin]].mean(1), face_src[skin], neutral[landmarks], skin_rule)

    extra = {}
    if landmark_map:
        lf, lb, mp = mediapipe_map(neutral, faces, face_part, names, landmarks, mirror)
        extra = dict(landmark_faces=lf, landmark_bary=lb)
        log(f"mediapipe 478 -> surface: median {mp['distance_m']['median'] * 1e3:.2f} mm, "
            f"max {mp['distance_m']['max'] * 1e3:.2f} mm from the aligned canonical points "
            f"(iris max {mp['distance_m']['iris_max'] * 1e3:.2f} mm)")

    # -- shapes: whole meshes -> deltas (metres) on the kept vertices
    def deltas(path: Path) -> np.ndarray:
        p = read_positions(hashed(path))
        if p.shape != v_cm.shape:
            raise ValueError(f"{path}: {len(p)} vertices, the neutral has {len(v_cm)}")
        return (p[src_v] - v_cm[src_v]) * CM

    id_paths = []
    while (fx / f"identity{len(id_paths):03d}.obj").is_file():
        id_paths.append(fx / f"identity{len(id_paths):03d}.obj")
    identity = np.stack([deltas(p) for p in id_paths])
    ex_names = list(config["expressions"])
    ex_ptr, ex_vert, ex_delta, ex_moved = [0], [], [], {}
    for name in ex_names:
        d = deltas(fx / f"{name}.obj")
        moving = np.nonzero(np.linalg.norm(d, axis=1) > MOVE_EPS)[0]
        ex_vert.append(moving)
        ex_delta.append(d[moving])
        ex_ptr.append(ex_ptr[-1] + len(moving))
        ex_moved[name] = {names[i]: round(float(np.linalg.norm(d[part_of_v == i], axis=1).max()) * 1e3, 2)
                          for i in range(len(kept)) if (part_of_v[moving] == i).any()}
    ex_vert = np.concatenate(ex_vert).astype(np.int32) if ex_vert else np.zeros(0, np.int32)
    ex_delta = np.concatenate(ex_delta) if ex_delta else np.zeros((0, 3))
    id_q, ex_q = _quantise(identity), _quantise(ex_delta)
    err = lambda q, d: float(np.abs(q.astype(np.float64) - d).max()) if d.size else 0.0  # noqa: E731
    errors = {"int16_identity_m": err(id_q * DELTA_STEP, identity), "int16_expression_m": err(ex_q * DELTA_STEP, ex_delta),
              "float16_identity_m": err(identity.astype(np.float16), identity),
              "float16_expression_m": err(ex_delta.astype(np.float16), ex_delta)}
    log("max error vs float64 (mm): " + ", ".join(f"{k[:-2]} {e * 1e3:.4f}" for k, e in errors.items()))

    files[(source / "LICENSE").relative_to(source).as_posix()] = sha256_file(source / "LICENSE")
    part_info, start = [], 0
    for p in parts:
        info = dict(name=p.name, source_vertices=list(p.verts), source_polygons=list(p.polys))
        if p.why:
            info["dropped"] = p.why
        else:
            n_v = p.verts[1] - p.verts[0]
            info.update(vertices=[start, start + n_v], faces=int((face_part == names.index(p.name)).sum()),
                        mirror_worst_m=worst[p.name])
            start += n_v
        part_info.append(info)
    meta = dict(
        source=dict(url=SOURCE_URL, commit=commit, licence="MIT", files=files),
        build=dict(script="model/head/ict_build.py", version=BUILD_VERSION),
        frame=dict(units="metres", transform=transform.tolist(), centre_cm=centre.tolist(),
                   rule="metres = 0.01 * (ICT cm - centre_cm); x 0, y eyeball centres, z mid-cranium"),
        uv="u as ICT (integer part = material tile: 0 face and eyeballs, 1 head/neck/sockets, 2 gums/tongue, "
           "3 teeth); v = 1 - v_obj (image rows from the top)",
        parts=part_info, triangulation=tri_stats, mirror_worst_m=float(mdist.max()),
        delta_step_m=DELTA_STEP, move_eps_m=MOVE_EPS, errors_m=errors,
        identity="ICT identityNNN.obj minus the neutral: PCA modes whose norms fall with the index; ICT's "
                 "toolkit samples their weights from N(0, 1), so a weight of 1 is one standard deviation",
        expressions_moved_max_mm=ex_moved, skin_rule=skin_rule, tongue_polys=[list(t) for t in tongue_polys],
        mediapipe=mp if landmark_map else None,
    )
    arrays = dict(
        neutral=neutral, faces=faces, face_uvs=uv.astype(np.float32), face_region=region.astype(np.int8),
        face_part=face_part, part_names=np.array(names), regions=np.array(REGIONS),
        vertex_mirror=mirror.astype(np.int32), landmarks68=landmarks.astype(np.int32),
        source_vertex=src_v.astype(np.int32), source_polygon=face_src, transform=transform,
        identity_delta_q=id_q, expression_names=np.array(ex_names), expression_ptr=np.array(ex_ptr, np.int64),
        expression_vertex=ex_vert, expression_delta_q=ex_q, delta_step=np.float64(DELTA_STEP),
        meta=np.array(json.dumps(meta, sort_keys=True)), **extra,
    )
    write_npz(out, arrays)
    shutil.copyfile(source / "LICENSE", out.parent / "ICT-FaceKit.LICENSE")
    log(f"wrote {out}: {out.stat().st_size / 1e6:.2f} MB, {len(neutral)} vertices, {len(faces)} triangles, "
        f"{len(identity)} identity modes, {len(ex_names)} expressions ({len(ex_vert)} stored vertex deltas)")
    log(f"ASSET_SHA256 = \"{sha256_file(out)}\"")
    return meta


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", type=Path, required=True, help="ICT-FaceKit checkout (FaceXModel/, LICENSE)")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("data") / "ict_head.npz")
    ap.add_argument("--commit", help="ICT-FaceKit commit of --source (default: git rev-parse there)")
    a = ap.parse_args(argv)
    build(a.source, a.out, a.commit or _commit_of(a.source))


if __name__ == "__main__":
    main(sys.argv[1:])
