"""Speed and quality benchmarks: `python -m benchmarks.NAME`, each printing one JSON line last."""
import time

import numpy as np


def median_time(fn, n: int):
    """Call fn() n times -> (median seconds, last result)."""
    ts, out = [], None
    for _ in range(n):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), out
