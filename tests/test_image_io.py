import io

import numpy as np
import pytest
from PIL import Image

from model.core.errors import InputError
from model.core.image_io import MAX_SIDE, load_image, to_float, to_uint8


def _bytes(img: Image.Image, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P", "LA", "I;16"])
def test_every_common_mode_becomes_rgb_uint8(mode):
    img = Image.new("RGB", (80, 90), (200, 100, 50)).convert(mode)
    fmt = "JPEG" if mode == "CMYK" else ("TIFF" if mode == "I;16" else "PNG")
    out = load_image(_bytes(img, fmt))
    assert out.shape == (90, 80, 3) and out.dtype == np.uint8


def test_transparent_pixels_are_composited_on_white():
    img = Image.new("RGBA", (70, 70), (255, 0, 0, 0))
    assert (load_image(_bytes(img)) == 255).all()


def test_huge_images_are_downscaled_and_tiny_ones_refused():
    big = np.zeros((3000, 2000, 3), np.uint8)
    assert max(load_image(big).shape[:2]) == MAX_SIDE
    with pytest.raises(InputError, match="too small"):
        load_image(np.zeros((20, 200, 3), np.uint8))


def test_corrupt_and_missing_files_get_a_clear_error(tmp_path):
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(InputError, match="not a readable image"):
        load_image(bad)
    with pytest.raises(InputError, match="no such image"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(InputError, match="NaN"):
        load_image(np.full((80, 80, 3), np.nan))


def test_float_conversion_round_trips_every_uint8_level():
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, 2)
    f = to_float(levels)
    assert f.dtype == np.float32 and f.min() == 0.0 and f.max() == 1.0
    assert np.array_equal(to_uint8(f), levels)
