"""Fit the ICT-FaceKit head model (model/head/head_model.py) to one photo's 478 mediapipe points.

    from model.head.ict_fit import fit_head_model
    fit = fit_head_model(detect_landmarks(image))   # ~70 ms (2 cores) once the model and precompute are loaded
    fit.identity, fit.expression_dict, fit.pose, fit.gaze, fit.nme
    v = fit.vertices()                 # identity + the photo's expression, eyeballs turned, head frame
    v0 = fit.vertices(expression=0)    # the same face neutralised

Conventions are fitting.py's: intrinsics `photo_camera_K` (square pixels, centred
principal point, a 30 degree field of view across the long side: one photo cannot tell focal length from
distance), the *camera carries the head pose* (world = the head frame of model/core/camera.py, so
`fit.camera.project(fit.vertices())` lands on the photo), `pose` = (yaw, pitch, roll) with
camera.R == R_FRONT @ rotation_from_euler(*pose), `posed_vertices` rotates about fitting.NECK_PIVOT,
gaze is an eyeball rotation about each eyeball's centre towards the detected iris (fitting._iris_direction
and _gaze_rotation), and nme = mean 2D distance of the 478 projected model points to the detected ones
over the outer-eye-corner distance. The first fit in a process also builds the per-model precompute
(0.5-1 s: landmark bases, the corrective's sparse factorisation).

Method (numpy/scipy, plus OpenCV's PnP for the first pose):
1. pose: PnP (fitting.solve_pnp) of the neutral model's points that expressions move less than 4 mm
   (forehead, nose, eye corners, cheeks; no contour) onto their detections.
2. Gauss-Newton on pose, identity and expression at once. With the camera fixed the model is linear
   in identity and expression, and the full-perspective reprojection error of point i, q_i = R p_i + t,
   multiplied by its depth is *linear* in q_i: (x_i - u~_i z_i, y_i - v~_i z_i), u~ = (u - cx) / fx.
   Scaled by z_ref / z_i of the previous iterate it is the reprojection error in metres at the face's
   distance (exact at convergence). A small rotation (about the face's centre) and translation of the
   head enter the same rows to first order, so each iteration is one small bounded least-squares
   problem in [6 pose increments, K identity, 45 expression weights] (111 unknowns, 936 rows), solved
   through its normal equations by a primal-dual active-set method warm-started from the previous
   iteration (_box_qp; scipy's lsq_linear/BVLS is the fallback: it alone took ~70 ms a solve).
   5-7 iterations. Alternating PnP with the linear solve instead converges slowly where pose and
   shape trade off (pitch against jaw length, yaw against asymmetry): on 15 synthetic faces,
   9 alternations gave 1.08 mm and 1.7 degrees mean pose error (3.7 max), 46 alternations (0.3 s)
   0.81 mm and 0.7; the joint steps 0.81 mm and 0.56 degrees in 5 iterations (45 ms).
3. Landmark corrective (corrective=True, the default): the model alone leaves a mean landmark error
   of ~1% of the eye-corner distance on real portraits (nme_model; ICT's 60 modes and mediapipe's
   mesh do not agree point for point), where the procedural template's fit (removed) interpolated the
   detections (nme ~0.0004). The texture is projected from the photo through this mesh, so each face-mesh
   point's remaining error, moved in its depth plane onto the detected pixel (contour points only
   across the outline, not at all on the far side), is spread over the face, head and sockets by one
   sparse solve (soft landmark constraints + bi-Laplacian smoothness decaying away from the face,
   factorised once per model; eyeballs follow their lids' points, teeth and gums the inner lips').
   `offsets` [V,3] holds it (a few mm at most; 3-5 mm on the portraits); it is added to every shape,
   expression or not. nme then drops to 0.0007-0.0033 on the portraits (that template's 0.0003-0.0013): what
   remains is the contour's slide along the outline (not fitted, below) and ICT's iris ring size.
4. gaze: per eye, the ray through the detected iris centre meets the eyeball (sphere centre and iris
   radius of the fitted shape); the eyeball turns about its centre from the model's rest direction
   (ICT's eyes diverge ~6.5 degrees) to that point. Accuracy is bound by the eyeball's centre, which is
   the fitted identity's (the iris position is what gaze explains): 1 mm of it is 3.6 degrees (synthetic:
   median 2.5 degrees). ICT's eyeLook* shapes move only the lids and are not fitted (kept 0): their lid
   motion is confounded with blink/squint/wide; a rig can drive them from `gaze`.

Design decisions (figures from `python -m benchmarks.fit`):
- Identity: K = IDENTITY_K = 60 of ICT's 100 modes, weight 1 = one standard deviation, Gaussian prior
  ||identity||^2 against the data term sum_i w_i |r_i|^2 / SIGMA_M^2 (a MAP estimate; SIGMA_M = 1.5 mm,
  the landmarks' effective error in metres at the face). That is far above mediapipe's per-point jitter
  because its errors are correlated over neighbouring points (468 regressed mesh points are not 468
  measurements) and ICT's surface and mediapipe's layout differ (the 478-point map sits ~1.4 mm from
  ICT's surface, median). Checked on the 8 real portraits: at 1.5 mm the fitted weights have RMS 1.0
  (modes 1-10: 0.97; 30-59: 0.95), as an N(0, 1) prior expects; at 0.7 mm the small modes reach 1.6
  std (mediapipe's noise fitted), at 2.5 mm 0.6 (over-shrunk). K: modes 60-99 move the face by 0.1 mm
  on average at 1 std (1.6% of the face's shape variance); fitting all 100 gains 0.07 mm on the synthetic
  benchmark (whose faces use all 100) and costs 1.3x the time single-threaded, ~4x with two BLAS
  threads on a busy 2-core machine. Absolute size is not observable (focal length against distance):
  mode 0 is mostly an isotropic scale (-4.5% a std), so a strong prior (SCALE_PRIOR) holds the identity's
  isotropic face scale at ICT's mean and the camera's distance takes the rest (without it every portrait
  fitted mode 0 at +3 to +4: faces 15% small, the camera 15% closer, not a shape).
- Expression: the photo's own, 45 of ICT's 53 shapes (not the eyeLook*), in [0, 1]. A relaxed lasso:
  first with an L2 (EXPR_L2 = 5) and an L1 sparsity prior (EXPR_L1 = 50 * sum(e), linear since e >= 0)
  that choose which shapes are on, then the chosen ones refitted with a weak L2 (EXPR_RELAXED) and the
  others held at 0, so the L1 does not shrink true weights. With weak priors alone the 45 shapes fit
  mediapipe-vs-ICT differences on every portrait (browDown 0.5-1.0 on all eight together with its
  antagonist browOuterUp, jawLeft with jawRight: sums of 5-9); now 0.5-4.2, the real smiles and blinks
  kept. Synthetic: MAE 0.02 on jawOpen/smiles/blinks, spurious weights on the other shapes sum to 0.04.
- Contour: mediapipe's face-oval points (landmarks.FACE_OVAL) lie on the face's outline in the photo,
  and a real face's outline is a silhouette that slides over the skin as the head turns. They keep only
  their error *normal* to the detected outline (its tangent from the neighbouring oval points), so a
  model point may slide along it, weighted CONTOUR_WEIGHT = 0.5; on the far side of a turned head (the
  model's surface there facing away from the camera) the outline mediapipe finds is a cheek's
  silhouette, not the named point: weight 0 (`_facing`).
- Depth: mediapipe's z is not used. It is relative (offset and scale unknown) and regressed from the same
  2D appearance by the same network (no independent measurement: it mostly restates mediapipe's
  canonical face's depth profile); its scale (MEDIAPIPE_Z_SCALE) was calibrated for the template. Depth
  comes from the model's prior and from perspective; the corrective moves points in their depth plane.
- Smile (the photo's expression): returned apart from the identity (`expression`). Default: KEEP it.
  The texture is projected from this photo, so the geometry it is projected onto must be the photo's
  face: `vertices()` is identity + fitted expression (+ offsets), and a rig starts from the fitted
  weights as its rest controls. Setting them to 0 (`vertices(expression=0)`) neutralises the face: the
  mesh moves and the photo's texture moves with it, so the smile's shading (folds, teeth between parted
  lips) stays painted on, and the mouth region's texels are compressed or stretched by the change (a
  broad smile's corners move ~1 cm). Neutral by default would make the first frame a face the photo
  never showed, with a stretched mouth; keeping it makes the avatar's rest face the photo's, and neutral
  one setting away.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy.linalg import cho_factor, cho_solve, solve_triangular

from model.core.camera import Camera, rigid_matrix
from model.head import landmarks as LM
from model.head.fitting import (NECK_PIVOT, R_FRONT, _gaze_rotation, _iris_direction, euler_from_rotation,
                                photo_camera_K, rotation_from_euler, solve_pnp)
from model.head.head_model import REGIONS, HeadModel, load_head_model
from model.head.landmarks import Landmarks

__all__ = ["HeadFit", "fit_head_model", "eye_centres", "turn_eyes", "face_vertex_ids", "umeyama", "random_case",
           "synthetic_landmarks", "SYNTHETIC_SHAPES", "IDENTITY_K", "SIGMA_M", "CONTOUR_WEIGHT"]

IDENTITY_K = 60  # identity modes fitted (of ICT's 100)
SIGMA_M = 1.5e-3  # effective landmark error, metres at the face (MAP weight of the identity prior)
EXPR_L2 = 5.0  # L2 prior on expression weights while choosing them (units of the identity prior)
EXPR_L1 = 50.0  # L1 prior on expression weights while choosing them (linear: e >= 0)
EXPR_RELAXED = 0.5  # L2 prior on the chosen expressions' weights in the final (relaxed) iterations
N_RELAX = 3  # relaxed iterations at most
CORRECTIVE_WEIGHT = 30.0  # landmark corrective: soft-constraint weight against the bi-Laplacian
CORRECTIVE_EPS = 3e-4  # its decay away from the landmarks (graph-Laplacian units)
SCALE_PRIOR = 1e5  # weight on (isotropic face scale of the identity)^2: 1% costs 10 (std^2 units)
IDENTITY_BOUND = 4.0  # |identity| <= 4 std
CONTOUR_WEIGHT = 0.5  # weight of a contour point's (normal-only) residual
N_ITER = 6  # Gauss-Newton iterations choosing the expressions (fewer once pose and weights settle)
SKIP_EXPRESSIONS = ("eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L", "eyeLookIn_R", "eyeLookOut_L",
                    "eyeLookOut_R", "eyeLookUp_L", "eyeLookUp_R")
FIT_POINTS = np.arange(468)  # the face mesh; the irises (468-477) are read for gaze only
IRIS_CENTRES = (LM.RIGHT_IRIS[0], LM.LEFT_IRIS[0])  # subject's right, left


# ---------------------------------------------------------------- subject-independent precompute
@dataclass(frozen=True, eq=False)
class _Prep:
    lm0: np.ndarray  # [478,3] neutral model's mediapipe points
    lm_id: np.ndarray  # [100,478,3] their identity deltas
    lm_ex: np.ndarray  # [53,478,3] their expression deltas
    lm_normal: np.ndarray  # [478,3] neutral surface normal at each point (face orientation of its triangle)
    rigid: np.ndarray  # point ids for the first PnP
    contour: np.ndarray  # [C] FACE_OVAL ids (closed loop order)
    expr_fit: np.ndarray  # expression indices that are fitted
    eyeballs: tuple  # (right vertex ids, left vertex ids)
    eye_offset: np.ndarray  # [2,3] sphere centre - vertex mean, neutral
    id_scale: np.ndarray  # [100] isotropic scale of the face each identity mode adds per unit weight


def _sphere_centre(p: np.ndarray) -> np.ndarray:
    A = np.c_[2 * p, np.ones(len(p))]
    s = np.linalg.lstsq(A, (p ** 2).sum(1), rcond=None)[0]
    return s[:3]


@lru_cache(maxsize=4)
def _prep(model: HeadModel) -> _Prep:
    if model.landmark_faces is None:
        raise ValueError("this head-model asset has no mediapipe landmark map (landmark_faces)")
    tri, bary = model.faces[model.landmark_faces], model.landmark_bary

    def lms(basis):  # [B,V,3] -> [B,478,3]
        return np.einsum("lk,blkd->bld", bary, basis[:, tri]).astype(np.float64)

    lm0 = model.landmarks(model.neutral)
    v = model.neutral[tri]
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    # rigid points: above the upper lip, not on lids, brows or the contour (expressions move them least)
    ex = np.linalg.norm(lms(model.expression_basis), axis=2).max(0)  # [478] largest expression motion
    contour = np.array(LM.FACE_OVAL)
    rigid = np.array([i for i in range(468) if ex[i] < 4e-3 and i not in set(LM.FACE_OVAL)])
    expr_fit = np.array([k for k, name in enumerate(model.expression_names) if name not in SKIP_EXPRESSIONS])
    eyeballs, offsets = [], []
    for part in ("eyeball_R", "eyeball_L"):  # subject's right first, as fitting.py
        ids = np.unique(model.faces[model.face_part == model.part_names.index(part)])
        p = model.neutral[ids]
        c = _sphere_centre(p)
        c = _sphere_centre(p[p[:, 2] < c[2]])  # the globe behind its centre: no cornea bulge
        eyeballs.append(ids)
        offsets.append(c - p.mean(0))
    # the face's isotropic scale in each identity mode (least squares d ~ s (x - mean) + t over the face)
    fv = face_vertex_ids(model)
    X = model.neutral[fv] - model.neutral[fv].mean(0)
    id_scale = np.einsum("kvd,vd->k", model.identity_basis[:, fv].astype(np.float64), X) / (X ** 2).sum()
    return _Prep(lm0, lms(model.identity_basis), lms(model.expression_basis), n, rigid, contour, expr_fit,
                 tuple(eyeballs), np.array(offsets), id_scale)


def face_vertex_ids(model: HeadModel) -> np.ndarray:
    """Vertices of the face proper: triangles whose region is face_skin, lips or brows."""
    sel = np.isin(model.face_region, [REGIONS.index(r) for r in ("face_skin", "lips", "brows")])
    return np.unique(model.faces[sel])


@dataclass(frozen=True, eq=False)
class _Corrective:
    solve: object  # factorized (L'L + eps I + w A'A) on the soft sheet: rhs [soft, k] -> [soft, k]
    AT: object  # sparse [soft, 468]: CORRECTIVE_WEIGHT * A'
    soft: np.ndarray  # vertex ids of the sheet (face, head and neck, mouth and eye sockets)
    rigid: tuple  # ((vertex ids, landmark ids whose mean residual they take), ...)


@lru_cache(maxsize=4)
def _corrective(model: HeadModel) -> _Corrective:
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    from model.head.fitting import _uniform_laplacian
    part_of = np.full(model.n_vertices, -1)
    part_of[model.faces.ravel()] = np.repeat(model.face_part, 3)
    names = model.part_names

    def verts(*parts):
        return np.nonzero(np.isin(part_of, [names.index(q) for q in parts if q in names]))[0]

    soft = verts("face", "head_neck", "mouth_socket", "eye_socket_L", "eye_socket_R")
    index = np.full(model.n_vertices, -1)
    index[soft] = np.arange(len(soft))
    fsel = np.all(index[model.faces] >= 0, axis=1)
    L = _uniform_laplacian(index[model.faces[fsel]], len(soft))
    tri = index[model.faces[model.landmark_faces[:468]]]
    if (tri < 0).any():
        raise ValueError("a face-mesh landmark lies off the deformable sheet")
    A = sp.coo_matrix((model.landmark_bary[:468].ravel(), (np.repeat(np.arange(468), 3), tri.ravel())),
                      shape=(468, len(soft))).tocsr()
    M = (L.T @ L + CORRECTIVE_EPS * sp.eye(len(soft)) + CORRECTIVE_WEIGHT * (A.T @ A)).tocsc()
    lids = (LM.RIGHT_EYE_UPPER + LM.RIGHT_EYE_LOWER[1:-1], LM.LEFT_EYE_UPPER + LM.LEFT_EYE_LOWER[1:-1])
    rigid = ((verts("eyeball_R"), np.array(lids[0])), (verts("eyeball_L"), np.array(lids[1])),
             (verts("teeth", "gums_tongue"), np.array(LM.LIPS_INNER_UPPER + LM.LIPS_INNER_LOWER)))
    # a symmetric ordering (the matrix is SPD): half COLAMD's factorisation time, the same solve time
    lu = splu(M, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options=dict(SymmetricMode=True))
    return _Corrective(lu.solve, (CORRECTIVE_WEIGHT * A.T).tocsr(), soft, rigid)


def _corrective_offsets(model: HeadModel, residual: np.ndarray) -> np.ndarray:
    """Residuals of the 468 face-mesh points [468,3] (head frame) -> smooth vertex offsets [V,3]."""
    c = _corrective(model)
    d = np.zeros((model.n_vertices, 3))
    d[c.soft] = c.solve(np.asarray(c.AT @ residual))
    for ids, lms in c.rigid:
        d[ids] = residual[lms].mean(0)
    return d


# ---------------------------------------------------------------- the result
@dataclass(eq=False)
class HeadFit:
    model: HeadModel
    identity: np.ndarray  # [K] weights of the first K identity modes (1 = one std)
    expression: np.ndarray  # [E] the photo's expression in model.expression_names order, in [0, 1]
    camera: Camera  # projects vertices() (world = head frame) onto the photo; size = photo size
    pose: np.ndarray  # (yaw, pitch, roll) radians, fitting.py's convention
    gaze: np.ndarray  # [2 eyes (right, left), (yaw, pitch)] radians, eyeball turn from the model's rest
    eye_centres: np.ndarray  # [2,3] eyeball centres (right, left), head frame, metres
    landmarks: Landmarks  # what was detected
    nme: float  # mean 2D landmark error (all 478) / outer-eye-corner distance
    offsets: np.ndarray | None = None  # [V,3] landmark corrective added to every shape (None: none)
    nme_model: float = 0.0  # the nme of the model alone (identity + expression, no corrective)
    iterations: int = 0
    cache: dict = field(default_factory=dict, repr=False)

    @property
    def template(self):
        """The head the avatar stands on (model.head.template.load_template(): this model + the atlas)."""
        from model.head.template import load_template
        t = load_template()
        if t.model is not self.model and t.model.path != self.model.path:
            raise ValueError("this fit's head model is not the template's")
        return t

    @property
    def version(self) -> str:
        from model.head.template import TEMPLATE_VERSION
        return TEMPLATE_VERSION

    @property
    def expression_dict(self) -> dict[str, float]:
        return {n: float(w) for n, w in zip(self.model.expression_names, self.expression)}

    @property
    def identity_full(self) -> np.ndarray:
        """[100] identity weights, zero past K."""
        w = np.zeros(len(self.model.identity_basis))
        w[:len(self.identity)] = self.identity
        return w

    @property
    def head_rotation(self) -> np.ndarray:
        """R_head [3,3] with camera.R == R_FRONT @ R_head."""
        return R_FRONT.T @ self.camera.R

    @property
    def neck_pivot(self) -> np.ndarray:
        return NECK_PIVOT.copy()

    def vertices(self, expression=None, gaze: bool = True) -> np.ndarray:
        """[V,3] identity shape with `expression` (None: the fitted one; 0: neutral; a dict or [E] array),
        neutral head pose, head frame, metres; eyeballs turned by the fitted gaze unless gaze=False."""
        if expression is None:
            expression = self.expression
        elif np.isscalar(expression) and expression == 0:
            expression = None
        v = self.model.vertices(self.identity_full, expression)
        if self.offsets is not None:
            v += self.offsets
        return turn_eyes(self.model, v, self.gaze) if gaze else v

    def posed_vertices(self, vertices: np.ndarray | None = None, expression=None) -> np.ndarray:
        """Vertices (default: vertices(expression)) rotated by the head pose about the neck pivot."""
        v = self.vertices(expression) if vertices is None else np.asarray(vertices, dtype=np.float64)
        c = NECK_PIVOT
        return (v - c) @ self.head_rotation.T + c

    @property
    def frontal_camera(self) -> Camera:
        """Camera with frontal orientation that shows posed_vertices() exactly as `camera` shows vertices()."""
        M = rigid_matrix(self.head_rotation, NECK_PIVOT - self.head_rotation @ NECK_PIVOT)
        return Camera(self.camera.K, self.camera.world_to_cam @ np.linalg.inv(M), self.camera.width,
                      self.camera.height)

    def model_landmarks(self) -> np.ndarray:
        """The fitted model's 478 points [478,3], head frame (irises on the turned eyeballs)."""
        return self.model.landmarks(self.vertices())

    def metadata(self) -> dict:
        return {"head_model": "ICT-FaceKit", "identity": self.identity.tolist(),
                "expression": {k: round(v, 5) for k, v in self.expression_dict.items() if v > 0},
                "pose_rad": self.pose.tolist(), "gaze_rad": self.gaze.tolist(), "nme": self.nme,
                "nme_model": self.nme_model,
                "camera": self.camera.to_dict()}


