"""LAM avatar packages (the chat-avatar zip of aigc3d/LAM) in the hub: animate, align to a photo, and the
registered method `lam-import`. The package itself (layout, frame, reading and its checks) is
baselines/lam_package.py; LamPackage, LamPackageError and read_package are importable from here too.

Animation (LamAvatar.gaussians): Gaussian i = vertex i + offset i + sum over morph targets of
weight x displacement, then linear blend skinning with the skin's own weights. Controls are the rig's
(model.head.rig.CONTROLS: ARKit's 52 blendshape names + headYaw/headPitch/headRoll), checked as
rig.validate checks them (an unknown name -> its ValueError; values clipped to the rig's ranges). A
package's ARKit morph target is driven by the control of the same name (tongueOut too, when a package
has that target; the rig itself ignores it). ARKit controls without a target: eyeLook* turn the eye
joints, when the package has them, by the rig's own gaze angles (rig.gaze_from_arkit, per eye);
jawOpen turns a "jaw" joint by JAW_JOINT_MAX; the others move nothing (metadata lists them).
headYaw/Pitch/Roll turn the "head" joint (and its children) about its bind position. Gaussians keep
their shape under morph targets (as in LAM's renderer) and turn with the skinning. LAM's web renderer
moves every splat with the head bone alone; LamAvatar uses the mesh's skin weights, so the neck
fades as the skin says.

Prediction folder of the registered method `lam-import` (LamImport), keyed to a dataset's photos like
baselines/external.py (plain file names, no paths, no '..'):

    <root>/<subject>/input.png    the photo LAM was given (identifies the subject by its pixels)
    <root>/<subject>/avatar.zip   LAM's package for it

root: LamImport(root=...) or the environment variable HEADSPLAT_LAM_PACKAGES. Each avatar is aligned
to its photo's camera by the landmark fit our method uses (align_to_photo); metadata reports the
alignment error.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from baselines.common import FIT_PARAMETERS
from baselines.lam_package import HEAD_JOINTS, LamPackage, LamPackageError, read_package
from model.core.camera import Camera, framing_camera, head_extent, rigid_matrix
from model.core.errors import InputError
from model.core.gaussians import Gaussians, normalize_quats, rgb_to_sh, rotmat_to_quat
from model.core.image_io import load_image, pixels_sha256, to_uint8
from model.head import rig
from model.head.fitting import rotation_from_euler
from model.head.ict_fit import umeyama
from model.head.landmarks import landmarks_of
from model.interface import Controls, GaussianAvatar, Method, MethodInfo

EYE_LOOK = ("eyeLookOutLeft", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutRight",
            "eyeLookDownLeft", "eyeLookDownRight", "eyeLookUpLeft", "eyeLookUpRight")
JAW_JOINTS = ("jaw", "Jaw", "jaw_joint")
EYE_JOINTS = {"right": ("rEye", "eye_r", "rightEye", "RightEye"), "left": ("lEye", "eye_l", "leftEye", "LeftEye")}
# jaw-joint rotation (radians, opening) at jawOpen = 1, for a package with a jaw joint and no jawOpen target
# (the procedural rig's jaw hinge at 1 had this angle; LAM's own packages have the target)
JAW_JOINT_MAX = 0.32


# ------------------------------------------------------------------------------------------ the avatar
LAM_INFO = MethodInfo(
    id="lam-import", name="LAM (imported package)", version="2",  # 2: retargets (the reenactment protocols)
    description="an avatar package exported by LAM (aigc3d/LAM), read and animated here, aligned to the photo",
    animatable=True, link="https://github.com/aigc3d/LAM", license="Apache-2.0 (LAM code); packages: their own",
    # its retargeting tracks faces with our template fitted to its render (FIT_PARAMETERS)
    parameters={"external": True, "format": "LAM chat-avatar zip", **FIT_PARAMETERS})


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton products a*b of quaternions [...,4] (w, x, y, z)."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], -1)


class LamAvatar(GaussianAvatar):
    """A LAM package as a GaussianAvatar in our head world (optionally aligned to a photo).

    `similarity` (s, R, t) maps the package's head world (file frame minus its origin) into the world
    of `input_camera`: x -> s R x + t. Everything is precomputed in that world, so gaussians(controls)
    is a weighted sum of morph targets plus skinning (~5 ms for 20k Gaussians on 2 cores)."""

    def __init__(self, package: LamPackage, info: MethodInfo = LAM_INFO, similarity=None,
                 input_camera: Camera | None = None, extra: dict | None = None):
        self.info, self.package = info, package
        s, R, t = similarity if similarity is not None else (1.0, np.eye(3), np.zeros(3))
        self.similarity = (float(s), np.asarray(R, np.float64), np.asarray(t, np.float64))
        s, R, t = self.similarity
        S = rigid_matrix(R, t, s) @ rigid_matrix(np.eye(3), -package.origin)
        A = S[:3, :3]
        self._base = ((package.vertices + package.offsets).astype(np.float64) @ A.T + S[:3, 3]).astype(np.float32)
        self._names = list(package.targets)
        self._deltas = (np.stack([package.targets[k] for k in self._names]).astype(np.float64) @ A.T).astype(np.float32) \
            if self._names else np.zeros((0, len(package), 3), np.float32)
        q_align = rotmat_to_quat(self.similarity[1][None])[0]
        self._quats = normalize_quats(_quat_mul(q_align[None], package.quats))
        self._scales = (package.scales * self.similarity[0]).astype(np.float32)
        self._sh = rgb_to_sh(package.rgb)
        # skinning in our world: B_j = S (rest x IBM) S^-1, joint pivots S p_j
        self._bind = S[None] @ package.bind_fix @ np.linalg.inv(S)[None]
        self._bind_identity = bool(np.allclose(self._bind, np.eye(4), atol=1e-5))
        self._pivots = package.joint_position @ A.T + S[:3, 3]
        names = package.joint_names
        used = np.zeros(len(names), bool)
        used[np.unique(package.skin_joints[package.skin_weights > 0])] = True
        find = lambda cands: next((names.index(c) for c in cands if c in names and used[self._subtree(names.index(c))].any()), None)  # noqa: E731
        self._joint = {"head": find(HEAD_JOINTS), "jaw": find(JAW_JOINTS),
                       "eye_r": find(EYE_JOINTS["right"]), "eye_l": find(EYE_JOINTS["left"])}
        self._neutral = None
        self._tracked = None  # see _tracking_head
        self.input_camera = input_camera
        neutral = self.gaussians()
        visible = neutral.opacities > 0.05
        self.head_center, self.head_radius = head_extent(neutral.means[visible] if visible.any() else neutral.means)
        if self.input_camera is None:
            self.input_camera = framing_camera(self.head_center, self.head_radius, 0.0, 0.0, size=512)
        self._extra = extra or {}

    def _subtree(self, j: int) -> np.ndarray:
        """Indices of joint j and its descendants in the skin."""
        parents = self.package.joint_parent
        members = np.zeros(len(parents), bool)
        members[j] = True
        while True:  # add children of members until none is new (depth of the skeleton passes)
            new = ~members & (parents >= 0) & members[np.maximum(parents, 0)]
            if not new.any():
                return np.flatnonzero(members)
            members |= new

    # ------------------------------------------------------------------ controls
    def _interpret(self, controls: Controls | None) -> tuple[np.ndarray, dict]:
        """Controls (the rig's: ARKit names + head pose) -> (morph weights [T], joint rotations {joint: R [3,3]})."""
        c = rig.validate(controls)  # unknown names, non-finite values -> the rig's ValueError; clipped
        w = dict.fromkeys(self._names, 0.0)
        for k in rig.IGNORED_ARKIT:  # no motion in our rig (validate drops them), but a package may have the target
            if k in w and controls and k in controls:
                w[k] = float(np.clip(float(controls[k]), 0.0, 1.0))
        for k, v in c.items():
            if k in w:  # an ARKit name with a morph target: drive it
                w[k] = v
        joints: dict[str, np.ndarray] = {}
        # eyeLook* without a target: the eye joints turn by the rig's gaze angles (right eye first)
        look = {k: v for k, v in c.items() if k in EYE_LOOK and k not in w and v}
        if look:
            gaze = rig.gaze_from_arkit(look)
            for e, (yaw, pitch) in zip(("eye_r", "eye_l"), gaze):
                if self._joint[e] is not None and (yaw or pitch):
                    joints[e] = rotation_from_euler(float(yaw), float(pitch), 0.0)
        jaw = c.get("jawOpen", 0.0) if "jawOpen" not in w else 0.0
        if jaw and self._joint["jaw"] is not None:
            joints["jaw"] = rotation_from_euler(0.0, jaw * JAW_JOINT_MAX, 0.0)
        hy, hp, hr = (c.get(k, 0.0) for k in rig.HEAD_CONTROLS)
        if (hy or hp or hr) and self._joint["head"] is not None:
            joints["head"] = rotation_from_euler(hy, hp, hr)
        weights = np.array([w[n] for n in self._names], np.float32)
        return weights, joints

    def _joint_matrices(self, joints: dict) -> np.ndarray | None:
        """World transforms [J,4,4] of the skin's joints under the joint rotations (each about its own
        bind position, children first), or None when nothing moves."""
        if not joints and self._bind_identity:
            return None
        J = len(self.package.joint_names)
        M = np.tile(np.eye(4), (J, 1, 1))
        for key in ("eye_r", "eye_l", "jaw", "head"):  # children before the head that carries them
            if key not in joints or self._joint[key] is None:
                continue
            j = self._joint[key]
            D = rigid_matrix(joints[key], self._pivots[j] - joints[key] @ self._pivots[j])
            sub = self._subtree(j)
            M[sub] = D[None] @ M[sub]
        return M @ self._bind

    def gaussians(self, controls: Controls | None = None) -> Gaussians:
        if not controls and self._neutral is not None:
            return self._neutral
        weights, joints = self._interpret(controls)
        means = self._base.copy()
        nz = np.flatnonzero(weights)
        if len(nz):
            means += np.tensordot(weights[nz], self._deltas[nz], axes=1)
        quats = self._quats
        M = self._joint_matrices(joints)
        if M is not None:
            pk = self.package
            A = np.einsum("nk,nkij->nij", pk.skin_weights, M[pk.skin_joints])  # [N,4,4] blended transforms
            means = (np.einsum("nij,nj->ni", A[:, :3, :3], means) + A[:, :3, 3]).astype(np.float32)
            jq = rotmat_to_quat(M[:, :3, :3] / np.cbrt(np.abs(np.linalg.det(M[:, :3, :3])))[:, None, None])
            quats = normalize_quats(_quat_mul(np.einsum("nk,nkq->nq", pk.skin_weights, jq[pk.skin_joints]), quats))
        g = Gaussians(means, quats, self._scales, self.package.opacities, self._sh)
        if not controls:
            self._neutral = g
        return g

    # ------------------------------------------------------------------ tracking
    def _tracking_head(self):
        """The hub's head model fitted to this avatar's own neutral render at input_camera (a
        model.head.ict_fit.HeadFit, made once): what our tracker retargets frames against, so head controls
        are relative to the pose that camera sees and expressions to the face that render shows."""
        if self._tracked is None:
            from model.head.ict_fit import fit
            self._tracked = fit(to_uint8(self.render(self.input_camera).rgb))
        return self._tracked

    def retarget(self, image, neutral=None) -> dict:
        """The rig's controls (ARKit weights + head pose, which this avatar follows through its ARKit
        targets and joints) for the expression and head pose in `image` (RGB or Landmarks): the hub's
        tracker, model.head.rig.retarget, against _tracking_head(); neutral as there."""
        return rig.retarget(landmarks_of(image), self._tracking_head(), neutral)

    def neutral_offsets(self, image):
        """The tracked person's rest face in `image`, for retarget(neutral=...) (model.head.rig)."""
        return rig.neutral_offsets(landmarks_of(image), self._tracking_head())

    def metadata(self) -> dict:
        pk = self.package
        return {**super().metadata(), "package": pk.name, "morph_targets": len(pk.targets),
                "arkit_without_target": [n for n in rig.ARKIT_NAMES if n not in pk.targets],
                "other_targets": pk.other_targets, "origin_source": pk.origin_source,
                "driven_joints": {k: (pk.joint_names[v] if v is not None else None) for k, v in self._joint.items()},
                **self._extra}


def load_lam_package(path: str | Path) -> LamAvatar:
    """A LAM package zip -> an animatable Avatar in our head world (not aligned to any photo: its
    input_camera is the frontal framing camera). Malformed packages -> LamPackageError."""
    t0 = time.perf_counter()
    pkg = read_package(path)
    return LamAvatar(pkg, extra={"import_s": round(time.perf_counter() - t0, 4)})


# ------------------------------------------------------------------------------------------ alignment
def avatar_landmarks(avatar: GaussianAvatar, size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """The avatar rendered frontally, its 478 mediapipe landmarks lifted to 3D by the render's depth:
    (points [478,3] in the avatar's world, valid [478] bool where the render is opaque there)."""
    from model.head.landmarks import detect_landmarks
    cam = framing_camera(avatar.head_center, avatar.head_radius, 0.0, 0.0, size=size)
    r = avatar.render(cam)
    try:
        lm = detect_landmarks(to_uint8(r.rgb))
    except InputError as e:
        raise LamPackageError(f"no face found in the avatar's frontal render ({e})") from None
    px = np.clip(np.round(lm.xy).astype(int), 0, size - 1)
    depth, alpha = r.depth[px[:, 1], px[:, 0]], r.alpha[px[:, 1], px[:, 0]]
    valid = (alpha > 0.5) & (depth > 0)
    return cam.unproject(lm.xy, np.where(valid, depth, 1.0)), valid


def align_to_photo(avatar: LamAvatar, image) -> LamAvatar:
    """The avatar placed in the world of the photo's fitted camera (the hub's landmark fit of our
    template), so that input_camera shows it as the photo shows the person.

    The avatar's frontal render gives 3D landmarks (mediapipe + the render's depth); a similarity
    (scale, rotation, translation) takes them onto the fitted template's landmarks (468 face points,
    refit on the 80% that agree best). metadata()["alignment"]: nme = mean 2D distance between the
    aligned landmarks seen by the photo's camera and the photo's detected landmarks / outer-eye-corner
    distance; rms_mm = 3D residual to the fitted template's landmarks; scale and rotation found."""
    from model.head.ict_fit import fit
    from model.head.landmarks import detect_landmarks, inter_ocular
    image = load_image(image)
    lm = detect_landmarks(image)
    fitted = fit(image, landmarks=lm)
    target = fitted.template.landmarks(rig.deform(fitted, None))[:468]  # the rest face our avatar stands on
    src, valid = avatar_landmarks(avatar)
    src, valid = src[:468], valid[:468]
    if valid.sum() < 100:
        raise LamPackageError(f"only {int(valid.sum())} face landmarks land on the avatar's render: cannot align")
    keep = np.flatnonzero(valid)
    s, R, t = umeyama(src[keep], target[keep])
    res = np.linalg.norm(src[keep] @ R.T * s + t - target[keep], axis=1)
    keep = keep[res <= np.quantile(res, 0.8)]
    s, R, t = umeyama(src[keep], target[keep])
    # compose with the avatar's current similarity: new world = (s, R, t) o old world
    s0, R0, t0 = avatar.similarity
    aligned = s * R @ src[keep].T
    rms = float(np.sqrt(((aligned.T + t - target[keep]) ** 2).sum(1).mean()))
    uv, _ = fitted.camera.project(src[:468] @ R.T * s + t)
    nme = float(np.linalg.norm(uv[valid] - lm.xy[:468][valid], axis=1).mean() / max(inter_ocular(lm.points), 1e-9))
    angle = float(np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1))))
    meta = {"alignment": {"nme": round(nme, 4), "rms_mm": round(1000 * rms, 2), "scale": round(s, 4),
                          "rotation_deg": round(angle, 2), "landmarks_used": int(len(keep)),
                          "fit_nme": round(float(fitted.nme), 4)}}
    return LamAvatar(avatar.package, avatar.info, (s * s0, R @ R0, s * R @ t0 + t), fitted.camera,
                     {**{k: v for k, v in avatar._extra.items() if k != "alignment"}, **meta})


