"""What the trial machinery costs: a trial's training epoch against a bare PyTorch loop, and
Ray's overhead on a quick trial: in-process vs Ray Tune (1 worker) vs Tune + Train (2 workers).

    .venv/bin/python benchmarks/training.py [--no-ray | --grid-only] [--dataset prepared/fashion_mnist] [--epochs 2]
    .venv/bin/python benchmarks/training.py --precision-check [--seeds 5] [--steps N] [--eval-items N]
    .venv/bin/python benchmarks/training.py --threads-check [--steps 60]
    .venv/bin/python benchmarks/training.py --step-history [--baseline d8ba9d0] [--table-batches 30] [--repeats 3] [--rounds 3]

Trial vs bare loop (always run; --no-ray runs only this): the small CNN (width 16, embedding
64), triplet + batch_semihard, Adam, batches of 96 (4 per class) of prepared/glyphs (else
prepared/fashion_mnist), --compare-batches of them, 1 thread, no evaluation. The trial is
Trial(cfg).train_epoch(0); the bare loop is forward, miner, loss, zero_grad, backward, step on
the same model (the trial's initial weights), loss, miner and optimizer. Two rows: both fed the
same pre-materialised batches (the cost of train_epoch itself), and each iterating its own
BatchLoader over the same sampler with the same augmentation (data loading included). Times:
the fastest of --repeats epochs (the two loops alternating), and the sum over steps of each
step's fastest of --repeats, which a shared machine's bursts of load disturb less. Both loops
end on bit-identical weights (checked). Target: trial / bare <= 1.15.

The same trial (small CNN, triplet + batch_semihard, Fashion-MNIST train classes) runs
1. in this process (run_trial), 2. as one Ray Tune trial, 3. as a Tune trial driving a
2-worker Ray Train run with global-batch mining. Ray is started once beforehand, so its
start-up is printed separately and not charged to the trials. A second table compares one
and two workers on a larger batch, where data parallelism has work to split.

Grid (run after the Ray rows; --grid-only runs only this): --grid-trials (8) trials the way a
sweep runs them, quick-profile-like (prepared/glyphs if prepared, else --dataset; small CNN
w16/d64, batches of 96 with 4 per class, augmentation, triplet + batch_semihard, --epochs x
--batches, eval on 2,000 items once at the end, no validation split), distinct seeds, serial
on one core every way: (a) in this process one after another (run_trial; the process warmed
by a trial beforehand), (a') the same in a fresh process that has imported what a sweep's
driver has and nothing more (its first trial pays torch's lazy imports), both with one
thread in torch, OpenMP (FAISS) and BLAS, as Ray's OMP_NUM_THREADS=1 gives its actor, (b)
one Tune run through run_grid with RayConfig(num_cpus=1, cpus_per_trial=1,
max_concurrent_trials=1): reused actors, a checkpoint every epoch, embeddings and model
written, each trial recorded as it ends. Ray's start-up (init_ray) is printed apart and not
charged; the grid's trial actor is. Per-trial overhead = ((b) - (a)) / N; target <= 5% of
the mean in-process trial. Fastest of --grid-repeats (2) of each, the three alternating; the
CPU seconds too (this process and its descendants, Ray's processes included), which the load
of other processes on a shared machine disturbs less than the wall time.
Then where (b)'s time goes: the recurring cost of trials 2..N against the fixed cost of the
first (the actor's process start, lazy first use), and what the trainable does beside the
trial (checkpoints, embeddings), timed in this process. Load averages at start and end.

--precision-check (benchmarks/_precision_check.py): the reference method at the quick horizon
in fp32 and in bf16 over the replicates; the paired MAP@R difference with its 95% t interval,
the step-time ratio, and ms per step of fp32 / bf16, each with and without channels-last.
--threads-check (benchmarks/_threads_check.py): two single-thread trials side by side vs one
two-thread trial, steps per second. Both run nothing else; --steps N shortens them.
--step-history (benchmarks/_step_history.py): the quick reference trial's step at --baseline
(the code issue 23 was filed against, fp32 NCHW, in its own interpreter) beside today's fp32
and today's default, in one run; ms per step and the ratios.
"""
from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _trial_timing import FixedBatches  # noqa: E402


