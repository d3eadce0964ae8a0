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
from model.head.ict_atlas import Atlas, symmetric_atlas
from model.head.mesh import barycentric_matrix

__all__ = ["TEMPLATE_VERSION", "REGIONS", "Template", "load_template"]


@dataclass(frozen=True, eq=False)
class Template:
    model: HeadModel  # the morphable model: geometry, mirror pairs, landmark map
    atlas: Atlas  # the project's symmetric UV atlas of the model's triangles: UVs, regions, uv_mirror
    landmark_pair: np.ndarray  # [478] int64 each mediapipe landmark's mirror twin
    version: str

    # the arrays the avatar reads, each from the one place that holds it
    @property
    def vertices(self) -> np.ndarray:
        """[V,3] float64 the model's mean neutral head, metres."""
        return self.model.neutral

    @property
    def faces(self) -> np.ndarray:
        """[F,3] int32, counter-clockwise seen from outside."""
        return self.model.faces

    @property
    def face_uvs(self) -> np.ndarray:
        """[F,3,2] per-corner UVs in [0,1] (the symmetric atlas)."""
        return self.atlas.face_uvs

    @property
    def face_region(self) -> np.ndarray:
        """[F] int64 index into REGIONS."""
        return self.atlas.face_region

    @property
    def vertex_mirror(self) -> np.ndarray:
        """[V] int64 involution: vertices[vertex_mirror] ~ vertices * (-1, 1, 1)."""
        return self.model.vertex_mirror

    @property
    def landmark_faces(self) -> np.ndarray:
        """[478] int64 triangle of each mediapipe landmark."""
        return self.model.landmark_faces

    @property
    def landmark_bary(self) -> np.ndarray:
        """[478,3] barycentric coordinates of each mediapipe landmark in its triangle."""
        return self.model.landmark_bary

    @property
    def n_vertices(self) -> int:
        return self.model.n_vertices

    def uv_mirror(self, uv: np.ndarray) -> np.ndarray:
        """UVs [N,2] -> their mirror twins [N,2] (u -> 1 - u; the atlas is symmetric about u = 0.5)."""
        return self.atlas.uv_mirror(uv)

    def region_masks(self, res: int) -> dict[str, np.ndarray]:
        """Region name -> [res,res] bool mask of the texels whose triangle belongs to it."""
        return self.atlas.region_masks(res)

    def landmark_matrix(self):
        """Sparse [478,V] matrix M with M @ vertices == landmarks(vertices)."""
        return _landmark_matrix(self)

    def landmark_mirror(self) -> np.ndarray:
        """[478] int: the index of each mediapipe landmark's mirror twin (x -> -x), e.g. 61 <-> 291 (mouth
        corners); midline points are their own twins."""
        return self.landmark_pair

    def landmarks(self, vertices: np.ndarray) -> np.ndarray:
        """Vertices [V,3] (any deformation of this head) -> mediapipe landmark points [478,3]."""
        return self.model.landmarks(vertices)

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
    pair = load_canonical()[1]
    pair.setflags(write=False)
    m = load_head_model()
    return Template(model=m, atlas=symmetric_atlas(m), landmark_pair=pair, version=TEMPLATE_VERSION)


# bump whenever the head model's asset, the atlas or the landmark map change
TEMPLATE_VERSION = "ict-facekit-da5f95a/atlas-1"
