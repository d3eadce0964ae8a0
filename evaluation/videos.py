"""Talking-head clips for the reenactment protocols: decoding, frame sampling, one fixed face crop per clip.

A clip is one short video (mp4 / webm / mov) of one face. What is scored (`Sampling`, recorded in the
dataset manifest and in every result's dataset hash):

- decoding: OpenCV (its bundled FFmpeg), RGB uint8; each frame's presentation time is read too, and a
  clip whose frame intervals vary by more than `Sampling.rate_tolerance` of their median is refused
  (variable frame rate: "every k-th frame" would not be a fixed time step; re-encode at a constant rate,
  e.g. `ffmpeg -i in.mp4 -fps_mode cfr -r 25 out.mp4`).
- source frame: the first of the first `Sampling.search` frames in which a face is found (dlib's
  detector, evaluation.identity); the method reconstructs from it.
- target frames: every `Sampling.every`-th frame after the source (source + k, source + 2k, ...), at
  most `Sampling.cap` of them; a clip shorter than source + k gets its last frame as the one target.
- crop: one square per clip, the same for every frame (the camera is fixed, as the avatar's is). It is
  computed from the face boxes of the *target* frames only (median centre; side = `Sampling.crop_scale`
  x the largest face width; centred `Sampling.crop_lift` face widths above the box centre to include the
  hair), clipped to the frame (then no longer square only when the face is near an edge) and resized so
  its long side is at most `Sampling.max_side` px. Face masks for the masked metrics are computed by
  the protocol from each target crop alone (evaluation.protocols.face_mask).

Nothing here imports evaluation.datasets (which builds the `videos:<folder>` dataset from these).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

VIDEO_EXTS = (".mp4", ".webm", ".mov")


class ClipError(ValueError):
    """A clip that cannot be scored (unreadable, too short, variable frame rate, no face)."""


@dataclass(frozen=True)
class Sampling:
    every: int = 5  # k: target frames are every k-th frame after the source (25 fps -> 5 per second)
    cap: int = 20  # at most this many target frames per clip
    search: int = 50  # the source is the first frame with a face among the first `search` frames
    rate_tolerance: float = 0.02  # max (max - min) / median of the frame intervals
    crop_scale: float = 2.4  # crop side in face widths
    crop_lift: float = 0.25  # crop centre above the face box centre, in face widths
    max_side: int = 512  # px: crops are downscaled to at most this long side

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Clip:
    """A decoded clip: frames [N][H,W,3] uint8 (only the first `n` read) and times (s) [N]."""
    path: Path
    frames: list
    times: np.ndarray
    fps: float


def list_clips(folder: str | Path) -> dict[str, Path]:
    """{clip id (file stem): path} of the video files directly in folder; ClipError when there is none."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ClipError(f"videos folder {folder} does not exist")
    files = {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in VIDEO_EXTS}
    if not files:
        others = sorted(p.name for p in folder.iterdir() if p.is_file())[:5]
        raise ClipError(f"{folder}: no video files ({', '.join(VIDEO_EXTS)}); found {others or 'nothing'}")
    if len({p.stem for p in files.values()}) != len(files):
        raise ClipError(f"{folder}: two videos share a file stem")
    return files


