"""The bust: the base of the neck and the upper shoulders under the head, so an avatar does not end in a
cut neck (issue 20, item 4).

The head model ends where its neck starts to flare. The bust is built per photo in the *body's* frame, upright and facing
the camera: a portrait's shoulders face the lens far more often than its head does, so a head turned 35
degrees in the photo sits on shoulders seen square, as in the photo (build_bust: when the photo shows the
body, and at most MAX_TURN_DEG from the head's frame). The head frame is the fit's; the body frame is the
photo camera's frontal frame, HeadFit.posed_vertices' frame, where "up" is the photo's up. Its shoulders
are as wide (shoulder_widths) and its shoulder line as high and as steep (shoulder_line) as the photo's
person mask shows them, and it is carved to the photo's silhouette like the hair (carve): any point of it
over the photo's background would have hidden that background. It never moves under the rig: the head
turns on it.

It stands on the axis of the neck's section where ICT's neck starts to flare into its own shoulders
(neck_section); below there, or below the shoulder line's root where that is higher, the bust takes over from
the head's neck, whose flare and collarbone flap would stick out of it (takes_over: the avatar drops their
texels but those the photo sees).

Surface: rings down the body (its top ring up inside the neck, so the two overlap and no gap opens when the head
turns) by columns round the body's vertical axis, then rings closing a flat bottom; each ring a superellipse
whose half-width grows from the neck's along the shoulder line and whose depth grows to the chest's. The grid
is its own UV chart, fixed for every avatar (so its texel layout is computed once): u round the body (0.5 at
the front, u -> 1 - u mirrors x, as in the template's atlas), v down the rings.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.spatial.transform import Rotation

from model.head import rig
from model.head.ict_fit import HeadFit
from model.head.mesh import vertex_normals
from model.head.template import REGIONS
from model.ours.binding import UVLayout, layout_of
from model.ours.texture import SEEN_CONF, ring_colours

REGION = len(REGIONS)  # the bust's region index, after the template's (HeadSplatAvatar.face_region)
COLS, RINGS = 96, 56  # grid: azimuth columns, rings top to bottom
CAP_RINGS = 24  # then rings closing the bottom, a flat disc (the chart's rows go on below the side's)
V_SPAN = 0.26  # the side rings' v extent in the chart: ~ the profile's length over the shoulders' girth (~square texels)
TEXEL_RES = 384  # the chart's texel raster (~2.6 mm on a 1 m girth: a collar, a tie or a neckline as sharp as the photo)

# Body measurements, metres (adult anthropometry; the photo overrides the shoulders where it shows them).
# Depths are below the shoulder line's root, where it leaves the neck (see DEFAULT_ROOT)
TOP_OVERLAP = 0.035  # the top ring sits this far up inside the neck
BOTTOM = 0.17  # the bust ends this far down
SHOULDER_DROP = 0.06  # the shoulder's tip (acromion) lies this far down
SHOULDER_HALF_WIDTH = 0.185  # neck axis to the shoulder's tip
DELTOID = 0.012  # the upper arm's bulge beyond the shoulder's tip
CHEST_HALF_DEPTH = 0.105
BACK_SHIFT = 0.02  # the torso's axis lies behind the neck's
HALF_WIDTH_RANGE = (0.14, 0.25)  # measured half-widths (tip + deltoid) outside this are not a shoulder
DROP_RANGE = (0.02, 0.1)  # measured shoulder drops are clamped to this
ROOT_RANGE = (-0.1, 0.02)  # and the shoulder line's root, below the template neck's lowest point (_neck_base)
# The template's neck runs on below where shoulders begin: on astronaut and Grace Hopper the photo's shoulder
# line leaves the neck 6.8 and 8.2 cm above the neck's lowest point. Where the photo shows none, half that.
DEFAULT_ROOT = -0.04
NECK_BAND = 0.005  # slab height for the neck's flare and its section there (flare_height, neck_section), metres
CARVE_FRACTIONS = np.linspace(1.0, 0.4, 13)  # radial fractions tried when carving, widest first
MIN_SHOWN = 0.25  # of the bust's front on the photo's person: the photo shows the body (build_bust)
MAX_TURN_DEG = 40.0  # the most the body turns from the head's frame (build_bust)
UNSEEN_CLOTHING = 0.3  # grey of the bust where the photo shows none of its ring nor one near it
RING_REACH = 0.03  # chart v (~3 cm): how far up or down a ring's colour reaches rings the photo does not show


@dataclass(frozen=True)
class Bust:
    vertices: np.ndarray  # [B,3] metres, head frame (the template's world)
    faces: np.ndarray  # [G,3] indices into vertices
    shoulders: tuple  # (right, left) half-widths measured on the photo, metres; None where it shows none
    root: float | None  # the shoulder line's root measured on the photo (shoulder_line), metres; None: default
    drops: tuple  # (right, left) shoulder drops measured on the photo, metres; None where it shows none
    depths: np.ndarray  # [RINGS] metres below the shoulder line's root of each ring (negative: inside the neck)
    body: np.ndarray  # [3,3] the body frame's rotation from the head frame about the neck pivot (body_vertices)
    cut: float  # the height, in the body frame, below which the bust takes over from the head's neck (takes_over)

    def row_at(self, depth: float) -> float:
        """The row of the chart's texel raster (bust_layout) `depth` metres below the shoulder line's root."""
        return float(np.interp(depth, self.depths, np.arange(RINGS))) / (RINGS - 1) * V_SPAN * TEXEL_RES

    @property
    def chest_row(self) -> float:
        """The row at the shoulders' tips: the chest begins below."""
        return self.row_at(np.mean(_sides(self.drops, SHOULDER_DROP)))


