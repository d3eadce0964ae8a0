"""Leaderboard aggregation: complete rows only get averages, coverage, ranks by direction, formats."""
import math

import numpy as np
import pandas as pd
import pytest

from evaluation import leaderboard as L
from evaluation import results as R
from tests.helpers import make_result

SUBJECTS = ("a", "b", "c")


def _results():
    out = []
    for subject, (p1, l1) in zip(SUBJECTS, [(20.0, 0.30), (22.0, 0.20), (24.0, 0.10)]):
        out.append(make_result(subject, SUBJECTS, "good", {"psnr_masked": p1 + 5, "lpips_alex_masked": l1 / 2}))
        out.append(make_result(subject, SUBJECTS, "okay", {"psnr_masked": p1, "lpips_alex_masked": l1}))
    # "partial" misses subject c and fails on b: no average, coverage 1/3
    out.append(make_result("a", SUBJECTS, "partial", {"psnr_masked": 99.0, "lpips_alex_masked": 0.0}))
    out.append(make_result("b", SUBJECTS, "partial", {}, status="failed", reason="reconstruct: InputError: no face"))
    # a protocol that does not apply to a method is 'skipped', not a failure
    for subject in SUBJECTS:
        out.append(make_result(subject, SUBJECTS, "static", {}, status="skipped", reason="skipped: not animatable"))
    return out


def test_missing_subject_gets_no_average_but_coverage():
    df = L.leaderboard(_results())
    assert df.loc["good", "coverage"] == "3/3" and df.loc["partial", "coverage"] == "1/3"
    assert math.isnan(df.loc["partial", "psnr_masked"])  # its 99 dB on one subject must not win
    assert df.loc["okay", "psnr_masked"] == pytest.approx(22.0)
    assert df.loc["good", "lpips_alex_masked"] == pytest.approx(0.1)
    assert df.loc["partial", "failed"] == 1 and "no face" in df.loc["partial", "status"]
    assert df.loc["static", "status"] == "skipped: not animatable"


def test_ranks_follow_metric_direction():
    df = L.leaderboard(_results())
    assert df.loc["good", "rank_psnr_masked"] == 1 and df.loc["okay", "rank_psnr_masked"] == 2  # higher better
    assert df.loc["good", "rank_lpips_alex_masked"] == 1  # lower better
    assert list(df.index[:2]) == ["good", "okay"]
    assert math.isnan(df.loc["partial", "rank"])  # incomplete rows are not ranked


def test_aggregate_mean_and_std_against_numpy():
    rs = [r for r in _results() if r["method"]["id"] == "okay"]
    agg = R.aggregate(rs)
    vals = [20.0, 22.0, 24.0]
    assert agg["metrics"]["psnr_masked"]["mean"] == pytest.approx(np.mean(vals))
    assert agg["metrics"]["psnr_masked"]["std"] == pytest.approx(np.std(vals))


def test_different_manifests_are_never_mixed(tmp_path):
    rs = _results() + [make_result("a", SUBJECTS, "good", manifest="f" * 64)]
    assert len(L.groups(rs)) == 2
    with pytest.raises(ValueError, match="one dataset x protocol"):
        L.leaderboard(rs)


def test_formats_from_a_results_folder(tmp_path):
    for r in _results():
        R.write_result(R.result_path(tmp_path, "ds", "input-view", r["method"]["id"], r["subject"]), r)
    md = L.render_all(tmp_path, "markdown")
    assert "| good |" in md and "1/3" in md and "psnr_masked ↑" in md and "lpips_alex_masked ↓" in md
    header = md.splitlines()[2]
    rows = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert all(ln.count("|") == header.count("|") for ln in rows)  # a well-formed table
    csv = L.render_all(tmp_path, "csv")
    df = pd.read_csv(pd.io.common.StringIO(csv.split("\n", 1)[1]), index_col=0)
    assert df.loc["okay", "psnr_masked"] == pytest.approx(22.0)
    assert "<table" in L.render_all(tmp_path, "html")
    tex = L.render_all(tmp_path, "latex")
    assert "\\begin{tabular}" in tex and "$\\uparrow$" in tex
    with pytest.raises(ValueError, match="unknown format"):
        L.render_all(tmp_path, "xlsx")
