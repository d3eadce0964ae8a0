"""Real multi-view heads: the NeRSemble benchmark's on-disk layout, read through its official toolkit.

The toolkit is `nersemble-benchmark==0.2.0` on PyPI (Apache-2.0), an optional extra
(`pip install -r requirements-nersemble.txt`): it pulls open3d, trimesh, flame-model, mediapy and PyAV,
which the rest of the project does not need. The data itself needs an access request to its authors.

Layout (the toolkit's constants.ASSETS["nvs"], relative to <folder>/nvs/):

    <p_id:03d>/calibration/camera_params.json    {"world_2_cam": {serial: 4x4}, "intrinsics": {serial: 3x3}}
    <p_id:03d>/sequences/<seq>/images/cam_<serial>.mp4       one video per camera
    <p_id:03d>/sequences/<seq>/alpha_maps/cam_<serial>.mp4   optional foreground mattes

Calibration conventions (the toolkit's BaseDataManager.load_camera_calibration: dreifus Pose with
CameraCoordinateConvention.OPEN_CV and PoseType.WORLD_2_CAM): x right, y down, z forward, world -> camera
4x4 in metres; intrinsics a 3x3 pinhole matrix in pixels of the images, OpenCV's pixel-centre rule (the
centre of the top-left pixel is (0, 0)). That is exactly model.core.camera's convention, so `to_camera`
only checks and (when the calibration was made at another resolution than the video) scales K.

A subject is one participant x sequence at timestep `TIMESTEP`: the input is the frame of the camera
closest to the rig's front (the camera whose viewing direction is nearest the mean viewing direction of
all cameras: the rig is laid out around the face), the ground-truth views are all other cameras at the
same timestep, their masks the toolkit's alpha maps (>= 128) when present. head_center is the point
nearest every camera's optical axis (least squares): the rig's cameras all look at the head.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from model.core.camera import Camera

TIMESTEP = 0
INSTALL = ("the NeRSemble toolkit is not installed: pip install -r requirements-nersemble.txt "
           "(nersemble-benchmark==0.2.0; it pulls open3d, trimesh, flame-model, mediapy)")


def to_camera(world_2_cam, intrinsics, width: int, height: int, calib_size: tuple[int, int] | None = None) -> Camera:
    """NeRSemble calibration of one camera -> model.core.camera.Camera.

    world_2_cam: 4x4 (OpenCV axes, metres, world -> camera); intrinsics: 3x3 px for an image of
    calib_size (w, h) (None: the video's own size, width x height). ValueError on a matrix that is not a
    rigid transform or a pinhole K."""
    E = np.asarray(world_2_cam, np.float64)
    K = np.asarray(intrinsics, np.float64).copy()
    if E.shape != (4, 4) or K.shape != (3, 3):
        raise ValueError(f"expected a 4x4 world_2_cam and a 3x3 intrinsics, got {E.shape} and {K.shape}")
    R = E[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or np.linalg.det(R) < 0 or not np.allclose(E[3], (0, 0, 0, 1)):
        raise ValueError("world_2_cam is not a rigid transform (rotation + translation)")
    if K[0, 0] <= 0 or K[1, 1] <= 0 or not np.allclose(K[2], (0, 0, 1)) or abs(K[1, 0]) > 1e-9:
        raise ValueError(f"intrinsics is not a pinhole matrix: {K.tolist()}")
    if calib_size is not None and tuple(calib_size) != (width, height):
        sx, sy = width / calib_size[0], height / calib_size[1]
        # pixel centres at integers: u' + 0.5 = s (u + 0.5)
        K[0] *= sx
        K[1] *= sy
        K[0, 2] += 0.5 * (sx - 1)
        K[1, 2] += 0.5 * (sy - 1)
        K[2] = (0, 0, 1)
    return Camera(K, E, int(width), int(height))


def head_center(cameras: dict[str, Camera]) -> np.ndarray:
    """[3] world point nearest every camera's optical axis (least squares), metres."""
    A, b = np.zeros((3, 3)), np.zeros(3)
    for cam in cameras.values():
        c, d = cam.position, cam.R[2]  # camera centre; viewing direction (+z row of R) in world
        P = np.eye(3) - np.outer(d, d)
        A += P
        b += P @ c
    return np.linalg.solve(A, b)


def frontal_serial(cameras: dict[str, Camera]) -> str:
    """The camera whose viewing direction is nearest the mean viewing direction of the rig."""
    dirs = {s: c.R[2] for s, c in cameras.items()}
    mean = np.mean(list(dirs.values()), axis=0)
    return max(sorted(dirs), key=lambda s: float(dirs[s] @ mean))


def _manager(folder: Path, participant: int, manager_factory=None):
    if manager_factory is not None:
        return manager_factory(str(folder), participant)
    try:
        from nersemble_benchmark.data.benchmark_data import NVSDataManager
    except ImportError as e:
        raise ValueError(f"nersemble:{folder}: {INSTALL} ({e})") from None
    return NVSDataManager(str(folder), participant)


def index(folder: Path, manager_factory=None) -> dict[str, dict]:
    """{subject id "<p_id>-<sequence>": {"participant", "sequence", "timestep", "serials"}} of a benchmark
    folder; ValueError when it holds no participant in the NVS layout."""
    nvs = Path(folder) / "nvs"
    if not nvs.is_dir():
        raise ValueError(f"{folder}: no nvs/ folder (the NeRSemble benchmark layout: <folder>/nvs/<participant>/...)")
    out = {}
    for pdir in sorted(p for p in nvs.iterdir() if p.is_dir() and p.name.isdigit()):
        m = _manager(Path(folder), int(pdir.name), manager_factory)
        for seq in sorted(m.list_sequences()):
            serials = sorted(m.list_serials(seq))
            if len(serials) < 2:
                raise ValueError(f"{pdir}/sequences/{seq}: needs at least 2 cameras (an input and a view)")
            out[f"{int(pdir.name):03d}-{seq}"] = {"participant": int(pdir.name), "sequence": seq,
                                                   "timestep": TIMESTEP, "serials": serials}
    if not out:
        raise ValueError(f"{nvs}: no participant folder with sequences")
    return out


def file_hashes(folder: Path, idx: dict) -> dict[str, str]:
    """{relative path: sha256} of every file a subject reads (calibration, images and alpha-map videos)."""
    out = {}
    for e in idx.values():
        base = Path(folder) / "nvs" / f"{e['participant']:03d}"
        files = [base / "calibration" / "camera_params.json"]
        for s in e["serials"]:
            files += [base / "sequences" / e["sequence"] / kind / f"cam_{s}.mp4" for kind in ("images", "alpha_maps")]
        for f in files:
            if f.is_file():
                h = hashlib.sha256(f.read_bytes()).hexdigest()
                out[f.relative_to(folder).as_posix()] = h
    return out


def load_subject(folder: Path, e: dict, manager_factory=None) -> dict:
    """{"input": uint8 [H,W,3], "input_camera", "head_center", "views": {serial: (Camera, image, mask|None)},
    "source": str} for one index entry, read through the toolkit's data manager."""
    m = _manager(Path(folder), e["participant"], manager_factory)
    calib = m.load_camera_calibration()
    seq, t = e["sequence"], e["timestep"]
    images, cams, masks = {}, {}, {}
    for s in e["serials"]:
        img = np.asarray(m.load_image(seq, s, t, as_uint8=True))
        if img.dtype != np.uint8 or img.ndim != 3:
            raise ValueError(f"camera {s}: the toolkit returned an image of {img.dtype} {img.shape}")
        images[s] = np.ascontiguousarray(img[..., :3])
        h, w = img.shape[:2]
        cams[s] = to_camera(np.asarray(calib.world_2_cam[s]), np.asarray(calib.intrinsics[s]), w, h)
        try:
            alpha = np.asarray(m.load_alpha_map(seq, s, t))
            masks[s] = alpha[..., 0] >= 128
        except Exception:  # noqa: BLE001 - alpha maps are optional in the layout; the view is then unmasked
            masks[s] = None
    front = frontal_serial(cams)
    views = {s: (cams[s], images[s], masks[s]) for s in e["serials"] if s != front}
    return {"input": images[front], "input_camera": cams[front], "head_center": head_center(cams), "views": views,
            "source": f"NeRSemble participant {e['participant']:03d} {seq} t={t}, input camera {front}"}
