"""CPU Gaussian rasterizer: numba tile kernels that follow gsplat 1.5.3's "classic" rules exactly.

Hand-written because no maintained package rasterizes 3D Gaussians on a CPU (gsplat's compositor
is CUDA-only; see shared/NOTES.md). The rules, taken from gsplat's CUDA sources
(ProjectionEWA3DGSFused.cu, Utils.cuh persp_proj, RasterizeToPixels3DGSFwd.cu):

- cull a Gaussian whose camera-frame centre has z < near (0.01 m);
- EWA: Σ2d = J W Σ Wᵀ Jᵀ with x/z, y/z clamped to gsplat's limits (1.3 × the half field of view),
  then Σ2d += 0.3 px² on the diagonal (no opacity compensation);
- per pixel: σ = ½ dᵀ Σ2d⁻¹ d, alpha = min(0.999, o·exp(-σ)); skip alpha < 1/255; front to back by
  depth (float32 z, stable), stop a pixel *before* compositing the Gaussian that would leave
  T·(1 - alpha) <= 1e-4.

Pixel centres: this project's camera puts them at integer coordinates; gsplat puts them at
j + 0.5. Both see the same offsets d, so the output is identical to gsplat given K with
cx, cy + 0.5 (see model/core/_raster_gsplat.py). The clamp limits below use that shifted K.

Speed (2 cores): one stable radix sort by depth, the records gathered into depth order, then a
counting sort into tiles (each tile list stays depth ordered). A Gaussian's footprint is the exact
ellipse where alpha >= 1/255 (the tiles it touches). The pixel loop
runs over whole tile rows as SIMD vectors: branch-free selects, a polynomial exp (numba cannot vectorize
math.exp without Intel SVML), rows whose pixels have all stopped are skipped, and a tile stops when all
its pixels have. Numba caches the compiled kernels on disk (cache=True; in __pycache__ next to this
file, or a user cache directory when that is read-only), so a fresh process only loads them.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

NEAR_PLANE = 0.01  # metres: gsplat's default near plane
EPS2D = 0.3  # px²: gsplat's low-pass blur added to the 2D covariance diagonal
ALPHA_MIN = np.float32(1.0 / 255.0)  # gsplat ALPHA_THRESHOLD
ALPHA_MAX = np.float32(0.999)
T_MIN = np.float32(1e-4)  # transmittance at which a pixel stops
TILE_W, TILE_H = 8, 16  # px; the width a power of 2 (see _raster); 8 = one AVX2 vector per tile row

_LN255 = math.log(255.0)
_SPAN_EPS = 1e-3  # px: widen analytic extents so float rounding never drops a pixel that passes the alpha test

# per-Gaussian projected record, float32 columns of `proj`. With the blurred 2D covariance
# [[c00, c01], [c01, c11]] and d = pixel - mean, σ = ½A(dx + β dy)² + γ dy² (A = c11/det, β = -c01/c11,
# γ = 1/(2 c11)): the same value as ½dᵀΣ⁻¹d as a sum of two non-negative terms, so float32 keeps its
# precision for needles (the expanded form cancels terms ~1e4 times larger than σ).
_U, _V, _A, _BETA, _GAMMA, _OP, _SMAX, _Z, _HX, _DSTAR, _NCOL = range(11)
_R, _G, _B, _NREC = range(_NCOL, _NCOL + 4)  # after sorting, colour joins the record


@njit(parallel=True, cache=True, fastmath={"contract"})
def _project(means, quats, scales, opacities, w2c, fx, fy, cx, cy, width, height, near, eps2d, proj, bbox, valid):
    """Project N Gaussians. means/quats/scales/opacities float32 [N,3]/[N,4]/[N,3]/[N];
    w2c float64 [4,4]; K in this project's convention (integer pixel centres).
    Writes proj float32 [N,_NCOL] (u, v px; A, β, γ of σ; opacity; σ_max = ln(255·o), the σ beyond
    which alpha < 1/255; z metres; ellipse half width and the dy of its rightmost point, px),
    bbox int32 [N,4] (x0, x1, y0, y1 inclusive, clipped to the image) and valid bool [N]."""
    n = means.shape[0]
    # gsplat's clamp limits, computed with its half-pixel-shifted principal point
    gcx = cx + 0.5
    gcy = cy + 0.5
    tan_fovx = 0.5 * width / fx
    tan_fovy = 0.5 * height / fy
    lim_x_pos = (width - gcx) / fx + 0.3 * tan_fovx
    lim_x_neg = gcx / fx + 0.3 * tan_fovx
    lim_y_pos = (height - gcy) / fy + 0.3 * tan_fovy
    lim_y_neg = gcy / fy + 0.3 * tan_fovy
    for i in prange(n):
        valid[i] = False
        px = float(means[i, 0])
        py = float(means[i, 1])
        pz = float(means[i, 2])
        x = w2c[0, 0] * px + w2c[0, 1] * py + w2c[0, 2] * pz + w2c[0, 3]
        y = w2c[1, 0] * px + w2c[1, 1] * py + w2c[1, 2] * pz + w2c[1, 3]
        z = w2c[2, 0] * px + w2c[2, 1] * py + w2c[2, 2] * pz + w2c[2, 3]
        o = float(opacities[i])
        if not (z >= near and o >= ALPHA_MIN):  # written so that NaN is culled too
            continue
        # world covariance M Mᵀ with M = R(q) diag(s)
        qw = float(quats[i, 0])
        qx = float(quats[i, 1])
        qy = float(quats[i, 2])
        qz = float(quats[i, 3])
        qn = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
        if qn == 0.0:
            continue
        qw /= qn
        qx /= qn
        qy /= qn
        qz /= qn
        sx = float(scales[i, 0])
        sy = float(scales[i, 1])
        sz = float(scales[i, 2])
        r00 = 1 - 2 * (qy * qy + qz * qz)
        r01 = 2 * (qx * qy - qw * qz)
        r02 = 2 * (qx * qz + qw * qy)
        r10 = 2 * (qx * qy + qw * qz)
        r11 = 1 - 2 * (qx * qx + qz * qz)
        r12 = 2 * (qy * qz - qw * qx)
        r20 = 2 * (qx * qz - qw * qy)
        r21 = 2 * (qy * qz + qw * qx)
        r22 = 1 - 2 * (qx * qx + qy * qy)
        # camera-frame M_c = W R diag(s): Σ_c = M_c M_cᵀ
        m00 = (w2c[0, 0] * r00 + w2c[0, 1] * r10 + w2c[0, 2] * r20) * sx
        m01 = (w2c[0, 0] * r01 + w2c[0, 1] * r11 + w2c[0, 2] * r21) * sy
        m02 = (w2c[0, 0] * r02 + w2c[0, 1] * r12 + w2c[0, 2] * r22) * sz
        m10 = (w2c[1, 0] * r00 + w2c[1, 1] * r10 + w2c[1, 2] * r20) * sx
        m11 = (w2c[1, 0] * r01 + w2c[1, 1] * r11 + w2c[1, 2] * r21) * sy
        m12 = (w2c[1, 0] * r02 + w2c[1, 1] * r12 + w2c[1, 2] * r22) * sz
        m20 = (w2c[2, 0] * r00 + w2c[2, 1] * r10 + w2c[2, 2] * r20) * sx
        m21 = (w2c[2, 0] * r01 + w2c[2, 1] * r11 + w2c[2, 2] * r21) * sy
        m22 = (w2c[2, 0] * r02 + w2c[2, 1] * r12 + w2c[2, 2] * r22) * sz
        rz = 1.0 / z
        tx = z * min(lim_x_pos, max(-lim_x_neg, x * rz))
        ty = z * min(lim_y_pos, max(-lim_y_neg, y * rz))
        # J M_c, J = [[fx/z, 0, -fx tx/z²], [0, fy/z, -fy ty/z²]]
        j00 = fx * rz
        j02 = -fx * tx * rz * rz
        j11 = fy * rz
        j12 = -fy * ty * rz * rz
        a0 = j00 * m00 + j02 * m20
        a1 = j00 * m01 + j02 * m21
        a2 = j00 * m02 + j02 * m22
        b0 = j11 * m10 + j12 * m20
        b1 = j11 * m11 + j12 * m21
        b2 = j11 * m12 + j12 * m22
        c00 = a0 * a0 + a1 * a1 + a2 * a2 + eps2d
        c01 = a0 * b0 + a1 * b1 + a2 * b2
        c11 = b0 * b0 + b1 * b1 + b2 * b2 + eps2d
        det = c00 * c11 - c01 * c01
        u = fx * x * rz + cx
        v = fy * y * rz + cy
        if not (det > 0.0 and abs(u) < 1e7 and abs(v) < 1e7):  # degenerate, NaN or absurdly far off-screen
            continue
        smax = math.log(o) + _LN255
        # the ellipse σ <= σ_max is exactly where alpha >= 1/255; gsplat caps its box at 3.33σ, which
        # only binds for o > 1
        k = min(2.0 * smax, 3.33 * 3.33)
        hx = math.sqrt(k * c00)
        hy = math.sqrt(k * c11)
        x0 = max(0, math.ceil(u - hx - _SPAN_EPS))
        x1 = min(width - 1, math.floor(u + hx + _SPAN_EPS))
        y0 = max(0, math.ceil(v - hy - _SPAN_EPS))
        y1 = min(height - 1, math.floor(v + hy + _SPAN_EPS))
        if x0 > x1 or y0 > y1:
            continue  # entirely off-screen
        proj[i, _U] = u
        proj[i, _V] = v
        proj[i, _A] = c11 / det
        proj[i, _BETA] = -c01 / c11
        proj[i, _GAMMA] = 0.5 / c11
        proj[i, _OP] = o
        proj[i, _SMAX] = smax
        proj[i, _Z] = z
        proj[i, _HX] = hx
        proj[i, _DSTAR] = c01 * math.sqrt(k / c00)
        bbox[i, 0] = x0
        bbox[i, 1] = x1
        bbox[i, 2] = y0
        bbox[i, 3] = y1
        valid[i] = True


@njit(cache=True)
def _depth_order(z, valid):
    """Indices of the valid Gaussians sorted by float32 depth z (> 0), stable: an LSD radix sort
    on the float bits (positive IEEE floats order like their bit patterns), 3 passes of 11 bits."""
    n = 0
    for i in range(z.shape[0]):
        if valid[i]:
            n += 1
    a = np.empty(n, np.int32)
    k = 0
    for i in range(z.shape[0]):
        if valid[i]:
            a[k] = i
            k += 1
    bits = z.view(np.uint32)
    b = np.empty(n, np.int32)
    count = np.empty(2048, np.int64)
    for shift in (0, 11, 22):
        count[:] = 0
        for j in range(n):
            count[(bits[a[j]] >> shift) & 2047] += 1
        s = 0
        for d in range(2048):
            c = count[d]
            count[d] = s
            s += c
        for j in range(n):
            d = (bits[a[j]] >> shift) & 2047
            b[count[d]] = a[j]
            count[d] += 1
        a, b = b, a
    return a


@njit(cache=True, inline="always")
def _band(da, db, a, beta, gamma, half, star, two_smax):
    """Extent (lo, hi) along axis q of the ellipse ½a(dq + β dp)² + γ dp² <= σ_max over the band
    da <= dp <= db (offsets from the centre, px), where `half` is its half extent along q and `star` the dp of
    its extreme-q point. For a fixed dp, dq spans -β dp ± sqrt((2σ_max - 2γ dp²) / a): the upper end is
    concave in dp and peaks at `star`, the lower end mirrors it at -star; the band is clipped to the
    ellipse's bounding box, so the end evaluated is never past the ellipse."""
    if da <= star <= db:
        hi = half
    else:
        dp = da if star < da else db
        hi = -beta * dp + math.sqrt(max(0.0, (two_smax - 2.0 * gamma * dp * dp) / a))
    if da <= -star <= db:
        lo = -half
    else:
        dp = da if -star < da else db
        lo = -beta * dp - math.sqrt(max(0.0, (two_smax - 2.0 * gamma * dp * dp) / a))
    return lo - _SPAN_EPS, hi + _SPAN_EPS


