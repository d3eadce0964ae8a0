"""One standalone HTML dashboard of a results folder (plotly.js inlined once; works offline).

Per dataset x protocol: a bar per method and metric (the mean when coverage is complete, with the
standard deviation over subjects as error bar) and every subject's value as a point (the spread,
shown even when coverage is incomplete); for sweep-360, identity and hole fraction against yaw
(mean over subjects per yaw); and the same views of each method side by side, from the JPEG
thumbnails `run` saved, embedded as data URIs. Synthetic datasets are labelled SYNTHETIC in titles. Published numbers (results kind "reported") are
drawn as red diamonds labelled "(reported, <dataset> <px>)", never as bars, and listed below the table's
measured rows with the paper and table they come from.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np


def _img_tag(path: Path, title: str) -> str:
    if not path.is_file():
        return "<td class='missing'>missing</td>"
    b64 = base64.b64encode(path.read_bytes()).decode()
    return f"<td><img src='data:image/jpeg;base64,{b64}' title='{html.escape(title)}'></td>"


def metric_bars(results, metrics):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from evaluation.protocols import higher_is_better
    from evaluation.results import aggregate, is_reported
    by_method = {}
    reported = [r for r in results if is_reported(r)]
    for r in results:
        if not is_reported(r):
            by_method.setdefault(r["method"]["id"], []).append(r)
    cols = min(3, len(metrics))
    rows = -(-len(metrics) // cols)
    titles = [f"{m} {'↑' if higher_is_better(m) else '↓' if higher_is_better(m) is False else ''}" for m in metrics]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles)
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    aggs = {mid: aggregate(rs) for mid, rs in by_method.items()}  # once per method, not per metric
    for i, m in enumerate(metrics):
        rr, cc = i // cols + 1, i % cols + 1
        for j, (mid, agg) in enumerate(aggs.items()):
            a = agg["metrics"].get(m)
            label = f"{mid} ({agg['coverage']['label']})"
            color = palette[j % len(palette)]
            if a is not None and a["mean"] is not None:
                fig.add_trace(go.Bar(x=[label], y=[a["mean"]], error_y={"type": "data", "array": [a["std"]]},
                                     marker_color=color, name=mid, showlegend=False), row=rr, col=cc)
            if a is not None:
                subj = [s for s, v in a["values"].items() if v is not None]
                fig.add_trace(go.Scatter(x=[label] * len(subj), y=[a["values"][s] for s in subj], mode="markers",
                                         marker={"color": "black", "size": 6, "symbol": "circle-open"},
                                         text=subj, hovertemplate="%{text}: %{y:.4g}<extra></extra>",
                                         showlegend=False), row=rr, col=cc)
        for r in reported:  # published numbers: a red diamond beside the bars, never a bar (not ranked)
            v = r["metrics"].get(m)
            if v is not None:
                label = f"{r['method']['name']} (reported, {r['dataset']['name']} {r['resolution']}px)"
                fig.add_trace(go.Scatter(x=[label], y=[v], mode="markers", name=f"{r['method']['id']} (reported)",
                                         marker={"color": "#d62728", "size": 11, "symbol": "diamond"},
                                         hovertemplate=f"{label}: %{{y:.4g}} ({r['source']['paper']}, "
                                                       f"{r['source']['table']})<extra></extra>",
                                         showlegend=False), row=rr, col=cc)
    fig.update_layout(height=300 * rows, margin={"t": 40, "b": 30, "l": 40, "r": 20}, barmode="group")
    return fig


def yaw_curves(results):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    keys = sorted({k for r in results if r["status"] == "ok" for k in r.get("curves", {})
                   if k.startswith("csim_")}) + ["hole_fraction"]
    fig = make_subplots(rows=1, cols=len(keys), subplot_titles=[f"{k} vs yaw" for k in keys])
    by_method = {}
    for r in results:
        if r["status"] == "ok" and r.get("curves"):
            by_method.setdefault(r["method"]["id"], []).append(r["curves"])
    for ci, k in enumerate(keys, start=1):
        for mid, curves in by_method.items():
            yaw = curves[0]["yaw_deg"]
            vals = np.array([[np.nan if v is None else v for v in c.get(k, [None] * len(yaw))] for c in curves],
                            dtype=float)
            mean = [None if np.isnan(col).all() else float(np.nanmean(col)) for col in vals.T]
            fig.add_trace(go.Scatter(x=yaw, y=mean, mode="lines+markers", name=mid, legendgroup=mid,
                                     showlegend=ci == 1, connectgaps=False), row=1, col=ci)
        fig.update_xaxes(title_text="yaw (deg)", tickvals=list(range(-180, 181, 45)), row=1, col=ci)
    fig.update_layout(height=360, margin={"t": 40, "b": 40, "l": 40, "r": 20})
    return fig


def group_view(results: list[dict]):
    """(display table, bar chart, yaw chart or None) of one dataset x protocol group: what the app's
    leaderboard tab shows."""
    from evaluation.leaderboard import display_frame, leaderboard
    from evaluation.protocols import PROTOCOLS
    df = display_frame(leaderboard(results)).reset_index()
    proto = PROTOCOLS.get(results[0]["protocol"]["id"])
    present = list(dict.fromkeys(k for r in results for k in r["metrics"]))
    metrics = [m for m in proto.primary if m in present] if proto else present[:9]
    bars = metric_bars(results, metrics) if metrics else None
    has_curves = any(r.get("curves") for r in results if r["status"] == "ok")
    yaw = yaw_curves(results) if has_curves else None
    return df.round(4), bars, yaw


def _thumb_table(results, root: Path) -> str:
    by_subject = {}
    for r in results:
        if r.get("thumbnails") and r["kind"] == "result":
            by_subject.setdefault(r["subject"], {})[r["method"]["id"]] = r["thumbnails"]
    parts = []
    for sid, per_method in sorted(by_subject.items()):
        views = list(dict.fromkeys(v for th in per_method.values() for v in th))
        head = "".join(f"<th>{html.escape(v)}</th>" for v in views)
        rows = []
        for mid, th in per_method.items():
            cells = "".join(_img_tag(root / th[v], f"{mid} {v}") if v in th else "<td>–</td>" for v in views)
            rows.append(f"<tr><th>{html.escape(mid)}</th>{cells}</tr>")
        parts.append(f"<h4>{html.escape(sid)}</h4><table class='thumbs'><tr><th></th>{head}</tr>{''.join(rows)}</table>")
    return "".join(parts)


def build(results_dir: str | Path) -> str:
    """The dashboard's HTML text."""
    import plotly.io as pio

    from evaluation.leaderboard import groups, leaderboard, render, title
    from evaluation.protocols import PROTOCOLS
    from evaluation.results import ResultError, load_results
    root = Path(results_dir)
    results = load_results(root)
    if not results:
        raise ResultError(f"{root}: no result files")
    body, first = [], True
    for rs in groups(results).values():
        t = title(rs)
        body.append(f"<section><h2>{html.escape(t)}</h2>")
        df = leaderboard(rs)
        body.append(render(df, "html"))
        proto = PROTOCOLS.get(rs[0]["protocol"]["id"])
        present = list(dict.fromkeys(k for r in rs for k in r["metrics"]))
        metrics = [m for m in proto.primary if m in present] if proto else present[:9]
        if metrics:
            body.append(pio.to_html(metric_bars(rs, metrics), include_plotlyjs=first, full_html=False))
            first = False
        if rs[0]["protocol"]["id"] == "sweep-360" and any(r.get("curves") for r in rs):
            body.append(pio.to_html(yaw_curves(rs), include_plotlyjs=first, full_html=False))
            first = False
        body.append(_thumb_table(rs, root))
        body.append("</section>")
    style = ("body{font-family:sans-serif;margin:20px} table.leaderboard{border-collapse:collapse;font-size:13px}"
             "table.leaderboard td,table.leaderboard th{padding:3px 8px;border-bottom:1px solid #ddd}"
             "table.thumbs img{width:112px;display:block} table.thumbs th{font-size:12px;font-weight:normal}"
             "section{margin-bottom:40px}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>HeadSplat evaluation</title>"
            f"<style>{style}</style></head><body><h1>HeadSplat evaluation</h1>"
            f"<p>results: {html.escape(str(root.resolve()))}</p>{''.join(body)}</body></html>")


def write(results_dir: str | Path, out: str | Path) -> Path:
    from evaluation.results import atomic_write_bytes
    return atomic_write_bytes(out, build(results_dir).encode("utf-8"), force=True)
