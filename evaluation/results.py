"""Result files of the evaluation: one JSON per method x dataset x protocol x subject, plus a summary.

Layout under a results folder (see `result_path`):

    <out>/<dataset slug>/<protocol>/<method>/<subject>.json     kind "result"
    <out>/<dataset slug>/<protocol>/<method>/summary.json        kind "summary" (aggregate of the above)
    <out>/<dataset slug>/<protocol>/<method>/thumbs/<subject>/<view>.jpg

A result carries everything needed to trust or reproduce its numbers: schema version, method
id/version/config, template version, dataset id + manifest hash, protocol id/version/config, metric
implementations and weight hashes, per-view raw values, git commit + dirty flag, package versions,
hardware, seeds, timings and date. Files are written atomically and never overwritten without
`force`; `load_result` rejects malformed or foreign files with a message naming the file and field.
(Validation is by hand: jsonschema is not installed here and the schema is small.)

Published numbers (kind "reported", e.g. results/reported/*.json): a method's metric values as a paper
states them, with the paper, link, table, dataset, protocol and resolution they come from. They are
context, not measurements: the leaderboard shows them below the measured rows of the same protocol with a
distinct marker, never ranks them and never mixes them into means (evaluation/leaderboard.py).

    {"schema": "headsplat-eval", "schema_version": 1, "kind": "reported", "status": "reported",
     "method": {"id", "name", "paper", "link"}, "dataset": {"id", "name", "synthetic": false},
     "protocol": {"id"}, "resolution": int px, "metrics": {name: number},
     "metric_notes": {name: str} (optional), "source": {"paper", "link", "table", "verified": bool,
     "quoted_from": str}, "notes": [str], "date": str}
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import re
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

SCHEMA = "headsplat-eval"
SCHEMA_VERSION = 1
STATUSES = ("ok", "failed", "skipped")  # failed: the method raised on this subject; skipped: protocol n/a
SUMMARY_NAME = "summary.json"
THUMBS_DIR = "thumbs"

# Packages whose versions can move a number (recorded in every result).
_PACKAGES = ("numpy", "scipy", "torch", "torchmetrics", "numba", "scikit-image", "opencv-python", "mediapipe",
             "dlib-bin", "insightface", "onnxruntime", "pillow", "gsplat", "pandas")


class ResultError(ValueError):
    """A result file that is malformed, foreign, or from an unsupported schema version."""


# ----------------------------------------------------------------------------------------- paths

def slug(text: str) -> str:
    """A file-name-safe form of an id (dataset ids may contain ':' and '/')."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._")
    return s or "_"


def result_dir(root: str | Path, dataset_slug: str, protocol: str, method: str) -> Path:
    return Path(root) / slug(dataset_slug) / slug(protocol) / slug(method)


def result_path(root: str | Path, dataset_slug: str, protocol: str, method: str, subject: str) -> Path:
    return result_dir(root, dataset_slug, protocol, method) / f"{slug(subject)}.json"


# ----------------------------------------------------------------------------------- environment

def git_state(repo: str | Path | None = None) -> dict:
    """{"commit": sha or None, "dirty": bool or None}: None when not a git checkout / no commit yet."""
    repo = Path(repo) if repo else Path(__file__).resolve().parent.parent

    def git(*args):
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=20)

    try:
        head = git("rev-parse", "--verify", "HEAD")
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    commit = head.stdout.strip() if head.returncode == 0 else None
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return {"commit": commit, "dirty": dirty}


def package_versions(names=_PACKAGES) -> dict:
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


