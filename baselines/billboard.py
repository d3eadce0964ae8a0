"""Billboard: the photo's person pixels on a plane at the head's depth, facing the input camera.
What any 2D method gives when you rotate it: perfect at yaw 0, edge-on at 90°."""
from __future__ import annotations

import numpy as np

from baselines.common import FIT_PARAMETERS, fit_photo, lift_pixels
from model.core.camera import head_extent
from model.interface import Method, MethodInfo, StaticGaussianAvatar


class Billboard(Method):
    info = MethodInfo("billboard", "Billboard", "0.1.0", "the photo on a plane at the head's depth",
                      animatable=False, license="Apache-2.0", parameters=dict(FIT_PARAMETERS))

    def reconstruct(self, image) -> StaticGaussianAvatar:
        image, fitted, vertices, person = fit_photo(image)
        cam = fitted.camera
        center, radius = head_extent(vertices)
        depth = np.full(person.shape, cam.to_camera(center[None])[0, 2])
        g = lift_pixels(image, person > 0.5, depth, cam)
        return StaticGaussianAvatar(self.info, g, cam, center, radius)
