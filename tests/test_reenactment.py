"""Real-data protocols on tiny SYNTHETIC clips: the videos:<folder> dataset (sampling, crop, refusals), the
self- and cross-reenactment protocols (every metric against an independent computation), the tracker's
AKD-68/AED/APD, NeRSemble calibration -> our camera, and published ("reported") numbers."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from evaluation import datasets as D
from evaluation import nersemble as N
from evaluation import tracker as T
from evaluation import videos as V
from model.core.camera import Camera, look_at
from model.core.image_io import to_float
from model.core.render import RenderResult
from model.interface import Avatar, InputError, Method, MethodInfo

SIZE = 96  # compared image side (px)
SAMPLING = V.Sampling(every=3, cap=2, search=4, max_side=160)


def _small(img, side):
    from PIL import Image
    return np.asarray(Image.fromarray(img).resize((side, side), Image.LANCZOS))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two SYNTHETIC clips (the synthetic set's turning heads, 192 px, each pose held twice)."""
    syn = D.load_dataset("synthetic")
    folder = tmp_path_factory.mktemp("clips") / "clips"
    for sid in syn.subject_ids:
        frames = [_small(f, 192) for f in syn.subject(sid).frames[:4]]
        V.write_clip([f for f in frames for _ in range(2)], folder / f"{sid}.mp4", fps=25)
    (folder / V.SYNTHETIC_MARKER).write_text("SYNTHETIC test clips\n")
    return folder


@pytest.fixture(scope="module")
def videos(clips):
    return D.videos_folder(clips, SAMPLING)


# ------------------------------------------------------------------------------------------ dataset

def test_videos_dataset_samples_documented_frames_and_hashes_pixels(videos, clips):
    assert videos.synthetic and "SYNTHETIC" in videos.label and videos.has_frames and not videos.has_views
    assert len(videos.subject_ids) == 2
    c = videos.manifest["clips"][videos.subject_ids[0]]
    assert c["source"] == 0 and c["targets"] == [3, 6]  # every 3rd frame after the source, capped at 2
    assert c["fps"] == pytest.approx(25.0) and c["frame_interval_s"] == pytest.approx(0.04, abs=1e-3)
    s = videos.subject(videos.subject_ids[0])
    assert s.frame_ids == [0, 3, 6] and len(s.frames) == 3 and max(s.frames[0].shape[:2]) <= 160
    assert s.driver_loader().id == videos.subject_ids[1]  # cross pairing: the next clip
    # the same folder opens to the same manifest; another sampling to another
    assert D.videos_folder(clips, SAMPLING).manifest_sha256 == videos.manifest_sha256
    assert D.videos_folder(clips, V.Sampling(every=2, cap=2, search=4, max_side=160)).manifest_sha256 != \
        videos.manifest_sha256


def _ffmpeg(*args):
    import imageio_ffmpeg
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *args], check=True)


def test_bad_clips_are_refused_with_clear_messages_and_nothing_is_written(tmp_path, clips):
    from evaluation.__main__ import main
    face = next(clips.glob("*.mp4"))
    cases = {}
    d = tmp_path / "noface"
    V.write_clip([np.full((64, 64, 3), 90 + 5 * i, np.uint8) for i in range(6)], d / "grey.mp4")
    cases[d] = "no face found"
    d = tmp_path / "short"
    V.write_clip([_small(V.read_clip(face).frames[0], 64)], d / "one.mp4")
    cases[d] = "at least 2"
    d = tmp_path / "vfr"
    d.mkdir()
    _ffmpeg("-i", str(face), "-vf", "setpts='if(lt(N,3),N*0.04,0.08+(N-2)*0.15)/TB'", "-fps_mode", "vfr",
            "-c:v", "libx264", str(d / "vfr.mp4"))
    cases[d] = "variable frame rate"
    d = tmp_path / "notvideos"
    d.mkdir()
    (d / "notes.txt").write_text("hello")
    cases[d] = "no video files"
    d = tmp_path / "fake"
    d.mkdir()
    (d / "fake.mp4").write_text("not a video")
    cases[d] = "not a readable video"
    for folder, message in cases.items():
        with pytest.raises(ValueError, match=message):
            D.load_dataset(f"videos:{folder}")
        out = tmp_path / f"out-{folder.name}"
        assert main(["run", "--methods", "billboard", "--dataset", f"videos:{folder}", "--protocol",
                     "self-reenactment", "--out", str(out), "--engine", "serial", "--quiet"]) == 2
        assert not out.exists()  # nothing half-written


