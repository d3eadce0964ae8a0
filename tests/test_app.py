"""The Space end to end: the app launched on 127.0.0.1 (a free port) and driven with gradio_client,
with the real registry methods (ours + baselines). One server for the module; ~40 s in all."""
from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace

import httpx
import imageio.v2 as imageio
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from skimage import data

import app
from model.core.export import read_ply, read_splat
from model.head import rig
from model.head.rig import CONTROLS
from model.ours.live import read_pack
from tests.helpers import mirror_frame_payload

NEUTRAL = [CONTROLS[n].neutral for n in CONTROLS]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")  # empty at first: the leaderboard says so
    with app.serving(results_dir=results) as (demo, url):  # warmed up first: compile time stays out of the timings
        yield SimpleNamespace(url=url, demo=demo, results=results)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    astro = data.astronaut()
    Image.fromarray(astro).save(d / "astronaut.png")
    head = astro[20:300, 90:330]  # mediapipe's detector misses the faces in a 1024-wide pair of full photos
    Image.fromarray(np.concatenate([head, head[:, ::-1]], axis=1)).save(d / "two_faces.png")
    Image.fromarray(data.coffee()).save(d / "coffee.png")
    Image.fromarray(astro[:32, :32]).save(d / "tiny.png")
    (d / "notes.png").write_text("this is not an image")
    (d / "truncated.png").write_bytes((d / "astronaut.png").read_bytes()[:5000])
    Image.new("L", (8000, 7000)).save(d / "bomb.png")  # 56 MP, a few kB: over the pixel limit
    (d / "empty.mp4").write_bytes(b"")
    return d


def client(server, tmp_path) -> Client:
    return Client(server.url, verbose=False, download_files=str(tmp_path))


