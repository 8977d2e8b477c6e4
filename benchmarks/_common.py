"""Helpers shared by the benchmark scripts: timing, memory, device description, JSON output."""
from __future__ import annotations

import json
import os
import platform
import resource
import time


def best_time(fn, repeats):
    """Smallest wall time [s] of `repeats` calls of fn(), and the last result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def peak_memory_mb() -> float:
    """Peak resident memory of this process [MB] (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def device() -> str:
    """The CPU this ran on, in words."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"cpu: {os.cpu_count()} cores, {name}"


def emit(result: dict):
    """Print the one JSON line every benchmark ends with."""
    print(json.dumps(result, default=float))
