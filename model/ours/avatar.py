"""Our method, HeadSplat: one photo -> an animatable full head of Gaussians living in UV space.

Pipeline, one feed-forward pass (no optimisation loop):
1. landmarks and the fit of the ICT-FaceKit head (model.head.ict_fit): camera, identity, the photo's
   expression and gaze;
2. the photo parsed (model.head.segmentation): person, hair (MediaPipe's hair model), face skin, clothes,
   occluders; skin tone, hair colour, height and length;
3. geometry: the fitted surface, offset along its normals by a hair volume over the scalp;
4. texture: every texel of the UV atlas samples the photo where its point is visible, with a
   confidence (model.ours.texture.project_texture); texels the photo does not see take their mirror
   texel's texture, pasted in the gradient domain so no seam shows (symmetric fusion; a texel the
   photo sees keeps its own colour); what neither backs comes from the full-head prior;
5. one Gaussian per texel (several along a stretched texel's long side), bound to its triangle by
   barycentric coordinates plus the normal offset, oriented by the triangle's tangent frame and sized
   by the texel footprint. Under the rig, a new expression is one template deformation plus a
   re-evaluation of these bindings;
6. the colours of the Gaussians the photo sees are solved so that the render at the input camera
   reproduces the photo (fit_colours_to_view: a damped linear least-squares, no learned weights);
7. under the head, a bust (model.ours.bust) with its own chart, textured the same way, never moving
   under the rig.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple
from functools import lru_cache

import cv2
import numpy as np
import scipy.sparse as sp
from scipy.ndimage import binary_dilation

from model.core.camera import Camera, head_extent
from model.core.gaussians import Gaussians, rgb_to_sh
from model.core.image_io import load_image, to_float
from model.core.raster_mesh import rasterize_mesh
from model.core.render import compositing_weights
from model.head import rig
from model.head.ict_fit import HeadFit, fit
from model.head.landmarks import detect_landmarks, landmarks_of
from model.head.mesh import barycentric_matrix, vertex_normals
from model.head.segmentation import PhotoEvidence, hair_end_row, hair_reach, photo_evidence
from model.head.template import TEMPLATE_VERSION
from model.interface import Controls, GaussianAvatar, Method, MethodInfo
from model.ours.binding import (
    UVLayout,
    bary_points,
    bound_frames,
    face_quaternions,
    split_texels,
    tangent_frames,
    uv_layout,
    uv_tangent_coefficients,
)
from model.ours.bust import REGION as BUST_REGION
from model.ours.bust import Bust, build_bust, bust_colours, bust_layout, bust_normals, takes_over
from model.ours.bust import grid as bust_grid
from model.ours.texture import (SEEN_CONF, complete, fuse_symmetric, hair_prior, hanging_strands, project_texture,
                                 sample_bilinear)

# 0.2: stretched texels split; 0.3: teeth wall, shading fallback; 0.4: hair carved to the silhouette;
# 0.5: the mirror fills only texels the photo does not see, pasted in the gradient domain;
# 0.5.1: retargeting reads the feature landmarks (model.head.rig.FEATURE_LANDMARKS) and a rest face;
# 0.6: the hair the photo does not show is quilted from the hair it shows (texture.synthesize_hair), the
# neck's unseen texels take the colours of their ring (texture.ring_colours: a collar goes round);
# 0.6.1: retargeting reads the lips' outer contour only (rig.FEATURE_LANDMARKS), tracks each frame with
# its mirror image (model.head.landmarks.detect_all) and reads the jaw and smile as the tracker sees them
# on renders of the avatar (rig.calibrate); 0.7: the unseen hair is quilted on the scalp unrolled at its true
# size, from hair sampled away from the face and the ears (texture.synthesize_hair, hair_sample_places);
# 0.7.1: texels of the face's skin colours are left out of a dark hair's exemplar (texture.skin_like)
# 0.8: long hair hangs down the sides and back of the neck to where the photo's hair ends (hanging_hair,
# segmentation.hair_reach), coloured and quilted as hair; the jaw's rim grows over the photo's jaw line
# where the fit stops short of it (rim_growth); 0.9: a bust under the neck (model.ours.bust), the hair's quilting
# in numba (same output), the tracker's jaw calibrated at jawOpen 0.7 (model.head.rig.CALIBRATION_POSES)
# 1.0: on the ICT-FaceKit head (model/head/template.py: scan-based shape, real ears, teeth, tongue and eyeballs,
# its symmetric atlas at uv_res 384), the ARKit-52 rig, the mouth's cavity occluded by depth
# 1.1: the photo parsed by MediaPipe's hair model (model.head.segmentation): the hair's exemplar, colour,
# height and length come from the photo's hair pixels; hair texels that see no hair are unseen; the unseen
# hair takes the photo's mean hair colour; occluders over the face are not projected (nor view-fitted)
# 1.2: hands are occluders too (segmentation.hand_mask: mediapipe's hand landmarker; a hand has the skin's
# colours, which the colour rule cannot tell from the face); an ear under the photo's hair is hair (EAR_SEEN)
# 1.3: the unseen hair's low frequencies are the photo's hair mean (texture.complete, HAIR_LOW_M): the quilt
# keeps the detail, no longer the blotches of shaded hair it gathered at the back; 1.4: long hair lies on down
# the bust's back to where the photo's hair ends (hair_down_the_back); hands at the detector's lower threshold
# 1.5: long hair ends at the photo's hair end lifted onto the plane of the head's centre (hair_end_height), not
# at face heights scaled by the model's face (2 cm short on if_052); 1.6: a bust whose photo shows no chest ring
# takes its shirt's colour from the shoulders' clothing (bust.bust_colours), not the unseen grey
# 1.6.1: an ear whose edge the photo sees behind a curtain of hair (no skin of it seen) is hair too (EAR_SEEN)
# 1.7: the hair quilt does not repeat a block beside or above its own copy (texture.REPEAT_NEAR): a few distinct
# blocks had locked into a knit over the back of wavy hair
# 1.8: what a hand holds (a phone at the cheek) and its forearm are occluders too (segmentation.hand_mask): the
# phone and the palm under it had been projected onto the hair beside the jaw, the fingers onto the bust; a neck
# texel is hair where the hair's volume lifts it (HAIR_TEXEL_M, interpolated at the texel): under long hair, neck
# faces with corners on the scalp's border had kept the neck's skin, a dark seam across the back of the hair;
# the bust's inner wall that the photo sees past the neck takes the photo's colour (project_texture two_sided)
# 1.9: the bust stands under the neck (bust.neck_section: centred on ICT's neck's flare, not its collarbone flap,
# 5-8 cm forward), and takes over below it: the head's neck texels there that the photo does not see are dropped
# (bust.takes_over: the flare had hung behind the bust like a cape); the bust's chart at 384 (the collar and a
# tie as sharp as the photo); what goes round the back of a ring is what the photo shows at its sides
# (texture.RING_SIDE_SHARE: a tie had coloured the back of the neck lilac), off the photo's hair, the shoulders'
# clothing the photo's clothes; the photo's hair colour leaves out the hands
# 1.9.1: the bust the photo does not show, 3 texels away from what it shows, at half the resolution
# (texel_gaussians' coarse): 168k Gaussians on astronaut -> 124k, the bust's input PSNR within 0.05-0.2 dB
# 1.9.2: long hair on the bust's back falls straight down (texture.hanging_strands), not along the bust's columns,
# which converge at its top (the strands fanned out)
# 1.9.3: long hair's length counts the hair hanging from behind an ear (segmentation.hair_reach)
# 1.10.0: the unseen hair is quilted from the exemplar's detail, not its shading (texture.hair_detail)
METHOD_VERSION = "1.10.0"
COARSE_MARGIN = 3  # texels: the bust is shown coarse (texel_gaussians) only this far from what the photo shows of it
# A texel longer than SPLIT_RATIO x its width (and than SPLIT_MIN_M, ~1-2 photo pixels on a portrait)
# gets up to SPLIT_MAX Gaussians along its long side. On astronaut this takes 57k -> 100k Gaussians and
# the input view 25.3 -> 29.7 dB: the neck and chin charts are the stretched ones.
SPLIT_RATIO, SPLIT_MIN_M, SPLIT_MAX = 2.0, 0.002, 8
# A Gaussian's tangent sigma is capped (metres): a few of ICT's face triangles are slivers in UV (8 texels of
# the face at uv_res 384 gave 16 mm sigmas, streaks across the cheek); their neighbours cover the surface.
MAX_SIGMA_M = 0.005
UNSEEN_GREY = 0.5  # colour of texels nothing backs when completion is off and they are kept
# one more thread for the work that overlaps: the head's fit with the photo's parse, the Gaussians' placement and
# the bust with the texture's completion
_second = ThreadPoolExecutor(max_workers=1, thread_name_prefix="headsplat")


@dataclass
class Binding:
    """Gaussians bound to the avatar's triangles (T of them: one or more per kept texel). The avatar's mesh is
    the template's followed by the bust's (joined_mesh): V vertices, F triangles."""

    sample: object  # scipy.sparse [T,V]: barycentric interpolation of per-vertex positions
    faces: np.ndarray  # [T] triangle of each Gaussian (into the joined mesh's F)
    bary: np.ndarray  # [T,3] its barycentric coordinates there (the rows of `sample`)
    used_faces: np.ndarray  # [U] the distinct triangles in `faces`
    face_slot: np.ndarray  # [T] index into used_faces
    uv_coef: np.ndarray  # [U,2] uv_tangent_coefficients of used_faces
    hair: np.ndarray  # [V] offset along the vertex normal, metres (hair volume, rim growth; 0 elsewhere)
    scales: np.ndarray  # [T,3] float32, metres (tangent, bitangent, normal), neutral pose
    rgb: np.ndarray  # [T,3] in [0,1]
    sh: np.ndarray  # [T,1,3] the same colour as DC spherical harmonics
    opacities: np.ndarray  # [T]
    rest_area: np.ndarray  # [U] areas of used_faces in the neutral pose, m²


def joined_mesh(tpl, bust: Bust | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The avatar's triangles: the template's, then the bust's (vertex indices after the template's):
    faces [F,3], face_uvs [F,3,2] (the bust's chart one tile below the atlas, v + 1, so the two never
    overlap in an export's UVs) and face_region [F] (REGIONS indices; the bust's is bust.REGION)."""
    if bust is None:
        return tpl.faces, tpl.face_uvs, tpl.face_region
    faces, uvs = bust_grid()
    return (np.concatenate([tpl.faces, faces + tpl.n_vertices]), np.concatenate([tpl.face_uvs, uvs + [0.0, 1.0]]),
            np.concatenate([tpl.face_region, np.full(len(faces), BUST_REGION)]))


