"""The comparisons report of a sweep: report.md, report.html, metrics.json, verdicts.json, plots/.

``build_report`` turns a sweep's records (results.json rows, plus C9's raw-pixel baselines)
into one section per comparison of the profile (C1-C9): the claim, the setup, a table of
mean ± 95% interval over seeds, the paired tests and computed verdict of each claim, Holm-corrected
over every claim of the sweep (``verdict.judge_family``), the plots (``plots.py``), and for C5 the published numbers beside ours
(``published.py``). Nothing is written by hand: every number and verdict comes from the
records. Files are written to temporary names and renamed.

``verdict_table`` renders the verdicts as one Markdown table (for the README) from a report
directory (its verdicts.json) or from the dict ``build_report`` stores there.
"""
from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..parts import read_parts
from ..paths import project_path
from ..provenance import git_commit, now_utc, write_atomic
from ..record import as_rows
from .labels import LABELS, label
from .published import PUBLISHED, PUBLISHED_SOURCES, published_table, ranking_agreement
from .summary import comparison_table, markdown_table, summarize
from .tuning import tuning_section
from .convergence import convergence_section, not_converged_note
from ..convergence import unconverged_families
from .sanity import REFERENCES, gate, reference_values
from .verdict import (
    ALPHA, EQUIVALENT, HOLDS, MARGIN, NOT_SHOWN, NOT_TESTABLE, REVERSED, ClaimVerdict, judge_family, overall, parse_claim,
    interaction,
    unjudged,
)

CLASS_METRICS = ("recall@1", "recall@2", "recall@4", "recall@8", "map@r", "r_precision", "nmi")
CONTINUOUS_METRICS = ("ndcg@1", "ndcg@2", "ndcg@4", "ndcg@8", "spearman")
CLAIM_KEY = {">": "vs", "!=": "ne", "~": "eq"}  # metrics.json keys: a_vs_b, a_ne_b, a_eq_b
VERDICT_MARK = {HOLDS: "**holds**", REVERSED: "**reversed**", EQUIVALENT: "**equivalent**", NOT_SHOWN: "not shown",
                NOT_TESTABLE: "not testable here"}


# -- small helpers ----------------------------------------------------------------------------
def clean(x: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python, recursively."""
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def fmt(x: float | None, scale: float = 100.0, digits: int = 1, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x * scale:+.{digits}f}" if sign else f"{x * scale:.{digits}f}"


def fmt_p(p: float | None) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "-"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def resolve_path(path: str | None) -> Path | None:
    if not path:
        return None
    p = Path(path)
    if p.exists():
        return p
    q = project_path(path)
    return q if q.exists() else None


def is_continuous(profile, comp) -> bool:
    if comp.metric.startswith("ndcg") or comp.metric == "spearman":
        return True
    return any(profile.methods[m].labels in ("continuous", "binned") for m in comp.methods if m in profile.methods)


def table_metrics(profile, comp) -> tuple[str, ...]:
    base = CONTINUOUS_METRICS if is_continuous(profile, comp) else CLASS_METRICS
    ks = [int(k) for k in profile.eval.ks]
    prefix = "ndcg" if is_continuous(profile, comp) else "recall"
    ranked = tuple(f"{prefix}@{k}" for k in ks)
    rest = tuple(m for m in base if not m.startswith(prefix + "@"))
    out = ranked + rest
    return out if comp.metric in out else (comp.metric,) + out


def secondary_metrics(profile, comp) -> list[str]:
    """The comparison's `secondary` metrics: reported beside the primary one, never judged."""
    return [m for m in comp.secondary if m != comp.metric]


def baseline_names(baselines: list[dict] | None) -> list[str]:
    out = []
    for r in baselines or []:
        if r["method"] not in out:
            out.append(r["method"])
    return out


# -- run information (date, commit, data versions, wall time) ---------------------------------
def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def versions_from_embeddings(profile, records: list[dict]) -> dict[str, str]:
    """The data version each trial recorded in its embeddings file, per dataset alias."""
    from dml_core.metrics import load_metadata

    out = {}
    for alias, rel in profile.datasets.items():
        for r in records:
            ds = str((r.get("config") or {}).get("dataset") or "")
            emb = resolve_path(r.get("embeddings_path"))
            if emb is None or not (ds == rel or ds.endswith("/" + rel.strip("/"))):
                continue
            try:
                v = load_metadata(emb).get("data_version")
            except Exception:  # noqa: BLE001
                v = None
            if v:
                out[alias] = v
                break
    return out


def run_info(out_dir: Path, profile, records: list[dict], versions: dict, seconds: float, commit: str | None) -> dict:
    """When and on what the sweep ran. A re-render (`dml report`, seconds 0 and no
    versions) keeps what the flow recorded: sweep.json, else the previous verdicts.json."""
    info = {"date": None, "commit": None, "seconds": None, "versions": dict(versions or {}), "source": None}
    if seconds and seconds > 0:
        info.update(date=now_utc(), commit=commit or git_commit(), seconds=float(seconds), source="measured by the sweep flow")
    else:
        # A re-render: what the flow recorded in sweep.json, filled in from the report the
        # sweep wrote first (verdicts.json) for what an older sweep.json lacks.
        sweep = read_json(out_dir / "sweep.json")
        sweep = sweep if isinstance(sweep, dict) else {}
        prev = read_json(out_dir / "verdicts.json")
        prev = prev.get("run") if isinstance(prev, dict) and isinstance(prev.get("run"), dict) else {}
        secs = next((sweep.get(k) for k in ("seconds", "wall_seconds", "wall_time_seconds") if isinstance(sweep.get(k), (int, float))), None)
        info.update(
            date=sweep.get("date") or prev.get("date"),
            commit=sweep.get("commit") or prev.get("commit"),
            seconds=float(secs) if secs else prev.get("seconds"),
            source="sweep.json" if sweep else "the report first written by the sweep" if prev else None,
        )
        if not info["versions"]:
            info["versions"] = dict(sweep.get("versions") or prev.get("versions") or {})
    if not info["versions"]:
        info["versions"] = versions_from_embeddings(profile, records)
    info["parts"] = read_parts(out_dir)
    return info


def split_summary(dataset_dir: Path | None) -> str:
    """"train classes 0-2, validation 3-4, evaluation 5-9" from a prepared card."""
    if dataset_dir is None:
        return ""
    try:
        from dml_core.data import read_card

        card = read_card(dataset_dir)
    except Exception:  # noqa: BLE001
        return ""
    parts = []
    for split, word in (("train", "training"), ("val", "validation (selection)"), ("eval", "evaluation (unseen)")):
        labels = [c["label"] for c in card.get("classes", []) if split in (c.get("counts") or {})]
        if labels:
            span = f"{min(labels)}-{max(labels)}" if labels == list(range(min(labels), max(labels) + 1)) else ",".join(map(str, labels))
            parts.append(f"{word} classes {span}")
    return ", ".join(parts)


def protocol_summary(profile) -> str:
    m, s, o, t, e = profile.model, profile.sampler, profile.optimizer, profile.train, profile.eval
    comp = (f"{s.m_per_class} per class" if s.m_per_class else f"{s.classes_per_batch} classes" if s.classes_per_batch
            else f"class ratio {s.class_ratio}" if s.class_ratio else "")
    batches = f" x at most {t.max_batches_per_epoch} batches" if t.max_batches_per_epoch else ""
    return (
        f"model `{m.name}` ({m.embedding_dim}-d{', L2-normalised' if m.normalize else ''}), batch {s.batch_size}"
        f"{' (' + comp + ')' if comp else ''}, {o.name} lr {o.lr}, {t.epochs} epoch(s){batches}"
        f"{', augmentation' if t.augment else ''}; evaluation on "
        f"{'all' if e.max_items is None else f'at most {e.max_items}'} items of the unseen classes "
        "(the same stratified items, seed 0, for every trial), K in " + ", ".join(str(k) for k in e.ks)
    )


# -- method descriptions ----------------------------------------------------------------------
def component_text(c) -> str:
    if c is None:
        return "-"
    opts = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in c.options.items())
    return f"{c.name}({opts})" if opts else c.name


