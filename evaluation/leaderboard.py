"""Leaderboards: one table per dataset x protocol from the result files, a row per method.

Rules (the same for the summary files, see `aggregate`):
- A method's mean of a metric is given only when every subject of the dataset has an "ok" result
  (complete coverage). Otherwise the row shows no means, only its coverage "k/n" and failures:
  an average over a different subset of subjects is not comparable.
- Results of different dataset manifests or protocol versions are never mixed: they form separate tables.
- Ranks (1 = best) per metric follow the metric's direction (evaluation.protocols.higher_is_better);
  "rank" is the mean of the per-metric ranks over the protocol's primary metrics, then ranked again.
- A protocol that does not apply to a method (e.g. reenactment of a non-animatable method) is listed
  as "skipped: <reason>", not as a failure.
- Published numbers (results kind "reported") are shown below the measured rows of every table of their
  protocol (or in a table of their own when nothing was measured under it), marked: index
  "<method> [reported]", column `source` = "reported" (measured rows: "measured"), status naming the
  paper, table, dataset and resolution. They get no rank, never change a rank, and never enter a mean:
  they come from other data, other resolutions, and sometimes other metric implementations.

Formats: markdown (written here: `tabulate`, which pandas needs for to_markdown, is not installed),
CSV, HTML and LaTeX (pandas).
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.results import aggregate, is_reported

FORMATS = ("markdown", "csv", "html", "latex")


REPORTED_MARK = "[reported]"


def group_key(r: dict) -> tuple:
    if is_reported(r):
        return (r["dataset"]["id"], "reported", r["protocol"]["id"], "reported")
    return (r["dataset"]["id"], r["dataset"]["manifest_sha256"], r["protocol"]["id"], r["protocol"]["version"])


def groups(results: list[dict]) -> dict[tuple, list[dict]]:
    """Measured results by dataset x manifest x protocol x version; the published numbers of a protocol are
    appended to each of its measured groups on real data (after the measured results; never beside
    synthetic data), or form their own group."""
    g = defaultdict(list)
    reported = defaultdict(list)
    for r in results:
        (reported[r["protocol"]["id"]] if is_reported(r) else g[group_key(r)]).append(r)
    for pid, rs in reported.items():
        hosts = [k for k in g if k[2] == pid and not g[k][0]["dataset"].get("synthetic")]
        for k in hosts:
            g[k].extend(rs)
        if not hosts:
            for r in rs:
                g[group_key(r)].append(r)
    return dict(sorted(g.items()))


def reported_row(r: dict) -> dict:
    """The table row of one published entry (never ranked)."""
    src, ds = r["source"], r["dataset"]
    verified = "" if src["verified"] else "; as quoted, not verified against the paper"
    return {"name": f"{r['method']['name']} {REPORTED_MARK}", "source": "reported", "version": "",
            "coverage": "reported", "failed": 0,
            "status": (f"reported, not ranked: {src['paper']}, {src['table']} ({ds['name']}, "
                       f"{r['resolution']} px){verified}"),
            **{k: (v if v is not None else np.nan) for k, v in r["metrics"].items()}}


def leaderboard(results: list[dict], metrics: list[str] | None = None) -> pd.DataFrame:
    """The table of one dataset x protocol group. Index: method id. Columns: name, coverage, failed,
    status, rank, then one column per metric (means; NaN when coverage is incomplete), then rank_<metric>."""
    from evaluation.protocols import PROTOCOLS, higher_is_better
    reported = [r for r in results if is_reported(r)]
    results = [r for r in results if not is_reported(r)] or reported[:1]
    keys = {group_key(r) for r in results}
    if len(keys) != 1:
        raise ValueError(f"leaderboard() needs results of one dataset x protocol, got {len(keys)} groups")
    if {r["protocol"]["id"] for r in reported} - {results[0]["protocol"]["id"]}:
        raise ValueError("leaderboard(): published numbers of another protocol than the table's")
    by_method = defaultdict(list)
    for r in results:
        if not is_reported(r):
            by_method[r["method"]["id"]].append(r)
    rows, all_metrics = {}, set()
    for mid, rs in by_method.items():
        agg = aggregate(rs)
        cov = agg["coverage"]
        if cov["skipped"] == cov["total"]:
            status = cov["skipped_reason"] or "skipped"
        elif cov["failed"]:
            status = f"{cov['failed']} failed: " + "; ".join(f"{s}: {why}" for s, why in cov["failures"].items())
        elif not cov["complete"]:
            status = "incomplete"
        else:
            status = "ok"
        if status == "ok" and all(r["metrics"].get("animated") == 0 for r in rs if r["status"] == "ok"):
            status = "ok (cannot animate: scored at the source frame's pose)"
        row = {"name": rs[0]["method"].get("name", mid), "source": "measured", "version": rs[0]["method"]["version"],
               "coverage": cov["label"], "failed": cov["failed"], "status": status}
        for k, a in agg["metrics"].items():
            row[k] = a["mean"] if a["mean"] is not None else np.nan
            all_metrics.add(k)
        rows[mid] = row
    proto = PROTOCOLS.get(results[0]["protocol"]["id"])
    rep_metrics = {k for r in reported for k in r["metrics"]}
    if metrics is None:
        primary = [m for m in (proto.primary if proto else ()) if m in all_metrics | rep_metrics]
        metrics = primary + sorted(all_metrics - set(primary)) + sorted(rep_metrics - all_metrics - set(primary))
    df = pd.DataFrame.from_dict(rows, orient="index") if rows else pd.DataFrame(
        columns=["name", "source", "version", "coverage", "failed", "status"])
    df.index.name = "method"
    for k in metrics:
        if k not in df:
            df[k] = np.nan
    rank_cols = []
    for k in metrics:
        hib = higher_is_better(k)
        if hib is None or df[k].isna().all():
            continue
        df[f"rank_{k}"] = df[k].rank(ascending=not hib, method="min")
        if proto is None or k in proto.primary:
            rank_cols.append(f"rank_{k}")
    if rank_cols:
        df["rank"] = df[rank_cols].mean(axis=1, skipna=False).rank(method="min")
    else:
        df["rank"] = np.nan
    ordered = ["name", "source", "version", "coverage", "failed", "rank", *metrics, "status"]
    df = df[ordered + [c for c in df.columns if c.startswith("rank_")]]
    df = df.sort_values(["rank", "name"], na_position="last")
    if reported:  # appended after ranking: they neither get nor move a rank
        rep = pd.DataFrame.from_dict({f"{r['method']['id']} {REPORTED_MARK}": reported_row(r) for r in reported},
                                     orient="index")
        rep = rep.reindex(columns=df.columns)
        df = rep if df.empty else pd.concat([df, rep])
        df.index.name = "method"
    return df


def title(results: list[dict]) -> str:
    measured = [r for r in results if not is_reported(r)]
    if not measured:
        r = results[0]
        return f"{r['dataset']['name']} · {r['protocol']['id']} · published numbers only (not measured here)"
    r = measured[0]
    ds = r["dataset"]
    label = ds.get("label") or ds["slug"]
    if ds.get("synthetic") and "SYNTHETIC" not in label:
        label += " (SYNTHETIC)"
    return (f"{label} · {r['protocol']['id']} v{r['protocol']['version']} · manifest {ds['manifest_sha256'][:10]} · "
            f"{len(ds['subjects'])} subject(s)")


def all_tables(results_dir: str | Path) -> list[tuple[str, pd.DataFrame]]:
    """(title, table) for every dataset x protocol group of the result files under results_dir."""
    from evaluation.results import ResultError, load_results
    results = load_results(results_dir)
    if not results:
        raise ResultError(f"{results_dir}: no result files")
    return [(title(rs), leaderboard(rs)) for rs in groups(results).values()]


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return "–"
        return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def display_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The table as shown: per-metric rank columns dropped, direction arrows in headers."""
    from evaluation.protocols import higher_is_better
    out = df[[c for c in df.columns if not c.startswith("rank_")]].copy()
    ren = {}
    for c in out.columns:
        hib = higher_is_better(c) if c not in ("rank", "failed") else None
        if hib is not None:
            ren[c] = f"{c} {'↑' if hib else '↓'}"
    return out.rename(columns=ren)


