"""Fitting the ICT head model to one photo's mediapipe points: known faces recovered from their own projected
points (identity shape, expression, pose, gaze), a real portrait, and clear errors on bad input."""
import numpy as np
import pytest
import skimage.data

from model.core.errors import InputError
from model.head.fitting import R_FRONT, rotation_from_euler
from model.head.head_model import load_head_model
from model.head.ict_fit import (SYNTHETIC_SHAPES, HeadFit, face_vertex_ids, fit_head_model, random_case,
                                synthetic_landmarks, umeyama)
from model.head.landmarks import Landmarks, detect_landmarks


@pytest.fixture(scope="module")
def model():
    return load_head_model()


@pytest.fixture(scope="module")
def cases(model):
    """Six seeded synthetic faces (identity N(0,1) on all 100 modes, two of jawOpen/smiles/blinks at U(0,1),
    |yaw| <= 45, |pitch| <= 20, |roll| <= 10 degrees), their points + 0.5 px noise, and their fits."""
    rng = np.random.default_rng(30)
    out = []
    for _ in range(6):
        c = random_case(model, rng)
        lm, cam, v = synthetic_landmarks(model, c["identity"], c["expression"], c["pose"], rng=rng)
        out.append((c, lm, cam, v, fit_head_model(lm, model)))
    return out


def _aligned_error_mm(a, b):
    s, R, t = umeyama(a, b)
    return float(np.linalg.norm(s * a @ R.T + t - b, axis=1).mean() * 1000)


def test_synthetic_shape_expression_and_pose(model, cases):
    fv = face_vertex_ids(model)
    errs, maes = [], []
    for c, lm, cam, v, f in cases:
        errs.append(_aligned_error_mm(f.vertices()[fv], v[fv]))
        maes.append(np.mean([abs(f.expression_dict[n] - c["expression"][n]) for n in SYNTHETIC_SHAPES]))
        assert np.rad2deg(np.abs(f.pose - c["pose"])).max() <= 2.0, (f.pose, c["pose"])
        # the camera's rotation is the pose's (fitting.py's convention)
        np.testing.assert_allclose(f.camera.R, R_FRONT @ rotation_from_euler(*f.pose), atol=1e-9)
    assert np.mean(errs) <= 2.0 and max(errs) <= 2.5, errs
    assert np.mean(maes) <= 0.1 and max(maes) <= 0.15, maes


def test_identity_separates_from_expression(model, cases):
    # the neutralised fit matches the true identity's neutral face (the expression is not in the identity)
    fv = face_vertex_ids(model)
    for c, lm, cam, v, f in cases:
        assert _aligned_error_mm(f.vertices(expression=0, gaze=False)[fv], model.vertices(c["identity"])[fv]) <= 2.0
        assert f.identity.shape == (60,) and np.isfinite(f.identity).all()
        assert (f.expression >= 0).all() and (f.expression <= 1).all()
        assert all(f.expression_dict[n] == 0 for n in f.expression_dict if n.startswith("eyeLook"))


def test_result_is_consistent(model, cases):
    c, lm, cam, v, f = cases[0]
    assert isinstance(f, HeadFit)
    # the nme is recomputed from the public pieces; the model-only nme is the corrective's starting point
    uv, z = f.camera.project(model.landmarks(f.vertices()))
    iod = np.linalg.norm(lm.xy[33] - lm.xy[263])
    assert (z > 0).all() and np.isclose(np.linalg.norm(uv - lm.xy, axis=1).mean() / iod, f.nme)
    assert f.nme <= f.nme_model + 1e-9 and f.nme_model < 0.02
    # the posed head seen by the frontal camera is the unposed head seen by the fitted camera
    uv2, _ = f.frontal_camera.project(f.posed_vertices())
    np.testing.assert_allclose(uv2, f.camera.project(f.vertices())[0], atol=1e-6)
    # neutral and fitted shapes differ by the expression deltas alone
    d = f.vertices(gaze=False) - f.vertices(expression=0, gaze=False)
    np.testing.assert_allclose(d, np.tensordot(f.expression, model.expression_basis, 1), atol=1e-6)
    assert f.vertices(expression={"jawOpen": 1.0}).shape == model.neutral.shape
    again = fit_head_model(lm, model)
    assert np.array_equal(again.camera.world_to_cam, f.camera.world_to_cam) and np.array_equal(again.identity, f.identity)


