"""Shared measurement for the benchmark scripts: one case per fresh subprocess.

Each case runs in its own interpreter so that peak memory (the kernel's VmHWM, native
allocations included) belongs to that case alone and one case's caches cannot speed up the
next. The child prints one JSON line; the parent collects them.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def time_call(fn, min_repeats: int = 3, max_repeats: int = 15, budget_s: float = 4.0) -> dict:
    """Median wall time of fn() after one warm-up, and peak RSS growth over the baseline."""
    base = rss_kib("VmRSS")
    fn()  # warm-up: allocator pools, lazy inits
    times = []
    start = time.perf_counter()
    while len(times) < max_repeats and (len(times) < min_repeats or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"seconds": statistics.median(times), "peak_mib": (rss_kib("VmHWM") - base) / 1024, "repeats": len(times)}


def run_case(script: str, case: dict, timeout: float = 180.0) -> dict:
    """Run `script --case JSON` in a fresh interpreter and parse its last JSON line."""
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    try:
        out = subprocess.run(
            [sys.executable, script, "--case", json.dumps(case)],
            capture_output=True, text=True, timeout=timeout, env=env,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timeout > {timeout:.0f}s"}
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": last[:80]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def fmt_time(r: dict) -> str:
    return f"{r['seconds'] * 1000:9.1f} ms" if "seconds" in r else f"{r.get('error', r.get('skipped', '-'))}"


def fmt_mem(r: dict) -> str:
    return f"{r['peak_mib']:8.0f} MiB" if "peak_mib" in r else "-"
