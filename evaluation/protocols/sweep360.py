"""The sweep-360 protocol: orbit views all round the head (identity per yaw, depth reprojection between
neighbouring yaws, holes in the silhouette, silhouette area over yaw)."""
from __future__ import annotations

import numpy as np

from evaluation.protocols.common import (WHITE, Output, Protocol, _fail_rate, _mean, _short, fit_size,
                                         orbit_cameras, resize_image)
from model.core.image_io import to_float

WIDE_YAW_DEG = 45.0  # sweep views at least this far round are the "wide" views of the *_yaw45 metrics


def hole_fraction(alpha: np.ndarray) -> float | None:
    """Fraction of the filled silhouette (alpha > 0.5, holes filled) that is see-through; None if empty."""
    from scipy.ndimage import binary_fill_holes
    sil = alpha > 0.5
    filled = binary_fill_holes(sil)
    n = int(filled.sum())
    return None if n == 0 else float((filled & ~sil).sum() / n)


def view_name(yaw: float, pitch: float) -> str:
    return f"yaw{int(round(yaw)):+04d}_pitch{int(round(pitch)):+03d}"


class Sweep360(Protocol):
    # v2: identity detection falls back to dlib's CNN detector; csim_*_yaw45 added
    id, version = "sweep-360", "2"
    description = ("yaw sweep every 15° over the full circle at pitch 0, plus pitch ±20° at yaw 0: identity "
                   "vs the photo per yaw (detection failures counted), depth reprojection between "
                   "neighbouring yaws, hole fraction inside the silhouette, silhouette area over yaw")
    primary = ("csim_dlib", "csim_dlib_yaw45", "face_detect_fail_rate_dlib", "depth_reproj_error", "hole_fraction",
               "silhouette_min_ratio")
    YAWS = tuple(range(-180, 180, 15))
    PITCHES = (20, -20)
    THUMB_VIEWS = ("yaw+000_pitch+00", "yaw+045_pitch+00", "yaw+090_pitch+00", "yaw-180_pitch+00",
                   "yaw-090_pitch+00", "yaw-045_pitch+00", "yaw+000_pitch+20")

    def config(self, settings):
        return {**settings.to_dict(), "yaws_deg": list(self.YAWS), "pitches_deg_at_yaw0": list(self.PITCHES)}

    def run(self, avatar, subject, ctx):
        from evaluation.consistency import sweep_depth_reprojection_error
        poses = [(y, 0) for y in self.YAWS] + [(0, p) for p in self.PITCHES]
        cams = orbit_cameras(avatar, poses, ctx.settings)
        photo = subject.image
        target = to_float(resize_image(photo, fit_size(photo.shape[1], photo.shape[0], ctx.settings.size)))
        renders, views, images = [], [], {}
        for (yaw, pitch), cam in zip(poses, cams):
            r = avatar.render(cam, None, WHITE)
            renders.append(r)
            name = view_name(yaw, pitch)
            v = {"view": name, "yaw_deg": yaw, "pitch_deg": pitch, "hole_fraction": hole_fraction(r.alpha),
                 "silhouette_fraction": float((r.alpha > 0.5).mean())}
            if abs(yaw) <= ctx.settings.identity_max_yaw_deg:
                v.update(ctx.identity.scores(r.rgb, target))
            views.append(v)
            if name in self.THUMB_VIEWS:
                images[name] = r.rgb
        ring = len(self.YAWS)
        pairs, notes = [], []
        if not getattr(avatar, "provides_depth", True):  # e.g. external predictions without depth maps
            notes.append("no depth from this method: depth reprojection not computed")
        else:  # neighbours on the pitch-0 ring, wrapping 165° -> -180°
            sweep = sweep_depth_reprojection_error([r.depth for r in renders[:ring]], [r.alpha for r in renders[:ring]],
                                                   cams[:ring], wrap=True)
            pairs = [{"yaw_a_deg": self.YAWS[i], "yaw_b_deg": self.YAWS[(i + 1) % ring],
                      "depth_reproj_error": d["mean_abs_m"], "depth_reproj_valid_fraction": d["valid_fraction"]}
                     for i, d in enumerate(sweep["pairs"])]
        sil = [v["silhouette_fraction"] for v in views[:ring]]
        metrics = {"silhouette_min_ratio": min(sil) / max(sil) if max(sil) > 0 else None,
                   "hole_fraction": _mean(v["hole_fraction"] for v in views),
                   "hole_fraction_max": max((v["hole_fraction"] for v in views if v["hole_fraction"] is not None),
                                            default=None),
                   "depth_reproj_error": _mean(p["depth_reproj_error"] for p in pairs),
                   "depth_reproj_valid_fraction": _mean(p["depth_reproj_valid_fraction"] for p in pairs)}
        scored = [v for v in views if abs(v["yaw_deg"]) <= ctx.settings.identity_max_yaw_deg]
        wide = [v for v in scored if v["pitch_deg"] == 0 and abs(v["yaw_deg"]) >= WIDE_YAW_DEG]
        for m in ctx.identity.available:
            found = f"face_found_{_short(m)}"
            metrics[m.id] = _mean(v.get(m.id) for v in scored)
            metrics[f"face_detect_fail_rate_{_short(m)}"] = _fail_rate(v.get(found) for v in scored)
            # a missed face scores 0; views whose target has no face (found is None) stay out
            metrics[f"{m.id}_yaw45"] = _mean((v.get(m.id) or 0.0) if v.get(found) is not None else None for v in wide)
            metrics[f"face_detect_fail_rate_{_short(m)}_yaw45"] = _fail_rate(v.get(found) for v in wide)
        curves = {"yaw_deg": list(self.YAWS),
                  "hole_fraction": [v["hole_fraction"] for v in views[:ring]],
                  "silhouette_fraction": sil,
                  "pairs": pairs}
        for m in ctx.identity.available:
            curves[m.id] = [v.get(m.id) for v in views[:ring]]
            curves[f"face_found_{_short(m)}"] = [v.get(f"face_found_{_short(m)}") for v in views[:ring]]
        notes += [f"identity scored for |yaw| <= {ctx.settings.identity_max_yaw_deg:g}°; CSIM means are over "
                 f"views where a face was found, failures are in face_detect_fail_rate_*"]
        return Output(metrics, views, curves, images, notes)
