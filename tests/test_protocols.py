"""Protocols end to end on small fake methods whose right answers are known.

- an "oracle" avatar that IS the ground-truth head, but expressed in another world frame (rotated,
  shifted, scaled x2): multiview-gt must align the cameras and score it near-perfectly, while a
  wrongly turned head scores far worse;
- the same oracle driven through reenactment (it recognises each frame's pose) must reproduce frames;
- a solid ellipsoid has no holes and consistent depth in the 360° sweep, a pierced one has holes;
- a photo-plane avatar reproduces the photo in input-view (and keeps its identity), a grey ball does not.
"""
import dataclasses
import hashlib
import json

import numpy as np
import pytest

from evaluation import datasets as D
from evaluation import protocols as P
from evaluation import results as R
from model.core.camera import Camera, framing_camera
from model.core.errors import InputError
from model.core.gaussians import Gaussians
from model.core.render import render
from model.interface import GaussianAvatar, Method, MethodInfo

SIZE = 64
SETTINGS = P.Settings(size=SIZE, lpips_nets=("alex",))
HEAD_RADIUS = 0.11


def ellipsoid(n=2500, hole=False) -> Gaussians:
    i = np.arange(n) + 0.5
    phi, th = np.arccos(1 - 2 * i / n), np.pi * (1 + 5 ** 0.5) * i
    u = np.c_[np.cos(th) * np.sin(phi), np.cos(phi), np.sin(th) * np.sin(phi)]
    p = u * np.array([0.08, 0.10, 0.09])
    if hole:  # a tunnel along z: the sweep sees through the head from the front and back
        keep = np.hypot(p[:, 0], p[:, 1]) > 0.035
        p, u = p[keep], u[keep]
    rgb = 0.5 + 0.45 * u  # colour varies with direction, so a wrongly turned head looks different
    return Gaussians.from_rgb(p, np.tile([1.0, 0, 0, 0], (len(p), 1)), np.full((len(p), 3), 0.007),
                              np.full(len(p), 0.95), rgb)


def rot_y(deg):
    c, s = np.cos(np.deg2rad(deg)), np.sin(np.deg2rad(deg))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def transform(g: Gaussians, R_, t, s) -> Gaussians:
    """x' = s R x + t for isotropic Gaussians (their orientation does not matter)."""
    return Gaussians(s * g.means @ R_.T + t, g.quats, s * g.scales, g.opacities, g.sh)


def transform_camera(cam: Camera, R_, t, s) -> Camera:
    """The same physical view of the transformed world: camera coordinates scale by s, pixels unchanged."""
    w2c = np.eye(4)
    w2c[:3, :3] = cam.R @ R_.T
    w2c[:3, 3] = -cam.R @ R_.T @ t + s * cam.t
    return Camera(cam.K, w2c, cam.width, cam.height)


def u8(rgb):
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


FRAME_YAWS = (0, 15, 30, -20)


class Avatar(GaussianAvatar):
    def __init__(self, info, g, input_camera, center, radius, frames=None):
        self.info, self._g, self.input_camera = info, g, input_camera
        self.head_center, self.head_radius = np.asarray(center, float), radius
        self._frames = frames or {}

    def gaussians(self, controls=None):
        if not controls:
            return self._g
        c = self.head_center
        return transform(Gaussians(self._g.means - c, self._g.quats, self._g.scales, self._g.opacities,
                                   self._g.sh), rot_y(controls["yaw"]), c, 1.0)


class AnimatableAvatar(Avatar):
    def retarget(self, image):
        return {"yaw": self._frames[hashlib.sha1(image.tobytes()).hexdigest()]}


