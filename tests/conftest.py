"""Fixtures shared across test files (pytest loads this module itself)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ours_astronaut():
    """Our method's avatar of scikit-image's astronaut (NASA, public domain), built once per test run."""
    from skimage import data

    from model.ours.avatar import HeadSplat
    return HeadSplat().reconstruct(data.astronaut())


@pytest.fixture(scope="session")
def app_url():
    """The Space served on a free loopback port for the browser tests (one server for the run)."""
    import app
    with app.serving() as (_, url):
        yield url