def loss_distance(m) -> str:
    """The distance the method's loss really uses: its own option, the method's, or the
    loss's default (triplet's is squared Euclidean, contrastive's Euclidean)."""
    from dml_core.losses import LOSSES

    if "distance" in m.loss.options:
        return str(m.loss.options["distance"])
    if m.distance:
        return m.distance
    default = LOSSES.options(m.loss.name).get("distance")
    return f"{default} (default)" if isinstance(default, str) else "-"


def ran_with(m, records: list[dict], name: str):
    """The method as its final runs ran: the loss, miner and learning rate of its first
    finished record (tuned values, where the sweep tuned), else as the profile writes it."""
    from dml_core.training.config import ComponentConfig

    cfg = next((r.get("config") for r in records if r.get("method") == name and r.get("status") == "finished" and r.get("config")), None)
    if not cfg or "loss" not in cfg:  # a record without its trial config: as the profile writes it
        return m.loss, m.miner, None
    miner = ComponentConfig.model_validate(cfg["miner"]) if cfg.get("miner") else None
    return ComponentConfig.model_validate(cfg["loss"]), miner, (cfg.get("optimizer") or {}).get("lr")


def setup_table(profile, methods: list[str], baselines: list[dict], records: list[dict] = ()) -> str:
    """One row per method with the options its final runs used (after tuning, if any)."""
    lines = ["| method | loss | miner | distance | labels | data | sampler | lr |", "|---|---|---|---|---|---|---|---|"]
    for name in methods:
        m = profile.methods.get(name)
        if m is None:
            lines.append(f"| `{name}` | ? | | | | | | |")
            continue
        loss, miner, lr = ran_with(m, list(records), name)
        sampler = ", ".join(f"{k}={v}" for k, v in m.sampler.items()) or "shared"
        lr = f"{lr:.3g}" if isinstance(lr, (int, float)) else f"{profile.optimizer.lr:g}"
        lines.append(
            f"| `{name}` | {component_text(loss)} | {component_text(miner)} | {loss_distance(m)} | "
            f"{m.labels} | {m.dataset} | {sampler} | {lr} |"
        )
    for r in baselines:
        cfg = r.get("config") or {}
        lines.append(f"| `{r['method']}` | none (no training) | - | {cfg.get('baseline', '')} | class | default | - | - |")
    return "\n".join(lines)


# -- claims ------------------------------------------------------------------------------------
def _num(x) -> float:
    return math.nan if x is None else float(x)