class Oracle(Method):
    """Returns the ground-truth head in its own frame: rotated 40°, shifted, twice as large."""

    def __init__(self, gt_input: Camera, frames=None, turn_deg=0.0, animatable=False):
        self.gt_input, self.frames, self.turn = gt_input, frames or {}, turn_deg
        self.info = MethodInfo("oracle", "Oracle", "1", "ground truth in another frame", animatable=animatable)

    def reconstruct(self, image):
        R_, t, s = rot_y(40), np.array([0.3, -0.1, 0.2]), 2.0
        g = transform(transform(ellipsoid(), rot_y(self.turn), np.zeros(3), 1.0), R_, t, s)
        cam = transform_camera(self.gt_input, R_, t, s).resized(image.shape[1], image.shape[0])
        cls = AnimatableAvatar if self.info.animatable else Avatar
        return cls(self.info, g, cam, t, HEAD_RADIUS * s, self.frames)


@pytest.fixture(scope="module")
def multiview(tmp_path_factory):
    """A 1-subject multi-view + video folder rendered from the ellipsoid (written in the documented format)."""
    root = tmp_path_factory.mktemp("mv") / "set"
    head = ellipsoid()
    cam_in = framing_camera(np.zeros(3), HEAD_RADIUS, 0, 0, 96)
    views = {}
    for yaw in (-60, 45, 180):
        cam = framing_camera(np.zeros(3), HEAD_RADIUS, np.deg2rad(yaw), 0.1, SIZE)
        r = render(head, cam, (1, 1, 1))
        views[f"yaw{yaw:+04d}"] = (cam, u8(r.rgb), r.alpha > 0.5)
    frames = [u8(render(transform(head, rot_y(y), np.zeros(3), 1.0), cam_in, (1, 1, 1)).rgb) for y in FRAME_YAWS]
    D.write_multiview(root, "test-mv", [{"id": "s1", "input": frames[0], "input_camera": cam_in,
                                         "head_center": np.zeros(3), "views": views, "frames": frames}],
                      synthetic=True, description="test", license="test")
    return root, cam_in, frames


def test_multiview_folder_round_trip_and_tamper_check(multiview):
    root, cam_in, frames = multiview
    ds = D.load_dataset(f"multiview:{root}")
    assert ds.synthetic and ds.has_views and ds.has_frames and ds.subject_ids == ["s1"]
    s = ds.subject("s1")
    assert len(s.views) == 3 and len(s.frames) == len(FRAME_YAWS)
    np.testing.assert_allclose(s.input_camera.K, cam_in.K)
    assert np.array_equal(s.frames[1], frames[1])
    assert D.load_dataset(f"multiview:{root}").manifest_sha256 == ds.manifest_sha256
    m = json.loads((root / "manifest.json").read_text())
    assert m["sha256"] == ds.manifest_sha256


def test_multiview_gt_aligns_a_differently_framed_avatar(multiview):
    root, cam_in, _ = multiview
    ds = D.load_dataset(f"multiview:{root}")
    subject = ds.subject("s1")
    ctx = P.Context(SETTINGS)
    proto = P.PROTOCOLS["multiview-gt"]
    good = proto.run(Oracle(cam_in).reconstruct(subject.image), subject, ctx)
    bad = proto.run(Oracle(cam_in, turn_deg=90).reconstruct(subject.image), subject, ctx)
    assert good.status == "ok" and len(good.views) == 3
    assert min(v["psnr"] for v in good.views) > 35  # same head, same view: near pixel-exact
    assert good.metrics["psnr_masked"] > bad.metrics["psnr_masked"] + 8
    assert good.metrics["lpips_alex"] < bad.metrics["lpips_alex"]


def test_reenactment_drives_an_animatable_avatar_and_skips_a_static_one(multiview):
    root, cam_in, frames = multiview
    ds = D.load_dataset(f"multiview:{root}")
    subject = ds.subject("s1")
    lookup = {hashlib.sha1(f.tobytes()).hexdigest(): y for f, y in zip(subject.frames, FRAME_YAWS)}
    ctx = P.Context(SETTINGS)
    proto = P.PROTOCOLS["reenactment"]
    src = proto.source(subject)
    out = proto.run(Oracle(cam_in, lookup, animatable=True).reconstruct(src), subject, ctx)
    assert out.status == "ok" and [v["view"] for v in out.views] == ["frame0001", "frame0002", "frame0003"]
    assert out.metrics["psnr"] > 30
    assert out.metrics["akd_fail_rate"] == 1.0  # no face in an ellipsoid: counted, not dropped
    skipped = proto.run(Oracle(cam_in).reconstruct(src), subject, ctx)
    assert skipped.status == "skipped" and skipped.reason == "skipped: not animatable"


