"""Render speed on a head-like scene.

    python -m benchmarks.render --gaussians 50000 --size 512 [--backend cpu|gsplat] [--frames 30]
    python -m benchmarks.render --table        # sizes 256/512 x 20k/50k/100k Gaussians

Renders one warm-up frame (its time is `first_call_s`: in a fresh process that includes loading
numba's cached kernels, or compiling them when no cache exists), then K frames with the yaw
stepping by 0.01 rad. Prints one JSON line last.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def _threads(backend: str) -> int:
    if backend == "cpu":
        import numba
        return int(numba.get_num_threads())
    return 0  # GPU: host threads are not what bounds it


def bench(n: int, size: int, backend: str, frames: int, seed: int = 0) -> dict:
    from benchmarks.scenes import head_camera, head_scene
    from model.core.render import render

    g = head_scene(n, seed)
    t0 = time.perf_counter()
    out = render(g, head_camera(size), backend=backend)
    first = time.perf_counter() - t0
    if backend == "gsplat":
        import torch
        sync = torch.cuda.synchronize
    else:
        sync = lambda: None  # noqa: E731
    times = []
    for k in range(frames):
        cam = head_camera(size, yaw=0.01 * (k + 1))
        t0 = time.perf_counter()
        out = render(g, cam, backend=backend)
        sync()
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1e3
    return {"backend": backend, "gaussians": n, "size": size, "frames": frames,
            "fps_median": round(1e3 / float(np.median(ms)), 2), "ms_median": round(float(np.median(ms)), 2),
            "ms_p90": round(float(np.percentile(ms, 90)), 2), "first_call_s": round(first, 3),
            "coverage": round(float(out.alpha.mean()), 4), "threads": _threads(backend)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gaussians", type=int, default=50000)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--backend", choices=["auto", "cpu", "gsplat"], default="auto")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--table", action="store_true", help="sizes 256/512 x 20k/50k/100k Gaussians")
    args = ap.parse_args(argv)

    from model.core.render import available_backends
    backend = available_backends()[0] if args.backend == "auto" else args.backend
    try:
        result = _run(args, backend)
    except RuntimeError as e:  # e.g. gsplat asked for without a GPU: say so, measure nothing
        print(json.dumps({"backend": backend, "error": str(e)}))
        return 1
    print(json.dumps(result))
    return 0


def _run(args, backend: str) -> dict:
    if args.table:
        rows = []
        for size in (256, 512):
            for n in (20000, 50000, 100000):
                row = bench(n, size, backend, args.frames)
                rows.append(row)
                print(f"{backend:6s} {size:4d}px {n:7d} G: {row['fps_median']:7.1f} fps  "
                      f"median {row['ms_median']:6.1f} ms  p90 {row['ms_p90']:6.1f} ms", file=sys.stderr)
        result = {"backend": backend, "threads": rows[0]["threads"], "cpu_count": os.cpu_count(),
                  "first_call_s": rows[0]["first_call_s"], "rows": rows}
    else:
        result = bench(args.gaussians, args.size, backend, args.frames)
        result["cpu_count"] = os.cpu_count()
    return result


if __name__ == "__main__":
    raise SystemExit(main())