def test_gaze_recovered(model):
    rng = np.random.default_rng(7)
    c = random_case(model, rng, max_yaw_deg=20)
    gaze = np.array([[0.25, -0.12], [0.18, -0.1]])  # [right, left] x (yaw, pitch), radians
    lm, cam, v = synthetic_landmarks(model, c["identity"], c["expression"], c["pose"], gaze=gaze, rng=rng)
    f = fit_head_model(lm, model)
    # within 5 degrees: the iris is seen, the eyeball's centre behind it is the fitted identity's, and 1 mm
    # of error in it (relative to the lids) is 3.6 degrees of gaze at ICT's 16 mm iris radius
    assert np.rad2deg(np.abs(f.gaze - gaze)).max() <= 5.0, np.rad2deg(f.gaze)
    assert (np.sign(f.gaze) == np.sign(gaze)).all()
    still = fit_head_model(synthetic_landmarks(model, c["identity"], c["expression"], c["pose"], rng=rng)[0], model)
    assert np.rad2deg(np.abs(still.gaze)).max() <= 5.0
    # the fitted eyeballs' iris centres land on the detected ones
    uv, _ = f.camera.project(model.landmarks(f.vertices())[[468, 473]])
    assert np.linalg.norm(uv - lm.xy[[468, 473]], axis=1).max() < 1.5


def test_bad_input(model):
    with pytest.raises(InputError):
        fit_head_model(np.full((256, 256, 3), 128, np.uint8), model)
    with pytest.raises(InputError):
        detect_landmarks(np.zeros((256, 256, 3), np.uint8))
    lm = synthetic_landmarks(model, None, None, (0.0, 0.0, 0.0))[0]
    bad = lm.points.copy()
    bad[5, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_head_model(Landmarks(bad, lm.image_size), model)
    with pytest.raises(ValueError):
        fit_head_model(Landmarks(np.zeros((478, 3)), lm.image_size), model)  # all in one point
    with pytest.raises(ValueError):
        fit_head_model(Landmarks(lm.points[:468], lm.image_size), model)


def test_astronaut(model):
    from model.head.ict_fit import fit
    lm = detect_landmarks(skimage.data.astronaut())
    f = fit_head_model(lm, model)
    template = fit(landmarks=lm)
    assert f.nme <= template.nme + 0.005, (f.nme, template.nme)
    assert f.nme_model <= 0.015  # the model alone, before the landmark corrective
    assert f.expression_dict["jawOpen"] < 0.2  # her teeth are together
    assert f.expression_dict["mouthSmile_L"] > 0.1 and f.expression_dict["mouthSmile_R"] > 0.1
    assert np.rad2deg(np.abs(f.pose - template.pose)).max() < 3.0
    assert np.abs(f.offsets).max() < 0.006  # the corrective is millimetres, not a new face


def test_box_qp_matches_bvls():
    # the active-set solver behind each Gauss-Newton step, against scipy's BVLS (its fallback)
    from scipy.optimize import lsq_linear

    from model.head.ict_fit import _box_qp
    rng = np.random.default_rng(3)
    A = rng.normal(size=(80, 30))
    H, f = A.T @ A + 0.1 * np.eye(30), rng.normal(size=30) * 5
    lo, hi = np.r_[np.full(10, -np.inf), np.zeros(20)], np.r_[np.full(10, np.inf), np.ones(20)]
    x, state = _box_qp(H, f, lo, hi, np.zeros(30, np.int8))
    L = np.linalg.cholesky(H)
    ref = lsq_linear(L.T, np.linalg.solve(L, f), bounds=(lo, hi), method="bvls", tol=1e-12).x
    assert 0 < (state != 0).sum() < 20 and np.abs(x - ref).max() < 1e-8
    fallback, _ = _box_qp(H, f, lo, hi, np.zeros(30, np.int8), max_iter=0)
    assert np.abs(fallback - ref).max() < 1e-8
