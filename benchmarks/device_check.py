"""The GPU check, one script: the kernels' tests on the device, the losses benchmark there,
and the reference trial's throughput in fp32 and bf16.

    python benchmarks/device_check.py [--device cuda] [--quick] [--out summary.json]

1. pytest on tests/test_losses_*.py, test_miners.py and test_kernels_*.py with
   DML_TEST_DEVICE=<device> (tests/conftest.py: the tensors the tests build land there), and
   on CUDA, tests/test_precision.py -k cuda (an fp16 trial with a GradScaler, a bf16 trial).
2. benchmarks/losses.py --device <device>: ours vs pytorch-metric-learning, fwd + bwd with
   mining.
3. The reference trial (profile quick, method triplet_batch_semihard: small CNN, batches of
   96, 4 per class, augmentation) on the device in fp32 and in bf16 (default layout:
   channels-last on the small CNN), on a prepared set this script makes on the spot (the
   device machine has no fonts and no network): grey images of the glyphs' size, many
   classes. After an untimed warm-up epoch, one timed epoch: steps per second, and the time
   the loop waited on the batch loader against the rest (compute), every cut after
   torch.cuda.synchronize(). Then the eval split is scored (MAP@R: a sanity check that
   evaluation runs in that precision, not a result).

A compact table is printed at the end, and written as JSON to --out if given. --quick (for
CI, with --device cpu) runs two kernel test files, one small losses case and a few steps.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]

from _trial_timing import reference_trials, timed_epoch, with_train  # noqa: E402

QUICK_TESTS = ["tests/test_kernels_expansion.py", "tests/test_kernels_triplet_terms.py"]
COUNTS = ("passed", "failed", "errors", "skipped", "deselected")


def device_tests(quick: bool) -> list[str]:
    if quick:
        return QUICK_TESTS
    names = ("tests/test_losses_*.py", "tests/test_miners.py", "tests/test_kernels_*.py")
    return sorted(f for pattern in names for f in glob.glob(os.path.join(ROOT, pattern)))


def child_env() -> dict:
    """This environment with the repository first on PYTHONPATH (nothing need be installed)."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))


def run_pytest(files: list[str], device: str | None, extra: list[str] = ()) -> dict:
    """pytest in a subprocess (DML_TEST_DEVICE=device when given): counts, seconds, failures."""
    import time

    env = child_env()
    if device:
        env["DML_TEST_DEVICE"] = device
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfE", "--tb=line", *files, *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    out = proc.stdout + proc.stderr
    last = next((line for line in reversed(out.splitlines()) if re.search(r"\d+ (passed|failed|error|skipped|deselected)", line)), "")
    counts = {k: 0 for k in COUNTS}
    for n, word in re.findall(r"(\d+) (passed|failed|errors?|skipped|deselected)", last):
        counts["errors" if word.startswith("error") else word] += int(n)
    failures = [line for line in out.splitlines() if line.startswith(("FAILED", "ERROR"))]
    if proc.returncode not in (0, 1) and not failures:  # pytest itself failed (collection, usage)
        failures = out.strip().splitlines()[-15:]
    return {"files": len(files), "device": device or "default", "exit": proc.returncode, **counts,
            "seconds": round(time.perf_counter() - t0, 1), "failures": failures[:40]}


def run_losses(device: str, sizes: list[int], runs: int, only: list[str] | None) -> list[dict]:
    """benchmarks/losses.py on the device; its table is printed as it comes, its rows returned."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "losses.json")
        cmd = [sys.executable, os.path.join(HERE, "losses.py"), "--device", device, "--runs", str(runs),
               "--sizes", *map(str, sizes), "--json", path] + (["--only", *only] if only else [])
        proc = subprocess.run(cmd, cwd=ROOT, text=True, env=child_env())
        if proc.returncode != 0 or not os.path.exists(path):
            return [{"case": "benchmarks/losses.py", "error": f"exit {proc.returncode}"}]
        with open(path) as f:
            return json.load(f)


def synthetic_like(reference, out_dir: str, quick: bool) -> str:
    """A prepared set of the reference dataset's image size (params.yaml data.datasets), made here."""
    import yaml

    from _synthetic_set import write_synthetic_prepared

    with open(os.path.join(ROOT, "params.yaml")) as f:
        sets = (yaml.safe_load(f).get("data") or {}).get("datasets") or {}
    size = int((sets.get(os.path.basename(reference.dataset.rstrip("/"))) or {}).get("image_size", 32))
    classes = dict(train_classes=40, eval_classes=20) if quick else dict(train_classes=600, eval_classes=200)
    return write_synthetic_prepared(os.path.join(out_dir, "synthetic"), per_class=18, image_size=size, **classes)


def run_trial(cfg) -> dict:
    """Warm-up epoch, timed epoch, eval score of one trial config."""
    import torch

    from dml_core.training.trial import Trial

    cuda = cfg.train.device.startswith("cuda")
    trial = Trial(cfg)
    timed_epoch(trial, 0)  # warm-up: CUDA context, cuDNN's algorithm search, allocator pools
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t = timed_epoch(trial, 1)
    metrics, _ = trial.score(trial.eval_set)
    return {
        "precision": trial.precision, "channels_last": trial.channels_last, "steps": t["steps"],
        "steps_per_s": round(t["steps"] / t["seconds"], 2), "data_wait_s": round(t["data_s"], 3),
        "compute_s": round(t["compute_s"], 3), "data_share": round(t["data_s"] / t["seconds"], 3),
        "map@r": round(float(metrics["map@r"]), 4),
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3) if cuda else None,
    }


