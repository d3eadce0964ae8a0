"""Where evaluation jobs run: in this process (`serial`), in a local process pool (`local`), or on a Ray
cluster (`ray`). The engine knows nothing about protocols: it calls `fn(job)` for each job somewhere and
hands back one `Outcome` per job, in completion order; the caller (evaluation.protocols.run_evaluation)
writes the results. So results cannot depend on the engine, only on what `fn` computes (to the last bits of
a float: BLAS splits a matrix product by its thread count, which each engine caps its own way).

- serial: a plain loop in the calling process (debugging; exceptions keep their tracebacks).
- local: concurrent.futures.ProcessPoolExecutor, `workers` processes (default: the cores this process may
  use), each capped at cores // workers native threads (OpenMP, BLAS, numba, torch) so that workers x
  threads <= cores. Workers are never forked from the driver (fork after numba's OpenMP layer or torch's
  pools have started breaks them): with `preload` modules they come from a *forkserver* that imports those
  modules once, before any thread pool starts, so each worker begins with them imported (the imports
  of a job, ~5 s of torch/mediapipe/dlib on 2 cores, are paid once per run, not once per worker, and
  their memory is shared copy-on-write); without, or where forkserver does not exist, by *spawn*.
- ray: Ray 2.x tasks, one per job, `num_cpus` = threads per job; `address` "auto" or "ray://host:port" joins
  an existing cluster, None starts a local one on 127.0.0.1 for the run (no dashboard) and stops it after.

Faults. A job whose worker process dies (killed, out of memory, segfault) is retried up to MAX_ATTEMPTS
times in all; after that its Outcome has `error` set and the caller records a "failed" result. In the
local pool a dead worker breaks the whole pool and every job running in it at that moment is charged an
attempt; those jobs are then retried one at a time (no other job alongside), so a job that keeps killing
its worker cannot use up the attempts of an innocent neighbour. Ray attributes deaths per task itself
(`max_retries`). Ctrl-C (KeyboardInterrupt) stops the workers and propagates; outcomes already handed
back stay handed back, so whatever the caller wrote is kept.
"""
from __future__ import annotations

import collections
import os
import resource
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

ENGINES = ("local", "ray", "serial")
MAX_ATTEMPTS = 3  # runs of one job in all (first try + retries) before it is reported failed
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
REPO_ROOT = Path(__file__).resolve().parent.parent


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), not the machine's total."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB (Linux reports ru_maxrss in KiB, macOS in bytes)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 2**10


@dataclass
class Outcome:
    """What became of one job. value: fn(job) when it ran; error: why not (its worker died every attempt)."""

    job: object
    value: object = None
    error: str | None = None
    attempts: int = 1
    worker: str = ""  # host:pid that ran it
    seconds: float = 0.0  # wall time inside the worker
    peak_rss_mb: float | None = None  # the worker process's peak RSS after the job, MB


@dataclass
class RunStats:
    engine: str
    workers: int
    threads: int
    jobs: int = 0
    failed: int = 0
    retried: int = 0
    seconds: float = 0.0
    worker_peak_rss_mb: dict | None = None  # host:pid -> MB
    job_seconds: list = field(default_factory=list)  # wall time of each job inside its worker

    @property
    def job_s_median(self) -> float | None:
        return float(statistics.median(self.job_seconds)) if self.job_seconds else None

    @property
    def jobs_per_min(self) -> float:
        return 60.0 * self.jobs / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        peaks = self.worker_peak_rss_mb or {}
        return {"engine": self.engine, "workers": self.workers, "threads_per_worker": self.threads,
                "jobs": self.jobs, "failed": self.failed, "retried": self.retried, "seconds": round(self.seconds, 2),
                "jobs_per_min": round(self.jobs_per_min, 2),
                "job_s_median": None if self.job_s_median is None else round(self.job_s_median, 2),
                "worker_peak_rss_mb_max": round(max(peaks.values()), 1) if peaks else None,
                "driver_peak_rss_mb": round(peak_rss_mb(), 1)}

    def line(self) -> str:
        d = self.to_dict()
        mem = f"; peak worker RSS {d['worker_peak_rss_mb_max']:.0f} MB" if d["worker_peak_rss_mb_max"] else ""
        return (f"{self.engine}: {self.jobs} job(s) in {self.seconds:.1f} s = {d['jobs_per_min']:.1f} jobs/min "
                f"({self.workers} worker(s) x {self.threads} thread(s); {self.retried} retried, {self.failed} "
                f"failed){mem}; driver peak RSS {d['driver_peak_rss_mb']:.0f} MB")


# ------------------------------------------------------------------------------------ worker side

def limit_threads(n: int) -> None:
    """Cap this process's native thread pools at n. Environment variables cover libraries not yet
    imported (a fresh spawn worker imports numba/torch lazily, inside its first job)."""
    for var in THREAD_ENV:
        os.environ[var] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    if "numba" in sys.modules:
        numba = sys.modules["numba"]
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def _init_worker(threads: int) -> None:
    limit_threads(threads)


