"""What the trial machinery costs: a trial's training epoch against a bare PyTorch loop, and
Ray's overhead on a quick trial: in-process vs Ray Tune (1 worker) vs Tune + Train (2 workers).

    .venv/bin/python benchmarks/training.py [--no-ray] [--dataset prepared/fashion_mnist] [--epochs 2]

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
"""
from __future__ import annotations

import argparse
import copy
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


def comparison_config(dataset: str, batches: int, device: str):
    from dml_core.training import TrialConfig

    return TrialConfig.model_validate(
        dict(
            dataset=dataset,
            model=dict(name="small_cnn", embedding_dim=64, options=dict(width=16)),
            loss=dict(name="triplet"),
            miner=dict(name="batch_semihard"),
            sampler=dict(batch_size=96, m_per_class=4),
            train=dict(epochs=1, max_batches_per_epoch=batches, num_threads=1, device=device),
            eval=dict(val_split=None, every_epoch=False, max_items=2, nmi=False),
            seed=0,
        )
    )


class FixedBatches(list):
    """Pre-materialised batches that a Trial iterates in place of its BatchLoader."""

    def set_epoch(self, epoch: int) -> None:
        pass


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
    from dml_core.training.trial import Trial, build_optimizer, build_sampler

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="prepared/fashion_mnist")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--ray", action=argparse.BooleanOptionalAction, default=True,
                   help="also run the Ray rows (--no-ray: only the trial vs bare-loop comparison)")
    p.add_argument("--compare-dataset", default=None, help="default: prepared/glyphs if prepared, else --dataset")
    p.add_argument("--compare-batches", type=int, default=60)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu", help="of the trial vs bare-loop comparison")
    args = p.parse_args()
    compare = args.compare_dataset or next(
        (d for d in ("prepared/glyphs", args.dataset) if os.path.exists(os.path.join(d, "card.json"))), args.dataset
    )
    for d in [compare] + ([args.dataset] if args.ray else []):
        if not os.path.exists(os.path.join(d, "card.json")):
            sys.exit(f"{d} is not prepared: run `make prepare` first")
    rows = compare_with_bare_loop(compare, args.compare_batches, args.repeats, args.device)
    print_comparison(rows, compare, args.compare_batches, args.repeats, args.device)
    if not args.ray:
        return
    print()
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
