"""The photo parser (model/head/segmentation.py): hair from MediaPipe's hair model, occluders (hands among
them), clothes, and the shipped model file checked at load. Real portraits: the bundled ones (skimage,
matplotlib), the six faces of insightface's group photo (evaluation.datasets.portraits_group) and the dev set's
committed photos (evaluation/data/portraits-dev)."""
import cv2
import numpy as np
import pytest
import skimage.data

from benchmarks.reconstruct import draw_microphone
from model.head import segmentation
from model.head.landmarks import FACE_OVAL, detect_landmarks
from model.head.segmentation import HairModelError, hair_mask, hair_reach, photo_evidence


@pytest.fixture(scope="module")
def astronaut():
    image = skimage.data.astronaut()
    return image, detect_landmarks(image)


def _disc(shape, centre, r):
    m = np.zeros(shape, np.uint8)
    cv2.circle(m, (int(round(centre[0])), int(round(centre[1]))), int(r), 1, -1)
    return m > 0


def test_hair_mask_covers_the_hair_above_the_forehead_and_not_the_face(astronaut):
    """astronaut: short brown hair above the forehead, a light background. The band between the face oval's
    top and 40 px above it over the face's middle half is hair; the cheeks, the mouth and the sky beside the
    head are not."""
    image, lm = astronaut
    hair = hair_mask(image, lm)
    assert hair.shape == image.shape[:2] and hair.dtype == np.float32 and 0 <= hair.min() and hair.max() <= 1
    xy = lm.xy
    oval = xy[list(FACE_OVAL)]
    x0, x1 = np.percentile(oval[:, 0], [25, 75]).astype(int)
    top = int(oval[:, 1].min())
    assert (hair[top - 40:top - 5, x0:x1] > 0.5).mean() > 0.9
    for i in (50, 280, 13):  # cheeks, lips
        assert hair[_disc(hair.shape, xy[i], 8)].max() < 0.1
    assert (hair[:60, :60] > 0.5).mean() == 0  # the flag's corner, away from the head


def test_a_missing_or_altered_hair_model_is_a_clear_error(tmp_path, monkeypatch, astronaut):
    image, lm = astronaut
    monkeypatch.setattr(segmentation, "_hair", None)
    monkeypatch.setattr(segmentation, "HAIR_MODEL_PATH", tmp_path / "hair_segmentation.tflite")
    with pytest.raises(HairModelError, match="missing"):
        hair_mask(image, lm)
    data = bytearray(segmentation.Path(segmentation.__file__).with_name("data").joinpath(
        "hair_segmentation.tflite").read_bytes())
    data[1000] ^= 0xFF
    (tmp_path / "hair_segmentation.tflite").write_bytes(bytes(data))
    with pytest.raises(HairModelError, match="sha256"):
        hair_mask(image, lm)


def test_a_microphone_before_the_face_is_an_occluder_and_real_faces_have_none(astronaut):
    """photo_evidence.occluder: the drawn microphone's head inside the face oval is caught (most of it); the
    eight real portraits (glasses, a cap, smiles, shadows) have none but the hands in two of them; the occluder
    is not trusted (PhotoEvidence.trusted) while the rest of the face is."""
    image, lm = astronaut
    photo, ball = draw_microphone(image, lm.xy)
    lm2 = detect_landmarks(photo)
    ev = photo_evidence(photo, lm2)
    face = np.zeros(ball.shape, np.uint8)
    cv2.fillPoly(face, [np.round(lm2.xy[list(FACE_OVAL)]).astype(np.int32)], 1)
    on_face = ball & (face > 0)
    assert on_face.sum() > 200
    assert ev.occluder[on_face].mean() > 0.6
    trusted = ev.trusted
    assert trusted[on_face & ev.occluder].max() < 0.5
    assert np.median(trusted[(face > 0) & ~ev.occluder]) > 0.9
    from evaluation.datasets import portraits_bundled, portraits_group
    for ds in (portraits_bundled(), portraits_group()):
        for sid in ds.subject_ids:
            img = ds.subject(sid).image
            ev = photo_evidence(img, detect_landmarks(img))
            # two of the group's crops show a hand (a neighbour's; one holding a chip): hands, not faces
            assert not (ev.occluder & ~ev.hands).any(), sid


# Points on each dev photo, read off the picture by eye (pixels of the committed 800 x 800 files): on the
# hand over the face (if_052: also on the phone it holds between thumb and fingers, and on its palm under the
# phone, which the hand's points do not cover), and on the face away from it.
HANDS = {"if_051_hand": ([(283, 565), (352, 720), (459, 674)], [(398, 230), (291, 459), (505, 459)]),
         "if_052_phone": ([(176, 416), (195, 367), (230, 425), (150, 480)], [(332, 199), (409, 352), (336, 314)]),
         "if_023_cup": ([(464, 704), (280, 700)], [(405, 199), (336, 429)])}


