import pytest

from baselines import registry
from baselines.registry import MethodSpec, get_spec, list_methods, resolve_ids


def test_builtin_methods_are_listed_without_importing_model_code():
    ids = [s.id for s in list_methods()]
    assert {"ours", "ours-no-symmetry", "ours-no-prior", "billboard", "depth-lift", "template-texture"} <= set(ids)
    assert resolve_ids("all") == ids


def test_unknown_id_lists_known_ids_and_closest_match():
    with pytest.raises(ValueError) as e:
        get_spec("billbord")
    assert "did you mean 'billboard'" in str(e.value) and "depth-lift" in str(e.value)


class _EP:
    def __init__(self, name, obj):
        self.name, self._obj = name, obj

    def load(self):
        return self._obj


def test_third_party_methods_join_through_entry_points(monkeypatch):
    spec = MethodSpec("lam-ext", "LAM", "external", "json:JSONDecoder", animatable=False, kind="external")
    monkeypatch.setattr(registry, "entry_points", lambda group: [_EP("lam", spec)])
    assert get_spec("lam-ext") is spec
    assert spec.load().__class__.__name__ == "JSONDecoder"


def test_duplicate_ids_and_bad_entry_points_are_errors(monkeypatch):
    dup = MethodSpec("ours", "Imposter", "x", "json:JSONDecoder", animatable=False)
    monkeypatch.setattr(registry, "entry_points", lambda group: [_EP("dup", dup)])
    with pytest.raises(ValueError, match="duplicate method id 'ours'"):
        list_methods()
    monkeypatch.setattr(registry, "entry_points", lambda group: [_EP("bad", object())])
    with pytest.raises(TypeError, match="not a MethodSpec"):
        list_methods()


def test_bad_target_is_reported_with_the_method_id():
    with pytest.raises(ImportError, match="method 'x'"):
        MethodSpec("x", "X", "x", "no_such_module_xyz:Thing", animatable=False).load()


def test_methods_standing_on_the_template_record_its_version():
    """A result is stale when its method's version or config changed (evaluation.protocols._stale): every
    method whose output depends on the fitted template carries the template's version in its config,
    and template-texture (built from our method's code) our version, so a new template or a new ours
    does not leave their old results looking current."""
    from baselines.lam import LAM_INFO
    from evaluation.protocols import method_record
    from model.head.template import TEMPLATE_VERSION
    from model.ours.avatar import METHOD_VERSION
    for mid in ("ours", "ours-no-symmetry", "ours-no-prior", "template-texture", "depth-lift", "billboard"):
        spec = get_spec(mid)
        assert method_record(spec.load(), spec)["config"]["template_version"] == TEMPLATE_VERSION, mid
    spec = get_spec("template-texture")
    assert method_record(spec.load(), spec)["config"]["ours_version"] == METHOD_VERSION
    assert LAM_INFO.parameters["template_version"] == TEMPLATE_VERSION