class Ball(Method):
    def __init__(self, hole=False, fail_on=None):
        self.hole, self.fail_on = hole, fail_on
        self.info = MethodInfo("ball", "Ball", "1", "an ellipsoid whatever the photo", animatable=False)

    def reconstruct(self, image):
        if self.fail_on is not None and image.shape == self.fail_on:
            raise InputError("no face found in the image")
        cam = framing_camera(np.zeros(3), HEAD_RADIUS, 0, 0, image.shape[0]).resized(image.shape[1], image.shape[0])
        return Avatar(self.info, ellipsoid(hole=self.hole), cam, np.zeros(3), HEAD_RADIUS)


def test_sweep_finds_holes_and_consistent_depth():
    subject = D.Subject("x", np.full((96, 96, 3), 200, np.uint8), "test")
    ctx = P.Context(SETTINGS)
    solid = P.PROTOCOLS["sweep-360"].run(Ball().reconstruct(subject.image), subject, ctx)
    holed = P.PROTOCOLS["sweep-360"].run(Ball(hole=True).reconstruct(subject.image), subject, ctx)
    assert len(solid.views) == 26 and len(solid.curves["yaw_deg"]) == 24 and len(solid.curves["pairs"]) == 24
    assert solid.metrics["hole_fraction_max"] < 0.005
    assert solid.metrics["depth_reproj_error"] < 0.004  # metres, on a head 0.2 m tall
    assert solid.metrics["silhouette_min_ratio"] == pytest.approx(0.08 / 0.09, abs=0.05)  # ellipse x/z axes
    flat = Ball().reconstruct(subject.image)
    g = flat._g
    flat._g = Gaussians(g.means * np.array([1, 1, 0.05], np.float32), g.quats, g.scales * 0.3, g.opacities, g.sh)
    card = P.PROTOCOLS["sweep-360"].run(flat, subject, ctx)  # a card seen edge-on nearly vanishes
    assert card.metrics["silhouette_min_ratio"] < 0.2
    front = next(v for v in holed.views if v["view"] == "yaw+000_pitch+00")
    side = next(v for v in holed.views if v["view"] == "yaw+090_pitch+00")
    assert front["hole_fraction"] > 0.03 and side["hole_fraction"] < 0.005
    # the photo here has no face: no CSIM, and no detection failure is charged to the method
    assert solid.metrics["csim_dlib"] is None and solid.metrics["face_detect_fail_rate_dlib"] is None


def test_hole_fraction_matches_a_hand_count():
    alpha = np.zeros((20, 20), np.float32)
    alpha[2:18, 2:18] = 1.0
    alpha[8:12, 8:12] = 0.2  # a 4x4 see-through hole inside a 16x16 silhouette
    assert P.hole_fraction(alpha) == pytest.approx(16 / 256)
    assert P.hole_fraction(np.zeros((4, 4))) is None


class PhotoPlane(Method):
    """The photo itself on a plane 0.6 m away: reproduces the input view almost exactly."""

    def __init__(self):
        self.info = MethodInfo("plane", "Plane", "1", "photo on a plane", animatable=False)

    def reconstruct(self, image):
        h, w = image.shape[:2]
        f, d = 1.2 * max(w, h), 0.6
        K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])
        h2, w2 = h // 2, w // 2  # one Gaussian per 2x2 block, at the block's centre, with its mean colour
        rgb = image[:2 * h2, :2 * w2].reshape(h2, 2, w2, 2, 3).mean((1, 3)).reshape(-1, 3) / 255.0
        ys, xs = np.mgrid[0:h2, 0:w2] * 2 + 0.5
        # depths jittered by < 0.1 mm: equal depths would composite in index order, and each pixel would
        # show its upper-left neighbour (a systematic half-pixel shift)
        z = d + np.random.default_rng(0).uniform(-1e-4, 1e-4, xs.size)
        pts = np.c_[(xs.ravel() - K[0, 2]) * z / f, (ys.ravel() - K[1, 2]) * z / f, z]
        g = Gaussians.from_rgb(pts, np.tile([1.0, 0, 0, 0], (len(pts), 1)), np.full((len(pts), 3), 1.2 * d / f),
                               np.full(len(pts), 0.99), rgb)
        return Avatar(self.info, g, Camera(K, np.eye(4), w, h), np.array([0, 0, d]), 0.12)


