"""Contact sheets of our avatars: every dev portrait turned and animated, one PNG each, to look at.

    python -m benchmarks.contact_sheets [--out sheets] [--size 256] [--method ours]
                                        [--datasets portraits-bundled,portraits-group,portraits-dev]

Rows: rest face, jawOpen 0.6, both smiles at 1, both blinks at 1; columns: yaw 0, 45, 90, 135, 180 degrees
(framing_camera on the head, white background); the first column is the photo. Portraits: the datasets
named (evaluation.datasets.load_dataset; each subject once). What to look for (issue 30): the skull's shape from the side and back, the ears, the
neck joining the bust, teeth and a dark mouth when the jaw opens, lids closing over the eyes. Prints one
JSON line last: the sheets written, reconstruction seconds per portrait, and the portraits with no face.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

YAWS_DEG = (0, 45, 90, 135, 180)
ROWS = {"rest": None, "jaw": {"jawOpen": 0.6}, "smile": {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0},
        "blink": {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}}


def sheet(avatar, size: int, photo: np.ndarray | None = None) -> np.ndarray:
    """uint8 [rows * size, (len(YAWS_DEG) + 1) * size, 3] (the photo [H,W,3] uint8 first, letterboxed on white,
    if given; else len(YAWS_DEG) * size wide)."""
    from model.core.camera import framing_camera
    from model.core.image_io import to_uint8
    rows = []
    first = []
    if photo is not None:
        from PIL import Image
        im = Image.fromarray(photo)
        im.thumbnail((size, size))
        box = np.full((size, size, 3), 255, np.uint8)
        top, left = (size - im.height) // 2, (size - im.width) // 2
        box[top:top + im.height, left:left + im.width] = np.asarray(im)
        first = [box]
    for i, controls in enumerate(ROWS.values()):
        lead = first if i == 0 else [np.full((size, size, 3), 255, np.uint8)] * len(first)
        rows.append(np.concatenate(lead + [
            to_uint8(avatar.render(framing_camera(avatar.head_center, avatar.head_radius * 1.3, np.deg2rad(y), 0.0,
                                                  size), controls, background=(1.0, 1.0, 1.0)).rgb)
            for y in YAWS_DEG], 1))
    return np.concatenate(rows, 0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="sheets")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--method", default="ours")
    ap.add_argument("--datasets", default="portraits-bundled,portraits-group,portraits-dev")
    args = ap.parse_args(argv)
    from PIL import Image

    from baselines.registry import get_method
    from evaluation.datasets import load_dataset
    from model.core.errors import InputError
    method = get_method(args.method)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written, seconds, no_face = [], {}, []
    for ds in (load_dataset(d) for d in args.datasets.split(",")):
        for sid in ds.subject_ids:
            if sid in seconds or sid in no_face:
                continue
            photo = ds.subject(sid).image
            t = time.perf_counter()
            try:
                avatar = method.reconstruct(photo)
            except InputError:
                no_face.append(sid)
                continue
            seconds[sid] = round(time.perf_counter() - t, 3)
            path = out / f"{args.method}_{sid}.png"
            Image.fromarray(sheet(avatar, args.size, photo)).save(path)
            written.append(str(path))
            print(f"{sid}: {path} ({seconds[sid]} s)")
    print(json.dumps({"benchmark": "contact_sheets", "method": args.method, "rows": list(ROWS),
                      "yaws_deg": list(YAWS_DEG), "sheets": written, "reconstruct_s": seconds, "no_face": no_face}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
