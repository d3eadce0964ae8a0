"""Procedural construction of the open head template (see model/head/template.py for what it is).

Design (everything symmetric by construction, then symmetrized exactly):
- Skin: one latitude-longitude grid of directions around the head centre (star-shaped surface).
  Columns are azimuth alpha = atan2(x, z) (0 = front), rows elevation beta (+pi/2 top pole,
  -pi/2 bottom pole = centre of the neck cap); both spaced by an inverse-CDF of a density that
  puts more rows and columns on the face. The radius along each direction is a soft union of a
  cranium ellipsoid, a jaw ellipsoid and a capped neck cylinder, plus a face offset: a
  thin-plate spline (in an azimuthal chart) through the canonical landmarks of
  model/head/_template_canonical.py, fading to zero outside the face.
- Slits: the mouth and both eyes are cuts along one grid row (interior vertices duplicated: upper
  and lower copies). A local warp of elevation makes the cut follow the landmark curves: the lips
  coincide at neutral (closed mouth), the lids are apart (open eyes).
- Bags close the surface: each slit loop continues into a pocket (mouth cavity with teeth and
  tongue regions; a small socket behind each eye, inside the eyeball, hidden).
- Eyeballs (spheres, iris at the front pole) and ears (flattened ellipsoid shells) are separate
  closed components.
- UV atlas: the skin grid takes u = (t + 1) / 2 (t = the uniform column parameter, seam at the
  back), v in [0, V_MAIN]; the strip below holds disc islands for the bags and eyeballs and
  rectangles for the ears, placed symmetrically about u = 0.5 (the subject's left at u > 0.5).
"""
from __future__ import annotations

import numpy as np
from matplotlib.path import Path as MplPath
from scipy.interpolate import RBFInterpolator

from model.head import landmarks as LM
from model.head._template_canonical import MIRROR
from model.head._template_canonical import load as load_canonical

REGIONS = ("face_skin", "scalp", "ears", "neck", "eyes", "lips", "mouth_interior", "brows", "teeth", "tongue")
R_ = {n: i for i, n in enumerate(REGIONS)}

N_COLS = 144  # azimuth columns (even: the midline is a grid line)
N_ROWS = 76  # elevation bands (rows 1..N_ROWS-1 are rings, rows 0 and N_ROWS are poles)
V_MAIN = 0.78  # the skin island occupies v in [0, V_MAIN]
EYE_R = 0.0118  # eyeball radius (metres)

# base shapes (metres, head frame): cranium and jaw ellipsoids, neck cylinder with a flat cap
CRANIUM_C, CRANIUM_A = np.array([0.0, 0.012, -0.004]), np.array([0.0765, 0.112, 0.099])
JAW_C, JAW_A = np.array([0.0, -0.055, 0.018]), np.array([0.058, 0.07, 0.075])
# The neck's ellipse (12.4 x 11.6 cm, ~38 cm round) is an adult neck's: at 11.2 cm wide (1.1) the photo's
# neck showed beside it under the jaw corners, where the input view then painted background (issue 20)
NECK_Z, NECK_AX, NECK_AZ, NECK_CAP_Y, NECK_TOP_Y = -0.012, 0.062, 0.058, -0.215, 0.0
SOFT = 0.004  # metres: softness of the union of base shapes


def _inverse_cdf(density, lo, hi, n):
    """n+1 samples of x in [lo, hi] equally spaced in the CDF of `density`."""
    x = np.linspace(lo, hi, 20001)
    c = np.concatenate([[0], np.cumsum(0.5 * (density(x[1:]) + density(x[:-1])) * np.diff(x))])
    return np.interp(np.linspace(0, c[-1], n + 1), c, x)


