"""The sweep's report on disk: results.json (every trial), then the comparisons report
(report.md, report.html, metrics.json, verdicts.json, plots/) built by dml_experiment.report.build."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from dml_experiment.paths import PROJECT_DIR, project_path
from dml_experiment.provenance import git_commit, write_atomic
from dml_experiment.report.baselines import BASELINES
from dml_experiment.report.build import build_report
from dml_experiment.report.sanity import REFERENCES
from dml_experiment.report.convergence import read_convergence
from dml_experiment.report.tuning import read_tuning
from dml_experiment.record import TrialRecord
from dml_experiment.profile import Profile

log = logging.getLogger(__name__)

BASELINE_CACHE = "baselines.json"
BASELINE_CACHE_VERSION = 2  # bump when dml_experiment.report.baselines changes what it computes


def default_dataset_dir(profile: Profile, records: list[dict]) -> Path:
    """The profile's `default` dataset: the absolute path the flow put in the records'
    configs when a trial ran on it, else the profile's path under the project."""
    rel = profile.datasets["default"]
    for r in records:
        ds = str((r.get("config") or {}).get("dataset") or "")
        if ds and (ds == rel or ds.endswith("/" + rel.strip("/"))) and Path(ds).is_dir():
            return Path(ds)
    return project_path(rel)


def c9_baselines(out_dir: Path, profile: Profile, records: list[dict]) -> list[dict] | None:
    """C9's raw-pixel baselines when a comparison asks for them (cached in baselines.json,
    keyed by the data version and the evaluation settings, so a re-render does not refit)."""
    if not any(c.baselines for c in profile.comparisons.values()):
        return None
    from dml_core.data import data_version
    from dml_experiment.report.baselines import raw_baselines

    dataset = default_dataset_dir(profile, records)
    try:
        version = data_version(dataset)
    except (OSError, ValueError) as e:
        return [TrialRecord.fixed(n, error=f"{type(e).__name__}: {e}").row() for n in BASELINES]
    key = {"version": BASELINE_CACHE_VERSION, "data_version": version, "max_items": profile.eval.max_items,
           "ks": list(profile.eval.ks), "dataset": str(dataset)}
    cache = out_dir / BASELINE_CACHE
    if cache.is_file():
        try:
            stored = json.loads(cache.read_text())
            if stored.get("key") == key and all(r["status"] == "finished" for r in stored["records"]):
                return stored["records"]
        except (ValueError, KeyError, TypeError):
            pass
    found = raw_baselines(dataset, profile.eval.max_items, profile.eval.ks)
    write_atomic(cache, json.dumps({"key": key, "records": found}, indent=1, default=str))
    return found


SANITY_CACHE = "sanity.json"
SANITY_CACHE_VERSION = 2  # bump when dml_experiment.report.sanity changes what it computes


def resolved_trial(profile: Profile, method: str, records: list[dict]):
    """The method's first trial config, on the dataset directory its trials ran on (the
    absolute path in their records), else the profile's path under the project."""
    config = profile.method_trials(method)[0]
    ran_on = [str((r.get("config") or {}).get("dataset") or "") for r in records if r.get("method") == method]
    found = next((d for d in ran_on if d and Path(d).is_dir()), None)
    p = Path(found or config.dataset)
    return config.model_copy(update={"dataset": str(project_path(p))})


def sanity_references(out_dir: Path, profile: Profile, records: list[dict], baselines: list[dict] | None = None) -> dict[str, list[dict]]:
    """{comparison id: raw-pixel and untrained-network records} for the sanity gate, scored
    once per (dataset, labels) of the comparisons' first methods and cached in sanity.json
    (keyed by the data version, model, evaluation settings and seeds). The raw-pixel reference
    of a class-labelled set is C9's raw_euclidean baseline when `baselines` hold it."""
    from dml_core.data import data_version
    from dml_experiment.report.sanity import raw_from_baselines, reference_records

    cache_path = out_dir / SANITY_CACHE
    try:
        cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    except ValueError:
        cache = {}
    out, computed, changed = {}, {}, False
    for cid, comp in profile.comparisons.items():
        method = next((m for m in comp.methods if m in profile.methods), None)
        if method is None:
            continue
        config = resolved_trial(profile, method, records)
        group = f"{profile.methods[method].dataset}:{'class' if config.labels == 'class' else 'continuous'}"
        if group not in computed:
            try:
                version = data_version(config.dataset)
            except (OSError, ValueError):
                continue  # the trials failed on it too; the report says so
            key = {"version": SANITY_CACHE_VERSION, "data_version": version, "dataset": config.dataset, "model": config.model.model_dump(mode="json"),
                   "eval": config.eval.model_dump(mode="json"), "labels": config.labels, "label_bins": config.label_bins,
                   "seeds": list(profile.seeds)}
            stored = cache.get(group) or {}
            if stored.get("key") == key:
                computed[group] = stored["records"]
            else:
                try:
                    computed[group] = reference_records(config, list(profile.seeds), raw_from_baselines(config, baselines))
                except Exception as e:  # noqa: BLE001 - an unscored gate is reported, never fatal
                    computed[group] = [TrialRecord.fixed(m, error=f"{type(e).__name__}: {e}").row() for m in REFERENCES]
                cache[group] = {"key": key, "records": computed[group]}
                changed = True
        out[cid] = computed[group]
    if changed:
        write_atomic(cache_path, json.dumps(cache, indent=1, default=str))
    return out