def test_group_dataset_crops_one_head_per_person_of_the_shipped_group_photo():
    ds = D.load_dataset("portraits-group")
    assert ds.subject_ids == [f"person{i}" for i in range(6)] and not ds.synthetic
    assert D.portraits_group().manifest_sha256 == ds.manifest_sha256  # the same pixels on every load
    import dlib
    detect = dlib.get_frontal_face_detector()
    for sid in ds.subject_ids:
        img = ds.subject(sid).image
        assert img.ndim == 3 and min(img.shape[:2]) > 150
        faces = detect(img, 1)
        assert len(faces) >= 1 and max(f.width() for f in faces) > 0.25 * img.shape[1]  # the head fills it


def test_input_view_scores_a_faithful_avatar_above_a_wrong_one():
    ds = D.portraits_bundled()
    subject = ds.subject("astronaut")
    settings = P.Settings(size=256, lpips_nets=("alex",))  # dlib finds this face from ~200 px
    ctx = P.Context(settings)
    good = P.PROTOCOLS["input-view"].run(PhotoPlane().reconstruct(subject.image), subject, ctx)
    bad = P.PROTOCOLS["input-view"].run(Ball().reconstruct(subject.image), subject, ctx)
    assert good.metrics["psnr_masked"] > 24 and good.metrics["psnr_masked"] > bad.metrics["psnr_masked"] + 10
    assert good.metrics["alpha_face_coverage"] > 0.99
    # dlib: same person when L2 < 0.6, i.e. cosine > 0.82 (the plane blurs the photo a little)
    assert good.metrics["csim_dlib"] is not None and good.metrics["csim_dlib"] > 0.8
    assert bad.metrics["csim_dlib"] is None  # no face rendered: no CSIM


def test_face_mask_scores_the_face_and_not_the_photos_background():
    # The dilated face oval reaches past astronaut's jaw onto the backdrop (2-5% of it in v1): an avatar
    # painting the backdrop onto its head would be rewarded there.
    from model.head.landmarks import detect_landmarks
    from model.head.segmentation import person_mask
    image = D.portraits_bundled().subject("astronaut").image
    mask = P.face_mask(image)
    x, y = detect_landmarks(image).xy[1].round().astype(int)  # nose tip
    assert mask[y, x] and mask.sum() > 0.02 * mask.size
    assert not (mask & (person_mask(image) < 0.5)).any()