@lru_cache(maxsize=1)
def grid() -> tuple[np.ndarray, np.ndarray]:
    """The fixed topology: faces [G,3] into the (RINGS + CAP_RINGS) x COLS vertex grid (row-major, columns wrap
    round) and their UVs [G,3,2]."""
    r, c = np.meshgrid(np.arange(RINGS + CAP_RINGS - 1), np.arange(COLS), indexing="ij")
    c1 = (c + 1) % COLS
    a, b, d, e = r * COLS + c, r * COLS + c1, (r + 1) * COLS + c, (r + 1) * COLS + c1
    faces = np.concatenate([np.stack([a, d, b], -1).reshape(-1, 3), np.stack([b, d, e], -1).reshape(-1, 3)])
    u = lambda cc: cc / COLS  # noqa: E731
    v = lambda rr: rr / (RINGS - 1) * V_SPAN  # noqa: E731  (the cap's rows as long as the side's: ~its radius)
    uva = np.stack([u(c), v(r)], -1)
    uvb, uvd, uve = np.stack([u(c + 1), v(r)], -1), np.stack([u(c), v(r + 1)], -1), np.stack([u(c + 1), v(r + 1)], -1)
    face_uvs = np.concatenate([np.stack([uva, uvd, uvb], 2).reshape(-1, 3, 2),
                               np.stack([uvb, uvd, uve], 2).reshape(-1, 3, 2)])
    return faces.astype(np.int64), face_uvs


@lru_cache(maxsize=1)
def bust_layout() -> UVLayout:
    """The texels of the bust's chart (grid()), one Gaussian or more each, as the template atlas' texels."""
    faces, face_uvs = grid()
    return layout_of(face_uvs, np.full(len(faces), REGION), TEXEL_RES)


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


SHOULDER_CURVE = 1.6  # the shoulder line: drop x (out / tip's out) ** SHOULDER_CURVE, steep by the neck


# Above the neck's cut (body_vertices) the bust's top narrows within INSET_M to NECK_INSET less than the neck's base,
# hidden inside the head's neck: that narrows above its base, recedes in front and leans with the head's pitch
NECK_INSET, INSET_M = 0.25, 0.01


def _inset(h: np.ndarray, cut: float) -> np.ndarray:
    return NECK_INSET * np.clip((cut - h) / INSET_M, 0, 1)


def outline(h: np.ndarray, neck_half_width: float, half_width: float, drop: float, cut: float) -> np.ndarray:
    """Half-width [R] of the rings to one side at depths h [R] below the shoulder line's root (metres, negative
    above it; the head's neck ends at depth `cut` <= 0, body_vertices): the shoulder line runs from the neck out to the
    shoulder's tip `drop` lower, then the upper arm bulges by DELTOID (half_width = tip + DELTOID)."""
    tip, base = half_width - DELTOID, 1.05 * neck_half_width
    s = np.clip(h / drop, 0.0, 1.0) ** (1 / SHOULDER_CURVE)
    a = np.where(h <= 0, neck_half_width * (1.05 - _inset(h, cut)), base + (tip - base) * s)
    return a + DELTOID * np.sin(0.5 * np.pi * np.clip((h - drop) / 0.05, 0, 1))


