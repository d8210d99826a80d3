"""Timing a trial's training steps: in total, waiting for batches, and per step on fixed batches.

Shared by benchmarks/training.py (--precision-check, --threads-check) and
benchmarks/device_check.py. On CUDA every cut is made after torch.cuda.synchronize(), so a
span holds the GPU work launched in it and nothing later.
"""
from __future__ import annotations

import os
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sync(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


class FixedBatches(list):
    """Pre-materialised batches that a Trial iterates in place of its BatchLoader."""

    def set_epoch(self, epoch: int) -> None:
        pass


class ClockedLoader:
    """A trial's loader that records how long each batch kept the loop waiting (the GPU's
    queue drained first, so its work is not counted as waiting)."""

    def __init__(self, inner, device):
        self.inner, self.device, self.waits = inner, device, []

    def set_epoch(self, epoch: int) -> None:
        self.inner.set_epoch(epoch)

    def __iter__(self):
        batches = iter(self.inner)
        while True:
            sync(self.device)
            t0 = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                return
            self.waits.append(time.perf_counter() - t0)
            yield batch


def timed_epoch(trial, epoch: int) -> dict:
    """One training epoch of `trial`: its steps, wall seconds, and seconds spent waiting on
    the batch loader (the batch fetched past max_batches_per_epoch, never trained on, is not
    counted)."""
    clock = ClockedLoader(trial.loader, trial.device)
    trial.loader = clock
    try:
        sync(trial.device)
        t0 = time.perf_counter()
        row = trial.train_epoch(epoch)
        sync(trial.device)
        seconds = time.perf_counter() - t0
    finally:
        trial.loader = clock.inner
    steps = int(row["train/steps"])
    data = sum(clock.waits[:steps])
    return {"steps": steps, "seconds": seconds, "data_s": data, "compute_s": seconds - data, "loss": row["train/loss"]}


def fixed_batches(cfg, n: int) -> FixedBatches:
    """The first n batches a trial of cfg would train on (its sampler and augmentation)."""
    from dml_core.training.trial import Trial

    probe = Trial(cfg)
    probe.loader.set_epoch(0)
    out = FixedBatches()
    for batch in probe.loader:
        if len(out) == n:
            break
        out.append(batch)
    return out


def step_times(variants: dict, batches: int, repeats: int) -> dict[str, float]:
    """Milliseconds per training step of each TrialConfig in `variants` ({label: cfg}) on the
    same pre-materialised batches (data loading excluded): the fastest of `repeats` epochs,
    the variants alternating so that a burst of load on a shared machine hits them all."""
    from dml_core.training.trial import Trial

    first = next(iter(variants.values()))
    fixed = fixed_batches(first, batches)
    trials = {}
    for label, cfg in variants.items():
        trials[label] = Trial(cfg)
        trials[label].loader = FixedBatches(fixed[:2])
        trials[label].train_epoch(0)  # warm-up, not timed: lazy initialisation, allocator pools
    best = {label: float("inf") for label in variants}
    for rep in range(repeats):
        order = list(variants) if rep % 2 == 0 else list(reversed(variants))
        for label in order:
            trial = trials[label]
            trial.loader = FixedBatches(fixed)
            sync(trial.device)
            t0 = time.perf_counter()
            trial.train_epoch(rep + 1)
            sync(trial.device)
            best[label] = min(best[label], (time.perf_counter() - t0) / len(fixed) * 1000)
    return best


def with_train(cfg, **train):
    """A copy of the TrialConfig with train keys replaced, validated again (fp16 on a CPU
    is refused here too)."""
    from dml_core.training import TrialConfig

    data = cfg.model_dump(mode="json")
    data["train"].update(train)
    return TrialConfig.model_validate(data)


def reference_trials(params: str | None = None, profile: str = "quick", method: str = "triplet_batch_semihard",
                     replicates: int | None = None):
    """The reference method's trial configs of a profile (one per replicate), as written in
    params.yaml (tuned values are not applied), their datasets made absolute. `replicates`
    (seed i on partition i for i < replicates) replaces the profile's own."""
    from dml_experiment.profile import load_profile

    over = {"seeds": list(range(replicates)), "partitions": list(range(replicates))} if replicates else None
    _, prof = load_profile(params or os.path.join(ROOT, "params.yaml"), profile, over)
    out = []
    for cfg in prof.method_trials(method):
        path = cfg.dataset if os.path.isabs(cfg.dataset) else os.path.join(ROOT, cfg.dataset)
        out.append(cfg.model_copy(update={"dataset": path}))
    return out
