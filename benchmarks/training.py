"""Ray's overhead on a quick trial: in-process vs Ray Tune (1 worker) vs Tune + Train (2 workers).

    .venv/bin/python benchmarks/training.py [--dataset prepared/fashion_mnist] [--epochs 2]

The same trial (small CNN, triplet + batch_semihard, Fashion-MNIST train classes) runs
1. in this process (run_trial), 2. as one Ray Tune trial, 3. as a Tune trial driving a
2-worker Ray Train run with global-batch mining. Ray is started once beforehand, so its
start-up is printed separately and not charged to the trials. A second table compares one
and two workers on a larger batch, where data parallelism has work to split.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def trial(dataset: str, batch: int, epochs: int, batches: int, threads: int | None):
    from dml_core.training import TrialConfig

    return TrialConfig.model_validate(
        dict(
            dataset=dataset,
            model=dict(name="small_cnn", embedding_dim=64, options=dict(width=16)),
            loss=dict(name="triplet"),
            miner=dict(name="batch_semihard"),
            sampler=dict(batch_size=batch, m_per_class=batch // 3),
            train=dict(epochs=epochs, max_batches_per_epoch=batches, num_threads=threads, augment=False),
            eval=dict(max_items=2000, every_epoch=False, nmi=False),
            seed=0,
        )
    )


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="prepared/fashion_mnist")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batches", type=int, default=20)
    args = p.parse_args()
    if not os.path.exists(os.path.join(args.dataset, "card.json")):
        sys.exit(f"{args.dataset} is not prepared: run `make prepare` first")
    import ray

    from dml_core.training import run_trial
    from dml_core.training.config import RayConfig
    from dml_core.training.ray_runner import FINISHED, init_ray, run_grid

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
        t_tune, out = timed(lambda: run_grid([cfg1], RayConfig(cpus_per_trial=2), name=f"tune{batch}", storage_path=storage, progress=False)[0])
        add(f"B={batch} Ray Tune, 1 worker", t_tune, t_local, out)
        # Each worker takes half the batch: the global batch (what is mined) stays the same.
        half = trial(args.dataset, batch // 2, args.epochs, batches, threads=None)
        t_train, out = timed(lambda: run_grid([half], RayConfig(num_workers=2), name=f"train{batch}", storage_path=storage, progress=False)[0])
        add(f"B={batch} Ray Tune + Train, 2 workers", t_train, t_local, out)
    ray.shutdown()
    print(f"Ray start-up (once per sweep, not in the rows): {t_init:.1f} s")
    print(f"{'case':40} {'wall s':>8} {'vs in-process':>14}")
    for label, seconds, base, ok in rows:
        print(f"{label:40} {seconds:8.1f} {seconds / base:13.2f}x{ok}")


if __name__ == "__main__":
    main()