# ------------------------------------------------------------------------------------------ tracker

def _generic_landmarks(yaw_deg: float, pitch_deg: float = 0.0, w: int = 256) -> np.ndarray:
    """68 landmarks whose 6 pose points are GENERIC_FACE_MM rotated by (yaw, pitch) and projected by the
    tracker's own camera model (focal = width, principal point = centre); the rest copy the nose tip."""
    from scipy.spatial.transform import Rotation
    Q = Rotation.from_euler("YX", [yaw_deg, pitch_deg], degrees=True).as_matrix()
    X = GENERIC = T.GENERIC_FACE_MM @ Q.T
    X = np.diag([1.0, -1.0, -1.0]) @ X.T  # face axes -> camera axes
    X = X.T + np.array([0.0, 0.0, 2000.0])
    uv = w * X[:, :2] / X[:, 2:3] + (w - 1) / 2
    lm = np.repeat(uv[:1], 68, axis=0)
    lm[list(T.POSE_LANDMARKS)] = uv
    assert GENERIC.shape == (6, 3)
    return lm


def test_head_pose_recovers_a_known_rotation():
    for yaw, pitch in ((0, 0), (20, 0), (-25, 10)):
        got = T.head_pose(_generic_landmarks(yaw, pitch), 256, 256)
        np.testing.assert_allclose(got[:2], (yaw, pitch), atol=0.5)
        assert abs(got[2]) < 0.5


def test_akd_aed_apd_against_hand_computation(clips):
    frame = V.read_clip(next(clips.glob("*.mp4"))).frames[0]
    t = T.track(frame)
    assert t is not None and t.landmarks.shape == (68, 2)
    assert T.akd68(t, t) == 0 and T.aed(t, t) == 0 and T.apd(t, t) == 0  # the same frame: zero
    lm = t.landmarks
    # mouth opening by hand on raw pixels (the ratio is similarity-invariant)
    d = lambda a, b: np.hypot(*(lm[a] - lm[b]))  # noqa: E731
    hand = (d(61, 67) + d(62, 66) + d(63, 65)) / (3 * d(60, 64))
    assert T.expression(lm)[2] == pytest.approx(hand, rel=1e-9)
    # open the mouth: lower inner lip 3 px down; only mouth_open moves, AED = its change / 7
    moved = lm.copy()
    moved[65:68, 1] += 3.0
    e0, e1 = T.expression(lm), T.expression(moved)
    assert e1[2] > e0[2] and np.allclose(np.delete(e1 - e0, 2), 0, atol=1e-12)
    a, b = T.Track(lm, t.pose_deg, e0), T.Track(moved, t.pose_deg + (3.0, -1.0, 2.0), e1)
    assert T.aed(a, b) == pytest.approx(abs(e1[2] - e0[2]) / 7)
    assert T.apd(a, b) == pytest.approx(2.0)
    assert T.akd68(a, b) == pytest.approx(3.0 * 3 / 68)  # 3 of 68 points moved 3 px


# ------------------------------------------------------------------------------------------ protocols

class _Oracle(Avatar):
    """Renders the last frame it was retargeted to (or the source): every tracker metric must be 0."""

    def __init__(self, image, animatable=True):
        self.info = MethodInfo("oracle", "Oracle", "1", "test double", animatable)
        self._img, self._src = image, image
        h, w = image.shape[:2]
        self.input_camera = Camera(np.array([[w, 0, (w - 1) / 2], [0, w, (h - 1) / 2], [0, 0, 1.0]]), np.eye(4), w, h)
        self.head_center, self.head_radius = np.array([0, 0, 1.0]), 0.1

    def retarget(self, image):
        if image.std() < 1:
            raise InputError("no face")
        self._img = image
        return {"headYaw": 0.0}

    def render(self, camera, controls=None, background=(1, 1, 1)):
        from evaluation.protocols import resize_image
        img = self._img if controls else self._src
        rgb = to_float(resize_image(img, (camera.width, camera.height))).astype(np.float32)
        return RenderResult(rgb, np.ones(rgb.shape[:2], np.float32), np.ones(rgb.shape[:2], np.float32))