def _grid_angles():
    t = np.linspace(-1.0, 1.0, N_COLS + 1)[:-1]  # column parameter; u = (t + 1) / 2
    half = _inverse_cdf(lambda a: 1.0 + 1.8 * np.exp(-(a / 0.95) ** 2), 0.0, np.pi, N_COLS // 2)
    alpha = np.concatenate([-half[::-1], half[1:-1]])  # -pi .. pi - step, exactly antisymmetric
    s = np.linspace(0.0, 1.0, N_ROWS + 1)
    beta = _inverse_cdf(lambda b: 1.0 + 1.3 * np.exp(-((b + 0.25) / 0.6) ** 2), -np.pi / 2, np.pi / 2, N_ROWS)[::-1]
    return t, alpha, s, beta  # beta[0] = +pi/2 (top)


def _dirs(alpha, beta):
    cb = np.cos(beta)
    return np.stack([cb * np.sin(alpha), np.sin(beta), cb * np.cos(alpha)], -1)


def _angles(p):
    r = np.linalg.norm(p, axis=-1)
    return np.arctan2(p[..., 0], p[..., 2]), np.arcsin(np.clip(p[..., 1] / r, -1, 1)), r


def _ray_ellipsoid(d, c, a):
    A = ((d / a) ** 2).sum(-1)
    B = -2 * (d * c / a ** 2).sum(-1)
    C = ((c / a) ** 2).sum() - 1
    return (-B + np.sqrt(B * B - 4 * A * C)) / (2 * A)


def _ray_neck(d):
    dx, dy, dz = d[..., 0], d[..., 1], d[..., 2]
    A = (dx / NECK_AX) ** 2 + (dz / NECK_AZ) ** 2
    B = -2 * dz * NECK_Z / NECK_AZ ** 2
    C = (NECK_Z / NECK_AZ) ** 2 - 1
    r = (-B + np.sqrt(B * B - 4 * A * C)) / (2 * np.maximum(A, 1e-12))
    cap = np.where(dy < -1e-9, NECK_CAP_Y / np.minimum(dy, -1e-9), np.inf)
    top = np.where(dy > 1e-9, NECK_TOP_Y / np.maximum(dy, 1e-9), np.inf)  # the neck ends inside the head
    return np.minimum(np.minimum(r, cap), top)


def _chart(d):
    """Equal-area azimuthal chart around +z (the face): directions [...,3] -> [...,2]."""
    k = np.sqrt(2.0 / np.maximum(1.0 + d[..., 2], 1e-9))
    return np.stack([k * d[..., 0], k * d[..., 1]], -1)


class _Radial:
    """Radius of the skin along a direction: soft union of base shapes + windowed face offset."""

    def __init__(self, canon: np.ndarray):
        self.canon = canon
        d_lm = canon / np.linalg.norm(canon, axis=1, keepdims=True)
        r_lm = np.linalg.norm(canon, axis=1)
        xy = _chart(d_lm)
        oval = xy[list(LM.FACE_OVAL)]
        centre = oval.mean(0)
        rel = oval - centre
        anchors = [centre + rel * f for f in (1.4, 1.8, 2.3)]
        self.centre = centre
        self.oval_rel = rel
        pts = np.concatenate([xy[:468]] + anchors)
        vals = np.concatenate([r_lm[:468] - self.base(d_lm[:468]), np.zeros(sum(len(a) for a in anchors))])
        self.tps = RBFInterpolator(pts, vals, kernel="thin_plate_spline", smoothing=1e-7)
        # window: 1 inside 1.5x the oval (polar radius about the centre), 0 beyond 2.1x
        ang = np.arctan2(rel[:, 1], rel[:, 0])
        order = np.argsort(ang)
        self.oval_ang, self.oval_rad = ang[order], np.linalg.norm(rel, axis=1)[order]

    @staticmethod
    def base(d):
        r = np.stack([_ray_ellipsoid(d, CRANIUM_C, CRANIUM_A), _ray_ellipsoid(d, JAW_C, JAW_A), _ray_neck(d)])
        m = r.max(0)
        return m + SOFT * np.log(np.exp((r - m) / SOFT).sum(0))

    def __call__(self, d):
        d = np.asarray(d, dtype=np.float64)
        shape = d.shape[:-1]
        d = d.reshape(-1, 3)
        r = self.base(d)
        front = d[:, 2] > -0.2
        xy = _chart(d[front]) - self.centre
        ang = np.arctan2(xy[:, 1], xy[:, 0])
        rad_oval = np.interp(ang, self.oval_ang, self.oval_rad, period=2 * np.pi)
        f = np.linalg.norm(xy, axis=1) / rad_oval
        w = np.clip((2.1 - f) / 0.6, 0, 1)
        w = w * w * (3 - 2 * w)
        off = np.zeros(front.sum())
        live = w > 0
        if live.any():
            off[live] = self.tps(xy[live] + self.centre) * w[live]
        r[front] += off
        return r.reshape(shape)


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _curve(alpha_pts, beta_pts):
    o = np.argsort(alpha_pts)
    return lambda a: np.interp(a, alpha_pts[o], beta_pts[o])


def build() -> dict:
    canon, pair = load_canonical()
    # closed mouth at neutral: inner upper and lower lip points meet halfway
    up, lo = np.array(LM.LIPS_INNER_UPPER), np.array(LM.LIPS_INNER_LOWER)
    mid = 0.5 * (canon[up] + canon[lo])
    canon = canon.copy()
    canon[up], canon[lo] = mid, mid
    radial = _Radial(canon)
    t, alpha, s, beta = _grid_angles()
    a_lm, b_lm, _ = _angles(canon)
    d_row = np.abs(np.diff(beta)).mean()

    def col_of(a):
        return int(np.argmin(np.abs(alpha - a)))

    def row_of(b):
        return int(np.argmin(np.abs(beta - b)))

    # ---- slits (column ranges on one row), right eye on alpha < 0 ----
    m_corner = col_of(a_lm[LM.LIPS_INNER_UPPER[-1]])  # positive-x mouth corner column
    mouth = dict(row=row_of(b_lm[13]), c0=N_COLS - m_corner, c1=m_corner)
    mouth_curve = _curve(a_lm[up], b_lm[up])
    re_up, re_lo = np.array(LM.RIGHT_EYE_UPPER), np.array(LM.RIGHT_EYE_LOWER)
    eye_r = dict(row=row_of(0.5 * (b_lm[33] + b_lm[133])), c0=col_of(a_lm[33]), c1=col_of(a_lm[133]))
    eye_l = dict(row=eye_r["row"], c0=N_COLS - eye_r["c1"], c1=N_COLS - eye_r["c0"])
    eyeR_up, eyeR_lo = _curve(a_lm[re_up], b_lm[re_up]), _curve(a_lm[re_lo], b_lm[re_lo])

    def eye_curves(a):  # both eyes through mirror symmetry of alpha
        aa = -np.abs(a)
        return eyeR_up(aa), eyeR_lo(aa)

    # ---- grid vertices: (row, col, side) -> index; side 0 normal/upper copy, 1 lower copy ----
    verts_ab, vid = [], {}
    side_of = []

    def add(i, j, side):
        vid[(i, j, side)] = len(verts_ab)
        verts_ab.append((alpha[j], beta[i]))
        side_of.append(side)

    top = 0
    verts_ab.append((0.0, np.pi / 2)); side_of.append(0)
    slits = [mouth, eye_r, eye_l]
    for i in range(1, N_ROWS):
        for j in range(N_COLS):
            add(i, j, 0)
            for sl in slits:
                if i == sl["row"] and sl["c0"] < j < sl["c1"]:
                    add(i, j, 1)
    bottom = len(verts_ab)
    verts_ab.append((0.0, -np.pi / 2)); side_of.append(0)
    ab = np.array(verts_ab)
    side_of = np.array(side_of)

    def vx(i, j, below_slit):
        j %= N_COLS
        if i == 0:
            return top
        if i == N_ROWS:
            return bottom
        return vid.get((i, j, 1), vid[(i, j, 0)]) if below_slit else vid[(i, j, 0)]

    # ---- warp of elevation so the cuts follow the landmark curves ----
    a_v, b_v = ab[:, 0].copy(), ab[:, 1].copy()
    row_v = np.array([0] + [k[0] for k in sorted(vid, key=vid.get)] + [N_ROWS])
    col_v = np.array([N_COLS // 2] + [k[1] for k in sorted(vid, key=vid.get)] + [N_COLS // 2])
    db = np.zeros(len(ab))
    for sl, kind in ((mouth, "mouth"), (eye_r, "eye"), (eye_l, "eye")):
        a_c0, a_c1 = alpha[sl["c0"]], alpha[sl["c1"]]
        b0 = beta[sl["row"]]
        span = 3 * np.abs(np.diff(alpha)).mean() if kind == "eye" else 5 * np.abs(np.diff(alpha)).mean()
        depth = 5 * d_row
        if kind == "mouth":
            c_up = c_lo = mouth_curve
        else:
            c_up = lambda a: eye_curves(a)[0]  # noqa: E731
            c_lo = lambda a: eye_curves(a)[1]  # noqa: E731
        ac = np.clip(a_v, a_c0, a_c1)
        lateral = _smoothstep(1 - np.maximum(a_c0 - a_v, a_v - a_c1).clip(0) / span)
        below = (b_v < b0) | ((b_v == b0) & (side_of == 1))
        target = np.where(below, c_lo(ac), c_up(ac)) - b0
        vertical = 0.5 * (1 + np.cos(np.pi * np.clip((b_v - b0) / depth, -1, 1)))
        db += target * lateral * vertical
    b_w = b_v + db
    d_v = _dirs(a_v, b_w)
    X = d_v * radial(d_v)[:, None]

    # ---- skin triangles ----
    faces, uvs = [], []
    u_col = (np.append(t, 1.0) + 1) / 2
    v_row = s * V_MAIN
    for i in range(N_ROWS):
        for j in range(N_COLS):
            a = vx(i, j, True)
            b = vx(i, j + 1, True)
            c = vx(i + 1, j, False)
            d = vx(i + 1, j + 1, False)
            ua, ub = u_col[j], u_col[j + 1]
            va, vc = v_row[i], v_row[i + 1]
            uvA, uvB, uvC, uvD = (ua, va), (ub, va), (ua, vc), (ub, vc)
            if i == 0:
                faces.append((a, c, d)); uvs.append(((0.5 * (ua + ub), va), uvC, uvD))
            elif i == N_ROWS - 1:
                faces.append((a, c, b)); uvs.append((uvA, (0.5 * (ua + ub), vc), uvB))
            elif t[j] >= 0:
                faces.append((a, c, b)); uvs.append((uvA, uvC, uvB))
                faces.append((b, c, d)); uvs.append((uvB, uvC, uvD))
            else:
                faces.append((a, c, d)); uvs.append((uvA, uvC, uvD))
                faces.append((a, d, b)); uvs.append((uvA, uvD, uvB))
    n_skin_faces = len(faces)
    n_v = len(X)

    def loop_of(sl):
        """Slit boundary as vertex ids: corner c0, upper copies c0+1..c1-1, corner c1, lower copies back."""
        i = sl["row"]
        upper = [vid[(i, j, 0)] for j in range(sl["c0"] + 1, sl["c1"])]
        lower = [vid[(i, j, 1)] for j in range(sl["c1"] - 1, sl["c0"], -1)]
        return [vid[(i, sl["c0"], 0)]] + upper + [vid[(i, sl["c1"], 0)]] + lower

    extra_v, extra_f, extra_uv, extra_reg = [], [], [], []

    def add_bag(loop, rings, pole, uv_c, uv_r, theta, region_fn):
        """Pocket from `loop` (vertex ids) through `rings` [K,n,3] to `pole` [3]; disc UV island."""
        nonlocal n_v
        K, n = rings.shape[:2]
        base = n_v
        ids = [np.array(loop)] + [base + k * n + np.arange(n) for k in range(K)]
        pole_id = base + K * n
        extra_v.append(np.concatenate([rings.reshape(-1, 3), pole[None]]))
        n_v += K * n + 1
        rad = uv_r * (1 - np.arange(K + 1) / (K + 1))
        uvp = lambda k, q: (uv_c[0] + rad[k] * np.cos(theta[q]), uv_c[1] - rad[k] * np.sin(theta[q]))  # noqa: E731
        for k in range(K):
            for q in range(n):
                q1 = (q + 1) % n
                a, b, c, d = ids[k][q], ids[k][q1], ids[k + 1][q], ids[k + 1][q1]
                if np.cos(theta[q]) + np.cos(theta[q1]) >= 0:  # diagonal mirrors with the island
                    extra_f.append((a, c, b)); extra_uv.append((uvp(k, q), uvp(k + 1, q), uvp(k, q1)))
                    extra_f.append((b, c, d)); extra_uv.append((uvp(k, q1), uvp(k + 1, q), uvp(k + 1, q1)))
                else:
                    extra_f.append((a, c, d)); extra_uv.append((uvp(k, q), uvp(k + 1, q), uvp(k + 1, q1)))
                    extra_f.append((a, d, b)); extra_uv.append((uvp(k, q), uvp(k + 1, q1), uvp(k, q1)))
                extra_reg.extend([region_fn(k, theta[q], theta[q1])] * 2)
        for q in range(n):
            q1 = (q + 1) % n
            extra_f.append((ids[K][q], pole_id, ids[K][q1]))
            extra_uv.append((uvp(K, q), uv_c, uvp(K, q1)))
            extra_reg.append(region_fn(K, theta[q], theta[q1]))
        return np.stack(ids[1:]), pole_id  # ring vertex ids [K, n] (same order as the loop), pole id

    # ---- mouth bag ----
    mloop = loop_of(mouth)
    P = X[mloop]
    x_c = X[vid[(mouth["row"], mouth["c1"], 0)], 0]
    n_up = mouth["c1"] - mouth["c0"] - 1
    th = np.arccos(np.clip(P[:, 0] / x_c, -1, 1))
    th[0], th[n_up + 1] = np.pi, 0.0  # corners exactly (keeps the island exactly symmetric)
    th[n_up + 2:] *= -1  # lower copies
    mc = P.mean(0)
    # Rings (from the lips inward), a dental arch rather than a funnel, so that teeth a photo shows
    # between parted lips land on a surface a few mm behind the lips and keep their place when the
    # head turns: 0 the vestibule (inner lip up/down to the gums), 1 the incisal edges (upper and
    # lower coincide: teeth closed at neutral), so band 0-1 is the front of the teeth; 2 behind the
    # teeth (band 1-2: the biting edge); 3-4 palate / floor of the mouth; then the pole (throat).
    ring_depth = np.array([0.005, 0.006, 0.012, 0.026, 0.040])
    ring_a = np.array([0.92, 0.82, 0.74, 0.62, 0.38]) * x_c
    ring_b = np.array([0.007, 0.0, 0.0, 0.014, 0.010])
    rings = np.stack([np.stack([ring_a[k] * np.cos(th), mc[1] + ring_b[k] * np.sin(th),
                                P[:, 2] * (1 - k / len(ring_a)) + mc[2] * (k / len(ring_a)) - ring_depth[k]], -1)
                      for k in range(len(ring_a))])
    rings[0, :, 1] = P[:, 1] + ring_b[0] * np.sin(th)

    def mouth_region(k, t0, t1):
        lower = np.sin(t0) + np.sin(t1) < 0
        if k in (1, 2):
            return R_["teeth"]
        if lower and k == 3 and abs(np.cos(0.5 * (t0 + t1))) < 0.8:
            return R_["tongue"]
        return R_["mouth_interior"]

    mouth_bag = add_bag(mloop, rings, np.array([0.0, mc[1], mc[2] - 0.054]), (0.5, V_MAIN + 0.11), 0.1, th, mouth_region)
    # which jaw each bag column belongs to: 1 lower (moves with the jaw), 0 upper, 0.5 the corners
    mouth_bag_lower = np.where(np.sin(th) < -1e-9, 1.0, np.where(np.sin(th) > 1e-9, 0.0, 0.5))

    # ---- right eye: eyeball, socket bag; the left ones are their mirror images ----
    iris_c = canon[468]
    eye_c = iris_c - np.array([0.0, 0.0, EYE_R])
    eloop = loop_of(eye_r)
    P = X[eloop]
    n_up = eye_r["c1"] - eye_r["c0"] - 1
    xc_mid = 0.5 * (P[:, 0].min() + P[:, 0].max())
    xc_half = 0.5 * (P[:, 0].max() - P[:, 0].min())
    th = np.arccos(np.clip((P[:, 0] - xc_mid) / xc_half, -1, 1))
    th[0], th[n_up + 1] = np.pi, 0.0
    th[n_up + 2:] *= -1
    rings = np.stack([eye_c + (P - eye_c) * f for f in (0.7, 0.45, 0.2)])
    uv_eyebag_R = (0.5 - 0.11 - 0.06, V_MAIN + 0.11)
    eye_bag_r = add_bag(eloop, rings, eye_c.copy(), uv_eyebag_R, 0.055, th, lambda k, a, b: R_["eyes"])
    # the left socket: mirror of the right loop, same construction mirrored
    eloop_L = loop_of(eye_l)  # corner c0 is the inner corner on the left eye
    P = X[eloop_L]
    th = np.pi - np.arccos(np.clip((-P[:, 0] - xc_mid) / xc_half, -1, 1))
    n_up = eye_l["c1"] - eye_l["c0"] - 1
    th[0], th[n_up + 1] = np.pi, 0.0
    th[n_up + 2:] *= -1
    eye_cL = eye_c * MIRROR
    rings = np.stack([eye_cL + (P - eye_cL) * f for f in (0.7, 0.45, 0.2)])
    eye_bag_l = add_bag(eloop_L, rings, eye_cL.copy(), (1 - uv_eyebag_R[0], uv_eyebag_R[1]), 0.055, th,
            lambda k, a, b: R_["eyes"])

    # closed ellipsoid / sphere shells
    def add_shell(centre, axes_mat, n_t, n_p, uv_fn, reg):
        """Lat-long shell: polar angle from local +z (front), azimuth in local xy."""
        nonlocal n_v
        th_ = np.linspace(0, np.pi, n_t + 1)[1:-1]
        ph_ = np.linspace(0, 2 * np.pi, n_p + 1)[:-1]
        T, Ph = np.meshgrid(th_, ph_, indexing="ij")
        local = np.stack([np.sin(T) * np.cos(Ph), np.sin(T) * np.sin(Ph), np.cos(T)], -1).reshape(-1, 3)
        local = np.concatenate([[[0, 0, 1.0]], local, [[0, 0, -1.0]]])
        pts = centre + local @ axes_mat.T
        base = n_v
        extra_v.append(pts)
        n_v += len(pts)
        front, back = base, base + len(pts) - 1
        idx = lambda a, b: base + 1 + a * n_p + (b % n_p)  # noqa: E731
        th_all = np.concatenate([[0], th_, [np.pi]])
        for a in range(-1, n_t - 1):
            for b in range(n_p):
                b1 = b + 1
                p0, p1 = ph_[b], ph_[b] + 2 * np.pi / n_p
                if a == -1:
                    tri = (front, idx(0, b), idx(0, b1))
                    uv = (uv_fn(0, 0.5 * (p0 + p1)), uv_fn(th_all[1], p0), uv_fn(th_all[1], p1))
                elif a == n_t - 2:
                    tri = (idx(a, b), back, idx(a, b1))
                    uv = (uv_fn(th_all[a + 1], p0), uv_fn(np.pi, 0.5 * (p0 + p1)), uv_fn(th_all[a + 1], p1))
                else:
                    A, B, C, D = idx(a, b), idx(a, b1), idx(a + 1, b), idx(a + 1, b1)
                    uA, uB = uv_fn(th_all[a + 1], p0), uv_fn(th_all[a + 1], p1)
                    uC, uD = uv_fn(th_all[a + 2], p0), uv_fn(th_all[a + 2], p1)
                    extra_f.append((A, C, B)); extra_uv.append((uA, uC, uB)); extra_reg.append(reg)
                    tri, uv = (B, C, D), (uB, uC, uD)
                extra_f.append(tri); extra_uv.append(uv); extra_reg.append(reg)
        return base, n_v

    uv_eyeball_R = (0.5 - 0.11 - 0.06 - 0.055 - 0.052, V_MAIN + 0.11)

    def eyeball_uv(c):
        return lambda th_, ph_: (c[0] + 0.048 * th_ / np.pi * np.cos(ph_), c[1] - 0.048 * th_ / np.pi * np.sin(ph_))

    eyeball_R = add_shell(eye_c, np.eye(3) * EYE_R, 12, 24, eyeball_uv(uv_eyeball_R), R_["eyes"])
    # ears: normal tilted outwards and forwards; height along y
    n_ear = np.array([-1.0, 0.0, 0.35]) / np.linalg.norm([-1.0, 0.0, 0.35])
    up_ear = np.array([0.0, 1.0, 0.0])
    w_ear = np.cross(up_ear, n_ear)
    ear_c = np.array([-0.0785, -0.02, -0.012])
    ear_axes = np.stack([w_ear * 0.017, up_ear * 0.031, n_ear * 0.0075], 1)  # local x, y, z(front=outwards)
    u_ear0 = 0.01

    def ear_uv(th_, ph_):
        return (u_ear0 + 0.13 * ph_ / (2 * np.pi), V_MAIN + 0.02 + 0.18 * th_ / np.pi)

    ear_R = add_shell(ear_c, ear_axes, 10, 20, ear_uv, R_["ears"])
    # left eyeball and ear: mirror copies (mirror x, flip winding, u -> 1 - u)
    V_all = np.concatenate([X] + extra_v)
    F_all = np.array(faces + extra_f, dtype=np.int64)
    UV_all = np.array(uvs + extra_uv, dtype=np.float64)
    reg_all = np.array([0] * n_skin_faces + extra_reg, dtype=np.int64)
    mirror_v = np.full(len(V_all), -1, np.int64)
    for (v0, v1) in (eyeball_R, ear_R):
        fsel = np.all((F_all >= v0) & (F_all < v1), axis=1)
        off = len(V_all) - v0
        newV = V_all[v0:v1] * MIRROR
        newF = F_all[fsel][:, ::-1] + off
        newUV = UV_all[fsel][:, ::-1].copy()
        newUV[..., 0] = 1 - newUV[..., 0]
        mirror_v[v0:v1] = np.arange(v0, v1) + off
        V_all = np.concatenate([V_all, newV])
        mirror_v = np.concatenate([mirror_v, np.arange(v0, v1)])
        F_all = np.concatenate([F_all, newF])
        UV_all = np.concatenate([UV_all, newUV])
        reg_all = np.concatenate([reg_all, reg_all[fsel]])
    # mirror of the grid and the bags: match by construction-free nearest neighbour on a
    # configuration where duplicated slit copies are told apart by their side
    key = np.concatenate([V_all, np.zeros((len(V_all), 1))], 1)
    n_grid = len(X)
    key[:n_grid, 3] = side_of * 0.5
    key[mouth_bag[0], 3] = 0.5 * mouth_bag_lower  # the closed teeth: upper and lower rings coincide
    from scipy.spatial import cKDTree
    unresolved = np.nonzero(mirror_v < 0)[0]
    tree = cKDTree(key[unresolved] * np.array([1, 1, 1, 1.0]))
    dist, nn = tree.query(key[unresolved] * np.array([-1, 1, 1, 1.0]))
    if dist.max() > 1e-6:
        raise RuntimeError(f"template is not mirror-symmetric (max mismatch {dist.max():.2e} m)")
    mirror_v[unresolved] = unresolved[nn]
    V_all = 0.5 * (V_all + V_all[mirror_v] * MIRROR)

    # ---- skin regions from landmark polygons in the chart ----
    sk = slice(0, n_skin_faces)
    cen = V_all[F_all[sk]].mean(1)
    dcen = cen / np.linalg.norm(cen, axis=1, keepdims=True)
    xy = _chart(dcen)
    inside = lambda ids: MplPath(_chart(canon[list(ids)] / np.linalg.norm(canon[list(ids)], axis=1, keepdims=True))).contains_points(xy) & (dcen[:, 2] > 0)  # noqa: E731
    reg = np.full(n_skin_faces, R_["scalp"])
    reg[cen[:, 1] < -0.085] = R_["neck"]
    reg[inside(LM.FACE_OVAL)] = R_["face_skin"]
    for u_, l_ in ((LM.RIGHT_BROW_UPPER, LM.RIGHT_BROW_LOWER), (LM.LEFT_BROW_UPPER, LM.LEFT_BROW_LOWER)):
        reg[inside(u_ + l_[::-1])] = R_["brows"]
    reg[inside(LM.LIPS_OUTER_UPPER + LM.LIPS_OUTER_LOWER[::-1][1:-1])] = R_["lips"]
    reg_all[sk] = reg

    F_all = _orient(F_all, V_all)
    parts = dict(eyeball_r=np.arange(*eyeball_R), ear_r=np.arange(*ear_R))
    parts["eyeball_l"], parts["ear_l"] = mirror_v[parts["eyeball_r"]], mirror_v[parts["ear_r"]]
    faces_of = lambda ids: np.nonzero(np.isin(F_all, ids).all(1))[0]  # noqa: E731
    skin_f = np.arange(n_skin_faces)
    mrow, erow = mouth["row"], eye_r["row"]
    slit_up = lambda sl: [vid[(sl["row"], j, 0)] for j in range(sl["c0"] + 1, sl["c1"])]  # noqa: E731
    slit_lo = lambda sl: [vid[(sl["row"], j, 1)] for j in range(sl["c0"] + 1, sl["c1"])]  # noqa: E731
    touching = lambda ids: skin_f[np.isin(F_all[skin_f], ids).any(1)]  # noqa: E731
    groups = [(list(range(478)), skin_f)]
    for ids, sl in ((LM.LIPS_INNER_UPPER[1:-1], mouth), (LM.RIGHT_EYE_UPPER[1:-1], eye_r), (LM.LEFT_EYE_UPPER[1:-1], eye_l)):
        groups.append((list(ids), touching(slit_up(sl))))
    for ids, sl in ((LM.LIPS_INNER_LOWER[1:-1], mouth), (LM.RIGHT_EYE_LOWER[1:-1], eye_r), (LM.LEFT_EYE_LOWER[1:-1], eye_l)):
        groups.append((list(ids), touching(slit_lo(sl))))
    groups.append((list(LM.RIGHT_IRIS), faces_of(parts["eyeball_r"])))
    groups.append((list(LM.LEFT_IRIS), faces_of(parts["eyeball_l"])))
    lm_face = np.zeros(478, np.int64)
    lm_bary = np.zeros((478, 3))
    on_slit = np.zeros(len(V_all), bool)
    for sl in (mouth, eye_r, eye_l):
        on_slit[loop_of(sl)] = True
    query = canon.copy()
    for ups, los in ((LM.RIGHT_EYE_UPPER, LM.RIGHT_EYE_LOWER), (LM.LEFT_EYE_UPPER, LM.LEFT_EYE_LOWER)):
        for i_up, i_lo in zip(ups[1:-1], los[1:-1]):  # put facing lid points at one azimuth
            a_mid = 0.5 * (a_lm[i_up] + a_lm[i_lo])
            for i in (i_up, i_lo):
                ca, sa = np.cos(a_mid - a_lm[i]), np.sin(a_mid - a_lm[i])
                query[i] = np.array([[ca, 0, sa], [0, 1, 0], [-sa, 0, ca]]) @ canon[i]
    for g, (ids, cand) in enumerate(groups):  # later groups override the generic skin assignment
        f, b = _closest_on_faces(query[ids], V_all, F_all, cand)
        if 1 <= g <= 6:  # lip and lid points sit exactly on their slit edge
            b = np.where(on_slit[F_all[f]], b, 0.0)
            b /= b.sum(1, keepdims=True)
        lm_face[ids], lm_bary[ids] = f, b
    info = dict(mouth=mouth, eye_r=eye_r, eye_l=eye_l, eye_centre=eye_c, eye_radius=EYE_R,
                mouth_loop=np.array(mloop), eye_loop_r=np.array(eloop), eye_loop_l=np.array(eloop_L),
                mouth_up=np.array(slit_up(mouth)), mouth_lo=np.array(slit_lo(mouth)),
                eye_up_r=np.array(slit_up(eye_r)), eye_lo_r=np.array(slit_lo(eye_r)),
                eye_up_l=np.array(slit_up(eye_l)), eye_lo_l=np.array(slit_lo(eye_l)),
                mouth_bag=mouth_bag[0], mouth_pole=mouth_bag[1], mouth_bag_lower=mouth_bag_lower,
                eye_bag_r=eye_bag_r[0], eye_bag_l=eye_bag_l[0],
                eye_pole_r=eye_bag_r[1], eye_pole_l=eye_bag_l[1],
                n_grid=n_grid, side=side_of, grid_row=row_v, grid_col=col_v, n_skin_faces=n_skin_faces, **parts)
    return dict(vertices=V_all, faces=F_all.astype(np.int32), face_uvs=UV_all, vertex_mirror=mirror_v,
                face_region=reg_all, landmark_faces=lm_face, landmark_bary=lm_bary, canon=canon,
                canon_pair=pair, info=info)


def _orient(F: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Consistent winding per connected component (BFS over shared edges), outward (positive volume)."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components
    F = F.copy()
    nf = len(F)
    e = np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]])
    fi = np.tile(np.arange(nf), 3)
    key = np.sort(e, 1)
    kid = key[:, 0] * len(V) + key[:, 1]
    order = np.argsort(kid, kind="stable")
    ks = kid[order]
    same = np.nonzero(ks[1:] == ks[:-1])[0]
    a, b = fi[order[same]], fi[order[same + 1]]
    adj = sp.coo_matrix((np.ones(len(a)), (a, b)), shape=(nf, nf)).tocsr()
    adj = adj + adj.T
    flip = np.zeros(nf, bool)
    seen = np.zeros(nf, bool)
    edges_of = lambda f: {(F[f, 0], F[f, 1]), (F[f, 1], F[f, 2]), (F[f, 2], F[f, 0])}  # noqa: E731
    for s in range(nf):
        if seen[s]:
            continue
        seen[s] = True
        stack = [s]
        while stack:
            f = stack.pop()
            ef = edges_of(f)
            if flip[f]:
                ef = {(q, p) for p, q in ef}
            for g in adj.indices[adj.indptr[f]:adj.indptr[f + 1]]:
                if seen[g]:
                    continue
                seen[g] = True
                eg = edges_of(g)
                flip[g] = bool(ef & eg)  # a shared edge in the same direction: g must flip
                stack.append(g)
    F[flip] = F[flip][:, ::-1]
    n, lab = connected_components(adj, directed=False)
    v = V[F]
    vol = np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2]))
    for c in range(n):
        sel = lab == c
        if vol[sel].sum() < 0:
            F[sel] = F[sel][:, ::-1]
    return F


