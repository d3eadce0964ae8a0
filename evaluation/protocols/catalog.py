"""The protocols by id (PROTOCOLS, resolve_protocols) and the metrics they compute themselves beside
evaluation.metrics.METRICS (EXTRA_METRICS, NEUTRAL_METRICS, higher_is_better), in one table so the
leaderboard lists them in one order."""
from __future__ import annotations

from evaluation.protocols.common import Protocol
from evaluation.protocols.input_view import InputView
from evaluation.protocols.multiview_gt import MultiviewGT
from evaluation.protocols.reenactment import CrossReenactment, Reenactment, SelfReenactment
from evaluation.protocols.sweep360 import Sweep360

PROTOCOLS: dict[str, Protocol] = {p.id: p for p in (InputView(), Sweep360(), MultiviewGT(), Reenactment(),
                                                       SelfReenactment(), CrossReenactment())}

# Metrics the protocols compute themselves (the image/identity/consistency metrics are described in
# evaluation.metrics.METRICS; these complete that registry for the leaderboard's directions).
EXTRA_METRICS = {
    "hole_fraction": (False, "fraction of pixels inside the filled silhouette (scipy binary_fill_holes of "
                             "alpha > 0.5) whose alpha is < 0.5: see-through holes in the head; mean over views"),
    "hole_fraction_max": (False, "largest hole_fraction of any view of the sweep"),
    "silhouette_min_ratio": (True, "smallest / largest silhouette area (alpha > 0.5) over the pitch-0 yaw ring: a "
                                   "head keeps its bulk all round (~0.7+), a flat or front-only avatar collapses "
                                   "seen edge-on (billboard ~0); the identity and depth metrics cannot see this"),
    "alpha_face_coverage": (True, "mean rendered alpha over the target's face mask: does the avatar cover the face"),
}
for _m in ("dlib", "arcface"):
    EXTRA_METRICS[f"csim_{_m}_yaw45"] = (
        True, f"mean csim_{_m} over the pitch-0 sweep views with 45° <= |yaw| <= the identity limit, a view "
              "where no face is found counting as 0: the identity a method keeps as the head turns away, "
              "failures included (csim_" + _m + " averages found faces only)")
    EXTRA_METRICS[f"face_detect_fail_rate_{_m}_yaw45"] = (False, "face detection failure rate over those views")


EXTRA_METRICS.update({
    "akd68": (False, "AKD on dlib's 68 landmarks (a detector that does not drive any method): mean px distance "
                     "between render and frame at the compared size (evaluation/tracker.py)"),
    "aed": (False, "average expression distance: mean |difference| of 7 landmark ratios (eye and mouth openings, "
                   "mouth width, brow heights, mouth-corner lift; evaluation/tracker.py), unitless"),
    "apd": (False, "average pose distance: mean |difference| of yaw, pitch, roll (degrees) from 6-point PnP of "
                   "dlib's landmarks on a generic face (evaluation/tracker.py)"),
    "track_fail_rate": (False, "fraction of scored frames where the tracker lost the face in the render or the frame"),
})
# not ranked (no direction): what was scored and how
NEUTRAL_METRICS = {"frames_scored": "target frames scored", "animated": "1 = driven by each frame; 0 = the method "
                   "cannot animate and was scored at the source frame's pose"}
EXTRA_METRICS["akd_fail_rate"] = (False, "fraction of reenacted frames without landmarks in the render or frame (no AKD)")


def higher_is_better(metric: str) -> bool | None:
    """Direction of a result metric key; None when unknown (then it is shown but not ranked)."""
    from evaluation.metrics import METRICS
    if metric in EXTRA_METRICS:
        return EXTRA_METRICS[metric][0]
    for key in (metric, metric.rsplit("_", 1)[0]):  # face_detect_fail_rate_dlib -> face_detect_fail_rate
        if key in METRICS:
            return METRICS[key].higher_is_better
    return None


def resolve_protocols(text: str) -> list[str]:
    ids = list(PROTOCOLS) if text.strip() == "all" else [t.strip() for t in text.split(",") if t.strip()]
    unknown = [i for i in ids if i not in PROTOCOLS]
    if unknown or not ids:
        raise ValueError(f"unknown protocol(s) {unknown}; known: {', '.join(PROTOCOLS)}")
    return list(dict.fromkeys(ids))