def decisive_p(v: dict) -> float:
    """The Holm-adjusted p the verdict rests on: the TOST's for an equivalence (or an "~"
    claim), the difference test's otherwise. ``v``: a verdict's dict."""
    if v.get("op") == "~" or v.get("verdict") == EQUIVALENT:
        return _num(v.get("p_tost_holm"))
    return _num(v.get("p_holm"))


def interval_text(v: dict) -> str:
    """"+4.1 [+1.2, +7.0] (98.3%)" (×100) from a verdict's dict; the level is the one the
    decision used (verdict.py: the claim's Holm step, or 1 - 2 alpha_k for an equivalence)."""
    diff = fmt(_num(v.get("diff")), sign=True)
    if (v.get("n") or 0) < 2 or v.get("low") is None or v.get("level") is None:
        return diff
    return f"{diff} [{fmt(_num(v['low']), sign=True)}, {fmt(_num(v['high']), sign=True)}] ({_pct(v['level'])})"


def _pct(level: float) -> str:
    return f"{level * 100:.4g}%"


def claim_sentence(v: ClaimVerdict) -> str:
    """One claim's verdict as a sentence: Δ with the interval the decision used, its p's,
    the minimum detectable effect and the replicates."""
    lab = label(v.metric)
    head = f"`{v.claim}` on {lab}: {VERDICT_MARK.get(v.verdict, v.verdict)}"
    if v.n < 2 or math.isnan(v.diff):
        diff = f"Δ = {fmt(v.diff, sign=True)} (n = {v.n})" if not math.isnan(v.diff) else "no paired result"
        return f"{head} — {v.reason or 'not enough data'}; {diff}."
    kind = "equivalence (TOST) interval" if v.interval == "equivalence" else "interval"
    step = f", Holm step {v.step} of {v.family}" if v.step else ", outside the Holm family"
    ps = f"p {fmt_p(v.p)} raw, {fmt_p(v.p_holm)} Holm-adjusted"
    if v.op in ("!=", "~"):
        ps += f"; TOST p (±{v.margin * 100:g}) {fmt_p(v.p_tost)} raw, {fmt_p(v.p_tost_holm)} Holm-adjusted"
    return (
        f"{head} — Δ = {fmt(v.diff, sign=True)}, {_pct(v.level)} {kind} [{fmt(v.low, sign=True)}, {fmt(v.high, sign=True)}] "
        f"(×100{step}); {ps}; minimum detectable effect {fmt(v.mde)} at power 0.8; n = {v.n} replicates"
        + equivalence_power(v) + (f"; {v.reason}" if v.reason else "")
        + (f"; the tests warned: {'; '.join(v.notes)}" if v.notes else "") + "."
    )


def equivalence_power(v: ClaimVerdict) -> str:
    """For an "~" claim: the TOST's power at the observed SD, and the replicates it needs."""
    if v.op != "~" or math.isnan(v.tost_power):
        return ""
    need = f"about {v.n_needed} replicates" if v.n_needed else "more replicates than can be run"
    text = f"; TOST power {v.tost_power:.2f} at the observed SD if the arms were equal (a conclusive test needs {need})"
    return text + (" — **equivalence is out of reach at this n**" if v.tost_power < 0.8 else "")