def _closest_on_faces(points, V, F, cand, k=48):
    """Closest point to each of points [N,3] on triangles F[cand] -> (face ids [N], barycentrics [N,3])."""
    from scipy.spatial import cKDTree
    tri = V[F[cand]]
    tree = cKDTree(tri.mean(1))
    _, nn = tree.query(points, k=min(k, len(cand)))
    nn = np.atleast_2d(nn)
    best_f, best_b = np.zeros(len(points), np.int64), np.zeros((len(points), 3))
    for i, p in enumerate(points):
        t = tri[nn[i]]
        bary = _closest_bary(p, t)
        q = np.einsum("nk,nkd->nd", bary, t)
        j = int(np.argmin(((q - p) ** 2).sum(1)))
        best_f[i], best_b[i] = cand[nn[i][j]], bary[j]
    return best_f, best_b


def _closest_bary(p, t):
    """Barycentrics of the closest point to p [3] on each triangle t [n,3,3] (Ericson, RTCD 5.1.5)."""
    a, b, c = t[:, 0], t[:, 1], t[:, 2]
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(1), (ac * ap).sum(1)
    bp = p - b
    d3, d4 = (ab * bp).sum(1), (ac * bp).sum(1)
    cp = p - c
    d5, d6 = (ab * cp).sum(1), (ac * cp).sum(1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    out = np.zeros((len(t), 3))
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = 1.0 / (va + vb + vc)
        v, w = vb * denom, vc * denom
        out[:] = np.stack([1 - v - w, v, w], 1)
        conds = [
            ((d1 <= 0) & (d2 <= 0), lambda: np.array([1.0, 0, 0])),
            ((d3 >= 0) & (d4 <= d3), lambda: np.array([0, 1.0, 0])),
            ((d6 >= 0) & (d5 <= d6), lambda: np.array([0, 0, 1.0])),
        ]
        vab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
        tab = d1 / (d1 - d3)
        vac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
        tac = d2 / (d2 - d6)
        vbc = (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0)
        tbc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
    out[vbc] = np.stack([np.zeros(vbc.sum()), 1 - tbc[vbc], tbc[vbc]], 1)
    out[vac] = np.stack([1 - tac[vac], np.zeros(vac.sum()), tac[vac]], 1)
    out[vab] = np.stack([1 - tab[vab], tab[vab], np.zeros(vab.sum())], 1)
    for cond, val in conds[::-1]:
        out[cond] = val()
    return np.nan_to_num(out, nan=1 / 3)
