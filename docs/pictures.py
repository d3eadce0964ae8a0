"""The README's pictures, taken from the real app in headless Chromium: `python -m docs.pictures`.

Serves the app (the committed results feed its leaderboard), uploads a portrait and writes to
docs/pictures/:
- app.jpg         the Create tab, the avatar in the live view;
- turn.jpg        the live view turned to yaw 0, 90 and 180 degrees;
- mirror.jpg      the Mirror tab: Chromium's fake webcam plays a clip of another avatar opening its mouth,
                  and this one follows;
- leaderboard.png the Leaderboard tab's chart of portraits-dev under sweep-360 (LEADERBOARD).
Ends with one JSON line: the files and the figures that tests/test_docs.py checks (it runs `take` on
every CI run, so a change that breaks a picture cannot pass silently).
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parent / "pictures"
PICTURES = ("app.jpg", "turn.jpg", "mirror.jpg", "leaderboard.png")
TURN_YAWS_DEG = (0, 90, 180)
APP_YAW_DEG = 20  # the app's and the mirror's pictures: turned a little, so that they show a head, not a photo
# the leaderboard picture: this dataset x protocol, whose chart has this metric (the identity at 45°)
LEADERBOARD, LEADERBOARD_METRIC = ("portraits-dev", "sweep-360"), "csim_dlib_yaw45"
V = "window.headsplat.viewer"
M = "window.headsplat.mirror"
WEBCAM_FPS = 10
REST_ATTEMPTS = 8  # a retaken rest face comes at a random point of the clip: relaxed in 5 of its 11.5 s


def webcam_clip(driver, size: int = 240) -> list[np.ndarray]:
    """Frames [size, size*4/3, 3] uint8 of `driver` (an animatable avatar) looking into a webcam: relaxed for
    5 s, the mouth opening over 0.5 s, then open for 6 s (on a busy machine with software WebGL an answer
    can take seconds: a short open mouth falls between two), looped. Chromium plays it from the camera's
    opening, and the mirror takes the visitor's rest face from the stream's first faces: relaxed unless
    they come late, when `take` retakes it."""
    from model.core.camera import framing_camera
    from model.core.image_io import to_uint8
    cam = framing_camera(driver.head_center, driver.head_radius, 0.0, 0.0, size)
    jaw = np.concatenate([np.zeros(5 * WEBCAM_FPS), np.linspace(0, 0.8, WEBCAM_FPS // 2), np.full(6 * WEBCAM_FPS, 0.8)])
    frames, pad = [], size // 6
    for j in jaw:
        face = to_uint8(driver.render(cam, {"jawOpen": float(j)} if j else None, background=(1.0, 1.0, 1.0)).rgb)
        frames.append(np.pad(face, ((0, 0), (pad, pad), (0, 0)), constant_values=255))
    return frames


def _png(data_url: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB")


def _settle(page, timeout_s: float = 90) -> None:
    page.wait_for_function(f"() => {V}.stats().settled", timeout=timeout_s * 1000)


def _shoot(page, locator, path: Path) -> None:
    """A picture of the page's region under `locator`. (Playwright's element screenshot waits for the
    element to be still, which a live view redrawing inside it never is on a slow machine.)"""
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    kind = "png" if path.suffix == ".png" else "jpeg"
    page.screenshot(path=str(path), clip=box, type=kind, **({"quality": 85} if kind == "jpeg" else {}))


def take(url: str, out: Path, photo: Path, webcam: Path, viewport=(1280, 860)) -> dict:
    """Open the app at `url` in headless Chromium (its fake webcam playing the y4m clip `webcam`), make an
    avatar of `photo` and write PICTURES into `out`. Returns {"files": [...], "turn_cover": [per yaw: share of
    the view the head covers], "mirror_jaw_open": the live view's jawOpen just before mirror.jpg was taken}."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    from web import CHROMIUM, CHROMIUM_FLAGS, FAKE_WEBCAM_FLAGS
    out.mkdir(parents=True, exist_ok=True)
    figures: dict = {"files": [], "seconds": {}}
    t0 = time.perf_counter()

    def took(name: str) -> None:
        nonlocal t0
        figures["seconds"][name] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
    flags = CHROMIUM_FLAGS + FAKE_WEBCAM_FLAGS + [f"--use-file-for-fake-video-capture={webcam}"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=flags)
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.goto(url)
            page.wait_for_selector("#photo input[type=file]", state="attached", timeout=90_000)
            page.locator("#photo input[type=file]").set_input_files(str(photo))
            page.wait_for_function(f"() => {V}.stats().splats > 0 && {V}.stats().frames > 0", timeout=120_000)
            page.evaluate(f"() => {V}.setMaxFps(4)")  # software WebGL shares the cores with the server
            took("avatar")

            # the avatar turned: the live view's own frames, on white
            panels, cover = [], []
            for yaw in TURN_YAWS_DEG:
                page.evaluate(f"(y) => {V}.setView(y, 0)", yaw)
                _settle(page)
                img = _png(page.evaluate(f"() => {V}.snapshot()"))
                panels.append(img)
                cover.append(round(float((np.asarray(img).min(-1) < 235).mean()), 3))
            w, h = panels[0].size
            turn = Image.new("RGB", (w * len(panels), h), "white")
            for i, img in enumerate(panels):
                turn.paste(img, (i * w, 0))
            turn.save(out / "turn.jpg", quality=88)
            figures["turn_cover"] = cover
            took("turn")

            # the app as a visitor sees it, turned a little to show it is 3D
            page.evaluate(f"(y) => {V}.setView(y, 0)", APP_YAW_DEG)
            _settle(page)
            page.evaluate("() => window.scrollTo(0, 0)")
            page.screenshot(path=str(out / "app.jpg"), quality=85, type="jpeg")
            took("app")

            # the mirror: the fake webcam's avatar opens its mouth, this one follows
            page.click("button[role=tab]:has-text('Mirror')")
            page.click("#mirror-start")
            for attempt in range(REST_ATTEMPTS):
                try:  # within a loop of the clip, unless the rest face was taken with the mouth open (the
                    # notice line empty too: a slow answer on a busy machine says so, in the picture too)
                    jaw = page.wait_for_function(
                        f"() => {{ const j = {V}.stats().controls.jawOpen || 0; return j > 0.4 && !{M}.stats().notice && j; }}",
                        timeout=40_000).json_value()
                    break
                except PlaywrightTimeout:
                    if attempt == REST_ATTEMPTS - 1:
                        raise
                    page.evaluate(f"() => {M}.retakeRest()")
            _settle(page)  # the picture follows at once (the clip's mouth stays open for 6 s)
            figures["mirror_jaw_open"] = round(float(jaw), 3)
            _shoot(page, page.locator("#mirror-cam").locator("xpath=ancestor::div[contains(@class, 'row')][1]"),
                   out / "mirror.jpg")
            page.click("#mirror-stop")
            figures["mirror_rest_faces_taken"] = attempt + 1
            took("mirror")

            # the leaderboard's chart (plotly, drawn by the page)
            page.click("button[role=tab]:has-text('Leaderboard')")
            page.locator("#lb-group input").click()
            option = page.get_by_role("option")
            for words in LEADERBOARD:
                option = option.filter(has_text=words)
            option.first.click()
            chart = page.locator("#lb-bars")
            page.wait_for_function("(m) => (document.querySelector('#lb-bars .js-plotly-plot') || {}).textContent"
                                   "?.includes(m)", arg=LEADERBOARD_METRIC, timeout=90_000)
            time.sleep(1.0)  # plotly animates its first draw; nothing in its API says when it ends
            _shoot(page, chart, out / "leaderboard.png")
            took("leaderboard")
        finally:
            browser.close()
    figures["files"] = [n for n in PICTURES if (out / n).is_file()]
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    from skimage import data

    import app
    from model.core.image_io import load_image
    from model.ours.avatar import HeadSplat
    t0 = time.perf_counter()
    # the webcam's visitor: Grace Hopper's avatar (public domain, matplotlib's sample data)
    from matplotlib import cbook
    hopper = load_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    with tempfile.TemporaryDirectory() as d, contextlib.ExitStack() as stack:
        from web import write_y4m
        webcam = write_y4m(Path(d) / "webcam.y4m", webcam_clip(HeadSplat().reconstruct(hopper)), WEBCAM_FPS)
        photo = Path(d) / "astronaut.png"
        Image.fromarray(data.astronaut()).save(photo)
        _, url = stack.enter_context(app.serving())
        figures = take(url, args.out, photo, webcam)
    print(json.dumps({"script": "docs.pictures", **figures, "out": str(args.out),
                      "total_seconds": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    main()