class _OracleMethod(Method):
    def __init__(self, animatable=True):
        self.info = MethodInfo("oracle", "Oracle", "1", "test double", animatable)
        self.animatable = animatable

    def reconstruct(self, image):
        return _Oracle(image, self.animatable)


def _run(videos, methods: dict, protocols, out):
    from evaluation import results as R
    from evaluation.protocols import Settings, run_evaluation
    run_evaluation(list(methods), videos, protocols, out, settings=Settings(size=SIZE, lpips_nets=("alex",)),
                   methods=methods, progress=False, strict=True, engine="serial", log=lambda *a: None)
    return {(r["method"]["id"], r["protocol"]["id"], r["subject"]): r for r in R.load_results(out)}


def test_self_and_cross_reenactment_metrics_against_independent_computations(videos, tmp_path):
    from evaluation.metrics import lpips, psnr, ssim
    from evaluation.protocols import face_mask, fit_size, resize_image
    rs = _run(videos, {"oracle": _OracleMethod(), "still": _StillMethod()}, ["self-reenactment", "cross-reenactment"],
              tmp_path)
    sid, other = videos.subject_ids
    # an avatar that reproduces each target: AKD-68, AED, APD are exactly 0, CSIM 1, PSNR infinite (null)
    o = rs[("oracle", "self-reenactment", sid)]
    assert o["status"] == "ok" and o["metrics"]["animated"] == 1 and o["metrics"]["frames_scored"] == 2
    assert o["metrics"]["akd68"] == 0 and o["metrics"]["aed"] == 0 and o["metrics"]["apd"] == 0
    assert o["metrics"]["csim_dlib"] == pytest.approx(1.0) and o["metrics"]["psnr"] is None
    # cross: driven by the other clip, so AED/APD to the driver are 0 and CSIM is to the *source*
    c = rs[("oracle", "cross-reenactment", sid)]
    assert c["metrics"]["aed"] == 0 and c["metrics"]["apd"] == 0 and c["metrics"]["csim_dlib"] < 0.99
    assert any(other in n for n in c["notes"])
    # a method that cannot animate: scored at the source pose and marked; recompute one frame by hand
    st = rs[("still", "self-reenactment", sid)]
    assert st["metrics"]["animated"] == 0 and any("cannot animate" in n for n in st["notes"])
    s = videos.subject(sid)
    wh = fit_size(s.frames[0].shape[1], s.frames[0].shape[0], SIZE)
    pred, tgt_u8 = to_float(resize_image(s.frames[0], wh)), resize_image(s.frames[2], wh)
    tgt = to_float(tgt_u8)
    view = next(v for v in st["views"] if v["view"] == f"frame{s.frame_ids[2]:05d}")
    mse = np.mean((np.asarray(pred, np.float64) - tgt) ** 2)
    assert view["psnr"] == pytest.approx(10 * np.log10(1 / mse), rel=1e-6)
    assert view["ssim"] == pytest.approx(ssim(pred, tgt), rel=1e-6)
    mask = face_mask(tgt_u8)
    assert view["psnr_masked"] == pytest.approx(psnr(pred, tgt, mask), rel=1e-6)
    assert view["lpips_alex"] == pytest.approx(lpips(pred, tgt), rel=1e-5)
    tp, tt = T.track(pred), T.track(tgt_u8)
    assert view["akd68"] == pytest.approx(np.linalg.norm(tp.landmarks - tt.landmarks, axis=1).mean())
    assert view["apd"] == pytest.approx(np.abs(tp.pose_deg - tt.pose_deg).mean(), abs=1e-9)
    assert view["apd"] > 1  # the clip turns: a still avatar is off by degrees


class _StillMethod(_OracleMethod):
    def __init__(self):
        super().__init__(animatable=False)
        self.info = MethodInfo("still", "Still", "1", "test double", False)


def test_cli_run_prints_frames_scored_and_means(videos, clips, tmp_path, capsys):
    from evaluation.__main__ import main
    from evaluation.protocols import EXTRA_METRICS, PROTOCOLS
    assert {"self-reenactment", "cross-reenactment"} <= set(PROTOCOLS) and "aed" in EXTRA_METRICS
    code = main(["run", "--methods", "billboard", "--dataset", f"videos:{clips}", "--protocol", "self-reenactment",
                 "--out", str(tmp_path / "r"), "--engine", "serial", "--quiet", "--size", "64", "--lpips", "alex"])
    text = capsys.readouterr().out
    assert code == 0 and "frame(s) scored" in text and "akd68=" in text and "aed=" in text and "apd=" in text