@njit(cache=True, inline="always")
def _tile_span(rec, bbox, g, ty, tw, th):
    """Tile columns (lo, hi inclusive) touched in tile row ty (tiles tw x th px) by Gaussian g's ellipse
    σ <= σ_max (where alpha >= 1/255); lo > hi when none. Small footprints (at most 2 tile columns, or one
    tile row) take their bounding box's columns: the exact test costs more than the few tiles it saves."""
    tx0 = bbox[g, 0] // tw
    tx1 = bbox[g, 1] // tw
    if tx1 - tx0 <= 1 or bbox[g, 2] // th == bbox[g, 3] // th:
        return tx0, tx1
    u = rec[g, _U]
    v = rec[g, _V]
    lo, hi = _band(max(ty * th, bbox[g, 2]) - v, min(ty * th + th - 1, bbox[g, 3]) - v, rec[g, _A], rec[g, _BETA],
                   rec[g, _GAMMA], rec[g, _HX], rec[g, _DSTAR], 2.0 * rec[g, _SMAX])
    lo_t = int(math.floor(max(u + lo, 0.0))) // tw
    hi_t = int(math.floor(max(u + hi, 0.0))) // tw
    return max(tx0, lo_t), min(tx1, hi_t)


@njit(parallel=True, cache=True)
def _gather(order, proj, bbox, colors):
    """proj, bbox and colours of the Gaussians in `order` (depth order), as one float32 record
    [n, _NREC] and bbox [n, 4]: everything after the sort then reads memory in sequence."""
    n = order.shape[0]
    rec = np.empty((n, _NREC), np.float32)
    box = np.empty((n, 4), np.int32)
    for k in prange(n):
        g = order[k]
        for c in range(_NCOL):
            rec[k, c] = proj[g, c]
        rec[k, _R] = colors[g, 0]
        rec[k, _G] = colors[g, 1]
        rec[k, _B] = colors[g, 2]
        for c in range(4):
            box[k, c] = bbox[g, c]
    return rec, box


