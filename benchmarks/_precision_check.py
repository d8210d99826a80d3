"""benchmarks/training.py --precision-check: does bf16 cost accuracy, and what does it buy?

The reference method (profile quick, method triplet_batch_semihard, its options as written in
params.yaml, not tuned) at the quick horizon, over --seeds replicates (seed i on partition i),
once in fp32 without channels-last (what every trial ran before train.precision existed)
and once in bf16 with the default layout (channels-last on the small CNN), 1 thread, the two
runs of a replicate back to back in alternating order. Printed: each replicate's MAP@R and
ms per training step (data loading included, as in a sweep), the paired MAP@R difference
bf16 - fp32 with its 95% t interval (Student's t on the replicate differences), and the
step-time ratio bf16 / fp32 of the same runs. Then ms per step of the four combinations
(fp32, fp32 + channels-last, bf16, bf16 + channels-last) on the same pre-materialised batches
(data loading excluded), fastest of --repeats.
"""
from __future__ import annotations

import math
import statistics
import time

from _trial_timing import reference_trials, step_times, with_train

ARMS = {"fp32": dict(precision="fp32", channels_last=False), "bf16": dict(precision="bf16", channels_last=None)}
TABLE = {
    "fp32": dict(precision="fp32", channels_last=False),
    "fp32 + channels_last": dict(precision="fp32", channels_last=True),
    "bf16": dict(precision="bf16", channels_last=False),
    "bf16 + channels_last": dict(precision="bf16", channels_last=True),
}


def horizon(cfg, steps: int | None, eval_items: int | None):
    """The quick trial, 1 thread; --steps N shortens it to one epoch of N batches."""
    train = {"num_threads": 1}
    if steps:
        train.update(epochs=1, max_batches_per_epoch=steps)
    cfg = with_train(cfg, **train)
    if eval_items:
        cfg = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"max_items": eval_items})})
    return cfg


def run_timed(cfg) -> dict:
    """A whole trial (train, then score the eval split): its MAP@R and ms per training step."""
    from dml_core.training.trial import Trial

    trial = Trial(cfg)
    spent = {"seconds": 0.0, "steps": 0}
    train_epoch = trial.train_epoch

    def timed(epoch):
        t0 = time.perf_counter()
        row = train_epoch(epoch)
        spent["seconds"] += time.perf_counter() - t0
        spent["steps"] += int(row["train/steps"])
        return row

    trial.train_epoch = timed
    result = trial.run()
    return {"map@r": result.metrics["map@r"], "ms_per_step": 1000 * spent["seconds"] / spent["steps"]}


def warm_up(cfg) -> None:
    """Two training steps in each arm, untimed, so the first timed trial does not pay this
    process's lazy initialisation (kernels, allocator pools) for the others."""
    from dml_core.training.trial import Trial

    for train in ARMS.values():
        Trial(with_train(cfg, epochs=1, max_batches_per_epoch=2, **train)).train_epoch(0)


def t_interval(diffs: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean of paired differences and its two-sided t interval (nan with one replicate)."""
    from scipy import stats

    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return mean, mean - half, mean + half


def precision_check(seeds: int, steps: int | None, eval_items: int | None, table_batches: int, repeats: int) -> dict:
    base = [horizon(c, steps, eval_items) for c in reference_trials(replicates=seeds)]
    print(f"Precision check: quick / triplet_batch_semihard, {len(base)} replicates, {base[0].train.epochs} epochs x "
          f"{base[0].train.max_batches_per_epoch} batches of {base[0].sampler.batch_size}, 1 thread, eval "
          f"{base[0].eval.max_items} items; fp32 = fp32 without channels-last, bf16 = bf16 with the default layout", flush=True)
    warm_up(base[0])
    runs = {arm: [] for arm in ARMS}
    for i, cfg in enumerate(base):
        for arm in ARMS if i % 2 == 0 else reversed(ARMS):
            runs[arm].append(run_timed(with_train(cfg, **ARMS[arm])))
        print(f"  seed {cfg.seed} partition {cfg.partition}: " + ", ".join(
            f"{arm} MAP@R {runs[arm][-1]['map@r']:.4f} ({runs[arm][-1]['ms_per_step']:.1f} ms/step)" for arm in ARMS), flush=True)
    diffs = [b["map@r"] - f["map@r"] for b, f in zip(runs["bf16"], runs["fp32"])]
    mean, lo, hi = t_interval(diffs)
    ratio = sum(r["ms_per_step"] for r in runs["bf16"]) / sum(r["ms_per_step"] for r in runs["fp32"])
    print(f"MAP@R bf16 - fp32 (paired, n={len(diffs)}): {mean:+.4f}, 95% t interval [{lo:+.4f}, {hi:+.4f}]")
    print(f"step time bf16 / fp32 (the same runs, data loading included): {ratio:.3f}")
    variants = {label: with_train(base[0], **train) for label, train in TABLE.items()}
    table = step_times(variants, table_batches, repeats)
    print(f"ms per step, {table_batches} pre-materialised batches (no data loading), 1 thread, fastest of {repeats}:")
    for label, ms in table.items():
        print(f"  {label:24} {ms:8.2f} ms   {ms / table['fp32']:6.3f}x fp32")
    return {"runs": runs, "diff": {"mean": mean, "low": lo, "high": hi}, "step_ratio": ratio, "table_ms": table}
