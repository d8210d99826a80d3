"""Wall time of `dml report` on a sweep shaped like the quick profile's, piece by piece.

    .venv/bin/python benchmarks/report.py [--out DIR [--reuse]] [--stages baselines,sanity,build] [--cprofile FILE]

No quick sweep's results.json is needed: the records are made here, on the prepared
datasets the quick profile names (prepared/glyphs, prepared/glyph_tilt), with the sizes of a
real sweep: every method x every replicate of the profile (24 methods x 5 seeds), each with
64-d embeddings of the very eval rows a trial scores (6,000 glyphs items; 4,800 tilted ones),
written as Parquet like a trial's, a 5-epoch history and plausible metrics. The embeddings
are class-structured noise (the tilt's cos/sin for C7), so the report draws every plot; the
verdicts they give mean nothing. Timed, each from a cold cache:

- baselines: C9's raw-pixel baselines (flows.report.c9_baselines, baselines.json removed);
- sanity: the sanity gate's references of every comparison (flows.report.sanity_references,
  sanity.json removed): per (dataset, labels) group the untrained network of each seed and
  the raw pixels, scored on the eval items (a class set's raw pixels: C9's raw_euclidean);
- build: dml_experiment.report.build.build_report (verdicts, tables, plots, html, and the
  tuning section from the published sweep's tuning.json when there is one).

A stage timed without the stages before it reads their caches first, untimed.

`dml report` is the imports, the three stages, reading results.json and (for the quick
profile) copying the report to docs/results, which this leaves out: it would overwrite the
published one. With --cprofile the stages run under cProfile and the stats go to FILE
(`python -m pstats FILE`, then `sort cumtime`).
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def fake_metrics(rng, continuous: bool, ks) -> dict:
    if continuous:
        out = {f"ndcg@{k}": 0.6 + 0.05 * rng.random() for k in ks}
        return {**out, "spearman": 0.3 + 0.05 * rng.random(), "queries": 4800}
    r1 = 0.4 + 0.1 * rng.random()
    out = {f"recall@{k}": min(1.0, r1 + 0.05 * i) for i, k in enumerate(ks)}
    out.update({f"strict_recall@{k}": r1 / 4 for k in ks})
    out.update({f"map@{k}": r1 * 0.9 for k in ks})
    return {**out, "precision@1": r1, "r_precision": r1 / 2, "map@r": r1 / 3, "nmi": 0.6 + 0.05 * rng.random(),
            "queries": 6000, "queries_without_match": 0}


def fake_sweep(profile, out: Path) -> list[dict]:
    """Records of every final trial of the profile, embeddings on disk (see the module doc)."""
    from dml_core.data import PreparedDataset
    from dml_core.metrics import save_embeddings
    from dml_core.training.embed import stratified_subset
    from dml_experiment.paths import project_path

    (out / "artifacts").mkdir(parents=True, exist_ok=True)
    records, evals = [], {}
    for i, (name, method) in enumerate(profile.methods.items()):
        continuous = method.labels != "class"
        for config in profile.method_trials(name):
            ds_dir = project_path(config.dataset)
            if ds_dir not in evals:
                ev = PreparedDataset(ds_dir, config.eval.split)
                evals[ds_dir] = (ev, stratified_subset(ev.labels, config.eval.max_items, seed=0))
            ev, rows = evals[ds_dir]
            rng = np.random.default_rng(1000 * i + config.seed)
            dim = config.model.embedding_dim
            if continuous:
                angle = np.radians(ev.continuous_labels[rows]).reshape(len(rows))
                emb = np.concatenate([np.stack([np.cos(angle), np.sin(angle)], 1) * 3, rng.normal(size=(len(rows), dim - 2))], 1)
                labels = ev.continuous_labels[rows]
            else:
                labels = ev.labels[rows]
                centres = rng.normal(size=(int(labels.max()) + 1, dim))
                emb = centres[labels] + (0.8 + 0.1 * (i % 5)) * rng.normal(size=(len(rows), dim))
            emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
            path = out / "artifacts" / f"{name}-{config.seed}.parquet"
            save_embeddings(path, emb, labels, metadata={"data_version": "bench"})
            history = [{"epoch": float(e), "train/loss": 1.0 / (e + 1), "train/steps": 100.0} for e in range(config.train.epochs)]
            cfg = {**config.model_dump(mode="json"), "dataset": str(ds_dir)}
            records.append({
                "trial_id": f"{name}-{config.seed}", "name": f"{name}-seed{config.seed}", "method": name, "seed": config.seed,
                "partition": config.partition, "status": "finished", "error": None,
                "metrics": fake_metrics(rng, continuous, config.eval.ks), "history": history,
                "embeddings_path": str(path), "model_path": None, "seconds": 60.0, "config": cfg,
            })
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--out", help="the sweep directory to make (default: a temporary one, removed after)")
    ap.add_argument("--stages", default="baselines,sanity,build")
    ap.add_argument("--reuse", action="store_true", help="reuse the records of an earlier run in --out (its results.json)")
    ap.add_argument("--cprofile", help="write the cProfile stats of the timed stages to this file")
    args = ap.parse_args()

    t = time.perf_counter()
    import flows.report as fr
    from dml_experiment.profile import load_profile
    from dml_experiment.report.build import build_report
    from dml_experiment.report.tuning import TUNING_FILE, read_tuning

    _, profile = load_profile(args.params, args.profile)
    imports = time.perf_counter() - t
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench-report-"))
    t = time.perf_counter()
    results = out / "results.json"
    if args.reuse and results.is_file():
        records = json.loads(results.read_text())
    else:
        records = fake_sweep(profile, out)
        results.write_text(json.dumps(records))
        published = ROOT / "docs" / "results" / args.profile / TUNING_FILE
        if published.is_file():  # the published sweep's tuning document: its section and plot
            shutil.copy(published, out / TUNING_FILE)
    print(f"# {len(records)} records in {out} ({time.perf_counter() - t:.1f} s to make or read); "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    prof = cProfile.Profile() if args.cprofile else None
    stages = args.stages.split(",")
    state: dict = {"baselines": None, "references": None}
    # A stage timed without the one before it reads that one's cache (untimed), as the flow does.
    if "baselines" not in stages:
        state["baselines"] = fr.c9_baselines(out, profile, records)
    if "build" in stages and "sanity" not in stages:
        state["references"] = fr.sanity_references(out, profile, records, state["baselines"])

    def stage(name):
        if name == "baselines":
            (out / fr.BASELINE_CACHE).unlink(missing_ok=True)
            state["baselines"] = fr.c9_baselines(out, profile, records)
        elif name == "sanity":
            (out / fr.SANITY_CACHE).unlink(missing_ok=True)
            state["references"] = fr.sanity_references(out, profile, records, state["baselines"])
        elif name == "build":
            build_report(out, "bench", args.profile, profile, records, {}, 0.0, state["baselines"], commit="bench",
                         references=state["references"], tuning=read_tuning(out))
        else:
            raise ValueError(f"unknown stage {name!r}")

    # Wall time, and the CPU time of all the process's threads: on a shared machine the wall
    # time follows the other load, the CPU time much less so.
    print(f"{'imports':<10} {imports:7.1f} s wall")
    total = [imports, 0.0]
    for name in stages:
        t, c = time.perf_counter(), time.process_time()
        if prof is not None:
            prof.runcall(stage, name)
        else:
            stage(name)
        took = [time.perf_counter() - t, time.process_time() - c]
        total = [a + b for a, b in zip(total, took)]
        print(f"{name:<10} {took[0]:7.1f} s wall {took[1]:7.1f} s CPU")
    print(f"{'total':<10} {total[0]:7.1f} s wall {total[1]:7.1f} s CPU (imports: wall only)")
    if prof is not None:
        prof.dump_stats(args.cprofile)
    if not args.out:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