def hardware() -> dict:
    info = {"machine": platform.machine(), "processor": platform.processor() or None,
            "cpu_count": os.cpu_count(), "system": platform.system(), "python": platform.python_version()}
    try:
        import torch
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["cuda"] = None
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        info["memory_gb"] = round(kb / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return info


def environment() -> dict:
    """What a run depends on beyond its inputs (computed once per run)."""
    return {"git": git_state(), "packages": package_versions(), "hardware": hardware()}


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def template_version() -> str | None:
    """model.head.template.TEMPLATE_VERSION when the template module is importable, else None."""
    try:
        from model.head.template import TEMPLATE_VERSION
    except Exception:  # noqa: BLE001 - any import problem means "no template version to record"
        return None
    return str(TEMPLATE_VERSION)


# ------------------------------------------------------------------------------------ validation

_NUM = (int, float)
# field -> (types, required). Types use JSON's: dict, list, str, number, bool, None.
_RESULT_FIELDS = {
    "schema": (str, True), "schema_version": (int, True), "kind": (str, True),
    "method": (dict, True), "dataset": (dict, True), "protocol": (dict, True), "subject": (str, True),
    "status": (str, True), "reason": ((str, type(None)), True),
    "metrics": (dict, True), "views": (list, True), "curves": (dict, False), "thumbnails": (dict, False),
    "template_version": ((str, type(None)), True), "provenance": (dict, True), "environment": (dict, True),
    "seeds": (dict, True), "timings": (dict, True), "date": (str, True), "notes": (list, False),
}
_SUMMARY_FIELDS = {
    "schema": (str, True), "schema_version": (int, True), "kind": (str, True),
    "method": (dict, True), "dataset": (dict, True), "protocol": (dict, True),
    "subjects": (list, True), "coverage": (dict, True), "metrics": (dict, True), "date": (str, True),
}
_REPORTED_FIELDS = {
    "schema": (str, True), "schema_version": (int, True), "kind": (str, True), "status": (str, True),
    "method": (dict, True), "dataset": (dict, True), "protocol": (dict, True), "resolution": (int, True),
    "metrics": (dict, True), "metric_notes": (dict, False), "source": (dict, True), "notes": (list, False),
    "date": (str, True),
}
_REPORTED_SUB = {
    "method": {"id": str, "name": str, "paper": str, "link": str},
    "dataset": {"id": str, "name": str, "synthetic": bool},
    "protocol": {"id": str},
    "source": {"paper": str, "link": str, "table": str, "verified": bool, "quoted_from": str},
}
_SUB = {
    "method": {"id": str, "version": str, "config": dict},
    "dataset": {"id": str, "slug": str, "manifest_sha256": str, "synthetic": bool, "subjects": list},
    "protocol": {"id": str, "version": str, "config": dict},
}


def _check_number_or_null(where: str, v):
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, _NUM) or (isinstance(v, float) and not math.isfinite(v)):
        raise ResultError(f"{where}: expected a finite number or null, got {v!r}")


def validate(d, source: str = "<result>") -> dict:
    """Check a result or summary dict against the schema; return it, or raise ResultError."""
    if not isinstance(d, dict):
        raise ResultError(f"{source}: not a JSON object")
    if d.get("schema") != SCHEMA:
        raise ResultError(f"{source}: not a HeadSplat evaluation file (schema {d.get('schema')!r}, "
                          f"expected {SCHEMA!r})")
    if d.get("schema_version") != SCHEMA_VERSION:
        raise ResultError(f"{source}: schema_version {d.get('schema_version')!r} is not supported "
                          f"(this code reads version {SCHEMA_VERSION})")
    kind = d.get("kind")
    if kind not in ("result", "summary", "reported"):
        raise ResultError(f"{source}: kind must be 'result', 'summary' or 'reported', got {kind!r}")
    if kind == "reported":
        return _validate_reported(d, source)
    spec = _RESULT_FIELDS if kind == "result" else _SUMMARY_FIELDS
    for name, (types, required) in spec.items():
        if name not in d:
            if required:
                raise ResultError(f"{source}: missing field {name!r}")
            continue
        allowed = types if isinstance(types, tuple) else (types,)
        if not isinstance(d[name], allowed) or (isinstance(d[name], bool) and bool not in allowed):
            raise ResultError(f"{source}: field {name!r} must be {getattr(types, '__name__', types)}, "
                              f"got {type(d[name]).__name__}")
    for name, sub in _SUB.items():
        for key, t in sub.items():
            if not isinstance(d[name].get(key), t):
                raise ResultError(f"{source}: {name}.{key} missing or not {t.__name__}")
    if kind == "result":
        if d["status"] not in STATUSES:
            raise ResultError(f"{source}: status must be one of {STATUSES}, got {d['status']!r}")
        if d["status"] != "ok" and not d["reason"]:
            raise ResultError(f"{source}: status {d['status']!r} needs a reason")
        for k, v in d["metrics"].items():
            _check_number_or_null(f"{source}: metrics.{k}", v)
        for i, view in enumerate(d["views"]):
            if not isinstance(view, dict) or not isinstance(view.get("view"), str):
                raise ResultError(f"{source}: views[{i}] must be an object with a 'view' name")
        if d["subject"] not in d["dataset"]["subjects"]:
            raise ResultError(f"{source}: subject {d['subject']!r} is not in the dataset's subject list")
    else:
        for k, agg in d["metrics"].items():
            if not isinstance(agg, dict):
                raise ResultError(f"{source}: metrics.{k} must be an object (mean/std/n)")
            for kk in ("mean", "std"):
                _check_number_or_null(f"{source}: metrics.{k}.{kk}", agg.get(kk))
    return d


