"""A real browser on the Space: Debian's chromium (software WebGL) driven by Playwright uploads a photo,
waits for gr.Model3D to draw the splats, and moves the yaw slider. Screenshots and timings go to
tests/artifacts/ (git-ignored). Skipped only when chromium is not installed (`make test` installs it)."""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

import app
from tests.helpers import free_port

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).parent / "artifacts"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium is not installed at /usr/bin/chromium "
                                                              "(apt-get install -y chromium; `make test` does it)")


@pytest.fixture(scope="module")
def url():
    app.warm_up()
    demo = app.build_app()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **app.launch_kwargs())
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def _drawn_fraction(png: bytes) -> float:
    """Fraction of the viewer canvas (below its label strip) that is not the viewer's black background."""
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int32)
    body = img[img.shape[0] // 8:]
    return float((body.sum(-1) > 60).mean())


def test_upload_shows_the_head_in_3d_and_slider_rerenders(url, tmp_path):
    from playwright.sync_api import sync_playwright
    photo = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(photo)
    ARTIFACTS.mkdir(exist_ok=True)
    timings = {}
    with sync_playwright() as p:
        t = time.perf_counter()
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.wait_for_selector("#photo input[type=file]", state="attached", timeout=30_000)
            timings["browser_start_and_page_load_s"] = time.perf_counter() - t
            canvas = page.locator("#viewer canvas")
            t0 = time.perf_counter()
            page.locator("#photo input[type=file]").set_input_files(str(photo))
            page.locator("#rendered img").wait_for(state="attached", timeout=60_000)
            timings["upload_to_server_render_shown_s"] = time.perf_counter() - t0
            canvas.wait_for(timeout=60_000)
            timings["upload_to_viewer_canvas_s"] = time.perf_counter() - t0
            frac, shot = 0.0, b""
            while time.perf_counter() - t0 < 90:  # gsplat.js sorts and draws in software WebGL here
                shot = canvas.screenshot()
                frac = _drawn_fraction(shot)
                if frac > 0.05:
                    break
                time.sleep(0.5)
            timings["upload_to_splats_drawn_s"] = time.perf_counter() - t0
            timings["drawn_fraction"] = frac
            (ARTIFACTS / "browser_viewer.png").write_bytes(shot)
            assert frac > 0.05, f"the 3D viewer shows only background ({frac:.3f} of its pixels drawn)"

            # slider -> new frame. Two clocks: the browser's own network timing (request to the server ->
            # image received), and the whole loop seen from here, which also waits for this software-GL
            # browser to repaint while it keeps drawing the 3D viewer on the same 2 cores as the server.
            joins, images = [], []
            page.on("request", lambda r: joins.append(r) if "queue/join" in r.url else None)
            page.on("requestfinished", lambda r: images.append(r) if r.url.endswith("image.jpeg") else None)
            src = "(sel) => { const i = document.querySelector(sel); return i ? i.src : null; }"
            network_ms, loop_ms = [], []
            for yaw in (45, 90, 135):
                before, n_img = page.evaluate(src, "#rendered img"), len(images)
                t1 = time.perf_counter()
                page.locator("#yaw input[type=range]").fill(str(yaw))
                page.wait_for_function(
                    "([sel, old]) => { const i = document.querySelector(sel); "
                    "return i && i.src !== old && i.complete && i.naturalWidth > 0; }",
                    arg=["#rendered img", before], timeout=30_000)
                loop_ms.append(1000 * (time.perf_counter() - t1))
                img = images[n_img] if len(images) > n_img else None
                if img is not None and joins:
                    join = [j for j in joins if j.timing["startTime"] <= img.timing["startTime"]][-1]
                    end = img.timing["startTime"] + img.timing["responseEnd"]
                    network_ms.append(end - join.timing["startTime"])
            timings["slider_request_to_frame_received_ms"] = network_ms
            timings["slider_move_to_frame_painted_ms"] = loop_ms
            # one page screenshot (each costs seconds while software WebGL keeps drawing the viewer)
            page.screenshot(path=str(ARTIFACTS / "browser_page.png"))
            assert "Renderer backend" in page.locator("#footer-backend").inner_text()
        finally:
            browser.close()
    (ARTIFACTS / "browser_timings.json").write_text(json.dumps(timings, indent=1))
    print(json.dumps(timings))
