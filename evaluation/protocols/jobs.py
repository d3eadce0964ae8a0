"""The job loop: one method on one subject under every protocol it needs (Job, evaluate_job, run on a
worker by evaluation.engines), and run_evaluation, which plans the jobs, skips the results that are
still current (_stale), and writes result files, thumbnails and summaries."""
from __future__ import annotations

import random
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation.protocols.catalog import PROTOCOLS
from evaluation.protocols.common import Context, Output, Protocol, Settings
from model.core.image_io import pixels_sha256, to_uint8

THUMB_PX = 128


class MethodLoadError(RuntimeError):
    """Some methods could not be instantiated (missing module or dependency); nothing was written for them."""


def _seed(seed: int = 0) -> dict:
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
        torch.manual_seed(seed)
    except ImportError:
        pass
    return {"python": seed, "numpy": seed, "torch": seed}


def _stale(path: Path, mrec: dict, proto, settings, manifest_sha256: str) -> str | None:
    """Why an existing result no longer describes this method, protocol and dataset (None: it still does). A
    dataset whose files changed (subjects added, a photo replaced) has a new manifest: its summary may only
    pool results of one manifest (results.summarize), so every result of the old one is recomputed."""
    from evaluation import results as R
    try:
        old = R.load_result(path)
    except R.ResultError as e:
        return f"unreadable ({e})"
    for what, was, now in (("method version", old["method"].get("version"), mrec["version"]),
                           ("method config", old["method"].get("config"), mrec["config"]),
                           ("protocol version", old["protocol"].get("version"), proto.version),
                           ("protocol config", old["protocol"].get("config"), proto.config(settings)),
                           ("dataset manifest", old["dataset"].get("manifest_sha256"), manifest_sha256)):
        if was != R.as_stored(now):
            return f"{what} changed ({was!r} -> {now!r})" if "version" in what else f"{what} changed"
    return None


def method_record(method, spec=None) -> dict:
    info = method.info
    cfg = dict(getattr(info, "parameters", {}) or {})
    if spec is not None:
        cfg.update(dict(getattr(spec, "options", ()) or ()))
    return {"id": spec.id if spec is not None else info.id, "name": spec.name if spec is not None else info.name,
            "version": str(info.version), "config": cfg, "animatable": bool(info.animatable),
            "kind": getattr(spec, "kind", None), "class_id": info.id}