def _call(fn: Callable, job, threads: int | None = None) -> dict:
    """Run one job in a worker; what comes back to the driver (the job's value plus who ran it)."""
    if threads:
        limit_threads(threads)
    t = time.perf_counter()
    value = fn(job)
    return {"value": value, "worker": f"{socket.gethostname()}:{os.getpid()}",
            "seconds": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb()}


# ------------------------------------------------------------------------------------ progress

class _Progress:
    """tqdm bar over jobs (ETA from tqdm) whose postfix shows what each busy worker runs and for how long."""

    def __init__(self, total: int, enabled: bool, label: Callable, desc: str):
        from tqdm import tqdm
        self.bar = tqdm(total=total, disable=not enabled, desc=desc, unit="job", file=sys.stderr, dynamic_ncols=True)
        self.label = label

    def show(self, running: Iterable[tuple[object, float]]):
        now = time.monotonic()
        parts = [f"w{i}: {self.label(job)} {now - t0:.0f}s" for i, (job, t0) in enumerate(running)]
        self.bar.set_postfix_str(" | ".join(parts) or "idle", refresh=True)

    def done(self, n: int = 1):
        self.bar.update(n)

    def close(self):
        self.bar.close()


def _outcome(job, r: dict, attempts: int) -> Outcome:
    return Outcome(job, r["value"], None, attempts, r["worker"], r["seconds"], r["peak_rss_mb"])


# ------------------------------------------------------------------------------------ engines

