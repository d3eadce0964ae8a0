"""The multiview-gt protocol: novel views at the dataset's ground-truth cameras, compared with its images."""
from __future__ import annotations

import numpy as np

from evaluation.protocols.common import WHITE, Output, Protocol, _fail_rate, _mean, _short, fit_size, resize_image
from model.core.camera import Camera
from model.core.image_io import to_float


class MultiviewGT(Protocol):
    id, version = "multiview-gt", "1"
    description = ("novel views with ground-truth cameras and images: PSNR/SSIM/LPIPS (full and masked by "
                   "the dataset's head mask) and CSIM per view")
    primary = ("psnr_masked", "ssim_masked", "lpips_alex_masked", "csim_dlib")

    def applicable(self, dataset):
        return None if dataset.has_views else f"dataset {dataset.id!r} has no ground-truth views"

    @staticmethod
    def align(avatar, subject, view_cam: Camera) -> Camera:
        """The ground-truth view camera expressed in the avatar's world.

        The avatar's input camera and the dataset's input camera are the same physical camera; the
        relative pose input -> view is taken from the dataset, with its translation scaled by
        s = (depth of the avatar's head centre in its input camera) / (depth of the dataset's head centre
        in the dataset's input camera), since one photo fixes the scene only up to scale."""
        gt_in, av_in = subject.input_camera, avatar.input_camera
        rel = view_cam.world_to_cam @ np.linalg.inv(gt_in.world_to_cam)  # dataset input cam -> view cam
        z_gt = float(gt_in.to_camera(np.asarray(subject.head_center, np.float64)[None])[0, 2])
        z_av = float(av_in.to_camera(np.asarray(avatar.head_center, np.float64)[None])[0, 2])
        s = z_av / z_gt if z_gt > 0 and z_av > 0 else 1.0
        rel = rel.copy()
        rel[:3, 3] *= s
        return Camera(view_cam.K, rel @ av_in.world_to_cam, view_cam.width, view_cam.height)

    def run(self, avatar, subject, ctx):
        views, images, notes = [], {}, []
        for gv in subject.views:
            wh = fit_size(gv.camera.width, gv.camera.height, ctx.settings.size)
            cam = self.align(avatar, subject, gv.camera).resized(*wh)
            r = avatar.render(cam, None, WHITE)
            tgt = to_float(resize_image(gv.image, wh))
            mask = None
            if gv.mask is not None:
                mask = resize_image(np.repeat(gv.mask[..., None].astype(np.uint8) * 255, 3, 2), wh)[..., 0] >= 128
                mask = mask if mask.any() else None
            m = ctx.image_metrics(r.rgb, tgt, mask)
            m.update(ctx.identity.scores(r.rgb, tgt))
            views.append({"view": gv.name, **m})
            if len(images) < 6:
                images[gv.name] = r.rgb
        if not views:
            return Output({}, [], status="failed", reason="subject has no ground-truth views")
        keys = [k for k in views[0] if k != "view" and not k.startswith("face_found")]
        metrics = {k: _mean(v.get(k) for v in views) for k in keys}
        for m in ctx.identity.available:
            metrics[f"face_detect_fail_rate_{_short(m)}"] = _fail_rate(v.get(f"face_found_{_short(m)}") for v in views)
        if any(gv.mask is None for gv in subject.views):
            notes.append("some views have no mask: their masked metrics are missing")
        return Output(metrics, views, images=images, notes=notes)
