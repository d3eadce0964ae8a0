"""Rig: named, clipped controls; expressions do what their names say; retargeting round trips."""

import numpy as np
import pytest
import skimage.data

from model.head.fitting import fit
from model.head.landmarks import Landmarks
from model.head.rig import ANTAGONISTS, CONTROLS, deform, estimate_pose, retarget, validate


@pytest.fixture(scope="module")
def F():
    return fit(skimage.data.astronaut())


def _L(F, ctrl):
    return F.template.landmarks(deform(F, ctrl))


def test_control_names_and_ranges():
    for n in ("jawOpen", "mouthSmileLeft", "mouthSmileRight", "mouthFunnel", "mouthPucker", "eyeBlinkLeft",
              "eyeBlinkRight", "browInnerUp", "browDownLeft", "browDownRight", "eyeYaw", "eyePitch", "headYaw",
              "headPitch", "headRoll"):
        spec = CONTROLS[n]
        assert spec.min <= spec.neutral <= spec.max and spec.description
    with pytest.raises(ValueError, match="known controls: .*jawOpen"):
        validate({"jawOpne": 1.0})
    assert validate({"jawOpen": 7.0, "headYaw": -9.0}) == {"jawOpen": 1.0, "headYaw": CONTROLS["headYaw"].min}


def test_neutral_is_identity(F):
    assert np.array_equal(deform(F, None), F.vertices)
    assert np.array_equal(deform(F, {"jawOpen": 0.0}), F.vertices)


def test_jaw_opens_lips(F):
    L0, L1 = _L(F, {}), _L(F, {"jawOpen": 1.0})
    face_h = np.linalg.norm(L0[10] - L0[152])
    gain = np.linalg.norm(L1[13] - L1[14]) - np.linalg.norm(L0[13] - L0[14])
    assert gain >= 0.15 * face_h
    assert L1[152, 1] < L0[152, 1] - 0.01  # the chin drops
    assert np.allclose(L1[10], L0[10])  # the forehead does not move


def test_jaw_carries_the_lower_teeth_and_leaves_the_upper(F):
    """The teeth are rigid with their jaw: upper ones stay with the skull, lower ones turn with the chin."""
    from model.head.template import REGIONS
    t = F.template
    teeth = np.unique(t.faces[t.face_region == REGIONS.index("teeth")])
    lower = np.zeros(len(t.vertices))
    lower[t.parts["mouth_bag"]] = t.parts["mouth_bag_lower"]
    up, lo = teeth[lower[teeth] == 0], teeth[lower[teeth] == 1]
    assert len(up) > 20 and len(lo) > 20
    v0, v1 = deform(F, {}), deform(F, {"jawOpen": 1.0})
    chin_drop = _L(F, {})[152, 1] - _L(F, {"jawOpen": 1.0})[152, 1]
    assert np.abs(v1[up] - v0[up]).max() < 1e-9
    assert np.median(v0[lo, 1] - v1[lo, 1]) > 0.3 * chin_drop  # nearer the hinge than the chin: less


@pytest.mark.parametrize("side,up,lo", [("Left", 386, 374), ("Right", 159, 145)])
def test_blink_closes_lid_in_front_of_eye(F, side, up, lo):
    L0 = _L(F, {})
    for a in (0.5, 1.0):
        v = deform(F, {f"eyeBlink{side}": a})
        L = F.template.landmarks(v)
        ratio = np.linalg.norm(L[up] - L[lo]) / np.linalg.norm(L0[up] - L0[lo])
        assert ratio <= (0.1 if a == 1 else 0.7)
        k = 1 if side == "Left" else 0
        ids = F.template.parts["eye_up_l" if side == "Left" else "eye_up_r"]
        radius = np.linalg.norm(F.vertices[F.template.parts["eyeball_l" if k else "eyeball_r"]] - F.eye_centres[k], axis=1).max()
        assert (np.linalg.norm(v[ids] - F.eye_centres[k], axis=1) > radius * 0.97).all()  # lid stays over the ball


