"""The UV texture of an avatar: projected from the photo, fused with its mirror, completed by a prior.

All per-texel arrays are indexed like model.ours.binding.UVLayout (T valid texels). Colours are RGB in
[0, 1]; confidences in [0, 1] say how much a texel's colour is backed by the photo.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numba
import numpy as np
import scipy.sparse as sp
from scipy.ndimage import binary_closing, binary_dilation, binary_opening, gaussian_filter

from model.core.camera import Camera
from model.core.raster_mesh import rasterize_mesh
from model.head.segmentation import PhotoEvidence, core_of
from model.head.template import REGIONS
from model.ours.binding import UVLayout

# Region groups that may exchange colour when smoothing in UV space (no hair bleeding into skin).
_GROUPS = (("scalp",), ("face_skin", "ears", "neck", "lips", "brows"), ("eyes",), ("mouth_interior", "tongue"),
           ("teeth",))
# cos(angle between normal and view ray): no trust below the first, full trust above the second
# (full trust up to ~70 degrees from the view axis).
FACING_TRUST = (0.05, 0.35)


def project_texture(image: np.ndarray, person: np.ndarray, points: np.ndarray, normals: np.ndarray,
                    camera: Camera, mesh_vertices: np.ndarray, faces: np.ndarray,
                    edge_px: float = 2.0, two_sided: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Sample the photo at each texel's surface point.

    image [H,W,3] float in [0,1]; person [H,W] in [0,1]; points, normals [T,3] (metres, unit);
    mesh_vertices/faces: the surface the texels lie on, for the z-buffer. Returns (rgb [T,3], conf [T]):
    conf = facing term x distance from silhouettes and occlusion edges x person probability; 0 where
    the point is hidden or outside the photo. two_sided: an open surface, whose inside the photo may see
    through its opening (the bust's top, round the neck): a texel facing away that the z-buffer shows is
    seen like one facing the camera (on a closed surface the z-buffer hides every such texel).
    """
    h, w = image.shape[:2]
    face_id, _, zbuf = rasterize_mesh(mesh_vertices, faces, camera)
    covered = face_id >= 0
    # occlusion edges: depth jumps larger than a few mm between neighbouring pixels
    jump = np.zeros_like(covered)
    dz_x = np.abs(np.diff(zbuf, axis=1)) > 0.01
    dz_y = np.abs(np.diff(zbuf, axis=0)) > 0.01
    jump[:, 1:] |= dz_x
    jump[:, :-1] |= dz_x
    jump[1:] |= dz_y
    jump[:-1] |= dz_y
    dist = cv2.distanceTransform((covered & ~jump).astype(np.uint8), cv2.DIST_L2, 3)
    uv, z = camera.project(points)
    inside = (uv[:, 0] >= 0) & (uv[:, 0] <= w - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= h - 1) & (z > 0)
    px = np.clip(np.round(uv).astype(np.int64), 0, [w - 1, h - 1])
    zb = zbuf[px[:, 1], px[:, 0]]
    visible = inside & covered[px[:, 1], px[:, 0]] & (z <= zb + 0.004)  # 4 mm: z-buffer vs texel point
    view = camera.position[None] - points
    view /= np.linalg.norm(view, axis=1, keepdims=True)
    lo, hi = FACING_TRUST
    cos = (normals * view).sum(1)
    facing = np.clip(((np.abs(cos) if two_sided else cos) - lo) / (hi - lo), 0, 1)
    edge = np.clip(dist[px[:, 1], px[:, 0]] / edge_px, 0, 1)
    rgb = sample_bilinear(image, uv, cv2.BORDER_REPLICATE)
    pers = sample_bilinear(person, uv, cv2.BORDER_CONSTANT)
    conf = np.where(visible, facing * edge * np.clip((pers - 0.2) / 0.3, 0, 1), 0.0)
    return np.clip(rgb, 0, 1), conf.astype(np.float32)


