"""Speed and memory of our losses and miners beside pytorch-metric-learning 2.9.

    .venv/bin/python benchmarks/losses.py [--sizes 256 1024 4096] [--device cuda] [--json rows.json]

Random L2-normalised embeddings, dim 128, 64 classes (B/64 per class), fwd+bwd of the loss
with its miner (the miner runs inside the timed step, as in training). Times are medians
over repeats after a warm-up; memory is the peak RSS growth of a fresh process running only
that case. PML runs its own equivalent: the same margin and the same distance (squared
Euclidean for the triplet rows, Euclidean for contrastive). PML has no batch semi-hard
miner; its closest, TripletMarginMiner(type_of_triplets="semihard"), is the reference for
both semi-hard rows. PML rows whose all-triplet enumeration would need more than
--pml-max-gib of index memory are skipped and say so.

Each case runs in --runs fresh processes, ours and PML alternating, and the table keeps each
side's fastest run (and its largest peak). On this VM what a process pays for fresh memory
depends on what ran before it (the kernel hands idle memory back to the host, and faulting
it in again costs 1-3 us per page), so one run per case can be off by 20% either way; the
fastest of a few is the least disturbed. Cases slower than 2 s run once.

--device cuda puts the embeddings (and so the whole step) on the GPU: each timed step ends in
torch.cuda.synchronize(), and the peak column is then the GPU memory the step allocated
(torch.cuda.max_memory_allocated), not the process's RSS.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _measure import fmt_mem, fmt_time, run_case, time_call  # noqa: E402

DIM, CLASSES, MARGIN = 128, 64, 0.2

# name: (our loss, our loss opts, our miner or None, PML spec)
CASES = {
    "contrastive": ("contrastive", {"neg_margin": 1.0, "squared": False}, None, ("ContrastiveLoss", None)),
    "triplet (all triplets)": ("triplet", {"margin": MARGIN}, None, ("TripletMarginLoss", None)),
    "triplet + semihard": ("triplet", {"margin": MARGIN}, "semihard", ("TripletMarginLoss", "semihard")),
    "triplet + batch_semihard": ("triplet", {"margin": MARGIN}, "batch_semihard", ("TripletMarginLoss", "semihard")),
    "triplet + hard": ("triplet", {"margin": MARGIN}, "hard", ("TripletMarginLoss", "hard")),
    "triplet + easy": ("triplet", {"margin": MARGIN}, "easy", ("TripletMarginLoss", "easy")),
    "triplet + batch_hard": ("triplet", {"margin": MARGIN}, "batch_hard", ("TripletMarginLoss", "batch_hard")),
    "triplet + distance_weighted": ("triplet", {"margin": MARGIN}, "distance_weighted", ("TripletMarginLoss", "distance_weighted")),
    "triplet + random": ("triplet", {"margin": MARGIN}, "random", None),
    "contrastive + all_pairs": ("contrastive", {"neg_margin": 1.0, "squared": False}, "all_pairs", ("ContrastiveLoss", None)),
}
ALL_TRIPLET_PML = {None, "semihard", "hard", "easy"}  # PML enumerates every triplet for these


def make_batch(batch: int, seed: int = 0, device: str = "cpu"):
    import torch

    g = torch.Generator().manual_seed(seed)  # drawn on the CPU, then moved: the same batch on every device
    emb = torch.nn.functional.normalize(torch.randn(batch, DIM, generator=g), dim=1).to(device).requires_grad_()
    labels = (torch.arange(batch) % CLASSES).to(device)
    return emb, labels


def timed_step(loss, miner, batch: int, device: str):
    """One fwd+bwd of `loss` on a fresh batch, with `miner` (None: the loss's own tuples)
    inside the step, as in training."""
    emb, labels = make_batch(batch, device=device)

    def step():
        emb.grad = None
        idx = miner(emb, labels) if miner else None
        loss(emb, labels, idx).backward()

    return step


def ours_step(name: str, batch: int, device: str = "cpu"):
    from dml_core import build_loss, build_miner

    loss_name, opts, miner_name, _ = CASES[name]
    loss = build_loss(loss_name, **opts)
    miner = None
    if miner_name:
        kw = {"margin": MARGIN} if miner_name in ("semihard", "hard", "easy") else {}
        if miner_name in ("semihard", "hard", "easy"):
            kw["max_triplets"] = None
        miner = build_miner(miner_name, **kw)
    return timed_step(loss, miner, batch, device)


def pml_step(name: str, batch: int, device: str = "cpu"):
    from pytorch_metric_learning import distances, losses, miners

    loss_cls, miner_kind = CASES[name][3]
    sq = distances.LpDistance(power=2)
    if loss_cls == "ContrastiveLoss":
        loss = losses.ContrastiveLoss(pos_margin=0.0, neg_margin=1.0)
    else:
        loss = losses.TripletMarginLoss(margin=MARGIN, distance=sq)
    miner = None
    if miner_kind in ("semihard", "hard", "easy"):
        miner = miners.TripletMarginMiner(margin=MARGIN, type_of_triplets=miner_kind, distance=sq)
    elif miner_kind == "batch_hard":
        miner = miners.BatchHardMiner(distance=sq)
    elif miner_kind == "distance_weighted":
        miner = miners.DistanceWeightedMiner()
    return timed_step(loss, miner, batch, device)


def triplet_count(batch: int) -> int:
    per_class = batch // CLASSES
    return batch * (per_class - 1) * (batch - per_class)


def region_counts(batch: int) -> dict:
    """How many triplets each margin region holds on this batch, counted without building them."""
    from dml_core.distances import build_distance
    from dml_core.miners.margin import margin_cuts

    emb, labels = make_batch(batch)
    d = build_distance("squared_euclidean")(emb.detach())
    a, p, sorted_neg, hard_end, semi_end = margin_cuts(d, labels, MARGIN)
    return {
        "hard": int(hard_end.sum()),
        "semihard": int((semi_end - hard_end).sum()),
        "easy": int((sorted_neg.count[a] - semi_end).sum()),
        "all_triplets": triplet_count(batch),
    }


def child(case: dict) -> None:
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    device = case.get("device", "cpu")
    step = (ours_step if case["impl"] == "ours" else pml_step)(case["name"], case["batch"], device)
    if not device.startswith("cuda"):
        print(json.dumps(time_call(step)))
        return

    def synced():
        step()
        torch.cuda.synchronize()  # the step's kernels, not only their launch

    synced()  # first use: CUDA context, kernel caches (time_call warms up once more)
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = time_call(synced)
    out["peak_mib"] = (torch.cuda.max_memory_allocated() - base) / 2**20
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--ours-max-gib", type=float, default=6.0, help="skip our margin-miner rows whose output alone exceeds this")
    parser.add_argument("--pml-max-gib", type=float, default=6.0, help="skip PML rows whose all-triplet indices exceed this")
    parser.add_argument("--only", nargs="+", metavar="CASE", help="only the cases whose name contains one of these")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per case and side; the fastest is kept")
    parser.add_argument("--device", default="cpu", help="where the embeddings, the miner and the loss run (cpu, cuda)")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON to PATH")
    args = parser.parse_args()
    if args.case:
        return child(json.loads(args.case))

    script = os.path.abspath(__file__)
    print(
        f"losses: fwd+bwd with mining, dim {DIM}, {CLASSES} classes, margin {MARGIN}, "
        f"torch threads {os.environ.get('OMP_NUM_THREADS', '2')}, fastest of {args.runs} fresh processes each, "
        f"device {args.device}" + (" (peak: GPU memory allocated)" if args.device.startswith("cuda") else "")
    )
    header = f"{'case':30} {'B':>5} {'ours':>12} {'ours peak':>12} {'PML':>12} {'PML peak':>12} {'ours/PML':>9}"
    print(header)
    print("-" * len(header))
    rows = []
    for batch in args.sizes:
        counts = region_counts(batch)
        for name, (_, _, miner_name, pml) in CASES.items():
            if args.only and not any(o in name for o in args.only):
                continue
            impls = {}
            if miner_name in ("semihard", "hard", "easy") and counts[miner_name] * 24 / 2**30 > args.ours_max_gib:
                ours = {"skipped": f"{counts[miner_name] / 1e6:.0f}M trip."}
            else:
                impls["ours"] = ours = {}
            if pml is None:
                ref = {"skipped": "no PML equiv."}
            elif pml[1] in ALL_TRIPLET_PML and pml[0] == "TripletMarginLoss" and triplet_count(batch) * 24 / 2**30 > args.pml_max_gib:
                ref = {"skipped": f"needs {triplet_count(batch) * 24 / 2**30:.0f} GiB"}
            else:
                impls["pml"] = ref = {}
            for run in range(args.runs):
                for impl, best in impls.items():
                    if run and ("error" in best or best["seconds"] > 2.0):
                        continue
                    result = run_case(script, {"impl": impl, "name": name, "batch": batch, "device": args.device})
                    if "error" in result or not best:
                        best.update(result)
                    elif "seconds" in result:
                        best.update(seconds=min(best["seconds"], result["seconds"]), peak_mib=max(best["peak_mib"], result["peak_mib"]))
            ratio = f"{ours['seconds'] / ref['seconds']:9.3f}" if "seconds" in ours and "seconds" in ref else f"{'-':>9}"
            print(f"{name:30} {batch:5d} {fmt_time(ours):>12} {fmt_mem(ours):>12} {fmt_time(ref):>12} {fmt_mem(ref):>12} {ratio}", flush=True)
            rows.append({"case": name, "batch": batch, "device": args.device, "ours": ours, "pml": ref})
        gib = {k: v * 24 / 2**30 for k, v in counts.items()}
        print(
            f"  B={batch}: margin-miner outputs at this batch (random embeddings): "
            + ", ".join(f"{k} {v / 1e6:.1f}M triplets = {gib[k]:.2f} GiB of int64 indices" for k, v in counts.items())
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
