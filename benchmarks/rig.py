"""ARKit-52 rig on the ICT head (model/head/rig.py): deform time, retargeting accuracy and time.

    python -m benchmarks.rig [--frames 30] [--people 3] [--seed 30]

Deform: one fitted person, the median of 200 calls with all 52 ARKit controls at 0.5 + gaze + head pose
(the worst case: every shape non-zero) and with a typical frame (jawOpen, two smiles, two blinks).
Retarget: `--people` random persons (identity N(0,1) on all 100 ICT modes) each fitted on a frontal
neutral synthetic photo (ict_fit.synthetic_landmarks, 512x512 from 0.65 m, 0.5 px noise), then `--frames`
frames in all of them: rig.random_expression (2-3 of jawOpen, smiles, blinks, brows at U(0.2, 1)),
|yaw| <= 30, |pitch| <= 10, |roll| <= 5 degrees, 0.5 px noise, eyes at rest ("retarget"); then `--frames`
more with gaze U(+-0.25) yaw and U(+-0.15) pitch radians per eye, the eyeLook* lid shapes it implies
applied too ("retarget_with_gaze": the solve ignores eyeLook*, so their lid motion can read as blinks). Figures: MAE of the expression shapes set, the sum of the other ARKit weights per frame
(eyeLook* excluded: they carry the gaze), MAE of the 8 eyeLook* weights against the true gaze's,
head-pose error (degrees, rotation angle), retarget time. Prints the figures, then one JSON line last.
Targets (issue 30 item 3): deform <= 5 ms, retarget MAE <= 0.1, others <= 0.5 a frame (eyes at rest).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _median_ms(f, n: int) -> float:
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1000)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--people", type=int, default=3)
    ap.add_argument("--seed", type=int, default=30)
    args = ap.parse_args(argv)
    from model.head import rig as R
    from model.head.fitting import rotation_from_euler
    from model.head.head_model import load_head_model
    from model.head.ict_fit import fit_head_model, synthetic_landmarks
    from model.head.rig import ARKIT_NAMES

    model = load_head_model()
    rng = np.random.default_rng(args.seed)
    people = []
    for _ in range(args.people):
        identity = rng.normal(0.0, 1.0, 100)
        lm, _, _ = synthetic_landmarks(model, identity, None, np.zeros(3), rng=rng)
        people.append((identity, fit_head_model(lm, model=model)))

    fit = people[0][1]
    every = {n: 0.5 for n in ARKIT_NAMES}
    every.update(headYaw=0.3, headPitch=0.1, headRoll=0.05)
    typical = {"jawOpen": 0.3, "mouthSmileLeft": 0.5, "mouthSmileRight": 0.4, "eyeBlinkLeft": 0.2,
               "eyeBlinkRight": 0.2}
    R.deform(fit, every)  # caches
    deform_all_ms = _median_ms(lambda: R.deform(fit, every), 200)
    deform_typical_ms = _median_ms(lambda: R.deform(fit, typical), 200)

    for identity, f in people:  # the person model's precompute, once per fit (not timed below)
        R.retarget(synthetic_landmarks(model, identity, None, np.zeros(3))[0], f)
    looks = [n for n in ARKIT_NAMES if n.startswith("eyeLook")]

    def frames(with_gaze: bool) -> dict:
        errs, others, look_errs, pose_deg, times = [], [], [], [], []
        for i in range(args.frames):
            identity, f = people[i % len(people)]
            truth = R.random_expression(rng)
            pose = np.deg2rad([rng.uniform(-30, 30), rng.uniform(-10, 10), rng.uniform(-5, 5)])
            gaze = np.stack([rng.uniform(-0.25, 0.25, 2), rng.uniform(-0.15, 0.15, 2)], 1) * with_gaze
            true_look = R.arkit_from_gaze(gaze)
            lm, _, _ = synthetic_landmarks(model, identity, R.ict_weights({**truth, **true_look}), pose,
                                           gaze=gaze, rng=rng, noise_px=0.5)
            t = time.perf_counter()
            c = R.retarget(lm, f)
            times.append(time.perf_counter() - t)
            errs += [abs(c[n] - w) for n, w in truth.items()]
            others.append(sum(v for n, v in c.items() if n in ARKIT_NAMES and n not in truth and n not in looks))
            look_errs += [abs(c[n] - true_look[n]) for n in looks]
            Q = rotation_from_euler(c["headYaw"], c["headPitch"], c["headRoll"])
            cos = (np.trace(Q.T @ rotation_from_euler(*pose)) - 1) / 2
            pose_deg.append(float(np.degrees(np.arccos(np.clip(cos, -1, 1)))))
        return {"ms_median": round(float(np.median(times) * 1000), 2), "mae": round(float(np.mean(errs)), 4),
                "err_max": round(float(np.max(errs)), 4), "others_sum_median": round(float(np.median(others)), 4),
                "others_sum_max": round(float(np.max(others)), 4), "eye_look_mae": round(float(np.mean(look_errs)), 4),
                "pose_err_deg_median": round(float(np.median(pose_deg)), 3),
                "pose_err_deg_max": round(float(np.max(pose_deg)), 3)}

    still, gazing = frames(False), frames(True)
    res = {"deform_ms_median_all52": round(deform_all_ms, 3), "deform_ms_median_typical": round(deform_typical_ms, 3),
           "retarget_ms_median": still["ms_median"], "retarget_mae": still["mae"],
           "retarget": still, "retarget_with_gaze": gazing, "frames": args.frames, "people": args.people}
    res["pass"] = {"deform<=5ms": deform_all_ms <= 5.0, "mae<=0.1": still["mae"] <= 0.1,
                   "others<=0.5": still["others_sum_max"] <= 0.5, "mae_with_gaze<=0.1": gazing["mae"] <= 0.1}
    for k, v in res.items():
        if k != "pass":
            print(f"  {k:26s} {v}")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
