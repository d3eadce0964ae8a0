"""The ICT-FaceKit head model (USC ICT, MIT): a scan-based morphable head, loaded from a committed asset.

    from model.head.head_model import load_head_model
    m = load_head_model()                      # once per process (lru_cache), ~0.25 s
    v = m.vertices(identity=w100, expression={"jawOpen": 0.5, "eyeBlink_L": 1.0})   # [V,3] metres

Built like smplx's model objects: a data file made once by model/head/ict_build.py (which documents how
each array is derived: parts kept, frame, mirror, triangulation, regions, storage) is loaded, checked
against a pinned sha256 and frozen; the model is linear, one call gives vertices:

    vertices = neutral + sum_k identity[k] * identity_basis[k] + sum_e expression[e] * expression_basis[e]

as ICT's own toolkit (Scripts/ict_face_model.py) computes it on its OBJ meshes. Pure numpy.
Units: metres; frame: the head frame of model/core/camera.py (origin head centre, +y up, +z out of the
face, +x the subject's left); triangles counter-clockwise seen from outside.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from model.core.pinned import read_pinned

ASSET_PATH = Path(__file__).with_name("data") / "ict_head.npz"
ASSET_SHA256 = "f51a42aa72ce486cd0ffd141fe42bce1d83c8c5cc957235563d054562e52bdc1"
# The regions every avatar reads (model/head/template.py re-exports them); this module stays numpy-only.
REGIONS = ("face_skin", "scalp", "ears", "neck", "eyes", "lips", "mouth_interior", "brows", "teeth", "tongue")
__all__ = ["ASSET_PATH", "ASSET_SHA256", "REGIONS", "HeadModel", "HeadModelAssetError", "load_head_model"]


class HeadModelAssetError(RuntimeError):
    """The asset file is missing, corrupt or not the version this code pins."""


@dataclass(frozen=True, eq=False)
class HeadModel:
    neutral: np.ndarray  # [V,3] float64 metres, head frame: ICT's generic neutral mesh
    faces: np.ndarray  # [F,3] int32 vertex indices, counter-clockwise seen from outside (sockets: inside)
    face_uvs: np.ndarray  # [F,3,2] float32 per-corner UVs: u's integer part is ICT's material tile, v image rows
    face_region: np.ndarray  # [F] int64 index into REGIONS
    face_part: np.ndarray  # [F] int64 index into part_names (ICT's parts: face, head_neck, teeth, eyeball_L...)
    part_names: tuple[str, ...]
    vertex_mirror: np.ndarray  # [V] int64 involution: neutral[vertex_mirror] ~ neutral * (-1, 1, 1)
    landmarks68: np.ndarray  # [68] int64 vertex indices of the Multi-PIE 68 landmarks (ICT's choice)
    identity_basis: np.ndarray  # [K,V,3] float32 metres per unit weight; K = 100 PCA modes
    expression_basis: np.ndarray  # [E,V,3] float32 metres at weight 1; E = 53 ARKit-like shapes
    expression_names: tuple[str, ...]  # [E] ICT's names: "jawOpen", "eyeBlink_L", ... (_L = subject's left)
    source_vertex: np.ndarray  # [V] int64 ICT's 0-based vertex index of each vertex (OBJ number - 1)
    transform: np.ndarray  # [4,4] float64 ICT centimetres -> head-frame metres (scale 0.01, translation)
    landmark_faces: np.ndarray | None  # [478] int64 triangle of each mediapipe face-mesh point (None: not built)
    landmark_bary: np.ndarray | None  # [478,3] float64 its barycentric coordinates in that triangle
    meta: dict  # provenance (source commit, file sha256s, build version), per-part facts, measured errors
    path: Path

    @property
    def n_vertices(self) -> int:
        return len(self.neutral)

    def vertices(self, identity=None, expression=None) -> np.ndarray:
        """Mesh vertices [V,3] float64 metres for identity weights [K] and expression weights (a dict
        name -> weight, or an array [E] in expression_names order); None means all zero.

        Identity weights are ICT's: coefficients on its identityNNN deltas, which are PCA modes scaled so
        that ICT's toolkit samples new faces with weights ~ N(0, 1); a weight of 1 is therefore about one
        standard deviation of ICT's scan population along that mode (the modes' sizes fall with the index:
        mode 0 moves vertices up to 15 mm, mode 99 up to 0.3 mm). Expression weight 1 is ICT's full shape
        (jawOpen 1: the jaw fully open, the chin ~42 mm lower); weights add linearly (no jaw joint)."""
        v = self.neutral.copy()
        for w, basis in ((self._identity_weights(identity), self.identity_basis),
                         (self._expression_weights(expression), self.expression_basis)):
            if w is not None and w.any():
                nz = np.nonzero(w)[0]
                v += np.tensordot(w[nz].astype(np.float32), basis[nz], 1)
        return v

    def _identity_weights(self, identity) -> np.ndarray | None:
        if identity is None:
            return None
        w = np.asarray(identity, dtype=np.float64)
        if w.shape != (len(self.identity_basis),):
            raise ValueError(f"identity weights must have shape ({len(self.identity_basis)},), got {w.shape}")
        return w

    def _expression_weights(self, expression) -> np.ndarray | None:
        if expression is None:
            return None
        if isinstance(expression, dict):
            w = np.zeros(len(self.expression_names))
            for name, x in expression.items():
                if name not in self.expression_names:
                    raise KeyError(f"unknown expression {name!r}; known: {', '.join(self.expression_names)}")
                w[self.expression_names.index(name)] = x
            return w
        w = np.asarray(expression, dtype=np.float64)
        if w.shape != (len(self.expression_names),):
            raise ValueError(f"expression weights must have shape ({len(self.expression_names)},), got {w.shape}")
        return w

    def landmarks(self, vertices: np.ndarray) -> np.ndarray:
        """Vertices [V,3] (e.g. from vertices()) -> mediapipe's 478 face-mesh points [478,3] on that mesh."""
        tri = np.asarray(vertices)[self.faces[self.landmark_faces]]
        return np.einsum("lk,lkd->ld", self.landmark_bary, tri)

    def region_faces(self, name: str) -> np.ndarray:
        """Indices of the triangles of region `name`."""
        return np.nonzero(self.face_region == REGIONS.index(name))[0]


