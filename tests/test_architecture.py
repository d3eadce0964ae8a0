"""The layer contracts (.importlinter, checked by import-linter's `lint-imports` in `make test`) hold on
this tree, and each kind of contract does catch a violation planted in a scratch copy of the tree."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("model", "baselines", "evaluation")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason=f"import-linter is not installed ({LINT} missing; "
                                                          "`make test` installs it)")


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--config", str(root / ".importlinter"), "--no-cache"], cwd=root,
                          capture_output=True, text=True, timeout=120)


def test_the_tree_keeps_every_contract():
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


@pytest.mark.parametrize("module, line, contract", [
    ("model/core/camera.py", "import gradio", "gradio is imported by app.py only"),
    ("model/head/rig.py", "import torch", "model knows no UI, no metrics, no torch"),
    ("model/head/template.py", "from model.ours import binding", "model: our method"),
    ("model/core/gaussians.py", "from model.head import template", "model: our method"),
    ("baselines/common.py", "from evaluation import metrics", "evaluation -> baselines -> model"),
    ("evaluation/results.py", "from evaluation import leaderboard", "no import cycle"),
    ("evaluation/protocols/jobs.py", "from model.ours import avatar", "evaluation reaches methods"),
])
def test_a_planted_violation_breaks_its_contract(tmp_path, module, line, contract):
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path)
    target = tmp_path / module
    target.write_text(f"{line}  # planted by the test\n" + target.read_text())
    out = _lint(tmp_path)
    assert out.returncode != 0, out.stdout
    assert contract in out.stdout.partition("Broken contracts")[2], out.stdout
