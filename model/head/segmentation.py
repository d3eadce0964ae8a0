"""The photo parsed: person, hair, face skin, clothes and occluders, and the appearance statistics the
full-head prior needs (skin tone, hair colour, how far hair rises above the skull and falls below the chin).

The one place that reads a portrait's parts. Two networks, both run offline from files the product ships:
- mediapipe's selfie segmentation (bundled in the 0.10.21 wheel): the person;
- MediaPipe's hair segmentation (model/head/data/hair_segmentation.tflite, Apache-2.0, sha256 checked
  at load; run by ai-edge-litert): the hair, on a square crop round the head (HAIR_CROP).
Face skin, clothes and occluders are derived from those, the landmarks and the face's skin colours.
"""
from __future__ import annotations

import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

from model.core.image_io import to_float
from model.core.pinned import read_pinned
from model.head.landmarks import FACE_OVAL, Landmarks
from model.head.mediapipe_canon import load as _canonical

_seg_lock, _hair_lock, _hands_lock = threading.Lock(), threading.Lock(), threading.Lock()  # one per network
_seg = _hands = None
# The selfie and hand networks (and what needs only them) run on a second thread while the hair network runs on
# the caller's: each spends its time in native code without the GIL, so on 2 cores the three cost about the
# hair network's time.
_beside = ThreadPoolExecutor(max_workers=1, thread_name_prefix="photo-parse")

# mediapipe face-mesh indices used only for appearance statistics
CHEEKS = (50, 280, 205, 425, 187, 411, 101, 330)  # below the eyes, beside the nose: reliable bare skin
EXCLUDE_FROM_SKIN = ((33, 133, 159, 145), (362, 263, 386, 374), (61, 291, 0, 17), (70, 107, 105), (300, 336, 334))


@dataclass
class PhotoEvidence:
    person: np.ndarray  # [H,W] float32 in [0,1]: probability that a pixel belongs to the person
    person_core: np.ndarray  # [H,W] float32: `person` eroded past its soft edge (see core_of)
    skin_rgb: np.ndarray  # [3] in [0,1]: median cheek colour
    hair_rgb: np.ndarray  # [3] in [0,1]: median colour of the photo's hair pixels (skin if none)
    hair_mean: np.ndarray  # [3] in [0,1]: their mean colour (highlights and shadows in their share)
    hair_rgb_dark: np.ndarray  # [3]: 20th percentile luminance hair pixels, for texture variation
    hair_above_px: float  # how far the hair rises above the landmarks' top, pixels
    has_hair: bool
    face_dist: np.ndarray  # [H,W] float32: distance outside the face oval, in face heights (0 inside)
    skin_log: tuple | None  # (mean [3], inverse covariance [3,3]) of log(rgb + SKIN_LOG_EPS) over bare skin
    hair: np.ndarray  # [H,W] float32 in [0,1]: probability that a pixel is hair (hair_mask)
    occluder: np.ndarray  # [H,W] bool: what lies over the face and is not of it (occluders, and the hands)
    hands: np.ndarray  # [H,W] bool: the hands (hand_mask), wherever they are
    clothes: np.ndarray  # [H,W] bool: the person below the chin that is neither skin nor hair

    @functools.cached_property
    def trusted(self) -> np.ndarray:
        """[H,W] float32 in [0,1]: how far a pixel's colour may be put on the avatar: the person's core, less
        the occluders grown past their soft edge (core_of's radius). Computed once (the projection, the
        bust and the view fit all read it)."""
        grown = 1.0 - core_of(1.0 - self.occluder.astype(np.float32))
        return self.person_core * (1.0 - grown)


def person_mask(image: np.ndarray) -> np.ndarray:
    """RGB uint8 [H,W,3] -> person probability [H,W] float32."""
    global _seg
    with _seg_lock:
        if _seg is None:
            from mediapipe.python.solutions.selfie_segmentation import SelfieSegmentation
            _seg = SelfieSegmentation(model_selection=0)
        mask = _seg.process(np.ascontiguousarray(image)).segmentation_mask
    return np.asarray(mask, np.float32)