def _validate_reported(d: dict, source: str) -> dict:
    for name, (types, required) in _REPORTED_FIELDS.items():
        if name not in d:
            if required:
                raise ResultError(f"{source}: missing field {name!r}")
            continue
        if not isinstance(d[name], types) or (isinstance(d[name], bool) and types is not bool):
            raise ResultError(f"{source}: field {name!r} must be {types.__name__}, got {type(d[name]).__name__}")
    for name, sub in _REPORTED_SUB.items():
        for key, t in sub.items():
            if not isinstance(d[name].get(key), t):
                raise ResultError(f"{source}: {name}.{key} missing or not {t.__name__}")
    if d["status"] != "reported":
        raise ResultError(f"{source}: a reported entry has status 'reported', got {d['status']!r}")
    if d["dataset"]["synthetic"]:
        raise ResultError(f"{source}: published numbers on synthetic data are not accepted")
    if not d["metrics"]:
        raise ResultError(f"{source}: no metric values")
    for k, v in d["metrics"].items():
        _check_number_or_null(f"{source}: metrics.{k}", v)
    return d


def is_reported(r: dict) -> bool:
    return r.get("kind") == "reported"


# -------------------------------------------------------------------------------------- file I/O

def _finite_or_none(obj):
    """JSON cannot hold NaN/inf: store them as null (a metric that could not be computed)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:  # numpy scalar
        return _finite_or_none(obj.item())
    if hasattr(obj, "tolist"):  # numpy array
        return _finite_or_none(obj.tolist())
    return obj


def as_stored(obj):
    """`obj` as a result file stores it (tuples become lists, NaN null): comparable with a loaded file."""
    return json.loads(json.dumps(_finite_or_none(obj)))


def atomic_write_bytes(path: str | Path, data: bytes, force: bool = False) -> Path:
    """Write via a temporary file in the same folder + os.replace, so readers never see half a file."""
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass force=True (CLI: --force) to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_result(path: str | Path, result: dict, force: bool = False) -> Path:
    """Validate then atomically write a result or summary. Existing files need force=True."""
    clean = _finite_or_none(result)
    validate(clean, str(path))
    data = json.dumps(clean, indent=1, sort_keys=False, allow_nan=False).encode()
    return atomic_write_bytes(path, data, force=force)


def load_result(path: str | Path) -> dict:
    """Read and validate one result or summary file; ResultError with the file name on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ResultError(f"{path}: cannot read ({e})") from None
    try:
        d = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ResultError(f"{path}: {c} in JSON")))
    except json.JSONDecodeError as e:
        raise ResultError(f"{path}: not valid JSON ({e})") from None
    return validate(d, str(path))


def iter_result_files(root: str | Path):
    """All *.json under a results folder, sorted (summaries included)."""
    root = Path(root)
    if not root.is_dir():
        raise ResultError(f"{root}: no such results folder")
    return sorted(p for p in root.rglob("*.json") if not p.name.startswith("."))