def test_smile_lifts_corners_and_brows_rise(F):
    L0 = _L(F, {})
    L = _L(F, {"mouthSmileLeft": 1, "mouthSmileRight": 1})
    assert L[291, 1] > L0[291, 1] + 0.004 and L[61, 1] > L0[61, 1] + 0.004
    L = _L(F, {"browInnerUp": 1})
    assert L[107, 1] > L0[107, 1] + 0.004 and L[336, 1] > L0[336, 1] + 0.004
    L = _L(F, {"browDownLeft": 1})
    assert L[334, 1] < L0[334, 1] - 0.003 and np.allclose(L[105], L0[105], atol=1e-4)


def test_head_rotation_keeps_neck_base(F):
    v = deform(F, {"headYaw": 0.5})
    cap = F.vertices[:, 1] < F.vertices[:, 1].min() + 0.01
    assert np.allclose(v[cap], F.vertices[cap])
    L0, L = F.template.landmarks(F.vertices), F.template.landmarks(v)
    assert L[1, 0] > L0[1, 0] + 0.03  # yaw > 0 turns the nose towards +x


def test_retarget_own_landmarks_is_neutral(F):
    c = retarget(F.landmarks, F)
    assert set(c) == set(CONTROLS)
    assert max(abs(v) for v in c.values()) <= 0.05
    assert np.rad2deg(np.abs(estimate_pose(F.landmarks, F) - F.pose).max()) < 2.0


def test_retarget_round_trip(F):
    known = {"jawOpen": 0.5, "mouthSmileRight": 0.6, "eyeBlinkLeft": 0.8, "browInnerUp": 0.5,
             "headYaw": -0.3, "headPitch": 0.15, "headRoll": 0.1, "eyeYaw": -0.2}
    uv, _ = F.camera.project(F.template.landmarks(deform(F, known)))
    got = retarget(Landmarks(np.concatenate([uv, np.zeros((478, 1))], 1), F.landmarks.image_size), F)
    for k in CONTROLS:
        assert abs(got[k] - known.get(k, 0.0)) < 0.06, (k, got[k], known.get(k, 0.0))


def test_noisy_landmarks_never_read_as_antagonists_together(F):
    """A landmark detector's jitter (1 px here) must not come out as a smile and a frown on one corner (or
    a blink with wide eyes, a brow down and up) cancelling each other: the avatar would show a grimace."""
    rng = np.random.default_rng(0)
    for known in ({"mouthSmileLeft": 0.6}, {"jawOpen": 0.8}, {"eyeBlinkRight": 0.7}, {"headYaw": 0.2}):
        uv, _ = F.camera.project(F.template.landmarks(deform(F, known)))
        uv = uv + rng.normal(0.0, 1.0, uv.shape)
        got = retarget(Landmarks(np.concatenate([uv, np.zeros((478, 1))], 1), F.landmarks.image_size), F)
        for a, b in ANTAGONISTS:
            assert min(got[a], got[b]) == 0.0, (known, a, got[a], b, got[b])
        for k, v in known.items():
            assert abs(got[k] - v) < 0.1, (known, k, got[k])


