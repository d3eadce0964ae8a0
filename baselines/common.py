"""What the image-space baselines share: fitting the head (for the camera and depth) and lifting
pixels to camera-facing Gaussians."""
from __future__ import annotations

import numpy as np

from model.core.camera import Camera
from model.core.gaussians import Gaussians, rotmat_to_quat
from model.core.image_io import load_image, to_float
from model.head.ict_fit import fit
from model.head.ict_fit import HeadFit
from model.head.landmarks import detect_landmarks
from model.head.rig import deform
from model.head.segmentation import person_mask
from model.head.template import TEMPLATE_VERSION

MAX_GAUSSIANS = 150_000  # pixel grid stride is chosen to stay under this
# in the parameters of every baseline that stands on fit_photo: a new template changes its output, so
# its stored results must read as stale (evaluation compares a method's version and parameters)
FIT_PARAMETERS = {"template_version": TEMPLATE_VERSION}


def fit_photo(image) -> tuple[np.ndarray, HeadFit, np.ndarray, np.ndarray]:
    """image -> (RGB uint8 [H,W,3], fitted head, head vertices [V,3] world, person mask [H,W] in [0,1])."""
    image = load_image(image)
    fitted = fit(image, landmarks=detect_landmarks(image))
    return image, fitted, deform(fitted, None), person_mask(image)


def lift_pixels(image: np.ndarray, mask: np.ndarray, depth: np.ndarray, camera: Camera) -> Gaussians:
    """One camera-facing disc Gaussian per masked pixel (on a stride grid), at `depth` [H,W] metres.

    Each disc's in-plane sigma is half the grid step's footprint at its depth, so neighbours
    tile the image seamlessly from the input view; it is 10x thinner along the viewing ray.
    """
    h, w = mask.shape
    stride = max(1, int(np.ceil(np.sqrt(mask.sum() / MAX_GAUSSIANS))))
    ys, xs = np.mgrid[0:h:stride, 0:w:stride]
    keep = mask[ys, xs]
    ys, xs = ys[keep], xs[keep]
    z = depth[ys, xs]
    means = camera.unproject(np.stack([xs, ys], 1), z)
    sigma = 0.5 * stride * z / camera.fx
    scales = np.stack([sigma, sigma, 0.1 * sigma], 1)
    # Gaussian axes = camera axes, so the disc faces the camera
    quat = rotmat_to_quat(camera.R.T[None])[0]
    rgb = to_float(image[ys, xs])
    return Gaussians.from_rgb(means, np.tile(quat, (len(means), 1)), scales, np.full(len(means), 0.999), rgb)
