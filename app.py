"""HeadSplat Hub: the Gradio Space. One portrait in, a 360° animatable head of 3D Gaussians out.

The UI only wires together what model/, baselines/ and evaluation/ provide. `build_app()` returns the
Blocks (queue configured) so tests can launch it; `python app.py` serves it on 127.0.0.1:7860
(GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override; the Space sets 0.0.0.0).

Privacy and clean-up: each visitor's avatar lives in a gr.State, their files in a private temp dir
(never served: gradio serves only the copies it makes of returned files, under content-hashed names).
The dir is removed when gradio drops the session's state (STATE_TTL_S after the last reconstruction,
or an hour after the tab closes) and at exit; gradio's cached copies are deleted after an hour (CACHE_CLEAN).

GPU: model.core.render picks gsplat automatically when CUDA is present; on a ZeroGPU Space the heavy
handlers are wrapped with `spaces.GPU` (see `_gpu`). The footer shows the active backend.
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np

import web
from baselines.registry import get_method, list_methods
from model.core.camera import framing_camera
from model.core.errors import InputError
from model.core.image_io import load_image, to_uint8
from model.core.render import available_backends
from model.head import rig

log = logging.getLogger("headsplat.app")

ROOT = Path(__file__).resolve().parent
RESULTS_DIR = ROOT / "results"
DEFAULT_METHOD = "ours"

VIEW_PX = 512  # server-rendered view (yaw/pitch and rig sliders)
COMPARE_PX = 224
COMPARE_YAWS_DEG = (-90, -45, 0, 45, 90, 180)
TURNTABLE_FRAMES = 72
VIDEO_PX = 384

MAX_UPLOAD_MB = 20  # enforced by gradio before our code runs (launch(max_file_size=...))
MAX_VIDEO_S = 10.0
DRIVE_FPS = 12  # a driving clip is tracked at this rate: enough for speech, 2x fewer frames than 24 fps
MAX_DRIVE_SIDE = 640  # driving frames are downscaled to this long side before tracking

QUEUE_MAX_SIZE = 64
HEAVY_CONCURRENCY = 2  # reconstruct / videos / compare: each already uses both cores
RENDER_CONCURRENCY = 4  # slider renders are short; keep them out of the heavy jobs' queue
STATE_TTL_S = 3600
CACHE_CLEAN = (600, 3600)  # gradio's cached copies: check every 10 min, delete after an hour

PRESETS = {  # rig control values (names from model.head.rig.CONTROLS; absent names are ignored)
    "neutral": {},
    "smile": {"mouthSmileLeft": 0.9, "mouthSmileRight": 0.9},
    "surprise": {"jawOpen": 0.55, "browInnerUp": 1.0},
    "talk (ah)": {"jawOpen": 0.35},
    "kiss": {"mouthPucker": 0.9, "mouthFunnel": 0.5},
    "frown": {"browDownLeft": 0.9, "browDownRight": 0.9, "mouthFrownLeft": 0.8, "mouthFrownRight": 0.8},
    "wink": {"eyeBlinkLeft": 1.0, "mouthSmileLeft": 0.5},
    "turn to their left": {"eyeLookOutLeft": 0.3, "eyeLookInRight": 0.3, "headYaw": 0.5},
}
CONTROL_GROUPS = (  # how the rig sliders are laid out; controls not listed go to "other"
    ("mouth", ("jaw", "mouth")),
    ("eyes and brows", ("eye", "brow")),
    ("head pose", ("head",)),
)


# ------------------------------------------------------------------------------ the live viewer
# The page talks to the browser viewer (web/, bundled into web/dist/viewer.js and served from this app)
# through its page API, window.headsplat (documented in web/src/viewer.js). These event handlers run in
# the page only (gradio events with fn=None): moving a slider makes no request to the server.
LIVE_VIEWER_HTML = ('<div id="live-viewer" style="width:100%;aspect-ratio:1/1;max-height:70vh;position:relative">'
                    '</div><div class="hs-hint">drag to orbit · wheel or pinch to zoom · the avatar is drawn '
                    'and animated in your browser</div>')
MIRROR_HTML = ('<video id="mirror-cam" autoplay muted playsinline style="width:100%;transform:scaleX(-1);'
               'background:#eee;aspect-ratio:4/3"></video><div id="mirror-notice" class="hs-hint"></div>'
               '<a id="mirror-download" hidden></a>')
LIVE_CSS = """
.hs-hidden { display: none !important; }
#live-viewer canvas { display: block; }
#live-viewer .hs-live-message { position: absolute; inset: 0; display: flex; align-items: center;
  justify-content: center; text-align: center; padding: 1.5em; background: #f6f6f6; color: #333; }
#live-viewer .hs-live-message[hidden] { display: none; }
#live-viewer .hs-live-progress { position: absolute; left: 0; right: 0; top: 45%; text-align: center;
  color: #333; font-size: 0.95em; }
