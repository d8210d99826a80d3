"""Benchmark: the structured and softmax losses against pytorch-metric-learning (issue 4).

    .venv/bin/python benchmarks/losses_structured.py [--repeats 5] [--threads N] [--quick]

Each case runs in its own subprocess, so memory is measured honestly per case: "peak MB" is the
process's peak resident set size (getrusage ru_maxrss, native memory: tensors, allocator caches,
everything) minus its resident size just before the first loss call (after imports and inputs).
Time is the median wall time of `repeats` forward + backward passes after one warm-up pass.
Inputs: L2-normalised float32 embeddings [B, dim], 64 classes with B/64 samples each (the layout
the m-per-class sampler gives). Both sides compute the same quantity (the "value" column gives
|ours - PML| / |PML|), under the configurations printed with the table.

PML's LiftedStructureLoss and NTXentLoss build a [positive pairs, negative pairs] matrix: at
B = 1024 that is 15,360 x 1,032,192 entries (over 60 GB in float32), so those two PML cases are
skipped there and the table says so.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

CONFIG = {
    "lifted_structured": (
        "ours: lifted_structured(margin=1, smooth=True)",
        "PML: LiftedStructureLoss(neg_margin=1, pos_margin=0, distance=LpDistance(normalize_embeddings=False))",
    ),
    "npair": (
        "ours: npair(l2_reg=0)",
        "PML: NPairsLoss(distance=DotProductSimilarity(normalize_embeddings=False)) (no L2 term)",
    ),
    "infonce": ("ours: infonce(temperature=0.07)", "PML: NTXentLoss(temperature=0.07)"),
    "facility_location": ("ours: facility_location(gamma=1, pam_rounds=10)", "no PML counterpart"),
}
PML_SKIP_BYTES = 8 * 2**30  # don't start a PML case whose pair matrix alone exceeds this
TARGETS = {("lifted_structured", 256): 0.01, ("infonce", 256): 0.05, ("npair", 256): 1.0}
FACILITY_TARGET_MS = 250.0


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def build(loss: str, impl: str):
    if impl == "ours":
        from dml_core import build_loss

        opts = {"lifted_structured": dict(margin=1.0), "npair": dict(l2_reg=0.0), "infonce": dict(temperature=0.07)}
        return build_loss(loss, **opts.get(loss, {}))
    from pytorch_metric_learning import distances, losses

    if loss == "lifted_structured":
        return losses.LiftedStructureLoss(neg_margin=1, pos_margin=0, distance=distances.LpDistance(normalize_embeddings=False))
    if loss == "npair":
        return losses.NPairsLoss(distance=distances.DotProductSimilarity(normalize_embeddings=False))
    if loss == "infonce":
        return losses.NTXentLoss(temperature=0.07)
    raise ValueError(f"no PML counterpart for {loss}")


def run_case(loss: str, impl: str, batch: int, dim: int, classes: int, repeats: int) -> dict:
    """In this process: time fwd + bwd, and the peak RSS growth."""
    import torch

    gen = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(batch, dim, generator=gen), dim=1)
    y = torch.arange(classes).repeat_interleave(batch // classes)
    fn = build(loss, impl)
    base = rss_bytes()
    times, value = [], None
    for r in range(repeats + 1):
        e = x.clone().requires_grad_()
        t = time.perf_counter()
        out = fn(e, y)
        out.backward()
        if r:
            times.append(time.perf_counter() - t)
        value = float(out.detach())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    times.sort()
    return {"ms": 1e3 * times[len(times) // 2], "peak_mb": max(peak - base, 0) / 2**20, "value": value}


def spawn(loss: str, impl: str, batch: int, dim: int, classes: int, repeats: int, threads: int | None) -> dict:
    cmd = [sys.executable, __file__, "--child", loss, impl, str(batch), str(dim), str(classes), str(repeats)]
    if threads:
        cmd += ["--threads", str(threads)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def pml_pair_matrix_bytes(loss: str, batch: int, classes: int) -> int:
    per = batch // classes
    if loss not in ("lifted_structured", "infonce"):
        return 0
    return batch * (per - 1) * batch * (batch - per) * 4


def rows(batches=(256, 1024), dim=128, classes=64, repeats=5, threads=None) -> list[dict]:
    out = []
    for batch in batches:
        for loss in ("lifted_structured", "npair", "infonce"):
            ours = spawn(loss, "ours", batch, dim, classes, repeats, threads)
            need = pml_pair_matrix_bytes(loss, batch, classes)
            if need > PML_SKIP_BYTES:
                pml = {"skipped": f"needs > {need / 2**30:.0f} GiB"}
            else:
                # PML's lifted / NTXent take seconds per pass at B = 256: fewer repeats there.
                pml = spawn(loss, "pml", batch, dim, classes, min(repeats, 3), threads)
            out.append({"loss": loss, "batch": batch, "dim": dim, "ours": ours, "pml": pml})
    out.append({
        "loss": "facility_location", "batch": 256, "dim": 64,
        "ours": spawn("facility_location", "ours", 256, 64, 64, repeats, threads), "pml": {"skipped": "no PML loss"},
    })
    return out


def fmt(r: dict) -> str:
    o, p = r["ours"], r["pml"]
    if "error" in o:
        return f"| {r['loss']} | {r['batch']} | {r['dim']} | error: {o['error']} | | | | | |"
    pml_ms = f"{p['ms']:.1f}" if "ms" in p else p.get("skipped", p.get("error", ""))
    pml_mb = f"{p['peak_mb']:.0f}" if "peak_mb" in p else "-"
    ratio = f"{o['ms'] / p['ms']:.4f}" if "ms" in p else "-"
    agree = f"{abs(o['value'] - p['value']) / max(abs(p['value']), 1e-30):.1e}" if "value" in p else "-"
    target = TARGETS.get((r["loss"], r["batch"]))
    verdict = ""
    if target is not None and "ms" in p:
        verdict = f"<= {target}x: {'yes' if o['ms'] / p['ms'] <= target else 'NO'}"
    if r["loss"] == "facility_location":
        verdict = f"<= {FACILITY_TARGET_MS:.0f} ms: {'yes' if o['ms'] <= FACILITY_TARGET_MS else 'NO'}"
    return (
        f"| {r['loss']} | {r['batch']} | {r['dim']} | {o['ms']:.1f} | {pml_ms} | {ratio} | "
        f"{o['peak_mb']:.0f} | {pml_mb} | {agree} | {verdict} |"
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads in each case (default: torch's)")
    ap.add_argument("--quick", action="store_true", help="B = 256 only")
    ap.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        loss, impl, batch, dim, classes, repeats = args.child
        print(json.dumps(run_case(loss, impl, int(batch), int(dim), int(classes), int(repeats))))
        return
    import torch

    table = rows(batches=(256,) if args.quick else (256, 1024), repeats=args.repeats, threads=args.threads)
    print(f"torch {torch.__version__}, {args.threads or torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
          f"median of {args.repeats} fwd+bwd (PML: of min({args.repeats}, 3)), float32, 64 classes")
    print("| loss | B | dim | ours ms | PML ms | ours/PML | ours peak MB | PML peak MB | value rel. diff | target |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in table:
        print(fmt(r))
    print("\nConfigurations compared:")
    for loss, (ours, pml) in CONFIG.items():
        print(f"- {loss}: {ours}; {pml}")
    print("Peak MB: ru_maxrss minus the RSS just before the first loss call, one subprocess per case.")


if __name__ == "__main__":
    main()