def small_triplet_trial(**fields):
    """The trial every benchmark here times: a small CNN, the triplet loss on batch
    semi-hard triplets; `fields` give the rest of its config."""
    from dml_core.training import TrialConfig

    return TrialConfig.model_validate(dict(
        model=dict(name="small_cnn", embedding_dim=64, options=dict(width=16)),
        loss=dict(name="triplet"),
        miner=dict(name="batch_semihard"),
        **fields,
    ))


def trial(dataset: str, batch: int, epochs: int, batches: int, threads: int | None):
    return small_triplet_trial(
        dataset=dataset,
        sampler=dict(batch_size=batch, m_per_class=batch // 3),
        train=dict(epochs=epochs, max_batches_per_epoch=batches, num_threads=threads, augment=False),
        eval=dict(max_items=2000, every_epoch=False, nmi=False),
        seed=0,
    )


def grid_config(dataset: str, epochs: int, batches: int, seed: int):
    """A trial of the quick profile's shape (smaller): what a sweep's grid is made of."""
    return small_triplet_trial(
        dataset=os.path.abspath(dataset),
        sampler=dict(batch_size=96, m_per_class=4),
        optimizer=dict(name="adam", lr=0.001),
        train=dict(epochs=epochs, max_batches_per_epoch=batches, num_threads=1, augment=True, embed_batch_size=1000),
        eval=dict(max_items=2000, every_epoch=False, val_split=None),
        seed=seed,
    )


def comparison_config(dataset: str, batches: int, device: str):
    return small_triplet_trial(
        dataset=dataset,
        sampler=dict(batch_size=96, m_per_class=4),
        # fp32 in NCHW: the bare loop has no autocast and feeds NCHW batches, and the two
        # must end on bit-identical weights.
        train=dict(epochs=1, max_batches_per_epoch=batches, num_threads=1, device=device, precision="fp32",
                   channels_last=False),
        eval=dict(val_split=None, every_epoch=False, max_items=2, nmi=False),
        seed=0,
    )


class Stamped:
    """A loader's batches, with the time each one was handed out: step i of a loop lasts from
    stamp i to stamp i + 1 (to the loop's end for the last), the same cut for both loops; what
    comes before the first batch (set-up, its loading) is one more interval."""

    def __init__(self, inner):
        self.inner, self.stamps = inner, []

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)

    def __iter__(self):
        for batch in self.inner:
            self.stamps.append(time.perf_counter())
            yield batch

    def steps(self, start: float, end: float, n: int) -> list[float]:
        """n + 1 intervals: up to the first batch, then n steps; a batch fetched after them,
        and not trained on, counts in the last."""
        cuts = [start] + self.stamps[:n] + [end]
        return [b - a for a, b in zip(cuts, cuts[1:])]