# ------------------------------------------------------------------------------------------ NeRSemble

def test_nersemble_calibration_becomes_our_camera():
    # a camera 1 m in front of the origin looking at it (OpenCV world_2_cam, as the toolkit documents)
    E = look_at(np.array([0.0, 0.0, 1.0]), np.zeros(3))
    K = np.array([[1000.0, 0, 549.5], [0, 1000.0, 801.5], [0, 0, 1]])
    cam = N.to_camera(E, K, 1100, 1604)
    uv, z = cam.project(np.zeros((1, 3)))
    np.testing.assert_allclose(uv[0], (549.5, 801.5), atol=1e-9)
    assert z[0] == pytest.approx(1.0)
    # calibrated at full size, video at half: focal halves, pixel centres stay at integers
    half = N.to_camera(E, K, 550, 802, calib_size=(1100, 1604))
    assert half.K[0, 0] == pytest.approx(500.0) and half.K[0, 2] == pytest.approx((549.5 + 0.5) / 2 - 0.5)
    with pytest.raises(ValueError, match="rigid"):
        N.to_camera(np.diag([1.0, 1.0, -1.0, 1.0]), K, 1100, 1604)
    # the head centre is where the optical axes meet; the frontal camera is the middle one
    cams = {str(i): Camera(K, look_at(np.array([np.sin(a), 0.1, np.cos(a)]) + (0, 0.2, 0), np.array([0, 0.2, 0])),
                           1100, 1604) for i, a in enumerate(np.deg2rad([-40, -10, 0, 10, 40]))}
    np.testing.assert_allclose(N.head_center(cams), (0, 0.2, 0), atol=1e-9)
    assert N.frontal_serial(cams) == "2"


class _LayoutManager:
    """Reads the toolkit's NVS layout (nersemble_benchmark.constants.ASSETS["nvs"]) with the same method
    names as its NVSDataManager; used only when the toolkit is not installed (see the module note)."""

    def __init__(self, folder, pid):
        self.base = Path(folder) / "nvs" / f"{pid:03d}"

    def list_sequences(self):
        return sorted(p.name for p in (self.base / "sequences").iterdir())

    def list_serials(self, seq):
        return [p.stem.split("_")[1] for p in (self.base / "sequences" / seq / "images").iterdir()]

    def load_camera_calibration(self):
        from types import SimpleNamespace
        return SimpleNamespace(**json.loads((self.base / "calibration" / "camera_params.json").read_text()))

    def _frame(self, path, t):
        return V.read_clip(path).frames[t]

    def load_image(self, seq, serial, t, as_uint8=False):
        return self._frame(self.base / "sequences" / seq / "images" / f"cam_{serial}.mp4", t)

    def load_alpha_map(self, seq, serial, t):
        return self._frame(self.base / "sequences" / seq / "alpha_maps" / f"cam_{serial}.mp4", t)[..., [0]]