#live-viewer .hs-live-progress[hidden] { display: none; }
.hs-hint { font-size: 0.85em; opacity: 0.7; }
"""
_HS = "(window.headsplat && window.headsplat.viewer)"
JS_LOAD = f"(f) => {{ if (f && {_HS}) window.headsplat.viewer.load(f); return []; }}"
# an upload starts: the previous avatar leaves the live view at once and a progress line shows (no stale
# person while the server builds); if the server fails, the page shows the avatar it had (the session kept it)
JS_PENDING = f"(f) => {{ if (f && {_HS}) window.headsplat.viewer.pending(); return []; }}"
JS_RESTORE = f"() => {{ {_HS} && window.headsplat.viewer.restore(); return []; }}"
JS_ATTACH = "() => { requestAnimationFrame(() => window.headsplat && window.headsplat.attach('%s')); return []; }"
JS_VIEW = f"(y, p) => {{ {_HS} && window.headsplat.viewer.setView(y, p); return []; }}"
JS_CONTROL = f"(v) => {{ {_HS} && window.headsplat.viewer.setControls({{[%s]: v}}); return []; }}"
JS_PRESET = f"""(name) => {{
  const presets = %s, names = %s, neutral = %s;
  const p = presets[name] || {{}};
  const values = names.map((n, i) => (n in p ? p[n] : neutral[i]));
  {_HS} && window.headsplat.viewer.resetControls(Object.fromEntries(names.map((n, i) => [n, values[i]])));
  return values;
}}"""
JS_PLAY = f"""async (f) => {{
  if (!f || !{_HS}) return [];
  const seq = await (await fetch(f.url)).json();
  const video = document.querySelector(%s);
  window.headsplat.viewer.play(seq, {{ video }});
  if (video) {{ video.currentTime = 0; video.play().catch(() => {{}}); }}
  return [];
}}"""


def viewer_head() -> str:
    """<head> markup loading the viewer bundle (built now when missing or stale), or '' when it cannot be
    built: the page then keeps the server render and says so."""
    try:
        bundle = web.build()
    except web.BuildError:
        log.exception("the live viewer could not be built; the server render stays")
        return ""
    gr.set_static_paths([bundle.parent])
    version = int(bundle.stat().st_mtime)
    return f'<script type="module" src="/gradio_api/file={bundle}?v={version}"></script>'


# ----------------------------------------------------------------------------------- sessions

class Session:
    """One visitor's avatar and files. Files live in a private temp dir removed with the session."""

    def __init__(self, root: Path):
        self.dir = Path(tempfile.mkdtemp(prefix="s-", dir=root))
        self.avatar = None
        self.method_id: str | None = None
        self.photo_key: str | None = None  # hash of the photo the avatar was made from
        self.building = threading.Lock()  # one reconstruction at a time per visitor (see reconstruct)
        self.shown: str | None = None  # the file the live view shows (its live pack or .splat)
        self.mirror_since = self.mirror_last = 0.0  # monotonic seconds: the mirror stream's start, last frame
        self.mirror_rest: list = []  # the visitor's rest face: neutral_offsets of a stream's first faces
        self.mirror_rest_at = 0.0  # monotonic seconds: when the first of them came

    def file(self, name: str) -> Path:
        return self.dir / name

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _close_session(value) -> None:
    if isinstance(value, Session):
        value.close()


_SESSION_ROOT: Path | None = None


def session_root() -> Path:
    """Parent of every session dir (one per process, removed at exit)."""
    global _SESSION_ROOT
    if _SESSION_ROOT is None:
        _SESSION_ROOT = Path(tempfile.mkdtemp(prefix="headsplat-sessions-"))
        atexit.register(shutil.rmtree, _SESSION_ROOT, True)
    return _SESSION_ROOT


def _avatar(session, animatable: bool = False):
    if not isinstance(session, Session) or session.avatar is None:
        raise InputError("create an avatar first: upload a photo on the Create tab")
    if animatable and not session.avatar.animatable:
        raise InputError(f"the {session.method_id} avatar cannot be animated: create one with HeadSplat (ours)")
    return session.avatar


# ------------------------------------------------------------------------------------ methods

_methods: dict = {}
_methods_lock = threading.Lock()


def load_method(method_id: str):
    """The registry's method instance, built once per process."""
    with _methods_lock:
        if method_id not in _methods:
            _methods[method_id] = get_method(method_id)
        return _methods[method_id]


def _gpu(fn):
    """Mark a handler as GPU work for a ZeroGPU Space (the `spaces` package exists only there);
    elsewhere a no-op. Tested with a stand-in `spaces` in tests/test_gpu_check.py."""
    if os.getenv("SPACES_ZERO_GPU"):
        try:
            import spaces
        except Exception as e:  # absent, or refusing to start (CPU-only torch, no SPACES_ZERO_DEVICE_API_URL)
            log.warning("SPACES_ZERO_GPU is set but `spaces` is unusable (%s: %s); handlers run unwrapped",
                        type(e).__name__, e)
            return fn
        return spaces.GPU(fn)
    return fn


