"""Self-reenactment speed target: one 10 s, 25 fps clip at 256x256 (250 frames), scored for `ours` with the
default sampling (source + every 5th frame, at most 20 targets) on this machine's cores: <= 60 s end to end
(dataset opening, reconstruction, retargeting, rendering, every metric). The clip is SYNTHETIC (the
synthetic set's turning heads, each pose held ~1 s, resized to 256 px): a speed figure, not a quality one.

    python -m benchmarks.reenactment [--method ours] [--seconds 10] [--fps 25] [--size 256]

Prints the run's own lines (frames scored, per-metric means) and one JSON line last."""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    import numpy as np
    from PIL import Image

    from evaluation.__main__ import main as cli
    from evaluation.datasets import load_dataset
    from evaluation.videos import SYNTHETIC_MARKER, write_clip
    p = argparse.ArgumentParser()
    p.add_argument("--method", default="ours")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--size", type=int, default=256)
    a = p.parse_args(argv)
    syn = load_dataset("synthetic")
    frames = syn.subject(syn.subject_ids[0]).frames
    n = int(round(a.seconds * a.fps))
    small = [np.asarray(Image.fromarray(f).resize((a.size, a.size), Image.LANCZOS)) for f in frames]
    clip = [small[min(len(small) - 1, i * len(small) // n)] for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "clips"
        write_clip(clip, d / "synthetic-10s.mp4", fps=a.fps)
        (d / SYNTHETIC_MARKER).write_text("SYNTHETIC speed clip\n")
        t = time.perf_counter()
        rc = cli(["run", "--methods", a.method, "--dataset", f"videos:{d}", "--protocol", "self-reenactment",
                  "--out", str(Path(tmp) / "results"), "--engine", "serial", "--quiet", "--size", str(a.size)])
        wall = time.perf_counter() - t
        r = json.loads(next((Path(tmp) / "results").rglob("synthetic-10s.json")).read_text())
    print(json.dumps({"benchmark": "self-reenactment", "method": a.method, "clip_frames": n, "fps": a.fps,
                      "size": a.size, "frames_scored": r["metrics"].get("frames_scored"), "wall_s": round(wall, 1),
                      "reconstruct_s": round(r["timings"]["reconstruct_s"], 1),
                      "protocol_s": round(r["timings"]["protocol_s"], 1), "target_s": 60, "ok": rc == 0 and wall <= 60}))
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