def sample_bilinear(image: np.ndarray, xy: np.ndarray, border=cv2.BORDER_CONSTANT) -> np.ndarray:
    """image [H,W] or [H,W,C] at pixel positions xy [N,2] -> [N] or [N,C] (bilinear, OpenCV remap)."""
    n = len(xy)
    cols = 1024  # remap wants maps under 32767 rows: lay the N points out as a 2D block
    rows = max(1, -(-n // cols))
    pad = np.zeros((rows * cols, 2), np.float32)
    pad[:n] = xy
    out = cv2.remap(np.ascontiguousarray(image, np.float32), pad[:, 0].reshape(rows, cols),
                    pad[:, 1].reshape(rows, cols), interpolation=cv2.INTER_LINEAR, borderMode=border)
    return out.reshape(rows * cols, *image.shape[2:])[:n]


def _blur(grid: np.ndarray, sigma: float) -> np.ndarray:
    # OpenCV's separable SIMD Gaussian is ~10x faster than scipy.ndimage here (up to 4 channels a call).
    # A wide blur (sigma >= 8 texels: shading and completion estimates) keeps nothing finer than ~sigma/2,
    # so it runs on a 4x smaller grid (area-averaged, then bilinear back): 16x fewer texels, ~70 ms less
    # per avatar. It differs from the full-size blur by ~2e-3 on average (< 0.04 next to a hard step,
    # up to 0.09 on the grid's outer border); the input-view PSNR moves by < 0.01 dB.
    if sigma < 8:
        return cv2.GaussianBlur(grid, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    h, w = grid.shape[:2]
    small = cv2.resize(grid, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), np.sqrt(sigma ** 2 - 15 / 12) / 4, borderType=cv2.BORDER_REPLICATE)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


@lru_cache(maxsize=16)
def _group_masks(layout: UVLayout, sigma: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per region group: (texel selection [T] bool, blurred occupancy [T]) — template facts, cached."""
    out = []
    for group in _GROUPS:
        sel = layout.in_region(*(n for n in group if n in REGIONS))
        if sel.any():
            occ = layout.from_grid(_blur(layout.to_grid(sel.astype(np.float32)), sigma))
            out.append((sel, occ))
    return out


def smooth_fill(layout: UVLayout, values: np.ndarray, weights: np.ndarray, sigma: float):
    """Normalised convolution in UV space, within region groups.

    values [T,3], weights [T] -> (smoothed [T,3], support [T]): a weighted Gaussian average of the
    texels around each texel (sigma in texels); support is the local weight density in [0, 1].
    """
    out = np.zeros((len(values), 3), np.float64)
    support = np.zeros(len(values))
    for sel, occ in _group_masks(layout, float(sigma)):
        wgt = np.where(sel, weights, 0.0).astype(np.float32)
        packed = np.concatenate([values * wgt[:, None], wgt[:, None]], 1).astype(np.float32)
        blurred = layout.from_grid(_blur(layout.to_grid(packed), sigma))
        num, den = blurred[:, :3], blurred[:, 3]
        out[sel] = num[sel] / np.maximum(den[sel], 1e-8)[:, None]
        support[sel] = np.clip(den[sel] / np.maximum(occ[sel], 1e-8), 0, 1)
    return out, support


# The photo "sees" a texel from this confidence on (complete() treats conf < 0.05 as unbacked): its
# own colour is kept, never its mirror's. Below it (grazing > ~86°, on an occlusion edge, outside
# the person mask, hidden) the photo's colour is not evidence and the mirror may fill in.
SEEN_CONF = 0.05
# A seam's correction fades over ~res/SEAM_FADE texels into a filled patch (screened Poisson): beyond,
# the patch takes the two halves' overall shading ratio, so one shadow at the edge of what the photo
# saw does not darken the whole patch. res/100 texels is ~6 mm on the ICT atlas' face (843 texels per metre
# at 512); res/25 (the procedural template's, ~14 mm on its denser face chart) carried a shadow at the seam
# 1 cm into the patch on the ICT atlas (tests/test_ours.py: median 0.57 where 0.7 is right; now 0.69).
SEAM_FADE = 100.0
LOG_EPS = 0.02  # colours are pasted in log(rgb + LOG_EPS): shading differences are ratios
# A pasted texel is at most this much brighter or darker than its mirror: a grazing, half-background
# texel on the patch's border must not relight the whole patch.
MAX_RATIO = 2.5


@lru_cache(maxsize=4)
def _grid_edges(layout: UVLayout) -> tuple[np.ndarray, np.ndarray]:
    """4-neighbour pairs (a [E], b [E]) of valid texels in the same region group: the UV grid's
    graph for gradient-domain work (no edge from hair to skin, nor to another group's island)."""
    group = np.full(len(layout.face), -1, np.int64)
    for k, (sel, _) in enumerate(_group_masks(layout, 1.0)):
        group[sel] = k
    g = layout.grid
    a_all, b_all = [], []
    for a, b in ((g[:, :-1], g[:, 1:]), (g[:-1], g[1:])):
        a, b = a.ravel(), b.ravel()
        ok = (a >= 0) & (b >= 0)
        a, b = a[ok], b[ok]
        ok = (group[a] == group[b]) & (group[a] >= 0)
        a_all.append(a[ok])
        b_all.append(b[ok])
    return np.concatenate(a_all), np.concatenate(b_all)


def poisson_fill(layout: UVLayout, target: np.ndarray, conf: np.ndarray, fill: np.ndarray,
                 source: np.ndarray, far: np.ndarray) -> np.ndarray:
    """Gradient-domain paste: values [F,C] for the texels `fill` [T] bool that keep the UV gradients
    of source [T,C] inside the patch and meet the seen texels around it (conf >= SEEN_CONF, value
    target [T,C]) without a seam.

    Solved for the correction d = x - source on the patch: a screened discrete Laplace equation on
    the UV grid (4-neighbours within a region group) whose boundary values are target - source at
    the bordering seen texels (clipped to ±log MAX_RATIO, as is d: the values are log colours), each edge weighted by that texel's confidence (edges to anything else
    are free: Neumann), and whose screening pulls d towards far [T,C] over ~res/SEAM_FADE texels.
    One sparse LU factorisation, one solve per channel.
    """
    from scipy.sparse.linalg import splu
    idx = np.flatnonzero(fill)
    if len(idx) == 0:
        return np.zeros((0, source.shape[1]))
    n = len(idx)
    local = np.full(len(fill), -1, np.int64)
    local[idx] = np.arange(n)
    a, b = _grid_edges(layout)
    seen = conf >= SEEN_CONF
    both = fill[a] & fill[b]
    la, lb = local[a[both]], local[b[both]]
    screen = (SEAM_FADE / layout.res) ** 2  # decay length 1/sqrt(screen) texels
    diag = np.full(n, screen)
    rhs = screen * far[idx].astype(np.float64)
    np.add.at(diag, la, 1.0)
    np.add.at(diag, lb, 1.0)
    for p, q in ((a, b), (b, a)):  # p in the patch, q a seen texel outside it
        edge = fill[p] & ~fill[q] & seen[q]
        w = np.clip(conf[q[edge]] / 0.5, 0, 1)
        np.add.at(diag, local[p[edge]], w)
        jump = np.clip(target[q[edge]] - source[q[edge]], -np.log(MAX_RATIO), np.log(MAX_RATIO))
        np.add.at(rhs, local[p[edge]], w[:, None] * jump)
    off = -np.ones(len(la))
    A = sp.csc_matrix((np.concatenate([off, off, diag]),
                       (np.concatenate([la, lb, np.arange(n)]), np.concatenate([lb, la, np.arange(n)]))),
                      shape=(n, n))
    d = splu(A).solve(np.ascontiguousarray(rhs))
    return source[idx] + np.clip(d, -np.log(MAX_RATIO), np.log(MAX_RATIO))


def fuse_symmetric(layout: UVLayout, rgb: np.ndarray, conf: np.ndarray):
    """Texels the photo does not see (conf < SEEN_CONF) whose mirror texel it sees take the mirror's
    texture, pasted in the gradient domain (poisson_fill, on log colour); every texel the photo sees
    keeps its own colour, so a 3/4 view's far side shows its own eye rather than a ghost of the near
    one, and where the two halves disagree the visible one wins. Away from the seam a patch takes the
    ratio of its half's brightness to the other half's (median over texels seen on both sides).
    rgb [T,3] in [0,1], conf [T] -> fused (rgb [T,3], conf [T]); a filled texel's confidence is its
    mirror's."""
    m = layout.mirror
    has = m >= 0
    mi = np.where(has, m, 0)
    seen = conf >= SEEN_CONF
    mirror_seen = has & seen[mi]
    fill = ~seen & mirror_seen
    fused = rgb.astype(np.float64)
    if fill.any():
        log = np.log(fused + LOG_EPS)
        # the mirror's texture where the mirror is seen (the patch's source field), else the texel's own
        source = np.where(mirror_seen[:, None], log[mi], log)
        # the two halves of the body, per texel: an island may be laid out seen from behind (left at u < 0.5)
        both = seen & mirror_seen
        far = np.zeros((len(rgb), 3))
        for side in (layout.left, ~layout.left):
            if (both & side).sum() > 50:  # too few pairs: no global ratio, the seam alone decides
                far[side] = np.clip(np.median((log - source)[both & side], axis=0), -np.log(MAX_RATIO),
                                    np.log(MAX_RATIO))
        fused[fill] = np.exp(poisson_fill(layout, log, conf, fill, source, far)) - LOG_EPS
    out_conf = np.where(fill, conf + (1 - conf) * conf[mi], conf)
    return np.clip(fused, 0, 1), np.clip(out_conf, 0, 1).astype(np.float32)


# Hair the photo does not show takes the texture of the hair it does show (issue 20), not its mean colour:
# image quilting (Efros & Freeman, SIGGRAPH 2001) on the scalp unrolled at its true size (hair_cells), rows
# running down the head, so strands keep their direction and scale. Written here because no installed
# package synthesises texture from an exemplar.
QUILT_CANDIDATES = 32  # source patches tried per placement
# A block whose source corner lies within REPEAT_NEAR x its side of the block left of it, above it or on the
# diagonals above is not taken while another candidate is not such a repeat (when all are, one is drawn at
# random): with few distinct blocks in the exemplar (a scalp seen from the front) the best match for a
# repeat's overlap is the same block again, and the quilt locked into a lattice of it, a knit over the back.
REPEAT_NEAR = 0.5
WELL_SEEN_CONF = 0.5  # texels the photo sees this well (facing it) make up exemplars: the hair's, a ring's
QUILT_MIN_SOURCES = 16  # fewer whole source patches than this: too little hair to copy (the prior fills)
# exemplar texels further than K x the median distance (log colour) from the hair's median colour are
# left out, never below HAIR_OUTLIER_MIN (uniform hair keeps its own variation)
HAIR_OUTLIER_K, HAIR_OUTLIER_MIN = 2.0, 0.3


@numba.njit(cache=True)
def _cut_path(err):
    # dynamic programme down the rows, then back up: first minimum on ties
    h, w = err.shape
    cost = np.empty((h, w))
    cost[0] = err[0]
    for r in range(1, h):
        for c in range(w):
            m = cost[r - 1, max(c - 1, 0)]
            for cc in range(max(c - 1, 0) + 1, min(c + 2, w)):
                if cost[r - 1, cc] < m:
                    m = cost[r - 1, cc]
            cost[r, c] = err[r, c] + m
    path = np.empty(h, np.int64)
    c = 0
    for cc in range(1, w):
        if cost[h - 1, cc] < cost[h - 1, c]:
            c = cc
    path[h - 1] = c
    for r in range(h - 2, -1, -1):
        lo = max(c - 1, 0)
        best = lo
        for cc in range(lo + 1, min(c + 2, w)):
            if cost[r, cc] < cost[r, best]:
                best = cc
        c = best
        path[r] = c
    return path


@numba.njit(cache=True, inline="always")
def _add_sq_diff(acc, a, ay, ax, b, by, bx):
    # acc plus the squared colour difference between a[ay, ax] and b[by, bx] ([H,W,C] grids), channel by channel
    for c in range(a.shape[2]):
        d = a[ay, ax, c] - b[by, bx, c]
        acc += d * d
    return acc


@numba.njit(cache=True)
def _quilt_blocks(values, source, src, fill, have, p, step, candidates, rng):
    # Image quilting's placement loop (see quilt), in place on values [H,W,C], copying blocks of source [H,W,C]
    # (the values before any was placed) whose corners are src [S,2]; have [H,W]: what is known or placed.
    # Compiled: as a Python loop over ~200 blocks (numpy's temporaries, a random draw and a path per block) it
    # took ~50-85 ms of an avatar's 0.8 s. rng: a numpy Generator (numba draws numpy's own stream from it).
    H, W, C = values.shape
    todo = fill.copy()
    rows, cols = np.nonzero(fill)
    i0, j0 = max(0, rows.min() - p + step), max(0, cols.min() - p + step)
    ssd = np.empty(candidates)
    repeats = np.empty(candidates, np.bool_)
    err = np.empty((p, p))
    take = np.empty((p, p), np.bool_)
    # the source corner each block took, on the blocks' own grid (-p*4: none), so that a block does not repeat
    # its left or upper neighbour's (see REPEAT_NEAR)
    nb_i, nb_j = (rows.max() - i0) // step + 2, (cols.max() - j0) // step + 2
    chosen = np.full((nb_i, nb_j, 2), -4 * p, np.int64)
    near = max(1, int(REPEAT_NEAR * p))
    for bi, ii in enumerate(range(i0, rows.max() + 1, step)):
        i = min(ii, H - p)
        for bj, jj in enumerate(range(j0, cols.max() + 1, step)):
            j = min(jj, W - p)
            if not todo[i:i + p, j:j + p].any():
                continue
            pick = rng.integers(0, len(src), size=candidates)
            k = 0
            if have[i:i + p, j:j + p].any():
                # each candidate's squared difference to what is there on the overlap; the best, ties within
                # 10% drawn at random, of those that do not repeat a neighbour's block (REPEAT_NEAR)
                for n in range(candidates):
                    sy, sx = src[pick[n], 0], src[pick[n], 1]
                    acc = 0.0
                    for y in range(p):
                        for x in range(p):
                            if have[i + y, j + x]:
                                acc = _add_sq_diff(acc, source, sy + y, sx + x, values, i + y, j + x)
                    ssd[n] = acc
                    repeats[n] = False
                    for ny, nx in ((bi, bj - 1), (bi - 1, bj), (bi - 1, bj - 1), (bi - 1, bj + 1)):
                        repeats[n] |= (ny >= 0 and 0 <= nx < nb_j and abs(chosen[ny, nx, 0] - sy) < near
                                       and abs(chosen[ny, nx, 1] - sx) < near)
                if repeats.all():
                    # every candidate repeats a neighbour: one drawn at random (the best of them is that
                    # neighbour's block again, which locks the lattice back in: if_009 0.31 -> 0.39)
                    best = np.arange(candidates)
                else:
                    best = np.flatnonzero(~repeats & (ssd <= ssd[~repeats].min() * 1.1 + 1e-12))
                k = best[rng.integers(0, len(best))]
            sy, sx = src[pick[k], 0], src[pick[k], 1]
            chosen[bi, bj, 0], chosen[bi, bj, 1] = sy, sx
            # where it overlaps blocks placed before, the block takes the texels past the path of least
            # difference through the overlap (Efros & Freeman's boundary cut): blocks meet along their most
            # alike texels, not on a straight edge
            placed_left = placed_top = False
            for y in range(p):
                for x in range(p):
                    placed = fill[i + y, j + x] and not todo[i + y, j + x]
                    placed_left |= placed and x < p - step
                    placed_top |= placed and y < p - step
                    err[y, x] = 0.0
                    if have[i + y, j + x]:
                        err[y, x] = _add_sq_diff(0.0, source, sy + y, sx + x, values, i + y, j + x)
                    take[y, x] = True
            if placed_left:
                path = _cut_path(err[:, :p - step].copy())
                for y in range(p):
                    for x in range(path[y]):
                        take[y, x] = False
            if placed_top:
                path = _cut_path(err[:p - step].T.copy())
                for x in range(p):
                    for y in range(path[x]):
                        take[y, x] = False
            for y in range(p):
                for x in range(p):
                    need = todo[i + y, j + x]
                    if need or (fill[i + y, j + x] and take[y, x]):  # not needed but in fill: placed before
                        for c in range(C):
                            values[i + y, j + x, c] = source[sy + y, sx + x, c]
                    if need:
                        have[i + y, j + x] = True
                        todo[i + y, j + x] = False


def quilt(values: np.ndarray, source: np.ndarray, fill: np.ndarray, known: np.ndarray, patch: int,
          seed: int = 0, candidates: int = QUILT_CANDIDATES) -> np.ndarray | None:
    """Image quilting on a grid: values [H,W,C] with the texels `fill` [H,W] bool synthesised from
    patch x patch blocks that lie wholly in `source` [H,W] bool. Blocks are placed in raster order with
    a third of a block of overlap; each is the best of `candidates` random source blocks (least squared
    difference on the overlap with what is `known` [H,W] or placed; ties within 10% drawn at random) and
    fills only the fill texels it covers, taking those of the blocks before it past the path of least
    difference through their overlap. Deterministic for a seed. None when fewer than QUILT_MIN_SOURCES whole
    source blocks exist."""
    p = int(patch)
    ii = np.pad(np.cumsum(np.cumsum(source, 0), 1), ((1, 0), (1, 0)))
    whole = (ii[p:, p:] - ii[:-p, p:] - ii[p:, :-p] + ii[:-p, :-p]) == p * p  # [H-p+1, W-p+1]
    src = np.argwhere(whole)
    if len(src) < QUILT_MIN_SOURCES or not fill.any():
        return None
    values = np.ascontiguousarray(values, np.float64)
    out = values.copy()
    _quilt_blocks(out, values, src, np.ascontiguousarray(fill, np.bool_), known & ~fill, p,
                  max(1, p - max(1, p // 3)), int(candidates), np.random.default_rng(seed))
    return out


def hair_exemplar(rgb: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """The candidate texels [T] bool whose colour is the hair's: what is not hair-coloured (a cap's badge,
    a hair clip, background at the rim) is not copied all round. Distance in log colour from the
    candidates' median colour, within HAIR_OUTLIER_K x its median (at least HAIR_OUTLIER_MIN)."""
    log = np.log(np.clip(rgb, 0, 1) + LOG_EPS)
    dist = np.linalg.norm(log - np.median(log[candidates], axis=0), axis=1)
    return candidates & (dist <= max(HAIR_OUTLIER_MIN, HAIR_OUTLIER_K * np.median(dist[candidates])))


HAIR_CELL_M = 0.002  # side of a cell of the unrolled scalp (hair_cells), metres: about a texel
HAIR_PATCH_M = 0.03  # a quilted block's side on the head, metres (16 texels of the 256 atlas' crown)
HAIR_LOW_M = 0.016  # the unseen hair's colour below this scale (a Gaussian's sigma, metres) is the photo's hair's
HAIR_DETAIL_M = 0.005  # the exemplar's detail: what it shows over this scale is its shading (hair_detail)


def hair_cells(points: np.ndarray, cell: float = HAIR_CELL_M) -> tuple[np.ndarray, tuple[int, int]]:
    """The scalp unrolled at its true size round the head: points [N,3] metres (head frame: y up, the
    face towards +z) -> (cells [N,2] int (row, col), grid shape). Rows are height (the top row highest),
    columns the arc round the vertical axis through the points' centre, from the front (+z), so the back
    is in the middle of the grid with no seam. A cell is `cell` metres both ways on the sides and back
    (the crown, seen from above, is squeezed into few rows), unlike the atlas, whose texels are ~1 x 2 mm
    at the hairline and ~3.3 x 1.1 mm at the back: a block copied in the atlas from the front to the back
    came out stretched 3x across and squashed 2x down (horizontal streaks)."""
    d = points - points.mean(0)
    radius = np.median(np.hypot(d[:, 0], d[:, 2]))
    azimuth = np.mod(np.arctan2(d[:, 0], d[:, 2]), 2 * np.pi)  # 0 at the front, pi at the back
    rc = np.stack([np.floor((d[:, 1].max() - d[:, 1]) / cell), np.floor(azimuth * radius / cell)], 1)
    rc = rc.astype(np.int64)
    return rc, (int(rc[:, 0].max()) + 1, int(rc[:, 1].max()) + 1)


def cell_blur(values: np.ndarray, weights: np.ndarray, cells: np.ndarray, shape: tuple[int, int],
              sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Normalised convolution on the unrolled hair (hair_cells): values [N,3] with weights [N] at cells [N,2]
    -> (their Gaussian-weighted mean at each of the N, sigma in cells, [N,3]; the weight's local density
    there, [N] in [0,1], 1 where every cell round is fully weighted)."""
    flat = cells[:, 0] * shape[1] + cells[:, 1]
    size = shape[0] * shape[1]
    w = np.bincount(flat, weights, size)
    n = np.bincount(flat, minlength=size)
    v = np.stack([np.bincount(flat, weights * values[:, k], size) for k in range(3)], 1)
    # channels: weighted colour sums, weight sums, each cell's mean weight, whether it holds a texel
    grid = np.concatenate([v, w[:, None], (w / np.maximum(n, 1))[:, None], (n > 0)[:, None]], 1)
    # rows (height) end at the crown and the hair's end; columns go round the head (wrapped by hand: OpenCV's
    # blur (_blur), ~10x faster than scipy's here, has no wrapping border)
    pad = int(np.ceil(4 * sigma))
    grid = np.pad(grid.reshape(shape + (6,)).astype(np.float32), ((0, 0), (pad, pad), (0, 0)), mode="wrap")
    blurred = np.concatenate([_blur(grid[..., k:k + 3], sigma) for k in (0, 3)], 2)[:, pad:pad + shape[1]]
    blurred = blurred.reshape(size, 6)[flat].astype(np.float64)
    return (blurred[:, :3] / np.maximum(blurred[:, 3:4], 1e-8),
            np.clip(blurred[:, 4] / np.maximum(blurred[:, 5], 1e-8), 0, 1))


def _local_mean(values: np.ndarray, on: np.ndarray, sigma: float) -> np.ndarray:
    """[rows, cols, C]: the Gaussian-weighted mean (sigma cells) round each cell of values [rows, cols, C] over
    the cells on [rows, cols] bool (normalised convolution on the unrolled hair's grid)."""
    num = gaussian_filter(values * on[..., None], (sigma, sigma, 0))
    den = gaussian_filter(on.astype(np.float64), sigma)[..., None]
    return num / np.maximum(den, 1e-6)


def hair_detail(values: np.ndarray, known: np.ndarray, exemplar: np.ndarray,
                sigma: float = HAIR_DETAIL_M / HAIR_CELL_M) -> np.ndarray:
    """values [rows, cols, 3] (the unrolled hair, hair_cells) with the known [rows, cols] bool cells' shading
    taken out: their detail under sigma cells (a ratio to their local mean, in log colour: shading scales
    colour) on the mean colour of the exemplar [rows, cols] bool cells. The rest is left as it is."""
    log = np.log(np.clip(values, 0, 1) + LOG_EPS)
    detail = log - _local_mean(log, known, sigma) + np.log(values[exemplar].mean(0) + LOG_EPS)
    return np.where(known[..., None], np.exp(detail) - LOG_EPS, values)


def synthesize_hair(layout: UVLayout, rgb: np.ndarray, conf: np.ndarray, hair: np.ndarray,
                    points: np.ndarray, places: np.ndarray | None = None, seed: int = 0):
    """The unseen hair texels (hair [T] bool, conf < SEEN_CONF) of rgb [T,3] in the photo's own hair texture:
    quilted from the well-seen, hair-coloured ones (quilt: each block matches the seen hair it overlaps),
    on the hair unrolled at its true size (hair_cells of points [T,3], the texels' positions, metres).
    places [T] bool, if given: where the exemplar may come from (the photo's hair: texture.complete).
    Returns rgb [T,3] with those texels replaced, or None when the photo shows too little hair."""
    fill = hair & (conf < SEEN_CONF)
    exemplar = hair & (conf >= WELL_SEEN_CONF)
    if places is not None:
        exemplar &= places
    if not fill.any() or exemplar.sum() < QUILT_MIN_SOURCES:
        return None
    idx = np.flatnonzero(hair)
    cells, shape = hair_cells(points[idx])
    flat = cells[:, 0] * shape[1] + cells[:, 1]

    def cell_mean(sel):  # [rows, cols, 3] mean colour of the texels `sel` (of idx) in each cell; count
        n = np.bincount(flat[sel], minlength=shape[0] * shape[1]).astype(np.float64)
        v = np.stack([np.bincount(flat[sel], rgb[idx[sel], k], shape[0] * shape[1]) for k in range(3)], 1)
        return (v / np.maximum(n, 1)[:, None]).reshape(shape + (3,)), n.reshape(shape) > 0

    seen_rgb, seen = cell_mean(conf[idx] >= SEEN_CONF)
    hairy = exemplar[idx] & hair_exemplar(rgb, exemplar)[idx]
    values, well = cell_mean(hairy)
    # the atlas' texels are up to 2 cells apart: gaps between them are closed before anything else
    # not hair: patches of non-hair colour (and a cell round them); a lone dark texel is a strand's shadow
    block = np.ones((3, 3), bool)
    odd = binary_closing(cell_mean(exemplar[idx] & ~hairy)[1], block)
    odd = binary_dilation(binary_opening(odd, np.ones((2, 2), bool)), block)
    source = binary_closing(well, block) & ~odd
    # source cells between texels take their neighbours' mean colour, so that whole blocks exist
    gap = source & ~well
    values[gap] = _local_mean(values, well, 1)[gap]
    other = seen & ~source  # seen cells outside the exemplar keep what the photo shows there
    values[other] = seen_rgb[other]
    todo = np.zeros(shape, bool)
    todo.flat[flat[fill[idx]]] = True
    todo &= ~seen  # a cell with a seen texel keeps the seen colour
    # the exemplar is the hair facing the camera, lit and shaded as the photo shows it: blocks copied with that
    # shading tiled it over the back at the blocks' step (a basket weave, a knit or stripes: if_009, london_129,
    # if_023); only their detail is quilted, and complete gives the unseen hair its low frequencies
    if source.any():
        values = hair_detail(values, seen | source, source)
    q = quilt(values, source, todo, seen | source, max(3, round(HAIR_PATCH_M / HAIR_CELL_M)), seed)
    if q is None:
        return None
    out = rgb.astype(np.float64)
    f = fill[idx]
    out[idx[f]] = q.reshape(-1, 3)[flat[f]]
    return out


def _strand_field(shape: tuple[int, int], fine: tuple[float, float], coarse: tuple[float, float], seed: int,
                  mode: str = "reflect") -> np.ndarray:
    """[rows, cols] in [-1, 1]: hair-like texture, mirror-symmetric across its columns: a fixed random grid
    smoothed at two scales, fine and coarse ((along rows, across columns) sigmas in cells), long along the
    rows' direction and thin across."""
    grid = np.random.default_rng(seed).standard_normal(shape)
    grid = 0.5 * (grid + grid[:, ::-1])  # mirror-symmetric like everything else in the atlas
    f, c = gaussian_filter(grid, fine, mode=mode), gaussian_filter(grid, coarse, mode=mode)
    return np.tanh(0.6 * (f / (f.std() + 1e-8) + 0.6 * c / (c.std() + 1e-8)))


@lru_cache(maxsize=4)
def _strand_noise(layout: UVLayout, seed: int = 7) -> np.ndarray:
    """[T] in [-1, 1]: hair-like texture, long along v (down the head), thin across u; symmetric."""
    res = layout.res
    return layout.from_grid(_strand_field((res, res), (res / 40, res / 400 + 0.6), (res / 12, res / 60), seed, "wrap"))


def region_prior(layout: UVLayout, ev: PhotoEvidence, hair: np.ndarray | None = None) -> np.ndarray:
    """The full-head prior's colour [T,3] for every texel, from the photo's skin and hair statistics;
    hair [T] bool: the texels hair covers (default: the scalp)."""
    skin = ev.skin_rgb.astype(np.float64)
    colours = {
        "face_skin": skin, "ears": skin * 0.95, "neck": skin * 0.9,
        "lips": np.clip(skin * np.array([1.0, 0.72, 0.72]), 0, 1),
        "brows": np.clip(0.6 * ev.hair_rgb_dark + 0.4 * skin * 0.5, 0, 1),
        "eyes": np.array([0.85, 0.83, 0.8]), "mouth_interior": np.array([0.32, 0.1, 0.1]),
        "teeth": np.array([0.86, 0.83, 0.76]), "tongue": np.array([0.62, 0.3, 0.3]),
    }
    prior = np.tile(skin, (len(layout.face), 1))
    for name, c in colours.items():
        if name in REGIONS:
            prior[layout.in_region(name)] = c
    hair = layout.in_region("scalp") if hair is None else hair
    prior[hair] = hair_prior(layout, ev)[hair]
    return prior


# Strands that fall straight down in the head frame (hanging_strands): a fixed random field on a STRAND_CELL_M grid
# over STRAND_EXTENT_M, smoothed along and across as _strand_noise is on the scalp's atlas
STRAND_CELL_M = 0.002
STRAND_EXTENT_M = ((-0.4, 0.4), (-0.8, 0.2))  # x, y


@lru_cache(maxsize=1)
def _hanging_field(seed: int = 7) -> np.ndarray:
    (x0, x1), (y0, y1) = STRAND_EXTENT_M
    shape = (round((y1 - y0) / STRAND_CELL_M), round((x1 - x0) / STRAND_CELL_M))  # rows down, columns across x
    cells = lambda along, across: (along / STRAND_CELL_M, across / STRAND_CELL_M)  # noqa: E731  (metres -> cells)
    return _strand_field(shape, cells(0.02, 0.003), cells(0.06, 0.013), seed).astype(np.float32)


def hanging_strands(points: np.ndarray) -> np.ndarray:
    """[N] in [-1, 1]: hair-like texture at points [N,3] (metres, head frame) whose strands fall straight down,
    for hair lying on a surface whose chart does not run down it (the bust's columns converge at its top: strands
    along them fanned out)."""
    (x0, _), (_, y1) = STRAND_EXTENT_M
    uv = np.stack([(points[:, 0] - x0) / STRAND_CELL_M, (y1 - points[:, 1]) / STRAND_CELL_M], 1)
    return sample_bilinear(_hanging_field(), uv, cv2.BORDER_REFLECT)


def hair_prior(layout: UVLayout, ev: PhotoEvidence, noise: np.ndarray | None = None) -> np.ndarray:
    """[T,3] in [0,1]: hair of the photo's median hair colour for every texel of `layout`, with strands running
    down its v (lighter up to 1.25x the median, darker down to the photo's dark hair: PhotoEvidence), or the
    strands noise [T] in [-1, 1] gives (hanging_strands)."""
    n = (_strand_noise(layout) if noise is None else np.asarray(noise))[:, None]
    mean, dark = ev.hair_rgb.astype(np.float64), ev.hair_rgb_dark.astype(np.float64)
    return np.clip(np.where(n > 0, mean + n * (mean * 1.25 - mean), mean + n * (mean - dark)), 0, 1)


# What goes round the back of a ring is what the photo shows at its sides: a collar, a necklace, the skin above
# them, not a tie, a shirt's buttons or a V-neck's skin at the front's middle. A ring's colour is the median of
# its seen texels farthest round from the front (the outer RING_SIDE_SHARE of them).
RING_SIDE_SHARE = 0.3


def ring_colours(layout: UVLayout, rgb: np.ndarray, conf: np.ndarray, band: np.ndarray,
                 reach: float = np.inf, ring: np.ndarray | None = None, around: np.ndarray | None = None
                 ) -> np.ndarray:
    """[T,3] for the texels of `band` (a part of the body that rings go round, like the neck): the median
    colour of the well-seen texels (conf >= WELL_SEEN_CONF) of each ring (those farthest round from the front
    where around [T], radians from the front, is given: RING_SIDE_SHARE), rings without enough taking the
    nearest ring that has within `reach` rings, smoothed over ~1 ring; NaN outside the band, when none is
    seen, or further than `reach` rings from a seen ring. ring [T] int: each texel's ring (default: its
    atlas row, for a chart whose rows go round the body, like the bust's).
    A collar, a necklace line or the skin above them goes round the back as the photo shows its sides."""
    out = np.full((len(rgb), 3), np.nan)
    rows = layout.rc[:, 0] if ring is None else np.asarray(ring, np.int64)
    seen = band & (conf >= WELL_SEEN_CONF)
    if not band.any():
        return out
    lo, hi = rows[band].min(), rows[band].max()
    table = np.full((hi - lo + 1, 3), np.nan)
    idx = np.flatnonzero(seen)
    idx = idx[np.argsort(rows[idx], kind="stable")]
    bounds = np.searchsorted(rows[idx] - lo, np.arange(len(table) + 1))
    for k in range(len(table)):  # one slice per ring (a mask per ring over every texel cost ~30 ms a call)
        if bounds[k + 1] - bounds[k] >= 5:
            at = idx[bounds[k]:bounds[k + 1]]
            if around is not None:
                side = around[at] >= np.quantile(around[at], 1 - RING_SIDE_SHARE)
                at = at[side] if side.sum() >= 5 else at
            table[k] = np.median(rgb[at], axis=0)
    have = np.flatnonzero(~np.isnan(table[:, 0]))
    if len(have) == 0:
        return out
    gap = np.abs(np.arange(len(table))[:, None] - have[None])
    nearest = have[gap.argmin(1)]
    table = gaussian_filter(table[nearest], (1.0, 0), mode="nearest")
    table[gap.min(1) > reach] = np.nan
    out[band] = table[rows[band] - lo]
    return out


# The neck's rings are slabs of height (head frame): on the ICT atlas the front of the neck lies in the face's
# island and the back in the head's, on different atlas rows, so rows do not go round it.
NECK_RING_M = 0.002


# Inside the mouth the light is occluded: an open mouth reads dark except for the front teeth. The model's
# mouth (socket, tongue and gums, teeth: real geometry, reaching ~4 cm behind the lips) would otherwise be
# lit like the skin and show a pink tongue and bright molars when the jaw opens. The prior's colour there
# fades with depth behind the lips: full CAVITY_FRONT_M behind them, then exp(-depth / CAVITY_FALLOFF_M).
CAVITY_FRONT_M, CAVITY_FALLOFF_M = 0.006, 0.012
MOUTH_REGIONS = ("mouth_interior", "tongue", "teeth")


def cavity_occlusion(layout: UVLayout, points: np.ndarray) -> np.ndarray:
    """[T] in (0, 1]: the light reaching each texel of the mouth (MOUTH_REGIONS) by its depth behind the
    lips (points [T,3], head frame, metres: +z out of the face); 1 elsewhere."""
    out = np.ones(len(points))
    mouth = layout.in_region(*MOUTH_REGIONS)
    lips = layout.in_region("lips")
    if mouth.any() and lips.any():
        depth = np.percentile(points[lips, 2], 90) - points[mouth, 2] - CAVITY_FRONT_M
        out[mouth] = np.exp(-np.clip(depth, 0, None) / CAVITY_FALLOFF_M)
    return out


def complete(layout: UVLayout, rgb: np.ndarray, conf: np.ndarray, ev: PhotoEvidence, points: np.ndarray,
             camera: Camera, hair: np.ndarray | None = None, sigma: float = 10.0):
    """Texels the photo (and its mirror) do not back take the prior's colour, near observed texels
    first the smoothly extended observed colour, so the seam between the two fades out; the unseen hair
    is quilted from the seen hair (synthesize_hair; points [T,3]: the texels' positions, metres, which
    `camera` projects onto the photo). hair [T] bool: the texels hair covers (default: the scalp; long
    hair also covers the neck, model.ours.avatar.hanging_hair).
    Returns rgb [T,3]."""
    hair = layout.in_region("scalp") if hair is None else hair
    prior = region_prior(layout, ev, hair)
    # clothing and skin go round the neck, under any hair hanging there; read off the photo's hair (long hair
    # beside the neck had gone round its back as a dark band below the hair's end)
    uv, _ = camera.project(points)
    neck = layout.in_region("neck")
    axis = points[neck][:, [0, 2]].mean(0) if neck.any() else np.zeros(2)
    ring = ring_colours(layout, rgb, np.where(sample_bilinear(ev.hair, uv) > 0.5, 0.0, conf), neck & ~hair,
                        ring=np.floor(points[:, 1] / NECK_RING_M).astype(np.int64),
                        around=np.abs(np.arctan2(points[:, 0] - axis[0], points[:, 2] - axis[1])))
    ok = ~np.isnan(ring[:, 0])
    prior[ok] = ring[ok]
    ext, support = smooth_fill(layout, rgb, conf, sigma)
    near = np.clip(support * 3, 0, 1)[:, None]
    detail = np.zeros_like(prior)  # hair keeps its strand detail on top of the extended colour
    detail[hair] = prior[hair] - ev.hair_rgb
    base = near * (ext + detail) + (1 - near) * prior
    # the photo's own hair texture where it has enough of it
    # exemplar: texels that land on the photo's hair, inside the hair mask's soft edge (not skin, background,
    # clothes or a neighbour's hair: segmentation.hair_reach keeps to this person's hair)
    places = sample_bilinear(core_of(ev.hair), uv) > 0.5
    synth = synthesize_hair(layout, rgb, conf, hair, points, places)
    unseen = hair & (conf < SEEN_CONF)
    if synth is not None:
        base[unseen] = synth[unseen]
    if unseen.any() and ev.has_hair:
        # the exemplar is only the hair facing the camera (the crown, lit or shaded its own way): the unseen
        # hair keeps its texture's detail, and its low frequencies (over HAIR_LOW_M) are the mean colour of
        # all the photo's hair pixels, near the seen hair that hair's smooth extension. A single shift of the
        # whole (a gain would multiply a dark exemplar's noise) left the quilt's large blotches: blocks of the
        # shaded sides gathered at the back, 7 ΔE darker than the photo's white hair on two portraits.
        idx = np.flatnonzero(hair)
        cells, shape = hair_cells(points[idx])
        low = cell_blur(base[idx], unseen[idx], cells, shape, HAIR_LOW_M / HAIR_CELL_M)[0]
        seen, support = cell_blur(rgb[idx], np.where(unseen[idx], 0.0, conf[idx]), cells, shape,
                                  HAIR_LOW_M / HAIR_CELL_M)
        target = support[:, None] * seen + (1 - support[:, None]) * ev.hair_mean
        u = unseen[idx]
        base[idx[u]] += (target - low)[u]
    base *= cavity_occlusion(layout, points)[:, None]
    c = conf[:, None]
    return np.clip(c * rgb + (1 - c) * base, 0, 1)