def user_errors(fn):
    """Bad input -> its message in the UI (gr.Error), never a traceback; other failures are logged
    and reported by type only."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except InputError as e:
            raise gr.Error(str(e), title="Please check your input", print_exception=False) from None
        except Exception as e:
            log.exception("%s failed", fn.__name__)
            raise gr.Error(f"internal error ({type(e).__name__}); it has been logged. Please try another input.",
                           print_exception=False) from None
    return wrapper


def _upload_path(value) -> str:
    """The server path of an uploaded file: handlers run with preprocess=False so that every bad
    file reaches load_image (and its clear messages) instead of failing in gradio's decoder. (Gradio
    still checks, before any handler runs, that the path is one of its own uploads.)"""
    if value is None:
        raise InputError("no file: upload one first")
    path = value.get("path") if isinstance(value, dict) else getattr(value, "path", value)
    if not path:
        raise InputError("no file: upload one first")
    return str(path)


def _controls(names: list[str], values, avatar) -> dict | None:
    """Slider values -> the controls dict for render(): None when neutral or not animatable (the
    neutral Gaussians are cached by the avatar)."""
    if not avatar.animatable:
        return None
    c = {n: float(v) for n, v in zip(names, values) if v is not None and abs(float(v) - rig.CONTROLS[n].neutral) > 1e-6}
    return c or None


def image_file(rgb: np.ndarray, session=None) -> str:
    """An image output (uint8 [H,W,3]) as a JPEG file named by its content, written whole before it gets its
    name, in the visitor's session dir (or the sessions' root). Given an array, gradio writes its cached copy in
    place under a name made of the content: two visitors shown the same picture at once (the example photo's
    first view) had one of them served a file the other's request was rewriting. A path it copies atomically."""
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=92)
    data = buf.getvalue()
    path = (session.dir if isinstance(session, Session) else session_root()) / f"{hashlib.sha1(data).hexdigest()}.jpg"
    if not path.exists():
        fd, part = tempfile.mkstemp(dir=path.parent, suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(part, path)
    return str(path)


def render_view(avatar, yaw_deg: float, pitch_deg: float, controls=None, size: int = VIEW_PX) -> np.ndarray:
    """uint8 [size,size,3]: the avatar seen from an orbit camera framed on its head, white background."""
    cam = framing_camera(avatar.head_center, avatar.head_radius, np.deg2rad(yaw_deg), np.deg2rad(pitch_deg), size)
    return to_uint8(avatar.render(cam, controls, background=(1.0, 1.0, 1.0)).rgb)


# ------------------------------------------------------------------------------------ handlers

def _summary(avatar, method_id: str, seconds: float) -> str:
    meta = avatar.metadata()
    lines = [f"**{avatar.info.name}** · {meta.get('gaussians', '?'):,} Gaussians · reconstructed in {seconds:.2f} s"
             if isinstance(meta.get("gaussians"), int) else f"**{avatar.info.name}** · reconstructed in {seconds:.2f} s"]
    if getattr(avatar, "timings", None):
        lines.append("steps: " + ", ".join(f"{k} {v:.2f} s" for k, v in avatar.timings.items() if k != "total"))
    lines.append("animatable: " + ("yes — see the Animate tab" if avatar.animatable else "no (static method)"))
    for w in meta.get("warnings", []):
        lines.append(f"⚠️ {w}")
    return "\n\n".join(lines)


@user_errors
@_gpu
def reconstruct(photo, method_id, session, progress=gr.Progress()):
    """Photo (upload / webcam / example) -> avatar in the session; outputs: see _created()."""
    t0 = time.perf_counter()
    if photo is None:
        return (gr.skip(),) * 8  # the image was cleared: leave every output as it is
    progress(0.05, desc="reading the photo")
    image = load_image(_upload_path(photo))
    method_id = method_id or DEFAULT_METHOD
    key = hashlib.sha1(image.tobytes()).hexdigest()
    # gradio's Image fires `change` twice when a new file replaces one: the second call waits for the
    # first and finds the avatar built (so does Create again with the same photo and method); it names
    # the live view's file again, as the page may not have the first call's answer yet
    with session.building if isinstance(session, Session) else contextlib.nullcontext():
        if isinstance(session, Session) and session.avatar is not None and (
                session.method_id, session.photo_key) == (method_id, key):
            return (gr.skip(), session.shown) + (gr.skip(),) * 6
        progress(0.15, desc=f"reconstructing with {method_id}")
        avatar = load_method(method_id).reconstruct(image)
        session = _install(session, avatar, method_id, key)
        progress(0.8, desc="exporting")
        return _created(session, avatar, method_id, time.perf_counter() - t0)


@user_errors
@_gpu
def open_lam(package, session, progress=gr.Progress()):
    """A LAM avatar package (.zip, made by LAM or by this hub) -> the session's avatar, with the same
    outputs as reconstruct(): it is viewed, animated (ARKit names and our rig's controls), rendered and
    downloaded like ours, in the package's own head frame (no photo to align it to)."""
    from baselines.lam import load_lam_package
    t0 = time.perf_counter()
    if package is None:
        return (gr.skip(),) * 8
    progress(0.1, desc="reading the LAM package")
    path = _upload_path(package)
    avatar = load_lam_package(path)  # LamPackageError (an InputError) names what is wrong
    session = _install(session, avatar, "lam-import", None)  # no photo: Compare aligns it to the photo itself
    progress(0.8, desc="exporting")
    return _created(session, avatar, "lam-import", time.perf_counter() - t0)


def _install(session, avatar, method_id: str, key: str | None) -> Session:
    """The new avatar in the visitor's session (a new session on the first one)."""
    if not isinstance(session, Session):
        session = Session(session_root())
    session.avatar, session.method_id, session.photo_key = avatar, method_id, key
    return session


def _created(session: Session, avatar, method_id: str, seconds: float) -> tuple:
    """reconstruct()'s outputs: session, the file the live viewer loads (its live pack, or the .splat of an
    avatar without one), the frontal server render (Create and Animate tabs), .ply + .splat downloads,
    a summary, view sliders reset."""
    ply = avatar.export_ply(session.file("avatar.ply"))
    splat = avatar.export_splat(session.file("avatar.splat"))
    pack = avatar.live_pack() if hasattr(avatar, "live_pack") else None
    shown = splat
    if pack is not None:
        shown = session.file("avatar.hslp")
        shown.write_bytes(pack)
    session.shown = str(shown)
    view = image_file(render_view(avatar, 0.0, 0.0), session)
    for w in avatar.metadata().get("warnings", []):
        gr.Warning(w)
    return session, session.shown, view, view, [str(ply), str(splat)], _summary(avatar, method_id, seconds), 0, 0


def make_view_fn(names: list[str]):
    def view(session, yaw, pitch, *values):
        """Slider move -> a new server render (image_file of a [VIEW_PX,VIEW_PX,3] render); nothing before an avatar
        exists."""
        if not isinstance(session, Session) or session.avatar is None:
            return gr.skip()
        a = session.avatar
        return image_file(render_view(a, float(yaw), float(pitch), _controls(names, values, a)), session)
    return user_errors(view)


def make_preset_fn(names: list[str]):
    def preset(name: str) -> list[float]:
        if name not in PRESETS:
            raise InputError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return [PRESETS[name].get(n, rig.CONTROLS[n].neutral) for n in names]
    return user_errors(preset)


@user_errors
@_gpu
def turntable(session, progress=gr.Progress()):
    """A full turn around the head as mp4 (the avatar's neutral pose)."""
    from model.core.video import turntable_frames, write_mp4
    avatar = _avatar(session)
    frames = progress.tqdm(turntable_frames(avatar, TURNTABLE_FRAMES, VIDEO_PX), total=TURNTABLE_FRAMES,
                           desc="rendering the turntable")
    path = write_mp4(frames, session.file("turntable.mp4"))
    return str(path), str(path)


@user_errors
def lam_package(session):
    """Our avatar as a LAM-style zip (offset.ply, skin.glb with 52 ARKit morph targets, animation.glb,
    vertex_order.json; ~40k merged Gaussians) for LAM's web renderer and chat-avatar stacks."""
    from model.ours.lam_export import export_lam_package
    avatar = _avatar(session, animatable=True)
    if not hasattr(avatar, "binding"):
        raise InputError(f"a LAM package is made from a HeadSplat avatar, not from {session.method_id}")
    return str(export_lam_package(avatar, session.file("avatar_lam.zip")))


PERFORMANCE_FPS = 15


def _preset_performance(names: list[str], seconds_per_pose: float = 0.6, fps: int = PERFORMANCE_FPS) -> list[dict]:
    """Controls for a short performance that blends through the presets and back to neutral."""
    keys = [p for p in PRESETS if p != "neutral"]
    poses = [{}] + [PRESETS[k] for k in keys] + [{}]
    n = max(2, int(seconds_per_pose * fps))
    out = []
    for a, b in zip(poses, poses[1:]):
        for t in np.linspace(0, 1, n, endpoint=False):
            w = 0.5 - 0.5 * np.cos(np.pi * t)  # ease in/out
            out.append({k: (1 - w) * a.get(k, 0.0) + w * b.get(k, 0.0) for k in set(a) | set(b) if k in names})
    return out


def make_performance_fn(names: list[str]):
    @_gpu
    def performance(session, progress=gr.Progress()):
        """The avatar blending through the expression presets (mp4)."""
        from model.core.video import write_animation
        avatar = _avatar(session, animatable=True)
        controls = _preset_performance(names)
        progress(0.1, desc=f"rendering {len(controls)} frames")
        path = write_animation(avatar, [c or None for c in controls], session.file("animation.mp4"), size=VIDEO_PX,
                               fps=PERFORMANCE_FPS)
        return str(path), str(path)
    return user_errors(performance)


def _side_by_side(source: np.ndarray, rendered: np.ndarray) -> np.ndarray:
    """Source frame scaled to the render's height, left of it; widths even for H.264."""
    from PIL import Image
    h = rendered.shape[0]
    w = max(2, int(round(source.shape[1] * h / source.shape[0] / 2)) * 2)
    src = np.asarray(Image.fromarray(source).resize((w, h), Image.BILINEAR))
    return np.concatenate([src, rendered], axis=1)


@user_errors
@_gpu
def drive(video, session, progress=gr.Progress()):
    """A short clip (upload or webcam) -> the avatar performing it, side by side with the source, plus
    the avatar-only animation. As in the mirror, the clip's first face is its performer's rest face
    (expressions are read relative to it); frames where no face is found hold the previous expression."""
    from model.core.video import read_video, write_mp4
    from model.head.landmarks import detect_landmarks
    avatar = _avatar(session, animatable=True)
    if not callable(getattr(avatar, "retarget", None)):
        raise InputError(f"the {session.method_id} avatar has no tracker to follow a video")
    frames, fps = read_video(_upload_path(video), DRIVE_FPS, MAX_VIDEO_S, MAX_DRIVE_SIDE)
    controls, missed, rest = [], 0, None
    for frame in progress.tqdm(frames, desc="tracking the face"):
        try:
            face = detect_landmarks(frame, twins=getattr(avatar, "twins", None))  # tracked with its mirror image
        except InputError:
            controls.append(None)
            missed += 1
            continue
        rest = avatar.neutral_offsets(face) if rest is None else rest
        controls.append(avatar.retarget(face, neutral=rest))
    found = [c for c in controls if c is not None]
    if not found:
        raise InputError("no face found in any frame of the video")
    last = found[0]
    for i, c in enumerate(controls):  # hold the last tracked expression over frames without a face
        last = controls[i] = c if c is not None else last
    rendered = [render_view(avatar, 0.0, 0.0, c, VIDEO_PX) for c in progress.tqdm(controls, desc="rendering the performance")]
    seq = session.file("drive_controls.json")
    seq.write_text(json.dumps(rig.sequence_dict([i / fps for i in range(len(controls))], controls)))
    fps = int(round(fps))
    both = write_mp4((_side_by_side(s, r) for s, r in zip(frames, rendered)), session.file("drive_side_by_side.mp4"), fps)
    anim = write_mp4(rendered, session.file("drive_animation.mp4"), fps)
    note = f"tracked {len(frames) - missed}/{len(frames)} frames at {fps} fps"
    if missed:
        note += f"; {missed} frame(s) without a face held the previous expression"
        gr.Warning(note)
    return str(both), str(anim), note, str(seq)


MIRROR_MAX_SIDE = 640  # the page sends frames at most this large; larger ones are downscaled here too
MIRROR_MAX_S = 300.0  # a mirror stream ends after this long (the page stops too)
# A stream's first faces are the visitor's rest face (averaged; the first one always, up to
# MIRROR_REST_FRAMES within MIRROR_REST_S of it): their own face shape and resting mouth are
# not the photo's, and without it they read as expression (benchmarks.mirror, rendered frames of known
# controls through this path: mouthSmileLeft/Right MAE 0.29/0.15 -> 0.18/0.15; ARKit jawOpen correlation
# 0.86 -> 0.88).
MIRROR_REST_FRAMES = 3
MIRROR_REST_S = 0.6  # ...taken within this long of the first one: a slow stream must not average in a smile
def mirror_frame(payload, session) -> str:
    """One webcam frame from the page -> JSON {t, controls | null, notice | null, server_ms[, stop]}.
    The frame is decoded in memory and never stored or logged; a frame the rig cannot follow (no face,
    several faces, dark, blurred) gives controls null and a notice, and the page holds the last pose."""
    import base64

    from model.head.landmarks import detect_all, why_no_face
    t0 = time.perf_counter()
    try:
        msg = json.loads(payload or "{}")
        t = float(msg["t"])
        raw = base64.b64decode(str(msg["jpeg"]).partition(",")[2], validate=True)
    except (ValueError, KeyError, TypeError):
        return json.dumps({"t": None, "controls": None, "notice": "a malformed frame was ignored"})

    def answer(controls=None, notice=None, stop=False):
        out = {"t": t, "controls": controls, "notice": notice, "server_ms": round(1000 * (time.perf_counter() - t0), 1)}
        return json.dumps({**out, "stop": True} if stop else out)

    avatar = session.avatar if isinstance(session, Session) else None
    if avatar is None or not avatar.animatable or not callable(getattr(avatar, "retarget", None)):
        return answer(notice="create an animatable avatar first (Create tab, HeadSplat)", stop=True)
    now = time.monotonic()
    if now - session.mirror_last > 5.0:  # a new stream (frames stop for seconds between streams)
        session.mirror_since = now
        session.mirror_rest = []
    if msg.get("rest"):  # the page asks to take the rest face again (the stream's time limit runs on)
        session.mirror_rest = []
    session.mirror_last = now
    if now - session.mirror_since > MIRROR_MAX_S:
        return answer(notice=f"the mirror stops after {MIRROR_MAX_S / 60:.0f} minutes: start it again", stop=True)
    try:
        image = load_image(raw, max_side=MIRROR_MAX_SIDE)
    except InputError:
        return answer(notice="a frame could not be decoded: holding the last pose")
    faces = detect_all(image, twins=getattr(avatar, "twins", None))  # tracked with its mirror image
    if len(faces) > 1:
        return answer(notice="several faces in view: holding the last pose")
    if not faces:
        why = why_no_face(image)
        return answer(notice=f"no face found ({why})" if why else "no face in view: holding the last pose")
    rest = session.mirror_rest
    if not rest or (len(rest) < MIRROR_REST_FRAMES and now - session.mirror_rest_at <= MIRROR_REST_S):
        session.mirror_rest_at = now if not rest else session.mirror_rest_at
        rest.append(avatar.neutral_offsets(faces[0]))
        return answer(notice=f"taking your rest face: look at the camera, face relaxed "
                             f"({len(session.mirror_rest)}/{MIRROR_REST_FRAMES})")
    return answer(controls=avatar.retarget(faces[0], neutral=np.mean(session.mirror_rest, axis=0)))


@user_errors
def load_sequence(value):
    """An uploaded control sequence -> (the file, checked, for the live view to play; a note). The
    viewer re-poses every frame itself; names the rig cannot show are reported, not fatal."""
    names, times, controls = rig.read_sequence_file(_upload_path(value))
    unused = [n for n in names if n in rig.IGNORED_ARKIT]
    fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
    note = f"playing {len(controls)} frames ({fps:.0f} fps, {times[-1]:.1f} s) in the live view"
    if unused:
        note += f"; the rig has no counterpart for {', '.join(unused)} (ignored)"
    return _upload_path(value), note


@user_errors
@_gpu
def render_sequence(value, session, progress=gr.Progress()):
    """The uploaded control sequence rendered on the server (mp4 at the sequence's frame rate, ≤ 30 fps)."""
    from model.core.video import write_animation
    avatar = _avatar(session, animatable=True)
    _, times, controls = rig.read_sequence_file(_upload_path(value))
    span = times[-1] - times[0]
    fps = min(30, max(1, round((len(times) - 1) / span))) if span > 0 else 30
    grid = np.arange(times[0], times[-1] + 0.5 / fps, 1.0 / fps)  # the output frames' times, seconds
    keep = (np.searchsorted(times, grid + 1e-6, side="right") - 1).clip(0, len(times) - 1)  # last frame at or before
    progress(0.1, desc=f"rendering {len(keep)} frames")
    path = write_animation(avatar, [controls[i] or None for i in keep], session.file("sequence.mp4"), size=VIDEO_PX,
                           fps=int(fps))
    return str(path), str(path)


def _method_choices() -> list[tuple[str, str]]:
    """Methods a visitor can run on a photo (external ones score predictions made elsewhere)."""
    return [(f"{s.name}{'' if s.animatable else ' (static)'}", s.id) for s in list_methods() if s.kind != "external"]


def _compare_ids() -> list[str]:
    return [s.id for s in list_methods() if s.kind in ("ours", "baseline")]


def _thumbnail(image: np.ndarray, px: int) -> np.ndarray:
    from PIL import Image, ImageOps
    return np.asarray(ImageOps.fit(Image.fromarray(image), (px, px), Image.LANCZOS))


@user_errors
@_gpu
def compare(photo, method_ids, session, progress=gr.Progress()):
    """The same photo through each chosen method -> (grid image: one row per method, the photo then the
    same orbit views COMPARE_YAWS_DEG; markdown table: row, method, time or failure)."""
    image = load_image(_upload_path(photo))
    if not method_ids:
        raise InputError("choose at least one method to compare")
    key = hashlib.sha1(image.tobytes()).hexdigest()
    thumb = _thumbnail(image, COMPARE_PX)
    rows, lines = [], ["| row | method | |", "|---|---|---|"]
    for mid in progress.tqdm(method_ids, desc="reconstructing"):
        t0 = time.perf_counter()
        reuse = isinstance(session, Session) and session.method_id == mid and session.photo_key == key
        try:
            avatar = session.avatar if reuse else load_method(mid).reconstruct(image)
        except InputError:
            raise  # the photo itself is unusable: the same for every method
        except Exception as e:  # one method failing must not hide the others
            log.exception("compare: %s failed", mid)
            blank = np.full((COMPARE_PX, COMPARE_PX * len(COMPARE_YAWS_DEG), 3), 235, np.uint8)
            rows.append(np.concatenate([thumb, blank], axis=1))
            lines.append(f"| {len(rows)} | {mid} | failed: {type(e).__name__}: {e} |")
            continue
        seconds = time.perf_counter() - t0
        strip = [thumb] + [render_view(avatar, y, 0.0, size=COMPARE_PX) for y in COMPARE_YAWS_DEG]
        rows.append(np.concatenate(strip, axis=1))
        took = "already reconstructed" if reuse else f"reconstructed in {seconds:.2f} s"
        lines.append(f"| {len(rows)} | {avatar.info.name} | {took} |")
    if isinstance(session, Session) and session.method_id == "lam-import":
        # the LAM package opened on the Create tab joins the comparison, placed by our landmark fit
        from baselines.lam import align_to_photo
        lam = align_to_photo(session.avatar, image)
        strip = [thumb] + [render_view(lam, y, 0.0, size=COMPARE_PX) for y in COMPARE_YAWS_DEG]
        rows.append(np.concatenate(strip, axis=1))
        a = lam.metadata()["alignment"]
        lines.append(f"| {len(rows)} | {lam.info.name} (opened on the Create tab) | aligned to this photo: "
                     f"landmark error {a['nme']:.3f} of the eye-corner distance |")
    return image_file(np.concatenate(rows, axis=0), session), "\n".join(lines)


# --------------------------------------------------------------------------------- leaderboard

NO_RESULTS = "No results yet: run `python -m evaluation run ... --out results/` and commit `results/`."


def make_leaderboard_fns(results_dir: Path):
    from evaluation.dashboard import group_view
    from evaluation.leaderboard import groups_in

    def refresh(current=None):
        """Re-read the results folder -> (group chooser, table, bars, yaw curves, status)."""
        try:
            by_title = groups_in(results_dir)
        except Exception as e:  # a malformed result file: say which, keep the app up
            log.exception("leaderboard")
            return gr.update(choices=[], value=None), None, None, None, f"Could not read the results: {e}"
        if not by_title:
            return gr.update(choices=[], value=None), None, None, None, NO_RESULTS
        choice = current if current in by_title else next(iter(by_title))
        df, bars, yaw = group_view(by_title[choice])
        n = sum(len(v) for v in by_title.values())
        return (gr.update(choices=list(by_title), value=choice), df, bars, yaw,
                f"{len(by_title)} leaderboard(s) from {n} result file(s) in `{Path(results_dir).name}/`")

    def select(choice):
        by_title = groups_in(results_dir)
        if choice not in by_title:
            return None, None, None
        return group_view(by_title[choice])
    return user_errors(refresh), user_errors(select)


# ---------------------------------------------------------------------------------------- UI

def _footer(method_ids: list[str]) -> str:
    backend = available_backends()[0]
    label = {"gsplat": "gsplat (CUDA)", "cpu": "CPU (numba tile rasterizer)"}.get(backend, backend)
    return (f"<div id='footer-backend'>Renderer backend: <b>{label}</b> · gradio {gr.__version__} · "
            f"methods: {', '.join(method_ids)} · uploads ≤ {MAX_UPLOAD_MB} MB, videos ≤ {MAX_VIDEO_S:.0f} s</div>")


def example_photos() -> list[str]:
    """Bundled example portraits written to a temp dir (gradio serves files from the temp dir)."""
    from PIL import Image
    from skimage import data
    d = Path(tempfile.gettempdir()) / "headsplat-examples"
    d.mkdir(exist_ok=True)
    path = d / "astronaut.png"  # Eileen Collins, NASA: public domain (scikit-image's data)
    if not path.is_file():
        Image.fromarray(data.astronaut()).save(path)
    return [str(path)]


def warm_up(method_id: str = DEFAULT_METHOD) -> float:
    """Run the default method once on the example photo (numba compiles or loads its kernels, mediapipe
    loads its graph) so the first visitor does not wait for it. Returns the seconds it took."""
    t0 = time.perf_counter()
    avatar = load_method(method_id).reconstruct(load_image(example_photos()[0]))
    render_view(avatar, 30.0, 0.0)
    if avatar.animatable:
        render_view(avatar, 0.0, 0.0, {next(iter(rig.CONTROLS)): 0.5})
    return time.perf_counter() - t0


def _control_sliders(controls: dict) -> list:
    """One slider per rig control, grouped by what they move; returns them in rig.CONTROLS order."""
    placed, sliders = {}, {}
    for title, prefixes in CONTROL_GROUPS + (("other", ("",)),):
        names = [n for n in controls if n not in placed and n.startswith(prefixes)]
        if not names:
            continue
        with gr.Accordion(title, open=title != "other"):
            for n in names:
                spec = controls[n]
                sliders[n] = gr.Slider(spec.min, spec.max, value=spec.neutral, step=(spec.max - spec.min) / 100,
                                       label=n, info=spec.description, elem_id=f"ctl-{n}")
                placed[n] = True
    return [sliders[n] for n in controls]


def _create_tab() -> SimpleNamespace:
    """Create: a photo (or a LAM package) in, the live view, downloads, a turntable."""
    with gr.Tab("Create", id="create") as tab:
        with gr.Row():
            with gr.Column(scale=1):
                photo = gr.Image(label="Portrait (one face)", sources=["upload", "webcam", "clipboard"],
                                 type="filepath", height=320, elem_id="photo")
                method = gr.Dropdown(_method_choices(), value=DEFAULT_METHOD, label="Method")
                create_btn = gr.Button("Reconstruct", variant="primary")
                lam_in = gr.File(label="…or open a LAM avatar package (.zip)", file_types=[".zip"], elem_id="lam-in")
                gr.Examples(example_photos(), inputs=[photo], label="Example portraits")
                summary = gr.Markdown(elem_id="summary")
            with gr.Column(scale=2):
                gr.HTML(LIVE_VIEWER_HTML, elem_id="live-slot-create", padding=False)
                with gr.Row():
                    yaw = gr.Slider(-180, 180, value=0, step=1, label="yaw (°)", elem_id="yaw")
                    pitch = gr.Slider(-60, 60, value=0, step=1, label="pitch (°)", elem_id="pitch")
                live_src = gr.File(visible=False, elem_id="live-src")
                with gr.Accordion("Server render (when the live view cannot run)", open=False):
                    rendered = gr.Image(label="Server render", format="jpeg", height=420, interactive=False,
                                        elem_id="rendered")
                    render_btn = gr.Button("Render on the server at this yaw/pitch")
        with gr.Row():
            with gr.Column():
                downloads = gr.File(label="Downloads: 3DGS .ply and .splat (3DGS frame: y down)",
                                    file_count="multiple", interactive=False, elem_id="downloads")
                lam_btn = gr.Button("Make a LAM-style package (.zip: ARKit-driven, for LAM's web renderer)")
                lam_file = gr.File(label="avatar_lam.zip", interactive=False, elem_id="lam-zip")
            with gr.Column():
                turn_btn = gr.Button("Make a turntable video")
                turn_video = gr.Video(label="Turntable", interactive=False)
                turn_file = gr.File(label="turntable.mp4", interactive=False)
    return SimpleNamespace(tab=tab, photo=photo, method=method, create_btn=create_btn, lam_in=lam_in, summary=summary,
                           yaw=yaw, pitch=pitch, live_src=live_src, rendered=rendered, render_btn=render_btn,
                           downloads=downloads, lam_btn=lam_btn, lam_file=lam_file, turn_btn=turn_btn,
                           turn_video=turn_video, turn_file=turn_file)


def _animate_tab() -> SimpleNamespace:
    """Animate: the rig's sliders and presets, a control sequence, a driving video."""
    with gr.Tab("Animate", id="animate") as tab:
        gr.Markdown("Move the rig's sliders or pick a preset (HeadSplat avatars): the live view re-poses "
                    "the avatar in your browser, with no server call. Drag to orbit, wheel or pinch to zoom.")
        with gr.Row():
            with gr.Column(scale=1):
                preset = gr.Radio(list(PRESETS), value="neutral", label="Preset expressions", elem_id="preset")
                sliders = _control_sliders(rig.CONTROLS)
            with gr.Column(scale=2):
                gr.HTML("", elem_id="live-slot-animate", padding=False)
                with gr.Row():
                    seq_file = gr.File(label="Play a control sequence (.json: rig or ARKit names, LAM's format)",
                                       file_types=[".json"], elem_id="seq-file")
                    with gr.Column():
                        seq_note = gr.Markdown(elem_id="seq-note")
                        seq_btn = gr.Button("Render the sequence on the server (mp4)")
                with gr.Accordion("Server render and videos", open=False):
                    view = gr.Image(label="Server render of the sliders", format="jpeg", height=512,
                                    interactive=False, elem_id="anim-view")
                    view_btn = gr.Button("Render the sliders on the server")
                    perf_btn = gr.Button("Render a preset performance (mp4)")
                    perf_video = gr.Video(label="Performance", interactive=False)
                    perf_file = gr.File(label="animation.mp4", interactive=False)
        gr.Markdown(f"### Drive with a video\nUpload or record a short clip (≤ {MAX_VIDEO_S:.0f} s) of "
                    "one face; it is tracked once, then the live view plays it in step with the clip "
                    "(and an mp4 is rendered).")
        with gr.Row():
            clip = gr.Video(label="Driving clip", sources=["upload", "webcam"], include_audio=False,
                            elem_id="drive-clip")
            with gr.Column():
                drive_btn = gr.Button("Track and animate", variant="primary")
                drive_note = gr.Markdown()
                drive_seq = gr.File(label="tracked controls (.json)", interactive=False, elem_id="drive-seq")
            drive_video = gr.Video(label="Source | avatar", interactive=False)
            drive_file = gr.File(label="avatar animation .mp4", interactive=False)
    return SimpleNamespace(tab=tab, preset=preset, sliders=sliders, seq_file=seq_file, seq_note=seq_note,
                           seq_btn=seq_btn, view=view, view_btn=view_btn, perf_btn=perf_btn, perf_video=perf_video,
                           perf_file=perf_file, clip=clip, drive_btn=drive_btn, drive_note=drive_note,
                           drive_seq=drive_seq, drive_video=drive_video, drive_file=drive_file)


def _mirror_tab(session) -> SimpleNamespace:
    """Mirror: the webcam drives the avatar; everything but the frame -> controls call runs in the page."""
    with gr.Tab("Mirror", id="mirror") as tab:
        gr.Markdown("Your webcam drives your avatar: the page sends downscaled frames one at a time, the "
                    "server turns each into rig controls (frames are never stored), and the live view "
                    f"follows at display rate. A stream stops after {MIRROR_MAX_S / 60:.0f} minutes or when "
                    "the tab is hidden. Record a session to replay it, download it as JSON (ARKit-style "
                    "names) or render it on the Animate tab.")
        with gr.Row():
            with gr.Column(scale=1):
                gr.HTML(MIRROR_HTML, padding=False)
                with gr.Row():
                    start = gr.Button("Start the mirror", variant="primary", elem_id="mirror-start")
                    stop = gr.Button("Stop", elem_id="mirror-stop")
                with gr.Row():
                    rest = gr.Button("Take my rest face again", elem_id="mirror-rest")
                    rec_start = gr.Button("Record", elem_id="mirror-rec")
                    rec_stop = gr.Button("Stop recording and replay", elem_id="mirror-rec-stop")
                frame_in = gr.Textbox(elem_id="mirror-frame", elem_classes="hs-hidden", show_label=False)
                frame_out = gr.Textbox(elem_id="mirror-out", elem_classes="hs-hidden", show_label=False)
            with gr.Column(scale=1):
                gr.HTML("", elem_id="live-slot-mirror", padding=False)
    for button, call in ((start, "start()"), (stop, "stop()"), (rest, "retakeRest()"), (rec_start, "recordStart()")):
        button.click(None, None, None, js=f"() => {{ window.headsplat.mirror.{call}; return []; }}")
    rec_stop.click(None, None, None, js="() => { const s = window.headsplat.mirror.recordStop(); "
                                        "if (s.frames.length) window.headsplat.viewer.play(s); return []; }")
    # one frame in flight per visitor (the page waits for each answer): no queue, no progress UI
    frame_in.change(mirror_frame, [frame_in, session], frame_out, api_name="mirror_frame", queue=False,
                    show_progress="hidden")
    frame_out.change(None, frame_out, None, js="(s) => { window.headsplat.mirror.onResult(s); return []; }")
    return SimpleNamespace(tab=tab)


def _compare_tab(session, photo) -> None:
    """Compare: the Create tab's photo through each chosen method, side by side."""
    with gr.Tab("Compare", id="compare"):
        gr.Markdown("The photo from the Create tab through each method: one row per method, the photo "
                    f"then the same orbit views (yaw {', '.join(f'{y}°' for y in COMPARE_YAWS_DEG)}). A LAM "
                    "package opened on the Create tab is added as the last row, aligned to the photo.")
        ids = gr.CheckboxGroup(_method_choices(), value=_compare_ids(), label="Methods")
        button = gr.Button("Compare", variant="primary")
        grid = gr.Image(label="Side by side (rows in the order of the table below)", format="jpeg",
                        interactive=False, elem_id="compare-grid")
        table = gr.Markdown()
    button.click(compare, [photo, ids, session], [grid, table], api_name="compare", preprocess=False, **HEAVY)


def _leaderboard_tab(demo, results_dir: Path) -> None:
    """Leaderboard: the committed results, one table and its charts per dataset x protocol."""
    from evaluation.leaderboard import metric_definitions
    with gr.Tab("Leaderboard", id="leaderboard"):
        status = gr.Markdown()
        with gr.Row():
            group = gr.Dropdown(label="Dataset · protocol", choices=[], scale=4, elem_id="lb-group")
            refresh = gr.Button("Refresh", scale=1)
        table = gr.Dataframe(label="Leaderboard (click a header to sort)", interactive=False, wrap=True)
        bars = gr.Plot(label="Metrics per method (mean ± std; points: subjects)", elem_id="lb-bars")
        yaw = gr.Plot(label="Against yaw")
        with gr.Accordion("Metric definitions", open=False):
            gr.Markdown(metric_definitions())
    refresh_fn, select_fn = make_leaderboard_fns(results_dir)
    out = [group, table, bars, yaw, status]
    demo.load(refresh_fn, None, out, api_name="leaderboard")
    refresh.click(refresh_fn, group, out, api_name="leaderboard_refresh")
    group.input(select_fn, group, [table, bars, yaw], api_visibility="undocumented")


HEAVY = dict(concurrency_id="heavy", concurrency_limit=HEAVY_CONCURRENCY)
LIGHT = dict(concurrency_id="render", concurrency_limit=RENDER_CONCURRENCY, show_progress="hidden",
             trigger_mode="always_last")


def _wire_avatar(session, create: SimpleNamespace, animate: SimpleNamespace) -> None:
    """The events of the Create and Animate tabs, which share the avatar, the view and the sliders."""
    names = list(rig.CONTROLS)
    c, a = create, animate
    create_out = [session, c.live_src, c.rendered, a.view, c.downloads, c.summary, c.yaw, c.pitch]
    load_live = dict(fn=None, inputs=c.live_src, outputs=None, js=JS_LOAD)
    restore_live = dict(fn=None, inputs=None, outputs=None, js=JS_RESTORE)
    # each way to a new avatar: the live view announces it at once (page only), then the server builds it
    for trigger, fn, inputs, api_name in ((c.photo.change, reconstruct, [c.photo, c.method, session], "reconstruct"),
                                           (c.lam_in.upload, open_lam, [c.lam_in, session], "open_lam"),
                                           (c.create_btn.click, reconstruct, [c.photo, c.method, session],
                                            "reconstruct_again")):
        trigger(None, inputs[0], None, js=JS_PENDING)
        built = trigger(fn, inputs, create_out, api_name=api_name, preprocess=False, **HEAVY)
        built.success(**load_live)
        built.failure(**restore_live)
    # the live view follows the sliders in the page: no server call
    gr.on([c.yaw.input, c.pitch.input], None, [c.yaw, c.pitch], None, js=JS_VIEW)
    for name, s in zip(names, a.sliders):
        s.input(None, s, None, js=JS_CONTROL % json.dumps(name))
    a.preset.input(None, a.preset, a.sliders, js=JS_PRESET % (json.dumps(PRESETS), json.dumps(names),
                                                              json.dumps([rig.CONTROLS[n].neutral for n in names])))
    view_fn = make_view_fn(names)
    view_in = [session, c.yaw, c.pitch, *a.sliders]
    c.render_btn.click(view_fn, view_in, c.rendered, api_name="view", **LIGHT)
    a.view_btn.click(view_fn, view_in, a.view, api_name="animate_view", **LIGHT)
    gr.api(make_preset_fn(names), api_name="preset")
    c.turn_btn.click(turntable, session, [c.turn_video, c.turn_file], api_name="turntable", **HEAVY)
    c.lam_btn.click(lam_package, session, c.lam_file, api_name="lam_package", **HEAVY)
    a.perf_btn.click(make_performance_fn(names), session, [a.perf_video, a.perf_file], api_name="performance",
                     **HEAVY)
    a.seq_file.upload(load_sequence, a.seq_file, [a.seq_file, a.seq_note], api_name="sequence",
                      preprocess=False).success(None, a.seq_file, None, js=JS_PLAY % "null")
    a.seq_btn.click(render_sequence, [a.seq_file, session], [a.perf_video, a.perf_file], api_name="render_sequence",
                    preprocess=False, **HEAVY)
    a.drive_btn.click(drive, [a.clip, session], [a.drive_video, a.drive_file, a.drive_note, a.drive_seq],
                      api_name="drive", preprocess=False, **HEAVY).success(None, a.drive_seq, None,
                                                                           js=JS_PLAY % "'#drive-clip video'")


def build_app(results_dir: str | Path = RESULTS_DIR, state_ttl_s: float = STATE_TTL_S) -> gr.Blocks:
    """The whole Space as a gr.Blocks with its queue configured (launch with `launch_kwargs()`)."""
    with gr.Blocks(title="HeadSplat Hub", delete_cache=CACHE_CLEAN) as demo:
        session = gr.State(None, time_to_live=state_ttl_s, delete_callback=_close_session)
        gr.Markdown("# HeadSplat Hub\nOne portrait in, a full 360° head of 3D Gaussians out: rotate it, "
                    "animate it, download it, and compare methods on one documented evaluation.")
        with gr.Tabs():
            create = _create_tab()
            animate = _animate_tab()
            mirror = _mirror_tab(session)
            _compare_tab(session, create.photo)
            _leaderboard_tab(demo, Path(results_dir))
        gr.HTML(_footer([s.id for s in list_methods()]))
        _wire_avatar(session, create, animate)
        # the one live view moves to the tab shown (page only)
        for tab, slot in ((create.tab, "create"), (animate.tab, "animate"), (mirror.tab, "mirror")):
            tab.select(None, None, None, js=JS_ATTACH % f"live-slot-{slot}")
    demo.queue(default_concurrency_limit=HEAVY_CONCURRENCY, max_size=QUEUE_MAX_SIZE)
    return demo


def launch_kwargs() -> dict:
    """Arguments for demo.launch(): the upload size limit, the live viewer's bundle and style. (Session
    dirs need no blocking: gradio serves only its own cached copies, allowed_paths and static paths,
    and the session root is none of them.)"""
    return {"max_file_size": f"{MAX_UPLOAD_MB}mb", "footer_links": ["api", "gradio"], "head": viewer_head(),
            "css": LIVE_CSS}


@contextlib.contextmanager
def serving(results_dir: str | Path = RESULTS_DIR, warm: bool = True):
    """The app served in this process on a free loopback port, for tests and benchmarks: yields
    (demo, url) and closes it after. warm: run warm_up() first, as `python app.py` does."""
    import socket
    if warm:
        warm_up()
    demo = build_app(results_dir=results_dir)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_kwargs())
    try:
        yield demo, f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


if __name__ == "__main__":
    import signal
    import sys
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a stopped Space still runs atexit clean-up
    logging.basicConfig(level=logging.INFO)
    log.info("warm-up: %.1f s", warm_up())
    # server name/port: gradio reads GRADIO_SERVER_NAME (default 127.0.0.1) and GRADIO_SERVER_PORT (7860)
    build_app().launch(**launch_kwargs())
