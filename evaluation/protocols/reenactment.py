"""The reenactment protocols: the avatar of a clip's source frame driven by frames (self-reenactment: its
own clip, scored against each frame; cross-reenactment: another clip, no ground truth), and the older
`reenactment` protocol scored with mediapipe's landmarks."""
from __future__ import annotations

import numpy as np

from evaluation.protocols.common import WHITE, Output, Protocol, _fail_rate, _mean, _short, fit_size, resize_image
from model.core.image_io import to_float


class Reenactment(Protocol):
    # v2: the face mask leaves out the frame's background; v3: and its hands (common.face_mask); v4: hands found
    # at the hand detector's lower threshold (segmentation.HAND_MIN_CONFIDENCE); v5: with what the hands hold and
    # their forearms (segmentation.hand_mask)
    id, version = "reenactment", "5"
    description = ("self-reenactment: reconstruct from frame 0, drive with each later frame's retargeted "
                   "controls at the input camera, compare with that frame (PSNR/SSIM/LPIPS full and face-masked, "
                   "CSIM, AKD on mediapipe's 478 landmarks in px at the compared size); frame 0 is not scored")
    primary = ("psnr_masked", "ssim_masked", "lpips_alex_masked", "csim_dlib", "akd")

    def applicable(self, dataset):
        return None if dataset.has_frames else f"dataset {dataset.id!r} has no video frames"

    def source(self, subject):
        return subject.frames[0]

    def run(self, avatar, subject, ctx):
        from evaluation.consistency import akd_images
        if not getattr(avatar, "animatable", False) or not callable(getattr(avatar, "retarget", None)):
            return Output({}, [], status="skipped", reason="skipped: not animatable")
        if len(subject.frames) < 2:
            return Output({}, [], status="failed", reason="fewer than 2 frames")
        src = subject.frames[0]
        wh = fit_size(src.shape[1], src.shape[0], ctx.settings.size)
        cam = avatar.input_camera.resized(*wh)
        views, images, akd_fail = [], {}, 0
        for i, frame in enumerate(subject.frames[1:], start=1):
            controls = avatar.retarget(frame)
            r = avatar.render(cam, controls, WHITE)
            target = resize_image(frame, wh)
            tgt = to_float(target)
            mask = ctx.face_mask(target)
            m = ctx.image_metrics(r.rgb, tgt, mask)
            m.update(ctx.identity.scores(r.rgb, tgt))
            m["akd"] = akd_images(r.rgb, tgt)  # None when a face is missing in either image
            akd_fail += m["akd"] is None
            views.append({"view": f"frame{i:04d}", **m})
            if i in (1, len(subject.frames) // 2, len(subject.frames) - 1):
                images[f"frame{i:04d}"] = r.rgb
        keys = [k for k in views[0] if k != "view" and not k.startswith("face_found")]
        metrics = {k: _mean(v.get(k) for v in views) for k in keys}
        metrics["akd_fail_rate"] = akd_fail / len(views)
        for m in ctx.identity.available:
            metrics[f"face_detect_fail_rate_{_short(m)}"] = _fail_rate(v.get(f"face_found_{_short(m)}") for v in views)
        return Output(metrics, views, images=images,
                      notes=[f"AKD: frames where mediapipe found no face (render or frame): {akd_fail}"])


class SelfReenactment(Protocol):
    """Self-reenactment on real (or synthetic) clips, scored against each target frame.

    Source = the clip's first usable frame (subject.frames[0]; evaluation/videos.py documents the
    sampling). Each target frame is retargeted through the avatar's `retarget(image) -> controls` (the
    method's own tracker: expression and head pose relative to the source), rendered at the avatar's
    fitted input camera at the compared size, and compared with the real frame: PSNR/SSIM/LPIPS full and
    masked by the target's face mask (evaluation.protocols.common), CSIM to the target frame, and through
    evaluation.tracker (dlib's 68 points, a detector that does not drive the method): AKD-68 (px at the
    compared size), AED (expression) and APD (head pose, degrees) between render and frame. A method that
    cannot animate is rendered at the source frame's pose for every target and marked: metric
    `animated` = 0 and a note (its numbers then measure how far the clip moves from the source)."""
    # v2: the face mask leaves out the frame's hands (common.face_mask); v3: at segmentation.HAND_MIN_CONFIDENCE;
    # v4: with what the hands hold and their forearms (segmentation.hand_mask)
    id, version = "self-reenactment", "4"
    description = ("clip source frame -> avatar; every sampled target frame retargeted (expression + head pose), "
                   "rendered at the fitted camera, compared with the real frame: PSNR/SSIM/LPIPS full and "
                   "face-masked, CSIM, AKD on dlib's 68 landmarks, AED/APD from the evaluation's dlib tracker; "
                   "non-animatable methods scored at the source pose (animated = 0)")
    primary = ("psnr_masked", "ssim_masked", "lpips_alex_masked", "csim_dlib", "akd68", "aed", "apd")
    N_THUMBS = 3
    SHOWN = "real"  # thumbnail suffix of the image shown beside each render: the frame it is compared with

    def applicable(self, dataset):
        return None if dataset.has_frames else f"dataset {dataset.id!r} has no video frames"

    def source(self, subject):
        return subject.frames[0]

    @staticmethod
    def animates(avatar) -> bool:
        return bool(getattr(avatar, "animatable", False)) and callable(getattr(avatar, "retarget", None))

    def drive(self, avatar, frame, cam, notes: list):
        """Render the avatar driven by one frame at cam; (RenderResult, retarget ok: bool | None)."""
        from model.interface import InputError
        if not self.animates(avatar):
            return avatar.render(cam, None, WHITE), None
        try:
            controls = avatar.retarget(frame)
        except InputError as e:  # the method's own tracker lost the face: neutral pose, counted
            notes.append(f"retarget failed on a frame ({e}); rendered at the source pose")
            return avatar.render(cam, None, WHITE), False
        return avatar.render(cam, controls, WHITE), True

    def run(self, avatar, subject, ctx):
        if len(subject.frames) < 2:
            return Output({}, [], status="failed", reason="fewer than 2 frames (a source and a target)")
        return self.reenact(avatar, subject, subject, ctx, [])

    def reenact(self, avatar, subject, driver, ctx, notes: list) -> Output:
        """The frame loop of both reenactments: the avatar of subject's source frame driven by each of the
        driver's frames after its first, rendered at the fitted camera at the source's compared size, scored
        by self.score, then summarised (driver = subject for self-reenactment)."""
        src = subject.frames[0]
        wh = fit_size(src.shape[1], src.shape[0], ctx.settings.size)
        cam = avatar.input_camera.resized(*wh)
        source = to_float(resize_image(src, wh))
        ids = driver.frame_ids or list(range(len(driver.frames)))
        views, images = [], {}
        thumbs = set(np.linspace(1, len(driver.frames) - 1, self.N_THUMBS).round().astype(int).tolist())
        for i, frame in enumerate(driver.frames[1:], start=1):
            r, ok = self.drive(avatar, frame, cam, notes)
            m, tracked, shown = self.score(r.rgb, frame, wh, source, ctx)
            name = self.view_name(driver, ids[i])
            views.append({"view": name, **m, "tracked": tracked, "retargeted": ok})
            if i in thumbs:
                images[name], images[f"{name}_{self.SHOWN}"] = r.rgb, shown
        return self.summarise(views, images, notes, avatar, ctx)

    @staticmethod
    def view_name(driver, frame_id: int) -> str:
        return f"frame{frame_id:05d}"

    def score(self, rgb, frame, wh, source, ctx) -> tuple[dict, bool, np.ndarray]:
        """One render against the frame that drove it, at the compared size wh: (metrics, tracked in both,
        the frame as compared)."""
        target = resize_image(frame, wh)
        tgt = to_float(target)
        m = ctx.image_metrics(rgb, tgt, ctx.face_mask(target))
        m.update(ctx.identity.scores(rgb, tgt))
        tm, tracked = self.tracker_metrics(ctx, rgb, target, ("akd68", "aed", "apd"))
        return {**m, **tm}, tracked, tgt

    @staticmethod
    def tracker_metrics(ctx, rgb, reference, names) -> tuple[dict, bool]:
        """evaluation.tracker's metrics `names` between a render and a reference image (None each when the
        tracker loses the face in either); and whether it found both."""
        from evaluation import tracker as T
        a, b = ctx.track(rgb), ctx.track(reference)
        tracked = a is not None and b is not None
        return {n: getattr(T, n)(a, b) if tracked else None for n in names}, tracked

    def summarise(self, views, images, notes, avatar, ctx):
        keys = [k for k in views[0] if k not in ("view", "tracked", "retargeted") and not k.startswith("face_found")]
        metrics = {k: _mean(v.get(k) for v in views) for k in keys}
        metrics["frames_scored"] = float(len(views))
        metrics["track_fail_rate"] = 1.0 - float(np.mean([v["tracked"] for v in views]))
        metrics["animated"] = 1.0 if self.animates(avatar) else 0.0
        for m in ctx.identity.available:
            metrics[f"face_detect_fail_rate_{_short(m)}"] = _fail_rate(v.get(f"face_found_{_short(m)}") for v in views)
        if not self.animates(avatar):
            notes = [f"method {avatar.info.id!r} cannot animate: every frame is scored at the source frame's pose "
                     "(animated = 0)"] + notes
        notes.append(f"{len(views)} frame(s) scored; tracker (dlib 68) lost the face in "
                     f"{sum(not v['tracked'] for v in views)} (render or frame): no AKD-68/AED/APD there")
        return Output(metrics, views, images=images, notes=list(dict.fromkeys(notes)))


class CrossReenactment(SelfReenactment):
    """Cross-reenactment: the avatar of one clip's source frame driven by another clip's target frames
    (the dataset's pairing: the next subject, cyclic). No ground truth exists, so: CSIM to the *source*
    frame (identity kept), AED/APD to the *driver* frame (expression and pose transferred), measured by
    evaluation.tracker. The render is compared at the source's compared size; AED/APD are scale-free."""
    id, version = "cross-reenactment", "1"
    description = ("source frame of one clip -> avatar; driven by the sampled frames of the next clip (cyclic): "
                   "CSIM to the source frame, AED/APD to the driver frame (dlib tracker); non-animatable methods "
                   "scored at the source pose (animated = 0)")
    primary = ("csim_dlib", "aed", "apd")
    SHOWN = "driver"

    def applicable(self, dataset):
        if not dataset.has_frames:
            return f"dataset {dataset.id!r} has no video frames"
        return None if len(dataset.subject_ids) >= 2 else f"dataset {dataset.id!r} has one subject: no driver"

    def run(self, avatar, subject, ctx):
        if subject.driver_loader is None:
            return Output({}, [], status="failed", reason="the dataset gives this subject no driver")
        driver = subject.driver_loader()
        if len(driver.frames) < 2:
            return Output({}, [], status="failed", reason=f"driver {driver.id!r} has fewer than 2 frames")
        return self.reenact(avatar, subject, driver, ctx, [f"driven by subject {driver.id!r}"])

    @staticmethod
    def view_name(driver, frame_id: int) -> str:
        return f"{driver.id}_frame{frame_id:05d}"

    def score(self, rgb, frame, wh, source, ctx):
        """CSIM to the source; AED/APD to the driver frame, taken at its own compared size."""
        drv = resize_image(frame, fit_size(frame.shape[1], frame.shape[0], ctx.settings.size))
        tm, tracked = self.tracker_metrics(ctx, rgb, drv, ("aed", "apd"))
        return {**ctx.identity.scores(rgb, source), **tm}, tracked, to_float(drv)
