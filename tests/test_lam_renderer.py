"""Our LAM package in LAM's own web renderer (npm gaussian-splat-renderer-for-lam, pinned in web/'s
devDependencies), in headless chromium (software WebGL): the exported zip loads, the head draws, the
renderer's frames advance while an ARKit sequence plays, and the mouth moves with jawOpen. The same page
runs LAM's own package (../shared/fixtures/lam/p2-1.zip, when present) to show the harness is right.

The harness is web/test/lam/ (bundled here by `node test/lam/build.mjs` into web/dist/, git-ignored); a
python http.server on 127.0.0.1 serves it with the zip and the sequence. LAM's camera is kept (its position
and pitch); only its field of view is narrowed so that the head fills a small 256 x 256 canvas. Screenshots
go to tests/artifacts/lam_renderer_*.png (git-ignored). Skipped when chromium is not installed."""
from __future__ import annotations

import base64
import functools
import http.server
import io
import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.head.landmarks import LIPS_OUTER_LOWER, LIPS_OUTER_UPPER, detect_landmarks
from tests.helpers import ARTIFACTS, SHARED_FIXTURES, check_figure, needs_chromium, node, shared_fixture
from web import CHROMIUM
from web import CHROMIUM_FLAGS as FLAGS

WEB = Path(__file__).resolve().parents[1] / "web"
SIZE = 256  # software WebGL draws LAM's 30k splats at ~1 frame per second at this size
FOV = 22  # degrees (LAM's own camera has 50: the head would be ~70 px wide)

pytestmark = needs_chromium()


def _sequence() -> dict:
    """LAM's recorded ARKit performance when ../shared has it, else a synthetic one in its format:
    jawOpen ramping 0 -> 1 -> 0 over 2 s at 30 fps, every other weight 0."""
    recorded = SHARED_FIXTURES / "lam" / "test_expression_1s.json"
    if recorded.is_file():
        return json.loads(recorded.read_text())
    from model.head import rig
    names = list(rig.ARKIT_NAMES)
    frames = []
    for i in range(60):
        w = [0.0] * len(names)
        w[names.index("jawOpen")] = 1.0 - abs(i - 30) / 30
        frames.append({"weights": w, "time": i / 30})
    return {"names": names, "frames": frames}


@pytest.fixture(scope="module")
def served(tmp_path_factory, ours_astronaut):
    """(base URL, sequence, served folder): the harness, our exported zip, LAM's zip (when present) and
    the sequence on a local HTTP server."""
    import web
    from model.ours.lam_export import export_lam_package
    web.build()  # installs the pinned npm packages (LAM's renderer among them) when they are not
    out = node("test/lam/build.mjs", timeout=120)
    assert out.returncode == 0, f"the harness did not build:\n{out.stdout}\n{out.stderr}"
    root = tmp_path_factory.mktemp("lam_site")
    for name in ("lam-check.html", "lam-check.js"):
        shutil.copy(WEB / "dist" / name, root / name)
    export_lam_package(ours_astronaut, root / "astronaut.zip")
    lam_zip = SHARED_FIXTURES / "lam" / "p2-1.zip"
    if lam_zip.is_file():
        shutil.copy(lam_zip, root / "p2-1.zip")  # a temp copy, for the server only
    seq = _sequence()
    (root / "seq.json").write_text(json.dumps(seq))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seq, root
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield b
        b.close()


