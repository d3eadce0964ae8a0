"""The head every avatar stands on: the ICT-FaceKit model's mean head with the project's symmetric UV atlas.

The head model (model/head/head_model.py: ICT-FaceKit, MIT, a committed asset) gives the geometry, the
identity and expression bases, the regions, the left/right vertex pairs and the mediapipe landmark map;
its own UVs are per-material tiles, so the avatar uses the project's atlas of the same triangles
(model/head/ict_atlas.py: one atlas in [0,1]^2, symmetric about u = 0.5). This module joins the two in
one object, the "template" in the field's sense (FLAME's template mesh): what UV binding, texture
projection, symmetric fusion, the hair, the bust and the exports read.

- `vertex_mirror` is an involution with vertices[vertex_mirror] ~ vertices * (-1, 1, 1) (ICT's pairs);
- the atlas is symmetric about u = 0.5: the mirror of texel (row, col) of an R x R texture is
  (row, R - 1 - col), i.e. u -> 1 - u (`uv_mirror`); the subject's left is u > 0.5 on the face;
- the landmark map (the one place it is held): for each of mediapipe's 478 face-mesh points, a triangle
  and barycentric coordinates (`landmark_faces`, `landmark_bary`, built with the asset);
- semantic regions per triangle (`face_region`, names in REGIONS: face_skin, scalp, ears, neck, eyes,
  lips, mouth_interior, brows, teeth, tongue) and as UV masks.

Units: metres; frame: the head world frame of model/core/camera.py (origin head centre, +y up, +z out of
the face, +x the subject's left). Triangles are counter-clockwise seen from outside.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from model.head.head_model import REGIONS, HeadModel, load_head_model
from model.head.ict_atlas import symmetric_atlas
from model.head.mesh import barycentric_matrix

__all__ = ["TEMPLATE_VERSION", "REGIONS", "Template", "load_template"]


@dataclass(frozen=True, eq=False)
class Template:
    model: HeadModel  # the morphable model these arrays come from
    vertices: np.ndarray  # [V,3] float64 the model's mean neutral head, metres
    faces: np.ndarray  # [F,3] int32, counter-clockwise seen from outside
    face_uvs: np.ndarray  # [F,3,2] per-corner UVs in [0,1] (the symmetric atlas)
    vertex_mirror: np.ndarray  # [V] int64 involution: vertices[vertex_mirror] ~ vertices * (-1, 1, 1)
    face_region: np.ndarray  # [F] int64 index into REGIONS
    landmark_faces: np.ndarray  # [478] int64 triangle of each mediapipe landmark
    landmark_bary: np.ndarray  # [478,3] barycentric coordinates in that triangle
    landmark_pair: np.ndarray  # [478] int64 each mediapipe landmark's mirror twin
    version: str

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
        return self.landmark_pair

    def landmarks(self, vertices: np.ndarray) -> np.ndarray:
        """Vertices [V,3] (any deformation of this head) -> mediapipe landmark points [478,3]."""
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
    """The head (once per process: the asset's load and the atlas' packing, ~2-4 s)."""
    from model.head.mediapipe_canon import load as load_canonical
    m = load_head_model()
    atlas = symmetric_atlas(m)
    arrays = dict(vertices=m.neutral, faces=m.faces, face_uvs=atlas.face_uvs, vertex_mirror=m.vertex_mirror,
                  face_region=atlas.face_region, landmark_faces=m.landmark_faces, landmark_bary=m.landmark_bary,
                  landmark_pair=load_canonical()[1])
    for a in arrays.values():
        a.setflags(write=False)
    return Template(model=m, version=TEMPLATE_VERSION, **arrays)


# bump whenever the head model's asset, the atlas or the landmark map change
TEMPLATE_VERSION = "ict-facekit-da5f95a/atlas-1"
