"""Where a final trial's time goes: training steps against everything else (issue "Trial
throughput": fixed costs at most 25% of a trial at quick's horizon, 10% at full's).

    .venv/bin/python benchmarks/fixed_costs.py [--profile quick] [--method triplet_batch_semihard]
                                               [--steps N,...] [--full-steps N] [--mlflow]

One final trial of the profile's method (its config as the sweep builds it: precision and
channels-last resolved for this machine, the final runs' evaluation), in this process, one
thread, is run the way the Ray trainable runs it, each part timed:

- setup: ``Trial(config)`` (the data opened, the network, loss, miner and optimizer built);
- training: the ``train_epoch`` calls (the steps, the batch loader included);
- checkpoints: ``Trial.state`` and ``save_state`` after every epoch;
- evaluation: the final ``score`` of the evaluation split (embedding + retrieval metrics + NMI);
- artifacts: ``write_embeddings`` (embeddings Parquet and model.pt);
- tracking (``--mlflow``): ``SweepTracker.log_trial`` into a throw-away SQLite store, the
  per-trial figures and the embeddings artifact included.

The fixed share is (total - training) / total at each horizon in ``--steps`` (default: the
profile's own, epochs x batches per epoch; other horizons are split into epochs of at most
the profile's batches per epoch). The full profile's horizon is
computed, not run: the per-step time measured here times ``--full-steps`` (default: the full
profile's epochs x batches per epoch) plus the fixed parts
measured with the full profile's evaluation (every evaluation image). Ray's own hand-over
(~0.15-0.25 s a trial with reused actors) is measured by ``benchmarks/training.py --grid-only``
and not included here.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def final_config(profile: str, method: str, steps: int):
    """The method's first final trial with the horizon `steps` (epochs x batches per epoch,
    an epoch at most one pass of the sampler)."""
    from dml_experiment.profile import load_profile

    _, prof = load_profile("params.yaml", profile)
    cfg = prof.method_trials(method)[0]
    per_epoch = min(steps, epoch_steps(cfg))
    epochs = max(1, round(steps / per_epoch))
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={
        "epochs": epochs, "max_batches_per_epoch": per_epoch, "num_threads": 1})})


def epoch_steps(cfg) -> int:
    """The training steps of one epoch of cfg: one pass of its sampler, capped by
    max_batches_per_epoch (what Trial.steps_per_epoch says)."""
    from dml_core.training.trial import Trial

    return Trial(cfg).steps_per_epoch


def horizon(profile: str, method: str = "triplet_batch_semihard") -> int:
    """A profile's final-run steps: epochs x the steps of an epoch."""
    from dml_experiment.profile import load_profile

    cfg = load_profile("params.yaml", profile)[1].method_trials(method)[0]
    return cfg.train.epochs * epoch_steps(cfg)


def clock(parts: dict, key: str, fn):
    t0 = time.perf_counter()
    out = fn()
    parts[key] = parts.get(key, 0.0) + time.perf_counter() - t0
    return out


def timed_trial(cfg, mlflow_dir: str | None) -> dict:
    """One final trial the way the Ray trainable runs it, each part timed (seconds)."""
    from dml_core.training.trial import Trial
    from dml_experiment.runner import save_state, write_embeddings

    parts: dict[str, float] = {}
    out = tempfile.mkdtemp(prefix="dml-fixed-")
    trial = clock(parts, "setup", lambda: Trial(cfg))
    last = cfg.train.epochs - 1
    for epoch in range(cfg.train.epochs):
        clock(parts, "training", lambda: trial.train_epoch(epoch))
        if epoch == last:
            metrics, emb = clock(parts, "evaluation", lambda: trial.score(trial.eval_set))
            trial.final = (metrics, emb)
            clock(parts, "artifacts", lambda: write_embeddings(trial, out, "probe"))
        with tempfile.TemporaryDirectory() as d:
            clock(parts, "checkpoints", lambda: save_state(d, trial.state(epoch)))
    if mlflow_dir is not None:
        clock(parts, "tracking", lambda: track(cfg, trial, out, mlflow_dir))
    parts["steps"] = cfg.train.epochs * trial.steps_per_epoch
    return parts


def track(cfg, trial, out: str, mlflow_dir: str) -> None:
    from dml_experiment.record import FINISHED, TrialRecord
    from dml_core.training.identity import trial_id, trial_name
    from flows.tracking import SweepTracker

    metrics, _ = trial.final
    path = os.path.join(out, "probe", "embeddings.parquet")
    record = TrialRecord(trial_id=trial_id(cfg), name=trial_name(cfg), method="probe", seed=cfg.seed, status=FINISHED,
                         metrics=metrics, history=[], embeddings_path=path, config=cfg.model_dump(mode="json"))
    with SweepTracker("bench", f"fixed-{time.time_ns()}", "bench", {}, uri=f"sqlite:///{mlflow_dir}/mlflow.db",
                      artifact_location=f"{mlflow_dir}/artifacts") as tracker:
        tracker.log_trial(record)


def share(parts: dict) -> tuple[float, float]:
    total = sum(v for k, v in parts.items() if k != "steps")
    return total, (total - parts["training"]) / total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--method", default="triplet_batch_semihard")
    ap.add_argument("--steps", default=None, help="horizons to run, comma-separated (default: the profile's)")
    ap.add_argument("--full-steps", type=int, default=None, help="the full profile's horizon (computed; default: its own)")
    ap.add_argument("--mlflow", action="store_true", help="time the MLflow logging of the trial too")
    args = ap.parse_args()
    args.steps = args.steps or str(horizon(args.profile))
    args.full_steps = args.full_steps or horizon("full")

    import torch

    torch.set_num_threads(1)
    mlflow_dir = tempfile.mkdtemp(prefix="dml-fixed-mlflow-") if args.mlflow else None
    timed_trial(final_config(args.profile, args.method, 10), mlflow_dir)  # warm: lazy imports, caches
    rows = []
    for steps in (int(s) for s in args.steps.split(",")):
        cfg = final_config(args.profile, args.method, steps)
        parts = timed_trial(cfg, mlflow_dir)
        rows.append((f"{args.profile} {parts['steps']} steps", parts))
    full = final_config("full", args.method, 30)
    full_parts = timed_trial(full.model_copy(update={"train": full.train.model_copy(update={"epochs": 1})}), mlflow_dir)
    per_step = rows[-1][1]["training"] / rows[-1][1]["steps"]
    computed = {**full_parts, "training": per_step * args.full_steps, "steps": args.full_steps}
    computed["checkpoints"] = full_parts["checkpoints"] * full.train.epochs
    rows.append((f"full {args.full_steps} steps (computed)", computed))
    print(f"{args.method}, precision {cfg.train.precision}, channels_last {cfg.train.channels_last}, 1 thread")
    keys = ["setup", "training", "checkpoints", "evaluation", "artifacts"] + (["tracking"] if args.mlflow else [])
    print("| horizon | " + " | ".join(keys) + " | total s | fixed share |")
    print("|---|" + "---|" * (len(keys) + 2))
    for name, parts in rows:
        total, fixed = share(parts)
        print(f"| {name} | " + " | ".join(f"{parts.get(k, 0.0):.2f}" for k in keys) + f" | {total:.1f} | {fixed:.1%} |")
    print(f"ms per training step: {per_step * 1000:.1f}")


if __name__ == "__main__":
    main()