def load_results(root: str | Path, kind: str = "result", reported: bool = True) -> list[dict]:
    """Every file of `kind` under `root`, validated. A malformed or foreign .json is an error, not skipped:
    a leaderboard silently built from part of the files would be wrong without saying so.

    kind "result" also returns the published numbers (kind "reported") unless reported=False: the
    leaderboard places them (see evaluation.leaderboard); anything that averages results must skip
    them (results.is_reported)."""
    out = []
    for p in iter_result_files(root):
        d = load_result(p)
        if d["kind"] == kind or (kind == "result" and reported and d["kind"] == "reported"):
            d["_path"] = str(p)
            out.append(d)
    return out


# --------------------------------------------------------------------------------- construction

def new_result(*, method: dict, dataset: dict, protocol: dict, subject: str, status: str = "ok",
               reason: str | None = None, metrics: dict | None = None, views: list | None = None,
               curves: dict | None = None, thumbnails: dict | None = None, provenance: dict | None = None,
               environment_info: dict | None = None, seeds: dict | None = None, timings: dict | None = None,
               notes: list | None = None) -> dict:
    """A result dict in schema order (validated when written)."""
    return {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "kind": "result",
        "method": method, "dataset": dataset, "protocol": protocol, "subject": subject,
        "status": status, "reason": reason,
        "metrics": metrics or {}, "views": views or [], "curves": curves or {}, "thumbnails": thumbnails or {},
        "template_version": template_version(), "provenance": provenance or {},
        "environment": environment_info if environment_info is not None else environment(),
        "seeds": seeds or {}, "timings": timings or {}, "date": now_iso(), "notes": notes or [],
    }


def aggregate(results: list[dict]) -> dict:
    """Coverage and per-metric mean/std/n over the ok subjects of ONE method x dataset x protocol.

    mean/std are None unless every subject of the dataset has an ok result with that metric."""
    subjects = list(results[0]["dataset"]["subjects"])
    latest: dict[str, dict] = {}
    for r in results:  # one result per subject: the newest wins if a folder holds duplicates
        if r["subject"] not in latest or r["date"] > latest[r["subject"]]["date"]:
            latest[r["subject"]] = r
    ok = [r for r in latest.values() if r["status"] == "ok"]
    failed = [r for r in latest.values() if r["status"] == "failed"]
    skipped = [r for r in latest.values() if r["status"] == "skipped"]
    n = len(subjects)
    cov = {"ok": len(ok), "failed": len(failed), "skipped": len(skipped), "total": n,
           "label": f"{len(ok)}/{n}", "complete": len(ok) == n,
           "skipped_reason": skipped[0]["reason"] if skipped else None,
           "failures": {r["subject"]: r["reason"] for r in failed}}
    names = sorted({k for r in ok for k in r["metrics"]})
    metrics = {}
    for k in names:
        vals = [r["metrics"].get(k) for r in ok]
        vals = [v for v in vals if v is not None]
        complete = cov["complete"] and len(vals) == n
        metrics[k] = {"mean": float(np.mean(vals)) if complete else None,
                      "std": float(np.std(vals)) if complete else None,
                      "n": len(vals), "values": {r["subject"]: r["metrics"].get(k) for r in ok}}
    return {"coverage": cov, "metrics": metrics}


def summarize(results: list[dict]) -> dict:
    """Summary of one method x dataset x protocol: per-metric mean/std/n over subjects with status ok.

    The mean is given only when every subject of the dataset has an ok result (complete coverage),
    the same rule as the leaderboard (see aggregate)."""
    if not results:
        raise ValueError("no results to summarise")
    first = results[0]
    key = lambda r: (r["method"]["id"], r["dataset"]["id"], r["dataset"]["manifest_sha256"],  # noqa: E731
                     r["protocol"]["id"], r["protocol"]["version"])
    if any(key(r) != key(first) for r in results):
        raise ValueError("summarize() needs results of one method x dataset x protocol")
    agg = aggregate(results)
    return {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "kind": "summary",
        "method": first["method"], "dataset": first["dataset"], "protocol": first["protocol"],
        "subjects": sorted(r["subject"] for r in results),
        "coverage": agg["coverage"], "metrics": agg["metrics"], "date": now_iso(),
    }
