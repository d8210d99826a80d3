"""The `dml` command: what Make, the DVC stages and the Prefect flow all call.

    dml prepare                         prepare the datasets of params.yaml (data: section)
    dml validate --profile smoke        check a profile and list its trials, start nothing
    dml sweep --profile quick           run a sweep profile end to end (Prefect flow)
    dml sweep --profile smoke --set train.epochs=1 --set seeds=[0]
    dml report --sweep quick-1a2b3c4d   rebuild a sweep's report from its results.json
    dml beside docs/results/quick docs/results/full   two sweeps' verdicts, claim by claim
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dml_experiment.paths import PROJECT_DIR


def overrides_of(pairs: list[str] | None) -> dict:
    from dml_experiment.profile import parse_override

    return {".".join(k): v for k, v in (parse_override(p) for p in pairs or [])}


def cmd_prepare(args) -> int:
    from dml_core.data.__main__ import main as data_main

    return data_main(["prepare", "--params", args.params] + (["--only", *args.only] if args.only else []))


def cmd_validate(args) -> int:
    from dml_experiment.profile import load_profile

    name, profile = load_profile(args.params, args.profile, overrides_of(args.set))
    trials = profile.trials()
    print(f"profile {name}: valid; {len(trials)} trials ({len(profile.methods)} methods x {len(profile.seeds)} seeds"
          + (", plus the grid" if profile.grid else "") + ")")
    for method, t in trials:
        print(f"  {method:28} loss={t.loss.name} miner={t.miner.name if t.miner else '-'} distance={t.distance or '-'} seed={t.seed}")
    return 0


def cmd_sweep(args) -> int:
    from dml_experiment.profile import load_profile

    # Validate here first: a bad key fails in a second, before Prefect, Ray or any data start.
    load_profile(args.params, args.profile, overrides_of(args.set))
    from flows.sweep import dml_sweep
    from flows.tracking import redacted_uri, tracking_uri

    report = dml_sweep(
        profile=args.profile, overrides=overrides_of(args.set), force=args.force, params_path=args.params,
        report_dir=args.out,
    )
    uri = redacted_uri(tracking_uri(PROJECT_DIR))
    print(f"\nreport: {report}")
    if uri.startswith("sqlite:"):
        print(f"browse the runs: .venv/bin/mlflow ui --backend-store-uri {uri}   (then open http://127.0.0.1:5000)")
    else:
        print(f"browse the runs: {uri}")
    return 0


def cmd_report(args) -> int:
    from dml_experiment.profile import load_profile
    from flows.report import write_sweep_report

    directory = Path(args.sweep) if Path(args.sweep).is_dir() else PROJECT_DIR / "reports" / args.sweep
    results = directory / "results.json"
    if not results.is_file():
        raise ValueError(f"--sweep {args.sweep!r}: no results.json in {directory}")
    records = json.loads(results.read_text())
    meta_path = directory / "sweep.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {"sweep": directory.name, "profile": directory.name.rsplit("-", 1)[0]}
    _, profile = load_profile(args.params, meta["profile"], meta.get("overrides"))
    print(write_sweep_report(
        # seconds 0: a re-render, whose run information comes from sweep.json, not from now
        directory, meta["sweep"], meta["profile"], profile, records, meta.get("versions", {}), 0.0,
        write_results=False,
    ))
    return 0


def cmd_beside(args) -> int:
    from dml_experiment.report.beside import side_by_side

    labels = args.labels or [Path(d).name for d in args.directories]
    if len(labels) != len(args.directories):
        raise ValueError(f"--labels: {len(labels)} labels for {len(args.directories)} directories")
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        # One column per label: a repeated one would silently drop a sweep.
        raise ValueError(f"--labels: {', '.join(map(repr, repeated))} names two directories; "
                         "give each its own label (--labels quick full)")
    print(side_by_side(dict(zip(labels, args.directories))))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dml", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--params", default=str(PROJECT_DIR / "params.yaml"), help="the params file (default: the project's params.yaml)")
    s = sub.add_parser("prepare", parents=[common], help="prepare the datasets (the DVC prepare stage)")
    s.add_argument("--only", nargs="+", metavar="NAME", help="only these datasets of data.datasets")
    s.set_defaults(run=cmd_prepare)
    for name, fn, help_ in (("validate", cmd_validate, "validate a profile, list its trials"), ("sweep", cmd_sweep, "run a sweep profile end to end")):
        s = sub.add_parser(name, parents=[common], help=help_)
        s.add_argument("--profile", default=None, help="a profile of params.yaml (default: sweep.profile there, else quick)")
        s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a profile key, e.g. train.epochs=2 (repeatable)")
        if name == "sweep":
            s.add_argument("--force", action="store_true", help="re-run trials that already finished in this sweep")
            s.add_argument("--out", default=None, help="the report directory (default: reports/<sweep name>)")
        s.set_defaults(run=fn)
    s = sub.add_parser("report", parents=[common], help="rebuild a sweep's report from its results")
    s.add_argument("--sweep", required=True, help="a sweep name (reports/<name>) or its directory")
    s.set_defaults(run=cmd_report)
    s = sub.add_parser("beside", help="print sweeps' verdicts side by side, claim by claim (markdown)")
    s.add_argument("directories", nargs="+", metavar="DIR", help="report directories holding verdicts.json")
    s.add_argument("--labels", nargs="+", help="a column label per directory (default: the directory names)")
    s.set_defaults(run=cmd_beside)
    return p


def main(argv: list[str] | None = None) -> int:
    """Exit 0 on success, 2 for a bad config or bad data (the error names the key or the
    file), 1 for a sweep whose every trial failed (the error gives each cause once), whose
    results MLflow did not get (the error names the URI and the trials), or that a full disk
    stopped (the error names the path and the free space)."""
    from dml_experiment.provenance import DiskFull
    from flows.errors import SweepFailed

    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (SweepFailed, DiskFull) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
