"""The docs a newcomer reads: the README's pictures come from the real app (the script that takes them runs
here, on every CI run), and every page, link and path the docs name exists."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from docs import pictures
from tests.helpers import REPO, needs_chromium
from web import write_y4m

DOCS = REPO / "docs"
TOP = {"app", "model", "baselines", "evaluation", "benchmarks", "docs", "web"}  # this project's modules
PAGES = sorted(DOCS.glob("*.md"))
LINK = re.compile(r"\]\(([^)#\s]+)")
# a repository path in backticks: folder/file.ext or folder/ (commands, identifiers and URLs are not)
PATH = re.compile(r"`((?:[\w.-]+/)+(?:[\w.-]+\.(?:py|js|mjs|json|md|npz|tflite|txt|sh|yaml))?)`")
MODULE = re.compile(r"python3? -m ([\w.]+)")  # a command the docs give


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_the_readme_shows_the_pictures_the_script_makes():
    shown = {Path(m).name for m in re.findall(r"!\[[^\]]*\]\((docs/pictures/[^)]+)\)", _text(REPO / "README.md"))}
    assert shown == set(pictures.PICTURES)
    for name in pictures.PICTURES:
        path = DOCS / "pictures" / name
        with Image.open(path) as im:  # committed, a real picture, and small enough for a README
            assert min(im.size) >= 200, (name, im.size)
        assert path.stat().st_size < 600_000, name


def test_every_page_is_linked_and_says_what_it_is_for():
    readme = _text(REPO / "README.md")
    for page in PAGES:
        assert f"(docs/{page.name})" in readme, f"{page.name} is not linked from the README"
        first = _text(page).split("\n\n")[1]
        assert first.startswith("Read this to"), f"{page.name} does not start with what a reader can do with it"


@pytest.mark.parametrize("doc", [REPO / "README.md", *PAGES], ids=lambda p: p.name)
def test_every_link_and_path_the_docs_name_exists(doc):
    text = _text(doc)
    missing = [t for t in LINK.findall(text) if not t.startswith("http") and not (doc.parent / t).exists()]
    missing += [p for p in PATH.findall(text) if not (REPO / p).exists()]
    missing += [m for m in MODULE.findall(text) if m.split(".")[0] in TOP and importlib.util.find_spec(m) is None]
    assert not missing, f"{doc.name} names what is not in the repository: {missing}"


@needs_chromium()
def test_the_picture_script_takes_every_picture_from_the_app(app_url, ours_astronaut, tmp_path):
    """The script end to end on the served app (its committed results feed the leaderboard), the webcam
    playing the astronaut's own avatar at a small size."""
    photo = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(photo)
    webcam = write_y4m(tmp_path / "webcam.y4m", pictures.webcam_clip(ours_astronaut, size=160), pictures.WEBCAM_FPS)
    got = pictures.take(app_url, tmp_path / "out", photo, webcam, viewport=(1000, 760))
    assert got["files"] == list(pictures.PICTURES)
    # what a person sees: a head in each turned view, and its back is not its face
    assert all(0.1 < c < 0.9 for c in got["turn_cover"]), got["turn_cover"]
    turn = np.asarray(Image.open(tmp_path / "out" / "turn.jpg"), np.float32)
    front, _, back = np.array_split(turn, 3, axis=1)
    assert np.abs(front - back).mean() > 10, "the view from behind looks like the view from the front"
    # the mirror picture was taken with the avatar's mouth open, following the webcam's
    assert got["mirror_jaw_open"] > 0.4
    chart = np.asarray(Image.open(tmp_path / "out" / "leaderboard.png").convert("RGB"))
    assert len(np.unique(chart.reshape(-1, 3), axis=0)) > 50, "the leaderboard chart is blank"