def to_markdown(df: pd.DataFrame) -> str:
    d = display_frame(df).reset_index()
    lines = ["| " + " | ".join(map(str, d.columns)) + " |",
             "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(d[c]) else "---" for c in d.columns) + "|"]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in d.itertuples(index=False)]
    return "\n".join(lines)


def render(df: pd.DataFrame, fmt: str) -> str:
    if fmt == "markdown":
        return to_markdown(df)
    if fmt == "csv":
        return df.to_csv(float_format="%.6g")
    d = display_frame(df)
    if fmt == "html":
        return d.to_html(float_format=lambda v: f"{v:.4g}", na_rep="–", classes="leaderboard", border=0)
    if fmt == "latex":
        tex = d.to_latex(float_format="%.4g", na_rep="--", escape=True)
        return tex.replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$").replace("–", "--")
    raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}")


def render_all(results_dir: str | Path, fmt: str = "markdown") -> str:
    parts = []
    for t, df in all_tables(results_dir):
        body = render(df, fmt)
        if fmt == "markdown":
            parts.append(f"### {t}\n\n{body}\n")
        elif fmt == "html":
            parts.append(f"<h3>{t}</h3>\n{body}")
        elif fmt == "latex":
            parts.append(f"% {t}\n{body}")
        else:
            parts.append(f"# {t}\n{body}")
    return "\n".join(parts)


def groups_in(results_dir: str | Path) -> dict[str, list[dict]]:
    """title -> result dicts of a results folder, one entry per dataset x protocol; {} when there are none."""
    from evaluation.results import load_results
    if not Path(results_dir).is_dir():
        return {}
    results = load_results(results_dir)
    return {title(rs): rs for rs in groups(results).values()} if results else {}


def metric_definitions() -> str:
    """Markdown table of every metric a leaderboard can show (the metric registry and the protocols' own)."""
    from evaluation import protocols
    from evaluation.metrics import METRICS
    rows = ["| metric | better | unit | definition | implementation |", "|---|---|---|---|---|"]
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    for k, m in METRICS.items():
        rows.append(f"| `{k}` | {'higher' if m.higher_is_better else 'lower'} | {m.unit or '–'} | "
                    f"{esc(m.description)} | {esc(m.implementation)} |")
    for k, (hib, desc) in protocols.EXTRA_METRICS.items():
        rows.append(f"| `{k}` | {'higher' if hib else 'lower'} | – | {esc(desc)} | {protocols.__name__} |")
    return "\n".join(rows)