@dataclass
class HeadSplatAvatar(GaussianAvatar):
    info: MethodInfo
    fitted: HeadFit
    binding: Binding
    bust: Bust | None = None  # the neck's base and shoulders, static under the rig (model.ours.bust)
    timings: dict = field(default_factory=dict)
    _neutral: Gaussians | None = None

    def __post_init__(self):
        # framed on the head alone: the bust hangs below the frame's centre, as in a portrait
        self.head_center, self.head_radius = head_extent(rig.deform(self.fitted, None))
        self.faces, self.face_uvs, self.face_region = joined_mesh(self.fitted.template, self.bust)
        # per re-pose constants (a pose runs on every slider move): the carrying triangles gathered once, and
        # the triangles whose normals the hair offset reads (those touching a vertex with an offset)
        b = self.binding
        self._used_tris = np.ascontiguousarray(self.faces[b.used_faces], np.int64)
        self._corners = np.ascontiguousarray(self.faces[b.faces], np.int64)  # each Gaussian's triangle
        self._bary = np.ascontiguousarray(b.bary, np.float64)
        self._hair_tris = np.ascontiguousarray(self.faces[(b.hair[self.faces] != 0).any(1)], np.int64)

    def vertices(self, controls: Controls | None = None) -> np.ndarray:
        """[V,3] metres: the template under `controls` (model.head.rig.deform), then the bust (it never moves)."""
        v = rig.deform(self.fitted, controls)
        return v if self.bust is None else np.concatenate([v, self.bust.vertices])

    @property
    def neck_weight(self) -> np.ndarray:
        """[V] how much each vertex turns with the head (the rig's neck weight; 0 on the bust)."""
        w = rig.neck_weights(self.fitted.model)
        return w if self.bust is None else np.concatenate([w, np.zeros(len(self.bust.vertices))])

    @property
    def input_camera(self) -> Camera:
        return self.fitted.camera

    def gaussians(self, controls: Controls | None = None) -> Gaussians:
        if not controls and self._neutral is not None:
            return self._neutral
        g = self._pose(self.vertices(controls))
        if not controls:
            self._neutral = g
        return g

    def _pose(self, vertices: np.ndarray) -> Gaussians:
        b = self.binding
        # a vertex with an offset has all its triangles in _hair_tris: its normal is the whole mesh's
        surface = vertices + b.hair[:, None] * vertex_normals(vertices, self._hair_tris)
        means = bary_points(surface, self._corners, self._bary)  # == b.sample @ surface
        quats, area = face_quaternions(surface, self._used_tris, b.uv_coef)
        # A triangle the rig stretches (a closing eyelid, an opening jaw) spreads its Gaussians apart:
        # grow them in the tangent plane by the linear stretch so the surface stays closed.
        grow = np.sqrt(np.clip(area / np.maximum(b.rest_area, 1e-12), 1.0, 9.0))
        quats, scales = bound_frames(quats, grow, b.face_slot, b.scales)
        return Gaussians(means, quats, scales, b.opacities, b.sh)

    def live_pack(self) -> bytes:
        from model.ours.live import write_pack
        return write_pack(self)

    @property
    def twins(self) -> np.ndarray:
        """[478] each landmark's mirror twin: frames are tracked with their mirror image
        (model.head.landmarks.detect_all)."""
        return self.fitted.template.landmark_mirror()

    def retarget(self, image, neutral=None) -> dict:
        """Controls that make this avatar perform the expression and head pose of `image` (an RGB
        image, or the model.head.landmarks.Landmarks already detected on one with twins=self.twins);
        neutral: the tracked person's rest face from neutral_offsets() (model.head.rig.retarget)."""
        return rig.retarget(landmarks_of(image, self.twins), self.fitted, neutral)

    def neutral_offsets(self, image):
        """The tracked person's rest face in `image` (RGB or Landmarks), for retarget(neutral=...)."""
        return rig.neutral_offsets(landmarks_of(image, self.twins), self.fitted)

    def metadata(self) -> dict:
        return {**super().metadata(), "template_version": TEMPLATE_VERSION, "fit_nme": float(self.fitted.nme),
                "timings_s": self.timings, "warnings": list(self.fitted.landmarks.warnings)}


