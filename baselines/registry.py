"""The method registry: every method the hub can run, importable without heavy dependencies.

Built-in methods are listed below; third-party packages add theirs through the entry-point group
`headsplat.methods`, each entry point resolving to a `MethodSpec` (or a list of them). A spec names
its implementation lazily as "module:Class", so listing methods imports no model code.
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import asdict, dataclass
from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "headsplat.methods"


@dataclass(frozen=True)
class MethodSpec:
    id: str
    name: str
    description: str
    target: str  # "package.module:Class", a model.interface.Method subclass taking keyword options
    animatable: bool
    link: str = ""
    license: str = ""
    kind: str = "baseline"  # "ours" | "ablation" | "baseline" | "external"
    options: tuple = ()  # ((name, value), ...) passed to the class, for ablations of one class

    def to_dict(self) -> dict:
        d = asdict(self)
        d["options"] = dict(self.options)
        return d

    def load(self):
        """Instantiate the method (imports its module now)."""
        module, _, cls = self.target.partition(":")
        if not module or not cls:
            raise ValueError(f"method {self.id!r}: target {self.target!r} is not 'module:Class'")
        try:
            klass = getattr(importlib.import_module(module), cls)
        except (ImportError, AttributeError) as e:
            raise ImportError(f"method {self.id!r}: cannot load {self.target!r}: {e}") from e
        return klass(**dict(self.options))


BUILTIN: tuple[MethodSpec, ...] = (
    MethodSpec("ours", "HeadSplat (ours)",
               "UV-space Gaussians on the fitted ICT-FaceKit head; symmetric UV fusion; full-head prior completion",
               "model.ours.avatar:HeadSplat", animatable=True, kind="ours", license="Apache-2.0"),
    MethodSpec("ours-no-symmetry", "Ours w/o symmetric fusion",
               "ablation: unseen texels are not filled from their mirror texel (prior only)",
               "model.ours.avatar:HeadSplat", animatable=True, kind="ablation", license="Apache-2.0",
               options=(("symmetry", False),)),
    MethodSpec("ours-no-prior", "Ours w/o full-head prior",
               "ablation: no hair/skin completion of the unseen head; texels the photo and its mirror miss stay empty",
               "model.ours.avatar:HeadSplat", animatable=True, kind="ablation", license="Apache-2.0",
               options=(("prior", False),)),
    MethodSpec("billboard", "Billboard", "the photo on a plane at the head's depth (what a 2D method gives when rotated)",
               "baselines.billboard:Billboard", animatable=False, license="Apache-2.0"),
    MethodSpec("depth-lift", "Depth lift",
               "one Gaussian per foreground pixel lifted by the fitted template's depth, no completion",
               "baselines.depth_lift:DepthLift", animatable=False, license="Apache-2.0"),
    MethodSpec("template-texture", "Template + projected texture",
               "fitted template with the photo projected as texture only: no symmetric fusion, no prior",
               "baselines.template_texture:TemplateTexture", animatable=True, license="Apache-2.0"),
    MethodSpec("lam-import", "LAM (imported package)",
               "LAM avatar packages made elsewhere for a dataset's photos (folder format in baselines/lam.py; "
               "HEADSPLAT_LAM_PACKAGES=DIR), aligned to each photo by our landmark fit, animated by ARKit weights",
               "baselines.lam:LamImport", animatable=True, kind="external", link="https://github.com/aigc3d/LAM",
               license="Apache-2.0"),
)


def _entry_point_specs() -> list[MethodSpec]:
    specs = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        for spec in obj if isinstance(obj, (list, tuple)) else [obj]:
            if not isinstance(spec, MethodSpec):
                raise TypeError(f"entry point {ep.name!r} in {ENTRY_POINT_GROUP!r} gave {type(spec).__name__}, "
                                f"not a MethodSpec")
            specs.append(spec)
    return specs


def list_methods() -> list[MethodSpec]:
    """Built-in then third-party specs; duplicate ids are an error."""
    specs, seen = [], {}
    for spec in (*BUILTIN, *_entry_point_specs()):
        if spec.id in seen:
            raise ValueError(f"duplicate method id {spec.id!r} ({seen[spec.id]} and {spec.target})")
        seen[spec.id] = spec.target
        specs.append(spec)
    return specs


def get_spec(method_id: str) -> MethodSpec:
    specs = {s.id: s for s in list_methods()}
    if method_id not in specs:
        close = difflib.get_close_matches(method_id, specs, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown method {method_id!r}{hint} Known: {', '.join(specs)}")
    return specs[method_id]


def get_method(method_id: str):
    """An instance of the registered method (model.interface.Method)."""
    return get_spec(method_id).load()


def resolve_ids(text: str) -> list[str]:
    """'all' or a comma-separated list -> validated ids, in order, without repeats."""
    if text.strip() == "all":
        return [s.id for s in list_methods()]
    ids = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not ids:
        raise ValueError("no method ids given")
    for i in ids:
        get_spec(i)
    return ids
