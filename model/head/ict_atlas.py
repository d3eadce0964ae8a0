"""One mirror-symmetric UV atlas for the ICT head (model/head/head_model.py), with the template's contract.

    from model.head.ict_atlas import symmetric_atlas
    atlas = symmetric_atlas()          # the default model's, once per process (lru_cache), ~2 s
    atlas.face_uvs                     # [F,3,2] in [0,1]; atlas.uv_mirror(uv) is u -> 1 - u

ICT's UVs are per-material tiles (u's integer part), not one atlas; the project's symmetric fusion needs the
template's contract (model/head/template.py): one atlas in [0,1]^2, symmetric about u = 0.5, such that for
every vertex pair (i, vertex_mirror[i]) the mirror triangle's UVs are the mirror UVs (u -> 1 - u; texel
(row, col) of an R x R texture <-> (row, R-1-col)). This module repacks ICT's UV islands into such an atlas:

- Islands: connected components of triangles that share a UV corner (same vertex, same UV) in ICT. ICT has
  64: the face (tile 0, one island with the ears and the front of the neck), head and neck (tile 1, the back
  of the head; ear holes), mouth socket, 2 eye sockets, 11 of gums, palate, throat and tongue, 32 teeth (one
  per tooth) and 8 per eyeball (shells: sclera, iris, ...). vertex_mirror maps each onto itself
  (self-mirror: face, head and neck, mouth socket, 7 of the gums and tongue) or onto its twin.
- Self-mirror islands of WHOLE_PARTS (face; head and neck) stay whole, centred on u = 0.5, one above the
  other: a seam down the face would cut symmetric fusion, one down the back of the head the hair synthesis.
  ICT lays both out symmetrically (face to float32 noise, 1e-6; head exactly): their UVs are only averaged
  with the mirror of their mirror corner's, which makes the symmetry exact.
- The other self-mirror islands (mouth socket, gums and palate, tongue) are cut along the midline into two
  halves that are placed as a mirror pair: kept whole they would all have to stack in the same centre
  column, which would then be 1.9x as tall as face plus head and halve every island's density (622 -> 322
  texels per metre at R = 512); they are the inside of the mouth, coloured by the prior, where a midline seam
  costs little. It also re-lays those ICT lays out asymmetrically (tongue dorsum 0.18 of a tile off its
  mirror image, tongue underside 0.044, one of the palate's 0.015; the mouth socket 2e-4).
- Mirror pairs and halves: the subject's left island (x > 0) keeps ICT's UVs and sits at u > 0.5 (the
  template's side); its twin gets their mirror image. ICT's twins are often not mirror images (teeth are
  translated copies, eye sockets and two gum islands laid out differently; `ict_asymmetry` says how far).
- Density: each island is scaled uniformly so that its texels per metre of surface (`island_scale`, at
  R = 512, area-weighted) is one common density, except the face island and the eyeballs (FACE_PARTS), which
  get ICT's face-to-head density ratio (1.36) on top: the face matters most, and the eyes are seen in it.
- Packing: first fit of each island's coverage on a GRID x GRID texel grid (the face and head at column
  centre; the rest, largest first, top rows first and nearest the centre), islands kept GUTTER texels apart
  (2 texels at R = 512: no texel is touched by two islands at R = 256 or 512), the common density bisected
  to the largest that fits. The face-plus-head column sets it: the atlas is half full (50% of the texels at
  R = 512; face 843, the rest 622 texels per metre), the spare room beside the head is what keeping the head
  whole costs. Cutting it in halves too (whole_parts=("face",)) gives 976 / 720 and 67% full, at the cost of a
  seam down the back of the head (the template has one there).

ICT quirks met: the eyeballs' 8 islands overlap in ICT's tile (shells sharing one texture: here they are
apart); in each iris island 500 small pupil-rim triangles lie, folded, on top of the inner rim of its
100-triangle annulus (they share texels, in ICT and here); one tooth island per side has a sliver triangle
flipped; the head-and-neck island is seen from behind (the subject's left at u < its centre), the face from
the front (left at u > 0.5), kept so.
Pure numpy (and model.core's rasterizer for coverage).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from model.core.raster_mesh import rasterize, rasterize_uv
from model.head.head_model import REGIONS, HeadModel, load_head_model

WHOLE_PARTS = ("face", "head_neck")  # their self-mirror islands stay whole, centred on u = 0.5
FACE_PARTS = ("face", "eyeball_L", "eyeball_R")  # at the face's density (ICT's face/head ratio x the rest's)
GRID = 256  # packing grid: texels of a 256 atlas (offsets are whole texels: the layout is the same at 512)
GUTTER = 1  # empty texels between islands' coverage at GRID = 2 at R = 512
_SS = 4  # coverage raster supersampling
__all__ = ["Atlas", "FACE_PARTS", "GRID", "GUTTER", "WHOLE_PARTS", "symmetric_atlas"]


@dataclass(frozen=True, eq=False)
class Atlas:
    face_uvs: np.ndarray  # [F,3,2] float64 in [0,1], the model's triangles; v as image rows (ICT's too)
    face_region: np.ndarray  # [F] index into REGIONS (the model's)
    island: np.ndarray  # [F] int64 atlas island of each triangle
    island_kind: tuple[str, ...]  # [I] "whole" (self-mirror, centred), "pair" (ICT twins), "half" (cut at midline)
    island_mirror: np.ndarray  # [I] int64 the island its mirror image is (itself for "whole")
    island_part: tuple[str, ...]  # [I] ICT part name
    island_scale: np.ndarray  # [I] texels per metre of surface at R = 512 (area-weighted over the island)
    ict_island: np.ndarray  # [I] int64 the ICT UV island it comes from (numbered by first triangle)
    ict_asymmetry: np.ndarray  # [I] ICT tile units: how far ICT's UVs of the island are from the mirror image
    #   of its mirror island's (up to a translation); 0 where ICT is symmetric. Where > 0 on a twin ("pair",
    #   "half" at u < 0.5) or a "whole" island, the atlas does not keep ICT's layout: it mirrors the other one.

    def uv_mirror(self, uv: np.ndarray) -> np.ndarray:
        """UVs [...,2] -> their mirror twins (u -> 1 - u; the atlas is symmetric about u = 0.5)."""
        out = np.array(uv, dtype=np.float64, copy=True)
        out[..., 0] = 1.0 - out[..., 0]
        return out

    def region_masks(self, res: int) -> dict[str, np.ndarray]:
        """Region name -> [res,res] bool mask of the texels whose triangle belongs to it."""
        face_id, _ = rasterize_uv(self.face_uvs, res)
        reg = np.where(face_id >= 0, self.face_region[np.maximum(face_id, 0)], -1)
        return {name: reg == i for i, name in enumerate(REGIONS)}

    def relaid(self, tol: float = 1e-3) -> tuple[int, ...]:
        """Islands whose atlas UVs are not ICT's own (up to scale and translation): twins placed as the mirror
        of a differently laid-out twin, and whole islands whose symmetrization moved UVs by more than tol."""
        twin = np.array([k == "whole" or (k in ("pair", "half") and self.island_mirror[i] < i)
                         for i, k in enumerate(self.island_kind)])
        return tuple(int(i) for i in np.nonzero(twin & (self.ict_asymmetry > tol))[0])


def mirror_faces(faces: np.ndarray, vertex_mirror: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mface [F]: the triangle whose vertices are the mirrors of f's, corner [F,3]: the corner of mface[f]
    holding the mirror of f's corner k). Raises if a triangle has no mirror twin."""
    n = int(faces.max()) + 1

    def key(f):  # a triangle's vertex set as one int64
        s = np.sort(f.astype(np.int64), 1)
        return (s[:, 0] * n + s[:, 1]) * n + s[:, 2]

    k, kt = key(faces), key(vertex_mirror[faces])
    order = np.argsort(k)
    pos = np.clip(np.searchsorted(k, kt, sorter=order), 0, len(k) - 1)
    mface = order[pos]
    if not np.array_equal(k[mface], kt):
        raise ValueError(f"{int((k[mface] != kt).sum())} triangles have no mirror twin")
    target = vertex_mirror[faces]
    corner = np.argmax(faces[mface][:, None, :] == target[:, :, None], axis=2)
    return mface, corner


