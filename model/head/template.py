"""The project's open full-head template: geometry, UV atlas, mirror maps, regions, landmark map.

FLAME/BFM are licence-gated downloads, so the head is built by code in this repo
(model/head/_template_build.py, ~1 s, cached in memory), deterministically:

- one closed skin surface (face, scalp, back of head, neck stump with a flat cap) made from a
  latitude-longitude grid of directions around the head centre; a mouth slit whose lips meet at
  neutral and open into a mouth cavity (teeth and tongue regions), and two eye slits (open lids)
  backed by small sockets; two eyeballs and two ears as separate closed shells. ~12k vertices;
- left/right symmetric: `vertex_mirror` is an involution with vertices[vertex_mirror] equal to
  vertices * (-1, 1, 1) exactly;
- one UV atlas, symmetric about u = 0.5: the mirror of texel (row, col) of an R x R texture is
  (row, R - 1 - col), i.e. u -> 1 - u (`uv_mirror`). Layout: the skin is one island spanning
  u in [0, 1], v in [0, 0.78] (u = 0.5 is the face's midline, the seam is at the back of the head
  at u = 0 / 1, the subject's left is u > 0.5, top of the head at v = 0); below it, from left to
  right: right ear, right eyeball, right eye socket, mouth cavity (centred), and their mirror
  twins;
- the landmark map (the one place it is held): for each of mediapipe's 478 face-mesh points, a
  triangle and barycentric coordinates (`landmark_faces`, `landmark_bary`). Where the points come
  from is documented in model/head/_template_canonical.py (mediapipe run on portraits shipped in
  packages, frontalized, averaged, symmetrized); inner-lip and lid points sit on their slit edge,
  iris points on the eyeballs;
- semantic regions per triangle (`face_region`, names in REGIONS: face_skin, scalp, ears, neck,
  eyes (eyeballs and sockets), lips, mouth_interior, brows, teeth, tongue) and as UV masks.

Units: metres; frame: the head world frame of model/core/camera.py (origin head centre, +y up, +z out of
the face, +x the viewer's right). Triangles are counter-clockwise seen from outside.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from model.head._template_build import REGIONS, build
from model.head.mesh import barycentric_matrix

TEMPLATE_VERSION = "open-head-1.2"  # bump whenever geometry, UVs, regions or the landmark map change
__all__ = ["TEMPLATE_VERSION", "REGIONS", "Template", "load_template"]


@dataclass(frozen=True, eq=False)
class Template:
    vertices: np.ndarray  # [V,3] float64 neutral, metres
    faces: np.ndarray  # [F,3] int32, counter-clockwise seen from outside
    face_uvs: np.ndarray  # [F,3,2] per-corner UVs in [0,1]
    vertex_mirror: np.ndarray  # [V] int64 involution: vertices[vertex_mirror] == vertices * (-1, 1, 1)
    face_region: np.ndarray  # [F] int64 index into REGIONS
    landmark_faces: np.ndarray  # [478] int64 triangle of each mediapipe landmark
    landmark_bary: np.ndarray  # [478,3] barycentric coordinates in that triangle
    version: str = TEMPLATE_VERSION
    parts: dict = field(default_factory=dict, repr=False)  # construction facts used by fitting and rig

    @property
    def n_vertices(self) -> int:
        return len(self.vertices)

    def uv_mirror(self, uv: np.ndarray) -> np.ndarray:
        """UVs [N,2] -> their mirror twins [N,2] (u -> 1 - u; the atlas is symmetric about u = 0.5)."""
        out = np.array(uv, dtype=np.float64, copy=True)
        out[..., 0] = 1.0 - out[..., 0]
        return out

    def region_masks(self, res: int) -> dict[str, np.ndarray]:
        """Region name -> [res,res] bool mask of the texels whose triangle belongs to it."""
        from model.core.raster_mesh import rasterize_uv
        face_id, _ = rasterize_uv(self.face_uvs, res)
        reg = np.where(face_id >= 0, self.face_region[np.maximum(face_id, 0)], -1)
        return {name: reg == i for i, name in enumerate(REGIONS)}

    def landmark_matrix(self):
        """Sparse [478,V] matrix M with M @ vertices == landmarks(vertices)."""
        return _landmark_matrix(self)

    def landmark_mirror(self) -> np.ndarray:
        """[478] int: the index of each mediapipe landmark's mirror twin (x -> -x), e.g. 61 <-> 291 (mouth
        corners); midline points are their own twins."""
        return self.parts["landmark_pair"]

    def landmarks(self, vertices: np.ndarray) -> np.ndarray:
        """Vertices [V,3] (any deformation of this template) -> mediapipe landmark points [478,3]."""
        tri = np.asarray(vertices)[self.faces[self.landmark_faces]]  # [478,3,3]
        return np.einsum("lk,lkd->ld", self.landmark_bary, tri)

    def region_vertices(self, name: str) -> np.ndarray:
        """Indices of vertices used by triangles of region `name`."""
        return np.unique(self.faces[self.face_region == REGIONS.index(name)])


@lru_cache(maxsize=2)
def _landmark_matrix(t: Template):
    return barycentric_matrix(t.faces[t.landmark_faces], t.landmark_bary, len(t.vertices))


@lru_cache(maxsize=1)
def load_template() -> Template:
    """The template (built once per process, ~1 s)."""
    d = build()
    arrays = {k: d[k] for k in ("vertices", "faces", "face_uvs", "vertex_mirror", "face_region",
                                "landmark_faces", "landmark_bary")}
    for a in arrays.values():
        a.setflags(write=False)
    parts = dict(d["info"], canonical_landmarks=d["canon"], landmark_pair=d["canon_pair"])
    return Template(**arrays, parts=parts)
