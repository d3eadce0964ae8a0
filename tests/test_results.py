"""Result files: schema round trip, atomic no-clobber writes, and clear rejection of bad files."""
import json

import numpy as np
import pytest

from evaluation import results as R
from tests.helpers import make_result


def test_round_trip_keeps_every_field(tmp_path):
    r = make_result()
    r["metrics"]["ssim"] = np.float32(0.5)  # numpy scalars are stored as plain numbers
    r["views"][0]["depth"] = np.arange(3.0)
    path = R.write_result(R.result_path(tmp_path, "ds", "input-view", "m1", "a"), r)
    back = R.load_result(path)
    assert back["metrics"] == {"psnr": 20.0, "lpips_alex": 0.2, "ssim": 0.5}
    assert back["views"][0]["depth"] == [0.0, 1.0, 2.0]
    for key in ("schema_version", "method", "dataset", "protocol", "environment", "seeds", "timings", "date",
                "template_version", "provenance"):
        assert key in back
    assert back["schema_version"] == R.SCHEMA_VERSION


def test_environment_records_git_packages_and_hardware():
    env = R.environment()
    assert set(env["git"]) == {"commit", "dirty"}
    assert env["packages"]["numpy"] == np.__version__
    assert env["hardware"]["cpu_count"] >= 1


def test_non_finite_metrics_become_null(tmp_path):
    r = make_result(metrics={"psnr": float("inf"), "ssim": float("nan")})
    back = R.load_result(R.write_result(tmp_path / "r.json", r))
    assert back["metrics"] == {"psnr": None, "ssim": None}


def test_existing_result_is_not_overwritten_without_force(tmp_path):
    p = R.write_result(tmp_path / "r.json", make_result(metrics={"psnr": 1.0}))
    with pytest.raises(FileExistsError, match="force"):
        R.write_result(p, make_result(metrics={"psnr": 2.0}))
    assert R.load_result(p)["metrics"]["psnr"] == 1.0
    R.write_result(p, make_result(metrics={"psnr": 2.0}), force=True)
    assert R.load_result(p)["metrics"]["psnr"] == 2.0
    assert [f.name for f in tmp_path.iterdir()] == ["r.json"]  # no temporary files left behind


def test_invalid_result_is_never_written(tmp_path):
    bad = make_result(metrics={"psnr": "high"})
    with pytest.raises(R.ResultError, match="metrics.psnr"):
        R.write_result(tmp_path / "r.json", bad)
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("schema"), "not a HeadSplat evaluation file"),
    (lambda d: d.update(schema_version=99), "schema_version 99 is not supported"),
    (lambda d: d.pop("dataset"), "missing field 'dataset'"),
    (lambda d: d["dataset"].pop("manifest_sha256"), "dataset.manifest_sha256"),
    (lambda d: d.update(status="great"), "status must be one of"),
    (lambda d: d.update(status="failed"), "needs a reason"),
    (lambda d: d.update(subject="zed"), "not in the dataset's subject list"),
    (lambda d: d["metrics"].update(psnr=True), "metrics.psnr"),
    (lambda d: d.update(views=[{"psnr": 1}]), "views\\[0\\]"),
    (lambda d: d.update(kind="other"), "kind must be"),
])
def test_loader_rejects_malformed_files_with_a_clear_error(tmp_path, mutate, message):
    d = make_result()
    mutate(d)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d))
    with pytest.raises(R.ResultError, match=message) as e:
        R.load_result(p)
    assert "bad.json" in str(e.value)


def test_loader_rejects_foreign_and_broken_json(tmp_path):
    (tmp_path / "foreign.json").write_text(json.dumps({"name": "package.json-like"}))
    with pytest.raises(R.ResultError, match="not a HeadSplat evaluation file"):
        R.load_result(tmp_path / "foreign.json")
    (tmp_path / "broken.json").write_text('{"schema": ')
    with pytest.raises(R.ResultError, match="not valid JSON"):
        R.load_result(tmp_path / "broken.json")
    (tmp_path / "nan.json").write_text(json.dumps(make_result()).replace("20.0", "NaN", 1))
    with pytest.raises(R.ResultError, match="NaN"):
        R.load_result(tmp_path / "nan.json")
    # a results folder with a foreign file is an error, not silently half-read
    folder = tmp_path / "results"
    R.write_result(folder / "ok.json", make_result())
    assert len(R.load_results(folder)) == 1
    (folder / "foreign.json").write_text(json.dumps({"name": "package.json-like"}))
    with pytest.raises(R.ResultError, match="foreign.json"):
        R.load_results(folder)


def test_summary_round_trip_and_complete_coverage_rule(tmp_path):
    a = make_result("a", metrics={"psnr": 10.0})
    b = make_result("b", metrics={"psnr": 20.0})
    s = R.summarize([a, b])
    assert s["metrics"]["psnr"]["mean"] == 15.0 and s["coverage"]["label"] == "2/2"
    back = R.load_result(R.write_result(tmp_path / "summary.json", s))
    assert back["kind"] == "summary"
    partial = R.summarize([a])
    assert partial["metrics"]["psnr"]["mean"] is None and partial["coverage"]["label"] == "1/2"
    with pytest.raises(ValueError, match="one method"):
        R.summarize([a, make_result("b", method="other")])


def test_result_path_is_file_name_safe(tmp_path):
    p = R.result_path(tmp_path, "portraits:/x/y", "input-view", "ours", "../etc")
    assert p.parent.parent.parent.parent == tmp_path
    assert ".." not in p.relative_to(tmp_path).as_posix().split("/")