def uv_islands(faces: np.ndarray, face_uvs: np.ndarray) -> np.ndarray:
    """[F] island of each triangle: connected components of triangles sharing a UV corner (same vertex and
    same UV), numbered in order of their first triangle."""
    nf = len(faces)
    corner = np.concatenate([faces.reshape(-1, 1), face_uvs.reshape(-1, 2)], 1, dtype=np.float64)
    order = np.lexsort(corner.T[::-1])
    starts = np.nonzero(np.r_[True, (np.diff(corner[order], axis=0) != 0).any(1)])[0]  # one run per corner key
    tri = np.repeat(np.arange(nf), 3)
    size = np.diff(np.r_[starts, len(corner)])
    label = np.arange(nf)
    while True:  # min-label propagation through shared corners, with pointer jumping
        corner_min = np.empty(len(corner), np.int64)
        corner_min[order] = np.repeat(np.minimum.reduceat(label[tri[order]], starts), size)
        new = np.minimum(label, corner_min.reshape(-1, 3).min(1))
        new = new[new]
        if np.array_equal(new, label):
            break
        label = new
    return np.unique(label, return_inverse=True)[1].ravel()


def _tri_area(p: np.ndarray) -> np.ndarray:
    """Triangles [n,3,2|3] -> areas [n]."""
    a, b = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    if p.shape[-1] == 2:
        return 0.5 * np.abs(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])
    return 0.5 * np.linalg.norm(np.cross(a, b), axis=1)