def test_calibration_reads_the_jaw_and_smile_as_the_tracker_sees_them(F):
    """A tracker that does not follow the mesh's lips (here: an opening jaw also lifts the mouth corners,
    and a smile lifts them less while the mouth is open) misreads an open smiling mouth; calibrated on the
    rig's calibration poses as that tracker sees them, the solve reads other combinations right."""
    import dataclasses

    from model.head.rig import CALIBRATION_POSES, calibrate
    corners = np.zeros((478, 3))
    corners[[61, 291, 185, 409, 146, 375]] = [0.0, 0.005, 0.0]  # metres, head frame: +y is up
    left = (np.arange(478) == 291) | (np.arange(478) == 409) | (np.arange(478) == 375)

    def seen(G, c):  # what the simulated tracker reports for controls c
        j, sl, sr = (c.get(k, 0.0) for k in ("jawOpen", "mouthSmileLeft", "mouthSmileRight"))
        extra = j * corners - j * np.where(left[:, None], sl, sr) * 1.5 * corners
        uv, _ = G.camera.project(G.template.landmarks(deform(G, c)) + extra)
        return Landmarks(np.concatenate([uv, np.zeros((478, 1))], 1), G.landmarks.image_size)

    G = dataclasses.replace(F, cache={})  # calibrate() stores its terms in the head's rig cache
    known = {"jawOpen": 0.6, "mouthSmileLeft": 0.2, "mouthSmileRight": 0.2}
    before = retarget(seen(G, known), G)
    assert max(abs(before[k] - v) for k, v in known.items()) > 0.1  # the misreading is real
    calibrate(G, {"neutral": seen(G, {}), **{k: seen(G, c) for k, c in CALIBRATION_POSES.items()}})
    after = retarget(seen(G, known), G)
    assert max(abs(after[k] - v) for k, v in known.items()) < 0.05, after
    assert np.array_equal(deform(G, known), deform(F, known))  # the mesh itself still moves as before


def test_arkit_names_are_accepted_and_fold_into_the_rig():
    from model.head.rig import ARKIT_MAP, ARKIT_NAMES, IGNORED_ARKIT, validate
    assert len(ARKIT_NAMES) == len(set(ARKIT_NAMES)) == 52
    # every ARKit name is a rig control, mapped, or ignored on purpose; the map targets real controls
    assert all(n in CONTROLS or n in ARKIT_MAP or n in IGNORED_ARKIT for n in ARKIT_NAMES)
    assert all(t in CONTROLS for m in ARKIT_MAP.values() for t in m)
    c = validate({"jawOpen": 0.2, "mouthLowerDownLeft": 1.0, "mouthLowerDownRight": 1.0, "eyeLookOutLeft": 1.0,
                  "eyeLookInRight": 1.0, "tongueOut": 1.0})
    assert c["jawOpen"] == pytest.approx(0.2 + 2 * ARKIT_MAP["mouthLowerDownLeft"]["jawOpen"])
    assert c["eyeYaw"] == pytest.approx(0.5)  # both eyes look towards +x: the full gaze to the left
    assert "tongueOut" not in c
    assert validate({"mouthClose": 1.0})["jawOpen"] == 0.0  # clipped to the control's range
    with pytest.raises(ValueError, match="unknown rig control 'jawOpn'"):
        validate({"jawOpn": 1.0})


def test_control_sequences_read_back_and_bad_ones_are_refused():
    from model.head.rig import read_sequence, sequence_dict
    controls = [{"jawOpen": 0.1 * i, "headYaw": 0.05 * i} for i in range(5)]
    times, back = read_sequence(sequence_dict([i / 25 for i in range(5)], controls))
    assert times == pytest.approx([i / 25 for i in range(5)])
    assert [c["jawOpen"] for c in back] == pytest.approx([c["jawOpen"] for c in controls])
    assert [c["headYaw"] for c in back] == pytest.approx([c["headYaw"] for c in controls])
    for bad, msg in [({"names": ["jawOpen"]}, "'frames' list"), ({"names": ["jawOpen"], "frames": []}, "no frames"),
                     ({"names": ["jawOpen"], "frames": [{"weights": [0.1, 0.2]}]}, "list of 1 numbers"),
                     ({"names": ["jawOpen"], "frames": [{"weights": [0.1], "time": 1}, {"weights": [0], "time": 0}]},
                      "must not decrease"),
                     ({"names": ["jawOpen"], "frames": [{"weights": [0.1]}], "head_pose": [[0, 0, 0]] * 2}, "head_pose")]:
        with pytest.raises(ValueError, match=msg):
            read_sequence(bad)