def run_trials(device: str, steps: int, quick: bool) -> list[dict]:
    reference = reference_trials()[0]
    with tempfile.TemporaryDirectory() as tmp:
        data = synthetic_like(reference, tmp, quick)
        rows = []
        for precision in ("fp32", "bf16"):
            cfg = with_train(reference, device=device, precision=precision, epochs=2, max_batches_per_epoch=steps)
            cfg = cfg.model_copy(update={"dataset": data, "eval": cfg.eval.model_copy(update={"max_items": 2000})})
            rows.append(run_trial(cfg))
        return rows


def environment(device: str) -> dict:
    import torch

    from dml_core.training.precision import cpu_bf16_flags, default_precision

    env = {"torch": torch.__version__, "device": device, "auto_precision": default_precision(device),
           "cpu_bf16_flags": list(cpu_bf16_flags()), "cpus": os.cpu_count()}
    if device.startswith("cuda"):
        env.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version(), bf16_supported=torch.cuda.is_bf16_supported())
    return env


def section(summary: dict, name: str, fn) -> None:
    """summary[name] = fn(), or the error it raised: one broken part leaves the others' results."""
    import traceback

    print(f"\n== {name}", flush=True)
    try:
        summary[name] = fn()
    except Exception as e:  # noqa: BLE001 - reported in the summary, and in the exit status
        traceback.print_exc()
        summary[name] = {"error": f"{type(e).__name__}: {e}"}


def print_summary(s: dict) -> None:
    env = s["environment"]
    print(f"\n== summary: {env['device']} {env.get('gpu', '')}, torch {env['torch']}, auto precision -> {env['auto_precision']}")
    for key in ("tests", "tests_precision"):
        t = s.get(key)
        if t is not None:
            line = t.get("error") or ", ".join(f"{t[k]} {k}" for k in COUNTS if t[k]) + f" ({t['files']} files, {t['seconds']} s)"
            print(f"{key:16} {line}")
            for failure in t.get("failures", [])[:10]:
                print(f"  {failure[:150]}")
    fmt = lambda r: f"{r['seconds'] * 1000:.2f}" if "seconds" in r else r.get("error", r.get("skipped", "-"))  # noqa: E731
    for r in s.get("losses", []) if isinstance(s.get("losses"), list) else [s.get("losses")]:
        if r and "ours" in r:
            ratio = r["ours"]["seconds"] / r["pml"]["seconds"] if "seconds" in r["ours"] and "seconds" in r["pml"] else None
            print(f"losses           {r['case']:28} B={r['batch']:<5} ours {fmt(r['ours']):>9} ms  PML {fmt(r['pml']):>9} ms"
                  + (f"  ours/PML {ratio:.2f}" if ratio else ""))
        elif r:
            print(f"losses           {r}")
    trials = s.get("trial")
    if isinstance(trials, list):
        print(f"{'trial':16} {'precision':9} {'NHWC':>5} {'steps':>5} {'steps/s':>8} {'data wait s':>11} {'compute s':>9} "
              f"{'data share':>10} {'MAP@R':>6} {'peak GiB':>8}")
        for r in trials:
            print(f"{'':16} {r['precision']:9} {str(r['channels_last']):>5} {r['steps']:5d} {r['steps_per_s']:8.2f} "
                  f"{r['data_wait_s']:11.3f} {r['compute_s']:9.3f} {r['data_share']:10.3f} {r['map@r']:6.3f} {str(r['peak_gib']):>8}")
    elif trials is not None:
        print(f"trial            {trials}")


def failed(s: dict) -> bool:
    tests = [s.get("tests") or {}, s.get("tests_precision") or {}]
    return any("error" in (v if isinstance(v, dict) else {}) for v in s.values()) or any(
        t.get("failed") or t.get("errors") for t in tests)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    p.add_argument("--quick", action="store_true", help="a few tests, one small losses case, a few steps (CI)")
    p.add_argument("--out", help="also write the summary as JSON here")
    p.add_argument("--skip", nargs="*", default=[], choices=["tests", "losses", "trial"])
    p.add_argument("--loss-sizes", type=int, nargs="+", default=None, help="batch sizes of the losses benchmark (1024 4096)")
    p.add_argument("--loss-runs", type=int, default=1, help="fresh processes per losses case and side")
    p.add_argument("--steps", type=int, default=None, help="timed training steps of each trial (60; --quick 3)")
    args = p.parse_args()
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            p.error(f"--device {args.device}: torch sees no CUDA device here")
    summary = {"environment": environment(args.device)}
    print(json.dumps(summary["environment"]), flush=True)
    if "tests" not in args.skip:
        section(summary, "tests", lambda: run_pytest(device_tests(args.quick), args.device))
        if args.device.startswith("cuda"):  # its tests are CUDA-only: skipped anywhere else
            section(summary, "tests_precision", lambda: run_pytest(["tests/test_precision.py"], None, ["-k", "cuda"]))
    if "losses" not in args.skip:
        sizes = args.loss_sizes or ([64] if args.quick else [1024, 4096])
        only = ["batch_semihard"] if args.quick else None
        section(summary, "losses", lambda: run_losses(args.device, sizes, args.loss_runs, only))
    if "trial" not in args.skip:
        section(summary, "trial", lambda: run_trials(args.device, args.steps or (3 if args.quick else 60), args.quick))
    print_summary(summary)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=1)
    return 1 if failed(summary) else 0


if __name__ == "__main__":
    sys.exit(main())