def read_clip(path: str | Path, max_frames: int | None = None) -> Clip:
    """Decode up to max_frames frames (all when None) with their presentation times.
    ClipError when the file is not a readable video or has fewer than 2 frames."""
    import cv2
    path = Path(path)
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ClipError(f"{path.name}: not a readable video")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        frames, times = [], []
        while max_frames is None or len(frames) < max_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            times.append(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
            frames.append(np.ascontiguousarray(bgr[..., ::-1]))
    finally:
        cap.release()
    if len(frames) == 0:
        raise ClipError(f"{path.name}: not a readable video (no frame decoded)")
    if len(frames) < 2:
        raise ClipError(f"{path.name}: {len(frames)} frame; a clip needs at least 2 (a source and a target)")
    return Clip(path, frames, np.asarray(times, np.float64), fps)


def check_constant_rate(clip: Clip, tolerance: float) -> float:
    """The clip's frame interval (s); ClipError when the intervals vary by more than tolerance x median."""
    dt = np.diff(clip.times)
    med = float(np.median(dt))
    if med <= 0 or np.any(dt <= 0) or float(dt.max() - dt.min()) > tolerance * med:
        raise ClipError(f"{clip.path.name}: variable frame rate (frame intervals {1000 * dt.min():.1f}-"
                        f"{1000 * dt.max():.1f} ms): re-encode it at a constant rate, e.g. "
                        f"ffmpeg -i {clip.path.name} -fps_mode cfr -r 25 out.mp4")
    return med


def _detect(image: np.ndarray):
    """(left, top, right, bottom) px of the largest face, or None (dlib HOG, CNN fallback)."""
    from evaluation.identity import dlib_model
    m = dlib_model()
    if not m.available:
        raise ClipError(f"finding faces in clips needs dlib: {m.reason}")
    r = m.detect(np.ascontiguousarray(image))
    return None if r is None else (r.left(), r.top(), r.right(), r.bottom())


def plan(clip: Clip, s: Sampling) -> dict:
    """Which frames are scored and the crop box: {"source": int, "targets": [int], "crop": [x0, y0, x1, y1],
    "size": [w, h] (after the max_side resize), "frame_interval_s", "fps", "frames_read"}.
    ClipError for a clip with no face in its first `search` frames or no target with a face."""
    interval = check_constant_rate(clip, s.rate_tolerance)
    n = len(clip.frames)
    source = next((i for i in range(min(n - 1, s.search)) if _detect(clip.frames[i]) is not None), None)
    if source is None:
        raise ClipError(f"{clip.path.name}: no face found in its first {min(n - 1, s.search)} frame(s)")
    targets = list(range(source + s.every, n, s.every))[:s.cap] or [n - 1]
    boxes = [b for b in (_detect(clip.frames[i]) for i in targets) if b is not None]
    if not boxes:
        raise ClipError(f"{clip.path.name}: no face found in any of its {len(targets)} target frame(s)")
    b = np.asarray(boxes, np.float64)
    width = float((b[:, 2] - b[:, 0]).max())
    cx = float(np.median(0.5 * (b[:, 0] + b[:, 2])))
    cy = float(np.median(0.5 * (b[:, 1] + b[:, 3]))) - s.crop_lift * width
    h, w = clip.frames[0].shape[:2]
    half = 0.5 * s.crop_scale * width
    x0, x1 = int(max(0, round(cx - half))), int(min(w, round(cx + half)))
    y0, y1 = int(max(0, round(cy - half))), int(min(h, round(cy + half)))
    scale = min(1.0, s.max_side / max(x1 - x0, y1 - y0))
    size = [max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))]
    return {"source": source, "targets": targets, "crop": [x0, y0, x1, y1], "size": size,
            "frame_interval_s": interval, "fps": clip.fps, "frames_read": n}


def crop(frame: np.ndarray, p: dict) -> np.ndarray:
    """The plan's crop of one frame, resized to p["size"] (area-averaging), uint8 [h,w,3]."""
    import cv2
    x0, y0, x1, y1 = p["crop"]
    c = np.ascontiguousarray(frame[y0:y1, x0:x1])
    if (c.shape[1], c.shape[0]) != tuple(p["size"]):
        c = cv2.resize(c, tuple(p["size"]), interpolation=cv2.INTER_AREA)
    return c


def frames_needed(s: Sampling) -> int:
    """Frames to decode so that the source search and every target fit (a clip's tail is not read)."""
    return s.search + s.every * s.cap + 1


def write_clip(frames, path: str | Path, fps: int = 25) -> Path:
    """RGB frames [N][H,W,3] (uint8, or float in [0,1]; even H and W) -> an H.264 mp4, atomically."""
    import os
    import tempfile

    from model.core.video import write_mp4
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write_mp4(frames, tmp, fps=fps)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def synthetic_clips(out: str | Path, dataset, fps: int = 25, repeat: int = 2) -> list[Path]:
    """SYNTHETIC clips for tests and CI: each subject of a dataset with video frames (the `synthetic`
    set renders its procedural heads turning) written as <out>/<subject>.mp4, each frame held `repeat`
    times so that sampling every k-th frame has something to skip. Never real data: the folder gets a
    SYNTHETIC.txt saying so, and results on it must be labelled synthetic (see datasets.videos_folder)."""
    out = Path(out)
    paths = []
    for sid in dataset.subject_ids:
        frames = dataset.subject(sid).frames
        if len(frames) < 2:
            continue
        even = [f[: f.shape[0] // 2 * 2, : f.shape[1] // 2 * 2] for f in frames]
        paths.append(write_clip([f for f in even for _ in range(repeat)], out / f"{sid}.mp4", fps))
    if not paths:
        raise ClipError(f"dataset {dataset.id!r} has no subject with video frames")
    (out / SYNTHETIC_MARKER).write_text(f"SYNTHETIC clips rendered from dataset {dataset.id} "
                                        f"(manifest {dataset.manifest_sha256}); not real data.\n")
    return paths


SYNTHETIC_MARKER = "SYNTHETIC.txt"
