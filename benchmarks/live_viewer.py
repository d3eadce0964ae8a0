"""The live viewer in headless Chromium (software WebGL) against the server, on the astronaut portrait.

    python -m benchmarks.live_viewer [--frames 30] [--size 256]

- fidelity: for the app's 8 presets and `--frames` frames sampled from the recorded ARKit performance
  (../shared/fixtures/lam/test_expression_1s.json; skipped with a note when absent), the Gaussians
  the viewer holds in Spark after re-posing (read back with Spark's own unpacker, so float16 centres,
  8-bit log scales and 8-bit rotations included) against the server's exact pose: centre error (mm),
  and PSNR of the server's renderer drawing the viewer's Gaussians vs drawing its own, at size² px;
- speed: controls -> re-posed splats in the page (viewer.stats().lastUpdateMs: our re-posing + writing
  Spark's packed array), median of 40 updates; upload of the photo -> first live frame drawn;
- consecutive uploads (`--uploads`, ≥ 5 different real portraits in one page, as a visitor trying several
  photos): upload -> first live frame of the new person (median, max), where the time goes (the viewer's
  timeline: announced, pack URL in the page, fetched, decoded, handed to Spark, first frame drawn), and
  the stale-frame check: no visible frame of the previous person once the new upload is announced (each
  animation frame is watched), and the first frame drawn is nearer the server's render of the new person
  than of the previous one;
- network: requests the page makes while the rig sliders move (should be none); pack size.
Prints one JSON line last.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import io
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


# Watches every animation frame of the page from an upload's start: a frame is stale when the canvas is
# visible while it still holds the previous avatar (stats().source unchanged since the upload began).
WATCH = f"""(prev) => {{
  const v = {V}, canvas = document.querySelector('#live-viewer canvas');
  const w = window.__hsWatch = {{ frames: 0, stale: 0, done: false }};
  const step = () => {{
    if (w.done) return;
    const s = v.stats(), visible = canvas && canvas.style.visibility !== 'hidden';
    w.frames += 1;
    if (visible && w.announced && s.source === prev) w.stale += 1;
    if (s.loading) w.announced = true;
    requestAnimationFrame(step);
  }};
  requestAnimationFrame(step);
}}"""


# the avatar announced after `n` earlier announcements has drawn its first frame
FIRST_FRAME = f"""(n) => {{ const s = {V}.stats();
  return s.announced > n && !s.loading && s.timeline.drawn !== undefined; }}"""


def _portraits(n: int) -> list[tuple[str, np.ndarray]]:
    """n different real portraits: the bundled ones but the astronaut (shown before), then the group photo's."""
    from evaluation.datasets import portraits_bundled, portraits_group
    out = []
    for ds in (portraits_bundled(), portraits_group()):
        out += [(f"{ds.id}/{sid}", ds.subject(sid).image) for sid in ds.subject_ids if sid != "astronaut"]
    if len(out) < n:
        raise SystemExit(f"only {len(out)} portraits available, --uploads {n} asked")
    return out[:n]


def _server_clock(app) -> list[dict]:
    """Timestamps (ms since 1970, as the page's epochMs) of each reconstruct request in the app running in
    this process: handler entered, avatar built, outputs written (.ply, .splat, live pack, render)."""
    log: list[dict] = []
    upload_path, created = app._upload_path, app._created

    def entered(value):
        log.append({"handler": time.time() * 1000})
        return upload_path(value)

    def written(session, avatar, *rest):
        log[-1]["built"] = time.time() * 1000
        out = created(session, avatar, *rest)
        log[-1]["written"] = time.time() * 1000
        return out
    app._upload_path, app._created = entered, written
    return log