def bare_epoch(model, batches, loss_fn, miner, optimizer, device) -> None:
    """The loop the trial is measured against: nothing but the training step."""
    model.train()
    for batch in batches:
        emb = model(batch.images.to(device))
        labels = batch.labels.to(device)
        loss = loss_fn(emb, labels, miner(emb, labels))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def compare_with_bare_loop(dataset: str, batches: int, repeats: int, device: str) -> list[dict]:
    """One row per case: one training epoch of each loop, no evaluation, as the fastest of
    `repeats` epochs and as the sum over steps of each step's fastest of `repeats`. On a shared
    machine the second is the steadier: another process's burst of load stretches a few steps
    of one repetition, and another repetition's same steps are the ones kept."""
    import torch

    from dml_core import build_loss, build_miner
    from dml_core.data import BatchLoader
    from dml_core.training.schedule import build_optimizer
    from dml_core.training.trial import Trial, build_sampler

    torch.set_num_threads(1)
    cfg = comparison_config(dataset, batches, device)
    probe = Trial(cfg)
    fixed = FixedBatches()
    probe.loader.set_epoch(0)
    for batch in probe.loader:
        if len(fixed) == batches:
            break
        fixed.append(batch)
    probe.loader = FixedBatches(fixed[:5])
    probe.train_epoch(0)  # warm-up, not timed: lazy initialisation, allocator pools

    def fresh():
        trial = Trial(cfg)
        bare = copy.deepcopy(trial.model)  # the same initial weights
        loss = build_loss(cfg.loss.name, **cfg.loss_options()).to(trial.device)
        miner = build_miner(cfg.miner.name, **cfg.miner_options())
        return trial, (bare, loss, miner, build_optimizer(bare.parameters(), cfg.optimizer))

    def own_loader(trial):
        loader = BatchLoader(trial.train_set, build_sampler(cfg, trial.train_set, 0, 1), augment="default", seed=cfg.seed)
        loader.set_epoch(0)
        return (b for _, b in zip(range(batches), loader))

    rows = []
    for case, prematerialised in (("same pre-materialised batches", True), ("each its own BatchLoader", False)):
        epoch = {"bare": [], "trial": []}
        steps = {"bare": [], "trial": []}
        for rep in range(repeats):
            trial, (model, loss, miner, opt) = fresh()
            trial.loader = Stamped(fixed if prematerialised else trial.loader)
            data = Stamped(fixed if prematerialised else own_loader(trial))
            for which in ("bare", "trial") if rep % 2 == 0 else ("trial", "bare"):
                sync(device)
                t0 = time.perf_counter()
                if which == "bare":
                    bare_epoch(model, data, loss, miner, opt, trial.device)
                else:
                    row = trial.train_epoch(0)
                sync(device)
                end = time.perf_counter()
                epoch[which].append(end - t0)
                steps[which].append((data if which == "bare" else trial.loader).steps(t0, end, batches))
            if row["train/steps"] != batches or any(len(s[-1]) != batches + 1 for s in steps.values()):
                raise SystemExit(f"{case}: the loops did not both run {batches} steps")
            same = all(torch.equal(a, b) for a, b in zip(trial.model.state_dict().values(), model.state_dict().values()))
            if not same:
                raise SystemExit(f"{case}: the trial and the bare loop ended on different weights")
        out = {"case": case}
        for which in ("bare", "trial"):
            out[which] = min(epoch[which])
            out[f"{which}_steps"] = sum(min(step) for step in zip(*steps[which]))
        rows.append(out)
    return rows


def print_comparison(rows, dataset: str, batches: int, repeats: int, device: str) -> None:
    print(f"Trial machinery vs bare PyTorch loop: {dataset}, {batches} batches of 96, small CNN w16/d64, "
          f"triplet + batch_semihard, 1 thread, {device}; identical final weights")
    print(f"{'':32} {'fastest epoch of ' + str(repeats):>30}   {'sum of per-step fastest':>30}")
    print(f"{'case':32} {'bare s':>8} {'trial s':>8} {'trial/bare':>11}   {'bare s':>8} {'trial s':>8} {'trial/bare':>11}")
    for r in rows:
        ratio, step_ratio = r["trial"] / r["bare"], r["trial_steps"] / r["bare_steps"]
        flag = "" if min(ratio, step_ratio) <= 1.15 else "  (above the 1.15 target)"
        print(f"{r['case']:32} {r['bare']:8.2f} {r['trial']:8.2f} {ratio:10.3f}x   "
              f"{r['bare_steps']:8.2f} {r['trial_steps']:8.2f} {step_ratio:10.3f}x{flag}")


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


