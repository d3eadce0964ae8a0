"""The classic morphable-model texture approach: the fitted template with the photo projected onto
it, and nothing else — no symmetric fusion, no hair volume, no completion (unseen texels are grey)."""
from __future__ import annotations

from model.interface import MethodInfo
from model.ours.avatar import METHOD_VERSION, HeadSplat


class TemplateTexture(HeadSplat):
    def __init__(self, uv_res: int = 256):
        super().__init__(symmetry=False, prior=False, uv_res=uv_res, unseen="grey")
        self.info = MethodInfo("template-texture", "Template + projected texture", "0.1.0",
                               "fitted template textured by projecting the photo; unseen texels grey",
                               animatable=True, license="Apache-2.0",
                               # ours' code makes it: a new version of ours makes its stored results stale
                               parameters={**self.info.parameters, "ours_version": METHOD_VERSION})