def test_run_writes_results_keeps_them_without_force_and_records_failures(tmp_path, multiview):
    root, cam_in, _ = multiview
    ds = D.load_dataset(f"multiview:{root}")
    out = tmp_path / "res"
    logs = []
    kw = dict(settings=SETTINGS, progress=False, log=logs.append)
    written = P.run_evaluation(["oracle", "ball"], ds, ["multiview-gt", "reenactment"], out,
                               methods={"oracle": Oracle(cam_in), "ball": Ball(fail_on=(96, 96, 3))}, **kw)
    assert len(written) == 4
    rs = {(r["method"]["id"], r["protocol"]["id"]): r for r in R.load_results(out)}
    assert rs[("oracle", "multiview-gt")]["status"] == "ok"
    assert rs[("oracle", "reenactment")]["reason"] == "skipped: not animatable"
    assert rs[("ball", "multiview-gt")]["status"] == "failed" and "no face" in rs[("ball", "multiview-gt")]["reason"]
    r = rs[("oracle", "multiview-gt")]
    assert r["dataset"]["manifest_sha256"] == ds.manifest_sha256 and r["dataset"]["synthetic"] is True
    assert r["protocol"]["version"] == "1" and "lpips_alex" in r["provenance"]["metrics"]["metrics"]
    assert set(r["timings"]) >= {"reconstruct_s", "protocol_s", "total_s"}
    assert all((out / p).is_file() for p in r["thumbnails"].values())
    assert (out / ds.slug / "multiview-gt" / "oracle" / "summary.json").is_file()
    before = (out / ds.slug / "multiview-gt" / "oracle" / "s1.json").read_bytes()
    assert P.run_evaluation(["oracle"], ds, ["multiview-gt"], out, methods={"oracle": Oracle(cam_in)}, **kw) == []
    assert any("[keep]" in line for line in logs)
    assert (out / ds.slug / "multiview-gt" / "oracle" / "s1.json").read_bytes() == before
    assert len(P.run_evaluation(["oracle"], ds, ["multiview-gt"], out, methods={"oracle": Oracle(cam_in)},
                                force=True, **kw)) == 1
    # a new method version makes kept results stale: recomputed without --force, and said so
    newer = Oracle(cam_in)
    newer.info = dataclasses.replace(newer.info, version="2")
    assert len(P.run_evaluation(["oracle"], ds, ["multiview-gt"], out, methods={"oracle": newer}, **kw)) == 1
    assert any("[stale]" in line and "method version changed ('1' -> '2')" in line for line in logs)
    assert R.load_result(out / ds.slug / "multiview-gt" / "oracle" / "s1.json")["method"]["version"] == "2"
    # so does a dataset whose files changed: its summary pools one manifest only (results.summarize)
    path = out / ds.slug / "multiview-gt" / "oracle" / "s1.json"
    old = json.loads(path.read_text())
    old["dataset"]["manifest_sha256"] = "0" * 64
    path.write_text(json.dumps(old))
    assert len(P.run_evaluation(["oracle"], ds, ["multiview-gt"], out, methods={"oracle": newer}, **kw)) == 1
    assert any("[stale]" in line and "dataset manifest changed" in line for line in logs)
    assert R.load_result(path)["dataset"]["manifest_sha256"] == ds.manifest_sha256
    # the leaderboard and the dashboard read the folder
    from evaluation import dashboard, leaderboard
    md = leaderboard.render_all(out, "markdown")
    assert "SYNTHETIC" in md and "| oracle |" in md and "0/1" in md
    html = dashboard.build(out)
    assert "data:image/jpeg;base64," in html and "plotly" in html.lower() and "SYNTHETIC" in html


def test_protocol_not_applicable_to_a_photo_dataset_is_skipped(tmp_path):
    logs = []
    ds = D.portraits_bundled()
    assert P.run_evaluation(["ball"], ds, ["multiview-gt"], tmp_path, methods={"ball": Ball()}, progress=False,
                            log=logs.append) == []
    assert "no ground-truth views" in logs[0]


