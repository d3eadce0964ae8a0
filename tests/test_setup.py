"""Set-up facts the product relies on: no torchvision, Space config agrees with the README."""
import importlib.util
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_torchvision_is_not_installed():
    # it does not import on the CPU torch and makes lpips/torchmetrics download weights (NOTES.md)
    assert importlib.util.find_spec("torchvision") is None
    with pytest.raises(PackageNotFoundError):
        distribution("torchvision")


def test_space_yaml_and_readme_front_matter_agree():
    space = yaml.safe_load((ROOT / "Space.yaml").read_text())
    text = (ROOT / "README.md").read_text()
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---\n")[1])
    assert front == space
    assert space["sdk"] == "gradio" and space["app_file"] == "app.py"
    req = (ROOT / "requirements.txt").read_text()
    assert f"gradio=={space['sdk_version']}" in req
