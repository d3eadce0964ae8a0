"""Depth lift: every person pixel becomes a Gaussian at the fitted template's depth (extended to the
hair and shoulders by the nearest template depth). Nothing the photo does not show is added."""
from __future__ import annotations

from scipy.ndimage import distance_transform_edt

from baselines.common import FIT_PARAMETERS, fit_photo, lift_pixels
from model.core.camera import head_extent
from model.core.raster_mesh import rasterize_mesh
from model.interface import Method, MethodInfo, StaticGaussianAvatar


class DepthLift(Method):
    info = MethodInfo("depth-lift", "Depth lift", "0.1.0",
                      "one Gaussian per foreground pixel at the fitted template's depth, no completion",
                      animatable=False, license="Apache-2.0", parameters=dict(FIT_PARAMETERS))

    def reconstruct(self, image) -> StaticGaussianAvatar:
        image, fitted, vertices, person = fit_photo(image)
        cam = fitted.camera
        face_id, _, depth = rasterize_mesh(vertices, fitted.template.faces, cam)
        covered = face_id >= 0
        # outside the template (hair, shoulders): the depth of the nearest covered pixel
        _, (iy, ix) = distance_transform_edt(~covered, return_indices=True)
        depth = depth[iy, ix]
        center, radius = head_extent(vertices)
        g = lift_pixels(image, person > 0.5, depth, cam)
        return StaticGaussianAvatar(self.info, g, cam, center, radius)
