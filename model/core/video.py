"""Videos: reading a short clip a visitor uploads, and writing an avatar's 360° turntable and a performance driven
by a sequence of controls (mp4, H.264)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Protocol, Sequence

import imageio.v2 as imageio
import numpy as np

from model.core.camera import Camera, framing_camera
from model.core.errors import InputError
from model.core.image_io import load_image, to_uint8
from model.core.render import RenderResult


class Renderable(Protocol):
    """What a video needs of an avatar (model.interface.Avatar is one); the core does not know avatars."""

    head_center: np.ndarray  # [3] metres
    head_radius: float  # metres

    def render(self, camera: Camera, controls: Mapping[str, float] | None = None,
               background=(1.0, 1.0, 1.0)) -> RenderResult: ...


def write_mp4(frames: Iterable[np.ndarray], path: str | Path, fps: int = 24) -> Path:
    """RGB frames (uint8 or float in [0,1], [H,W,3], even H and W) -> mp4 (yuv420p, plays everywhere)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with imageio.get_writer(path, fps=fps, codec="libx264", quality=7, pixelformat="yuv420p",
                            macro_block_size=2, ffmpeg_log_level="error") as writer:
        n = 0
        for frame in frames:
            writer.append_data(to_uint8(frame))
            n += 1
    if n == 0:
        path.unlink(missing_ok=True)
        raise ValueError("no frames to write")
    return path


def turntable_frames(avatar: Renderable, n_frames: int = 72, size: int = 384, pitch: float = 0.0,
                     controls: Mapping[str, float] | None = None, background=(1.0, 1.0, 1.0)):
    """Yields [size,size,3] float frames of a full turn (yaw 0 -> 2π) around the head."""
    for yaw in np.linspace(0, 2 * np.pi, n_frames, endpoint=False):
        cam = framing_camera(avatar.head_center, avatar.head_radius, yaw, pitch, size)
        yield avatar.render(cam, controls, background=background).rgb


def write_animation(avatar: Renderable, controls: Sequence[Mapping[str, float]], path: str | Path,
                    camera: Camera | None = None, size: int = 384, fps: int = 24) -> Path:
    """Render the avatar performing each controls dict in turn (at the input camera by default)."""
    cam = camera or framing_camera(avatar.head_center, avatar.head_radius, 0.0, 0.0, size)
    if cam.width % 2 or cam.height % 2:  # H.264 with yuv420p needs even sizes
        cam = cam.resized(cam.width // 2 * 2, cam.height // 2 * 2)
    return write_mp4((avatar.render(cam, c).rgb for c in controls), path, fps)


def read_video(path: str | Path, fps: float, max_seconds: float, max_side: int) -> tuple[list[np.ndarray], float]:
    """A short video -> (RGB uint8 frames sampled at <= fps, long side <= max_side; their rate, frames/s).
    InputError when the file is not a video, has no frames or is longer than max_seconds."""
    try:
        reader = imageio.get_reader(path, "ffmpeg")
    except Exception as e:  # imageio raises OSError/RuntimeError/ValueError depending on the failure
        raise InputError(f"not a readable video ({type(e).__name__})") from None
    try:
        meta = reader.get_meta_data()
        src_fps = float(meta.get("fps") or 0) or 25.0
        duration = float(meta.get("duration") or 0)
        if duration > max_seconds + 0.05:
            raise InputError(f"the video is {duration:.1f} s long; the limit is {max_seconds:.0f} s")
        step = max(1, round(src_fps / fps))
        frames = []
        try:
            for i, frame in enumerate(reader):
                if i / src_fps > max_seconds + 0.05:  # containers can lie about their duration
                    raise InputError(f"the video is longer than {max_seconds:.0f} s")
                if i % step == 0:
                    frames.append(load_image(frame, max_side=max_side))
        except (OSError, RuntimeError, IndexError) as e:
            if not frames:
                raise InputError(f"not a readable video ({type(e).__name__})") from None
    finally:
        reader.close()
    if not frames:
        raise InputError("the video has no frames")
    return frames, src_fps / step
