"""LAM interop figures: import of a real LAM package, export of ours, round trip. One JSON line last.

    .venv/bin/python -m benchmarks.lam_interop [--package PATH] [--image PATH] [--size 512]

--package: a LAM avatar zip (default: shared/fixtures/lam/p2-1.zip beside the repository; skipped if
absent). --image: the portrait our avatar is built from (default scikit-image's astronaut).
Figures: import_s (warm, after a first import loaded the modules), coverage_front/back (opaque share
of the hole-filled silhouette), jaw_gap_neutral/open (inner-lip distance / eye-corner distance on a
frontal render, mediapipe), round-trip PSNR (package render vs our direct render; neutral at yaw 0,
45°, 180°; each app preset at yaw 0), merge_psnr_db (our Gaussians merged, before the package: the
cost of the subsampling alone), package size and Gaussian counts.
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _presets() -> dict:
    tree = ast.parse((ROOT / "app.py").read_text())  # app.PRESETS without importing gradio
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "PRESETS")
    return ast.literal_eval(node.value)


def _psnr(a, b) -> float:
    from evaluation.metrics import psnr
    return round(psnr(a, b), 2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", default=str(ROOT.parent / "shared" / "fixtures" / "lam" / "p2-1.zip"))
    ap.add_argument("--image", default=None)
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args(argv)

    from scipy.ndimage import binary_fill_holes

    from baselines.lam import load_lam_package
    from model.core.camera import framing_camera
    from model.core.gaussians import Gaussians
    from model.core.image_io import load_image, to_uint8
    from model.head.landmarks import detect_landmarks, inter_ocular
    from model.ours import lam_export
    from model.ours.avatar import HeadSplat

    def coverage(alpha):
        solid = alpha > 0.5
        return round(float(solid.sum() / max(binary_fill_holes(solid).sum(), 1)), 4)

    def gap(avatar, controls=None):
        cam = framing_camera(avatar.head_center, avatar.head_radius, 0.0, 0.0, size=args.size)
        lm = detect_landmarks(to_uint8(avatar.render(cam, controls).rgb))
        return round(float(np.linalg.norm(lm.points[13, :2] - lm.points[14, :2]) / inter_ocular(lm.points)), 4)

    out: dict = {"benchmark": "lam_interop", "size": args.size}
    package = Path(args.package)
    if package.is_file():
        load_lam_package(package)  # first import pays for the modules (pygltflib, plyfile)
        t0 = time.perf_counter()
        lam = load_lam_package(package)
        out["import_s"] = round(time.perf_counter() - t0, 3)
        cams = [framing_camera(lam.head_center, lam.head_radius, y, 0.0, size=args.size) for y in (0.0, np.pi)]
        out["coverage_front"], out["coverage_back"] = (coverage(lam.render(c).alpha) for c in cams)
        out["jaw_gap_neutral"], out["jaw_gap_open"] = gap(lam), gap(lam, {"jawOpen": 1.0})
        out["fixture_gaussians"] = len(lam.package)
        t0 = time.perf_counter()
        for _ in range(20):
            lam.gaussians({"jawOpen": 0.5, "mouthSmileLeft": 0.3, "headYaw": 0.2})
        out["fixture_pose_ms"] = round((time.perf_counter() - t0) / 20 * 1000, 2)
    else:
        print(f"[skip] no LAM package at {package}: import figures left out", file=sys.stderr)

    import skimage.data
    image = load_image(args.image) if args.image else skimage.data.astronaut()
    ours = HeadSplat().reconstruct(image)
    g0 = ours.gaussians()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = lam_export.export_lam_package(ours, Path(tmp) / "ours.zip")
        out["export_s"] = round(time.perf_counter() - t0, 3)
        out["package_mb"] = round(path.stat().st_size / 1e6, 3)
        back = load_lam_package(path)
    out["ours_gaussians"], out["package_gaussians"] = len(g0), len(back.package)
    cams = {f"yaw{int(round(np.degrees(y))):03d}": framing_camera(ours.head_center, ours.head_radius, y, 0.0,
                                                                   size=args.size)
            for y in (0.0, np.pi / 4, np.pi)}
    # the subsampling alone: our Gaussians merged as the exporter does, rendered without the package
    _, _, m, q, s, o, c, _ = lam_export.merged(ours)
    merged = Gaussians.from_rgb(m, q, s, o, c)
    from model.core.render import render
    ref = {k: ours.render(cam).rgb for k, cam in cams.items()}
    out["merge_psnr_db"] = {k: _psnr(ref[k], render(merged, cam, background=(1.0, 1.0, 1.0)).rgb)
                            for k, cam in cams.items()}
    out["round_trip_psnr_db"] = {k: _psnr(ref[k], back.render(cam).rgb) for k, cam in cams.items()}
    front = cams["yaw000"]
    out["preset_psnr_db"] = {name: _psnr(ours.render(front, ctl or None).rgb, back.render(front, ctl or None).rgb)
                             for name, ctl in _presets().items()}
    out["round_trip_jaw_gap_neutral"], out["round_trip_jaw_gap_open"] = gap(back), gap(back, {"jawOpen": 1.0})
    out["target_psnr_db"] = 28.0
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