def run_jobs(fn: Callable, jobs: list, *, engine: str = "local", workers: int | None = None,
             address: str | None = None, threads: int | None = None, max_attempts: int = MAX_ATTEMPTS,
             progress: bool = True, label: Callable = str, stats: RunStats | None = None,
             strict: bool = False, preload: tuple[str, ...] = ()) -> Iterator[Outcome]:
    """Run fn(job) for every job on `engine`; yield one Outcome per job as each finishes.

    fn must be a module-level function (local/ray send it by reference); jobs must pickle. workers: local
    processes / concurrent Ray tasks (default: the cores available / the cluster's CPUs, over threads).
    threads: native threads per worker (default: cores // workers, at least 1). stats, if given, is filled
    in as jobs finish. strict: an exception raised by fn propagates (it always does under serial).
    preload: modules fn imports, imported once for all local workers (see the module's docstring); they
    must only be imported there, not run (no thread pool may start before the fork)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if max_attempts < 1:
        raise ValueError("max_attempts must be >= 1")
    if address and engine != "ray":
        raise ValueError("--address is for --engine ray only")
    if engine == "serial":
        gen = _serial(fn, jobs, stats)
    elif engine == "local":
        gen = _local(fn, jobs, workers, threads, max_attempts, stats, preload)
    else:
        gen = _ray(fn, jobs, workers, threads, max_attempts, address, stats, strict)
    return _with_progress(gen, jobs, engine, progress, label, stats)


def _with_progress(gen, jobs, engine, progress, label, stats) -> Iterator[Outcome]:
    bar = _Progress(len(jobs), progress and bool(jobs), label, f"evaluate ({engine})")
    t = time.perf_counter()
    try:
        for item in gen:
            if isinstance(item, list):  # the engine's running (job, start) list changed
                bar.show(item)
                continue
            bar.done()
            if stats is not None:
                stats.jobs += 1
                stats.failed += item.error is not None
                stats.retried += item.attempts > 1
                stats.seconds = time.perf_counter() - t
                if item.error is None:
                    stats.job_seconds.append(item.seconds)
                if item.peak_rss_mb is not None:
                    stats.worker_peak_rss_mb = stats.worker_peak_rss_mb or {}
                    stats.worker_peak_rss_mb[item.worker] = max(item.peak_rss_mb,
                                                                stats.worker_peak_rss_mb.get(item.worker, 0.0))
            yield item
    finally:
        if stats is not None:
            stats.seconds = time.perf_counter() - t
        bar.close()
        gen.close()  # stops the workers if we are unwinding early (Ctrl-C, strict error)


def _serial(fn, jobs, stats) -> Iterator:
    threads = available_cores()
    if stats is not None:
        stats.workers, stats.threads = 1, threads
    for job in jobs:
        yield [(job, time.monotonic())]
        yield _outcome(job, _call(fn, job), 1)


def local_threads(workers: int | None = None) -> int:
    """Native threads per local worker: the cores shared out, at least 1."""
    return max(1, available_cores() // (workers or available_cores()))


def local_context(threads: int, preload: tuple[str, ...] = ()):
    """The multiprocessing context local workers are made in (see the module's docstring). With preload,
    the forkserver starts now if it is not running yet: a caller may call this early, so the server
    imports while the caller prepares its jobs (the first call's preload and thread caps are the ones
    the server keeps)."""
    import multiprocessing as mp
    if not preload or "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    from multiprocessing import forkserver
    ctx = mp.get_context("forkserver")
    saved = {var: os.environ.get(var) for var in THREAD_ENV}
    os.environ.update({var: str(threads) for var in THREAD_ENV})  # the server imports under the caps
    try:
        ctx.set_forkserver_preload(list(preload))
        forkserver.ensure_running()  # starts the server (not waited for) with the environment above
    finally:
        for var, v in saved.items():
            if v is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = v
    return ctx


def _local(fn, jobs, workers, threads, max_attempts, stats, preload=()) -> Iterator:
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool
    workers = min(workers or available_cores(), max(1, len(jobs)))
    threads = threads or local_threads(workers)
    if stats is not None:
        stats.workers, stats.threads = workers, threads
    if not jobs:
        return

    ctx = local_context(threads, preload)

    def new_pool():
        return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,))

    pending = collections.deque((job, 0) for job in jobs)  # (job, attempts so far)
    running: dict = {}  # future -> (job, attempt number, start)
    pool = new_pool()
    try:
        while pending or running:
            # a job that was in a pool that broke runs alone, so a second death is its own
            while pending and len(running) < workers:
                job, tried = pending[0]
                if tried and running:
                    break
                pending.popleft()
                running[pool.submit(_call, fn, job)] = (job, tried + 1, time.monotonic())
                if tried:
                    break
            yield [(j, t0) for j, _, t0 in running.values()]
            done, _ = wait(running, timeout=1.0, return_when=FIRST_COMPLETED)
            broken = False
            for fut in done:
                job, attempt, _ = running.pop(fut)
                try:
                    r = fut.result()
                except BrokenProcessPool:
                    broken = True
                    running[fut] = (job, attempt, 0.0)  # handled with the others below
                    continue
                yield _outcome(job, r, attempt)
            if broken:
                died = list(running.values())
                running.clear()
                # CPython 3.11 terminates a broken pool's workers, but not one its submit() spawned while the
                # pool was breaking: shutdown then joined that idle worker forever (seen once in CI). Every
                # worker of a broken pool is doomed: kill them all first (no public API lists them)
                for proc in list((getattr(pool, "_processes", None) or {}).values()):
                    proc.kill()
                pool.shutdown(wait=True, cancel_futures=True)
                for job, attempt, _ in died:
                    if attempt >= max_attempts:
                        yield Outcome(job, error=f"its worker process died on each of {attempt} attempts "
                                                 f"(killed, out of memory or crashed)", attempts=attempt)
                    else:
                        pending.appendleft((job, attempt))
                pool = new_pool()
        pool.shutdown(wait=True)  # all done: idle workers exit on their own (terminated, they leak semaphores)
    finally:
        _stop_pool(pool)


def _stop_pool(pool) -> None:
    """Cancel what has not started and end the worker processes (ours) now: on Ctrl-C nobody waits for
    running jobs, whose results would be thrown away anyway."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=5)


def _ray(fn, jobs, workers, threads, max_attempts, address, stats, strict) -> Iterator:
    import ray
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:  # a throw-away local cluster for this run, loopback only, no dashboard
            ray.init(num_cpus=workers or available_cores(), include_dashboard=False,
                     _node_ip_address="127.0.0.1", log_to_driver=False, configure_logging=False)
        started = True
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        threads = threads or 1
        workers = workers or max(1, cpus // threads)
        if stats is not None:
            stats.workers, stats.threads = workers, threads
        # Workers import fn's module by name: on a local cluster from this checkout; on a real cluster the
        # project must be installed in the image (docs/engines.md: "On a Ray cluster").
        env = {var: str(threads) for var in THREAD_ENV}
        if not address:
            env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        task = ray.remote(_call).options(num_cpus=threads, max_retries=max_attempts - 1, retry_exceptions=False,
                                         runtime_env={"env_vars": env})
        pending = collections.deque(jobs)
        running: dict = {}  # ObjectRef -> (job, start)
        try:
            while pending or running:
                while pending and len(running) < workers:
                    job = pending.popleft()
                    running[task.remote(fn, job, threads)] = (job, time.monotonic())
                yield list(running.values())
                done, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
                for ref in done:
                    job, _ = running.pop(ref)
                    try:
                        r = ray.get(ref)
                    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                            ray.exceptions.OutOfMemoryError) as e:
                        yield Outcome(job, error=f"its Ray worker died on each of {max_attempts} attempts "
                                                 f"({type(e).__name__})", attempts=max_attempts)
                        continue
                    except ray.exceptions.RayTaskError as e:
                        if strict:
                            raise e.as_instanceof_cause() from None
                        yield Outcome(job, error=f"the job raised: {e.cause!r}")
                        continue
                    # attempts are Ray's business; a value means one of them succeeded
                    yield _outcome(job, r, 1)
        finally:
            for ref in running:
                ray.cancel(ref, force=True)
    finally:
        if started:
            ray.shutdown()
