"""Command line of the evaluation hub.

    python -m evaluation run --methods ours,billboard|all --dataset portraits-bundled \\
        --protocol input-view,sweep-360 --out results/ [--force] [--size 256] \\
        [--engine local|ray|serial] [--workers N] [--address auto|ray://HOST:10001]
    python -m evaluation leaderboard --results results/ --format markdown|csv|html|latex [--out FILE]
    python -m evaluation dashboard --results results/ --out dashboard.html
    python -m evaluation score-external --predictions DIR --dataset portraits-bundled --out results/
    python -m evaluation datasets            (list dataset ids and what each supports)
    python -m evaluation make-clips --out DIR  (SYNTHETIC talking-head clips for videos:DIR, tests and CI)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _engine_args(args) -> dict:
    if args.address and args.engine != "ray":
        raise ValueError("--address needs --engine ray")
    return {"engine": args.engine, "workers": args.workers, "address": args.address}


def _run(args) -> int:
    from baselines.registry import resolve_ids
    from evaluation.datasets import load_dataset
    from evaluation.protocols import Settings, resolve_protocols, run_evaluation
    methods = resolve_ids(args.methods)
    protocols = resolve_protocols(args.protocol)
    dataset = load_dataset(args.dataset, cache_dir=args.cache)
    settings = Settings(size=args.size, lpips_nets=tuple(n for n in args.lpips.split(",") if n and n != "none"))
    t = time.perf_counter()
    written = run_evaluation(methods, dataset, protocols, args.out, force=args.force, settings=settings,
                             progress=not args.quiet, strict=args.strict, **_engine_args(args))
    print(f"wrote {len(written)} result file(s) under {args.out} in {time.perf_counter() - t:.1f} s "
          f"({dataset.label}; {', '.join(methods)}; {', '.join(protocols)})")
    _print_means(args.out, dataset, methods, protocols)
    return 0


def _print_means(out, dataset, methods, protocols) -> None:
    """Per method x protocol: subjects ok, frames scored (reenactment protocols) and each metric's mean
    over the subjects with a value (from the result files)."""
    import numpy as np

    from evaluation import results as R
    for pid in protocols:
        for mid in methods:
            d = R.result_dir(out, dataset.slug, pid, mid)
            rs = [R.load_result(p) for p in sorted(d.glob("*.json")) if p.name != R.SUMMARY_NAME] if d.is_dir() else []
            ok = [r for r in rs if r["status"] == "ok"]
            if not ok:
                continue
            keys = list(dict.fromkeys(k for r in ok for k in r["metrics"]))
            means = {k: np.mean([r["metrics"][k] for r in ok if r["metrics"].get(k) is not None] or [np.nan]) for k in keys}
            frames = int(sum(r["metrics"].get("frames_scored") or 0 for r in ok))
            head = f"[{pid}] {mid}: {len(ok)}/{len(dataset.subject_ids)} subject(s) ok"
            head += f", {frames} frame(s) scored" if frames else ""
            print(head + "; means: " + ", ".join(f"{k}={v:.4g}" for k, v in means.items() if k != "frames_scored"))


def _score_external(args) -> int:
    from evaluation.datasets import load_dataset
    from evaluation.protocols import Settings, resolve_protocols, run_evaluation
    try:
        from baselines.external import load_predictions
    except ImportError as e:
        print(f"external predictions are not supported by this checkout: {e}", file=sys.stderr)
        return 2
    method = load_predictions(args.predictions)
    protocols = resolve_protocols(args.protocol)
    dataset = load_dataset(args.dataset, cache_dir=args.cache)
    written = run_evaluation([method.info.id], dataset, protocols, args.out, force=args.force,
                             settings=Settings(size=args.size), methods={method.info.id: method},
                             progress=not args.quiet, strict=args.strict, **_engine_args(args))
    print(f"wrote {len(written)} result file(s) for external method {method.info.id!r} under {args.out}")
    return 0


def _leaderboard(args) -> int:
    from evaluation.leaderboard import render_all
    text = render_all(args.results, args.format)
    if args.out:
        from evaluation.results import atomic_write_bytes
        atomic_write_bytes(args.out, text.encode("utf-8"), force=True)
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


def _dashboard(args) -> int:
    from evaluation.dashboard import write
    path = write(args.results, args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def _datasets(args) -> int:
    from evaluation.datasets import BUNDLED
    print("portraits-bundled   real photos shipped by installed packages: " + ", ".join(BUNDLED))
    print("portraits-group     six real faces cropped from insightface's test group photo (input-view, sweep-360)")
    print("portraits:<folder>  every image in a folder (input-view, sweep-360)")
    print("multiview:<folder>  ground-truth cameras/views/frames (all protocols; format in evaluation/datasets.py)")
    print("synthetic           SYNTHETIC multi-view + video set generated by the project (all protocols)")
    print("videos:<folder>     talking-head clips, one face each (reenactment, self-reenactment, cross-reenactment)")
    print("nersemble:<folder>  NeRSemble benchmark layout via its toolkit (multiview-gt; pip install -r "
          "requirements-nersemble.txt)")
    return 0


def _make_clips(args) -> int:
    from evaluation.datasets import load_dataset
    from evaluation.videos import synthetic_clips
    paths = synthetic_clips(args.out, load_dataset("synthetic", cache_dir=args.cache), fps=args.fps)
    print(f"wrote {len(paths)} SYNTHETIC clip(s) under {args.out} (score them with --dataset videos:{args.out})")
    return 0


def main(argv=None) -> int:
    from evaluation.results import ResultError
    p = argparse.ArgumentParser(prog="python -m evaluation", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def common_run(sp):
        sp.add_argument("--dataset", required=True, help="portraits-bundled | portraits-group | synthetic | portraits:<dir> | "
                                                          "multiview:<dir> | videos:<dir> | nersemble:<dir>")
        sp.add_argument("--protocol", default="input-view,sweep-360",
                        help="comma-separated: input-view, sweep-360, multiview-gt, reenactment, self-reenactment, "
                             "cross-reenactment, or all")
        sp.add_argument("--out", required=True, type=Path, help="results folder")
        sp.add_argument("--force", action="store_true", help="recompute and overwrite existing results")
        sp.add_argument("--size", type=int, default=256, help="rendered/compared image side in px")
        sp.add_argument("--cache", type=Path, default=None, help="cache folder for generated datasets")
        sp.add_argument("--strict", action="store_true", help="stop on the first error instead of recording it")
        sp.add_argument("--quiet", action="store_true", help="no progress bar")
        sp.add_argument("--engine", default="local", choices=("local", "ray", "serial"),
                        help="local: a process pool over this machine's cores (default); ray: Ray tasks on a "
                             "cluster (--address) or a local Ray started for the run; serial: one process")
        sp.add_argument("--workers", type=int, default=None,
                        help="worker processes (local) or concurrent tasks (ray); default: the cores available")
        sp.add_argument("--address", default=None,
                        help="Ray cluster to join: 'auto' (this node belongs to it) or ray://HOST:10001")

    r = sub.add_parser("run", help="evaluate methods")
    r.add_argument("--methods", default="all", help="comma-separated method ids, or all")
    r.add_argument("--lpips", default="alex,vgg", help="LPIPS backbones (alex, vgg), or none (no LPIPS)")
    common_run(r)
    r.set_defaults(fn=_run)

    e = sub.add_parser("score-external", help="score a folder of predictions made elsewhere")
    e.add_argument("--predictions", required=True, type=Path)
    common_run(e)
    e.set_defaults(fn=_score_external)

    lb = sub.add_parser("leaderboard", help="tables from a results folder")
    lb.add_argument("--results", required=True, type=Path)
    lb.add_argument("--format", default="markdown", choices=("markdown", "csv", "html", "latex"))
    lb.add_argument("--out", type=Path, default=None)
    lb.set_defaults(fn=_leaderboard)

    d = sub.add_parser("dashboard", help="one standalone HTML dashboard")
    d.add_argument("--results", required=True, type=Path)
    d.add_argument("--out", required=True, type=Path)
    d.set_defaults(fn=_dashboard)

    ds = sub.add_parser("datasets", help="list dataset ids")
    ds.set_defaults(fn=_datasets)

    mc = sub.add_parser("make-clips", help="write SYNTHETIC talking-head clips (tests, CI) for videos:<folder>")
    mc.add_argument("--out", required=True, type=Path)
    mc.add_argument("--fps", type=int, default=25)
    mc.add_argument("--cache", type=Path, default=None)
    mc.set_defaults(fn=_make_clips)

    args = p.parse_args(argv)
    from evaluation.protocols import MethodLoadError
    try:
        return args.fn(args)
    except MethodLoadError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (ResultError, ValueError, FileExistsError) as err:  # user-facing: bad ids, folders, files
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # finished results are on disk; the same command resumes (keep/stale rule)
        print("interrupted: finished results are kept; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
