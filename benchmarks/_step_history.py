"""benchmarks/training.py --step-history: today's training step against the step of an older
commit, both timed in one run.

Issue 23's target is a step at most 0.5x "today's time (fp32 without channels-last)", where
today is the day it was filed. Since then the fp32 step itself has become faster (global
average pooling as a sum, fused Adam, the allocator's thresholds), so the fp32 row of today's
code no longer stands for that day. This check times the step of the code as it was at
--baseline (default d8ba9d0, the commit the issue was filed against), checked out with
`git archive` into a temporary directory, beside today's code in fp32 and in its default
precision and layout.

Each arm is a fresh interpreter that imports its own tree's dml_core (so the baseline runs
without today's allocator settings, exactly as it ran then), builds the reference method's
quick-profile trial from the same config (keys the older config does not know, such as
train.precision, are dropped and listed), draws --batches batches from its own loader, and
times --repeats epochs over those pre-materialised batches after two untimed warm-up steps.
The arms alternate over --rounds rounds; each arm's figure is its fastest epoch.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BASELINE = "d8ba9d0"  # the commit issue 23 was filed against


def prune(data: dict, model) -> tuple[dict, list[str]]:
    """`data` without the keys that pydantic `model` (and its nested models) does not define,
    and the dotted names of the keys dropped."""
    kept, dropped = {}, []
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            dropped.append(key)
            continue
        inner = field.annotation
        if isinstance(value, dict) and hasattr(inner, "model_fields"):
            value, sub = prune(value, inner)
            dropped += [f"{key}.{s}" for s in sub]
        kept[key] = value
    return kept, dropped


def child(spec: dict) -> None:
    """Runs in the arm's interpreter: sys.path[0] is the arm's tree."""
    sys.path.insert(0, spec["tree"])
    import torch

    from dml_core.training import TrialConfig
    from dml_core.training.trial import Trial

    class Fixed(list):
        def set_epoch(self, epoch: int) -> None:
            pass

    data, dropped = prune(spec["config"], TrialConfig)
    trial = Trial(TrialConfig.model_validate(data))
    trial.loader.set_epoch(0)
    fixed = Fixed()
    for batch in trial.loader:
        if len(fixed) == spec["batches"]:
            break
        fixed.append(batch)
    trial.loader = Fixed(fixed[:2])
    trial.train_epoch(0)  # warm-up, not timed
    times = []
    for rep in range(spec["repeats"]):
        trial.loader = Fixed(fixed)
        t0 = time.perf_counter()
        trial.train_epoch(rep + 1)
        times.append((time.perf_counter() - t0) / len(fixed) * 1000)
    print(json.dumps({"ms": times, "dropped": dropped, "threads": torch.get_num_threads(),
                      "dml_core": os.path.dirname(sys.modules["dml_core"].__file__)}))


def checkout(rev: str, into: str) -> str:
    """The tree of `rev` extracted into `into` (git archive: no worktree bookkeeping left)."""
    archive = subprocess.run(["git", "-C", ROOT, "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    return into


def run_arm(tree: str, config: dict, batches: int, repeats: int) -> dict:
    spec = {"tree": tree, "config": config, "batches": batches, "repeats": repeats}
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=tree)
    out = subprocess.run([sys.executable, os.path.abspath(__file__), json.dumps(spec)],
                         capture_output=True, text=True, env=env, cwd=tree)
    if out.returncode != 0:
        raise RuntimeError(f"arm in {tree} failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def arm_configs(batches: int) -> dict[str, tuple[str | None, dict]]:
    """{label: (tree, config)}; tree None is today's. The quick reference trial, 1 thread,
    one epoch of `batches` batches, no evaluation."""
    from _trial_timing import reference_trials, with_train

    cfg = with_train(reference_trials(replicates=1)[0], epochs=1, max_batches_per_epoch=batches, num_threads=1)
    base = cfg.model_dump(mode="json")
    # warmup_cosine is younger than the baseline; a scheduler step costs microseconds, so
    # every arm runs cosine, a schedule both trees know.
    base["optimizer"]["schedule"] = "cosine"
    base["eval"].update(val_split=None, every_epoch=False, max_items=2, nmi=False)
    fp32 = json.loads(json.dumps(base))
    fp32["train"].update(precision="fp32", channels_last=False)
    return {"baseline": (BASELINE, fp32), "fp32 today": (None, fp32), "default today": (None, base)}


def step_history(baseline: str, batches: int, repeats: int, rounds: int) -> dict:
    arms = arm_configs(batches)
    default = arms["default today"][1]["train"]
    with tempfile.TemporaryDirectory(prefix="dml-baseline-") as tmp:
        trees = {label: (checkout(baseline, tmp) if tree else ROOT) for label, (tree, _) in arms.items()}
        best: dict[str, float] = {label: float("inf") for label in arms}
        for r in range(rounds):
            order = list(arms) if r % 2 == 0 else list(reversed(arms))
            for label in order:
                got = run_arm(trees[label], arms[label][1], batches, repeats)
                best[label] = min(best[label], min(got["ms"]))
                if r == 0:
                    dropped = f"; keys its config does not know, dropped: {', '.join(got['dropped'])}" if got["dropped"] else ""
                    print(f"  {label}: dml_core from {got['dml_core']}{dropped}")
            print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in best.items()), flush=True)
    names = {"baseline": f"fp32, NCHW, code at {baseline}",
             "fp32 today": "fp32, NCHW, today's code",
             "default today": f"today's default ({default['precision']}, " + (
                 "channels-last)" if default["channels_last"] in (None, True) else "NCHW)")}
    print(f"ms per step, quick reference trial (small CNN w16, batch 96), {batches} pre-materialised batches, "
          f"1 thread, fastest of {rounds} x {repeats} epochs:")
    for label, ms in best.items():
        print(f"  {names[label]:52} {ms:8.2f} ms   {ms / best['baseline']:6.3f}x baseline   "
              f"{ms / best['fp32 today']:6.3f}x fp32 today")
    return {"ms": best, "baseline": baseline}


if __name__ == "__main__":
    child(json.loads(sys.argv[1]))