def _img(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(np.float32)


def _non_white(img: np.ndarray) -> float:
    return float((img.min(-1) < 235).mean())


def test_create_rotate_animate_download(server, files, tmp_path):
    c = client(server, tmp_path)
    live, view, anim, downloads, summary, yaw, pitch = c.predict(handle_file(files / "astronaut.png"), "ours",
                                                           api_name="/reconstruct")
    assert "HeadSplat" in summary and "animatable: yes" in summary and (yaw, pitch) == (0, 0)
    ply, splat = sorted(downloads, key=lambda p: Path(p).suffix)  # .ply, .splat
    g = read_ply(ply)  # the download loads back as 3DGS
    n = int(summary.split("·")[1].split("Gaussians")[0].replace(",", ""))
    assert len(g) == n > 10_000
    assert len(read_splat(splat)) == n
    assert read_pack(Path(live).read_bytes()).header["counts"]["gaussians"] == n  # what the live viewer loads
    assert np.allclose(np.sort(read_splat(splat).means, axis=0), np.sort(g.means, axis=0), atol=1e-6)

    front = _img(view)
    assert front.shape == (app.VIEW_PX, app.VIEW_PX, 3) and _non_white(front) > 0.15
    side = _img(c.predict(90, 0, *NEUTRAL, api_name="/view"))
    assert np.abs(side - front).mean() > 5  # a different view, not the same frame again
    # the rig: opening the jaw changes the lower face and leaves the top of the head alone
    jaw = list(NEUTRAL)
    jaw[list(CONTROLS).index("jawOpen")] = 1.0
    neutral = _img(c.predict(0, 0, *NEUTRAL, api_name="/animate_view"))
    opened = _img(c.predict(0, 0, *jaw, api_name="/animate_view"))
    assert np.abs(neutral - front).mean() < 1.0  # same camera, same pose (JPEG noise only)
    diff = np.abs(opened - neutral).mean(-1)
    # the jaw moves the face, not the hair on top (the package's framing holds the bust too: the mouth sits
    # just above the view's middle, so the check is the view below its top quarter against that quarter)
    assert diff[app.VIEW_PX // 4:].mean() > 4 * diff[: app.VIEW_PX // 4].mean() and diff.mean() > 0.5
    smile = dict(zip(CONTROLS, c.predict("smile", api_name="/preset")))
    assert smile["mouthSmileLeft"] == app.PRESETS["smile"]["mouthSmileLeft"] and smile["jawOpen"] == 0


def test_the_same_photo_twice_is_built_once(server, files, tmp_path, monkeypatch):
    """Gradio's Image fires `change` twice when a new file replaces one (and Create again repeats a photo):
    the second request of a visitor, at the same time or later, gets the avatar already built, and the
    live view's file again (the page may not have the first answer yet)."""
    from model.ours.avatar import HeadSplat
    built = []
    original = HeadSplat.reconstruct
    monkeypatch.setattr(HeadSplat, "reconstruct", lambda self, image: built.append(1) or original(self, image))
    c = client(server, tmp_path)
    c.predict(handle_file(files / "two_faces.png"), "ours", api_name="/reconstruct")  # the photo replaced next
    jobs = [c.submit(handle_file(files / "astronaut.png"), "ours", api_name="/reconstruct") for _ in range(2)]
    first, second = (j.result() for j in jobs)
    assert len(built) == 2, f"the same photo was reconstructed {len(built) - 1} times for one visitor"
    assert Path(first[0]).read_bytes() == Path(second[0]).read_bytes()  # the same live pack
    c.predict(handle_file(files / "astronaut.png"), "ours", api_name="/reconstruct")  # Create again
    assert len(built) == 2


@pytest.mark.parametrize("name, message", [
    ("notes.png", "not a readable image"),
    ("truncated.png", "not a readable image"),
    ("coffee.png", "no face found"),
    ("tiny.png", "too small"),
    ("bomb.png", "too large"),
])
def test_bad_photos_give_a_message_not_a_traceback(server, files, tmp_path, name, message):
    with pytest.raises(AppError, match=message) as e:
        client(server, tmp_path).predict(handle_file(files / name), "ours", api_name="/reconstruct")
    assert "Traceback" not in str(e.value)


def test_several_faces_are_reported(server, files, tmp_path):
    summary = client(server, tmp_path).predict(handle_file(files / "two_faces.png"), "ours",
                                               api_name="/reconstruct")[4]
    assert "2 faces found; using the largest" in summary


def test_uploads_over_the_size_limit_are_refused(server, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (app.MAX_UPLOAD_MB * 2**20 + 1))
    with big.open("rb") as f:
        r = httpx.post(server.url + "gradio_api/upload", files={"files": ("big.png", f, "image/png")}, timeout=60)
    assert r.status_code == 413 and "maximum allowed size" in r.text


def _clip(path: Path, frames, fps: float) -> Path:
    with imageio.get_writer(path, fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=2,
                            ffmpeg_log_level="error") as w:
        for f in frames:
            w.append_data(f)
    return path


def test_videos_turntable_and_driving(server, files, tmp_path):
    c = client(server, tmp_path)
    with pytest.raises(AppError, match="create an avatar first"):
        c.predict(api_name="/turntable")
    c.predict(handle_file(files / "astronaut.png"), "ours", api_name="/reconstruct")
    video, mp4 = c.predict(api_name="/turntable")
    assert imageio.get_reader(mp4).count_frames() == app.TURNTABLE_FRAMES

    astro = data.astronaut()
    clip = _clip(tmp_path / "talk.mp4", [np.roll(astro, 4 * i, axis=1) for i in range(12)], fps=12)
    both, anim, note, seq = c.predict(handle_file(clip), api_name="/drive")
    assert "tracked 12/12 frames" in note
    times, controls = rig.read_sequence(json.loads(Path(seq).read_text()))  # the live view plays this
    assert len(controls) == 12 and times[1] == pytest.approx(1 / 12)
    frames = imageio.get_reader(both).get_data(0)
    assert frames.shape[0] == app.VIDEO_PX and frames.shape[1] == 2 * app.VIDEO_PX  # square source | avatar
    assert imageio.get_reader(anim).count_frames() == 12

    coffee = _clip(tmp_path / "coffee.mp4", [data.coffee()[:384, :384]] * 3, fps=12)
    long = _clip(tmp_path / "long.mp4", [np.zeros((64, 64, 3), np.uint8)] * int(2 * (app.MAX_VIDEO_S + 1)), fps=2)
    for path, message in [(coffee, "no face found in any frame"), (long, "limit is"),
                          (files / "empty.mp4", "not a readable video"), (files / "notes.png", "not a readable video")]:
        with pytest.raises(AppError, match=message):
            c.predict(handle_file(path), api_name="/drive")


def test_compare_methods_on_the_same_views(server, files, tmp_path):
    c = client(server, tmp_path)
    grid, table = c.predict(handle_file(files / "astronaut.png"), ["ours", "billboard"], api_name="/compare")
    assert "| 1 | HeadSplat |" in table and "| 2 | Billboard |" in table
    grid = _img(grid)
    n = 1 + len(app.COMPARE_YAWS_DEG)  # the photo, then the views
    assert grid.shape == (2 * app.COMPARE_PX, app.COMPARE_PX * n, 3)
    strips = [grid[: app.COMPARE_PX], grid[app.COMPARE_PX:]]
    assert np.abs(strips[0][:, : app.COMPARE_PX] - strips[1][:, : app.COMPARE_PX]).mean() < 2  # same photo
    # at yaw 90 the billboard is edge-on: far less of it than of a full head
    k = 1 + app.COMPARE_YAWS_DEG.index(90)
    side = slice(k * app.COMPARE_PX, (k + 1) * app.COMPARE_PX)
    assert _non_white(strips[1][:, side]) < 0.5 * _non_white(strips[0][:, side])


def test_a_lam_package_opens_animates_and_joins_the_comparison(server, files, tmp_path, ours_astronaut):
    """A LAM avatar zip (here one the exporter makes; LAM's own are read the same way, tests/test_lam.py)
    opened on the Create tab: shown, animated by the rig's controls, added to Compare, aligned to the photo."""
    from model.ours.lam_export import export_lam_package
    package = export_lam_package(ours_astronaut, tmp_path / "astronaut_lam.zip")
    c = client(server, tmp_path / "dl")
    live, view, _, _, summary, _, _ = c.predict(handle_file(package), api_name="/open_lam")
    assert "LAM (imported package)" in summary and "animatable: yes" in summary
    assert Path(live).suffix == ".splat" and 20_000 <= len(read_splat(live)) <= 40_000  # no live pack: static
    front = _img(view)
    assert _non_white(front) > 0.15
    jaw = list(NEUTRAL)
    jaw[list(CONTROLS).index("jawOpen")] = 1.0
    opened = _img(c.predict(0, 0, *jaw, api_name="/animate_view"))
    diff = np.abs(opened - _img(c.predict(0, 0, *NEUTRAL, api_name="/animate_view"))).mean(-1)
    # the jaw moves the face, not the hair on top (the package's framing holds the bust too: the mouth sits
    # just above the view's middle, so the check is the view below its top quarter against that quarter)
    assert diff[app.VIEW_PX // 4:].mean() > 4 * diff[: app.VIEW_PX // 4].mean() and diff.mean() > 0.5
    grid, table = c.predict(handle_file(files / "astronaut.png"), ["billboard"], api_name="/compare")
    assert "| 2 | LAM (imported package) (opened on the Create tab) | aligned to this photo" in table
    assert _img(grid).shape[0] == 2 * app.COMPARE_PX
    with pytest.raises(AppError, match="not a zip archive"):
        c.predict(handle_file(files / "notes.png"), api_name="/open_lam")


def test_sessions_are_isolated_and_cleaned_up(server, files, tmp_path):
    a, b = client(server, tmp_path / "a"), client(server, tmp_path / "b")
    a.predict(handle_file(files / "astronaut.png"), "billboard", api_name="/reconstruct")
    # b has no avatar of its own and cannot reach a's
    assert b.predict(0, 0, *NEUTRAL, api_name="/view") in (None, {"__type__": "update"})
    with pytest.raises(AppError, match="create an avatar first"):
        b.predict(api_name="/turntable")
    holder = server.demo.server_app.state_holder
    session = next(v for v in holder[a.session_hash].state_data.values() if isinstance(v, app.Session))
    ply = session.file("avatar.ply")
    assert ply.is_file() and session.dir.parent == app.session_root()
    r = httpx.get(f"{server.url}gradio_api/file={ply}")
    assert r.status_code == 403  # session files are never served directly
    assert all(s.time_to_live == app.STATE_TTL_S for s in server.demo.blocks.values() if type(s).__name__ == "State")
    holder.delete_state(a.session_hash)  # what gradio does when the state expires or the tab is gone
    assert not session.dir.exists()


def test_concurrent_clients(server, files, tmp_path):
    """3 visitors at once, each: upload -> reconstruct -> 2 slider renders. All must succeed."""
    errors, done = [], []

    def visit(i):
        try:
            c = client(server, tmp_path / str(i))
            c.predict(handle_file(files / "astronaut.png"), "ours", api_name="/reconstruct")
            for yaw in (30 * i, -30 * i):
                assert _non_white(_img(c.predict(yaw, 10, *NEUTRAL, api_name="/view"))) > 0.1
            done.append(i)
        except Exception as e:  # collected: a thread's assert would not fail the test
            errors.append(f"{i}: {e!r}")

    threads = [threading.Thread(target=visit, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and sorted(done) == [0, 1, 2]


def test_a_picture_shown_to_visitors_at_once_is_never_read_half_written(tmp_path):
    """app.image_file, as three visitors shown the same first view at once use it: while they write the same
    picture over and over, a reader (the file server) always finds the whole file. Gradio's own cache, given
    the array, rewrote the file in place, and test_concurrent_clients failed now and then with a response
    shorter than its Content-Length."""
    rgb = np.ascontiguousarray(data.astronaut()[::2, ::2])
    sessions = [app.Session(tmp_path) for _ in range(3)]
    path = Path(app.image_file(rgb))  # the sessions' root: no session (Compare before any avatar)
    whole = path.read_bytes()
    short, stop = [], threading.Event()

    def write(session):
        while not stop.is_set():
            app.image_file(rgb)
            app.image_file(rgb, session)

    writers = [threading.Thread(target=write, args=(s,)) for s in sessions]
    for t in writers:
        t.start()
    try:
        for _ in range(300):
            if path.read_bytes() != whole:
                short.append(1)
    finally:
        stop.set()
        for t in writers:
            t.join()
    assert not short
    assert len({app.image_file(rgb, s) for s in sessions}) == 3  # each visitor's own file, removed with it
    assert np.abs(np.asarray(Image.open(path), float) - rgb).mean() < 8  # the picture, as a JPEG


def test_leaderboard_reads_results_and_refreshes(server, tmp_path):
    from evaluation import results as R
    from tests.helpers import make_result
    c = client(server, tmp_path)
    status = c.predict(api_name="/leaderboard")[-1]
    assert status == app.NO_RESULTS
    subjects = ("a", "b")
    for subject, psnr in zip(subjects, (20.0, 24.0)):
        for method, off in (("ours", 2.0), ("billboard", 0.0)):
            r = make_result(subject, subjects, method, {"psnr_masked": psnr + off, "lpips_alex_masked": 0.2 - off / 20})
            R.write_result(R.result_path(server.results, "ds", "input-view", method, subject), r)
    group, table, bars, yaw, status = c.predict(None, api_name="/leaderboard_refresh")
    assert "1 leaderboard(s) from 4 result file(s)" in status
    rows = {row[0]: dict(zip(table["headers"], row)) for row in table["data"]}
    assert set(rows) == {"ours", "billboard"}
    assert rows["ours"]["psnr_masked ↑"] == pytest.approx(24.0) and rows["ours"]["rank"] == 1
    assert bars is not None and bars["type"] == "plotly"
    from evaluation.leaderboard import metric_definitions
    defs = metric_definitions()
    assert "`psnr`" in defs and "`hole_fraction`" in defs


def test_footer_names_the_render_backend(server):
    from model.core.render import available_backends
    html = [b.value for b in server.demo.blocks.values() if type(b).__name__ == "HTML"]
    backend = available_backends()[0]
    assert any("Renderer backend" in h and ("CPU" if backend == "cpu" else "gsplat") in h for h in html)


def test_mirror_frames_become_controls_and_bad_frames_hold_the_pose(server, files, tmp_path):
    c = client(server, tmp_path)
    astro = data.astronaut()
    first = json.loads(c.predict(mirror_frame_payload(astro), api_name="/mirror_frame"))
    assert first["controls"] is None and first["stop"] and "create an animatable avatar" in first["notice"]
    c.predict(handle_file(files / "astronaut.png"), "ours", api_name="/reconstruct")
    # a stream's first faces are the visitor's rest face: the first always, a few more if they come soon
    r = json.loads(c.predict(mirror_frame_payload(astro, 1), api_name="/mirror_frame"))
    assert r["controls"] is None and "rest face" in r["notice"] and "(1/" in r["notice"]
    for _ in range(app.MIRROR_REST_FRAMES):
        r = json.loads(c.predict(mirror_frame_payload(astro, 7.5), api_name="/mirror_frame"))
        if r["controls"] is not None:
            break
    assert r["t"] == 7.5 and r["notice"] is None and set(r["controls"]) <= set(CONTROLS)
    # the rest face itself is no expression, at the photo's own head pose
    # (0.064 measured: the rest face is spread over the mesh by a soft landmark corrective, not met exactly)
    assert max(abs(v) for k, v in r["controls"].items() if k in rig.EXPRESSIONS) < 0.1, r["controls"]
    assert abs(r["controls"]["headYaw"]) < 0.05
    r = json.loads(c.predict(mirror_frame_payload(astro, 8, rest=True), api_name="/mirror_frame"))
    assert r["controls"] is None and "(1/" in r["notice"]  # the page asked for the rest face again
    two = np.asarray(Image.open(files / "two_faces.png").convert("RGB"))
    for image, notice in [(data.coffee(), "no face"), (np.full((480, 640, 3), 6, np.uint8), "too dark"),
                          (two, "several faces")]:
        r = json.loads(c.predict(mirror_frame_payload(image), api_name="/mirror_frame"))
        assert r["controls"] is None and notice in r["notice"] and not r.get("stop")
    r = json.loads(c.predict('{"t": 1, "jpeg": "data:image/jpeg;base64,!!!"}', api_name="/mirror_frame"))
    assert r["controls"] is None and "malformed" in r["notice"]


def test_control_sequences_upload_and_render(server, files, tmp_path):
    c = client(server, tmp_path)
    c.predict(handle_file(files / "astronaut.png"), "ours", api_name="/reconstruct")
    seq = tmp_path / "seq.json"
    seq.write_text(json.dumps(rig.sequence_dict([i / 10 for i in range(6)], [{"jawOpen": i / 5} for i in range(6)])))
    path, note = c.predict(handle_file(seq), api_name="/sequence")
    assert "playing 6 frames (10 fps" in note
    video, mp4 = c.predict(handle_file(seq), api_name="/render_sequence")
    assert imageio.get_reader(mp4).count_frames() == 6
    bad = tmp_path / "bad.json"
    bad.write_text('{"names": ["jawOpen"], "frames": []}')
    with pytest.raises(AppError, match="no frames"):
        c.predict(handle_file(bad), api_name="/sequence")