def thumbnail_jpeg(rgb: np.ndarray, px: int = THUMB_PX) -> bytes:
    """rgb float [H,W,3] -> JPEG bytes of a thumbnail at most px on its long side (quality 85)."""
    import io

    from PIL import Image
    im = Image.fromarray(to_uint8(rgb))
    im.thumbnail((px, px), Image.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def save_thumbnail(path: Path, rgb: np.ndarray, px: int = THUMB_PX) -> None:
    from evaluation.results import atomic_write_bytes
    atomic_write_bytes(path, thumbnail_jpeg(rgb, px), force=True)


# ---------------------------------------------------------------------------------------- jobs
# A job is one method on one subject under every protocol that needs computing for that pair, so the
# avatar is reconstructed once. It runs wherever the engine puts it (evaluation.engines) and returns the
# result dicts and thumbnail bytes; only the driver writes files (no shared filesystem is assumed).

@dataclass(frozen=True)
class Job:
    method_id: str
    subject_id: str
    protocol_ids: tuple
    dataset: tuple  # evaluation.datasets.Dataset.ref(): (spec, cache_dir, manifest_sha256), opened on the worker
    settings: Settings
    method: object = None  # a Method instance to use instead of the registry's (tests, external predictions)
    strict: bool = False

    def label(self) -> str:
        return f"{self.method_id}/{self.subject_id}"


@dataclass
class JobOutput:
    results: list  # [(protocol id, result dict)] in the job's protocol order
    thumbnails: list  # [(path relative to the results folder, JPEG bytes)]


class WorkerState:
    """What one process keeps between jobs: opened datasets, loaded methods, the metric context (identity
    models, LPIPS nets), the environment record. Per-subject caches are emptied at each job, so a worker's
    memory does not grow with the number of subjects it has seen."""

    def __init__(self):
        self.datasets: dict = {}
        self.methods: dict = {}
        self.contexts: dict = {}
        self._env = None
        self._prov = None

    def dataset(self, ref: tuple):
        if ref not in self.datasets:
            from evaluation.datasets import open_ref
            self.datasets[ref] = open_ref(ref)
        return self.datasets[ref]

    def method(self, method_id: str):
        if method_id not in self.methods:
            from baselines.registry import get_spec
            self.methods[method_id] = get_spec(method_id).load()
        return self.methods[method_id]

    def context(self, settings: Settings) -> "Context":
        if settings not in self.contexts:
            self.contexts[settings] = Context(settings)
        ctx = self.contexts[settings]
        ctx.reset()
        return ctx

    def environment(self) -> dict:
        if self._env is None:
            from evaluation import results as R
            self._env = R.environment()
        return self._env

    def provenance(self) -> dict:
        if self._prov is None:
            from evaluation import metrics as metrics_mod
            self._prov = metrics_mod.provenance()
        return self._prov


_WORKER = WorkerState()  # of this process, when it is an engine's worker
# what every job imports (metrics, identity, LPIPS, landmarks, rendering): a local engine's workers start
# with these imported once for all of them (evaluation.engines, `preload`); the methods' own modules are added
WORKER_PRELOAD = ("numpy", "scipy.optimize", "scipy.ndimage", "scipy.signal", "scipy.stats", "torch",
                  "torchmetrics", "cv2", "dlib", "mediapipe", "numba", "skimage.metrics", "evaluation.metrics",
                  "evaluation.lpips", "evaluation.identity", "evaluation.consistency", "evaluation.datasets",
                  "model.core.render")


def evaluate_job(job: Job, state: WorkerState | None = None) -> JobOutput:
    """Compute one job (worker side; writes nothing). A method that raises gets "failed" results with the
    error (job.strict re-raises instead)."""
    from evaluation import results as R
    state = state or _WORKER
    dataset = state.dataset(job.dataset)
    spec = None
    if job.method is not None:
        method = job.method
    else:
        from baselines.registry import get_spec
        spec, method = get_spec(job.method_id), state.method(job.method_id)
    mrec = method_record(method, spec)
    ctx = state.context(job.settings)
    env, prov, ds_rec = state.environment(), state.provenance(), dataset.record()
    sid, mid, settings = job.subject_id, job.method_id, job.settings
    subject = dataset.subject(sid)
    avatars: dict[str, tuple] = {}  # source image key -> (avatar | exception, seconds)
    out = JobOutput([], [])
    for pid in job.protocol_ids:
        proto = PROTOCOLS[pid]
        t0 = time.perf_counter()
        src = proto.source(subject)
        key = pixels_sha256(src)
        seeds = _seed(0)
        fresh = key not in avatars
        if fresh:
            t = time.perf_counter()
            try:
                avatars[key] = (method.reconstruct(src), time.perf_counter() - t)
            except Exception as e:  # noqa: BLE001 - recorded as a failed result, shown in the table
                if job.strict:
                    raise
                avatars[key] = (e, time.perf_counter() - t)
        avatar, rec_s = avatars[key]
        t1 = time.perf_counter()
        if isinstance(avatar, Exception):
            o = Output({}, [], status="failed", reason=f"reconstruct: {type(avatar).__name__}: {avatar}")
        else:
            try:
                o = proto.run(avatar, subject, ctx)
            except Exception as e:  # noqa: BLE001
                if job.strict:
                    raise
                print(traceback.format_exc(limit=-3), file=sys.stderr)
                o = Output({}, [], status="failed", reason=f"{proto.id}: {type(e).__name__}: {e}")
        t2 = time.perf_counter()
        thumbs = {}
        if settings.thumbs and o.images:
            for name, img in o.images.items():
                rel = (R.result_dir(".", dataset.slug, proto.id, mid) / R.THUMBS_DIR / R.slug(sid)
                       / f"{R.slug(name)}.jpg").as_posix().removeprefix("./")
                out.thumbnails.append((rel, thumbnail_jpeg(img)))
                thumbs[name] = rel
        res = R.new_result(
            method=mrec, dataset=ds_rec, protocol=_protocol_record(proto, settings), subject=sid,
            status=o.status, reason=o.reason, metrics=o.metrics, views=o.views, curves=o.curves,
            thumbnails=thumbs, provenance={"metrics": prov}, environment_info=env, seeds=seeds,
            notes=o.notes + ctx.identity.notes(),
            timings={"reconstruct_s": rec_s, "protocol_s": t2 - t1, "total_s": time.perf_counter() - t0,
                     "reconstruct_reused": not fresh})
        out.results.append((pid, res))
    return out


def _protocol_record(proto: Protocol, settings: Settings) -> dict:
    return {"id": proto.id, "version": proto.version, "description": proto.description,
            "config": proto.config(settings)}


def _summary_view(r: dict, datasets: dict) -> dict:
    """The fields results.summarize reads (no views/curves; one shared copy of the dataset record, whose
    subject list has one entry per subject: a summary of N subjects then holds O(N) memory, not O(N^2))."""
    d = r["dataset"]
    key = (d["id"], d["manifest_sha256"])
    return {"method": r["method"], "dataset": datasets.setdefault(key, d), "protocol": r["protocol"],
            "subject": r["subject"], "status": r["status"], "reason": r["reason"], "metrics": r["metrics"],
            "date": r["date"]}


def _worker_preload(method_ids: list[str], methods: dict) -> tuple[str, ...]:
    """WORKER_PRELOAD and the modules of the methods (found in the registry without importing them)."""
    from baselines.registry import get_spec
    mods = set()
    for mid in method_ids:
        try:
            mods.add(type(methods[mid]).__module__ if mid in methods else get_spec(mid).target.partition(":")[0])
        except ValueError:  # an unknown id: reported where the methods are loaded
            pass
    return WORKER_PRELOAD + tuple(sorted(mods))


def run_evaluation(method_ids: list[str], dataset, protocol_ids: list[str], out: str | Path,
                   force: bool = False, settings: Settings = Settings(), methods: dict | None = None,
                   progress: bool = True, strict: bool = False, log=print, engine: str = "serial",
                   workers: int | None = None, address: str | None = None, stats: dict | None = None) -> list[Path]:
    """Evaluate methods on a dataset under protocols; write one result per subject + a summary.

    methods: optional {id: Method instance} (tests, external code); otherwise ids come from
    baselines.registry. Existing results are kept (and not recomputed) unless force or stale. A method that
    raises on a subject gets a "failed" result with the error (strict=True re-raises instead); so does a job
    whose worker process died on every attempt. engine: serial | local | ray (evaluation.engines), with
    workers / address; the files written do not depend on it (apart from timings and host fields).
    stats: a dict filled with the run's figures (engine, jobs, jobs_per_min, peak worker RSS, ...).
    Ctrl-C: results already written stay; the same call later computes only what is missing.
    Returns the paths of the result files written."""
    from evaluation import engines as E
    from evaluation import results as R
    preload = _worker_preload(method_ids, methods or {})
    if engine == "local":  # the workers' forkserver imports while the jobs are prepared below
        E.local_context(E.local_threads(workers), preload)
    out = Path(out)
    protos = []
    for pid in protocol_ids:
        why = PROTOCOLS[pid].applicable(dataset)
        if why:
            log(f"[skip] protocol {pid}: {why}")
        else:
            protos.append(PROTOCOLS[pid])
    ds_rec = dataset.record()
    if engine != "serial" and dataset.spec is None:
        raise ValueError(f"dataset {dataset.id!r} cannot be reopened by a worker (no spec): use engine 'serial'")
    state = WorkerState()  # the serial engine's worker is this process: it reuses what the driver opened
    state.datasets[dataset.ref()] = dataset
    by_method: dict[str, set] = {}
    load_errors: list[str] = []
    jobs: list[Job] = []
    overwrite: dict[tuple, bool] = {}  # (method, subject, protocol) -> the file exists and may be replaced
    records: dict[str, dict] = {}
    for mid in method_ids:
        spec = None
        if methods and mid in methods:
            method = methods[mid]
        else:
            from baselines.registry import get_spec
            spec = get_spec(mid)
            try:
                method = spec.load()
            except Exception as e:  # noqa: BLE001 - an install problem, not a result: write nothing
                if strict:
                    raise
                log(f"[error] method {mid}: cannot be loaded ({type(e).__name__}: {e}); no results written")
                load_errors.append(mid)
                continue
            state.methods[mid] = method
        mrec = records[mid] = method_record(method, spec)
        for sid in dataset.subject_ids:
            todo = []
            for proto in protos:
                by_method.setdefault(mid, set()).add(proto.id)
                path = R.result_path(out, dataset.slug, proto.id, mid, sid)
                stale = None
                if path.exists() and not force:
                    stale = _stale(path, mrec, proto, settings, dataset.manifest_sha256)
                    if not stale:
                        log(f"[keep] {path} exists (use --force to recompute)")
                        continue
                    log(f"[stale] {path}: {stale}; recomputing")
                overwrite[(mid, sid, proto.id)] = force or bool(stale)
                todo.append(proto.id)
            if todo:
                jobs.append(Job(mid, sid, tuple(todo), dataset.ref(), settings,
                                methods[mid] if methods and mid in methods else None, strict))

    fn = evaluate_job if engine != "serial" else _SerialJob(state)
    run_stats = E.RunStats(engine, 0, 0)
    env = None  # the driver's provenance, for failed jobs only (workers record their own); it imports torch
    written: list[Path] = []
    try:
        for oc in E.run_jobs(fn, jobs, engine=engine, workers=workers, address=address, progress=progress,
                             label=Job.label, stats=run_stats, strict=strict, preload=preload):
            job = oc.job
            if oc.error is not None:
                if strict:
                    raise RuntimeError(f"job {job.label()}: {oc.error}")
                log(f"[fail] {job.label()}: {oc.error}")
                env = env or R.environment()
                results = [(pid, R.new_result(
                    method=records[job.method_id], dataset=ds_rec, protocol=_protocol_record(PROTOCOLS[pid], settings),
                    subject=job.subject_id, status="failed", reason=f"{pid}: {oc.error}", environment_info=env,
                    timings={"attempts": oc.attempts})) for pid in job.protocol_ids]
                thumbnails = []
            else:
                results, thumbnails = oc.value.results, oc.value.thumbnails
            for rel, data in thumbnails:
                R.atomic_write_bytes(out / rel, data, force=True)
            for pid, res in results:
                if res["status"] == "failed" and oc.error is None:
                    log(f"[fail] {job.method_id} / {job.subject_id} / {pid}: {res['reason']}")
                path = R.result_path(out, dataset.slug, pid, job.method_id, job.subject_id)
                written.append(R.write_result(path, res, force=overwrite[(job.method_id, job.subject_id, pid)]))
    except KeyboardInterrupt:
        log(f"[interrupted] {run_stats.jobs} of {len(jobs)} job(s) finished; their results are kept and the same "
            f"command resumes the rest")
        raise
    finally:
        if stats is not None:
            stats.update(run_stats.to_dict(), jobs_planned=len(jobs), results_written=len(written))
    if jobs:
        log(f"[engine] {run_stats.line()}")
    # summaries are derived from all result files of each method x protocol (fresh or kept)
    for mid, pids in by_method.items():
        for pid in sorted(pids):
            d = R.result_dir(out, dataset.slug, pid, mid)
            shared: dict = {}
            res = []
            for p in sorted(d.glob("*.json")):
                if p.name != R.SUMMARY_NAME:
                    r = R.load_result(p)
                    if r["kind"] == "result":
                        res.append(_summary_view(r, shared))
            if res:
                R.write_result(d / R.SUMMARY_NAME, R.summarize(res), force=True)
    if load_errors:
        raise MethodLoadError(f"method(s) could not be loaded: {', '.join(load_errors)} (other results were written)")
    return written


class _SerialJob:
    """evaluate_job bound to the driver's own WorkerState (the serial engine runs jobs in this process)."""

    def __init__(self, state: WorkerState):
        self.state = state

    def __call__(self, job: Job) -> JobOutput:
        return evaluate_job(job, self.state)