@lru_cache(maxsize=2)
def _neighbour_mean(tpl) -> sp.csr_matrix:
    """[V,V]: one smoothing step on the template mesh (each vertex takes the mean of its incident
    triangles' centroids)."""
    n_faces = len(tpl.faces)
    incidence = sp.csr_matrix((np.ones(tpl.faces.size), (tpl.faces.ravel(), np.repeat(np.arange(n_faces), 3))),
                              shape=(tpl.n_vertices, n_faces))
    centroid = sp.csr_matrix((np.full(tpl.faces.size, 1 / 3), (np.repeat(np.arange(n_faces), 3), tpl.faces.ravel())),
                             shape=(n_faces, tpl.n_vertices))
    count = np.maximum(np.asarray(incidence.sum(1)).ravel(), 1)
    return (sp.diags(1.0 / count) @ incidence @ centroid).tocsr()


@lru_cache(maxsize=2)
def scalp_weight(tpl) -> np.ndarray:
    """[V] in [0,1]: 1 inside the scalp, fading to 0 over a few rings towards its border (template fact)."""
    on_scalp = np.zeros(tpl.n_vertices)
    on_scalp[tpl.region_vertices("scalp")] = 1.0
    weight = on_scalp.copy()
    for _ in range(6):  # neighbour averaging, clamped to the scalp
        weight = np.minimum(on_scalp, _neighbour_mean(tpl) @ weight)
    return weight


CARVE_FRACTIONS = np.linspace(1.0, 0.0, 9)  # hair thickness fractions tried, thickest first


def hair_end_height(fitted: HeadFit, vertices: np.ndarray, reach: float) -> float | None:
    """Where the photo's long hair ends, as a height (metres, head frame): None when it ends above the chin
    (reach <= 0: segmentation.hair_reach, face heights below the chin), -inf when it runs out of the photo.
    The photo's hair end (segmentation.hair_end_row) is lifted onto the plane through the head's centre
    (vertices [V,3]: the neutral head) facing the camera, where hair falling beside the head hangs. Scaling
    face heights by the model's face instead put if_052's hair end 2 cm high: the face is nearer the camera
    than the hair, so the photo's face heights are larger than the hair's."""
    if not reach > 0:
        return None
    if not np.isfinite(reach):
        return -np.inf
    cam, lm = fitted.camera, fitted.landmarks
    depth = cam.project(head_extent(vertices)[0][None])[1]
    return float(cam.unproject(np.array([[lm.xy[152, 0], hair_end_row(lm, reach)]]), depth)[0, 1])