def _dilate(a: np.ndarray, r: int) -> np.ndarray:
    """Binary dilation by a (2r+1)^2 square."""
    h, w = a.shape
    p, out = np.pad(a, r), np.zeros_like(a)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out |= p[dy:dy + h, dx:dx + w]
    return out


def _cover(tri: np.ndarray, w: int, h: int) -> np.ndarray:
    """[h,w] texels touched by triangles tri [n,3,2] (texel units): a supersampled raster plus the corners'
    texels, dilated by one texel so that slivers between samples count too (conservative)."""
    fid, _, _ = rasterize(tri * _SS - 0.5, np.ones(tri.shape[:2]), w * _SS, h * _SS)
    cover = (fid >= 0).reshape(h, _SS, w, _SS).any((1, 3))
    corner = np.floor(tri.reshape(-1, 2)).astype(np.int64)
    cover[corner[:, 1], corner[:, 0]] = True
    return _dilate(cover, 1)


def _first_fit(occ: np.ndarray, foot: np.ndarray, centre: bool) -> tuple[int, int] | None:
    """The first offset (row, col), top rows first then nearest column 0 (the atlas' centre line), at which
    footprint foot [h,w] lies inside occ [H,W] without touching a True texel; only col 0 if centre."""
    (H, W), (h, w) = occ.shape, foot.shape
    if h > H or w > W:
        return None
    s = (2 * H, 2 * W)  # zero padding: the circular correlation below is the plain one at these offsets
    hits = np.fft.irfft2(np.fft.rfft2(occ, s) * np.conj(np.fft.rfft2(foot, s)), s)[:H - h + 1, :W - w + 1]
    free = np.flatnonzero(hits[:, :1] < 0.5) * (W - w + 1) if centre else np.flatnonzero(hits < 0.5)
    return None if not len(free) else divmod(int(free[0]), W - w + 1)


