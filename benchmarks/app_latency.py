"""Latency of the Space as visitors see it: the app launched on 127.0.0.1 and driven with gradio_client.

    python -m benchmarks.app_latency [--clients 10] [--renders 5] [--method ours]

1. server compute: render_view at 512² (neutral pose, and with a rig control moved) called in-process;
2. one visitor: upload -> reconstruct -> outputs downloaded (the 3D viewer's .splat included), then
   slider renders one after another;
3. --clients visitors at once, each: upload -> reconstruct -> --renders slider renders; all must succeed.
Note: gradio_client polls its message queue every 50 ms, so its round trips carry up to ~50-100 ms that
a browser (pushed server-sent events) does not; tests/test_browser.py records the browser's view.
Prints one JSON line last.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path


def _stats(xs: list[float], scale: float = 1.0, nd: int = 1) -> dict:
    xs = sorted(x * scale for x in xs)
    if not xs:
        return {"n": 0}
    p90 = xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]
    return {"n": len(xs), "median": round(statistics.median(xs), nd), "p90": round(p90, nd),
            "worst": round(xs[-1], nd)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--renders", type=int, default=5)
    ap.add_argument("--method", default="ours")
    ap.add_argument("--repeats", type=int, default=10, help="sequential slider renders of the single visitor")
    args = ap.parse_args(argv)

    from gradio_client import Client, handle_file
    from PIL import Image
    from skimage import data

    import app
    from model.core.render import available_backends
    from model.head.rig import CONTROLS

    load_before = os.getloadavg()
    warm_s = app.warm_up(args.method)
    tmp = Path(tempfile.mkdtemp(prefix="app-latency-"))
    photo = tmp / "astronaut.png"
    Image.fromarray(data.astronaut()).save(photo)

    # 1. server compute only
    avatar = app.load_method(args.method).reconstruct(data.astronaut())
    neutral, moved = [], []
    for i in range(args.repeats):
        t = time.perf_counter()
        app.render_view(avatar, 5.0 * i, 0.0)
        neutral.append(time.perf_counter() - t)
        if avatar.animatable:
            t = time.perf_counter()
            app.render_view(avatar, 0.0, 0.0, {"jawOpen": 0.1 * (i % 10)} if i % 10 else {"jawOpen": 0.05})
            moved.append(time.perf_counter() - t)

    server = contextlib.ExitStack()
    _, url = server.enter_context(app.serving(warm=False))  # warmed up above
    neutral_values = [CONTROLS[n].neutral for n in CONTROLS]

    def visit_once(folder: Path, n_views: int, yaw_step: float, pitch: float) -> tuple[float, list[float]]:
        """One visitor: upload + reconstruct, then n_views slider renders -> (seconds, [seconds])."""
        cl = Client(url, verbose=False, download_files=str(folder))
        t0 = time.perf_counter()
        cl.predict(handle_file(photo), args.method, api_name="/reconstruct")
        r = time.perf_counter() - t0
        vs = []
        for j in range(n_views):
            t1 = time.perf_counter()
            out = cl.predict(yaw_step * (j + 1), pitch, *neutral_values, api_name="/view")
            vs.append(time.perf_counter() - t1)
            if not (isinstance(out, str) and Path(out).is_file()):
                raise RuntimeError(f"render {j} returned {out!r}")
        return r, vs

    try:
        # 2. one visitor
        single_reconstruct, single_views = visit_once(tmp / "single", args.repeats, 10.0, 0.0)

        # 3. concurrent visitors
        rec, views, errors = [], [], []
        lock = threading.Lock()

        def visit(k: int):
            try:
                r, vs = visit_once(tmp / f"c{k}", args.renders, 15.0, 5.0)
                with lock:
                    rec.append(r)
                    views.extend(vs)
            except Exception as e:  # reported, not raised: every visitor's outcome is counted
                with lock:
                    errors.append(f"client {k}: {type(e).__name__}: {e}")

        t = time.perf_counter()
        threads = [threading.Thread(target=visit, args=(k,)) for k in range(args.clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t
    finally:
        server.close()

    out = {
        "benchmark": "app_latency", "method": args.method, "backend": available_backends()[0],
        "cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before], "warm_up_s": round(warm_s, 2),
        "server_render_ms_512": {"neutral": _stats(neutral, 1000), "rig_moved": _stats(moved, 1000)},
        "single_client": {"reconstruct_s": round(single_reconstruct, 3),
                          "view_roundtrip_ms": _stats(single_views, 1000)},
        "concurrent": {"clients": args.clients, "renders_each": args.renders, "succeeded": len(rec),
                       "errors": errors, "wall_s": round(wall, 2), "reconstruct_s": _stats(rec, 1, 2),
                       "view_roundtrip_ms": _stats(views, 1000)},
        "targets": {"photo_to_3d_view_s": 3.0, "slider_to_frame_ms": 150},
        "note": "round trips via gradio_client, which polls every 50 ms; see tests/artifacts/browser_timings.json",
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