def consecutive_uploads(page, portraits: list[tuple[str, np.ndarray]], tmp: Path, shown=None,
                        server_log: list | None = None) -> dict:
    """Uploads each portrait in turn in one page (`shown`: the avatar the page shows before; `server_log`:
    from _server_clock); see the module docstring."""
    from PIL import Image

    import app
    from model.core.camera import framing_camera
    walls, stages, stale, nearer, per = [], [], 0, 0, []
    previous = shown  # the avatar shown before this upload
    for i, (name, image) in enumerate(portraits):
        photo = tmp / f"upload{i}.png"
        Image.fromarray(image).save(photo)
        prev_src, announced = page.evaluate(f"() => [{V}.stats().source, {V}.stats().announced]")
        page.evaluate(WATCH, prev_src)
        t0, t0_epoch = time.perf_counter(), time.time() * 1000
        page.locator("#photo input[type=file]").set_input_files(str(photo))
        page.wait_for_function(FIRST_FRAME, arg=announced, timeout=120_000)
        wall = time.perf_counter() - t0
        watch = page.evaluate("() => { window.__hsWatch.done = true; return window.__hsWatch; }")
        snap = page.evaluate(f"() => {V}.snapshot()")
        tl = page.evaluate(f"() => {V}.stats().timeline")
        tl["upload"] = round(t0_epoch - tl["epochMs"])  # negative: before the page announced it
        if server_log:
            for k, v in server_log[-1].items():
                tl["server_" + k] = round(v - tl["epochMs"])
        walls.append(wall)
        stale += watch["stale"]
        stages.append(tl)
        # the first frame drawn against the server's renders of the new and the previous person
        drawn = np.asarray(Image.open(io.BytesIO(base64.b64decode(snap.split(",")[1]))).convert("RGB"))
        avatar = app.load_method("ours").reconstruct(image)
        def server(a):
            cam = framing_camera(a.head_center, a.head_radius, 0.0, 0.0, drawn.shape[0])
            return (a.render(cam, background=(1.0, 1.0, 1.0)).rgb * 255).astype(np.float32)
        d_new = float(np.abs(drawn - server(avatar)).mean())
        d_old = float(np.abs(drawn - server(previous)).mean()) if previous is not None else None
        nearer += d_old is None or d_new < d_old
        per.append({"portrait": name, "first_frame_s": round(wall, 2), "timeline_ms": tl,
                    "watched_frames": watch["frames"], "stale_frames": watch["stale"],
                    "mean_abs_diff_new": round(d_new, 1), "mean_abs_diff_previous": d_old and round(d_old, 1)})
        previous = avatar

    def stage_median(a: str, b: str) -> float:
        return round(statistics.median(t[b] - t[a] for t in stages if a in t and b in t), 0)
    return {"uploads": len(portraits), "uploads_first_frame_s_median": round(statistics.median(walls), 2),
            "uploads_first_frame_s_max": round(max(walls), 2), "stale_frames": stale, "first_frames_nearer_new": nearer,
            "uploads_stage_ms_median": {"upload (file sent -> announced)": stage_median("upload", "pending"),
                                        "queue (announced -> handler)": stage_median("pending", "server_handler"),
                                        "reconstruct": stage_median("server_handler", "server_built"),
                                        "exports (.ply, .splat, pack, render)": stage_median("server_built",
                                                                                             "server_written"),
                                        "to the page (written -> load)": stage_median("server_written", "load"),
                                        "fetch": stage_median("load", "fetched"),
                                        "decode": stage_median("fetched", "decoded"),
                                        "hand to spark": stage_median("decoded", "handed"),
                                        "sort and first draw": stage_median("handed", "drawn")},
            "uploads_detail": per}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30, help="ARKit frames sampled from the recorded performance")
    ap.add_argument("--size", type=int, default=256, help="render size for the PSNR, pixels")
    ap.add_argument("--uploads", type=int, default=6, help="consecutive uploads of different portraits (0: none)")
    args = ap.parse_args(argv)

    from PIL import Image
    from playwright.sync_api import sync_playwright
    from skimage import data

    import app
    from evaluation.metrics import psnr
    from model.core.camera import framing_camera
    from model.core.gaussians import Gaussians
    from model.head import rig
    from tests.helpers import SHARED_FIXTURES
    from web import CHROMIUM, CHROMIUM_FLAGS

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
    server_log = _server_clock(app)
    server = contextlib.ExitStack()
    _, url = server.enter_context(app.serving(warm=False))
    out: dict = {"benchmark": "live_viewer", "gaussians": len(avatar.gaussians()), "poses": len(poses)}
    try:
        with tempfile.TemporaryDirectory() as d, sync_playwright() as p:
            photo = Path(d) / "astronaut.png"
            Image.fromarray(data.astronaut()).save(photo)
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url)
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
                exact = avatar.gaussians(c or None)
                e = 1000 * np.linalg.norm(mine.means - exact.means, axis=1)
                errs.append(float(e.mean()))
                if e.max() > worst[1]:
                    worst = (name, float(e.max()))
                cam = framing_camera(avatar.head_center, avatar.head_radius, 0.0, 0.0, args.size)
                from model.core.render import render
                a = render(mine, cam, background=(1.0, 1.0, 1.0)).rgb
                b = render(exact, cam, background=(1.0, 1.0, 1.0)).rgb
                psnrs.append(psnr(a.astype(np.float64), b.astype(np.float64)))
            out["centre_error_mm_mean"] = round(float(np.mean(errs)), 4)
            out["centre_error_mm_max"] = round(worst[1], 4)
            out["centre_error_worst_pose"] = worst[0]
            out["render_psnr_db_min"] = round(float(np.min(psnrs)), 2)
            out["render_psnr_db_median"] = round(float(np.median(psnrs)), 2)
            out["psnr_method"] = (f"server renderer at {args.size}x{args.size}, frontal framing camera: the viewer's "
                                  "Gaussians read back from Spark vs the server's own pose")
            # last: the page then shows other people than the astronaut
            if args.uploads:
                page.evaluate(f"() => {V}.resetControls({{}})")
                out.update(consecutive_uploads(page, _portraits(args.uploads), Path(d), shown=avatar,
                                               server_log=server_log))
            browser.close()
    finally:
        server.close()
    out["targets"] = {"centre_error_mm_mean<=0.5": out["centre_error_mm_mean"] <= 0.5,
                      "render_psnr_db_min>=30": out["render_psnr_db_min"] >= 30,
                      "update_ms_median<=16": out["update_ms_median"] <= 16,
                      "upload_to_first_live_frame_s<=2.5": out["upload_to_first_live_frame_s"] <= 2.5,
                      **({"uploads_first_frame_s_median<=2.5": out["uploads_first_frame_s_median"] <= 2.5,
                          "uploads_first_frame_s_max<=4": out["uploads_first_frame_s_max"] <= 4,
                          "stale_frames==0": out["stale_frames"] == 0,
                          "first_frames_show_the_new_person": out["first_frames_nearer_new"] == args.uploads}
                         if args.uploads else {}),
                      "requests_while_sliders_move==0": out["requests_while_sliders_move"] == 0}
    if notes:
        out["notes"] = notes
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