@njit(parallel=True, cache=True)
def _bin(rec, bbox, tw, th, ntx, nty):
    """Bin depth-ordered Gaussians into tiles of tw x th px: (offsets int64 [ntiles+1], ids int32 [n_isect]),
    the ids (rows of rec) of tile t being ids[offsets[t]:offsets[t+1]], front to back. A Gaussian goes to
    every tile its alpha >= 1/255 ellipse touches."""
    n = rec.shape[0]
    ntiles = ntx * nty
    # slots for each Gaussian's (Gaussian, tile) pairs, sized by its bounding box's tiles (an upper bound,
    # so the exact tile test runs once)
    start = np.empty(n + 1, np.int64)
    start[0] = 0
    for g in prange(n):
        start[g + 1] = (bbox[g, 3] // th - bbox[g, 2] // th + 1) * (bbox[g, 1] // tw - bbox[g, 0] // tw + 1)
    for g in range(n):
        start[g + 1] += start[g]
    keys = np.empty(start[n], np.int32)  # the tiles of each Gaussian, Gaussians in depth order
    count = np.empty(n, np.int32)
    for g in prange(n):
        j = start[g]
        for ty in range(bbox[g, 2] // th, bbox[g, 3] // th + 1):
            lo, hi = _tile_span(rec, bbox, g, ty, tw, th)
            for tx in range(lo, hi + 1):
                keys[j] = ty * ntx + tx
                j += 1
        count[g] = j - start[g]
    # stable counting sort of the pairs by tile keeps each tile's list in depth order
    offsets = np.zeros(ntiles + 1, np.int64)
    for g in range(n):
        for j in range(start[g], start[g] + count[g]):
            offsets[keys[j] + 1] += 1
    for t in range(ntiles):
        offsets[t + 1] += offsets[t]
    cursor = offsets[:ntiles].copy()
    ids = np.empty(offsets[ntiles], np.int32)
    for g in range(n):
        for j in range(start[g], start[g] + count[g]):
            t = keys[j]
            ids[cursor[t]] = g
            cursor[t] += 1
    return offsets, ids


# exp(-s) for s in [0, σ_cap]: Taylor polynomial of exp(-s/16), then squared four times. Hand-written
# because numba cannot vectorize math.exp without Intel SVML; relative error ~1e-6 over the range.
_EXP_CAP = np.float32(6.0)  # σ beyond ln(255) ≈ 5.54 always gives alpha < 1/255 (o <= 1)
_C1, _C2, _C3, _C4, _C5, _C6, _C7 = (np.float32(1.0 / math.factorial(i)) for i in range(1, 8))


@njit(cache=True, inline="always", fastmath={"contract"})
def _exp_neg(s):
    t = -min(s, _EXP_CAP) * np.float32(1.0 / 16.0)
    e = np.float32(1.0) + t * (_C1 + t * (_C2 + t * (_C3 + t * (_C4 + t * (_C5 + t * (_C6 + t * _C7))))))
    e = e * e
    e = e * e
    e = e * e
    return e * e


_NPLANE = 256  # pixels per plane of a tile buffer: tw * th <= 256


@njit(cache=True, inline="always", fastmath={"contract"})
def _composite_block(buf, lxy, p0, n, ex, ey, half_a, beta, gamma, o, cr, cg, cb, z):
    """Composite one Gaussian onto the n pixels buf[p0:p0+n] of a tile buffer (planes of _NPLANE: T, r, g, b,
    Σwz; rows stored one after another, so a run of whole rows is contiguous). Pixel p sits at
    (lxy[0, p], lxy[1, p]) in the tile, i.e. dx = ex + lxy[0, p], dy = ey + lxy[1, p] from the Gaussian.
    Returns how many pixels stopped. One flat loop over whole rows amortises the per-call overhead;
    unsigned indices and selects instead of branches let LLVM vectorize it (numba's signed indexing would
    block that)."""
    nstop = 0
    for k in range(n):
        p = p0 + np.uint64(k)
        dy = ey + lxy[1, p]
        e = ex + lxy[0, p] + beta * dy
        al = min(ALPHA_MAX, o * _exp_neg(half_a * e * e + gamma * dy * dy))
        tp = buf[p]
        hit = (al >= ALPHA_MIN) & (tp > np.float32(0.0))
        nt = tp * (np.float32(1.0) - al)
        stop = hit & (nt <= T_MIN)
        use = hit & (nt > T_MIN)
        w = al * tp if use else np.float32(0.0)
        buf[p + np.uint64(_NPLANE)] += w * cr
        buf[p + np.uint64(2 * _NPLANE)] += w * cg
        buf[p + np.uint64(3 * _NPLANE)] += w * cb
        buf[p + np.uint64(4 * _NPLANE)] += w * z
        buf[p] = nt if use else (-tp if stop else tp)
        nstop += stop
    return nstop


@njit(parallel=True, cache=True, fastmath={"contract"})
def _raster(offsets, ids, rec, bbox, tw, th, ntx, nty, stride, width, height, rgb, alpha, depth):
    """Composite each tile of tw x th px (tw a power of 2, tw * th <= _NPLANE) front to back.
    rec/bbox from _gather; writes rgb [H,W,3] (premultiplied, no background), alpha [H,W] = 1 - T,
    depth [H,W] = Σ w z / alpha (0 where alpha is 0). A Gaussian is evaluated on whole tile rows (SIMD
    vectors) for the rows of its ellipse that still have live pixels. tw and th are runtime values so that
    LLVM vectorizes the pixel loop rather than unrolling it. Tiles are visited in the order i * stride mod
    ntiles (stride coprime with ntiles): prange hands each thread a contiguous range of i, and this spreads
    the busy middle of the image over all threads."""
    ntiles = ntx * nty
    tw_bits = 0
    while (1 << tw_bits) < tw:
        tw_bits += 1
    lxy = np.empty((2, _NPLANE), np.float32)  # (x, y) of each buffer pixel within its tile
    for j in range(_NPLANE):
        lxy[0, j] = j & (tw - 1)
        lxy[1, j] = j >> tw_bits
    for i in prange(ntiles):
        t = (i * stride) % ntiles
        ty = t // ntx
        tx = t - ty * ntx
        xa = tx * tw
        ya = ty * th
        yb = min(ya + th, height) - 1
        # planes: transmittance (negated once the pixel stops), r, g, b, Σ w z
        buf = np.zeros(5 * _NPLANE, np.float32)
        live = np.zeros(th, np.int32)  # live pixels per row
        remaining = 0
        for j in range(tw * th):
            ly = j >> tw_bits
            inside = (ya + ly < height) and (xa + (j & (tw - 1)) < width)
            buf[j] = np.float32(1.0) if inside else np.float32(-1.0)  # pixels past the image edge start done
            live[ly] += 1 if inside else 0
            remaining += 1 if inside else 0
        for k in range(offsets[t], offsets[t + 1]):
            g = ids[k]
            y0 = max(ya, bbox[g, 2])
            y1 = min(yb, bbox[g, 3])
            y0 -= ya
            y1 -= ya
            while y0 <= y1 and live[y0] == 0:
                y0 += 1
            while y1 >= y0 and live[y1] == 0:
                y1 -= 1
            if y0 > y1:
                continue
            nstop = _composite_block(buf, lxy, np.uint64(y0 * tw), (y1 - y0 + 1) * tw,
                                     np.float32(xa) - rec[g, _U], np.float32(ya) - rec[g, _V],
                                     np.float32(0.5) * rec[g, _A], rec[g, _BETA], rec[g, _GAMMA],
                                     rec[g, _OP], rec[g, _R], rec[g, _G], rec[g, _B], rec[g, _Z])
            if nstop > 0:
                remaining -= nstop
                if remaining == 0:
                    break
                for ly in range(y0, y1 + 1):  # recount the rows just touched (at most tw * th stops per tile)
                    c = 0
                    for lx in range(tw):
                        c += 1 if buf[ly * tw + lx] > 0.0 else 0
                    live[ly] = c
        for j in range(tw * th):
            y = ya + (j >> tw_bits)
            x = xa + (j & (tw - 1))
            if y < height and x < width:
                a = np.float32(1.0) - abs(buf[j])
                rgb[y, x, 0] = buf[j + _NPLANE]
                rgb[y, x, 1] = buf[j + 2 * _NPLANE]
                rgb[y, x, 2] = buf[j + 3 * _NPLANE]
                alpha[y, x] = a
                depth[y, x] = buf[j + 4 * _NPLANE] / a if a > 0.0 else np.float32(0.0)


def _bin_view(means, quats, scales, opacities, colors, K, world_to_cam, width: int, height: int, tw: int, th: int):
    """What rasterize() and compositing_weights() share: project, depth-sort, gather and bin into tiles of
    tw x th px. Returns (order, rec, bbox, offsets, ids, ntx, nty): order maps rows of rec back to Gaussians."""
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    means, quats, scales, opacities, colors = map(f32, (means, quats, scales, opacities, colors))
    K = np.asarray(K, dtype=np.float64)
    w2c = np.ascontiguousarray(world_to_cam, dtype=np.float64)
    n = len(means)
    proj = np.empty((n, _NCOL), np.float32)
    bbox = np.empty((n, 4), np.int32)
    valid = np.empty(n, np.bool_)
    _project(means, quats, scales, opacities, w2c, float(K[0, 0]), float(K[1, 1]), float(K[0, 2]),
             float(K[1, 2]), width, height, NEAR_PLANE, EPS2D, proj, bbox, valid)
    order = _depth_order(np.ascontiguousarray(proj[:, _Z]), valid)
    rec, bbox = _gather(order, proj, bbox, colors)
    ntx = -(-width // tw)
    nty = -(-height // th)
    offsets, ids = _bin(rec, bbox, tw, th, ntx, nty)
    return order, rec, bbox, offsets, ids, ntx, nty


def rasterize(means, quats, scales, opacities, colors, K, world_to_cam, width: int, height: int,
              tile=(TILE_W, TILE_H)):
    """Rasterize Gaussians (float32 means [N,3] m, quats [N,4] wxyz, scales [N,3] m, opacities [N],
    colors [N,3]) with K [3,3] px and world_to_cam [4,4] (OpenCV, integer pixel centres).
    Returns (rgb [H,W,3] premultiplied, no background; alpha [H,W]; depth [H,W] metres), float32."""
    width, height = int(width), int(height)
    tw, th = int(tile[0]), int(tile[1])
    if tw & (tw - 1) or tw * th > _NPLANE:
        raise ValueError(f"tile width must be a power of 2 and tw * th <= {_NPLANE}, got {tw}x{th}")
    order, rec, bbox, offsets, ids, ntx, nty = _bin_view(means, quats, scales, opacities, colors, K, world_to_cam,
                                                         width, height, tw, th)
    rgb = np.empty((height, width, 3), np.float32)
    alpha = np.empty((height, width), np.float32)
    depth = np.empty((height, width), np.float32)
    _raster(offsets, ids, rec, bbox, tw, th, ntx, nty, _tile_stride(ntx * nty), width, height, rgb, alpha, depth)
    return rgb, alpha, depth


def _tile_stride(n_tiles: int) -> int:
    """A stride coprime with n_tiles near its golden ratio: visiting tiles i·stride mod n_tiles scatters
    neighbouring (equally costly: hair, face, background) tiles over the threads' contiguous chunks."""
    stride = int(0.618 * n_tiles) | 1
    while math.gcd(stride, n_tiles) != 1:
        stride += 2
    return stride


@njit(parallel=True, cache=True)
def _weights(offsets, ids, rec, box, tw, th, ntx, stride, width, height, select, wmin, count, gid, wgt):
    """Per-pixel compositing weights w = alpha·T of every Gaussian that reaches a selected pixel, by the
    same rules (and the same float32 arithmetic) as _raster, one pixel at a time; weights below wmin are
    left out (and a pixel stops once T < wmin: nothing after can weigh more). First call with
    count only (gid is empty): count[p] = the number of weights of pixel p. Second call, with count the
    exclusive prefix sum (where each pixel's weights start) and gid/wgt sized to the total: fills them, pixel
    by pixel in compositing order (gid = rows of rec)."""
    fill = gid.shape[0] > 0
    n_tiles = ntx * (-(-height // th))
    for i in prange(n_tiles):
        t = (i * stride) % n_tiles  # as in _raster: spread neighbouring (equally costly) tiles over threads
        ty = t // ntx
        tx = t - ty * ntx
        for ly in range(th):
            y = ty * th + ly
            if y >= height:
                break
            for lx in range(tw):
                x = tx * tw + lx
                if x >= width:
                    break
                p = y * width + x
                if not select[p]:
                    continue
                tr = np.float32(1.0)
                k = count[p] if fill else 0
                for j in range(offsets[t], offsets[t + 1]):
                    g = ids[j]
                    if x < box[g, 0] or x > box[g, 1] or y < box[g, 2] or y > box[g, 3]:
                        continue  # outside its ellipse's bounding box: alpha < 1/255 there
                    dy = np.float32(y) - rec[g, _V]
                    e = np.float32(x) - rec[g, _U] + rec[g, _BETA] * dy
                    al = min(ALPHA_MAX, rec[g, _OP] * _exp_neg(np.float32(0.5) * rec[g, _A] * e * e
                                                               + rec[g, _GAMMA] * dy * dy))
                    if al < ALPHA_MIN:
                        continue
                    nt = tr * (np.float32(1.0) - al)
                    if nt <= T_MIN:
                        break
                    if al * tr >= wmin:
                        if fill:
                            gid[k] = g
                            wgt[k] = al * tr
                        k += 1
                    tr = nt
                    if tr < wmin:
                        break
                if not fill:
                    count[p] = k


# The weights go pixel by pixel through their tile's depth-ordered list: 4x4 tiles keep each list short (the
# same weights, bit for bit, as with the rasterizer's 8x16 tiles, in ~70% of the time on a head's 86k Gaussians;
# 2x2 tiles cost more in binning than they save)
WEIGHTS_TILE = (4, 4)


def compositing_weights(means, quats, scales, opacities, K, world_to_cam, width: int, height: int,
                        select=None, min_weight: float = 0.0, tile=WEIGHTS_TILE):
    """The linear map from Gaussian colours to this view's premultiplied image, as CSR parts over the pixels
    y·width + x (indptr int64 [H·W + 1], gaussian int64 [M], weight float32 [M]): rgb[pixel] = Σ weight·colour.
    Only pixels where select [H,W] bool is true (all by default), only weights >= min_weight (all by
    default: then the map is exact to float32 rounding). Same inputs and rules as rasterize();
    used to fit colours to a photo (model.ours.avatar), which no rasterizer API exposes."""
    width, height = int(width), int(height)
    tw, th = int(tile[0]), int(tile[1])
    order, rec, bbox, offsets, ids, ntx, _ = _bin_view(means, quats, scales, opacities, np.zeros((len(means), 3)), K,
                                                       world_to_cam, width, height, tw, th)
    select = np.ones(width * height, np.bool_) if select is None else np.ascontiguousarray(select, np.bool_).ravel()
    count = np.zeros(width * height, np.int64)
    stride = _tile_stride(ntx * (-(-height // th)))
    _weights(offsets, ids, rec, bbox, tw, th, ntx, stride, width, height, select, np.float32(min_weight), count,
             np.empty(0, np.int64), np.empty(0, np.float32))
    indptr = np.concatenate([[0], np.cumsum(count)]).astype(np.int64)
    gid, wgt = np.empty(indptr[-1], np.int64), np.empty(indptr[-1], np.float32)
    if len(gid):
        _weights(offsets, ids, rec, bbox, tw, th, ntx, stride, width, height, select, np.float32(min_weight),
                 indptr[:-1], gid, wgt)
    return indptr, order[gid].astype(np.int64), wgt
