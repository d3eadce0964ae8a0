"""The input-view protocol: the avatar rendered at its fitted input camera, compared with the photo."""
from __future__ import annotations

from evaluation.protocols.common import WHITE, Output, Protocol, fit_size, resize_image
from model.core.image_io import to_float


class InputView(Protocol):
    # v2: the face mask leaves out the photo's background; v3: and its hands (common.face_mask); v4: hands found
    # at the hand detector's lower threshold (segmentation.HAND_MIN_CONFIDENCE); v5: with what the hands hold and
    # their forearms (segmentation.hand_mask)
    id, version = "input-view", "5"
    description = ("render at the avatar's fitted input camera; compare with the photo (full image and "
                   "the photo's dilated face-oval mask) and its identity")
    primary = ("psnr_masked", "ssim_masked", "lpips_alex_masked", "csim_dlib")

    def run(self, avatar, subject, ctx):
        photo = subject.image
        wh = fit_size(photo.shape[1], photo.shape[0], ctx.settings.size)
        target = resize_image(photo, wh)
        cam = avatar.input_camera.resized(*wh)
        r = avatar.render(cam, None, WHITE)
        mask = ctx.face_mask(target)
        pred, tgt = r.rgb, to_float(target)
        m = ctx.image_metrics(pred, tgt, mask)
        notes = []
        if mask is None:
            notes.append("no face found in the photo at this size: masked metrics not computed")
        else:
            m["alpha_face_coverage"] = float(r.alpha[mask].mean())
        ident = ctx.identity.scores(pred, tgt)
        m.update({k: v for k, v in ident.items() if k.startswith("csim_")})
        view = {"view": "input", **m, **{k: v for k, v in ident.items() if k.startswith("face_found")}}
        return Output(m, [view], images={"input": pred, "photo": tgt}, notes=notes)