@pytest.mark.parametrize("name", sorted(HANDS))
def test_a_hand_over_the_face_is_an_occluder(name):
    """A hand at the chin, a hand holding a phone to the cheek, two hands holding a cup: the hands are occluders
    (not projected: PhotoEvidence.trusted), the face beside it is trusted. Mediapipe's hand landmarker finds
    them; the colour rule cannot (a hand has the skin's colours)."""
    from evaluation.datasets import portraits_dev
    img = portraits_dev().subject(name).image
    ev = photo_evidence(img, detect_landmarks(img))
    on, off = HANDS[name]
    for p in on:
        assert ev.hands[_disc(ev.hands.shape, p, 8)].mean() > 0.8, p
        assert ev.trusted[_disc(ev.hands.shape, p, 8)].max() < 0.5, p
    for p in off:
        assert not ev.occluder[_disc(ev.hands.shape, p, 8)].any(), p
        assert ev.trusted[_disc(ev.hands.shape, p, 8)].min() > 0.5, p


def test_a_hand_mask_holds_what_the_hand_holds_and_its_forearm_not_the_face_between_its_fingers():
    """hand_mask on a drawn hand (21 points in mediapipe's order, fingers up, the wrist below): inside the
    hull of its points all is hand (what it holds) but the face's own skin seen there; the forearm runs on
    below the wrist, away from the fingers; nothing lies beyond the fingertips."""
    p = np.zeros((21, 2))
    p[0] = (100, 150)  # the wrist
    p[1:5] = np.linspace([85, 140], [25, 130], 4)  # the thumb, out to the left
    for i, x in enumerate((70, 90, 110, 130)):  # index (5-8) to little (17-20) fingers, straight up
        p[5 + 4 * i:9 + 4 * i] = np.c_[np.full(4, x), 100 - 15 * np.arange(4)]
    face = _disc((240, 200), (55, 112), 3)  # the face's skin, seen between the thumb and the index finger
    m = segmentation.hand_mask([p], (240, 200), lambda ys, xs: face[ys, xs])
    assert not m[face].any() and m[100, 50]  # the face kept; beside it, off every bone, what the hand holds
    assert m[190, 100] and m[220, 100]  # the forearm, 40 and 70 px below the wrist
    assert not m[40, 100] and not m[190, 30]  # beyond the fingertips; beside the forearm
    assert segmentation.hand_mask([p], (240, 200))[face].all()  # without a face, the whole hull
    assert not segmentation.hand_mask([], (240, 200)).any()


def test_portraits_without_a_hand_have_none():
    """The dev set's portraits that show no hand (studio portraits, glasses, long and short hair) have no
    hand mask: a false hand would drop a face's texture."""
    from evaluation.datasets import portraits_dev
    dev = portraits_dev()
    for name in ("london_005", "london_081", "london_129", "if_009", "if_028", "if_050_glasses"):
        img = dev.subject(name).image
        assert not photo_evidence(img, detect_landmarks(img)).hands.any(), name


def test_long_hair_reaches_below_the_chin_and_short_hair_does_not():
    """hair_reach on the parser's mask: the group photo's two long-haired women (person0, person5) have hair
    falling past the chin; the bundled short-haired astronaut and the four short-haired men do not."""
    from evaluation.datasets import portraits_bundled, portraits_group
    reach = {}
    for ds in (portraits_bundled(), portraits_group()):
        for sid in ds.subject_ids:
            img = ds.subject(sid).image
            lm = detect_landmarks(img)
            reach[sid] = hair_reach(lm, photo_evidence(img, lm))
    assert reach["person0"] > 0.3 and reach["person5"] > 0.3, reach
    assert all(reach[s] < 0 for s in ("astronaut", "person1", "person2", "person3", "person4")), reach


def test_clothes_are_the_person_below_the_chin_that_is_neither_skin_nor_hair(astronaut):
    """astronaut: her orange suit below the collar is clothes; her face and the sky are not."""
    image, lm = astronaut
    ev = photo_evidence(image, lm)
    xy = lm.xy
    assert ev.clothes[400:480, 60:160].mean() > 0.8  # the suit's left shoulder
    assert not ev.clothes[_disc(ev.clothes.shape, xy[1], 30)].any()  # the nose
    assert not ev.clothes[:100, 250:350].any()  # the background above the shoulder
    assert ev.has_hair and ev.hair_above_px > 20
