"""The live viewer in headless Chromium (software WebGL) against the server, on the astronaut portrait.

    python -m benchmarks.live_viewer [--frames 30] [--size 256]

- fidelity: for the app's 8 presets and `--frames` frames sampled from the recorded ARKit performance
  (../shared/fixtures/lam/test_expression_1s.json; skipped with a note when absent), the Gaussians
  the viewer holds in Spark after re-posing (read back with Spark's own unpacker, so float16 centres,
  8-bit log scales and 8-bit rotations included) against the server's exact pose: centre error (mm),
  and PSNR of the server's renderer drawing the viewer's Gaussians vs drawing its own, at size² px;
- speed: controls -> re-posed splats in the page (viewer.stats().lastUpdateMs: our re-posing + writing
  Spark's packed array), median of 40 updates; upload of the photo -> first live frame drawn;
- network: requests the page makes while the rig sliders move (should be none); pack size.
Prints one JSON line last.
"""
from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

V = "window.headsplat.viewer"
READ = f"""() => {{
  const r = {V}.readSplats();
  const b64 = (a) => {{ const u = new Uint8Array(a.buffer); let s = "";
    for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode.apply(null, u.subarray(i, i + 0x8000));
    return btoa(s); }};
  return {{ centers: b64(r.centers), scales: b64(r.scales), quats: b64(r.quats), rgba: b64(r.rgba) }};
}}"""


def _arr(b64: str, cols: int) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), np.float32).reshape(-1, cols)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30, help="ARKit frames sampled from the recorded performance")
    ap.add_argument("--size", type=int, default=256, help="render size for the PSNR, pixels")
    args = ap.parse_args(argv)

    from PIL import Image
    from playwright.sync_api import sync_playwright
    from skimage import data

    import app
    from evaluation.metrics import psnr
    from model.core.camera import framing_camera
    from model.core.gaussians import Gaussians
    from model.head import rig
    from tests.helpers import CHROMIUM, CHROMIUM_FLAGS, SHARED_FIXTURES, free_port

    avatar = app.load_method("ours").reconstruct(data.astronaut())  # what the server builds for this photo
    poses = [("preset " + k, v) for k, v in app.PRESETS.items()]
    notes = []
    seq_path = SHARED_FIXTURES / "lam" / "test_expression_1s.json"
    if seq_path.is_file():
        seq = json.loads(seq_path.read_text())
        _, controls = rig.read_sequence(seq)
        for i in np.linspace(0, len(controls) - 1, args.frames).round().astype(int):
            poses.append((f"arkit frame {i}", controls[i]))
    else:
        notes.append(f"{seq_path} absent: presets only")

    app.warm_up()
    demo = app.build_app()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **app.launch_kwargs())
    out: dict = {"benchmark": "live_viewer", "gaussians": len(avatar.gaussians()), "poses": len(poses)}
    try:
        with tempfile.TemporaryDirectory() as d, sync_playwright() as p:
            photo = Path(d) / "astronaut.png"
            Image.fromarray(data.astronaut()).save(photo)
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#photo input[type=file]", state="attached", timeout=60_000)
            t0 = time.perf_counter()
            page.locator("#photo input[type=file]").set_input_files(str(photo))
            page.wait_for_function(f"() => {V}.stats().splats > 0 && {V}.stats().frames > 0", timeout=120_000)
            out["upload_to_first_live_frame_s"] = round(time.perf_counter() - t0, 2)
            pack_url = page.evaluate(f"() => {V}.stats().source")
            out["pack_mb"] = round(page.evaluate("async (u) => (await (await fetch(u)).arrayBuffer()).byteLength",
                                                 pack_url) / 1e6, 3)

            # speed of controls -> re-posed splats, in the page
            ms = page.evaluate(f"""() => {{ const v = {V}; const t = [];
                for (let i = 0; i < 40; i++) {{ v.setControls({{jawOpen: (i % 10) / 10, headYaw: 0.02 * (i % 7),
                  mouthSmileLeft: (i % 3) / 3}}); t.push(v.stats().lastUpdateMs); }}
                v.resetControls({{}}); return t; }}""")
            out["update_ms_median"] = round(statistics.median(ms), 2)
            out["update_ms_p90"] = round(float(np.percentile(ms, 90)), 2)

            # network while the sliders move
            page.click("button[role=tab]:has-text('Animate')")
            n = len(requests)
            for name in ("jawOpen", "mouthSmileLeft", "eyeBlinkLeft", "headYaw"):
                for v in ("0.3", "0.6", "0.1"):
                    page.locator(f"#ctl-{name} input[type=range]").fill(v)
            page.wait_for_timeout(500)
            out["requests_while_sliders_move"] = len(requests) - n

            # fidelity
            errs, psnrs, worst = [], [], ("", 0.0)
            for name, c in poses:
                page.evaluate(f"(c) => {V}.resetControls(c)", c)
                r = page.evaluate(READ)
                mine = Gaussians.from_rgb(_arr(r["centers"], 3), _arr(r["quats"], 4), _arr(r["scales"], 3),
                                          _arr(r["rgba"], 4)[:, 3], _arr(r["rgba"], 4)[:, :3])
                server = avatar.gaussians(c or None)
                e = 1000 * np.linalg.norm(mine.means - server.means, axis=1)
                errs.append(float(e.mean()))
                if e.max() > worst[1]:
                    worst = (name, float(e.max()))
                cam = framing_camera(avatar.head_center, avatar.head_radius, 0.0, 0.0, args.size)
                from model.core.render import render
                a = render(mine, cam, background=(1.0, 1.0, 1.0)).rgb
                b = render(server, cam, background=(1.0, 1.0, 1.0)).rgb
                psnrs.append(psnr(a.astype(np.float64), b.astype(np.float64)))
            out["centre_error_mm_mean"] = round(float(np.mean(errs)), 4)
            out["centre_error_mm_max"] = round(worst[1], 4)
            out["centre_error_worst_pose"] = worst[0]
            out["render_psnr_db_min"] = round(float(np.min(psnrs)), 2)
            out["render_psnr_db_median"] = round(float(np.median(psnrs)), 2)
            out["psnr_method"] = (f"server renderer at {args.size}x{args.size}, frontal framing camera: the viewer's "
                                  "Gaussians read back from Spark vs the server's own pose")
            browser.close()
    finally:
        demo.close()
    out["targets"] = {"centre_error_mm_mean<=0.5": out["centre_error_mm_mean"] <= 0.5,
                      "render_psnr_db_min>=30": out["render_psnr_db_min"] >= 30,
                      "update_ms_median<=16": out["update_ms_median"] <= 16,
                      "upload_to_first_live_frame_s<=2.5": out["upload_to_first_live_frame_s"] <= 2.5,
                      "requests_while_sliders_move==0": out["requests_while_sliders_move"] == 0}
    if notes:
        out["notes"] = notes
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