def girth(h: np.ndarray, neck_half_depth: float, drop: float, cut: float
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rings' half-depth [R], their axis' shift back [R] and superellipse exponent [R] at depths h [R] (as
    for outline): the neck's round section grows to the chest's boxy one by the shoulders' tips (`drop` below the
    root)."""
    grow = _smoothstep(h / drop)
    c = np.where(h <= 0, neck_half_depth * (0.95 - _inset(h, cut)),
                 0.95 * neck_half_depth + (CHEST_HALF_DEPTH - 0.95 * neck_half_depth) * grow)
    return c, BACK_SHIFT * grow, 2.0 + 1.5 * grow


FLARE_RATIO = 1.15  # the neck flares where its half-width first exceeds its waist's by this much going down
FLARE_RADIUS = 1.2  # of the neck base's section: the head's neck beyond this near its base is ICT's flare
FLARE_REACH = 0.02  # how far above the flare the head's neck is cut beyond FLARE_RADIUS (it rises behind)


def flare_height(fitted: HeadFit) -> float:
    """Where this head's neck starts to flare into ICT's own shoulders, metres, head frame: going down its neck
    region (the head at rest) in NECK_BAND-high slabs from its waist (the narrowest below the chin), the top of
    the first one FLARE_RATIO wider. (rig.neck_levels reads the same on the mean head for the rotation's weights;
    a fitted identity's neck flares up to 2 cm higher or lower.)"""
    v = rig.deform(fitted, None)
    neck = v[fitted.template.region_vertices("neck")]
    chin = fitted.template.landmarks(v)[152, 1]
    edges = np.arange(neck[:, 1].min(), chin, NECK_BAND)
    axis = np.median(neck[:, 0])
    half = np.array([np.abs(s[:, 0] - axis).max() if len(s := neck[(neck[:, 1] >= e) & (neck[:, 1] < e + NECK_BAND)]) > 2
                     else np.inf for e in edges])
    waist = int(np.argmin(half))
    wide = np.nonzero(half[:waist] > FLARE_RATIO * half[waist])[0]
    return float(edges[wide[-1]] + NECK_BAND) if len(wide) else float(neck[:, 1].min())


def _neck_band(fitted: HeadFit) -> tuple[np.ndarray, float]:
    """(the neck's vertices [n,3] over 2 NECK_BAND above its flare, head frame, the head at rest; the flare's
    height, flare_height): once per fit, in HeadFit.cache as rig keeps its rest face (building the bust and
    cutting the neck read it five times, ~9 ms on astronaut)."""
    hit = fitted.cache.get("bust_neck_band")
    if hit is None:
        neck = rig.deform(fitted, None)[fitted.template.region_vertices("neck")]
        y = flare_height(fitted)
        band = neck[(neck[:, 1] >= y) & (neck[:, 1] <= y + 2 * NECK_BAND)]
        band.setflags(write=False)
        hit = fitted.cache["bust_neck_band"] = (band, y)
    return hit


def neck_section(fitted: HeadFit, body: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """The neck's section over 2 NECK_BAND just above where it flares into ICT's own shoulders (flare_height), in
    the body frame (body [3,3]: its rotation from the head frame, about the neck pivot): its centre [3] (the middle
    of its extent, at the flare's height) and (half-width, half-depth), metres. The bust's axis and its top's size.
    (Below, ICT's neck is the shoulders' flare and a flap over the collarbones, deeper in front: centred on its
    lowest centimetre, _neck_base, the bust sat 5 cm forward of the neck.)"""
    c0 = fitted.neck_pivot
    band, y = _neck_band(fitted)
    lo, hi = band.min(0), band.max(0)
    centre = (np.array([(lo[0] + hi[0]) / 2, y, (lo[2] + hi[2]) / 2]) - c0) @ body.T + c0
    band = (band - c0) @ body.T + c0
    return centre, (float(np.ptp(band[:, 0])) / 2, float(np.ptp(band[:, 2])) / 2)


def takes_over(fitted: HeadFit, bust: Bust, points: np.ndarray) -> np.ndarray:
    """[N] bool: the points of the head's neck (points [N,3], head frame, the head at rest) where the bust takes
    over: below its cut (Bust.cut, level in the body frame), and up to FLARE_REACH above the flare beyond
    FLARE_RADIUS of the neck's section there (neck_section, in the head frame). ICT's neck there is its own
    shoulders' flare, which rises higher behind and at the sides than in front, and a flap over the collarbones:
    they stuck out of the bust as a cape behind it and wings at its sides (HeadSplat drops their texels)."""
    c0 = fitted.neck_pivot
    below = ((points - c0) @ bust.body.T + c0)[:, 1] < bust.cut
    centre, (a, c) = neck_section(fitted, np.eye(3))
    radius = np.hypot((points[:, 0] - centre[0]) / a, (points[:, 2] - centre[2]) / c)
    return below | ((points[:, 1] < centre[1] + FLARE_REACH) & (radius > FLARE_RADIUS))


def _neck_base(fitted: HeadFit, body: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """The neck's lowest centimetre in the body frame (body [3,3]: its rotation from the head frame, about the
    neck pivot): its centre [3] and (half-width, half-depth), metres. What the photo's shoulders are measured
    from (shoulder_widths, shoulder_line: their ranges and defaults are calibrated on it)."""
    c0 = fitted.neck_pivot
    neck = (rig.deform(fitted, None)[fitted.template.region_vertices("neck")] - c0) @ body.T + c0
    low = neck[neck[:, 1] < neck[:, 1].min() + 0.01]
    centre = low.mean(0)
    return centre, (float(np.ptp(low[:, 0]) / 2), float(np.ptp(low[:, 2]) / 2))


def shoulder_widths(fitted: HeadFit, person: np.ndarray) -> tuple[float | None, float | None]:
    """(right, left) half-widths of the shoulders in metres, neck axis to the outer edge of the upper arm, as the
    photo's person mask (person [H,W] bool) shows them a little below the shoulder's tip: the unbroken run of
    person pixels from the neck outwards, on the plane of the bust's axis (BACK_SHIFT behind the neck's). None for a side the photo crops,
    or whose run is not a shoulder's (HALF_WIDTH_RANGE: a neighbour, or a mask that misses the clothing)."""
    centre, _ = _neck_base(fitted, fitted.head_rotation)
    cam = fitted.frontal_camera
    reach = np.linspace(0.0, HALF_WIDTH_RANGE[1] + 0.03, 188)  # 1.5 mm steps
    out = []
    for side in (-1.0, 1.0):  # the subject's right is -x
        pts = np.repeat(centre[None], len(reach), 0)
        pts[:, 0] += side * reach
        pts[:, 1] -= SHOULDER_DROP + 0.03
        pts[:, 2] -= BACK_SHIFT
        on, inside = cam.mask_at(person, pts)
        run = int(np.cumprod(on).sum())  # samples from the axis out, all on the person
        if run == 0 or run == len(reach) or (run < len(reach) and not inside[run]):
            out.append(None)  # no person under the neck, a run to the end, or cropped by the frame
            continue
        width = float(reach[run - 1])
        out.append(width if HALF_WIDTH_RANGE[0] <= width <= HALF_WIDTH_RANGE[1] else None)
    return out[0], out[1]


def shoulder_line(fitted: HeadFit, person: np.ndarray, widths: tuple[float | None, float | None]
                  ) -> tuple[float | None, tuple[float | None, float | None]]:
    """The shoulder line as the photo's person mask (person [H,W] bool) draws it: (root, (right, left) drops),
    metres. root: how far below the template neck's base the line leaves the neck (negative: above it; the
    mean of both sides); drops: how much lower it reaches the shoulder's tip. Fitted to the mask's top at a few
    places along each shoulder, above the bust's axis (root + drop x (out / tip's out) ** SHOULDER_CURVE).
    None for a side with fewer than 3 readings (cropped, or a person above the line: hair falling to it, a
    neighbour). Clamped to ROOT_RANGE and DROP_RANGE. widths: shoulder_widths' (defaults where None)."""
    centre, (nx, _) = _neck_base(fitted, fitted.head_rotation)
    cam = fitted.frontal_camera
    down = np.linspace(-0.06, 0.14, 101)  # 2 mm steps, from above the neck's base
    out = []
    for side, width in zip((-1.0, 1.0), _sides(widths, SHOULDER_HALF_WIDTH + DELTOID)):
        base, tip = 1.05 * nx, width - DELTOID
        found = []
        for x in np.linspace(base + 0.04, tip - 0.01, 6):
            pts = np.repeat(centre[None], len(down), 0)
            pts[:, 0] += side * x
            pts[:, 1] -= down
            pts[:, 2] -= BACK_SHIFT
            on, inside = cam.mask_at(person, pts)
            if not inside.all():
                continue
            if on[0] or not on.any():
                continue  # the person already above the line (hair, a neighbour) or no shoulder below
            top = int(np.argmax(on))
            if on[top:top + 5].all():  # a centimetre of person under the line, not a stray pixel
                found.append((((x - base) / (tip - base)) ** SHOULDER_CURVE, down[top]))
        if len(found) >= 3:
            t, top = np.array(found).T
            out.append(np.linalg.lstsq(np.stack([np.ones_like(t), t], 1), top, rcond=None)[0])
        else:
            out.append(None)
    roots = [f[0] for f in out if f is not None]
    root = float(np.clip(np.mean(roots), *ROOT_RANGE)) if roots else None
    return root, tuple(None if f is None else float(np.clip(f[1], *DROP_RANGE)) for f in out)


def ring_depths(neck: tuple[float, float], half_width: float, drop: float, cut: float) -> np.ndarray:
    """[RINGS] depths below the shoulder line's root (metres), from TOP_OVERLAP above the neck's cut (`cut`, as
    for outline) evenly spaced along the profile (the mean of its side and front outlines), so the shoulders' tops,
    which run out more than down, get as many rings as their length."""
    hh = np.linspace(cut - TOP_OVERLAP, BOTTOM, 1000)
    a, c = outline(hh, neck[0], half_width, drop, cut), girth(hh, neck[1], drop, cut)[0]
    dh = np.diff(hh)
    ds = 0.5 * (np.hypot(dh, np.diff(a)) + np.hypot(dh, np.diff(c)))
    s = np.concatenate([[0.0], np.cumsum(ds)])
    return np.interp(np.linspace(0, s[-1], RINGS), s, hh)


def _sides(pair: tuple[float | None, float | None], default: float) -> tuple[float, float]:
    """(right, left) with a side the photo did not show taken from the other, or `default`."""
    right, left = pair
    right = right if right is not None else (left if left is not None else default)
    return right, (left if left is not None else right)


def bust_axis(fitted: HeadFit, root: float | None, body: np.ndarray
              ) -> tuple[np.ndarray, tuple[float, float], float]:
    """Where the bust stands, in the body frame (body [3,3], as for body_vertices): (the shoulder line's root on the
    bust's axis [3] (the axis through the neck's section, neck_section; the root `root` below the neck's lowest
    point, shoulder_line's, None: DEFAULT_ROOT), the neck's section (half-width, half-depth), the depth below the
    root where the head's neck ends, <= 0 metres): at the neck's flare, or at the root where that is higher (the
    bust widens into shoulders above ICT's own)."""
    centre, neck = neck_section(fitted, body)
    flare = centre[1]
    centre[1] = _neck_base(fitted, body)[0][1] - (DEFAULT_ROOT if root is None else root)
    return centre, neck, min(centre[1] - flare, 0.0)


def body_vertices(fitted: HeadFit, widths: tuple[float | None, float | None], root: float | None,
                  drops: tuple[float | None, float | None], body: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """([(RINGS + CAP_RINGS) * COLS, 3] the bust's vertices, metres, head frame; [RINGS] its rings' depths below the shoulder
    line's root, ring_depths). widths, root, drops: shoulder_widths' and shoulder_line's, None for the default
    (a side: the other side's when that one is known); body [3,3]: the body frame's rotation from the head
    frame about the neck pivot (HeadFit.head_rotation: upright facing the photo's camera; the identity: the
    head's own)."""
    right, left = _sides(widths, SHOULDER_HALF_WIDTH + DELTOID)
    drop_r, drop_l = _sides(drops, SHOULDER_DROP)
    centre, neck, cut = bust_axis(fitted, root, body)  # the top ring TOP_OVERLAP above the cut: no gap as the head turns
    mean_drop = 0.5 * (drop_r + drop_l)  # one girth for both sides: the two halves meet at the midline
    hh = ring_depths(neck, 0.5 * (right + left), mean_drop, cut)
    c, back, n = girth(hh, neck[1], mean_drop, cut)
    e = 2.0 / n[:, None]
    # each ring: a superellipse, each half (front to back) cut into COLS / 2 columns of equal length (by
    # angle, a boxy superellipse's sides would get few, long ones); the left half (+x) at u > 0.5
    half = COLS // 2
    x = np.empty((RINGS, COLS))
    z = np.empty((RINGS, COLS))
    t = np.linspace(0.0, np.pi, 721)
    sin, cos = np.sin(t), np.cos(t)
    for side, w, drop in ((-1, right, drop_r), (1, left, drop_l)):
        a = outline(hh, neck[0], w, drop, cut)
        hx = a[:, None] * sin[None] ** e
        hz = c[:, None] * np.sign(cos)[None] * np.abs(cos)[None] ** e - back[:, None]
        arc = np.concatenate([np.zeros((RINGS, 1)), np.cumsum(np.hypot(np.diff(hx), np.diff(hz)), 1)], 1)
        cols = half + side * np.arange(half + 1)  # front (u = 0.5) to back; the back's column wraps to 0
        for r in range(RINGS):
            at = np.linspace(0.0, arc[r, -1], half + 1)
            x[r, cols % COLS] = side * np.interp(at, arc[r], hx[r])
            z[r, cols % COLS] = np.interp(at, arc[r], hz[r])
    # the bottom: the last ring shrunk towards the axis in CAP_RINGS steps (not onto it: no degenerate triangle;
    # the innermost ring's Gaussians cover the few millimetres left)
    shrink = 1.0 - np.arange(1, CAP_RINGS + 1)[:, None] / (CAP_RINGS + 1)
    x = np.concatenate([x, shrink * x[-1]])
    z = np.concatenate([z, shrink * (z[-1] + back[-1]) - back[-1]])
    y = np.concatenate([hh, np.full(CAP_RINGS, hh[-1])])
    points = np.stack([centre[0] + x, np.repeat((centre[1] - y)[:, None], COLS, 1), centre[2] + z], -1).reshape(-1, 3)
    c0 = fitted.neck_pivot
    return (points - c0) @ body + c0, hh  # body frame -> head frame


def carve(fitted: HeadFit, person: np.ndarray, vertices: np.ndarray, body: np.ndarray) -> np.ndarray:
    """The bust's vertices [B,3] pulled in towards its axis (per vertex, the widest of CARVE_FRACTIONS of its
    distance from the axis, smoothed round each ring) where they would project onto the photo's background
    (person [H,W] bool); points outside the frame or behind the camera are kept. body: as for body_vertices."""
    centre, _ = neck_section(fitted, body)
    c0 = fitted.neck_pivot
    axis = (np.array([centre[0], 0.0, centre[2] - BACK_SHIFT]) - c0) @ body + c0  # a point on it
    up = np.array([0.0, 1.0, 0.0]) @ body
    rel = vertices - axis
    radial = rel - (rel @ up)[:, None] * up[None]
    pts = (vertices - radial)[None] + CARVE_FRACTIONS[:, None, None] * radial[None]
    ok = fitted.camera.mask_at(person, pts.reshape(-1, 3), outside=True)[0].reshape(len(CARVE_FRACTIONS), -1)
    frac = np.where(ok.any(0), CARVE_FRACTIONS[np.argmax(ok, axis=0)], CARVE_FRACTIONS[-1]).reshape(RINGS + CAP_RINGS, COLS)
    for _ in range(3):  # no stair steps round a ring or down the body
        frac = 0.25 * (np.roll(frac, 1, 1) + np.roll(frac, -1, 1)) + 0.5 * frac
        frac[1:-1] = 0.25 * (frac[:-2] + frac[2:]) + 0.5 * frac[1:-1]
    return vertices - radial + frac.reshape(-1, 1) * radial


def shown_fraction(fitted: HeadFit, person: np.ndarray, vertices: np.ndarray, depths: np.ndarray) -> float:
    """The fraction of the bust's front (below the neck, the middle third of its columns: u in [1/3, 2/3]) that
    projects onto the photo's person (person [H,W] bool). vertices, depths: body_vertices'."""
    v = vertices.reshape(RINGS + CAP_RINGS, COLS, 3)[:RINGS]
    front = np.abs(np.arange(COLS) / COLS - 0.5) < 1 / 6
    pts = v[depths > 0.02][:, front].reshape(-1, 3)
    return float(fitted.camera.mask_at(person, pts)[0].mean())


def _limited(rotation: np.ndarray, max_angle: float) -> np.ndarray:
    """rotation [3,3] scaled down along its own axis to at most max_angle radians."""
    rv = Rotation.from_matrix(rotation).as_rotvec()
    angle = np.linalg.norm(rv)
    return rotation if angle <= max_angle else Rotation.from_rotvec(rv * max_angle / angle).as_matrix()


def build_bust(fitted: HeadFit, person: np.ndarray) -> Bust:
    """The bust under `fitted`'s head, shaped to the photo's person mask (person [H,W] probability).

    Upright facing the photo's camera where the photo shows the bust (MIN_SHOWN of its front on the person),
    turned at most MAX_TURN_DEG from the head's frame (a body squarely under a head turned or tilted further
    looks broken from the front, and the person mask of a crop or a group photo is a weak witness); a photo
    cropped at the neck says nothing of the body's turn, and the bust then follows the head's frame, so that
    seen from the front the avatar sits square on its shoulders."""
    mask = person > 0.5
    widths = shoulder_widths(fitted, mask)
    root, drops = shoulder_line(fitted, mask, widths)
    body = _limited(fitted.head_rotation, np.deg2rad(MAX_TURN_DEG))
    vertices, depths = body_vertices(fitted, widths, root, drops, body)
    if shown_fraction(fitted, mask, vertices, depths) < MIN_SHOWN:
        body, root, drops = np.eye(3), None, (None, None)
        vertices, depths = body_vertices(fitted, widths, root, drops, body)
    centre, _, cut = bust_axis(fitted, root, body)
    return Bust(carve(fitted, mask, vertices, body), grid()[0], widths, root, drops, depths, body,
                float(centre[1] - cut))


def bust_colours(bust: Bust, rgb: np.ndarray, conf: np.ndarray, clothes: np.ndarray, hair: np.ndarray) -> np.ndarray:
    """[T,3] the bust's texel colours (bust_layout's texels) from the photo's, rgb [T,3] in [0,1] with their
    confidence conf [T] (model.ours.texture.project_texture, after any symmetric fusion): a texel the photo
    sees keeps its colour; one it does not takes its ring's (model.ours.texture.ring_colours, from the ring's
    sides: a shirt's collar goes round the back, its buttons do not). From the shoulder line's root down, that
    is the ring of the photo's clothes (clothes [T] bool: the texel lands on segmentation.PhotoEvidence.clothes:
    hands, arms, a bare chest or long hair falling over the shoulders are not spread round the body) within
    RING_REACH, and below the shoulders' tips (the chest) the nearest such ring at any distance (a photo cut at
    the shoulders shows no chest ring: its shirt goes on down the chest), across its bottom edge. Where those
    are none, the photo's ring or one within RING_REACH (the neck, bare shoulders), read off its hair (hair [T]
    bool: the texel lands on the photo's hair; long hair has its own length: avatar.hair_down_the_back); else
    UNSEEN_CLOTHING: a photo cut at the chin gets a plain top, not a stretched neck. (Reaching up into the neck
    for the clothing, before the parser's clothes mask, took a group photo's background, a card in a hand, a
    shadowed neck's skin all round the body.)"""
    layout = bust_layout()
    chest = layout.rc[:, 0] >= bust.chest_row
    around = np.abs((layout.rc[:, 1] + 0.5) / layout.res - 0.5) * 2 * np.pi  # u: 0.5 at the front
    out = ring_colours(layout, rgb, np.where(hair, 0.0, conf), np.ones(len(rgb), bool), RING_REACH * layout.res,
                       around=around)
    worn = np.where(clothes, conf, 0.0)
    body = layout.rc[:, 0] >= bust.row_at(0.0)
    for band, reach in ((chest, np.inf), (body, RING_REACH * layout.res)):  # the nearer clothes last, on top
        ring = ring_colours(layout, rgb, worn, body, reach, around=around)
        use = band & ~np.isnan(ring[:, 0])
        out[use] = ring[use]
    out = np.where(np.isnan(out), UNSEEN_CLOTHING, out)
    return np.where((conf >= SEEN_CONF)[:, None], rgb, out)


def bust_normals(bust: Bust) -> np.ndarray:
    """[B,3] unit outward normals of the bust's vertices."""
    return vertex_normals(bust.vertices, bust.faces)