def hair_offsets(fitted: HeadFit, ev: PhotoEvidence, vertices: np.ndarray, normals: np.ndarray,
                 hair_end: float | None = None) -> np.ndarray:
    """Per-vertex hair thickness [V] in metres: how far the photo's person mask rises above the
    fitted skull, spread over the scalp and faded towards the hairline (0 where there is no hair),
    hanging down the neck to hair_end (metres, head frame: hair_end_height; None: short hair) when the photo's
    hair falls below the chin (see hanging_hair), then carved to the photo's silhouette.
    vertices, normals [V,3] (metres, unit)."""
    if not ev.has_hair:
        return np.zeros(len(vertices))
    weight = scalp_weight(fitted.template)
    on_scalp = weight > 0
    # thickness, in pixels then metres: how far the photo's person mask reaches beyond the fitted
    # skull, above it (top) and beside it at temple height (sides); the back takes the sides' value.
    cam = fitted.camera
    uv, z = cam.project(vertices[on_scalp])
    metres_per_px = float(np.median(z)) / cam.fy
    person = ev.person > 0.5
    xy = fitted.landmarks.xy
    cx = int(np.clip(round(xy[:, 0].mean()), 0, person.shape[1] - 1))
    x0, x1 = int(np.percentile(xy[:, 0], 40)), int(np.percentile(xy[:, 0], 60)) + 1
    rows = np.where(person[:, max(x0, 0):max(x1, 1)].any(1))[0]
    top_px = uv[:, 1].min() - (rows.min() if len(rows) else uv[:, 1].min())
    side_px = []
    for y in np.linspace(xy[10, 1], 0.5 * (xy[10, 1] + xy[33, 1]), 5).astype(int):
        if not 0 <= y < person.shape[0] or not person[y, cx]:
            continue
        row = person[y]
        # the run of person pixels through the face centre, vs the skull's extent on that row
        left = cx - np.argmin(row[cx::-1]) if not row[:cx].all() else 0
        right = cx + np.argmin(row[cx:]) if not row[cx:].all() else len(row)
        near = np.abs(uv[:, 1] - y) < 2
        if near.sum() > 4:
            side_px.append(0.5 * ((uv[near, 0].min() - left) + (right - uv[near, 0].max())))
    top = float(np.clip(top_px * metres_per_px, 0.004, 0.05))
    side = float(np.clip(np.median(side_px) * metres_per_px, 0.003, 0.04)) if side_px else 0.6 * top
    nx, ny, nz = normals.T
    w_top, w_side = np.maximum(ny, 0) ** 2, nx ** 2 + np.minimum(nz, 0) ** 2
    thickness = weight * (top * w_top + side * w_side) / np.maximum(w_top + w_side, 1e-6)
    if hair_end is not None:
        thickness = np.maximum(thickness, hanging_hair(fitted, vertices, normals, thickness, hair_end))
    return thickness * silhouette_fraction(fitted, person, vertices, normals, thickness)


# Long hair hangs: below the widest point of the hair round the head it falls straight down, so its surface
# is a vertical curtain at that widest radius, over the sides and back of the lower head and the neck, down
# to where the photo's hair ends (faded over HAIR_END_FADE_M). The throat stays bare: the curtain fades in
# between HAIR_HANG_AZIMUTH_DEG round the neck's axis from the front (0) to full at the sides.
HAIR_HANG_AZIMUTH_DEG = (55.0, 80.0)
HAIR_END_FADE_M = 0.02
HAIR_HANG_MAX_M = 0.08  # thickest curtain offset along a normal: under the back of the skull normals face down
HAIR_HANG_BINS = 72  # azimuth bins (5 degrees) of the hair's widest radius
# a hair texel landing this far (face heights) outside the photo's face oval that is not hair is unseen
HAIR_FACE_MARGIN = 0.02
HAIR_TEXEL_M = 0.005  # a neck texel lifted by at least this much hair (its interpolated hair volume) is coloured as hair
EAR_SEEN = 0.01  # an ear whose skin the photo sees (conf >= SEEN_CONF, not hair) on at most this share may be under the hair


def hanging_hair(fitted: HeadFit, vertices: np.ndarray, normals: np.ndarray, thickness: np.ndarray,
                 hair_end: float) -> np.ndarray:
    """[V] metres: the offset along each vertex normal that puts the scalp and neck below the hair's widest
    point on the hanging curtain (see HAIR_HANG_AZIMUTH_DEG), down to the height hair_end (metres, head
    frame: hair_end_height; -inf: to the bottom of the neck). vertices, normals [V,3] (metres, unit);
    thickness [V] the hair over the scalp so far, metres."""
    tpl = fitted.template
    out = np.zeros(len(vertices))
    y_end = max(hair_end, vertices[:, 1].min())
    neck = tpl.region_vertices("neck")
    axis = vertices[neck][:, [0, 2]].mean(0)
    shell = vertices + thickness[:, None] * normals
    scalp = np.flatnonzero(thickness > 0)

    def polar(p):  # azimuth bin (0 = front) and radius about the neck's vertical axis
        dx, dz = p[:, 0] - axis[0], p[:, 2] - axis[1]
        a = np.arctan2(dx, dz)
        return np.clip(((a + np.pi) / (2 * np.pi) * HAIR_HANG_BINS).astype(int), 0, HAIR_HANG_BINS - 1), \
            np.hypot(dx, dz), a

    b, r, _ = polar(shell[scalp])
    widest = np.full(HAIR_HANG_BINS, -np.inf)
    np.maximum.at(widest, b, r)
    if not np.isfinite(widest).any():
        return out
    at = np.full(HAIR_HANG_BINS, np.inf)  # height of the widest point in each bin
    top = r >= widest[b] - 1e-9
    np.minimum.at(at, b[top], shell[scalp][top, 1])
    ok = np.isfinite(widest)
    k = np.arange(HAIR_HANG_BINS)
    widest = np.interp(k, k[ok], widest[ok], period=HAIR_HANG_BINS)
    at = np.interp(k, k[ok], at[ok], period=HAIR_HANG_BINS)
    idx = np.union1d(tpl.region_vertices("scalp"), neck)
    bv, rv, av = polar(vertices[idx])
    below = vertices[idx, 1] < at[bv]
    radial = np.stack([np.sin(av), np.zeros_like(av), np.cos(av)], 1)
    outward = np.maximum((normals[idx] * radial).sum(1), 0.35)
    t = np.clip((widest[bv] - rv) / outward, 0, HAIR_HANG_MAX_M)
    lo, hi = np.deg2rad(HAIR_HANG_AZIMUTH_DEG)
    w_side = np.clip((np.abs(av) - lo) / (hi - lo), 0, 1)
    w_end = np.clip((vertices[idx, 1] - y_end) / HAIR_END_FADE_M, 0, 1)
    out[idx] = np.where(below, t * _smoothstep(w_side) * _smoothstep(w_end), 0.0)
    return out


