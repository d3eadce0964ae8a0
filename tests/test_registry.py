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