# Hands: mediapipe's hand landmarker (bundled in the 0.10.21 wheel: palm detection, then 21 points a hand).
# A hand is skin-coloured, so the colour rule of `occluders` cannot see it; its points can. The mask is the
# palm's polygon and each finger's bones drawn HAND_FINGER_WIDTH palm widths thick (index to little knuckle);
# then what the hand holds and the arm that holds it, which its points do not cover: inside the hull of its 21
# points, all that is not the face's own skin (a phone held to the cheek lies between the thumb and the
# fingers; the chin's skin between a pointing finger and the thumb stays); and the forearm, a band
# HAND_FINGER_WIDTH x 3 palm widths wide running on from the wrist, away from the middle finger's knuckle, for
# FOREARM_LENGTH such palm lengths (on if_052 the palm and wrist under the phone were projected onto the hair).
HAND_FINGER_WIDTH = 0.35
FOREARM_LENGTH = 2.0
MAX_HANDS = 2
# the palm detector's threshold: at its default (0.5) it missed one of two hands round a cup and a hand at the
# bottom of a portrait; at 0.3 it finds them and no hand in the dev set's portraits without one
HAND_MIN_CONFIDENCE = 0.3


def hand_points(image: np.ndarray) -> list[np.ndarray]:
    """RGB uint8 [H,W,3] -> each hand's 21 points [21,2] (pixels; mediapipe's order: 0 the wrist, 9 the middle
    finger's knuckle), none: []."""
    global _hands
    with _hands_lock:
        if _hands is None:
            from mediapipe.python.solutions.hands import Hands
            _hands = Hands(static_image_mode=True, max_num_hands=MAX_HANDS, model_complexity=0,
                           min_detection_confidence=HAND_MIN_CONFIDENCE)
        found = _hands.process(np.ascontiguousarray(image)).multi_hand_landmarks or []
    h, w = image.shape[:2]
    return [np.array([(q.x * w, q.y * h) for q in hand.landmark]) for hand in found]


def hand_mask(hands: list[np.ndarray], shape: tuple, face_skin=None) -> np.ndarray:
    """[H,W] bool: the hands (hand_points' [21,2] each), what they hold and their forearms (see above).
    face_skin(ys, xs) -> bool per pixel: the face's own skin, kept inside a hand's hull (None: all of the
    hull is hand)."""
    from mediapipe.python.solutions.hands_connections import HAND_CONNECTIONS
    out = np.zeros(shape[:2], np.uint8)
    for p in hands:
        palm_w = np.linalg.norm(p[5] - p[17])
        width = max(2, int(round(HAND_FINGER_WIDTH * palm_w)))
        q = np.round(p).astype(np.int32)
        hull = np.zeros_like(out)
        cv2.fillConvexPoly(hull, cv2.convexHull(q), 1)
        ys, xs = np.nonzero(hull)
        keep = face_skin(ys, xs) if face_skin is not None and len(ys) else np.zeros(len(ys), bool)
        out[ys[~keep], xs[~keep]] = 1
        cv2.fillConvexPoly(out, cv2.convexHull(q[[0, 1, 2, 5, 9, 13, 17]]), 1)
        for a, b in HAND_CONNECTIONS:
            cv2.line(out, (int(q[a, 0]), int(q[a, 1])), (int(q[b, 0]), int(q[b, 1])), 1, width)
        arm = p[0] - p[9]
        end = p[0] + FOREARM_LENGTH * arm
        cv2.line(out, (int(q[0, 0]), int(q[0, 1])), (int(round(end[0])), int(round(end[1]))), 1,
                 max(2, int(round(3 * HAND_FINGER_WIDTH * palm_w))))
    return out > 0


HAIR_MODEL_PATH = Path(__file__).with_name("data") / "hair_segmentation.tflite"
HAIR_MODEL_SHA256 = "d2c940c4fd80edeaf38f5d7387d1b4235ee320ed120080df67c663e749e77633"
HAIR_MODEL_SIZE = 512  # the network's input side, pixels
# The network was made for selfies: a head that fills the frame. A portrait's head is cropped out first,
# a square HAIR_CROP face sizes (the landmarks' larger extent) on a side, centred HAIR_CROP_DOWN face sizes
# below the face's centre so that hair falling to the chest stays inside (on the group photo's crops this
# also found hair the whole image missed: the grey sides of a head under a cap).
HAIR_CROP, HAIR_CROP_DOWN = 3.2, 0.4
HAIR_THREADS = 1  # one core (~38 ms a pass here): the selfie and hand networks take the other (_beside)
_hair = None