def hair_down_the_back(fitted: HeadFit, surface: np.ndarray, points: np.ndarray,
                       hair_end: float | None) -> np.ndarray:
    """[N] in [0,1]: how much long hair covers each point of the bust (points [N,3] metres, head frame): hair
    that falls below the neck lies on down the back and the shoulders to where the photo's hair ends
    (hair_end: metres, head frame, hair_end_height; -inf: out of the photo's bottom; None: short), as wide as
    the hair round the head (surface [V,3]: the template's vertices offset by the hair), fading in from the sides
    as hanging_hair's curtain does and out over HAIR_END_FADE_M at its end. 0 everywhere for shorter hair."""
    out = np.zeros(len(points))
    tpl = fitted.template
    if hair_end is None:
        return out
    axis = surface[tpl.region_vertices("neck")][:, [0, 2]].mean(0)
    half_width = np.abs(surface[tpl.region_vertices("scalp"), 0] - axis[0]).max()
    dx, dz = points[:, 0] - axis[0], points[:, 2] - axis[1]
    lo, hi = np.deg2rad(HAIR_HANG_AZIMUTH_DEG)
    w_side = np.clip((np.abs(np.arctan2(dx, dz)) - lo) / (hi - lo), 0, 1)
    w_width = np.clip((half_width - np.abs(dx)) / HAIR_END_FADE_M, 0, 1)
    w_end = np.clip((points[:, 1] - hair_end) / HAIR_END_FADE_M, 0, 1)
    return _smoothstep(w_side) * _smoothstep(w_width) * _smoothstep(w_end)


# The face's rim at the input view: where the fitted jaw and chin stop short of the photo's (a turned or tilted
# head whose jaw line the landmarks' oval puts a few mm inside), the photo's neck and jaw shadow showed past
# the render's edge (person1/3/4 of the group set lost 5-11 dB there, all within 1 cm of the edge).
# Vertices on the rim (normal within RIM_FACING of the view's perpendicular) of the jaw and neck move out
# along their normals over the run of uncovered person pixels next to them, at most RIM_STEPS_M[-1], only
# within RIM_FACE_DIST face heights of the face oval.
RIM_STEPS_M = np.linspace(0.0, 0.01, 11)
RIM_FACE_DIST = 0.1
RIM_FACING = 0.35


def rim_growth(fitted: HeadFit, ev: PhotoEvidence, vertices: np.ndarray, normals: np.ndarray,
               covered: np.ndarray) -> np.ndarray:
    """[V] metres: how far each rim vertex of the jaw and neck moves out along its normal so that the input
    view covers the photo's person pixels just beyond the fitted jaw and chin (see RIM_STEPS_M); spread over
    the mesh. vertices, normals [V,3] (metres, unit): the fitted neutral surface; covered [H,W] bool:
    its silhouette in the photo."""
    tpl, cam = fitted.template, fitted.camera
    gap = (ev.person_core > 0.5) & ~covered & (ev.face_dist < RIM_FACE_DIST)
    out = np.zeros(len(vertices))
    if not gap.any():
        return out
    idx = np.union1d(tpl.region_vertices("face_skin"), tpl.region_vertices("neck"))
    idx = idx[vertices[idx, 1] < tpl.landmarks(vertices)[[61, 291], 1].mean()]  # the jaw, below the mouth corners
    view = cam.position[None] - vertices[idx]
    view /= np.linalg.norm(view, axis=1, keepdims=True)
    idx = idx[np.abs((normals[idx] * view).sum(1)) < RIM_FACING]
    pts = vertices[idx][None] + RIM_STEPS_M[1:, None, None] * normals[idx][None]
    ok = cam.mask_at(gap, pts.reshape(-1, 3))[0]
    run = np.cumprod(ok.reshape(len(RIM_STEPS_M) - 1, len(idx)), axis=0).sum(0)  # unbroken steps outward
    out[idx] = RIM_STEPS_M[run]
    smooth = _neighbour_mean(tpl)
    for _ in range(2):  # spread onto the next rings (no step where the rim band ends), keeping each vertex's own
        out = np.maximum(out, smooth @ out)
    return out


def _smoothstep(x: np.ndarray) -> np.ndarray:
    return x * x * (3 - 2 * x)


def silhouette_fraction(fitted: HeadFit, person: np.ndarray, vertices: np.ndarray, normals: np.ndarray,
                        thickness: np.ndarray) -> np.ndarray:
    """[V] in [0,1]: how much of each vertex's hair thickness (metres, along its normal) the photo
    allows. Any point of the head that projects onto the photo's background would have hidden that
    background from the camera, seen or not: so each vertex keeps the largest of CARVE_FRACTIONS whose
    point lands on the person (person [H,W] bool) or outside the frame, smoothed over the mesh so the
    carved rim has no stair steps. Without it the hair shell hangs as a wide bowl down to the jaw
    wherever the hair in the photo stops at the ears, and its rim samples the background."""
    idx = np.flatnonzero(thickness > 0)
    frac = np.ones(len(vertices))
    if len(idx) == 0:
        return frac
    pts = vertices[idx][None] + CARVE_FRACTIONS[:, None, None] * (thickness[idx, None] * normals[idx])[None]
    ok = fitted.camera.mask_at(person, pts.reshape(-1, 3), outside=True)[0].reshape(len(CARVE_FRACTIONS), len(idx))
    first = np.argmax(ok, axis=0)  # thickest allowed fraction; none allowed -> argmax 0 -> fixed below
    frac[idx] = np.where(ok.any(0), CARVE_FRACTIONS[first], 0.0)
    smooth = _neighbour_mean(fitted.template)
    for _ in range(3):
        frac = smooth @ frac
    return frac


