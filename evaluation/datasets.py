"""Evaluation datasets: folders of photos, real photos shipped by installed packages, and a synthetic
multi-view + video set the project renders itself so that every protocol runs in CI.

Dataset ids (`load_dataset(spec)`):
- `portraits:<folder>`  every image file directly in <folder> is one subject (id = file stem); input only.
- `portraits-bundled`   real single-person portraits that installed packages ship (see BUNDLED).
- `portraits-group`     six real faces cropped from a group photo an installed package ships (GROUP_PHOTO).
- `portraits-dev`       the real portraits the project may ship: portraits-bundled and 16 committed in
                        evaluation/data/portraits-dev (White House photos, public domain; the Face Research
                        Lab London Set, CC BY 4.0; inter-faces, CC0: sources and licences in its README).
- `multiview:<folder>`  a folder in the multi-view format below (ground-truth cameras, views, frames).
- `synthetic`           the project's deterministic synthetic set, generated into a cache folder in the
                        multi-view format on first use. SYNTHETIC: every table and plot labels it so.
- `videos:<folder>`     every video (mp4/webm/mov, one face each) directly in <folder> is one subject: a
                        source frame and sampled target frames, one fixed face crop per clip (frame
                        sampling, crop and refusals: evaluation/videos.py). A folder holding SYNTHETIC.txt
                        (written by evaluation.videos.synthetic_clips) is labelled SYNTHETIC; any other is real.
- `nersemble:<folder>`  the NeRSemble benchmark's on-disk layout (<folder>/nvs/<participant>/...), read
                        through its official toolkit (optional: pip install -r requirements-nersemble.txt);
                        one subject per participant x sequence: one camera's frame in, the other cameras
                        of the same instant as ground-truth views (evaluation/nersemble.py).

Cross-reenactment pairing (every set with frames): a subject is driven by the next subject of its list
(cyclic), so each clip is once a source and once a driver.

Multi-view folder format (version 1):

    <root>/manifest.json        {"format": "headsplat-multiview", "format_version": 1, "id": str,
                                 "synthetic": bool, "description": str, "license": str,
                                 "subjects": [str, ...],
                                 "files": {"<subject>/input.png": "<sha256>", ...}   (optional; verified)
                                 "sha256": "<manifest hash>"}                       (optional; verified)
    <root>/<subject>/input.png  the one input photo (RGB)
    <root>/<subject>/cameras.json
        {"input": CAMERA, "head_center": [x, y, z],       metres, world frame of the dataset
         "views": {"<view>": CAMERA, ...}}                ground-truth novel views (not the input)
        CAMERA = model.core.camera.Camera.to_dict(): {"K": 3x3, "world_to_cam": 4x4, "width", "height",
                 "convention": "opencv"}  (OpenCV axes, metres, pixel centres at integers)
    <root>/<subject>/views/<view>.png    ground-truth image of each view (RGB, same size as its camera)
    <root>/<subject>/masks/<view>.png    optional head mask (L; >= 128 is head)
    <root>/<subject>/frames/NNNN.png     optional video frames for reenactment; frame 0000 is the source

The manifest hash is sha256 over the sorted lines "<relative path>\\t<sha256 of file>\\n" of every
file except manifest.json, so it identifies the exact pixels a result was computed on.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from model.core.camera import Camera
from model.core.image_io import pixels_sha256
from model.core.pinned import sha256_file

FORMAT = "headsplat-multiview"
FORMAT_VERSION = 1
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
DEFAULT_CACHE = Path(os.environ.get("HEADSPLAT_CACHE", Path(__file__).resolve().parent.parent / ".cache"))


def _site_file(package: str, *parts: str) -> Path | None:
    """Path of a data file inside an installed package, without importing the package."""
    import importlib.util
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0], *parts)
    return p if p.is_file() else None


# Real photos of one person's face that installed packages ship (both public domain). Checked: mediapipe
# finds one face in each. Other images found in the environment were rejected: insightface's
# Tom_Hanks_54745.png is a 112x112 pre-aligned crop of unclear licence, t1.jpg is a group photo,
# gradio/skimage's other images are not portraits.
BUNDLED = {
    "astronaut": ("skimage", ("data", "astronaut.png"),
                  "Eileen Collins, NASA (public domain), via scikit-image"),
    "grace_hopper": ("matplotlib", ("mpl-data", "sample_data", "grace_hopper.jpg"),
                     "Grace Hopper, US Navy (public domain), via matplotlib"),
}


# A second real set, for "does it hold on portraits we did not tune on": insightface ships its test
# group photo (a TV promotional still with six people, copyright of its owners). The dataset crops each
# face out at load time; results carry numbers only, and no crop is written into this repository.
GROUP_PHOTO = ("insightface", ("data", "images", "t1.jpg"),
               "the six people of insightface's test group photo t1.jpg, each cropped around the head")


# Portraits committed with the project (sources, licences, changes and sha256 in its README.md).
DEV_DIR = Path(__file__).resolve().parent / "data" / "portraits-dev"
DEV_SHA256 = {
    "obama_2012_official.jpg": "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6",
    "obama_2009_microphone.jpg": "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6",
    "obama_2010_blue_room.jpg": "c508153b47cc35070ee07429cf3da1cb1f8e3f7e036e6ca623dd01a57ee1563e",
    "biden_2010_blue_room.jpg": "ab986dbc33a5c8d3ba005d5be3edce3715260abfea2feaf76fd58399e3a76a91",
    "london_005.jpg": "a17c219a9000279a1509bca3b2ee126d180c71b560cc554f7fe2113ae21a42e9",
    "london_036.jpg": "0022180fdf1976c1b37a727c33f9d4b8ae4f2ee2f360a467faa7a0ea5d94c90f",
    "london_081.jpg": "74a1598128fca8bb6aa616dba31f46d559816e3d1031e2e336bc1e3f8751afaf",
    "london_120.jpg": "e1ca8deb7922f81f66265ee46287e9186e37641cb1559171995eae35404b55bf",
    "london_129.jpg": "3de4d750b8cb1de31d0f7ad1852036afccd5f069034228a2b50e32566dd4451d",
    "london_136.jpg": "77fd0bff34a0f5a843c87cb417526644026794b1a6fbab5a6aeccf3fed7a0015",
    "if_009.jpg": "237943457c593b73f1f29e290cba3a7e7110ca1c78e9fa1de16137b0e18f8dcb",
    "if_023_cup.jpg": "203fdf7c6d372c2d35a41109802bd1687179f12bf90275d363a07c5a61f84fa3",
    "if_028.jpg": "9791bac9858a167a0489bbcc9bd4b17ad3926dd5ff35b1b377ca2b99b96c905a",
    "if_050_glasses.jpg": "ffe418fbd9aa8b29482a60fe6da27a70586c607a62f874470f441c6afa3921ad",
    "if_051_hand.jpg": "23b91bc62af2633a71564dbdb9ba135f909a4701ab93377dfb6781452717bff9",
    "if_052_phone.jpg": "c3fdd37824a7f1ec4681c8c22f07c3521bf5cf26a59cda16e13939fc51bc0529",
}
WHITE_HOUSE = "Official White House Photo by Pete Souza (public domain)"
DEV_CREDITS = {"obama": WHITE_HOUSE, "biden": WHITE_HOUSE,  # by file-name prefix
               "london": "Face Research Lab London Set, DeBruine & Jones 2017, doi:10.6084/m9.figshare.5047666.v5 "
                         "(CC BY 4.0; resized)",
               "if": "inter-faces, github.com/cjdowner/interfaces (CC0; from Pexels; resized)"}


def manifest_hash(files: dict[str, str]) -> str:
    """{relative path: file sha256} -> one sha256 (order independent)."""
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(f"{rel}\t{files[rel]}\n".encode())
    return h.hexdigest()


def _read_rgb(path: Path) -> np.ndarray:
    from model.core.image_io import load_image
    return load_image(path)


@dataclass
class View:
    name: str
    camera: Camera
    image: np.ndarray  # [H,W,3] uint8
    mask: np.ndarray | None = None  # [H,W] bool, head


@dataclass
class Subject:
    id: str
    image: np.ndarray  # [H,W,3] uint8, the one input photo
    source: str  # where it came from (file path or description)
    input_camera: Camera | None = None  # ground-truth camera of the input (multi-view sets)
    head_center: np.ndarray | None = None  # [3] metres, dataset world frame
    views: list[View] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)  # video frames [H,W,3] uint8; 0 = source
    frame_ids: list[int] | None = None  # index in the clip of each entry of `frames` (videos sets)
    # the subject whose frames drive this one in cross-reenactment (the dataset's pairing), loaded on demand
    driver_loader: Callable[[], "Subject"] | None = field(default=None, repr=False)


@dataclass
class Dataset:
    id: str  # as given to load_dataset ("portraits-bundled", "synthetic", "portraits:/path", ...)
    slug: str  # file-name-safe short name used in result folders
    manifest_sha256: str
    synthetic: bool
    subject_ids: list[str]
    description: str
    _load: Callable[[str], Subject] = field(repr=False)
    has_views: bool = False
    has_frames: bool = False
    root: Path | None = None
    spec: str | None = None  # what load_dataset(spec, cache_dir) reopens this set from (None: not reopenable)
    cache_dir: str | None = None
    manifest: dict | None = field(default=None, repr=False)  # videos / nersemble sets: what was sampled

    def subject(self, subject_id: str) -> Subject:
        if subject_id not in self.subject_ids:
            raise KeyError(f"dataset {self.id!r} has no subject {subject_id!r}")
        return self._load(subject_id)

    @property
    def label(self) -> str:
        """Name for tables and plots; synthetic data always says so."""
        return f"{self.slug} (SYNTHETIC)" if self.synthetic else self.slug

    def ref(self) -> tuple:
        """(spec, cache_dir, manifest_sha256): all a worker needs to open this dataset itself (open_ref) and
        check that it sees the same pixels; a few hundred bytes whatever the number of subjects."""
        return (self.spec, self.cache_dir, self.manifest_sha256)

    def record(self) -> dict:
        """The dataset block of a result file."""
        return {"id": self.id, "slug": self.slug, "manifest_sha256": self.manifest_sha256,
                "synthetic": self.synthetic, "subjects": list(self.subject_ids), "label": self.label}


# ------------------------------------------------------------------------------------ portraits

def _portraits(files: dict[str, Path], dataset_id: str, slug: str, description: str,
               sources: dict[str, str] | None = None) -> Dataset:
    if not files:
        raise ValueError(f"dataset {dataset_id!r}: no images found")
    hashes = {f"{sid}{p.suffix.lower()}": sha256_file(p) for sid, p in files.items()}

    def load(sid: str) -> Subject:
        return Subject(sid, _read_rgb(files[sid]), (sources or {}).get(sid, str(files[sid])))

    return Dataset(dataset_id, slug, manifest_hash(hashes), False, sorted(files), description, load)


def head_crops(image: np.ndarray, scale: float = 3.0) -> list[np.ndarray]:
    """Every face dlib's HOG detector finds in image [H,W,3] uint8, cropped as a square of `scale` face
    widths around the head (centred a little above the face box to include hair), clipped to the
    image; ordered left to right."""
    from evaluation.identity import DLIB_LOCK, hog_detector
    h, w = image.shape[:2]
    out = []
    with DLIB_LOCK:
        boxes = list(hog_detector()(image, 1))
    for b in sorted(boxes, key=lambda b: b.left()):
        cx, cy, s = 0.5 * (b.left() + b.right()), 0.5 * (b.top() + b.bottom()) - 0.3 * b.width(), b.width()
        x0, x1 = int(max(0, cx - 0.5 * scale * s)), int(min(w, cx + 0.5 * scale * s))
        y0, y1 = int(max(0, cy - 0.5 * scale * s)), int(min(h, cy + 0.5 * scale * s))
        out.append(np.ascontiguousarray(image[y0:y1, x0:x1]))
    return out


def portraits_group() -> Dataset:
    pkg, parts, description = GROUP_PHOTO
    path = _site_file(pkg, *parts)
    if path is None:
        raise ValueError("portraits-group needs insightface's test image data/images/t1.jpg "
                         "(pip install insightface==2.1, as requirements.txt pins)")
    crops = {f"person{i}": c for i, c in enumerate(head_crops(_read_rgb(path)))}
    # identifies the exact pixels scored: each crop's shape and bytes
    hashes = {f"{sid}.rgb": pixels_sha256(c) for sid, c in crops.items()}

    def load(sid: str) -> Subject:
        return Subject(sid, crops[sid], f"{path} ({sid}, left to right)")

    return Dataset("portraits-group", "portraits-group", manifest_hash(hashes), False, sorted(crops), description, load)


def portraits_folder(folder: str | Path) -> Dataset:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ValueError(f"portraits folder {folder} does not exist")
    files = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_EXTS and p.is_file()}
    if len({p.stem for p in files.values()}) != len(files):
        raise ValueError(f"{folder}: two images share a file stem")
    return _portraits(files, f"portraits:{folder.resolve()}", f"portraits-{folder.resolve().name}",
                      f"photos in {folder.resolve()}")


def _bundled_files() -> tuple[dict[str, Path], dict[str, str]]:
    """(subject -> path, subject -> credit) of the BUNDLED portraits whose package is installed."""
    files, sources = {}, {}
    for sid, (pkg, parts, credit) in BUNDLED.items():
        p = _site_file(pkg, *parts)
        if p is not None:
            files[sid], sources[sid] = p, credit
    return files, sources


def portraits_bundled() -> Dataset:
    files, sources = _bundled_files()
    return _portraits(files, "portraits-bundled", "portraits-bundled",
                      "real portraits shipped by installed packages: " + "; ".join(sources.values()), sources)


def portraits_dev() -> Dataset:
    files, sources = _bundled_files()
    for name, sha in DEV_SHA256.items():
        path = DEV_DIR / name
        got = sha256_file(path) if path.is_file() else "missing"
        if got != sha:
            raise ValueError(f"portraits-dev: {path} is {got}, not the committed sha256 {sha}; restore it with git")
        files[path.stem], sources[path.stem] = path, DEV_CREDITS[name.split("_")[0]]
    return _portraits(files, "portraits-dev", "portraits-dev",
                      "real portraits the project may ship: " + "; ".join(sorted(set(sources.values()))), sources)


# ---------------------------------------------------------------------------------- multi-view

def _file_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "manifest.json" and not p.name.startswith(".")}


def multiview_folder(root: str | Path, dataset_id: str | None = None, verify: bool = True) -> Dataset:
    """Open a folder in the multi-view format (see module docstring); verifies listed file hashes.

    verify=False (workers of a distributed run): when the manifest lists its files, trust that list for
    the dataset's hash instead of reading every file now, and check each subject's files against it as
    that subject is loaded; opening then costs O(1) file reads, not O(subjects)."""
    root = Path(root).expanduser().resolve()
    mpath = root / "manifest.json"
    if not mpath.is_file():
        raise ValueError(f"{root}: no manifest.json (see evaluation/datasets.py for the multi-view format)")
    m = json.loads(mpath.read_text())
    if m.get("format") != FORMAT or m.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{mpath}: not a {FORMAT} v{FORMAT_VERSION} manifest")
    subjects = m.get("subjects")
    if not isinstance(subjects, list) or not subjects:
        raise ValueError(f"{mpath}: 'subjects' must be a non-empty list")
    if not verify and isinstance(m.get("files"), dict) and m.get("sha256") == manifest_hash(m["files"]):
        return _multiview_lazy(root, m, dataset_id)
    actual = _file_hashes(root)
    if "files" in m:
        if m["files"] != actual:
            bad = sorted(set(m["files"].items()) ^ set(actual.items()))[:3]
            raise ValueError(f"{root}: files differ from manifest.json (e.g. {[b[0] for b in bad]})")
    digest = manifest_hash(actual)
    if m.get("sha256") not in (None, digest):
        raise ValueError(f"{root}: manifest sha256 mismatch")
    for s in subjects:
        if not (root / s / "input.png").is_file() or not (root / s / "cameras.json").is_file():
            raise ValueError(f"{root}/{s}: needs input.png and cameras.json")
    has_views = any(p.startswith(f"{s}/views/") for s in subjects for p in actual)
    has_frames = any(p.startswith(f"{s}/frames/") for s in subjects for p in actual)

    return Dataset(dataset_id or f"multiview:{root}", m.get("id") or root.name, digest, bool(m.get("synthetic")),
                   list(subjects), m.get("description", ""),
                   _with_driver(lambda sid: _load_multiview_subject(root, sid), list(subjects)),
                   has_views, has_frames, root)


def _multiview_lazy(root: Path, m: dict, dataset_id: str | None) -> Dataset:
    """A multi-view folder opened from its manifest's file list; each subject's files are hashed and
    compared with that list when the subject is loaded (ValueError on any difference)."""
    files, subjects = m["files"], list(m["subjects"])

    def load(sid: str) -> Subject:
        listed = {p: h for p, h in files.items() if p.startswith(f"{sid}/")}
        d = root / sid
        here = {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(d.rglob("*"))
                if p.is_file() and not p.name.startswith(".")} if d.is_dir() else {}
        if here != listed:
            bad = sorted(set(here.items()) ^ set(listed.items()))[:3]
            raise ValueError(f"{root}/{sid}: files differ from manifest.json (e.g. {[b[0] for b in bad]})")
        return _load_multiview_subject(root, sid)

    has_views = any(p.startswith(f"{s}/views/") for s in subjects for p in files)
    has_frames = any(p.startswith(f"{s}/frames/") for s in subjects for p in files)
    return Dataset(dataset_id or f"multiview:{root}", m.get("id") or root.name, m["sha256"], bool(m.get("synthetic")),
                   subjects, m.get("description", ""), _with_driver(load, subjects), has_views, has_frames, root)


def _next_subject(subjects: list[str], sid: str) -> str | None:
    """Cross-reenactment pairing of every set: a subject is driven by the next one in its list (cyclic)."""
    if len(subjects) < 2:
        return None
    return subjects[(subjects.index(sid) + 1) % len(subjects)]


def _with_driver(load: Callable[[str], Subject], subjects: list[str]) -> Callable[[str], Subject]:
    def wrapped(sid: str) -> Subject:
        s = load(sid)
        other = _next_subject(subjects, sid)
        if other is not None:
            s.driver_loader = lambda: load(other)
        return s
    return wrapped


def _load_multiview_subject(root: Path, sid: str) -> Subject:
    """One subject of a multi-view folder, read from disk (see the module docstring for the layout)."""
    d = root / sid
    cams = json.loads((d / "cameras.json").read_text())
    views = []
    for name, cam in sorted(cams.get("views", {}).items()):
        camera = Camera.from_dict(cam)
        img = _read_rgb(d / "views" / f"{name}.png")
        if img.shape[:2] != (camera.height, camera.width):
            raise ValueError(f"{d}/views/{name}.png is {img.shape[1]}x{img.shape[0]}, its camera "
                             f"{camera.width}x{camera.height}")
        mpath_ = d / "masks" / f"{name}.png"
        mask = None
        if mpath_.is_file():
            from PIL import Image
            mask = np.asarray(Image.open(mpath_).convert("L")) >= 128
        views.append(View(name, camera, img, mask))
    frames = [_read_rgb(p) for p in sorted((d / "frames").glob("*.png"))] if (d / "frames").is_dir() else []
    return Subject(sid, _read_rgb(d / "input.png"), str(d), Camera.from_dict(cams["input"]),
                   np.asarray(cams.get("head_center", (0.0, 0.0, 0.0)), np.float64), views, frames)


def write_multiview(root: str | Path, dataset_id: str, subjects: list[dict], synthetic: bool,
                    description: str, license: str) -> Path:
    """Write a multi-view folder atomically (built in a temp folder, then renamed into place).

    subjects: dicts with id, input (uint8 image), input_camera, head_center, views {name: (Camera,
    image, mask|None)}, frames [images]."""
    from PIL import Image
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        for s in subjects:
            d = tmp / s["id"]
            (d / "views").mkdir(parents=True)
            Image.fromarray(s["input"]).save(d / "input.png")
            cams = {"input": s["input_camera"].to_dict(), "head_center": [float(v) for v in s["head_center"]],
                    "views": {}}
            for name, (cam, img, mask) in s["views"].items():
                cams["views"][name] = cam.to_dict()
                Image.fromarray(img).save(d / "views" / f"{name}.png")
                if mask is not None:
                    (d / "masks").mkdir(exist_ok=True)
                    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(d / "masks" / f"{name}.png")
            for i, fr in enumerate(s.get("frames", [])):
                (d / "frames").mkdir(exist_ok=True)
                Image.fromarray(fr).save(d / "frames" / f"{i:04d}.png")
            (d / "cameras.json").write_text(json.dumps(cams, indent=1))
        files = _file_hashes(tmp)
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "id": dataset_id, "synthetic": synthetic,
                    "description": description, "license": license, "subjects": [s["id"] for s in subjects],
                    "files": files, "sha256": manifest_hash(files)}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


# ----------------------------------------------------------------------------------- synthetic

def synthetic_dataset(cache_dir: str | Path | None = None, generator: str | None = None,
                      rebuild: bool = False, verify: bool = True) -> Dataset:
    """The synthetic multi-view + video set, generated once into <cache>/eval/<generator>/.

    `generator` names an entry of evaluation.synthetic.GENERATORS (pluggable: a template-based head
    can be added there without touching the protocols)."""
    from evaluation import synthetic
    name = generator or synthetic.DEFAULT
    gen = synthetic.GENERATORS[name]

    def subjects():  # the generator gets the bundled photos, so it never imports this module
        return gen({sid: _read_rgb(p) for sid, (pkg, parts, _) in BUNDLED.items() if (p := _site_file(pkg, *parts))})

    root = Path(cache_dir or DEFAULT_CACHE) / "eval" / f"synthetic-{name}"
    if rebuild or not (root / "manifest.json").is_file():
        write_multiview(root, "synthetic", subjects(), synthetic=True,
                        description=synthetic.DESCRIPTION[name], license=synthetic.LICENSE)
    try:
        ds = multiview_folder(root, dataset_id="synthetic", verify=verify)
    except ValueError:  # a damaged or stale cache: regenerate once
        write_multiview(root, "synthetic", subjects(), synthetic=True,
                        description=synthetic.DESCRIPTION[name], license=synthetic.LICENSE)
        ds = multiview_folder(root, dataset_id="synthetic")
    ds.synthetic = True
    ds.slug = f"synthetic-{name}"
    return ds


# ------------------------------------------------------------------------------------- videos

VIDEOS_FORMAT = "headsplat-videos"


def videos_folder(folder: str | Path, sampling=None) -> Dataset:
    """The `videos:<folder>` dataset (see evaluation/videos.py for what is sampled and refused).

    Opening decodes each clip's head (Sampling.search + every x cap frames), finds the source frame and
    the crop, and hashes the pixels of every sampled crop into the manifest (Dataset.manifest); loading a
    subject decodes its clip again and refuses pixels that differ from the manifest. ValueError naming
    every clip that cannot be scored (nothing is written anywhere)."""
    from evaluation import videos as V
    s = sampling or V.Sampling()
    folder = Path(folder).expanduser().resolve()
    files = V.list_clips(folder)
    clips, errors = {}, []
    for cid, path in files.items():
        try:
            clip = V.read_clip(path, V.frames_needed(s))
            p = V.plan(clip, s)
        except V.ClipError as e:
            errors.append(str(e))
            continue
        ids = [p["source"], *p["targets"]]
        clips[cid] = {"file": path.name, "file_sha256": sha256_file(path), **p,
                      "pixels": {f"frame{i:05d}": pixels_sha256(V.crop(clip.frames[i], p)) for i in ids}}
        del clip
    if errors:
        raise ValueError(f"videos:{folder}: {len(errors)} of {len(files)} clip(s) cannot be scored: "
                         + "; ".join(errors))
    synthetic = (folder / V.SYNTHETIC_MARKER).is_file()
    manifest = {"format": VIDEOS_FORMAT, "format_version": 1, "sampling": s.to_dict(), "clips": clips}
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    subjects = sorted(clips)

    def load(sid: str) -> Subject:
        c = clips[sid]
        ids = [c["source"], *c["targets"]]
        clip = V.read_clip(files[sid], max(ids) + 1)
        crops = [V.crop(clip.frames[i], c) for i in ids]
        bad = [i for i, cr in zip(ids, crops) if pixels_sha256(cr) != c["pixels"][f"frame{i:05d}"]]
        if bad:
            raise ValueError(f"{files[sid]}: frames {bad[:3]} decode to other pixels than the manifest's "
                             "(the file or the decoder changed)")
        return Subject(sid, crops[0], f"{files[sid]} (frame {ids[0]} of {c['frames_read']} read)",
                       frames=crops, frame_ids=ids)

    kind = "SYNTHETIC clips" if synthetic else "real clips"
    ds = Dataset(f"videos:{folder}", f"videos-{folder.name}", digest, synthetic, subjects,
                 f"{kind} in {folder}: source = first frame with a face, targets every {s.every}th frame "
                 f"(at most {s.cap}), one face crop per clip", _with_driver(load, subjects),
                 has_views=False, has_frames=True, root=folder)
    ds.manifest = manifest
    return ds


def nersemble_folder(folder: str | Path, manager_factory=None) -> Dataset:
    """The `nersemble:<folder>` dataset (evaluation/nersemble.py): the NeRSemble benchmark layout read
    through the official toolkit (manager_factory: a stand-in with the toolkit's NVSDataManager methods)."""
    from evaluation import nersemble as N
    folder = Path(folder).expanduser().resolve()
    index = N.index(folder, manager_factory)
    subjects = sorted(index)

    def load(sid: str) -> Subject:
        d = N.load_subject(folder, index[sid], manager_factory)
        return Subject(sid, d["input"], d["source"], d["input_camera"], d["head_center"],
                       [View(name, cam, img, mask) for name, (cam, img, mask) in sorted(d["views"].items())])

    digest = manifest_hash(N.file_hashes(folder, index))
    ds = Dataset(f"nersemble:{folder}", f"nersemble-{folder.name}", digest, False, subjects,
                 f"NeRSemble benchmark data in {folder} (real multi-view captures): input = camera "
                 "nearest the rig's front, views = the other cameras at the same timestep", load,
                 has_views=True, has_frames=False, root=folder)
    ds.manifest = {"format": "nersemble-benchmark", "subjects": {k: v for k, v in index.items()}}
    return ds


def load_dataset(spec: str, cache_dir: str | Path | None = None, verify: bool = True) -> Dataset:
    """Dataset from its id (see module docstring). Subjects are read one at a time (Dataset.subject), so
    opening a set holds its index, not its images. verify=False: see multiview_folder (workers)."""
    spec = spec.strip()
    cache = str(Path(cache_dir).expanduser().resolve()) if cache_dir is not None else None
    if spec == "portraits-bundled":
        ds = portraits_bundled()
    elif spec == "portraits-group":
        ds = portraits_group()
    elif spec == "portraits-dev":
        ds = portraits_dev()
    elif spec == "synthetic" or spec.startswith("synthetic:"):
        ds = synthetic_dataset(cache_dir, spec.partition(":")[2] or None, verify=verify)
        spec = f"synthetic:{ds.slug.removeprefix('synthetic-')}"
    elif spec.startswith("portraits:"):
        ds = portraits_folder(spec.partition(":")[2])
        spec = ds.id
    elif spec.startswith("multiview:"):
        ds = multiview_folder(spec.partition(":")[2], verify=verify)
        spec = ds.id
    elif spec.startswith("videos:"):
        ds = videos_folder(spec.partition(":")[2])
        spec = ds.id
    elif spec.startswith("nersemble:"):
        ds = nersemble_folder(spec.partition(":")[2])
        spec = ds.id
    else:
        raise ValueError(f"unknown dataset {spec!r}: use portraits-bundled, portraits-group, portraits-dev, synthetic, portraits:<folder>, "
                         f"multiview:<folder>, videos:<folder> or nersemble:<folder>")
    ds.spec, ds.cache_dir = spec, cache
    return ds


def open_ref(ref: tuple) -> Dataset:
    """The dataset a Dataset.ref() names, opened here (on a worker): by its spec, without re-reading every
    file where the set's manifest allows; ValueError when this machine's copy is not the same data."""
    spec, cache_dir, manifest = ref
    if spec is None:
        raise ValueError("this dataset was not opened by load_dataset and cannot be reopened on a worker")
    ds = load_dataset(spec, cache_dir, verify=False)
    if ds.manifest_sha256 != manifest:
        raise ValueError(f"dataset {spec!r} on this machine has manifest {ds.manifest_sha256[:12]}, the run's is "
                         f"{manifest[:12]}: the worker sees different data than the driver")
    return ds