def _asset_error(path: Path, problem: str) -> HeadModelAssetError:
    return HeadModelAssetError(
        f"ICT head-model asset {path}: {problem}. It is committed with the repository: restore it "
        f"(`git checkout -- model/head/data/ict_head.npz`), or rebuild it from an ICT-FaceKit checkout "
        f"(`python -m model.head.ict_build --source <ICT-FaceKit> --out {path}`; a deliberate rebuild also "
        f"updates ASSET_SHA256 in model/head/head_model.py).")


@lru_cache(maxsize=4)
def load_head_model(path: Path | str = ASSET_PATH, sha256: str = ASSET_SHA256) -> HeadModel:
    """The head model from its asset (default: the committed one, checked against ASSET_SHA256)."""
    path = Path(path)
    data = read_pinned(path, sha256, lambda problem: _asset_error(path, problem))
    with np.load(io.BytesIO(data), allow_pickle=False) as d:
        a = {k: d[k] for k in d.files}
    if tuple(a["regions"].tolist()) != REGIONS:
        raise _asset_error(path, f"its regions {a['regions'].tolist()} are not {REGIONS}")
    step = np.float32(a["delta_step"])
    identity = a["identity_delta_q"].astype(np.float32) * step
    names = tuple(a["expression_names"].tolist())
    expression = np.zeros((len(names),) + a["neutral"].shape, np.float32)
    rows = np.repeat(np.arange(len(names)), np.diff(a["expression_ptr"]))
    expression[rows, a["expression_vertex"]] = a["expression_delta_q"].astype(np.float32) * step
    arrays = dict(neutral=a["neutral"].astype(np.float64), faces=a["faces"].astype(np.int32),
                  face_uvs=a["face_uvs"], face_region=a["face_region"].astype(np.int64),
                  face_part=a["face_part"].astype(np.int64), vertex_mirror=a["vertex_mirror"].astype(np.int64),
                  landmarks68=a["landmarks68"].astype(np.int64), identity_basis=identity,
                  expression_basis=expression, source_vertex=a["source_vertex"].astype(np.int64),
                  transform=a["transform"].astype(np.float64),
                  landmark_faces=a["landmark_faces"].astype(np.int64) if "landmark_faces" in a else None,
                  landmark_bary=a["landmark_bary"].astype(np.float64) if "landmark_bary" in a else None)
    for x in arrays.values():
        if x is not None:
            x.setflags(write=False)
    return HeadModel(**arrays, part_names=tuple(a["part_names"].tolist()), expression_names=names,
                     meta=json.loads(a["meta"].item()), path=path)