def _pack(units: list[dict], d: float) -> list[tuple[int, int]] | None:
    """Offsets (row, col) in the right half of a GRID atlas of each unit at density d (texels per metre at
    R = 512 of weight 1), placed in the order given; None if one does not fit. The atlas is symmetric, so
    only its right half is packed: whole islands at its column 0 (u = 0.5), twins with their footprint
    inside it (so a twin is 2 GUTTER texels or more from its mirror image)."""
    occ = np.zeros((GRID, GRID // 2), bool)
    out = []
    for un in units:
        _, cover, c0 = _placed(un, d)
        cover = cover[:, c0:]  # a whole island's right half (its mask is symmetric about column c0)
        at = _first_fit(occ, _dilate(cover, GUTTER), un["kind"] == "whole")
        if at is None:
            return None
        occ[at[0]:at[0] + cover.shape[0], at[1]:at[1] + cover.shape[1]] |= cover
        out.append(at)
    return out


def _placed(un: dict, d: float) -> tuple[np.ndarray, np.ndarray, int]:
    """A unit's triangles [n,3,2] in texel units of GRID at density d, local to its coverage mask [h,w], and
    the mask's column c0 that goes to the offset's column (for whole islands: their centre line, u = 0.5,
    the mask being mirrored onto itself about it; else 0)."""
    q = un["uv"] * (d * un["weight"] / (512.0 * un["rho"]) * GRID)
    pad = GUTTER + 2  # room for the coverage's dilation and the footprint's gutter
    if un["kind"] == "whole":  # ICT u is centred on 0 (symmetrized)
        c0 = int(np.ceil(np.abs(q[..., 0]).max())) + pad
        q = q + np.array([c0, pad - q[..., 1].min()])
        cover = _cover(q, 2 * c0, int(np.ceil(q[..., 1].max())) + pad)
        return q, cover | cover[:, ::-1], c0
    q = q - q.min((0, 1)) + pad
    w, h = (int(c) + pad for c in np.ceil(q.max((0, 1))))
    return q, _cover(q, w, h), 0


def symmetric_atlas(model: HeadModel | None = None, whole_parts: tuple[str, ...] = WHOLE_PARTS,
                    face_parts: tuple[str, ...] = FACE_PARTS) -> Atlas:
    """The model's (default: load_head_model()'s) triangles packed into one mirror-symmetric atlas (module doc),
    cached: the default model's is made once per process."""
    return _atlas(load_head_model() if model is None else model, tuple(whole_parts), tuple(face_parts))


@lru_cache(maxsize=4)
def _atlas(m: HeadModel, whole_parts: tuple[str, ...], face_parts: tuple[str, ...]) -> Atlas:
    faces, uv = m.faces, m.face_uvs.astype(np.float64)
    mface, mcorner = mirror_faces(faces, m.vertex_mirror)
    uvm = np.take_along_axis(uv[mface], mcorner[..., None], 1)  # [F,3,2] the UV of each corner's mirror corner
    ict = uv_islands(faces, m.face_uvs)
    area, x = _tri_area(m.neutral[faces]), m.neutral[faces].mean(1)[:, 0]
    part = np.asarray(m.part_names)[m.face_part]

    def rho(f, local):  # ICT UV units per metre of surface, area-weighted
        return float(np.sqrt(_tri_area(local).sum() / area[f].sum()))

    def asym(f):  # how far f's corner UVs are from the mirror image of their mirror corners', up to a translation
        return float(max(np.ptp(uv[f, :, 0] + uvm[f, :, 0]), np.ptp(uv[f, :, 1] - uvm[f, :, 1]))) / 2

    # the face's density relative to the head's as ICT lays them out (1.36), kept for FACE_PARTS
    ratio = max(1.0, rho(part == "face", uv[part == "face"]) / rho(part == "head_neck", uv[part == "head_neck"]))
    units = []  # one per whole island or twin pair: the triangles laid out from ICT's UVs
    for j in range(ict.max() + 1):
        f = np.nonzero(ict == j)[0]
        twin = np.unique(ict[mface[f]])
        if len(twin) != 1 or len(np.unique(part[f])) != 1:
            raise ValueError(f"ICT UV island {j}: mirrored onto islands {twin.tolist()}, parts {set(part[f])}")
        if (twin := int(twin[0])) < j:
            continue  # placed with its twin
        un = dict(weight=ratio if part[f[0]] in face_parts else 1.0, source=j)
        if twin == j and part[f[0]] in whole_parts:
            # symmetrized: each corner's UV averaged with the mirror of its mirror corner's, u centred on 0
            local = np.stack([(uv[f, :, 0] - uvm[f, :, 0]) / 2, (uv[f, :, 1] + uvm[f, :, 1]) / 2], -1)
            un.update(kind="whole", faces=f, uv=local, asym=asym(f))
        else:
            both = f if twin == j else np.r_[f, np.nonzero(ict == twin)[0]]
            left = both[x[both] > 0]  # the subject's left keeps ICT's UVs; its twin gets their mirror
            if 2 * len(left) != len(both) or not np.array_equal(np.sort(mface[left]), np.sort(both[x[both] < 0])):
                raise ValueError(f"ICT UV island {j}: its triangles do not split into mirror halves at x = 0")
            un.update(kind="half" if twin == j else "pair", faces=left, uv=uv[left], asym=asym(left))
        un["rho"] = rho(un["faces"], un["uv"])
        units.append(un)

    # the common density: bisected below an upper bound (the centre column's islands stacked fill its height)
    column = sum(np.ptp(un["uv"][..., 1]) * un["weight"] / un["rho"] for un in units if un["kind"] == "whole")
    hi = 512.0 / max(column, np.sqrt(sum(un["weight"] ** 2 * area[un["faces"]].sum() *
                                         (1 if un["kind"] == "whole" else 2) for un in units)))
    # whole islands first (face on top), then the largest first
    units.sort(key=lambda un: (un["kind"] != "whole", -_placed(un, hi)[1].sum() * (un["kind"] != "whole")))
    lo = hi
    while (best := _pack(units, lo := 0.8 * lo)) is None:
        hi = lo
    for _ in range(6):
        if (at := _pack(units, mid := np.sqrt(lo * hi))) is not None:
            lo, best = mid, at
        else:
            hi = mid

    face_uvs = np.full_like(uv, np.nan)
    island = np.full(len(faces), -1, np.int64)
    rows = []  # per atlas island: kind, mirror, part, scale, ICT island, asymmetry
    for un, (oy, ox) in sorted(zip(units, best), key=lambda t: t[0]["source"]):
        q, _, c0 = _placed(un, lo)
        f, n = un["faces"], len(rows)
        at = np.stack([0.5 + (ox + q[..., 0] - c0) / GRID, (oy + q[..., 1]) / GRID], -1)
        face_uvs[f], island[f] = at, n
        kind, scale = un["kind"], lo * un["weight"]
        if kind == "whole":
            rows.append((kind, n, part[f[0]], scale, un["source"], un["asym"]))
            continue
        g = mface[f]  # the twin: the mirror image, corner by corner
        face_uvs[g[:, None], mcorner[f]] = np.stack([1.0 - at[..., 0], at[..., 1]], -1)
        island[g] = n + 1
        rows += [(kind, n + 1, part[f[0]], scale, un["source"], un["asym"]),
                 (kind, n, part[g[0]], scale, int(ict[g[0]]), un["asym"])]
    kind, mirror, parts, scale, source, asyms = zip(*rows)
    arrays = dict(face_uvs=face_uvs, face_region=np.asarray(m.face_region), island=island,
                  island_mirror=np.array(mirror), island_scale=np.array(scale), ict_island=np.array(source),
                  ict_asymmetry=np.array(asyms))
    for a in arrays.values():
        a.setflags(write=False)
    return Atlas(**arrays, island_kind=kind, island_part=parts)