def fit_colours_to_view(gaussians: Gaussians, colours: np.ndarray, camera: Camera, image: np.ndarray,
                        select: np.ndarray, damping: float = 0.03, iters: int = 15,
                        min_weight: float = 0.01) -> np.ndarray:
    """Colours [N,3] in [0,1] that make the render at `camera` reproduce image [H,W,3] (RGB in [0,1])
    on the pixels select [H,W] bool, starting from `colours` [N,3].

    Why: a surface's splats overlap (σ ≈ 0.8 px here) and composite in depth order, so each pixel blends
    a few neighbouring Gaussians, and colours sampled at each Gaussian's centre render visibly blurred
    (~22 dB inside the face on astronaut). The image is linear in the colours (A, from
    model.core.render.compositing_weights), so we solve min |A c - alpha·image|² + damping·|c - colours|² with
    a few conjugate-gradient steps (damped_least_squares): the blend is undone where the photo backs it, while
    Gaussians it barely sees keep their colour. The premultiplied target leaves coverage alone: it fits colour,
    not the silhouette.
    """
    A = compositing_weights(gaussians, camera, select, min_weight)
    # only the pixels and Gaussians the map touches (empty rows dropped from the CSR parts, columns renumbered:
    # scipy's fancy slicing of both took ~25 ms)
    rows = np.flatnonzero(np.diff(A.indptr))
    used = np.zeros(A.shape[1], bool)
    used[A.indices] = True
    if not used.any():
        return colours
    column = (np.cumsum(used) - 1)[A.indices]
    used = np.flatnonzero(used)
    A = sp.csr_matrix((A.data.astype(np.float64), column, np.r_[0, A.indptr[1:][rows]]),
                      shape=(len(rows), len(used)))
    c0 = colours[used].astype(np.float64)
    alpha = np.asarray(A.sum(1)).ravel()
    residual = image.reshape(-1, 3)[rows] * alpha[:, None] - A @ c0
    out = colours.copy()
    out[used] = np.clip(c0 + damped_least_squares(A, residual, damping, iters), 0, 1)
    return out


def damped_least_squares(A, B: np.ndarray, damping: float, iters: int) -> np.ndarray:
    """X [N,K] after `iters` steps of CGLS on min |A X - B|² + damping·|X|² from X = 0, for A [M,N] (scipy
    sparse) and every column of B [M,K] at once.

    Written here because scipy's lsqr takes one right-hand side: the three colour channels cost three passes
    of its Python loop and of the sparse products, which here serve all three in one. CGLS takes the same
    steps as LSQR in exact arithmetic (it was equal to scipy's lsqr to float32 on the avatars checked); LSQR's
    extra stability matters for ill-conditioned problems run long, not for 15 damped steps."""
    At = A.T.tocsr()  # A's transpose in rows: its products ~2x faster than through a CSC view

    def sq(u):  # squared norm of each column
        return np.einsum("ij,ij->j", u, u)

    X = np.zeros((A.shape[1], B.shape[1]))
    R = np.array(B, np.float64)
    S = At @ R
    P = S.copy()
    gamma = sq(S)
    done = gamma * 1e-24  # a column whose gradient fell 1e12-fold has converged: further steps only add rounding
    for _ in range(iters):
        if not (gamma > done).any():
            break
        Q = A @ P
        step = np.where(gamma > done, gamma / np.maximum(sq(Q) + damping * sq(P), 1e-300), 0.0)
        X += step * P
        R -= step * Q
        S = At @ R
        S -= damping * X
        g = sq(S)
        P *= g / np.maximum(gamma, 1e-300)
        P += S
        gamma = g
    return X


class Projection(NamedTuple):
    """The photo's evidence in UV space (HeadSplat.projected_texture)."""
    layout: UVLayout
    offset: np.ndarray  # [V] metres along the vertex normals: the hair volume, then the rim (rim_growth)
    surface: np.ndarray  # [V,3] metres: the fitted neutral surface so offset
    points: np.ndarray  # [T,3] metres: the texels on it
    rgb: np.ndarray  # [T,3] in [0,1]: the photo's colour at each texel
    conf: np.ndarray  # [T] how well the photo sees each texel (project_texture)
    hair: np.ndarray  # [T] bool: the texels hair covers (the scalp; the neck where long hair hangs)
    hair_end: float | None  # where long hair ends, metres, head frame (hair_end_height; None: short hair or
    # no prior)