README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
BESIDE_START, BESIDE_END = "<!-- beside:start -->", "<!-- beside:end -->"
README = PROJECT_DIR / "README.md"
# The README's headline is the published evidence, the full profile's run in docs/results/full;
# beside it, claim by claim, the latest run of the default profile, the 30-minute check.
HEADLINE_PROFILE, CHECK_PROFILE = "full", "quick"


PUBLISHED = ("report.md", "report.html", "metrics.json", "verdicts.json", "tuning.json", "convergence.json", "sweep.json", "plots")


def publish(report_dir: Path, dest: Path) -> Path:
    """Copy the report (not the per-trial results) to dest, replacing what was there: the
    snapshot the README links to, small enough to commit. A sweep that wrote its report into
    dest itself is already published, and its records stay."""
    import shutil

    if Path(report_dir).resolve() == Path(dest).resolve():
        return Path(dest)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        for name in PUBLISHED:
            src = report_dir / name
            if src.is_dir():
                shutil.copytree(src, tmp / name)
            elif src.is_file():
                shutil.copy2(src, tmp / name)
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
    finally:  # a failed copy (a full disk) leaves no half snapshot behind
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def replace_block(text: str, start: str, end: str, body: str) -> str | None:
    """text with what lies between the markers start and end replaced by body; None when
    either marker is missing."""
    if start not in text or end not in text:
        return None
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}\n{end}{tail}"


def beside_block(results: Path, readme: Path) -> str | None:
    """Quick's verdicts beside full's, claim by claim (quick's table alone until full is
    published); None when quick has no published run."""
    from dml_experiment.report.beside import side_by_side
    from dml_experiment.report.build import verdict_table

    check, headline = results / CHECK_PROFILE, results / HEADLINE_PROFILE
    if not (check / "verdicts.json").is_file():
        return None
    rel = os.path.relpath(check / "report.md", readme.parent)
    if (headline / "verdicts.json").is_file():
        table = side_by_side({CHECK_PROFILE: check, HEADLINE_PROFILE: headline})
    else:
        table = f"{HEADLINE_PROFILE} is not published yet; {CHECK_PROFILE} alone:\n\n{verdict_table(check)}"
    return f"{table}\n\n{CHECK_PROFILE}'s report: [{rel}]({rel})."


def update_readme(report_dir: Path, profile_name: str, readme: Path | None = None) -> bool:
    """Publish this report under docs/results/ and rewrite the README's generated tables: the
    headline (the full profile's verdicts, from its run in docs/results/full) and quick beside
    full. A full run written elsewhere leaves the published one and the headline alone."""
    from dml_experiment.report.build import verdict_table

    readme = Path(readme or README)
    if profile_name not in (HEADLINE_PROFILE, CHECK_PROFILE) or not readme.is_file():
        return False
    results = readme.parent / "docs" / "results"
    if profile_name == HEADLINE_PROFILE and Path(report_dir).resolve() != (results / HEADLINE_PROFILE).resolve():
        log.warning("README left as it is: its headline is the %s run in %s, not %s (run the sweep with "
                    "--out docs/results/%s to publish)", HEADLINE_PROFILE, results / HEADLINE_PROFILE, report_dir, HEADLINE_PROFILE)
        return False
    publish(Path(report_dir), results / profile_name)
    text = readme.read_text()
    if profile_name == HEADLINE_PROFILE:
        rel = os.path.relpath(results / HEADLINE_PROFILE / "report.md", readme.parent)
        text = replace_block(text, README_START, README_END,
                             f"{verdict_table(report_dir)}\n\nThe full report: [{rel}]({rel}).") or text
    beside = beside_block(results, readme)
    if beside is not None:
        text = replace_block(text, BESIDE_START, BESIDE_END, beside) or text
    write_atomic(readme, text)
    return True


def write_sweep_report(
    out_dir: Path, name: str, profile_name: str, profile: Profile, records: list[dict], versions: dict, seconds: float,
    *, write_results: bool = True,
) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if write_results:  # `dml report` re-renders from results.json and leaves it as it is
        write_atomic(out_dir / "results.json", json.dumps(records, indent=1, default=str))
    baselines = c9_baselines(out_dir, profile, records)
    references = sanity_references(out_dir, profile, records, baselines)
    report = build_report(out_dir, name, profile_name, profile, records, versions, seconds, baselines,
                          commit=git_commit(PROJECT_DIR), references=references,
                          tuning=read_tuning(out_dir) if profile.tune is not None else None,
                          convergence=read_convergence(out_dir) if profile.convergence is not None else None)
    update_readme(out_dir, profile_name)
    return report