class HairModelError(RuntimeError):
    """The hair model file is missing or is not the pinned one."""


def _hair_interpreter():
    global _hair
    if _hair is None:
        path = HAIR_MODEL_PATH
        data = read_pinned(path, HAIR_MODEL_SHA256, lambda problem: HairModelError(
            f"hair model {path}: {problem}. It is committed with the repository: restore it "
            f"(`git checkout -- {path.relative_to(path.parents[2])}`)"))
        from ai_edge_litert.interpreter import Interpreter
        it = Interpreter(model_content=data, num_threads=HAIR_THREADS)
        it.allocate_tensors()
        _hair = it
    return _hair


def hair_mask(image: np.ndarray, lm: Landmarks) -> np.ndarray:
    """RGB [H,W,3] (uint8, or float in [0,1]) and its face's landmarks -> hair probability [H,W] float32 in
    [0,1]."""
    h, w = image.shape[:2]
    xy = lm.xy
    size = float((xy.max(0) - xy.min(0)).max())
    side = max(8, int(round(HAIR_CROP * size)))
    cx, cy = xy.mean(0) + (0.0, HAIR_CROP_DOWN * size)
    # crop -> network input: one affine map, the border replicated where the crop leaves the photo
    s = HAIR_MODEL_SIZE / side
    a = np.array([[s, 0, HAIR_MODEL_SIZE / 2 - s * cx], [0, s, HAIR_MODEL_SIZE / 2 - s * cy]], np.float32)
    # (warped in float: a uint8 warp's rounding moved a long-haired portrait's hair end by 0.2 face heights)
    x = np.zeros((1, HAIR_MODEL_SIZE, HAIR_MODEL_SIZE, 4), np.float32)  # 4th channel: no previous mask
    x[0, ..., :3] = cv2.warpAffine(to_float(image), a, (HAIR_MODEL_SIZE, HAIR_MODEL_SIZE),
                                   flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    with _hair_lock:
        it = _hair_interpreter()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        logits = it.get_tensor(it.get_output_details()[0]["index"])[0]
    prob = 1.0 / (1.0 + np.exp(logits[..., 0] - logits[..., 1]))  # softmax of two classes, channel 1
    out = cv2.warpAffine(prob.astype(np.float32), a, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out


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
    d = np.asarray(log_rgb, np.float32) - np.asarray(mean, np.float32)  # float32: a whole photo's clothes at once
    return np.sqrt(np.maximum(np.einsum("...i,...i->...", d @ np.asarray(icov, np.float32), d), 0))


def _skin_log_stats(log: np.ndarray, xy: np.ndarray, inside: np.ndarray, person: np.ndarray,
                    face_h: float) -> tuple | None:
    """(mean [3], inverse covariance [3,3]) of log(rgb + SKIN_LOG_EPS) (log [H,W,3]: log_rgb) over the face's
    bare skin: the face oval eroded by 4% of the face height, less the eyes, brows and lips (EXCLUDE_FROM_SKIN,
    with a margin), less its darkest and brightest 5% (nostrils, highlights); None when fewer than 50 pixels
    remain."""
    k = max(2, int(0.04 * face_h))
    bare = cv2.erode(inside, np.ones((3, 3), np.uint8), iterations=k)
    for poly in EXCLUDE_FROM_SKIN:
        hull = cv2.convexHull(np.round(xy[list(poly)]).astype(np.int32))
        cv2.fillConvexPoly(bare, hull, 0)
        cv2.polylines(bare, [hull], True, 0, k)
    px = log[(bare > 0) & (person > 0.5)]
    if len(px) < 50:
        return None
    lo, hi = np.percentile(px.mean(1), [5, 95])
    px = px[(px.mean(1) >= lo) & (px.mean(1) <= hi)]
    return px.mean(0), np.linalg.inv(np.cov(px.T) + np.eye(3) * 1e-4)


HAIR_MIN_AREA = 0.03  # fewer hair pixels than this share of the face oval's area: no hair (bald, shaved)
# Occluders: inside the face oval, pixels that are not of the skin's colours (SKIN_MAHALANOBIS) while their
# mirror image on the face is, and whose chromaticity (log r/g, log b/g) differs from the mirror's by more
# than OCCLUDER_CHROMA (a shadow on one side keeps the skin's chromaticity), that are not hair, an eye, a brow,
# the lips or a nostril, in blobs of at least OCCLUDER_MIN_AREA of the face: a microphone, a cup or a card
# held up to one side of the face. A beard, glasses or a moustache are on both sides and stay. Not caught: a
# hand (the skin's colours) and an object held dead centre (its mirror is itself).
OCCLUDER_CHROMA = 0.1
OCCLUDER_MIN_AREA = 0.02  # share of the face oval's area
# each eye with its brow, the lips, the nostrils: hulls left out of the search (with a margin)
FEATURES = ((33, 133, 159, 145, 70, 107, 105), (362, 263, 386, 374, 300, 336, 334), (61, 291, 0, 17),
            (48, 278, 2, 4, 64, 294))
_CHROMA = np.array([[1.0, -1.0, 0.0], [0.0, -1.0, 1.0]])  # log rgb -> (log r/g, log b/g)


def mirror_map(lm: Landmarks) -> np.ndarray:
    """[2,3] affine map of a photo pixel to its mirror image on the face (least squares over the landmarks
    and their mirror twins; exact for a frontal face, an approximation turned away)."""
    xy = lm.xy
    pair = _canonical()[1]
    a = np.c_[xy, np.ones(len(xy))]
    return np.linalg.lstsq(a, xy[pair], rcond=None)[0].T.astype(np.float32)


def occluders(log: np.ndarray, lm: Landmarks, inside: np.ndarray, hair: np.ndarray,
              skin_log: tuple | None, face_h: float) -> np.ndarray:
    """[H,W] bool: what lies over the face and is none of its parts (see OCCLUDER_CHROMA). log [H,W,3]: the
    photo's log_rgb; inside [H,W] uint8: the face oval; hair [H,W] hair probability; skin_log: photo_evidence's."""
    out = np.zeros(log.shape[:2], bool)
    if skin_log is None:
        return out
    # the face's box only (its mirror lies in it too): over a whole photo this cost ~30 ms
    ys, xs = np.nonzero(inside)
    if len(ys) == 0:
        return out
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    log = np.ascontiguousarray(log[y0:y1, x0:x1])
    m = mirror_map(lm)
    m[:, 2] += m[:, 0] * x0 + m[:, 1] * y0 - (x0, y0)  # the same map in the box's pixel coordinates
    mirror = cv2.warpAffine(log, m, log.shape[1::-1], flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REPLICATE)
    cand = (inside[y0:y1, x0:x1] > 0) & (hair[y0:y1, x0:x1] < 0.5)
    px, mx = log[cand], mirror[cand]
    cand[cand] = ((skin_distance(px, skin_log) > SKIN_MAHALANOBIS) & (skin_distance(mx, skin_log) <= SKIN_MAHALANOBIS)
                  & (np.linalg.norm((px - mx) @ _CHROMA.T, axis=1) > OCCLUDER_CHROMA))
    k = max(1, int(0.02 * face_h))
    features = np.zeros(cand.shape, np.uint8)
    for poly in FEATURES:
        hull = cv2.convexHull(np.round(lm.xy[list(poly)] - (x0, y0)).astype(np.int32))
        cv2.fillConvexPoly(features, hull, 1)
        cv2.polylines(features, [hull], True, 1, 2 * k)
    cand = cv2.morphologyEx((cand & (features == 0)).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(cand)
    keep = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= OCCLUDER_MIN_AREA * len(ys))
    out[y0:y1, x0:x1] = np.isin(labels, keep[keep > 0])
    return out


_LOG_LUT = np.log(np.arange(256) / 255.0 + SKIN_LOG_EPS).astype(np.float32)  # log_rgb of each uint8 value


def log_rgb(image: np.ndarray) -> np.ndarray:
    """RGB [H,W,3] (uint8, or float in [0,1]) -> log(rgb + SKIN_LOG_EPS) [H,W,3] float32 (a table lookup for
    uint8: the skin statistics, occluders and clothes all read it)."""
    if image.dtype == np.uint8:
        return cv2.LUT(image, _LOG_LUT)
    return np.log(np.clip(to_float(image), 0, 1) + SKIN_LOG_EPS).astype(np.float32)


def _beside_hair(image: np.ndarray, log: np.ndarray, xy: np.ndarray, inside: np.ndarray, face_h: float):
    """What the second thread computes while the hair network runs: the person, its core, the hands and the
    skin statistics (all that does not need the hair)."""
    person, points = person_mask(image), hand_points(image)
    skin_log = _skin_log_stats(log, xy, inside, person, face_h)

    def face_skin(ys, xs):  # inside the face oval and of its skin's colours: seen between a hand's fingers
        return (inside[ys, xs] > 0) & (skin_distance(log[ys, xs], skin_log) <= SKIN_MAHALANOBIS)
    hands = hand_mask(points, image.shape, face_skin if skin_log is not None else None)
    return person, core_of(person), hands, skin_log


def photo_evidence(image: np.ndarray, lm: Landmarks, hair: np.ndarray | None = None) -> PhotoEvidence:
    """The photo parsed (see PhotoEvidence). image RGB [H,W,3] uint8; lm its face's landmarks; hair [H,W] in
    [0,1]: a hair mask to use instead of hair_mask's (tests draw their own)."""
    h, w = image.shape[:2]
    xy = lm.xy
    oval = xy[list(FACE_OVAL)]
    face_h = float(oval[:, 1].max() - oval[:, 1].min())
    inside = np.zeros((h, w), np.uint8)
    cv2.fillPoly(inside, [np.round(oval).astype(np.int32)], 1)
    log = log_rgb(image)
    beside = _beside.submit(_beside_hair, image, log, xy, inside, face_h)
    img = to_float(image)
    hair = hair_mask(image, lm) if hair is None else np.asarray(hair, np.float32)
    hair_core = core_of(hair) > 0.5
    face_dist = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 3) / max(face_h, 1.0)
    # skin: small discs at cheek landmarks, away from eyes/brows/lips
    r = max(2, int(0.03 * (xy[:, 0].max() - xy[:, 0].min())))
    cheek = np.zeros((h, w), np.uint8)
    for i in CHEEKS:
        cv2.circle(cheek, (int(round(xy[i, 0])), int(round(xy[i, 1]))), r, 1, -1)
    skin = _median_rgb(img[cheek > 0], (0.8, 0.6, 0.5))
    person, person_core, hands, skin_log = beside.result()
    # hair: the parser's hair pixels, inside its soft edge and the person's, not a hand (fingers in the hair are
    # hair to the network: on if_052 a third of the hand); colour is taken from these only
    hair_px = hair_core & (person > 0.5) & ~hands
    has_hair = bool(hair_px.sum() >= HAIR_MIN_AREA * inside.sum())
    top = int(oval[:, 1].min())
    if has_hair:
        pix = img[hair_px]
        lum = pix @ np.array([0.299, 0.587, 0.114], np.float32)
        hair_rgb, hair_mean = np.median(pix, 0), pix.mean(0)
        hair_dark = _median_rgb(pix[lum <= np.percentile(lum, 20)], hair_rgb * 0.7)
        # how far the hair rises above the face, over the middle half of the face's width
        x0, x1 = np.percentile(oval[:, 0], [25, 75]).astype(int)
        rows = np.flatnonzero((hair[:, max(x0, 0):min(x1, w - 1) + 1] > 0.5).any(1))
        hair_above = float(max(0, top - rows.min())) if len(rows) else 0.0
    else:
        hair_rgb, hair_dark, hair_above = skin.copy(), skin * 0.85, 0.0
        hair_mean = hair_rgb
    occluder = occluders(log, lm, inside, hair, skin_log, face_h) | hands
    # clothes: the person below the chin that is neither hair nor of the face's skin colours
    below = np.arange(h)[:, None] > xy[152, 1]
    clothes = (person > 0.5) & (hair < 0.5) & below & (face_dist > 0)
    if skin_log is not None:
        clothes[clothes] = skin_distance(log[clothes], skin_log) > SKIN_MAHALANOBIS
    return PhotoEvidence(person, person_core, skin.astype(np.float32), np.asarray(hair_rgb, np.float32),
                         np.asarray(hair_mean, np.float32), np.asarray(hair_dark, np.float32), hair_above, has_hair,
                         face_dist, skin_log, hair, occluder, hands, clothes)


# Long hair: how far the photo's hair falls below the chin: the lowest hair pixel of the hair that reaches
# above the eyes or hangs from behind an ear (so another person's hair beside the head is not this one's),
# within HAIR_REACH face heights of the face, beside the chin (outside HAIR_SIDE face widths of it, so that a
# beard the parser calls hair is not long hair).
HAIR_REACH = 2.0
HAIR_SIDE = 0.3  # how far beside the chin, in face widths, the hair's end is read
HAIR_STRAND = 0.05  # face widths
HAIR_INSIDE = 0.1  # the most of a piece of hair below an ear that may lie inside the face oval


def face_height_px(lm: Landmarks) -> float:
    """The face oval's height in the photo, pixels (at least 1): hair_reach's unit."""
    oval = lm.xy[list(FACE_OVAL)]
    return max(float(oval[:, 1].max() - oval[:, 1].min()), 1.0)


def hair_end_row(lm: Landmarks, reach: float) -> float:
    """The photo's row (pixels) where hair reaching `reach` face heights below the chin ends (hair_reach)."""
    return float(lm.xy[152, 1] + reach * face_height_px(lm))


def hair_reach(lm: Landmarks, ev: PhotoEvidence) -> float:
    """How far the photo's hair falls below the chin, in face heights (negative: it ends above it; inf:
    it runs out of the bottom of the photo; -inf: no hair)."""
    if not ev.has_hair:
        return -np.inf
    xy = lm.xy
    oval = xy[list(FACE_OVAL)]
    hair = (ev.hair > 0.5) & (ev.face_dist < HAIR_REACH)
    # stray strands thinner than HAIR_STRAND face widths do not count: where they end moves with the mask's
    # rounding (a uint8 resize moved one portrait's end by 0.2 face heights), where the hair's body ends does not
    k = max(1, int(round(HAIR_STRAND * (oval[:, 0].max() - oval[:, 0].min()))))
    hair = cv2.morphologyEx(hair.astype(np.uint8), cv2.MORPH_OPEN, np.ones((k, k), np.uint8)) > 0
    labels, n = ndimage.label(hair)
    eye = xy[[33, 263], 1].mean()
    ids = np.unique(labels[: max(int(eye), 0) + 1][hair[: max(int(eye), 0) + 1]])
    # hair falling behind an ear is cut off from the hair above it by the ear: a piece that touches the face
    # oval's rim above the chin and lies outside it (a beard the parser calls hair covers the lower face) is
    # this person's hair too; another person's hair does not touch this face
    index = np.arange(1, n + 1)
    inside = ev.face_dist <= 0
    rim = ndimage.sum(inside & (np.arange(hair.shape[0])[:, None] < xy[152, 1]), labels, index) > 0
    outside = ndimage.sum(inside, labels, index) <= HAIR_INSIDE * ndimage.sum(hair, labels, index)
    grown = np.isin(labels, np.concatenate([ids[ids > 0], index[rim & outside]]))
    width = oval[:, 0].max() - oval[:, 0].min()
    grown[:, max(0, int(xy[152, 0] - HAIR_SIDE * width)):max(0, int(xy[152, 0] + HAIR_SIDE * width) + 1)] = False
    hit = np.flatnonzero(grown.any(1))
    if len(hit) == 0:
        return -np.inf
    if hit[-1] >= ev.hair.shape[0] - 1:
        return np.inf
    return float((hit[-1] - xy[152, 1]) / face_height_px(lm))