class HeadSplat(Method):
    """Ours, with switches for the ablations (see baselines/registry.py)."""

    def __init__(self, symmetry: bool = True, prior: bool = True, uv_res: int = 384, unseen: str = "drop",
                 view_fit: bool = True):
        """symmetry: fill from mirror texels; prior: hair volume + full-head completion; without the
        prior, texels nothing backs are dropped (unseen="drop") or kept untextured grey ("grey");
        view_fit: solve the colours the photo sees so the input view reproduces it (fit_colours_to_view)."""
        if unseen not in ("drop", "grey"):
            raise ValueError(f"unseen must be 'drop' or 'grey', got {unseen!r}")
        self.symmetry, self.prior, self.uv_res, self.unseen = bool(symmetry), bool(prior), int(uv_res), unseen
        self.view_fit = bool(view_fit)
        variant = "ours" + ("" if symmetry else "-no-symmetry") + ("" if prior else "-no-prior")
        self.info = MethodInfo(
            id=variant, name="HeadSplat" + ("" if variant == "ours" else f" ({variant})"),
            version=METHOD_VERSION, animatable=True,
            description="UV-space Gaussians on the fitted ICT-FaceKit head, symmetric fusion, full-head prior",
            license="Apache-2.0",
            parameters={"symmetry": self.symmetry, "prior": self.prior, "uv_res": self.uv_res, "unseen": unseen,
                        "view_fit": self.view_fit, "template_version": TEMPLATE_VERSION})

    def reconstruct(self, image) -> HeadSplatAvatar:
        t = {"start": time.perf_counter()}
        image = load_image(image)
        lm = detect_landmarks(image)
        t["landmarks"] = time.perf_counter()
        # the head's fit and the photo's parse both start from the landmarks alone: the fit runs on a second
        # thread while the parse's networks run (native code, without Python's lock)
        fitting = _second.submit(fit, image, landmarks=lm)
        ev = photo_evidence(image, lm)
        t["segmentation"] = time.perf_counter()
        fitted = fitting.result()
        t["fit"] = time.perf_counter()
        avatar = self.build(to_float(image), fitted, ev)
        t["build"] = time.perf_counter()
        keys = list(t)
        avatar.timings = {k: round(t[k] - t[p], 4) for p, k in zip(keys, keys[1:])}
        avatar.timings["total"] = round(t["build"] - t["start"], 4)
        return avatar

    def build(self, photo: np.ndarray, fitted: HeadFit, ev: PhotoEvidence) -> HeadSplatAvatar:
        """The avatar of a parsed photo: photo [H,W,3] RGB in [0,1], the head fitted to it and its parse (what
        reconstruct does after the landmarks, the fit and the parse). Apart, so that a benchmark can rebuild
        from the same parse with some pixels changed (benchmarks.reconstruct.occluder_leak)."""
        avatar = self._build(photo, fitted, ev)
        if self.view_fit:
            b, g = avatar.binding, avatar.gaussians()
            # the head's colours only: the bust's clothing keeps its sampled colours (fitting them too took
            # ~0.1 s more on astronaut, over the time budget, for a sharper shirt)
            head = avatar.face_region[b.faces] != BUST_REGION
            b.rgb[head] = fit_colours_to_view(g.take(head), b.rgb[head], fitted.camera, photo, ev.trusted > 0.5)
            b.sh = rgb_to_sh(b.rgb)
            avatar._neutral = Gaussians(g.means, g.quats, g.scales, g.opacities, b.sh)  # same pose, new colours
        return avatar

    def projected_texture(self, photo: np.ndarray, fitted: HeadFit, ev: PhotoEvidence) -> Projection:
        """The photo's evidence in UV space before any fusion (see Projection): project_texture on the fitted
        surface offset by the hair and the rim."""
        tpl = fitted.template
        layout = uv_layout(self.uv_res)
        vertices = rig.deform(fitted, None)
        vn = vertex_normals(vertices, tpl.faces)
        hair = np.zeros(len(vertices))
        hair_texels = layout.in_region("scalp")
        head = rasterize_mesh(vertices, tpl.faces, fitted.camera)[0] >= 0  # the bare head's silhouette
        hair_end = hair_end_height(fitted, vertices, hair_reach(fitted.landmarks, ev)) if self.prior else None
        sample = layout.sampling_matrix(len(vertices), tpl.faces)
        if self.prior:
            hair = hair_offsets(fitted, ev, vertices, vn, hair_end)
            # the neck is hair where the hair's volume lifts it (hanging_hair), texel by texel: a neck face
            # whose corners sit on the scalp's border carries the scalp's hair over part of it (read on the
            # neck's own corners only, such faces under long hair had kept the neck's skin: a dark seam across
            # the back of the hair)
            hair_texels |= layout.in_region("neck") & (sample @ hair > HAIR_TEXEL_M)
        offset = hair + rim_growth(fitted, ev, vertices, vn, head)
        surface = vertices + offset[:, None] * vn
        points = sample @ surface
        normals = sample @ vertex_normals(surface, tpl.faces)
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        rgb, conf = project_texture(photo, ev.trusted, points, normals, fitted.camera, surface, tpl.faces)
        if self.prior and ev.has_hair:
            # hair texels that see neither the photo's hair nor its face (background at the rim, a hat, the
            # skin round an ear) are unseen hair: the photo's hair is quilted over them (texture.complete)
            uv, _ = fitted.camera.project(points)
            on_hair = sample_bilinear(ev.hair, uv)  # [T] the photo's hair probability at each texel
            not_hair = on_hair < 0.5
            other = not_hair & (sample_bilinear(ev.face_dist, uv, cv2.BORDER_REPLICATE) > HAIR_FACE_MARGIN)
            conf[hair_texels & other] = 0.0
            # an ear under the photo's hair (long hair falling over it): the photo sees none of its skin (what
            # it sees of it is hair: the ear's edge behind a curtain of hair, 1-2% of an ear turned away), and
            # its rim's place (its outermost fifth) is hair. All of it is then unseen hair, quilted with the
            # rest (the skin prior painted it as a pale disc in the hair); an ear the photo shows keeps its skin
            ears = layout.in_region("ears")
            skin_seen = (conf >= SEEN_CONF) & not_hair
            for ear in (ears & (points[:, 0] < 0), ears & (points[:, 0] >= 0)):
                if not ear.any() or skin_seen[ear].mean() > EAR_SEEN:
                    continue
                rim = ear & (np.abs(points[:, 0]) >= np.percentile(np.abs(points[ear, 0]), 80))
                if np.median(on_hair[rim]) > 0.5:
                    hair_texels |= ear
                    conf[ear] = 0.0
        return Projection(layout, offset, surface, points, rgb, conf, hair_texels, hair_end)

    def _build(self, photo: np.ndarray, fitted: HeadFit, ev: PhotoEvidence) -> HeadSplatAvatar:
        """photo [H,W,3] RGB in [0,1] -> the avatar before the view fit."""
        tpl = fitted.template
        layout, offset, surface, points, rgb, conf, hair_texels, hair_end = self.projected_texture(photo, fitted, ev)
        if self.symmetry:
            rgb, conf = fuse_symmetric(layout, rgb, conf)
        opacity = np.full(len(rgb), 0.98, np.float32)
        if not self.prior and self.unseen == "grey":
            rgb = np.where(conf[:, None] < SEEN_CONF, UNSEEN_GREY, rgb)
        elif not self.prior:
            opacity[conf < SEEN_CONF] = 0.0  # nothing backs these texels: leave the hole visible

        def geometry():  # the Gaussians' places on the head and the bust: they need no texture
            if not self.prior:
                return texel_gaussians(layout, tpl.faces, tpl.face_uvs, surface, opacity > 0), None
            bust, brgb, unseen = self._bust(photo, fitted, ev, surface, hair_end)
            # below the neck's cut the bust takes over: ICT's neck there is its own shoulders' flare and a flap
            # over the collarbones, which stuck out of the bust behind and at the sides. What the photo (or its
            # mirror) sees of them stays, finer than the bust's texels and fitted to the view (the collar, a tie's
            # knot); so does hair hanging there.
            cut = layout.in_region("neck") & ~hair_texels & (conf < SEEN_CONF) & takes_over(fitted, bust, points)
            head = texel_gaussians(layout, tpl.faces, tpl.face_uvs, surface, (opacity > 0) & ~cut)
            # what the photo does not show of the bust (its back: a ring's colour, hair's strands) needs no
            # 2.6 mm texels: a quarter of them, twice the size (at 384 all round it took 80k Gaussians, 50% of all)
            return head, (bust, brgb, texel_gaussians(bust_layout(), *bust_grid(), bust.vertices,
                                                      np.ones(len(brgb), bool), coarse=unseen))

        # built on the second thread while the texture is completed (numpy, OpenCV and numba release Python's lock)
        placing = _second.submit(geometry)
        if self.prior:
            rgb = complete(layout, rgb, conf, ev, points, fitted.camera, hair_texels)
        (texel, f, bary, scales), on_bust = placing.result()
        rgb_g, opacity_g = rgb[texel], opacity[texel]
        bust = None
        if on_bust is not None:
            bust, brgb, (btexel, bf, bbary, bscales) = on_bust
            f = np.concatenate([f, bf + len(tpl.faces)])
            bary, scales = np.concatenate([bary, bbary]), np.concatenate([scales, bscales])
            rgb_g = np.concatenate([rgb_g, brgb[btexel]])
            opacity_g = np.concatenate([opacity_g, np.full(len(btexel), 0.98, np.float32)])
            surface = np.concatenate([surface, bust.vertices])
            offset = np.concatenate([offset, np.zeros(len(bust.vertices))])
        faces, face_uvs, _ = joined_mesh(tpl, bust)
        sample = barycentric_matrix(faces[f], bary, len(surface))
        used, slot = np.unique(f, return_inverse=True)
        coef = uv_tangent_coefficients(face_uvs[used])
        rgb_g = rgb_g.astype(np.float32)
        binding = Binding(sample, f, bary, used, slot, coef, offset, scales, rgb_g, rgb_to_sh(rgb_g),
                          opacity_g, face_quaternions(surface, faces[used], coef)[1])
        return HeadSplatAvatar(self.info, fitted, binding, bust)

    def _bust(self, photo: np.ndarray, fitted: HeadFit, ev: PhotoEvidence,
              surface: np.ndarray, hair_end: float | None) -> tuple[Bust, np.ndarray, np.ndarray]:
        """The bust under the head (model.ours.bust) and its texels' colours [T,3]: the photo where it sees
        them (the head's surface [V,3] hides what it covers), mirrored across the body where it does not
        (symmetric fusion), else the colour of the texel's ring (bust.bust_colours); long hair down the back
        where the photo does not see it (hair_down_the_back; hair_end: Projection.hair_end); and [T] bool: the
        texels shown at half the resolution (texel_gaussians' coarse)."""
        tpl = fitted.template
        bust = build_bust(fitted, ev.person)
        layout = bust_layout()
        faces, _ = bust_grid()
        sample = layout.sampling_matrix(len(bust.vertices), faces)
        points = sample @ bust.vertices
        normals = sample @ bust_normals(bust)
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        rgb, conf = project_texture(photo, ev.trusted, points, normals, fitted.camera,
                                    np.concatenate([surface, bust.vertices]),
                                    np.concatenate([tpl.faces, faces + len(surface)]), two_sided=True)
        if self.symmetry:
            rgb, conf = fuse_symmetric(layout, rgb, conf)
        uv, _ = fitted.camera.project(points)
        rgb = bust_colours(bust, rgb, conf, sample_bilinear(ev.clothes.astype(np.float32), uv) > 0.5,
                           sample_bilinear(ev.hair, uv) > 0.5)
        # long hair lies on down the back where the photo does not see it, in the colour of the head's unseen
        # hair (the photo's mean hair colour, with strands); hair_down_the_back is 0 for shorter hair or none
        w = hair_down_the_back(fitted, surface, points, hair_end)
        w[conf >= SEEN_CONF] = 0.0
        if w.any():
            hair = hair_prior(layout, ev, hanging_strands(points))
            hair += ev.hair_mean - hair[w > 0.5].mean(0) if (w > 0.5).any() else ev.hair_mean - ev.hair_rgb
            rgb = (1 - w[:, None]) * rgb + w[:, None] * np.clip(hair, 0, 1)
        # what the photo does not show, but not within COARSE_MARGIN texels of what it shows (coarse right up to
        # it, the bust's input-view PSNR fell by up to 0.9 dB: twice the size, those splats reach over its edge)
        seen = np.zeros((layout.res, layout.res), bool)
        seen[layout.rc[:, 0], layout.rc[:, 1]] = conf >= SEEN_CONF
        near = binary_dilation(seen, np.ones((2 * COARSE_MARGIN + 1,) * 2, bool))[layout.rc[:, 0], layout.rc[:, 1]]
        return bust, rgb, ~near


