"""The head fit (model/head/ict_fit.py, ICT-FaceKit): synthetic recovery and real-portrait landmark error.

    python -m benchmarks.fit [--cases 30] [--seed 30]

Synthetic: `--cases` seeded faces (identity N(0,1) on all 100 ICT modes, two of jawOpen / mouthSmile_L/R /
eyeBlink_L/R at U(0,1), |yaw| <= 45, |pitch| <= 20, |roll| <= 10 degrees, gaze U(+-0.3) yaw and U(+-0.2)
pitch radians), their own 478 points projected by the photo camera of a 512x512 image from 0.65 m,
+ 0.5 px noise; figures: face-region vertex error (mm, mean over face_skin/lips/brows vertices after a
similarity alignment) of the fit and of its neutralised identity, expression MAE over the five shapes,
pose error (largest of yaw/pitch/roll, degrees), gaze error (degrees), fit time.
Real: every portrait of evaluation.datasets portraits_bundled() and portraits_group(): landmark NME of the
fit (default: model + landmark corrective) and of the model alone. Prints the figures, then one JSON line last.
Targets (issue 30): vertex error mean <= 2.0 mm, expression MAE <= 0.1, pose <= 2 degrees, NME on real
portraits <= 0.005 (the procedural template's fit, removed in issue 30, read 0.0003-0.0013 on them: its
free-form corrective followed the detected points almost exactly), fit <= 0.15 s after the model is loaded.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _aligned_mm(a, b) -> float:
    from model.head.ict_fit import umeyama
    s, R, t = umeyama(a, b)
    return float(np.linalg.norm(s * a @ R.T + t - b, axis=1).mean() * 1000)


def synthetic(n: int, seed: int) -> dict:
    from model.head.head_model import load_head_model
    from model.head.ict_fit import SYNTHETIC_SHAPES, face_vertex_ids, fit_head_model, random_case, synthetic_landmarks
    model = load_head_model()
    fv = face_vertex_ids(model)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        c = random_case(model, rng)
        gaze = np.stack([rng.uniform(-0.3, 0.3, 2), rng.uniform(-0.2, 0.2, 2)], 1)
        lm, cam, v = synthetic_landmarks(model, c["identity"], c["expression"], c["pose"], gaze=gaze, rng=rng)
        if i == 0:
            fit_head_model(lm, model)  # first call: per-model precompute (landmark bases, corrective factor)
        t = time.perf_counter()
        f = fit_head_model(lm, model)
        dt = time.perf_counter() - t
        f0 = fit_head_model(lm, model, corrective=False)
        neutral_true = model.vertices(c["identity"])
        rows.append({
            "vertex_mm": _aligned_mm(f.vertices()[fv], v[fv]),
            "vertex_mm_model_only": _aligned_mm(f0.vertices()[fv], v[fv]),
            "identity_mm": _aligned_mm(f.vertices(expression=0, gaze=False)[fv], neutral_true[fv]),
            "expr_mae": float(np.mean([abs(f.expression_dict[k] - c["expression"][k]) for k in SYNTHETIC_SHAPES])),
            "expr_spurious_sum": float(sum(w for k, w in f.expression_dict.items() if k not in SYNTHETIC_SHAPES)),
            "pose_deg": float(np.rad2deg(np.abs(f.pose - c["pose"])).max()),
            "gaze_deg": float(np.rad2deg(np.abs(f.gaze - gaze)).max()),
            "fit_s": dt, "iterations": f.iterations,
        })
    out = {"cases": n, "seed": seed}
    for k in rows[0]:
        x = np.array([r[k] for r in rows], dtype=float)
        out[k] = {"median": round(float(np.median(x)), 4), "mean": round(float(x.mean()), 4),
                  "max": round(float(x.max()), 4)}
    return out


def real() -> dict:
    from evaluation.datasets import portraits_bundled, portraits_group
    from model.core.errors import InputError
    from model.head.ict_fit import fit_head_model
    from model.head.landmarks import detect_landmarks
    out, found = {}, {}
    for ds in (portraits_bundled(), portraits_group()):
        for sid in ds.subject_ids:
            try:
                found[sid] = detect_landmarks(ds.subject(sid).image)
            except InputError as e:
                out[sid] = {"error": str(e)}
    time.sleep(1.0)  # mediapipe's worker threads spin for a while after a detection: let them settle
    for sid, lm in found.items():
        ts = []
        for _ in range(3):
            t = time.perf_counter()
            f = fit_head_model(lm)
            ts.append(time.perf_counter() - t)
        dt = float(np.median(ts))
        top = sorted(((w, k) for k, w in f.expression_dict.items() if w > 0.1), reverse=True)[:4]
        out[sid] = {"nme_ict": round(f.nme, 5), "nme_ict_model_only": round(f.nme_model, 5),
                    "fit_s": round(dt, 4),
                    "pose_deg_ict": np.round(np.rad2deg(f.pose), 1).tolist(),
                    "jawOpen": round(f.expression_dict["jawOpen"], 3),
                    "expression_top": {k: round(w, 2) for w, k in top},
                    "corrective_max_mm": round(float(np.abs(f.offsets).max() * 1000), 2)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=30)
    ap.add_argument("--seed", type=int, default=30)
    args = ap.parse_args(argv)
    t = time.perf_counter()
    from model.head.head_model import load_head_model
    load_head_model()
    load_s = time.perf_counter() - t
    syn = synthetic(args.cases, args.seed)
    portraits = real()
    ok = [r for r in portraits.values() if "error" not in r]
    fit_times = [r["fit_s"] for r in ok]
    res = {"benchmark": "fit", "model_load_s": round(load_s, 3), "synthetic": syn, "portraits": portraits,
           "portraits_fit_s_median": round(float(np.median(fit_times)), 4) if ok else None}
    res["pass"] = {
        "vertex_mean<=2mm": syn["vertex_mm"]["mean"] <= 2.0,
        "expr_mae<=0.1": syn["expr_mae"]["mean"] <= 0.1,
        "pose<=2deg": syn["pose_deg"]["max"] <= 2.0,
        "nme<=0.005": all(r["nme_ict"] <= 0.005 for r in ok),
        "fit_s<=0.15": syn["fit_s"]["median"] <= 0.15,
    }
    print(f"model load {load_s:.2f} s; synthetic, {args.cases} cases (median / mean / max):")
    for k, v in syn.items():
        if isinstance(v, dict):
            print(f"  {k:24s} {v['median']:8.4f} {v['mean']:8.4f} {v['max']:8.4f}")
    print("real portraits: nme / model only, jawOpen, fit s")
    for sid, r in portraits.items():
        if "error" in r:
            print(f"  {sid:14s} {r['error']}")
        else:
            print(f"  {sid:14s} {r['nme_ict']:.4f} {r['nme_ict_model_only']:.4f}  "
                  f"jaw {r['jawOpen']:.2f}  {r['fit_s']:.3f} s  {r['expression_top']}")
    print("pass:", res["pass"])
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
