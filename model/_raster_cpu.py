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
cx, cy + 0.5 (see model/_raster_gsplat.py). The clamp limits below use that shifted K.

Speed (2 cores): one stable depth radix sort, then a counting sort into tiles (each tile list stays
depth ordered); each Gaussian's footprint is the exact ellipse where alpha >= 1/255 (bounding rows,
per-row spans); along a row σ is quadratic in x, so exp(-σ) is stepped by two multiplies per
pixel instead of an exp(); a tile stops as soon as all its pixels are opaque.
"""
from __future__ import annotations

import math
import os

import numpy as np

if "NUMBA_CACHE_DIR" not in os.environ and not os.access(os.path.dirname(os.path.abspath(__file__)), os.W_OK):
    # numba caches compiled kernels next to this file; in a read-only install use a user cache
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(os.path.expanduser("~"), ".cache", "headsplat-numba")

from numba import njit, prange  # noqa: E402  (after NUMBA_CACHE_DIR is settled)

NEAR_PLANE = 0.01  # metres: gsplat's default near plane
EPS2D = 0.3  # px²: gsplat's low-pass blur added to the 2D covariance diagonal
ALPHA_MIN = np.float32(1.0 / 255.0)  # gsplat ALPHA_THRESHOLD
ALPHA_MAX = np.float32(0.999)
T_MIN = np.float32(1e-4)  # transmittance at which a pixel stops
TILE = 16  # px; tile lists stay short and a tile's pixel buffers stay in L1

_LN255 = math.log(255.0)
_SPAN_EPS = 1e-3  # px: widen analytic spans so float rounding never drops a pixel that passes the alpha test

# per-Gaussian projected record, float32 columns of `proj`
_U, _V, _A, _B, _C, _OP, _SIGMAX, _Z, _NCOL = range(9)


@njit(parallel=True, cache=True, fastmath={"contract"})
def _project(means, quats, scales, opacities, w2c, fx, fy, cx, cy, width, height, near, eps2d, proj, bbox, valid):
    """Project N Gaussians. means/quats/scales/opacities float32 [N,3]/[N,4]/[N,3]/[N];
    w2c float64 [4,4]; K in this project's convention (integer pixel centres).
    Writes proj float32 [N,_NCOL] (u, v px; conic A, B, C with σ = ½A dx² + B dx dy + ½C dy²;
    opacity; σ_max = ln(255·o) the σ beyond which alpha < 1/255; z metres), bbox int32 [N,4]
    (x0, x1, y0, y1 inclusive, clipped to the image) and valid bool [N]."""
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
        if z < near or o < ALPHA_MIN:
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
        if det <= 0.0:
            continue
        u = fx * x * rz + cx
        v = fy * y * rz + cy
        smax = math.log(o) + _LN255
        # exact extent of the ellipse σ <= σ_max; gsplat caps it at 3.33σ, which never binds for o <= 1
        ext = min(math.sqrt(2.0 * smax), 3.33)
        hx = ext * math.sqrt(c00) + _SPAN_EPS
        hy = ext * math.sqrt(c11) + _SPAN_EPS
        x0 = max(0, math.ceil(u - hx))
        x1 = min(width - 1, math.floor(u + hx))
        y0 = max(0, math.ceil(v - hy))
        y1 = min(height - 1, math.floor(v + hy))
        if x0 > x1 or y0 > y1:
            continue  # entirely off-screen
        proj[i, _U] = u
        proj[i, _V] = v
        proj[i, _A] = c11 / det
        proj[i, _B] = -c01 / det
        proj[i, _C] = c00 / det
        proj[i, _OP] = o
        proj[i, _SIGMAX] = smax
        proj[i, _Z] = z
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
def _band_xrange(u, v, A, B, C, smax, ya, yb):
    """x extent (float px) of the ellipse ½A dx² + B dx dy + ½C dy² <= smax within rows ya..yb
    (float, inclusive). Returns (lo, hi); lo > hi when the band misses the ellipse."""
    det = A * C - B * B
    ymax = math.sqrt(2.0 * smax * A / det)  # half height of the ellipse
    da = max(ya - v, -ymax)
    db = min(yb - v, ymax)
    if da > db:
        return 1.0, 0.0
    # the right edge u + (-B dy + sqrt(2 A smax - det dy²)) / A is concave in dy and peaks where the
    # tangent is vertical, dy* = -B sqrt(2 smax / (C det)); the left edge is its mirror image
    dstar = -B * math.sqrt(2.0 * smax / (C * det))
    hx = math.sqrt(2.0 * smax * C / det)  # half width of the ellipse
    if da <= dstar <= db:
        hi = u + hx
    else:
        dy = da if dstar < da else db
        hi = u + (-B * dy + math.sqrt(max(0.0, 2.0 * A * smax - det * dy * dy))) / A
    if da <= -dstar <= db:
        lo = u - hx
    else:
        dy = da if -dstar < da else db
        lo = u + (-B * dy - math.sqrt(max(0.0, 2.0 * A * smax - det * dy * dy))) / A
    return lo - _SPAN_EPS, hi + _SPAN_EPS


@njit(cache=True, inline="always")
def _tile_span(proj, bbox, g, ty, tile):
    """Tile columns (lo, hi inclusive) that Gaussian g's alpha >= 1/255 ellipse touches in tile row ty."""
    tx0 = bbox[g, 0] // tile
    tx1 = bbox[g, 1] // tile
    if tx0 == tx1:
        return tx0, tx1
    lo, hi = _band_xrange(proj[g, _U], proj[g, _V], proj[g, _A], proj[g, _B], proj[g, _C], proj[g, _SIGMAX],
                          float(max(ty * tile, bbox[g, 2])), float(min(ty * tile + tile - 1, bbox[g, 3])))
    if lo > hi:
        return 1, 0
    return max(tx0, int(math.floor(max(lo, 0.0))) // tile), min(tx1, int(math.floor(max(hi, 0.0))) // tile)


@njit(cache=True)
def _bin(order, proj, bbox, tile, ntx, nty):
    """Counting sort of depth-ordered Gaussians into tiles: (offsets int64 [ntiles+1], ids int32).
    A Gaussian goes to every tile its alpha >= 1/255 ellipse touches, so each list stays depth ordered."""
    ntiles = ntx * nty
    offsets = np.zeros(ntiles + 1, np.int64)
    for k in range(order.shape[0]):
        g = order[k]
        for ty in range(bbox[g, 2] // tile, bbox[g, 3] // tile + 1):
            lo, hi = _tile_span(proj, bbox, g, ty, tile)
            for tx in range(lo, hi + 1):
                offsets[ty * ntx + tx + 1] += 1
    for t in range(ntiles):
        offsets[t + 1] += offsets[t]
    cursor = offsets[:ntiles].copy()
    ids = np.empty(offsets[ntiles], np.int32)
    for k in range(order.shape[0]):
        g = order[k]
        for ty in range(bbox[g, 2] // tile, bbox[g, 3] // tile + 1):
            lo, hi = _tile_span(proj, bbox, g, ty, tile)
            for tx in range(lo, hi + 1):
                t = ty * ntx + tx
                ids[cursor[t]] = g
                cursor[t] += 1
    return offsets, ids


@njit(parallel=True, cache=True, fastmath={"contract"})
def _raster(offsets, ids, proj, bbox, colors, tile, ntx, nty, width, height, rgb, alpha, depth):
    """Composite each tile front to back. colors float32 [N,3]; writes rgb [H,W,3] (premultiplied,
    no background), alpha [H,W] = 1 - T, depth [H,W] = Σ w z / alpha (0 where alpha is 0)."""
    ntiles = ntx * nty
    for t in prange(ntiles):
        ty = t // ntx
        tx = t - ty * ntx
        xa = tx * tile
        ya = ty * tile
        xb = min(xa + tile, width) - 1
        yb = min(ya + tile, height) - 1
        tw = xb - xa + 1
        np_ = tw * (yb - ya + 1)
        T = np.ones(np_, np.float32)  # transmittance; negated once the pixel is done
        acc = np.zeros((np_, 4), np.float32)  # r, g, b, depth
        remaining = np_
        for k in range(offsets[t], offsets[t + 1]):
            g = ids[k]
            u = proj[g, _U]
            v = proj[g, _V]
            A = proj[g, _A]
            B = proj[g, _B]
            C = proj[g, _C]
            o = proj[g, _OP]
            smax = proj[g, _SIGMAX]
            z = proj[g, _Z]
            cr = colors[g, 0]
            cg = colors[g, 1]
            cb = colors[g, 2]
            det = A * C - B * B
            two_a_s = 2.0 * A * smax
            q = math.exp(-A)  # ratio of successive per-pixel steps along a row
            half_a = np.float32(0.5) * A
            gy0 = max(ya, bbox[g, 2])
            gy1 = min(yb, bbox[g, 3])
            for y in range(gy0, gy1 + 1):
                dy = np.float32(y) - v
                disc = two_a_s - det * dy * dy
                if disc < 0.0:
                    continue
                sq = math.sqrt(disc)
                x0 = max(xa, int(math.ceil(u + (-B * dy - sq) / A - _SPAN_EPS)))
                x1 = min(xb, int(math.floor(u + (-B * dy + sq) / A + _SPAN_EPS)))
                if x0 > x1:
                    continue
                dx = np.float32(x0) - u
                sigma = half_a * dx * dx + B * dx * dy + np.float32(0.5) * C * dy * dy
                # exp(-σ) along the row: σ(x+1) - σ(x) = A dx + ½A + B dy grows by A per pixel
                gv = o * math.exp(-sigma)
                r = math.exp(-(A * dx + half_a + B * dy))
                row = (y - ya) * tw - xa
                for x in range(x0, x1 + 1):
                    p = row + x
                    tp = T[p]
                    al = min(ALPHA_MAX, gv)
                    gv *= r
                    r *= q
                    if tp <= 0.0 or al < ALPHA_MIN:
                        continue
                    nt = tp * (np.float32(1.0) - al)
                    if nt <= T_MIN:
                        T[p] = -tp
                        remaining -= 1
                        continue
                    w = al * tp
                    acc[p, 0] += w * cr
                    acc[p, 1] += w * cg
                    acc[p, 2] += w * cb
                    acc[p, 3] += w * z
                    T[p] = nt
            if remaining == 0:
                break
        for j in range(np_):
            y = ya + j // tw
            x = xa + j - (j // tw) * tw
            a = np.float32(1.0) - abs(T[j])
            rgb[y, x, 0] = acc[j, 0]
            rgb[y, x, 1] = acc[j, 1]
            rgb[y, x, 2] = acc[j, 2]
            alpha[y, x] = a
            depth[y, x] = acc[j, 3] / a if a > 0.0 else np.float32(0.0)


def rasterize(means, quats, scales, opacities, colors, K, world_to_cam, width: int, height: int,
              tile: int = TILE):
    """Rasterize Gaussians (float32 means [N,3] m, quats [N,4] wxyz, scales [N,3] m, opacities [N],
    colors [N,3]) with K [3,3] px and world_to_cam [4,4] (OpenCV, integer pixel centres).
    Returns (rgb [H,W,3] premultiplied, no background; alpha [H,W]; depth [H,W] metres), float32."""
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    means, quats, scales, opacities, colors = map(f32, (means, quats, scales, opacities, colors))
    K = np.asarray(K, dtype=np.float64)
    w2c = np.ascontiguousarray(world_to_cam, dtype=np.float64)
    width, height, tile = int(width), int(height), int(tile)
    n = len(means)
    proj = np.empty((n, _NCOL), np.float32)
    bbox = np.empty((n, 4), np.int32)
    valid = np.empty(n, np.bool_)
    _project(means, quats, scales, opacities, w2c, float(K[0, 0]), float(K[1, 1]), float(K[0, 2]),
             float(K[1, 2]), width, height, NEAR_PLANE, EPS2D, proj, bbox, valid)
    order = _depth_order(np.ascontiguousarray(proj[:, _Z]), valid)
    ntx = -(-width // tile)
    nty = -(-height // tile)
    offsets, ids = _bin(order, proj, bbox, tile, ntx, nty)
    rgb = np.empty((height, width, 3), np.float32)
    alpha = np.empty((height, width), np.float32)
    depth = np.empty((height, width), np.float32)
    _raster(offsets, ids, proj, bbox, colors, tile, ntx, nty, width, height, rgb, alpha, depth)
    return rgb, alpha, depth