def _open(browser, base: str, zip_name: str):
    page = browser.new_page(viewport={"width": SIZE, "height": SIZE}, device_scale_factor=1)
    page.console, page.timings = [], []
    page.on("console", lambda m: page.console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    t0 = time.perf_counter()
    page.goto(f"{base}/lam-check.html?zip={zip_name}&seq=seq.json&fov={FOV}")
    page.wait_for_function("() => window.lamCheck && (window.lamCheck.ready || window.lamCheck.error)",
                           timeout=60_000)
    page.load_s = time.perf_counter() - t0
    error = page.evaluate("() => window.lamCheck.error")
    assert error is None, f"LAM's renderer did not load {zip_name}: {error}\nconsole: {page.console[-10:]}"
    return page


def _snapshot(page, weights: dict | None = None, frame: int | None = None) -> np.ndarray:
    """The canvas (RGB float, 0..255) after a few frames drawn with these weights or this sequence frame."""
    if frame is not None:
        page.evaluate("(i) => window.lamCheck.seek(i)", frame)
    else:
        page.evaluate("(w) => window.lamCheck.setWeights(w)", weights or {})
    t0 = time.perf_counter()
    page.evaluate("() => window.lamCheck.settle(2)")  # the frame asked next draws the change; one more to be sure
    t1 = time.perf_counter()
    url = page.evaluate("() => window.lamCheck.snapshot()")  # a page screenshot takes ~7 s in software WebGL
    page.timings.append((round(t1 - t0, 2), round(time.perf_counter() - t1, 2)))
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")).astype(np.float32)


def _foreground(img: np.ndarray) -> np.ndarray:
    return (255 - img).max(-1) > 12  # LAM's clear colour is white


def _mouth_box(img: np.ndarray) -> tuple[slice, slice]:
    """Rows and columns of the mouth and the chin below it (what jawOpen moves): from mediapipe's outer lip
    points on the neutral frame, a mouth width below the lips and half of one either side."""
    xy = detect_landmarks(img.astype(np.uint8), min_face_px=32).xy[list(LIPS_OUTER_UPPER + LIPS_OUTER_LOWER)]
    (x0, y0), (x1, y1) = xy.min(0), xy.max(0)
    w = x1 - x0
    return slice(max(int(y0 - 0.25 * w), 0), int(y1 + w)), slice(max(int(x0 - 0.5 * w), 0), int(x1 + 0.5 * w))


def _check_page(page, seq: dict, label: str, expected_splats: int, expected_names: set) -> dict:
    stats = {"load_s": round(page.load_s, 2)}
    assert page.evaluate("() => window.lamCheck.splats") == expected_splats
    names = set(page.evaluate("() => window.lamCheck.names"))
    assert names == expected_names, f"{label}: morph targets seen by LAM's renderer differ: {names ^ expected_names}"

    # frames advance while the sequence plays, and the renderer walks through it
    page.evaluate("() => window.lamCheck.play()")
    f0, i0, q0 = page.evaluate("() => [window.lamCheck.frames, window.lamCheck.index, window.lamCheck.headBone()]")
    t0 = time.perf_counter()
    page.wait_for_function("(f) => window.lamCheck.frames >= f + 3", arg=f0, timeout=30_000)
    try:  # the index is wall-clock time modulo the sequence: a slow frame can land on the same index
        page.wait_for_function("(i) => window.lamCheck.index !== i", arg=i0, timeout=30_000)
    except Exception:
        raise AssertionError(f"{label}: the sequence did not advance from frame {i0} in 30 s") from None
    f1, i1, q1 = page.evaluate("() => [window.lamCheck.frames, window.lamCheck.index, window.lamCheck.headBone()]")
    stats["fps_playing"] = round((f1 - f0) / (time.perf_counter() - t0), 2)
    stats["head_bone_moved"] = bool(q0 and q1 and np.abs(np.subtract(q0, q1)).max() > 1e-6)
    assert stats["head_bone_moved"], f"{label}: LAM's body clips (animation.glb) did not move the head bone"

    # from here on the body clips hold still, so that only the ARKit weights change the picture
    page.evaluate("() => window.lamCheck.body(false)")

    # the head draws: a solid share of the canvas
    jaw = np.array([f["weights"][seq["names"].index("jawOpen")] for f in seq["frames"]])
    open_i = int(jaw.argmax())
    neutral = _snapshot(page, {})
    stats["foreground"] = round(float(_foreground(neutral).mean()), 3)
    check_figure("lam_renderer_figures", f"{label}_foreground", stats["foreground"], ">", 0.08,
                 f"{label}: the head does not draw")

    # jawOpen 0 -> 1: pixels change at the mouth, and mostly there
    opened = _snapshot(page, {"jawOpen": 1.0})
    rows, cols = _mouth_box(neutral)
    changed = np.abs(opened - neutral).mean(-1) > 20
    box = np.zeros_like(changed)
    box[rows, cols] = True
    diff = np.repeat(np.clip(changed * 255.0 + box * 60.0, 0, 255)[..., None], 3, -1)  # changed: white; box: grey
    Image.fromarray(np.concatenate([neutral, opened, diff], 1).astype(np.uint8)).save(
        ARTIFACTS / f"lam_renderer_{label}_jaw.png")
    stats["jaw_changed_in_mouth_box"] = round(float(changed[rows, cols].mean()), 3)
    stats["jaw_change_share_in_mouth_box"] = round(float(changed[rows, cols].sum() / max(changed.sum(), 1)), 3)
    check_figure("lam_renderer_figures", f"{label}_jaw_changed_in_mouth_box", stats["jaw_changed_in_mouth_box"], ">",
                 0.1, f"{label}: jawOpen = 1 did not change the mouth")
    check_figure("lam_renderer_figures", f"{label}_jaw_change_share_in_mouth_box",
                 stats["jaw_change_share_in_mouth_box"], ">", 0.5, f"{label}: what jawOpen changed is not at the mouth")

    # the sequence's own frame with the widest jawOpen against all weights 0
    wide = _snapshot(page, frame=open_i)
    seq_changed = np.abs(wide - neutral).mean(-1) > 20
    stats["sequence_frame"] = [open_i, round(float(jaw[open_i]), 3)]
    stats["sequence_changed_in_mouth_box"] = round(float(seq_changed[rows, cols].mean()), 3)
    stats["snapshot_s"] = page.timings
    check_figure("lam_renderer_figures", f"{label}_sequence_changed_in_mouth_box",
                 stats["sequence_changed_in_mouth_box"], ">", 0.05, f"{label}: the sequence's open-mouth frame looks neutral")

    row = np.concatenate([neutral, opened, wide], 1).astype(np.uint8)
    Image.fromarray(row).save(ARTIFACTS / f"lam_renderer_{label}.png")
    return stats


def test_our_exported_package_plays_in_lams_renderer(served, browser):
    from baselines.lam import read_package
    from model.head import rig
    base, seq, root = served
    t0 = time.perf_counter()
    page = _open(browser, base, "astronaut.zip")
    t_open = time.perf_counter() - t0
    stats = _check_page(page, seq, "ours", len(read_package(root / "astronaut.zip")), set(rig.ARKIT_NAMES))
    stats["total_s"], stats["open_s"] = round(time.perf_counter() - t0, 1), round(t_open, 1)
    (ARTIFACTS / "lam_renderer_ours.json").write_text(json.dumps(stats, indent=1))
    page.close()


def test_lams_own_package_plays_in_the_same_harness(served, browser):
    path = shared_fixture("lam", "p2-1.zip")
    from baselines.lam import read_package
    base, seq, _ = served
    t0 = time.perf_counter()
    page = _open(browser, base, "p2-1.zip")
    stats = _check_page(page, seq, "lam_p2-1", len(read_package(path)), set(read_package(path).targets))
    stats["total_s"] = round(time.perf_counter() - t0, 1)
    (ARTIFACTS / "lam_renderer_lam_p2-1.json").write_text(json.dumps(stats, indent=1))
    page.close()

