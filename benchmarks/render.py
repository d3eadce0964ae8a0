"""Render speed on a head-like scene.

    python -m benchmarks.render --gaussians 50000 --size 512 [--backend cpu|gsplat] [--frames 30]
    python -m benchmarks.render --table        # sizes 256/512 x 20k/50k/100k Gaussians
    python -m benchmarks.render --backend gsplat --gaussians 50000,100000,500000 --size 512,1024 [--raster-only]

Renders one warm-up frame (its time is `first_call_s`: in a fresh process that includes loading
numba's cached kernels, or compiling them when no cache exists), then K frames with the yaw
stepping by 0.01 rad. Prints one JSON line last.

Comma-separated --gaussians / --size measure every combination (a "rows" list, as --table). Each frame
times render() end to end: SH colours on the host, upload, rasterize, image back as numpy. With
--raster-only (gsplat only) each row also times gsplat.rasterization alone on tensors already on the GPU
(`raster_fps_median`): the kernel's speed without the host round trip.
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


def bench_raster_only(n: int, size: int, frames: int, seed: int = 0) -> dict:
    """gsplat.rasterization alone: Gaussians, colours and cameras on the GPU before timing, the same
    arguments as model/core/_raster_gsplat.py; each frame synchronised."""
    import torch
    from gsplat import rasterization

    from benchmarks.scenes import head_camera, head_scene
    from model.core._raster_cpu import EPS2D, NEAR_PLANE
    if not torch.cuda.is_available():
        raise RuntimeError("--raster-only needs a CUDA GPU and none is available")
    g = head_scene(n, seed)
    cams = [head_camera(size, yaw=0.01 * k) for k in range(frames + 1)]
    dev = torch.device("cuda")
    t = lambda a: torch.as_tensor(np.ascontiguousarray(a, dtype=np.float32), device=dev)  # noqa: E731
    K = np.array(cams[0].K, dtype=np.float64)
    K[:2, 2] += 0.5  # gsplat's pixel centres are at +0.5 (as the backend)
    args = dict(means=t(g.means), quats=t(g.quats), scales=t(g.scales), opacities=t(g.opacities),
                colors=t(g.colors(cams[0].position)), Ks=t(K)[None], width=size, height=size,
                near_plane=NEAR_PLANE, eps2d=EPS2D, sh_degree=None, packed=False, backgrounds=None,
                render_mode="RGB+ED", rasterize_mode="classic")
    views = [t(c.world_to_cam)[None] for c in cams]
    times = []
    with torch.no_grad():
        rasterization(viewmats=views[0], **args)  # warm-up
        torch.cuda.synchronize()
        for v in views[1:]:
            t0 = time.perf_counter()
            rasterization(viewmats=v, **args)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    ms = float(np.median(times)) * 1e3
    return {"raster_fps_median": round(1e3 / ms, 2), "raster_ms_median": round(ms, 3)}


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
    ap.add_argument("--gaussians", type=_ints, default=[50000], help="count, or comma-separated counts")
    ap.add_argument("--size", type=_ints, default=[512], help="image side in px, or comma-separated sides")
    ap.add_argument("--backend", choices=["auto", "cpu", "gsplat"], default="auto")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--table", action="store_true", help="sizes 256/512 x 20k/50k/100k Gaussians")
    ap.add_argument("--raster-only", action="store_true",
                    help="gsplat: also time the rasterizer alone on GPU-resident tensors")
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


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or comma-separated integers, got {text!r}") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _run(args, backend: str) -> dict:
    if args.raster_only and backend != "gsplat":
        raise RuntimeError("--raster-only times gsplat's rasterizer: use it with --backend gsplat")
    grid = len(args.gaussians) > 1 or len(args.size) > 1
    if args.table or grid:
        rows = []
        sizes, counts = ((256, 512), (20000, 50000, 100000)) if args.table else (args.size, args.gaussians)
        for size in sizes:
            for n in counts:
                row = bench(n, size, backend, args.frames)
                if args.raster_only:
                    row.update(bench_raster_only(n, size, args.frames))
                rows.append(row)
                print(f"{backend:6s} {size:4d}px {n:7d} G: {row['fps_median']:7.1f} fps  "
                      f"median {row['ms_median']:6.1f} ms  p90 {row['ms_p90']:6.1f} ms", file=sys.stderr)
        result = {"backend": backend, "threads": rows[0]["threads"], "cpu_count": os.cpu_count(),
                  "first_call_s": rows[0]["first_call_s"], "rows": rows}
    else:
        result = bench(args.gaussians[0], args.size[0], backend, args.frames)
        if args.raster_only:
            result.update(bench_raster_only(args.gaussians[0], args.size[0], args.frames))
        result["cpu_count"] = os.cpu_count()
    return result


if __name__ == "__main__":
    raise SystemExit(main())