# ---------------------------------------------------------------- eyes
def eye_centres(model: HeadModel, vertices: np.ndarray) -> np.ndarray:
    """[2,3] eyeball centres (right, left) of a shape [V,3] (the globe's sphere, not the cornea)."""
    p = _prep(model)
    return np.stack([vertices[ids].mean(0) + off for ids, off in zip(p.eyeballs, p.eye_offset)])


def _rest_angles(model: HeadModel, vertices: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """[2,(yaw, pitch)] of the unturned eyeballs' iris directions."""
    lm = _iris_points(model, vertices)
    out = np.zeros((2, 2))
    for k in range(2):
        d = lm[k] - centres[k]
        d /= np.linalg.norm(d)
        out[k] = np.arctan2(d[0], d[2]), -np.arcsin(np.clip(d[1], -1, 1))
    return out


def _iris_points(model: HeadModel, vertices: np.ndarray) -> np.ndarray:
    tri = vertices[model.faces[model.landmark_faces[list(IRIS_CENTRES)]]]
    return np.einsum("lk,lkd->ld", model.landmark_bary[list(IRIS_CENTRES)], tri)


def _gaze_matrices(rest: np.ndarray, gaze: np.ndarray) -> list[np.ndarray]:
    return [rotation_from_euler(*(rest[k] + gaze[k]), 0.0) @ rotation_from_euler(*rest[k], 0.0).T for k in range(2)]


def turn_eyes(model: HeadModel, vertices: np.ndarray, gaze: np.ndarray) -> np.ndarray:
    """Vertices [V,3] with each eyeball turned about its centre by gaze [2,(yaw, pitch)] from its rest
    direction (right eye first). A copy."""
    v = np.array(vertices, dtype=np.float64)
    gaze = np.asarray(gaze, dtype=np.float64)
    if not gaze.any():
        return v
    p = _prep(model)
    c = eye_centres(model, v)
    rest = _rest_angles(model, v, c)
    for ids, ck, Rg in zip(p.eyeballs, c, _gaze_matrices(rest, gaze)):
        v[ids] = (v[ids] - ck) @ Rg.T + ck
    return v


# ---------------------------------------------------------------- fitting
def _check(landmarks: Landmarks) -> np.ndarray:
    pts = np.asarray(landmarks.points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] != LM.N_LANDMARKS or pts.shape[1] < 2:
        raise ValueError(f"need {LM.N_LANDMARKS} landmarks [478, 2 or 3], got {pts.shape}")
    uv = pts[:, :2]
    if not np.isfinite(uv).all():
        raise ValueError("landmarks contain NaN or infinite coordinates")
    w, h = landmarks.image_size
    if w <= 0 or h <= 0:
        raise ValueError(f"bad image size {landmarks.image_size}")
    if LM.inter_ocular(pts) < 1e-3 or np.ptp(uv, axis=0).min() < 1e-3:
        raise ValueError("degenerate landmarks: the points do not span a face")
    return uv


def _contour_normals(uv: np.ndarray, contour: np.ndarray) -> np.ndarray:
    """[C,2] unit normals of the detected face outline (closed loop) at each contour point."""
    tang = uv[np.roll(contour, -1)] - uv[np.roll(contour, 1)]
    n = np.stack([tang[:, 1], -tang[:, 0]], axis=1)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)