def test_score_external_scores_views_rendered_at_the_protocol_cameras(tmp_path):
    """The CLI's score-external path: predictions made elsewhere at exactly the cameras the protocols ask
    for (model.core.camera.framing_camera for the sweep, the resized input camera for input-view)."""
    from PIL import Image

    from evaluation.__main__ import main
    photos = tmp_path / "photos"
    photos.mkdir()
    photo = np.full((96, 96, 3), 180, np.uint8)
    Image.fromarray(photo).save(photos / "p1.png")
    pred = tmp_path / "pred"
    (pred / "p1").mkdir(parents=True)
    (pred / "method.json").write_text(json.dumps({"id": "ext", "name": "External", "version": "1",
                                                  "description": "made elsewhere"}))
    Image.fromarray(photo).save(pred / "p1" / "input.png")
    head = ellipsoid()
    cam_in = framing_camera(np.zeros(3), HEAD_RADIUS, 0, 0, 96)
    poses = [(y, 0) for y in P.Sweep360.YAWS] + [(0, p) for p in P.Sweep360.PITCHES]
    cams = [cam_in.resized(SIZE, SIZE)] + P.orbit_cameras(
        type("A", (), {"head_center": np.zeros(3), "head_radius": HEAD_RADIUS})(), poses, SETTINGS)
    views = []
    for i, cam in enumerate(cams):
        r = render(head, cam, (1, 1, 1))
        Image.fromarray(u8(r.rgb)).save(pred / "p1" / f"v{i}.png")
        Image.fromarray(u8(r.alpha)).save(pred / "p1" / f"v{i}_a.png")
        np.save(pred / "p1" / f"v{i}_d.npy", r.depth)
        views.append({"id": f"v{i}", "camera": cam.to_dict(), "image": f"v{i}.png", "alpha": f"v{i}_a.png",
                      "depth": f"v{i}_d.npy"})
    (pred / "p1" / "views.json").write_text(json.dumps({"head_center": [0, 0, 0], "head_radius": HEAD_RADIUS,
                                                        "input_camera": cam_in.to_dict(), "views": views}))
    out = tmp_path / "res"
    assert main(["score-external", "--predictions", str(pred), "--dataset", f"portraits:{photos}",
                 "--protocol", "input-view,sweep-360", "--out", str(out), "--size", str(SIZE), "--quiet",
                 "--strict"]) == 0
    rs = {r["protocol"]["id"]: r for r in R.load_results(out)}
    assert rs["sweep-360"]["status"] == "ok" and rs["input-view"]["status"] == "ok"
    assert rs["sweep-360"]["metrics"]["depth_reproj_error"] < 0.004
    assert rs["sweep-360"]["metrics"]["silhouette_min_ratio"] > 0.8
    assert rs["input-view"]["method"]["config"]["external"] is True


def test_wide_yaw_identity_counts_a_missed_face_as_zero():
    """csim_*_yaw45 averages the views turned 45-90° away with a missed face scoring 0, where csim_*
    averages found faces only: a method whose turned views lose the face cannot hide it."""
    order = [(y, 0) for y in P.Sweep360.YAWS if abs(y) <= 90] + [(0, p) for p in P.Sweep360.PITCHES]

    class FakeIdentity:  # found everywhere but at ±90°, where the face is lost; called in sweep order
        available = [type("M", (), {"id": "csim_dlib"})()]
        calls = iter(order)

        def scores(self, pred, target):
            yaw, _ = next(self.calls)
            found = abs(yaw) != 90
            return {"csim_dlib": 0.9 if found else None, "face_found_dlib": found}

        def notes(self):
            return []

    subject = D.Subject("x", np.full((96, 96, 3), 200, np.uint8), "test")
    ctx = P.Context(SETTINGS)
    ctx.identity = FakeIdentity()
    out = P.PROTOCOLS["sweep-360"].run(Ball().reconstruct(subject.image), subject, ctx)
    m = out.metrics
    assert m["csim_dlib"] == pytest.approx(0.9)
    assert m["csim_dlib_yaw45"] == pytest.approx(0.9 * 6 / 8)  # ±45, ±60, ±75 found; ±90 missed
    assert m["face_detect_fail_rate_dlib_yaw45"] == pytest.approx(2 / 8)
    assert m["face_detect_fail_rate_dlib"] == pytest.approx(2 / 15)
    assert P.higher_is_better("csim_dlib_yaw45") is True
    assert P.higher_is_better("face_detect_fail_rate_dlib_yaw45") is False


def test_the_face_mask_leaves_out_a_hand_over_the_chin():
    """Input view and self-reenactment score the photo's face oval (common.face_mask): a hand over the chin
    is not the head, so no method is scored on copying it onto the face; the cheeks beside it are scored.
    The points are the dev photo's, read off the picture (tests.test_parsing.HANDS)."""
    from evaluation.datasets import portraits_dev
    from evaluation.protocols import face_mask
    from tests.test_parsing import HANDS
    on_hand, on_face = HANDS["if_051_hand"]
    mask = face_mask(portraits_dev().subject("if_051_hand").image)
    x, y = on_hand[0]  # the index finger along the jaw: inside the dilated face oval
    assert not mask[y - 4:y + 5, x - 4:x + 5].any()
    assert all(mask[y, x] for x, y in on_face[1:])  # both cheeks
