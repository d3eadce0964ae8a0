import json

import numpy as np
import pytest
from PIL import Image

from baselines.external import PredictionFormatError, load_predictions
from model.core.camera import framing_camera


def _write_folder(root, n_views=2, size=32):
    root.mkdir()
    (root / "method.json").write_text(json.dumps(
        {"id": "lam", "name": "LAM", "version": "1", "description": "run elsewhere"}))
    subj = root / "alice"
    subj.mkdir()
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)
    Image.fromarray(photo).save(subj / "input.png")
    views, cams = [], []
    for i in range(n_views):
        cam = framing_camera(np.zeros(3), 0.12, yaw=np.deg2rad(15 * i), size=size)
        cams.append(cam)
        img = np.full((size, size, 4), 255, np.uint8)
        img[..., 0] = 40 * i
        img[..., 3] = 128
        Image.fromarray(img).save(subj / f"v{i}.png")
        np.save(subj / f"v{i}_depth.npy", np.full((size, size), 0.5 + i, np.float32))
        views.append({"id": f"v{i}", "camera": cam.to_dict(), "image": f"v{i}.png", "depth": f"v{i}_depth.npy"})
    (subj / "views.json").write_text(json.dumps({
        "head_center": [0, 0, 0], "head_radius": 0.12, "input_camera": cams[0].to_dict(), "views": views}))
    return photo, cams


def test_external_predictions_render_like_a_method(tmp_path):
    photo, cams = _write_folder(tmp_path / "pred")
    method = load_predictions(tmp_path / "pred")
    assert method.info.id == "lam" and not method.info.animatable
    avatar = method.reconstruct(photo)
    out = avatar.render(cams[1], background=(1, 1, 1))
    assert out.rgb.shape == (32, 32, 3) and np.allclose(out.alpha, 128 / 255)
    # RGBA predictions are re-composited on the background the protocol asks for
    assert out.rgb[0, 0, 0] == pytest.approx(40 / 255 * 128 / 255 + (1 - 128 / 255), abs=1e-5)
    assert np.allclose(out.depth, 1.5) and avatar.provides_depth
    with pytest.raises(PredictionFormatError, match="no prediction for the requested camera"):
        avatar.render(framing_camera(np.zeros(3), 0.12, yaw=1.0, size=32))
    with pytest.raises(PredictionFormatError, match="no predictions for this input photo"):
        method.reconstruct(np.zeros((80, 80, 3), np.uint8))


def _edit_views(root, fn):
    path = root / "alice" / "views.json"
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["views"][0].update(image="../../etc/passwd"), "plain file name"),
    (lambda d: d["views"][0].update(image="missing.png"), "missing"),
    (lambda d: d["views"][0]["camera"].update(width=64), "camera says 64x32"),
    (lambda d: d["views"][1].update(id="v0"), "duplicate view id"),
    (lambda d: d["views"][0].update(camera={"K": 3}), "malformed camera"),
    (lambda d: d.pop("head_radius"), "head_radius"),
    (lambda d: d.update(views=[]), "non-empty list"),
])
def test_malformed_folders_are_rejected_with_the_reason(tmp_path, edit, message):
    _write_folder(tmp_path / "pred")
    _edit_views(tmp_path / "pred", edit)
    with pytest.raises(PredictionFormatError, match=message):
        load_predictions(tmp_path / "pred")


def test_bad_json_and_missing_method_info(tmp_path):
    _write_folder(tmp_path / "pred")
    (tmp_path / "pred" / "alice" / "views.json").write_text("{not json")
    with pytest.raises(PredictionFormatError, match="bad JSON"):
        load_predictions(tmp_path / "pred")
    (tmp_path / "pred" / "method.json").write_text(json.dumps({"id": "x"}))
    with pytest.raises(PredictionFormatError, match="missing or non-string fields"):
        load_predictions(tmp_path / "pred")