def claims_table(verdicts: list[ClaimVerdict]) -> str:
    lines = [
        "| claim | metric | mean A | mean B | Δ = A − B [interval] (level) | n | p raw | p Holm | TOST p Holm | MDE | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        tost = fmt_p(v.p_tost_holm) if v.op in ("!=", "~") else ""
        lines.append(
            f"| `{v.claim}` | {label(v.metric)} | {fmt(v.mean_a)} | {fmt(v.mean_b)} | {interval_text(v.as_dict())} | {v.n} | "
            f"{fmt_p(v.p)} | {fmt_p(v.p_holm)} | {tost} | {fmt(v.mde)} | "
            f"{VERDICT_MARK.get(v.verdict, v.verdict)}{' (' + v.reason + ')' if v.reason else ''} |"
        )
    return "\n".join(lines)


def secondary_table(claims: list[str], records: list[dict], metrics: list[str], margin: float = MARGIN) -> tuple[str, dict]:
    """The claims' numbers on secondary metrics: Δ with its plain 95% interval and the raw
    two-sided p, never a verdict (only the primary metric is judged)."""
    lines = ["| claim | " + " | ".join(label(m) for m in metrics) + " |", "|---|" + "---|" * len(metrics)]
    out = {}
    for c in claims:
        cells = []
        for m in metrics:
            v = unjudged(c, records, m, margin=margin)
            out.setdefault(c, {})[m] = v
            cells.append(f"Δ {interval_text(v.as_dict())}, p {fmt_p(v.p)}, n {v.n}")
        lines.append(f"| `{parse_claim(c).text}` | " + " | ".join(cells) + " |")
    return "\n".join(lines), out


# -- plots of one comparison ----------------------------------------------------------------
def best_learned(profile, comp, records: list[dict]) -> tuple[str | None, dict | None]:
    """The learned method with the best mean on the comparison's metric, and its trial with
    the lowest seed whose embeddings file exists."""
    summ = summarize([r for r in records if r.get("method") in comp.methods], (comp.metric,))
    ranked = sorted((s[comp.metric].mean, m) for m, s in summ.items() if s[comp.metric].n and not math.isnan(s[comp.metric].mean))
    for _, m in reversed(ranked):
        trials = sorted((r for r in records if r.get("method") == m and r.get("status") == "finished"
                         and resolve_path(r.get("embeddings_path")) is not None), key=lambda r: (r.get("seed") is None, r.get("seed") or 0))
        if trials:
            return m, trials[0]
    return None, None


def trial_eval_data(record: dict):
    """(embeddings, dataset, rows, eval labels, class names) of a trial's final eval embeddings."""
    from dml_core.data import PreparedDataset
    from dml_core.metrics import load_embeddings
    from dml_core.training.embed import stratified_subset

    cfg = record.get("config") or {}
    emb, labels = load_embeddings(resolve_path(record["embeddings_path"]))
    ds_dir = resolve_path(cfg.get("dataset"))
    if ds_dir is None:
        raise FileNotFoundError(f"the trial's dataset {cfg.get('dataset')!r} is not on this machine")
    ev = cfg.get("eval") or {}
    ds = PreparedDataset(ds_dir, ev.get("split") or "eval")
    rows = stratified_subset(ds.labels, ev.get("max_items"), seed=0)
    if len(rows) != len(emb) or (labels.ndim == 1 and labels.dtype.kind in "iu" and not np.array_equal(labels, ds.labels[rows])):
        raise ValueError(f"the embeddings ({len(emb)} rows) do not match the eval rows of {ds_dir} ({len(rows)} rows)")
    names = {int(c["label"]): c["name"] for c in ds.card.get("classes", [])}
    return emb, ds, rows, ds.labels[rows], names


def trial_distance(record: dict) -> str:
    cfg = record.get("config") or {}
    return (cfg.get("eval") or {}).get("distance") or ("cosine" if cfg.get("distance") == "cosine" else "euclidean")


def comparison_plots(cid: str, comp, profile, records: list[dict], baselines: list[dict], plots_dir: Path) -> list[tuple[str, str]]:
    """[(caption, relative path or an error note)] of the comparison's figures."""
    from . import plots

    cont = is_continuous(profile, comp)
    prefix = "ndcg" if cont else "recall"
    base_names = baseline_names(baselines) if comp.baselines else []
    out = []

    def attempt(caption, fn):
        try:
            path = fn()
            out.append((caption, f"plots/{Path(path).name}"))
        except Exception as e:  # noqa: BLE001 - a figure that cannot be drawn is noted, not fatal
            out.append((caption, f"ERROR: {type(e).__name__}: {str(e)[:300]}"))

    attempt(f"{label(prefix + '@K')} curves and per-seed {label(comp.metric)}", lambda: plots.recall_curves(
        plots_dir / f"{cid}_recall.png", f"{cid}: {label(prefix + '@K')} on the unseen classes", comp.methods, records,
        profile.eval.ks, prefix=prefix, metric=comp.metric, baselines=base_names))
    attempt("training curves", lambda: plots.training_curves(
        plots_dir / f"{cid}_training.png", f"{cid}: training", comp.methods, records, metric=comp.metric))

    best, trial = best_learned(profile, comp, records)
    if trial is None:
        out.append(("embedding map and retrieval grid", "ERROR: no finished trial with an embeddings file"))
        return out
    seed = trial.get("seed")
    who = f"`{best}` (best mean {label(comp.metric)}; seed {seed})"
    loaded = []

    def eval_data():  # read once for both figures: the Parquet file, the split, its rows
        if not loaded:
            loaded.append(trial_eval_data(trial))
        return loaded[0]

    def emb_map():
        emb, ds, rows, labels, names = eval_data()
        panels = []
        if cont and ds.continuous_labels is not None:
            panels.append({"title": f"{best}, seed {seed}", "x": emb, "angles": np.asarray(ds.continuous_labels[rows]).reshape(len(rows), -1)[:, 0]})
        else:
            panels.append({"title": f"{best}, seed {seed}", "x": emb, "labels": labels, "names": names})
        if comp.baselines:
            from .baselines import raw_pixels

            panels.append({"title": "raw pixels (no training)", "x": raw_pixels(ds, rows), "labels": labels, "names": names})
        return plots.embedding_map(plots_dir / f"{cid}_embedding.png", f"{cid}: 2-D map of the eval-class embeddings", panels)

    def grid():
        emb, ds, rows, labels, names = eval_data()
        angles = None
        if cont and ds.continuous_labels is not None:
            angles = np.asarray(ds.continuous_labels[rows]).reshape(len(rows), -1)[:, 0]
        return plots.retrieval_grid(
            plots_dir / f"{cid}_retrieval.png", f"{cid}: top 5 of {best} (seed {seed}), {trial_distance(trial)} distance",
            emb, lambda r: ds.get_batch(rows[r]).images.numpy(), labels, names=names, angles=angles,
            distance=trial_distance(trial))

    attempt(f"2-D embedding map of {who}", emb_map)
    attempt(f"retrieval grid of {who}", grid)
    return out


# -- C5 beside the published numbers -------------------------------------------------------
def published_datasets(profile, comp, records: list[dict]) -> list[str]:
    """The published tables measured on the source of the arms' data (their dataset cards'
    `source`); every table when the arms ran on another source (the glyphs, say)."""
    from dml_core.data import read_card

    dirs = {str((r.get("config") or {}).get("dataset", "")) for r in records if r.get("method") in comp.methods}
    dirs |= {profile.datasets.get(profile.methods[m].dataset, "") for m in comp.methods if m in profile.methods}
    sources = set()
    for d in filter(None, map(resolve_path, dirs - {""})):
        try:
            sources.add(read_card(d).get("source"))
        except (FileNotFoundError, ValueError):
            continue  # not a prepared directory: it names no published table
    found = sorted({PUBLISHED_SOURCES[s] for s in sources if s in PUBLISHED_SOURCES})
    return found or list(PUBLISHED)


def c5_published(profile, comp, records: list[dict]) -> tuple[str, list[dict]]:
    summ = summarize([r for r in records if r.get("method") in comp.methods], ("nmi", "recall@1", "recall@2", "recall@4", "recall@8"))
    datasets = published_datasets(profile, comp, records)
    ours = ["| ours (mean over seeds, %) | " + " | ".join(label(m) for m in ("nmi", "recall@1", "recall@2", "recall@4", "recall@8")) + " |",
            "|---|---|---|---|---|---|"]
    for m in comp.methods:
        s = summ.get(m)
        ours.append(f"| `{m}` | " + " | ".join(fmt(s[k].mean) if s else "-" for k in ("nmi", "recall@1", "recall@2", "recall@4", "recall@8")) + " |")
    agreements, lines = [], []
    for metric in ("nmi", "recall@1"):
        values = {m: summ[m][metric].mean for m in comp.methods if m in summ}
        found = [ranking_agreement(values, metric, ds) for ds in datasets]
        agreements += found
        if len(found) > 1 and all(a["published"] == found[0]["published"] and a["tau"] == found[0]["tau"] for a in found):
            # The same published order on every dataset: one line, naming them all.
            text = found[0]["text"].replace(f"published {found[0]['dataset']} ranking", "published ranking on " + " and ".join(datasets) + " alike")
            lines.append(f"- {text} {'Agrees.' if found[0]['agrees'] else 'Does not agree.'}")
        else:
            lines += [f"- {a['text']} {'Agrees.' if a['agrees'] else 'Does not agree.'}" for a in found]
    text = [
        "Ours (this sweep, our data and model):", "", "\n".join(ours), "",
        published_table(datasets), "",
        "**Ranking agreement** (our means over seeds against the published order; a ranking of means, "
        "not a test — the paired tests above say which of our gaps are significant):", "",
    ]
    text += lines
    return "\n".join(text), agreements


# -- the report --------------------------------------------------------------------------------
def headline_metrics(profile, comp) -> list[str]:
    base = ["ndcg@8", "spearman"] if is_continuous(profile, comp) else ["recall@1", "map@r", "nmi"]
    return ([comp.metric] if comp.metric not in base else []) + base


def build_report(out_dir, sweep_name: str, profile_name: str, profile, records: list[dict], versions: dict,
                 seconds: float, baselines: list[dict] | None = None, *, commit: str | None = None,
                 references: dict[str, list[dict]] | None = None, tuning: dict | None = None,
                 convergence: dict | None = None) -> Path:
    """Write report.md, report.html, metrics.json, verdicts.json and plots/*.png into out_dir;
    returns the path of report.md.

    ``references`` maps a comparison id to its sanity-gate records (raw pixels, the untrained
    network: ``sanity.reference_records``); a comparison without them is judged ungated."""
    out_dir = Path(out_dir)
    plots_dir = out_dir / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    records = as_rows(records)
    baselines = as_rows(baselines or [])
    all_records = records + baselines
    run = run_info(out_dir, profile, records, versions, seconds, commit)
    rendered = {"date": now_utc(), "commit": commit or git_commit()}

    comparisons: dict[str, dict] = {}
    sections: list[str] = []
    metrics_json: dict[str, dict] = {}
    refs_of = {cid: list((references or {}).get(cid) or []) for cid in profile.comparisons}
    ref_values = {cid: reference_values(refs_of[cid], comp.metric) for cid, comp in profile.comparisons.items()}
    fixed = {cid: set(baseline_names(baselines)) if comp.baselines else set() for cid, comp in profile.comparisons.items()}
    # Every primary claim of the sweep is one Holm family; the sanity gate runs between the
    # passes and takes the claims it stops out of the family (verdict.py, sanity.py).
    family = judge_family(profile.comparisons, all_records, ALPHA,
                          gate=lambda cid, v: gate(v, ref_values[cid], fixed[cid]))
    family_size = max((v.family for vs in family.values() for v in vs), default=0)
    flagged = unconverged_families(convergence)
    for cid, comp in profile.comparisons.items():
        comp_baselines = baselines if comp.baselines else []
        refs = refs_of[cid]
        verdicts = family[cid]
        methods = list(comp.methods) + baseline_names(comp_baselines) + [m for m in REFERENCES if any(r.get("method") == m for r in refs)]
        entry = {"claim": comp.claim, "factor": comp.factor, "quote": comp.quote, "departs": comp.departs,
                 "metric": comp.metric, "margin": comp.margin, "secondary_metrics": list(comp.secondary),
                 "methods": methods, "overall": overall(verdicts), "family_size": family_size,
                 # A claim is flagged only for the families of its own two arms.
                 "verdicts": [dict(v.as_dict(), not_converged=sorted(not_converged_note([v.a, v.b], profile, flagged)))
                              for v in verdicts],
                 "sanity_gate": {m: ref_values[cid].get(m) for m in REFERENCES} if refs else None,
                 "not_converged": not_converged_note(comp.methods, profile, flagged)}
        sections.append(render_section(cid, comp, profile, records, all_records + refs, comp_baselines, verdicts, plots_dir, entry, refs))
        comparisons[cid] = entry
        summ = summarize([r for r in all_records + refs if r.get("method") in methods], headline_metrics(profile, comp))
        flat = {}
        for m in methods:
            for k in headline_metrics(profile, comp):
                if m in summ:
                    flat[f"{m}.{k}"] = round(summ[m][k].mean, 6) if not math.isnan(summ[m][k].mean) else None
        for v in verdicts:
            key = f"{v.a}_{CLAIM_KEY[v.op]}_{v.b}"
            for name, x in (("diff", v.diff), ("p", v.p), ("p_holm", v.p_holm), ("p_tost_holm", v.p_tost_holm), ("mde", v.mde)):
                if name.startswith("p_tost") and v.op == ">":
                    continue
                flat[f"{key}.{name}"] = None if math.isnan(x) else round(x, 6)
            flat[f"{key}.n"] = v.n
            # holds 1, reversed -1, equivalent and not shown 0 (equivalent is its own key), not testable None
            flat[f"{key}.holds"] = None if v.verdict == NOT_TESTABLE else {HOLDS: 1, REVERSED: -1}.get(v.verdict, 0)
            flat[f"{key}.equivalent"] = None if v.verdict == NOT_TESTABLE else int(v.verdict == EQUIVALENT)
        metrics_json[cid] = flat

    doc = {"sweep": sweep_name, "profile": profile_name, "run": run, "rendered": rendered,
           "seeds": list(profile.seeds), "alpha": ALPHA, "family_size": family_size, "comparisons": comparisons}
    # The tuning that chose each method's options, after the comparisons it made fair.
    sections = sections + [tuning_section(tuning, plots_dir), convergence_section(convergence)]
    md = render_document(sweep_name, profile_name, profile, records, baselines, run, rendered, doc, sections)
    write_atomic(out_dir / "report.md", md)
    write_atomic(out_dir / "report.html", render_html(md, f"dml sweep {sweep_name}"))
    write_atomic(out_dir / "metrics.json", json.dumps(clean(metrics_json), indent=1, sort_keys=False) + "\n")
    write_atomic(out_dir / "verdicts.json", json.dumps(clean(doc), indent=1) + "\n")
    return out_dir / "report.md"


# What a replicate's partition means where the profile draws every split's classes.
DRAWN = "; a partition p > 0 drew its own training, validation and evaluation classes from the whole population"


def render_section(cid, comp, profile, records, all_records, comp_baselines, verdicts, plots_dir, entry, refs=()) -> str:
    methods = list(comp.methods) + baseline_names(comp_baselines)
    ref_methods = [m for m in REFERENCES if any(r.get("method") == m for r in refs)]
    lines = [f"## {cid}: {overall(verdicts)}", "", verdict_line(comp, verdicts), ""]
    for family, why in entry.get("not_converged", {}).items():
        hit = [f"`{v['claim']}`" for v in entry["verdicts"] if family in v.get("not_converged", ())]
        which = f"the verdicts on {', '.join(hit)}" if hit else "no claim of this comparison, only its numbers,"
        lines += [f"**Not converged: {family}.** {why}; {which} may say how fast it starts, not what it reaches "
                  "(see Convergence).", ""]
    if comp.factor:
        lines += [f"**Factor under test.** {comp.factor}", ""]
    lines += [f"**Claim (seeds).** {comp.claim}", ""]
    if comp.quote:
        lines += [f"**The seed paper says:** “{comp.quote}”", ""]
    if comp.expect:
        lines += ["**Tested as** (on " + label(comp.metric) + ", the primary metric, written down before the run): "
                  + "; ".join(f"`{parse_claim(c).text}`" for c in comp.expect) + ".", ""]
    else:
        lines += ["No `expect:` claim in params.yaml: numbers only, no verdict.", ""]
    reps = sorted({(r["seed"], r.get("partition") or 0) for r in records if r.get("method") in comp.methods and r.get("seed") is not None})
    reps_text = ", ".join(f"({s}, {p})" for s, p in reps) if reps else ", ".join(f"({s}, 0)" for s in profile.seeds)
    tuned = " The options are those the final runs used: tuned on the validation classes (see Tuning)." if profile.tune else ""
    lines += [
        "**Setup.** Methods (only these columns differ; everything else is the shared protocol in the header)."
        f"{tuned} Replicates (seed, class partition{DRAWN if profile.partition_scope == 'all' else ''}): {reps_text}"
        + ("; the raw-pixel baselines are deterministic (one value each), fitted on the training split and scored on the same eval items" if comp_baselines else "")
        + ":", "",
        setup_table(profile, list(comp.methods), [r for r in comp_baselines if r.get("method") in methods], records), "",
    ]
    metrics = table_metrics(profile, comp)
    lines += [
        "**Results** (mean ± half-width of the 95% Student-t interval over seeds, ×100; best mean in bold):", "",
        comparison_table(all_records, methods + ref_methods, metrics, labels=LABELS), "",
    ]
    if ref_methods:
        lines += [
            "**Sanity gate.** `raw_pixels` is the flattened pixels (Euclidean), `untrained` the same network at each "
            "seed's random initialisation, both scored on the same evaluation items with the same code. A claim is "
            f"judged only where its learned methods beat both on {label(comp.metric)}; otherwise it is *not testable here*.", "",
        ]
    if verdicts:
        kinds = list(dict.fromkeys(k for v in verdicts for k in v.test.split("; ")))
        lines += [
            "**Test.** " + "; ".join(kinds)[:1].upper() + "; ".join(kinds)[1:] + f", on {label(comp.metric)} over replicates "
            f"(seed, class partition); equivalence margin ±{comp.margin * 100:g} (×100). {RULE}", "",
            claims_table(verdicts), "",
        ]
        lines += [f"- {claim_sentence(v)}" for v in verdicts] + [""]
    lines += interaction_lines(comp, all_records, entry)
    sec = secondary_metrics(profile, comp)
    if sec and comp.expect:
        table, sec_verdicts = secondary_table(comp.expect, all_records, sec, comp.margin)
        entry["secondary"] = {c: {m: v.as_dict() for m, v in d.items()} for c, d in sec_verdicts.items()}
        lines += ["**Secondary metrics** (reported, never judged: Δ with its plain 95% interval and the raw two-sided p, "
                  "outside the Holm family):", "", table, ""]
    if comp.published:
        text, agreements = c5_published(profile, comp, all_records)
        entry["published_ranking"] = agreements
        lines += ["### Beside the published numbers", "", text, ""]
    lines += ["**Plots.**", ""]
    for caption, target in comparison_plots(cid, comp, profile, records + comp_baselines, comp_baselines, plots_dir):
        if target.startswith("ERROR"):
            lines += [f"- {caption}: not drawn ({target[7:]})", ""]
        else:
            lines += [f"![{cid} {caption}]({target})", "", f"*{caption}*", ""]
    failed = [r for r in records if r.get("method") in comp.methods and r.get("status") != "finished"]
    if failed:
        lines += ["Failed runs in this comparison: " + ", ".join(f"`{r.get('name')}`" for r in failed) + " (see Failed trials).", ""]
    return "\n".join(lines)


def interaction_lines(comp, records: list[dict], entry: dict) -> list[str]:
    """The interaction of a 2 x 2 comparison (reported, never judged)."""
    if not comp.interaction:
        return []
    x = interaction(comp.interaction, records, comp.metric)
    entry["interaction"] = clean(x)
    warned = f" The test warned: {'; '.join(x['notes'])}." if x["notes"] else ""
    return [f"**Interaction** (2 x 2, reported, never judged): {x['text']} on {label(comp.metric)} = "
            f"{fmt(x['diff'], sign=True)}, 95% interval [{fmt(x['low'], sign=True)}, {fmt(x['high'], sign=True)}] (×100), "
            f"raw two-sided p {fmt_p(x['p'])}, n = {x['n']} replicates: how much the first pair's difference changes "
            f"with the second factor.{warned}", ""]


RULE = (
    "Every primary claim of the sweep is one family, Holm-corrected (Holm 1979) at α = 0.05. `A > B` **holds** if "
    "the Holm-adjusted two-sided p < 0.05 with Δ > 0 and is **reversed** with Δ < 0; `A != B` holds if the difference "
    "is significant, else is **equivalent** if the TOST (Schuirmann 1987) shows |Δ| < margin; `A ~ B` is equivalent "
    "if the TOST does; anything else is *not shown*. The interval is the one the decision used: (1 − α/(m − k + 1)) "
    "at Holm step k of m for a difference, (1 − 2α/(m − k + 1)) for an equivalence. MDE: the minimum detectable "
    "effect, the true Δ the difference test finds with power 0.8 at that level and n."
)


def verdict_line(comp, verdicts: list[ClaimVerdict]) -> str:
    """The section's verdict, its metric and replicates, and where this setup departs from the paper's."""
    ns = sorted({v.n for v in verdicts})
    reps = f" over {'/'.join(map(str, ns))} replicates" if ns else ""
    text = f"**Verdict: {overall(verdicts)}** on {label(comp.metric)}{reps}"
    if comp.departs:
        text += f"; where this setup departs from the paper's: {comp.departs}"
    return text + "."


def summary_rows(doc: dict) -> list[str]:
    lines = ["| comparison | claim tested | metric | Δ = A − B (×100) [interval] (level) | p (Holm) | MDE (×100) | replicates | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for cid, c in doc["comparisons"].items():
        if not c["verdicts"]:
            lines.append(f"| {cid} | (no claim) | {label(c['metric'])} | - | - | - | - | - |")
        for v in c["verdicts"]:
            mark = VERDICT_MARK.get(v["verdict"], v["verdict"])
            if v.get("not_converged"):
                mark += f" (not converged: {', '.join(v['not_converged'])})"
            lines.append(f"| {cid} | `{v['claim']}` | {label(v['metric'])} | {interval_text(v)} | {fmt_p(decisive_p(v))} | "
                         f"{fmt(_num(v.get('mde')))} | {v.get('n', 0)} | {mark} |")
    return lines


def wall_time_text(run: dict, target_minutes: float | None) -> str:
    """The sweep's wall time, against the profile's `target_minutes` where it sets one."""
    secs = run.get("seconds")
    if not secs:
        return "not recorded (the report was re-rendered from results.json and no sweep.json holds the time)"
    minutes = secs / 60.0
    if target_minutes is None:
        verdict = "no target set for this profile"
    elif minutes <= target_minutes:
        verdict = f"within the profile's {target_minutes:g}-minute target"
    else:
        verdict = f"OVER the profile's {target_minutes:g}-minute target by {minutes - target_minutes:.1f} min"
    text = f"{minutes:.1f} min ({verdict}; {run.get('source') or 'measured'})"
    parts = run.get("parts") or []
    if len(parts) > 1:
        text += f", in {len(parts)} parts: " + "; ".join(part_text(p) for p in parts)
    return text


def part_text(part: dict) -> str:
    """One part of a sweep run in parts: its length, start, machine, commit and how it ended
    (a part with no end was killed, and counts up to its last heartbeat)."""
    ended = part.get("ended")
    how = "" if ended == "finished" else f" ({ended})" if ended else " (killed; counted to its last heartbeat)"
    return (f"{part['seconds'] / 60:.1f} min from {part.get('started', '?')} on {part.get('host', '?')} "
            f"at `{part.get('commit', '?')}`{how}")


def render_document(sweep_name, profile_name, profile, records, baselines, run, rendered, doc, sections) -> str:
    ok = sum(r.get("status") == "finished" for r in records)
    failed = [r for r in records if r.get("status") != "finished"]
    compute = sum(float(r.get("seconds") or 0) for r in records)
    versions = run.get("versions") or {}
    ds_dir = resolve_path(profile.datasets.get("default"))
    splits = split_summary(ds_dir)
    lines = [
        f"# Comparisons report: sweep `{sweep_name}`",
        "",
        f"Profile `{profile_name}`: {profile.description}".rstrip(),
        "",
        f"- sweep finished: {run.get('date') or 'date not recorded'}; commit `{run.get('commit') or 'unknown'}`",
        f"- report rendered: {rendered['date']}; commit `{rendered['commit']}`",
        "- data versions: " + (", ".join(f"{k} `{v}` ({profile.datasets.get(k, '')})" for k, v in versions.items()) or "not recorded"),
        f"- wall time: {wall_time_text(run, profile.target_minutes)}; trial compute {compute / 60:.1f} min summed over trials",
        f"- trials: {len(records)} ({ok} finished, {len(failed)} failed); seeds {list(profile.seeds)}"
        + (f"; {len(baselines)} raw-pixel baselines (C9)" if baselines else ""),
        f"- shared protocol: {protocol_summary(profile)}" + (f"; {splits}" if splits else ""),
        "- numbers: mean ± half-width of the 95% Student-t interval over seeds, ×100 (percent), on the evaluation classes",
        "",
        "## Verdicts",
        "",
        "Each claim is judged on its comparison's primary metric (written down before the run) across replicates "
        "(training seed × class partition), paired replicate by replicate, by a two-sided paired t-test (a one-sample "
        "t-test against a fixed baseline) and, for `!=` and `~`, an equivalence test (TOST) against the comparison's "
        f"margin. {RULE} Claims the sanity gate stops, or with fewer than 2 pairs, are left out of the family "
        f"(here m = {doc.get('family_size', 0)}). With few replicates only large, consistent effects reach significance: "
        "the MDE column says how large.",
        "",
        *summary_rows(doc),
        "",
    ]
    lines += sections
    lines += ["## All methods", "", markdown_table(records + baselines), ""]
    if failed:
        lines += ["## Failed trials", ""]
        for r in failed:
            first = ((r.get("error") or "no error message").strip().splitlines() or [""])[0][:300]
            lines.append(f"- `{r.get('name')}` ({r.get('method')}, seed {r.get('seed')}): {first}")
        lines.append("")
    failed_baselines = [r for r in baselines if r.get("status") != "finished"]
    if failed_baselines:
        lines += ["## Failed baselines", ""]
        lines += [f"- `{r['method']}`: {(r.get('error') or '')[:300]}" for r in failed_baselines]
        lines.append("")
    return "\n".join(lines)


CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1150px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; }
th { background: #f2f2f2; }
img { max-width: 100%; border: 1px solid #eee; }
code { background: #f5f5f5; padding: 0 3px; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
"""


def render_html(md: str, title: str) -> str:
    import markdown

    body = markdown.markdown(md, extensions=["tables"])
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n")


def verdict_table(source, *, caption: bool = True) -> str:
    """The verdicts as one Markdown table (for the README). `source`: a report directory,
    its verdicts.json, or the dict build_report stores there."""
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        p = p / "verdicts.json" if p.is_dir() else p
        doc = json.loads(p.read_text())
    else:
        doc = source
    lines = []
    if caption:
        run = doc.get("run") or {}
        versions = ", ".join(f"{k} `{v}`" for k, v in (run.get("versions") or {}).items()) or "not recorded"
        secs = run.get("seconds")
        lines += [
            f"Sweep `{doc.get('sweep')}` (profile `{doc.get('profile')}`, seeds {doc.get('seeds')}): run "
            f"{run.get('date') or 'date not recorded'}, commit `{run.get('commit') or 'unknown'}`, data {versions}"
            + (f", wall time {secs / 60:.1f} min" if secs else "") + ".",
            "",
        ]
    return "\n".join(lines + summary_rows(doc))