# ------------------------------------------------------------------------------------------ the method
def _plain(folder: Path, name: str, what: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise LamPackageError(f"{folder.name}: {what} {name!r} is missing")
    return path


class LamImport(Method):
    """Registered as `lam-import`: LAM packages made elsewhere for a dataset's photos (folder format in
    the module docstring), each read, aligned to its photo and animated here."""

    info = LAM_INFO

    def __init__(self, root: str | Path | None = None):
        root = root or os.environ.get("HEADSPLAT_LAM_PACKAGES")
        if not root:
            raise LamPackageError("lam-import needs a folder of LAM packages: LamImport(root=DIR) or "
                                  "HEADSPLAT_LAM_PACKAGES=DIR (DIR/<subject>/input.png + avatar.zip)")
        self.root = Path(root)
        if not self.root.is_dir():
            raise LamPackageError(f"LAM packages folder not found: {self.root}")
        self.subjects: dict[str, Path] = {}
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            key = pixels_sha256(load_image(_plain(folder, "input.png", "input photo")))
            self.subjects[key] = _plain(folder, "avatar.zip", "LAM package")
        if not self.subjects:
            raise LamPackageError(f"{self.root}: no subject folders (<subject>/input.png + avatar.zip)")

    def reconstruct(self, image) -> LamAvatar:
        image = load_image(image)
        key = pixels_sha256(image)
        if key not in self.subjects:
            raise LamPackageError(f"lam-import: no LAM package for this photo (subjects: "
                                  f"{', '.join(p.parent.name for p in self.subjects.values())})")
        t0 = time.perf_counter()
        avatar = load_lam_package(self.subjects[key])
        t1 = time.perf_counter()
        aligned = align_to_photo(avatar, image)
        aligned._extra.update(subject=self.subjects[key].parent.name,
                              timings_s={"import": round(t1 - t0, 4), "align": round(time.perf_counter() - t1, 4)})
        return aligned