class CpuMeter:
    """CPU seconds of this process and all its descendants (a local Ray's processes and its
    workers) over a span: the work done, which other processes' load on a shared machine
    stretches less than the wall time. Sampled every `every` s, so a process that ends within
    the span (a Tune run's trial actor) counts up to its last sample."""

    def __init__(self, every: float = 0.25):
        import psutil
        import threading

        self.psutil, self.every, self.stop = psutil, every, threading.Event()
        self.first: dict[tuple, float] = {}
        self.last: dict[tuple, float] = {}
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.seconds = 0.0

    def sample(self, first: bool = False) -> None:
        me = self.psutil.Process()
        for p in [me] + me.children(recursive=True):
            try:
                t = p.cpu_times()
                key = (p.pid, p.create_time())
            except self.psutil.Error:
                continue
            self.first.setdefault(key, t.user + t.system if first else 0.0)
            self.last[key] = t.user + t.system

    def loop(self) -> None:
        while not self.stop.wait(self.every):
            self.sample()

    def __enter__(self) -> "CpuMeter":
        self.sample(first=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self.sample()
        self.seconds = sum(self.last[k] - self.first[k] for k in self.last)


def trainable_extras(cfgs) -> dict[str, float]:
    """What tune_trial does beside the trial itself, timed here (steady state: the last of
    the given trials, after the first paid for lazy imports and the data version): the
    per-epoch checkpoints (Trial.state, torch.save, Checkpoint.from_directory) and the final
    embeddings + model (write_embeddings). Tune's handling of each report (the checkpoint's
    copy into the run's storage, the result's trip to the driver) is not included."""
    from ray import tune

    from dml_experiment.runner import save_state, write_embeddings
    from dml_core.training.trial import Trial

    out = tempfile.mkdtemp(prefix="dml-bench-extras-")
    for cfg in cfgs:
        spent = {"state": 0.0, "save": 0.0, "checkpoint": 0.0, "embeddings": 0.0, "checkpoints": 0}

        def on_epoch(row, t, epoch):
            if t.final is not None:
                spent["embeddings"] += timed(lambda: write_embeddings(t, out, f"probe{cfg.seed}"))[0]
            with tempfile.TemporaryDirectory() as d:
                dt, state = timed(lambda: t.state(epoch))
                spent["state"] += dt
                spent["save"] += timed(lambda: save_state(d, state))[0]
                spent["checkpoint"] += timed(lambda: tune.Checkpoint.from_directory(d))[0]
                spent["bytes"] = os.path.getsize(os.path.join(d, "state.pt"))
            spent["checkpoints"] += 1

        Trial(cfg).run(on_epoch)
    return spent


def grid_child(dataset: str, n: int, epochs: int, batches: int) -> None:
    """The in-process grid in a fresh process (imports done as a sweep's driver has them,
    nothing else warmed; OMP_NUM_THREADS=1 from the parent): one line of JSON, each trial's
    wall seconds and the CPU seconds of all."""
    import json

    import torch

    from dml_core.training import run_trial
    from dml_experiment import runner  # noqa: F401 - the driver of a sweep has it (torch, dml_core)

    torch.set_num_threads(1)
    cfgs = [grid_config(dataset, epochs, batches, seed) for seed in range(n)]
    cpu0 = time.process_time()
    wall = [timed(lambda: run_trial(c))[0] for c in cfgs]
    print(json.dumps({"wall": wall, "cpu": time.process_time() - cpu0}))


def grid_benchmark(dataset: str, n: int, epochs: int, batches: int, repeats: int) -> None:
    """N quick trials serial on one core: in this process (warm, and in a fresh process), then
    as one Tune run (run_grid). Fastest of `repeats` of each, the three alternating."""
    import json
    import subprocess

    import ray
    import torch
    from threadpoolctl import threadpool_limits

    from dml_core.training import run_trial
    from dml_experiment.resources import RayConfig
    from dml_experiment.record import FINISHED
    from dml_experiment.runner import init_ray, run_grid

    load = lambda: " ".join(f"{x:.2f}" for x in os.getloadavg())  # noqa: E731
    torch.set_num_threads(1)
    cfgs = [grid_config(dataset, epochs, batches, seed) for seed in range(n)]
    storage = tempfile.mkdtemp(prefix="dml-bench-grid-")
    ray_cfg = RayConfig(num_cpus=1, cpus_per_trial=1, max_concurrent_trials=1)
    print(f"Grid: {n} trials, {dataset}, small CNN w16/d64, batches of 96 (4 per class, augmented), triplet + "
          f"batch_semihard, {epochs} epochs x {batches} batches, eval 2000 items at the end, no val split; serial on "
          f"1 core; fastest of {repeats}; load average at start {load()}", flush=True)
    t_init, _ = timed(lambda: init_ray(ray_cfg))
    worker_nice = ray.get(ray.remote(num_cpus=1)(lambda: os.nice(0)).remote())  # a task's worker, as a trial's
    print(f"Ray start-up (init_ray, num_cpus=1; not charged): {t_init:.1f} s; Ray's workers run at nice {worker_nice}, "
          f"this process at {os.nice(0)}", flush=True)
    run_trial(grid_config(dataset, 1, 5, seed=10_000))  # warm-up of this process, not timed
    # One thread everywhere, as in Ray's trial actor (OMP_NUM_THREADS=1): torch above, and the
    # OpenMP (FAISS) and BLAS pools, loaded by now, here; the fresh process gets the variable.
    threadpool_limits(1)
    child_env = dict(os.environ, OMP_NUM_THREADS="1")

    warm, cold, tuned = [], [], []
    child = [sys.executable, os.path.abspath(__file__), "--grid-child", "--compare-dataset", dataset,
             "--grid-trials", str(n), "--epochs", str(epochs), "--batches", str(batches)]
    for rep in range(repeats):
        with CpuMeter() as meter:
            each = [timed(lambda: run_trial(c))[0] for c in cfgs]
        warm.append((sum(each), each, meter.seconds))
        proc = subprocess.run(child, capture_output=True, text=True, check=True, env=child_env)
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        cold.append((sum(got["wall"]), got["wall"], got["cpu"]))
        ends = []  # (when, seconds inside the trainable), in the order the trials ended
        with CpuMeter() as meter:
            t0 = time.perf_counter()
            outs = run_grid([("grid", c) for c in cfgs], ray_cfg, name=f"grid{rep}", storage_path=storage, progress=False,
                            on_trial_end=lambda o: ends.append((time.perf_counter(), o.seconds)))
            total = time.perf_counter() - t0
        cpu = meter.seconds
        bad = [f"{o.trial_id}: {o.status} {o.error}" for o in outs if o.status != FINISHED]
        if bad:
            raise SystemExit("grid trials failed:\n" + "\n".join(bad))
        # Trial i's share of the Tune run: from the previous trial's end (the run's start for the
        # first) to its own end; what follows the last end (Tune winding up) is apart, once a grid.
        cuts = [0.0] + [e - t0 for e, _ in ends]
        tuned.append((total, [b - a for a, b in zip(cuts, cuts[1:])], cpu, [inside for _, inside in ends], total - cuts[-1]))
        print(f"  repetition {rep + 1}: in-process {warm[-1][0]:.1f} s, in a fresh process {cold[-1][0]:.1f} s, "
              f"Ray {total:.1f} s; load {load()}", flush=True)

    best = [min(runs, key=lambda r: r[0]) for runs in (warm, cold, tuned)]
    (t_warm, e_warm, _), (t_cold, e_cold, _), (t_ray, e_ray, _, inside, tail) = best
    c_warm, c_cold, c_ray = (min(r[2] for r in runs) for runs in (warm, cold, tuned))  # CPU: its own fastest
    later = lambda each: sum(each[1:]) / (len(each) - 1) if len(each) > 1 else each[0]  # noqa: E731
    print(f"{'case':52} {'total s':>8} {'per trial':>10} {'1st trial':>10} {'later, mean':>12} {'CPU s':>8}")
    for label, total, each, cpu in (
        ("(a) in-process, this (warm) process", t_warm, e_warm, c_warm),
        ("(a') in-process, a fresh process", t_cold, e_cold, c_cold),
        ("(b) Ray Tune run_grid, 1 CPU, 1 trial at a time", t_ray, e_ray, c_ray),  # per trial: up to its end
    ):
        print(f"{label:52} {total:8.2f} {total / n:10.2f} {each[0]:10.2f} {later(each):12.2f} {cpu:8.2f}")
    print("  (wall s: the fastest repetition; CPU s: the least of the repetitions, of this process and its descendants, "
          "Ray's processes included, or of the fresh process itself)")
    mean = t_warm / n
    over = (t_ray - t_warm) / n
    print(f"per-trial overhead ((b) - (a)) / N:  {over:6.3f} s = {100 * over / mean:5.1f}% of the mean in-process trial "
          f"({mean:.2f} s); (b) / (a) = {t_ray / t_warm:.3f}" + ("" if over <= 0.05 * mean else "  (above the 5% target)"))
    print(f"per-trial overhead ((b) - (a')) / N: {(t_ray - t_cold) / n:6.3f} s = {100 * (t_ray - t_cold) / n / mean:5.1f}%; "
          f"(b) / (a') = {t_ray / t_cold:.3f}")
    print(f"in CPU time, ((b) - (a)) / N:        {(c_ray - c_warm) / n:6.3f} s = {100 * (c_ray - c_warm) / c_warm:5.1f}% "
          f"of the mean in-process trial's CPU ({c_warm / n:.2f} s)")
    steady = later(e_ray) - later(e_warm)
    print(f"  recurring, trials 2..N, (b) - (a): {steady:6.3f} s a trial = {100 * steady / later(e_warm):5.1f}% of a later "
          f"in-process trial ({later(e_warm):.2f} s)")
    fixed = e_ray[0] - later(e_ray) + tail
    print(f"  once a grid: {fixed:.2f} s = the first trial's {e_ray[0] - later(e_ray):.2f} s beyond a later one "
          f"({e_ray[0] - inside[0]:.2f} s before its trainable ran: Tune's set-up, the trial actor's new process importing "
          f"ray.tune, torch, dml_core; {inside[0] - later(inside):.2f} s more inside it: lazy first use, e.g. "
          f"torch._dynamo imported by the first optimizer) + {tail:.2f} s after the last trial ended (Tune winding up); "
          f"a fresh process's first in-process trial is {e_cold[0] - later(e_cold):.2f} s longer than its later ones")
    budget = 0.05 * later(e_warm) - steady
    print(f"  at 5% a trial, the once-a-grid cost is paid off from N >= "
          f"{math.ceil(fixed / budget) if budget > 0 else 'never (the recurring cost alone is above 5%)'} trials of this length")
    print(f"  inside the trainable (Tune's time_total_s, summed) {sum(inside):.2f} s; outside it {t_ray - sum(inside):.2f} s "
          f"(of which {e_ray[0] - inside[0]:.2f} s before the first trial ran)")
    extras = trainable_extras(cfgs[:2])
    ck = extras["state"] + extras["save"] + extras["checkpoint"]
    rest = steady - ck - extras["embeddings"]
    print(f"  the trainable beside the trial (timed here, a steady trial): {extras['checkpoints']} checkpoints {ck:.3f} s "
          f"(Trial.state {extras['state']:.3f}, torch.save {extras['save']:.3f} of {extras['bytes'] / 1024:.0f} KiB each, "
          f"Checkpoint.from_directory {extras['checkpoint']:.3f}); write_embeddings {extras['embeddings']:.3f} s; the "
          f"recurring overhead less these: {rest:.3f} s (Tune's reports and scheduling, and this machine's noise"
          + (": below it)" if rest < 0 else ")"))
    ray.shutdown()
    print(f"load average at end {load()}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="prepared/fashion_mnist")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--ray", action=argparse.BooleanOptionalAction, default=True,
                   help="also run the Ray rows (--no-ray: only the trial vs bare-loop comparison)")
    p.add_argument("--grid-only", action="store_true", help="run only the grid measurement (in-process vs run_grid)")
    p.add_argument("--grid-trials", type=int, default=8)
    p.add_argument("--grid-repeats", type=int, default=2)
    p.add_argument("--grid-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--compare-dataset", default=None, help="default: prepared/glyphs if prepared, else --dataset")
    p.add_argument("--compare-batches", type=int, default=60)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu", help="of the trial vs bare-loop comparison")
    p.add_argument("--precision-check", action="store_true", help="run only the fp32 vs bf16 accuracy and step-time check")
    p.add_argument("--threads-check", action="store_true", help="run only the 2 x 1 thread vs 1 x 2 threads check")
    p.add_argument("--threads-child", help=argparse.SUPPRESS)
    p.add_argument("--seeds", type=int, default=5, help="replicates of the precision check")
    p.add_argument("--steps", type=int, default=None,
                   help="precision check: one epoch of N batches instead of the quick horizon; threads check: steps a process (60)")
    p.add_argument("--eval-items", type=int, default=None, help="precision check: eval items (default: the quick profile's)")
    p.add_argument("--table-batches", type=int, default=30, help="precision check, step history: batches timed")
    p.add_argument("--step-history", action="store_true", help="run only today's step against --baseline's")
    p.add_argument("--baseline", default="d8ba9d0", help="step history: the commit to time today's step against")
    p.add_argument("--rounds", type=int, default=3, help="step history: rounds of the arms, alternating")
    args = p.parse_args()
    if args.precision_check or args.threads_check or args.threads_child or args.step_history:
        return checks(args)
    compare = args.compare_dataset or next(
        (d for d in ("prepared/glyphs", args.dataset) if os.path.exists(os.path.join(d, "card.json"))), args.dataset
    )
    if args.grid_child:
        grid_child(compare, args.grid_trials, args.epochs, args.batches)
        return
    for d in [compare] + ([args.dataset] if args.ray and not args.grid_only else []):
        if not os.path.exists(os.path.join(d, "card.json")):
            sys.exit(f"{d} is not prepared: run `make prepare` first")
    if args.grid_only:
        grid_benchmark(compare, args.grid_trials, args.epochs, args.batches, args.grid_repeats)
        return
    rows = compare_with_bare_loop(compare, args.compare_batches, args.repeats, args.device)
    print_comparison(rows, compare, args.compare_batches, args.repeats, args.device)
    if not args.ray:
        return
    print()
    import ray

    from dml_core.training import run_trial
    from dml_experiment.resources import RayConfig
    from dml_experiment.record import FINISHED
    from dml_experiment.runner import init_ray, run_grid

    storage = tempfile.mkdtemp(prefix="dml-bench-")
    t_init, _ = timed(lambda: init_ray(RayConfig(num_cpus=2)))
    rows = []

    def add(label, seconds, base, outcome=None):
        ok = "" if outcome is None or outcome.status == FINISHED else f"  ({outcome.status}: {outcome.error})"
        rows.append((label, seconds, base, ok))

    for batch, batches in ((96, args.batches), (384, max(2, args.batches // 4))):
        cfg2 = trial(args.dataset, batch, args.epochs, batches, threads=2)
        cfg1 = trial(args.dataset, batch, args.epochs, batches, threads=None)
        t_local, _ = timed(lambda: run_trial(cfg2))
        add(f"B={batch} in-process (2 threads)", t_local, t_local)
        t_tune, out = timed(lambda: run_grid([("tune", cfg1)], RayConfig(cpus_per_trial=2), name=f"tune{batch}", storage_path=storage, progress=False)[0])
        add(f"B={batch} Ray Tune, 1 worker", t_tune, t_local, out)
        # Each worker takes half the batch: the global batch (what is mined) stays the same.
        half = trial(args.dataset, batch // 2, args.epochs, batches, threads=None)
        t_train, out = timed(lambda: run_grid([("train", half)], RayConfig(num_workers=2), name=f"train{batch}", storage_path=storage, progress=False)[0])
        add(f"B={batch} Ray Tune + Train, 2 workers", t_train, t_local, out)
    ray.shutdown()
    print(f"Ray start-up (once per sweep, not in the rows): {t_init:.1f} s")
    print(f"{'case':40} {'wall s':>8} {'vs in-process':>14}")
    for label, seconds, base, ok in rows:
        print(f"{label:40} {seconds:8.1f} {seconds / base:13.2f}x{ok}")
    print()
    grid_benchmark(compare, args.grid_trials, args.epochs, args.batches, args.grid_repeats)


def checks(args) -> None:
    """--precision-check, --threads-check (and the latter's child processes)."""
    if args.threads_child:
        import json

        from _threads_check import child

        child(json.loads(args.threads_child))
        return
    if args.precision_check:
        from _precision_check import precision_check

        precision_check(args.seeds, args.steps, args.eval_items, args.table_batches, args.repeats)
    if args.step_history:
        from _step_history import step_history

        step_history(args.baseline, args.table_batches, args.repeats, args.rounds)
    if args.threads_check:
        from _threads_check import threads_check

        threads_check(os.path.abspath(__file__), args.steps or 60, args.repeats)


if __name__ == "__main__":
    main()