def test_nersemble_layout_runs_the_multiview_protocol(tmp_path):
    """A tiny folder in the toolkit's layout (three cameras of the SYNTHETIC set's rig) read back through the
    toolkit when installed, else through _LayoutManager; multiview-gt then applies to it."""
    try:
        from nersemble_benchmark.data.benchmark_data import NVSDataManager as manager
    except ImportError:
        manager = _LayoutManager
    syn = D.load_dataset("synthetic")
    sub = syn.subject(syn.subject_ids[0])
    by_name = {v.name: v for v in sub.views}
    views = [by_name["yaw-030_pitch+00"], by_name["yaw+030_pitch+00"]]
    base = tmp_path / "nvs" / "017"
    calib = {"world_2_cam": {}, "intrinsics": {}}
    w = views[0].camera.width
    rig = {"222200037": (sub.input_camera.resized(w, w), _small(sub.image, w), None)}
    rig.update({s: (v.camera, v.image, v.mask) for s, v in zip(("220700191", "222200041"), views)})
    for serial, (cam, img, mask) in rig.items():
        V.write_clip([img, img], base / "sequences" / "EXP-1" / "images" / f"cam_{serial}.mp4")
        if mask is not None:
            a = np.repeat((mask * 255).astype(np.uint8)[..., None], 3, 2)
            V.write_clip([a, a], base / "sequences" / "EXP-1" / "alpha_maps" / f"cam_{serial}.mp4")
        calib["world_2_cam"][serial] = cam.world_to_cam.tolist()
        calib["intrinsics"][serial] = cam.K.tolist()
    (base / "calibration").mkdir(parents=True)
    (base / "calibration" / "camera_params.json").write_text(json.dumps(calib))
    ds = D.nersemble_folder(tmp_path, manager_factory=manager)
    assert ds.subject_ids == ["017-EXP-1"] and ds.has_views and not ds.synthetic
    s = ds.subject("017-EXP-1")
    assert "camera 222200037" in s.source and len(s.views) == 2 and s.image.shape == (w, w, 3)
    assert np.abs(to_float(s.image) - to_float(_small(sub.image, w))).mean() < 0.03  # H.264, not lossless
    for v in s.views:  # calibration round trip: the toolkit's world_2_cam / intrinsics -> the same Camera
        np.testing.assert_allclose(v.camera.world_to_cam, rig[v.name][0].world_to_cam, atol=1e-9)
        assert v.mask is not None and v.mask.mean() > 0.05
    from evaluation.protocols import PROTOCOLS
    assert PROTOCOLS["multiview-gt"].applicable(ds) is None


def test_nersemble_without_the_toolkit_says_how_to_install(tmp_path, monkeypatch):
    import sys
    (tmp_path / "nvs" / "017" / "sequences").mkdir(parents=True)
    # None in sys.modules makes `import` raise ImportError, also for submodules a test before imported
    for name in ["nersemble_benchmark"] + [m for m in sys.modules if m.startswith("nersemble_benchmark.")]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ValueError, match="requirements-nersemble.txt"):
        D.load_dataset(f"nersemble:{tmp_path}")


# ------------------------------------------------------------------------------------------ reported

def test_committed_published_numbers_load_and_are_never_ranked(tmp_path):
    from evaluation import leaderboard as L
    from evaluation import results as R
    from tests.helpers import make_result
    reported = R.load_results(Path(__file__).resolve().parent.parent / "results" / "reported")
    assert {r["method"]["id"] for r in reported} == {"gagavatar", "lam", "flexavatar"}
    assert all(r["kind"] == "reported" and r["dataset"]["name"] == "VFHQ" and r["resolution"] == 512 for r in reported)
    # verified = read in the primary source, which the entry pins (FlexAvatar: its README at a commit)
    verified = [r for r in reported if r["source"]["verified"]]
    assert [r["method"]["id"] for r in verified] == ["flexavatar"]
    assert all(re.search(r"/blob/[0-9a-f]{40}/", r["source"]["link"]) for r in verified)
    lam = next(r for r in reported if r["method"]["id"] == "lam")
    assert lam["metrics"]["psnr"] == pytest.approx(22.65)
    measured = [make_result(s, ("a", "b"), m, {"psnr": p, "psnr_masked": p + 3, "csim_arcface": 0.5}, protocol="self-reenactment")
                for m, ps in (("x", (10.0, 12.0)), ("y", (20.0, 22.0))) for s, p in zip(("a", "b"), ps)]
    groups = L.groups(measured + reported)
    assert len(groups) == 1
    df = L.leaderboard(next(iter(groups.values())))
    assert list(df.index[:2]) == ["y", "x"] and df.loc["y", "rank"] == 1 and df.loc["x", "psnr"] == pytest.approx(11.0)
    rep = df[df["source"] == "reported"]
    assert len(rep) == 3 and rep["rank"].isna().all() and rep.index.str.endswith("[reported]").all()
    assert df.loc["lam [reported]", "psnr"] == pytest.approx(22.65) and "not ranked" in df.loc["lam [reported]", "status"]
    # never beside synthetic data
    syn = [dict(r, dataset=dict(r["dataset"], synthetic=True)) for r in measured]
    assert len(L.groups(syn + reported)) == 2
    # a reported entry on synthetic data, or without its source, is refused
    bad = dict(lam, dataset=dict(lam["dataset"], synthetic=True))
    with pytest.raises(R.ResultError, match="synthetic"):
        R.validate(bad)
    with pytest.raises(R.ResultError, match="source"):
        R.validate({k: v for k, v in lam.items() if k != "source"})
