"""benchmarks/training.py --threads-check: on two cores, two single-thread trials side by side
or one two-thread trial?

Both ways run the quick reference trial (triplet_batch_semihard, small CNN, batches of 96,
augmentation, its default precision here), training only, in fresh processes: (a) two
processes of 1 thread each, started together, (b) one process of 2 threads. Each process
builds its trial and trains 2 warm-up batches, says it is ready, and trains --steps batches
(data loading included) when the parent says go, so the processes' start-up is not timed and
the two of (a) overlap. Throughput = steps trained / wall seconds from go to the last end;
the better of --repeats of each, the two ways alternating.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from _trial_timing import reference_trials, timed_epoch, with_train


def child(spec: dict) -> None:
    """One trial process: build, warm up, print 'ready', wait for a line, train, print JSON."""
    from dml_core.training.trial import Trial

    cfg = with_train(reference_trials()[0], num_threads=spec["threads"], epochs=2, max_batches_per_epoch=2)
    cfg = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"split": None, "val_split": None})})
    trial = Trial(cfg)
    trial.train_epoch(0)  # warm-up: lazy initialisation, allocator pools
    trial.config.train.max_batches_per_epoch = spec["steps"]
    print("ready", flush=True)
    sys.stdin.readline()
    print(json.dumps(timed_epoch(trial, 1)), flush=True)


def side_by_side(script: str, threads: list[int], steps: int) -> dict:
    """Start one process per entry of `threads`, release them together, and time them."""
    procs = []
    for n in threads:
        env = dict(os.environ, OMP_NUM_THREADS=str(n), MKL_NUM_THREADS=str(n))
        procs.append(subprocess.Popen(
            [sys.executable, script, "--threads-child", json.dumps({"threads": n, "steps": steps})],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        ))
    for p in procs:
        for line in p.stdout:
            if line.strip() == "ready":
                break
        else:
            raise SystemExit(f"a --threads-child process ended before it was ready (exit {p.wait()})")
    t0 = time.perf_counter()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = [json.loads(p.stdout.readline()) for p in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.wait()
    steps_done = sum(o["steps"] for o in outs)
    return {"steps": steps_done, "wall": wall, "steps_per_s": steps_done / wall, "each": outs}


def threads_check(script: str, steps: int, repeats: int) -> dict:
    ways = {"two 1-thread trials side by side": [1, 1], "one 2-thread trial": [2]}
    print(f"Threads check: quick / triplet_batch_semihard trial, {steps} training steps a process (data loading "
          f"included), {os.cpu_count()} CPUs here, best of {repeats}", flush=True)
    best: dict[str, dict] = {}
    for rep in range(repeats):
        for label in ways if rep % 2 == 0 else reversed(ways):
            got = side_by_side(script, ways[label], steps)
            if label not in best or got["steps_per_s"] > best[label]["steps_per_s"]:
                best[label] = got
    for label, got in best.items():
        each = ", ".join(f"{o['steps'] / o['seconds']:.2f}" for o in got["each"])
        print(f"  {label:34} {got['steps_per_s']:7.2f} steps/s in all ({each} steps/s each)")
    winner = max(best, key=lambda k: best[k]["steps_per_s"])
    other = min(best, key=lambda k: best[k]["steps_per_s"])
    print(f"better: {winner} ({best[winner]['steps_per_s'] / best[other]['steps_per_s']:.2f}x the throughput of {other})")
    return {"best": best, "better": winner}
