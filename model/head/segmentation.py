"""Person / skin / hair evidence from the photo, for texture confidence and the full-head prior.

mediapipe's selfie segmentation (bundled in the 0.10.21 wheel, offline) gives a person mask; the
face oval from the landmarks separates skin from what lies around it. From those we read the
appearance statistics the prior needs: skin tone, hair colour, and how far hair rises above the skull.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from model.core.image_io import to_float
from model.head.landmarks import FACE_OVAL, Landmarks

_lock = threading.Lock()
_seg = None

# mediapipe face-mesh indices used only for appearance statistics
CHEEKS = (50, 280, 205, 425, 187, 411, 101, 330)  # below the eyes, beside the nose: reliable bare skin
EXCLUDE_FROM_SKIN = ((33, 133, 159, 145), (362, 263, 386, 374), (61, 291, 0, 17), (70, 107, 105), (300, 336, 334))


@dataclass
class PhotoEvidence:
    person: np.ndarray  # [H,W] float32 in [0,1]: probability that a pixel belongs to the person
    person_core: np.ndarray  # [H,W] float32: `person` eroded past its soft edge (see core_of)
    skin_rgb: np.ndarray  # [3] in [0,1]: median cheek colour
    hair_rgb: np.ndarray  # [3] in [0,1]: median colour of the band above the forehead (skin if bald)
    hair_rgb_dark: np.ndarray  # [3]: 20th percentile luminance hair pixels, for texture variation
    hair_above_px: float  # how far the person mask rises above the landmarks' top, pixels
    has_hair: bool
    face_dist: np.ndarray  # [H,W] float32: distance outside the face oval, in face heights (0 inside)
    skin_log: tuple | None = None  # (mean [3], inverse covariance [3,3]) of log(rgb + SKIN_LOG_EPS) over bare skin


def person_mask(image: np.ndarray) -> np.ndarray:
    """RGB uint8 [H,W,3] -> person probability [H,W] float32."""
    global _seg
    with _lock:
        if _seg is None:
            from mediapipe.python.solutions.selfie_segmentation import SelfieSegmentation
            _seg = SelfieSegmentation(model_selection=0)
        mask = _seg.process(np.ascontiguousarray(image)).segmentation_mask
    return np.asarray(mask, np.float32)


# The selfie mask is predicted at 256 px and upsampled: its 0.5 level lies a few pixels out on the
# background beside hair and jaw (~1% of the long side on astronaut). Colour is only taken inside this.
CORE_ERODE = 0.006  # erosion radius, fraction of the image's long side


def core_of(person: np.ndarray) -> np.ndarray:
    """person [H,W] in [0,1] -> the same, eroded by CORE_ERODE x the long side (grey-level erosion)."""
    r = max(1, int(round(CORE_ERODE * max(person.shape))))
    return cv2.erode(person, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))


def _median_rgb(pixels: np.ndarray, fallback) -> np.ndarray:
    return np.median(pixels, 0) if len(pixels) >= 8 else np.asarray(fallback, np.float64)


SKIN_LOG_EPS = 0.02  # skin statistics are of log(rgb + eps): ratios, without dark pixels' noise dominating
SKIN_MAHALANOBIS = 3.0  # a colour within this many standard deviations of the skin statistics is the face's skin


def skin_distance(log_rgb: np.ndarray, skin_log: tuple) -> np.ndarray:
    """[...] Mahalanobis distance of log colours log_rgb [...,3] (log(rgb + SKIN_LOG_EPS)) from the face's
    skin statistics skin_log (PhotoEvidence.skin_log: mean [3], inverse covariance [3,3])."""
    mean, icov = skin_log
    d = log_rgb - mean
    return np.sqrt(np.einsum("...i,ij,...j->...", d, icov, d))


def _skin_log_stats(img: np.ndarray, xy: np.ndarray, inside: np.ndarray, person: np.ndarray,
                    face_h: float) -> tuple | None:
    """(mean [3], inverse covariance [3,3]) of log(rgb + SKIN_LOG_EPS) over the face's bare skin: the face
    oval eroded by 4% of the face height, less the eyes, brows and lips (EXCLUDE_FROM_SKIN, with a margin),
    less its darkest and brightest 5% (nostrils, highlights); None when fewer than 50 pixels remain."""
    k = max(2, int(0.04 * face_h))
    bare = cv2.erode(inside, np.ones((3, 3), np.uint8), iterations=k)
    for poly in EXCLUDE_FROM_SKIN:
        hull = cv2.convexHull(np.round(xy[list(poly)]).astype(np.int32))
        cv2.fillConvexPoly(bare, hull, 0)
        cv2.polylines(bare, [hull], True, 0, k)
    px = np.log(np.clip(img[(bare > 0) & (person > 0.5)], 0, 1) + SKIN_LOG_EPS)
    if len(px) < 50:
        return None
    lo, hi = np.percentile(px.mean(1), [5, 95])
    px = px[(px.mean(1) >= lo) & (px.mean(1) <= hi)]
    return px.mean(0), np.linalg.inv(np.cov(px.T) + np.eye(3) * 1e-4)


def photo_evidence(image: np.ndarray, lm: Landmarks) -> PhotoEvidence:
    img = to_float(image)
    h, w = image.shape[:2]
    person = person_mask(image)
    xy = lm.xy
    # skin: small discs at cheek landmarks, away from eyes/brows/lips
    r = max(2, int(0.03 * (xy[:, 0].max() - xy[:, 0].min())))
    cheek = np.zeros((h, w), np.uint8)
    for i in CHEEKS:
        cv2.circle(cheek, (int(round(xy[i, 0])), int(round(xy[i, 1]))), r, 1, -1)
    skin = _median_rgb(img[cheek > 0], (0.8, 0.6, 0.5))
    # hair: person pixels in a band above the face oval's top, across the face's width
    oval = xy[list(FACE_OVAL)]
    x0, x1 = np.percentile(oval[:, 0], [25, 75]).astype(int)
    top = int(oval[:, 1].min())
    cols = person[:, max(x0, 0):min(x1, w - 1) + 1] > 0.5
    rows = np.where(cols.any(1))[0]
    person_top = int(rows.min()) if len(rows) else top
    hair_above = float(max(0, top - person_top))
    face_h = float(oval[:, 1].max() - oval[:, 1].min())
    band = np.zeros((h, w), bool)
    band[max(person_top, 0):max(top - int(0.02 * face_h), 0), max(x0, 0):max(x1, 0)] = True
    band &= person > 0.5
    pix = img[band]
    # a band thinner than ~8% of the face height is forehead skin (bald or shaved), not hair
    has_hair = hair_above > 0.08 * face_h and len(pix) >= 16
    if has_hair:
        lum = pix @ np.array([0.299, 0.587, 0.114], np.float32)
        far = np.abs(pix - skin).sum(1) > 0.12  # drop forehead skin caught in the band
        pix_h = pix[far] if far.sum() >= 16 else pix
        hair = np.median(pix_h, 0)
        dark = pix[lum <= np.percentile(lum, 20)]
        hair_dark = _median_rgb(dark, hair * 0.7)
    else:
        hair, hair_dark = skin.copy(), skin * 0.85
    inside = np.zeros((h, w), np.uint8)
    cv2.fillPoly(inside, [np.round(oval).astype(np.int32)], 1)
    face_dist = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 3) / max(face_h, 1.0)
    skin_log = _skin_log_stats(img, xy, inside, person, face_h)
    return PhotoEvidence(person, core_of(person), skin.astype(np.float32), np.asarray(hair, np.float32),
                         np.asarray(hair_dark, np.float32), hair_above, bool(has_hair), face_dist, skin_log)


# Long hair: how far the photo's hair falls below the chin. Without a hair segmentation (see
# model/ours/texture.py, HAIR_FACE_GAP), the hair is grown from seeds: the person's pixels beside the
# temples (HAIR_SEED_FACE_DIST face heights outside the face oval, between the brows and the eyes, on
# the fitted head's silhouette) that are not of the face's skin colours. Their median log colour grows, as
# one connected region, into every pixel outside the face oval within HAIR_GROW_LOG of it that is not skin
# either, up to HAIR_GROW_REACH face heights from the face; its lowest point beside the chin (HAIR_SIDE)
# is the hair's end, so a beard (inside the oval, under the chin) is not long hair. Short hair stops at
# the ears (skin) or at the background beside the jaw; hair that frames the face carries on down past
# the chin. On the 8 real portraits the two long-haired subjects reach 0.46 and 0.19 face heights below
# the chin; the six others stop 0.54-0.72 above it.
HAIR_SEED_FACE_DIST = (0.03, 0.15)
HAIR_GROW_LOG = 0.3
HAIR_GROW_REACH = 1.0
HAIR_SIDE = 0.3  # how far beside the chin, in face widths, the hair's end is read


def hair_reach(image: np.ndarray, lm: Landmarks, ev: PhotoEvidence, head: np.ndarray) -> float:
    """How far the photo's hair falls below the chin, in face heights (negative: it ends above it; inf:
    it runs out of the bottom of the photo; -inf: no hair beside the temples). image RGB [H,W,3], uint8
    or in [0,1]; head [H,W] bool: the fitted head's silhouette, which keeps the seeds on the head."""
    if ev.skin_log is None:
        return -np.inf
    xy = lm.xy
    oval = xy[list(FACE_OVAL)]
    face_h = max(float(oval[:, 1].max() - oval[:, 1].min()), 1.0)
    log = cv2.GaussianBlur(np.log(to_float(image) + SKIN_LOG_EPS), (0, 0), max(0.5, 0.01 * face_h))
    not_skin = (skin_distance(log, ev.skin_log) > SKIN_MAHALANOBIS) & (ev.person > 0.5)
    rows = np.arange(image.shape[0])[:, None]
    brow, eye = xy[[105, 334], 1].mean(), xy[[33, 263], 1].mean()
    seed = (not_skin & head & (ev.face_dist > HAIR_SEED_FACE_DIST[0]) & (ev.face_dist < HAIR_SEED_FACE_DIST[1])
            & (rows >= brow - 0.1 * face_h) & (rows <= eye))
    if seed.sum() < 20:
        return -np.inf
    like = (not_skin & (ev.face_dist > 0) & (ev.face_dist < HAIR_GROW_REACH)
            & (np.linalg.norm(log - np.median(log[seed], 0), axis=2) < HAIR_GROW_LOG))
    if not (seed & like).any():
        return -np.inf
    labels, _ = ndimage.label(like)
    grown = np.isin(labels, np.unique(labels[seed & like]))
    # long hair falls beside the face, not under the chin (a beard, a dark collar)
    width = oval[:, 0].max() - oval[:, 0].min()
    grown[:, max(0, int(xy[152, 0] - HAIR_SIDE * width)):max(0, int(xy[152, 0] + HAIR_SIDE * width) + 1)] = False
    hit = np.flatnonzero(grown.any(1))
    if len(hit) == 0:
        return -np.inf
    if hit[-1] >= image.shape[0] - 1:
        return np.inf
    return float((hit[-1] - xy[152, 1]) / face_h)