def _facing(p: _Prep, R: np.ndarray, q: np.ndarray) -> np.ndarray:
    """[C] bool: the model's surface at each contour point (camera-frame positions q [C,3]) faces the camera
    (cosine with the line of sight > 0.05); False on the far side of a turned head, where the outline
    mediapipe finds is a cheek's silhouette and not the point it names."""
    n = p.lm_normal[p.contour] @ R.T
    return -(n * q).sum(1) / np.linalg.norm(q, axis=1) > 0.05


def _box_qp(H: np.ndarray, f: np.ndarray, lo: np.ndarray, hi: np.ndarray, state: np.ndarray,
            max_iter: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """min 1/2 x'Hx - f'x subject to lo <= x <= hi, H positive definite -> (x, state: -1 at lo, 1 at hi,
    0 free). A primal-dual active-set method (Hintermueller, Ito & Kunisch 2002), warm-started from the
    previous Gauss-Newton iteration's active set: one Cholesky solve per change of the set, usually 1-3;
    scipy's lsq_linear (BVLS) takes over if the sets cycle."""
    state = state.copy()
    for _ in range(max_iter):
        x = np.where(state < 0, lo, np.where(state > 0, hi, 0.0))
        free = state == 0
        if free.any():
            rhs = f[free] - H[np.ix_(free, ~free)] @ x[~free]
            Hff = H[np.ix_(free, free)]
            x[free] = cho_solve(cho_factor(Hff, check_finite=False), rhs, check_finite=False)
        g = H @ x - f
        new = np.zeros_like(state)
        new[(free & (x < lo)) | ((state < 0) & (g > 0))] = -1
        new[(free & (x > hi)) | ((state > 0) & (g < 0))] = 1
        if np.array_equal(new, state):
            return x, state
        state = new
    from scipy.optimize import lsq_linear
    Lc = np.linalg.cholesky(H)
    x = lsq_linear(Lc.T, solve_triangular(Lc, f, lower=True), bounds=(lo, hi), method="bvls", tol=1e-10).x
    return x, np.where(x <= lo, -1, np.where(x >= hi, 1, 0)).astype(np.int8)


def _skew(v: np.ndarray) -> np.ndarray:
    """[N,3] -> [N,3,3] cross-product matrices."""
    z = np.zeros(len(v))
    return np.stack([np.stack([z, -v[:, 2], v[:, 1]], 1), np.stack([v[:, 2], z, -v[:, 0]], 1),
                     np.stack([-v[:, 1], v[:, 0], z], 1)], 1)


def _rodrigues(w: np.ndarray) -> np.ndarray:
    th = float(np.linalg.norm(w))
    if th < 1e-12:
        return np.eye(3)
    k = w / th
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(th) * Kx + (1 - np.cos(th)) * Kx @ Kx


def fit_head_model(landmarks: Landmarks | np.ndarray, model: HeadModel | None = None, identity_k: int = IDENTITY_K,
                   sigma: float = SIGMA_M, contour_weight: float = CONTOUR_WEIGHT, expr_l2: float = EXPR_L2,
                   expr_l1: float = EXPR_L1, expr_relaxed: float = EXPR_RELAXED, fit_expression: bool = True,
                   n_iter: int = N_ITER, corrective: bool = True, point_weights: np.ndarray | None = None) -> HeadFit:
    """One photo's detected landmarks (model.head.landmarks.detect_landmarks), or the photo itself (RGB
    uint8 [H,W,3]), -> HeadFit. corrective=False: the model alone (no per-vertex landmark corrective).
    point_weights [468]: a weight per face-mesh point in the solve (default 1 each; retargeting trusts some
    points less, model.head.rig.RETARGET_WEIGHTS).

    Raises ValueError on degenerate input (NaN points, wrong shape, points that span nothing); an image
    with no face raises InputError earlier, in detect_landmarks."""
    if not isinstance(landmarks, Landmarks):  # an RGB image: its largest face (no face: InputError)
        from model.head.landmarks import detect_landmarks
        landmarks = detect_landmarks(np.asarray(landmarks))
    uv = _check(landmarks)
    model = model or load_head_model()
    p = _prep(model)
    w, h = landmarks.image_size
    K = photo_camera_K(w, h)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    k_id = int(np.clip(identity_k, 0, len(model.identity_basis)))
    ex_ids = p.expr_fit if fit_expression else np.zeros(0, int)
    n_pose, n_e = 6, len(ex_ids)
    n = n_pose + k_id + n_e

    pts = FIT_POINTS
    ut = np.stack([(uv[pts, 0] - cx) / fx, (uv[pts, 1] - cy) / fy], 1)  # normalised image coordinates
    c_rows = np.searchsorted(pts, p.contour)
    normals = _contour_normals(uv, p.contour)
    # basis [3 (axis), N, k_id + n_e] (head frame)
    B = np.concatenate([p.lm_id[:k_id, pts].transpose(2, 1, 0), p.lm_ex[ex_ids][:, pts].transpose(2, 1, 0)], 2)
    L0 = p.lm0[pts]

    R, t = solve_pnp(p.lm0[p.rigid], uv[p.rigid], K)
    coef = np.zeros(k_id + n_e)
    lo = np.r_[np.full(n_pose, -np.inf), np.full(k_id, -IDENTITY_BOUND), np.zeros(n_e)]
    hi = np.r_[np.full(n_pose, np.inf), np.full(k_id, IDENTITY_BOUND), np.ones(n_e)]
    prior = np.diag(np.r_[np.full(n_pose, 1e-9), np.ones(k_id), np.full(n_e, expr_l2)])
    # absolute size is not observable (focal length against distance): the identity keeps ICT's mean face
    # size, its isotropic scale held at 0 (a 1% scale costs as much as 10 std^2), the camera's distance
    # takes the rest
    sc = p.id_scale[:k_id]
    prior[6:6 + k_id, 6:6 + k_id] += SCALE_PRIOR * np.outer(sc, sc)
    lin = np.r_[np.zeros(n_pose + k_id), np.full(n_e, expr_l1)]  # L1 on e >= 0: a linear term
    inv_var = 1.0 / sigma ** 2
    state = np.zeros(n, np.int8)
    relaxed = not n_e  # without expressions there is nothing to relax
    it = 0
    for it in range(1, n_iter + N_RELAX + 1):
        P = L0 + (B @ coef).T  # [N,3] head frame
        q = P @ R.T + t  # camera frame
        z = q[:, 2]
        zref = float(z.mean())
        m = q.mean(0)
        s = zref / z  # depth scaling: algebraic -> metric error at the face's distance
        # rows of d(residual)/d(q): x: (1, 0, -u~), y: (0, 1, -v~); residual r = D q
        D = np.zeros((len(pts), 2, 3))
        D[:, 0, 0] = D[:, 1, 1] = 1.0
        D[:, 0, 2], D[:, 1, 2] = -ut[:, 0], -ut[:, 1]
        D *= s[:, None, None]
        wts = np.ones((len(pts), 2))
        # contour: only the error normal to the detected outline, down-weighted; far side (model
        # surface facing away from the camera) dropped
        Dc = np.einsum("cj,cjk->ck", normals, D[c_rows])
        D[c_rows, 0], D[c_rows, 1] = Dc, 0.0
        wts[c_rows, 0] = contour_weight * _facing(p, R, q[c_rows])
        wts[c_rows, 1] = 0.0
        if point_weights is not None:
            wts *= np.asarray(point_weights, np.float64)[pts, None]
        r0 = np.einsum("njk,nk->nj", D, q)  # [N,2] current residuals
        # d q / d [omega (about m), dt, coef] as [3 (camera axis), N, n]
        J = np.empty((3, len(pts), n))
        J[:, :, 0:3] = -_skew(q - m).transpose(1, 0, 2)
        J[:, :, 3:6] = np.eye(3)[:, None, :]
        J[:, :, 6:] = np.tensordot(R, B, axes=([1], [0]))
        A = (D[:, :, 0, None] * J[0][:, None] + D[:, :, 1, None] * J[1][:, None]
             + D[:, :, 2, None] * J[2][:, None]).reshape(-1, n)
        x_prev = np.r_[np.zeros(n_pose), coef]
        b = A @ x_prev - r0.reshape(-1)
        wv = wts.reshape(-1) * inv_var
        H = (A * wv[:, None]).T @ A + prior
        f = (A * wv[:, None]).T @ b - 0.5 * lin
        x, state = _box_qp(H, f, lo, hi, state)
        omega, dt = x[:3], x[3:6]
        dR = _rodrigues(omega)
        R = dR @ R
        t = dR @ (t - m) + m + dt
        step = np.abs(x[6:] - coef).max() if len(coef) else 0.0
        coef = x[6:]
        settled = np.linalg.norm(omega) < 2e-4 and step < 5e-3  # 0.01 degree, 0.005 std or weight
        if not relaxed and (settled or it >= n_iter):
            # relaxed lasso: the sparse prior chose which expressions are on; refit their weights with a
            # weak L2 prior only (the L1 shrinks every active weight by the same amount), others stay 0
            relaxed = True
            hi = np.where(np.r_[np.zeros(n_pose + k_id, bool), coef[k_id:] <= 0], 0.0, hi)
            prior[np.arange(n_pose + k_id, n), np.arange(n_pose + k_id, n)] = expr_relaxed
            lin = np.zeros(n)
        elif relaxed and settled:
            break

    identity = coef[:k_id].copy()
    expression = np.zeros(len(model.expression_names))
    expression[ex_ids] = coef[k_id:]
    cam = Camera(K, rigid_matrix(R, t), w, h)
    full = np.zeros(len(model.identity_basis))
    full[:k_id] = identity
    v = model.vertices(full, expression)
    lm_model = model.landmarks(v)
    proj, depth = cam.project(lm_model)
    iod = max(LM.inter_ocular(uv), 1e-9)
    nme_model = float(np.linalg.norm(proj - uv, axis=1).mean() / iod)  # before gaze and corrective
    offsets = None
    if corrective:
        # the model's points moved, in their depth plane, onto the detected pixels; contour points only
        # across the detected outline, and not at all on the far side of a turned head
        du = uv[:468] - proj[:468]
        nrm = _contour_normals(uv, p.contour)
        du[p.contour] = nrm * (nrm * du[p.contour]).sum(1, keepdims=True)
        du[p.contour[~_facing(p, R, cam.to_camera(lm_model[p.contour]))]] = 0.0
        target = cam.unproject(proj[:468] + du, depth[:468])
        offsets = _corrective_offsets(model, target - lm_model[:468])
        v = v + offsets
    # gaze: each eyeball turned towards its detected iris centre
    centres = eye_centres(model, v)
    iris = _iris_points(model, v)
    rest = _rest_angles(model, v, centres)
    gaze = np.zeros((2, 2))
    for k, lid in enumerate(IRIS_CENTRES):
        radius = float(np.linalg.norm(iris[k] - centres[k]))
        d = _iris_direction(cam, centres[k], radius, uv[lid])
        gaze[k] = _gaze_rotation(d)[1] - rest[k]
    proj, _ = cam.project(model.landmarks(turn_eyes(model, v, gaze)))
    nme = float(np.linalg.norm(proj - uv, axis=1).mean() / iod)
    return HeadFit(model, identity, expression, cam, euler_from_rotation(R_FRONT.T @ R), gaze, centres,
                   landmarks, nme, offsets, nme_model, it)


def fit(image: np.ndarray | None = None, landmarks: Landmarks | None = None) -> HeadFit:
    """One photo (RGB uint8 [H,W,3]) or its detected landmarks -> HeadFit (camera,
    pose, identity, the photo's expression and gaze). No face -> InputError."""
    if landmarks is None and image is None:
        raise ValueError("fit() needs an image or landmarks")
    return fit_head_model(image if landmarks is None else landmarks)


# ---------------------------------------------------------------- synthetic cases (tests, benchmarks)
def umeyama(src: np.ndarray, dst: np.ndarray, scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity dst ~ s R src + t (Umeyama 1991) -> (s, R [3,3], t [3])."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    U, S, Vt = np.linalg.svd(b.T @ a / len(src))
    d = np.ones(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        d[2] = -1
    R = U @ np.diag(d) @ Vt
    s = float((S * d).sum() / (a ** 2).sum(1).mean()) if scale else 1.0
    return s, R, mu_d - s * R @ mu_s


SYNTHETIC_SHAPES = ("jawOpen", "mouthSmile_L", "mouthSmile_R", "eyeBlink_L", "eyeBlink_R")


def random_case(model: HeadModel, rng: np.random.Generator, n_modes: int | None = None, n_shapes: int = 2,
                max_yaw_deg: float = 45.0, max_pitch_deg: float = 20.0, max_roll_deg: float = 10.0) -> dict:
    """A random face for synthetic_landmarks: identity ~ N(0, 1) on the first n_modes (default all 100),
    n_shapes of SYNTHETIC_SHAPES at U(0, 1) (the others 0), a head pose uniform within the bounds."""
    k = len(model.identity_basis) if n_modes is None else n_modes
    identity = np.zeros(len(model.identity_basis))
    identity[:k] = rng.normal(0.0, 1.0, k)
    expression = {n: 0.0 for n in SYNTHETIC_SHAPES}
    for n in rng.choice(SYNTHETIC_SHAPES, n_shapes, replace=False):
        expression[str(n)] = float(rng.uniform(0.0, 1.0))
    pose = np.deg2rad([rng.uniform(-max_yaw_deg, max_yaw_deg), rng.uniform(-max_pitch_deg, max_pitch_deg),
                       rng.uniform(-max_roll_deg, max_roll_deg)])
    return {"identity": identity, "expression": expression, "pose": pose}


def synthetic_landmarks(model: HeadModel, identity, expression, pose, gaze=None, size=(512, 512),
                        distance: float = 0.65, offset=(0.0, 0.0), noise_px: float = 0.5,
                        rng: np.random.Generator | None = None) -> tuple[Landmarks, Camera, np.ndarray]:
    """The model's own 478 points for a known face, head pose (yaw, pitch, roll) and gaze, seen by the
    photo camera (photo_camera_K) from `distance` metres, + Gaussian pixel noise ->
    (Landmarks, the true camera, the true vertices [V,3] in the head frame, eyeballs turned)."""
    w, h = size
    K = photo_camera_K(w, h)
    v = model.vertices(identity, expression)
    if gaze is not None:
        v = turn_eyes(model, v, gaze)
    R = R_FRONT @ rotation_from_euler(*pose)
    centre = np.array([0.0, -0.02, 0.06])  # roughly the face's centre
    t = np.array([offset[0], offset[1], distance]) - R @ centre
    cam = Camera(K, rigid_matrix(R, t), w, h)
    uv, z = cam.project(model.landmarks(v))
    if rng is not None and noise_px > 0:
        uv = uv + rng.normal(0.0, noise_px, uv.shape)
    zrel = (z - z.mean()) * K[0, 0] / z.mean()
    return Landmarks(np.c_[uv, zrel], (w, h)), cam, v