def texel_gaussians(layout: UVLayout, faces: np.ndarray, face_uvs: np.ndarray, surface: np.ndarray,
                    keep: np.ndarray, coarse: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The Gaussians of a chart's texels (those where keep [T] bool): (texel [N] each one's texel, face [N] its
    triangle, bary [N,3] its barycentric coordinates there, scales [N,3] float32 metres (tangent, bitangent,
    normal)). faces [F,3], face_uvs [F,3,2]: the chart's mesh; surface [V,3] metres: its vertices. coarse [T]
    bool: texels shown at half the resolution (those on even rows and columns only, covering 2 x 2 texels)."""
    _, su, sv = tangent_frames(surface, faces, face_uvs)
    # A texel's footprint on the surface, metres along u and v. The atlas stretches some charts
    # (the neck is ~4x longer than wide per texel): such texels get several Gaussians along their
    # long side, so detail there is not limited to one elongated splat.
    fu, fv = su[layout.face] / layout.res, sv[layout.face] / layout.res
    if coarse is not None:
        keep = keep & ~(coarse & ((layout.rc % 2).any(1)))
        fu, fv = np.where(coarse, 2 * fu, fu), np.where(coarse, 2 * fv, fv)
    long, short = np.maximum(fu, fv), np.maximum(np.minimum(fu, fv), 1e-6)
    counts = np.clip(np.ceil(long / np.maximum(SPLIT_RATIO * short, SPLIT_MIN_M)), 1, SPLIT_MAX).astype(np.int64)
    counts[~keep] = 0
    along_u = fu >= fv
    texel, bary = split_texels(layout, face_uvs, counts, along_u)
    k, along_u = counts[texel], along_u[texel]
    # A Gaussian's sigma ~0.6 of its share of the texel: neighbours overlap enough to close the
    # surface, little blur.
    st = 0.6 * fu[texel] / np.where(along_u, k, 1)
    sb = 0.6 * fv[texel] / np.where(along_u, 1, k)
    st, sb = np.minimum(st, MAX_SIGMA_M), np.minimum(sb, MAX_SIGMA_M)
    scales = np.stack([st, sb, 0.25 * np.minimum(st, sb)], 1)
    return texel, layout.face[texel], bary, np.maximum(scales, 1e-5).astype(np.float32)
