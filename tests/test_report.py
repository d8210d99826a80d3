"""The comparisons report: verdicts with a known answer, the paired test against a hand
computation, the C9 raw-pixel baselines, the published-ranking agreement, and the whole
builder on records shaped like a real sweep's results.json."""
import copy
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from dml_experiment.report.build import build_report, verdict_table
from dml_experiment.report.published import PUBLISHED, published_table, ranking_agreement
from dml_experiment.report.verdict import EQUIVALENT, HOLDS, NOT_SHOWN, REVERSED, judge, overall, parse_claim
from dml_experiment.profile import Profile, load_profile

PROJECT = Path(__file__).resolve().parent.parent


# -- synthetic records ------------------------------------------------------------------------
def record(method, seed, metrics, *, status="finished", history=None, embeddings_path=None, dataset="/nowhere", max_items=None):
    return {
        "trial_id": f"{method}-{seed}", "name": f"{method}-seed{seed}", "method": method, "seed": seed,
        "status": status, "error": None if status == "finished" else "TrialError: the loss became nan\nTraceback...",
        "metrics": metrics if status == "finished" else {}, "history": history or [],
        "embeddings_path": embeddings_path, "model_path": None, "seconds": 1.5,
        "config": {"dataset": dataset, "eval": {"ks": [1, 2, 4, 8], "max_items": max_items, "split": "eval", "distance": None},
                   "distance": None, "seed": seed},
    }


BASE = np.array([0.700, 0.720, 0.690, 0.710, 0.730])
SEEDS = [0, 1, 2, 3, 4]


def class_metrics(r1, shift=0.0):
    return {"recall@1": r1, "recall@2": min(r1 + 0.08, 1), "recall@4": min(r1 + 0.14, 1), "recall@8": min(r1 + 0.2, 1),
            "map@r": r1 / 3 + shift, "r_precision": r1 / 2, "nmi": 0.3 + shift, "precision@1": r1}


def known_answer_records():
    """`gain` clearly beats `base`; `same` is noise around it; `worse` clearly loses."""
    gain = BASE + np.array([0.05, 0.06, 0.04, 0.05, 0.055])
    same = BASE + np.array([0.010, -0.012, 0.004, -0.006, 0.003])
    worse = BASE - np.array([0.05, 0.06, 0.04, 0.05, 0.055])
    out = []
    for name, values in (("base", BASE), ("gain", gain), ("same", same), ("worse", worse)):
        out += [record(name, s, class_metrics(float(v))) for s, v in zip(SEEDS, values)]
    return out


def known_answer_profile() -> Profile:
    return Profile.model_validate({
        "description": "synthetic known answers",
        "seeds": SEEDS,
        "methods": {m: {"loss": "contrastive"} for m in ("base", "gain", "same", "worse")},
        "comparisons": {
            "G": {"claim": "gain beats base", "methods": ["base", "gain"], "expect": ["gain > base"]},
            "N": {"claim": "same beats base", "methods": ["base", "same"], "expect": ["same > base"]},
            "R": {"claim": "worse beats base", "methods": ["base", "worse"], "expect": ["worse > base"]},
        },
    })


# -- verdicts ---------------------------------------------------------------------------------
def test_known_answers_give_the_verdicts(tmp_path):
    records = known_answer_records()
    assert judge("gain > base", records, "recall@1").verdict == HOLDS
    assert judge("same > base", records, "recall@1").verdict == NOT_SHOWN
    assert judge("worse > base", records, "recall@1").verdict == REVERSED
    # "A < B" is "B > A"; a two-sided claim holds for a real difference either way.
    assert judge("base < gain", records, "recall@1").verdict == HOLDS
    assert judge("worse != base", records, "recall@1").verdict == HOLDS
    # `same` is within ±1 point of `base`: no difference, and the TOST shows the equivalence.
    assert judge("same != base", records, "recall@1").verdict == EQUIVALENT
    assert judge("same ~ base", records, "recall@1").verdict == EQUIVALENT
    assert judge("same != base", records, "recall@1", margin=0.005).verdict == NOT_SHOWN

    # ... and the same through the report builder, into verdicts.json, metrics.json and report.md.
    build_report(tmp_path, "synthetic", "synthetic", known_answer_profile(), records, {"default": "abc.dir"}, 90.0)
    doc = json.loads((tmp_path / "verdicts.json").read_text())
    got = {cid: [v["verdict"] for v in c["verdicts"]] for cid, c in doc["comparisons"].items()}
    assert got == {"G": [HOLDS], "N": [NOT_SHOWN], "R": [REVERSED]}
    assert doc["family_size"] == 3 and all(c["metric"] == "map@r" for c in doc["comparisons"].values())
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["G"]["gain_vs_base.holds"] == 1 and metrics["R"]["worse_vs_base.holds"] == -1
    assert metrics["N"]["same_vs_base.holds"] == 0
    assert metrics["G"]["gain.recall@1"] == pytest.approx(float(np.mean(BASE + [0.05, 0.06, 0.04, 0.05, 0.055])))
    md = (tmp_path / "report.md").read_text()
    assert "| G | `gain > base` | MAP@R |" in md and "**holds**" in md and "**reversed**" in md
    assert "Holm step" in md and "minimum detectable effect" in md
    assert "1.5 min (no target set for this profile" in md  # target_minutes is a profile setting
    table = verdict_table(tmp_path)
    assert "`gain > base`" in table and "`worse > base`" in table and "commit" in table


def test_a_two_by_two_reports_its_interaction_and_an_equivalence_its_power(tmp_path):
    """gain - base = +5 points, worse - same = -5: the interaction (gain - base) - (same - worse)
    is about +10, reported beside the claims; the "~" claim gives its TOST power."""
    records = known_answer_records()
    prof = Profile.model_validate({
        "seeds": SEEDS,
        "methods": {m: {"loss": "contrastive"} for m in ("base", "gain", "same", "worse")},
        "comparisons": {"X": {"claim": "2 x 2", "methods": ["gain", "base", "same", "worse"],
                              "interaction": [["gain", "base"], ["same", "worse"]],
                              "expect": ["gain > base", "same ~ base"]}},
    })
    build_report(tmp_path, "synthetic", "synthetic", prof, records, {"default": "abc.dir"}, 90.0)
    md = (tmp_path / "report.md").read_text()
    assert "**Interaction** (2 x 2, reported, never judged): (gain − base) − (same − worse) on MAP@R = +" in md
    entry = json.loads((tmp_path / "verdicts.json").read_text())["comparisons"]["X"]
    assert entry["interaction"]["n"] == len(SEEDS) and entry["interaction"]["diff"] > 0
    assert "TOST power" in md and "a conclusive test needs" in md


def test_paired_test_equals_a_hand_computation():
    records = known_answer_records()
    v = judge("gain > base", records, "recall@1")
    a = np.array([r["metrics"]["recall@1"] for r in records if r["method"] == "gain"])
    b = np.array([r["metrics"]["recall@1"] for r in records if r["method"] == "base"])
    d = a - b
    n = len(d)
    se = d.std(ddof=1) / math.sqrt(n)
    t = d.mean() / se
    assert v.p == pytest.approx(2 * stats.t.sf(abs(t), n - 1), rel=1e-9)  # two-sided
    half = stats.t.ppf(0.975, n - 1) * se  # a family of one: the 95% interval
    assert (v.diff, v.low, v.high) == pytest.approx((d.mean(), d.mean() - half, d.mean() + half))
    assert v.n == 5 and "paired t-test" in v.test
    two = judge("gain != base", records, "recall@1")
    assert two.p == pytest.approx(2 * stats.t.sf(abs(t), n - 1), rel=1e-9)

    # Pairs are by replicate (seed here): a failed seed drops its pair, never matched with another seed.
    broken = [r for r in records if not (r["method"] == "gain" and r["seed"] == 2)]
    broken.append(record("gain", 2, {}, status="failed"))
    v4 = judge("gain > base", broken, "recall@1")
    keep = [0, 1, 3, 4]
    assert v4.n == 4 and v4.replicates == [[s, None] for s in keep]
    assert v4.p == pytest.approx(stats.ttest_rel(a[keep], b[keep]).pvalue)

    # Against a fixed baseline (seed None, one value): a one-sample t-test of the seeds.
    fixed = records + [record("raw_euclidean", None, class_metrics(0.74))]
    vb = judge("gain > raw_euclidean", fixed, "recall@1")
    assert "one-sample" in vb.test and vb.n == 5
    assert vb.p == pytest.approx(stats.ttest_1samp(a, 0.74).pvalue)
    assert judge("raw_euclidean > base", fixed, "recall@1").verdict == HOLDS  # 0.74 beats every base seed


def test_too_few_seeds_or_no_variation_is_not_shown():
    one = [record("a", 0, class_metrics(0.9)), record("b", 0, class_metrics(0.1))]
    v = judge("a > b", one, "recall@1")
    assert v.verdict == NOT_SHOWN and v.n == 1 and "at least 2" in v.reason and v.diff == pytest.approx(0.8)
    equal = [record(m, s, class_metrics(0.5)) for m in "ab" for s in (0, 1, 2)]
    v = judge("a > b", equal, "recall@1")
    assert v.verdict == NOT_SHOWN and math.isnan(v.p) and "SD 0" in v.reason
    missing = judge("a > c", equal, "recall@1")
    assert missing.verdict == NOT_SHOWN and "no finished run" in missing.reason
    nan = [record("a", s, {"recall@1": float("nan")}) for s in (0, 1, 2)] + [record("b", s, class_metrics(0.5)) for s in (0, 1, 2)]
    assert judge("a > b", nan, "recall@1").verdict == NOT_SHOWN
    assert parse_claim("x<y").text == "y > x"
    with pytest.raises(ValueError):
        parse_claim("x >> y")
    assert overall([]) == "no claim"


def test_expect_names_are_validated():
    base = {
        "methods": {"a": {"loss": "contrastive"}, "b": {"loss": "triplet"}},
        "comparisons": {"C": {"claim": "a beats b", "methods": ["a", "b"], "expect": ["a > b"]}},
    }
    load_profile({"profiles": {"p": base}}, "p")
    for expect, message in ((["a > zz"], "'zz' is not a method"), (["a >> b"], "is not 'A > B'"),
                            (["a > raw_cosine"], "baselines: true"), (["a > a"], "itself")):
        bad = copy.deepcopy(base)
        bad["comparisons"]["C"]["expect"] = expect
        with pytest.raises(ValueError, match=r"profiles\.p\.comparisons\.C"):
            load_profile({"profiles": {"p": bad}}, "p")
        with pytest.raises(ValueError, match=message):
            load_profile({"profiles": {"p": bad}}, "p")
    ok = copy.deepcopy(base)
    ok["comparisons"]["C"].update(baselines=True, expect=["a > raw_cosine", "raw_pca_whitened < b", "a != b", "a ~ b"])
    load_profile({"profiles": {"p": ok}}, "p")
    # The project's own profiles carry their claims, and C7 is judged on a metric it reports.
    _, quick = load_profile(PROJECT / "params.yaml", "quick")
    assert all(c.expect for c in quick.comparisons.values())
    assert quick.comparisons["C7"].metric == "ndcg@8"
    assert f"ndcg@{max(quick.eval.ks)}" == quick.comparisons["C7"].metric
    _, paper = load_profile(PROJECT / "params.yaml", "paper")
    assert all(c.expect for c in paper.comparisons.values())


# -- published numbers -------------------------------------------------------------------------
def test_published_ranking_agreement():
    ours = {"triplet_batch_semihard": 0.70, "lifted_smooth": 0.72, "npair": 0.74, "facility_location": 0.76}
    a = ranking_agreement(ours, "recall@1", "CUB-200-2011")
    assert a["agrees"] and a["tau"] == pytest.approx(1.0) and a["n"] == 4
    assert a["ours"] == ["facility location", "N-pair", "lifted structured", "triplet semi-hard"] == a["published"]
    reversed_ = {k: -v for k, v in ours.items()}
    r = ranking_agreement(reversed_, "nmi", "Cars196")
    assert not r["agrees"] and r["tau"] == pytest.approx(-1.0) and "differs" in r["text"]
    swap = dict(ours, npair=0.77)  # N-pair above facility location: one discordant pair of six
    s = ranking_agreement(swap, "recall@1", "Cars196")
    assert not s["agrees"] and s["tau"] == pytest.approx(4 / 6)
    assert s["tau"] == pytest.approx(stats.kendalltau([0.70, 0.72, 0.77, 0.76], [51.54, 52.98, 53.90, 58.11]).statistic)
    partial = ranking_agreement({"npair": 0.5, "facility_location": 0.6}, "nmi")
    assert partial["n"] == 2 and partial["agrees"] and "Only 2 of the 4" in partial["text"]
    table = published_table()
    assert "Published, not ours" in table and "59.23" in table and "58.11" in table
    assert PUBLISHED["CUB-200-2011"]["N-pair"]["recall@8"] == 79.49
    with pytest.raises(ValueError):
        ranking_agreement(ours, "map@r")


# -- baselines on a tiny prepared dataset -------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny Fashion-MNIST-like set prepared like the real one, and its rotation set."""
    from dml_core.data import prepare_dataset
    from dml_core.data.synthetic import write_fashion_mnist

    root = tmp_path_factory.mktemp("tiny_report")
    raw = write_fashion_mnist(root / "raw", per_class=(24, 8))
    prepare_dataset("fashion_mnist", raw, root / "prepared" / "fashion_mnist")
    prepare_dataset("rotation", raw, root / "prepared" / "rotation")
    return root / "prepared"


def brute_recall_at_1(x: np.ndarray, labels: np.ndarray) -> float:
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return float(np.mean(labels[np.argmin(d, axis=1)] == labels))


def test_baselines_are_scored_like_embeddings(tiny):
    from sklearn.covariance import LedoitWolf
    from sklearn.decomposition import PCA

    from dml_core.data import PreparedDataset
    from dml_core.metrics import evaluate
    from dml_experiment.report.baselines import raw_baselines, raw_pixels
    from dml_core.training.embed import stratified_subset

    ds_dir = tiny / "fashion_mnist"
    got = {r["method"]: r for r in raw_baselines(ds_dir, 100, ks=(1, 2), pca_components=16)}
    assert set(got) == {"raw_euclidean", "raw_cosine", "raw_mahalanobis", "raw_pca_whitened", "raw_pca_lda"}
    assert all(r["status"] == "finished" and r["seed"] is None and r["history"] == [] for r in got.values())

    ev = PreparedDataset(ds_dir, "eval")
    rows = stratified_subset(ev.labels, 100, seed=0)  # the rows every trial is scored on
    x, y = raw_pixels(ev, rows), ev.labels[rows]
    assert got["raw_euclidean"]["metrics"]["queries"] == len(rows)
    assert got["raw_euclidean"]["metrics"] == pytest.approx(evaluate(x, y, ks=(1, 2), distance="euclidean", seed=0))
    assert got["raw_cosine"]["metrics"] == pytest.approx(evaluate(x, y, ks=(1, 2), distance="cosine", seed=0))

    # Mahalanobis and PCA whitening, both fitted on the training split only, checked
    # against scikit-learn and a brute-force nearest neighbour.
    tr = PreparedDataset(ds_dir, "train")
    train = raw_pixels(tr, stratified_subset(tr.labels, 10_000, seed=0))
    precision = LedoitWolf(assume_centered=False).fit(train).precision_
    chol = np.linalg.cholesky(precision)  # d^T P d = |L^T d|^2
    assert got["raw_mahalanobis"]["metrics"]["recall@1"] == pytest.approx(brute_recall_at_1(x @ chol, y))
    pca = PCA(n_components=16, whiten=True, svd_solver="full").fit(train)
    assert got["raw_pca_whitened"]["metrics"]["recall@1"] == pytest.approx(brute_recall_at_1(pca.transform(x), y))
    # The learned linear metric: PCA then LDA fitted on the training images and classes.
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    train_labels = tr.labels[stratified_subset(tr.labels, 10_000, seed=0)]
    reduce = PCA(n_components=min(256, *train.shape), svd_solver="full").fit(train)
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto", n_components=min(64, len(set(train_labels)) - 1))
    lda.fit(reduce.transform(train), train_labels)
    assert got["raw_pca_lda"]["metrics"]["recall@1"] == pytest.approx(brute_recall_at_1(lda.transform(reduce.transform(x)), y))

    missing = raw_baselines(tiny / "nope", 100)
    assert all(r["status"] == "failed" and r["error"] for r in missing)


# -- the whole report on records shaped like a real sweep's ---------------------------------
def fake_sweep(tiny, out: Path, profile: Profile, seeds=(0, 1, 2), epochs=3, max_items=60) -> list[dict]:
    """Every method of the profile x seeds, with histories and real Parquet embeddings of the
    tiny eval rows (class-structured, better for some methods than others)."""
    from dml_core.data import PreparedDataset
    from dml_core.metrics import evaluate, evaluate_continuous, save_embeddings
    from dml_core.training.embed import stratified_subset

    out.mkdir(parents=True, exist_ok=True)
    records = []
    for i, (name, method) in enumerate(profile.methods.items()):
        ds_dir = tiny / Path(profile.datasets[method.dataset]).name
        ev = PreparedDataset(ds_dir, "eval")
        rows = stratified_subset(ev.labels, max_items, seed=0)
        labels = ev.labels[rows]
        for seed in seeds:
            rng = np.random.default_rng(1000 * i + seed)
            spread = 0.6 + 0.1 * (i % 5) + 0.05 * rng.random()
            if method.labels == "class":
                centres = rng.normal(size=(10, 8))
                emb = centres[labels] + spread * rng.normal(size=(len(rows), 8))
            else:
                angle = np.radians(ev.continuous_labels[rows])
                emb = np.stack([np.cos(angle), np.sin(angle)], 1) * 3 + spread * rng.normal(size=(len(rows), 2))
                emb = np.concatenate([emb, rng.normal(size=(len(rows), 6))], 1)
            emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
            path = out / f"{name}-{seed}.parquet"
            save_embeddings(path, emb, labels, metadata={"data_version": f"v-{ds_dir.name}.dir"})
            if method.labels == "class":
                metrics = evaluate(emb, labels, ks=(1, 2, 4, 8), seed=0)
            else:
                metrics = evaluate_continuous(emb, ev.continuous_meaning.targets(ev.continuous_labels[rows]).numpy(), ks=[1, 2, 4, 8])
            history = []
            for e in range(epochs):
                h = {"epoch": float(e), "train/loss": 1.0 / (e + 1) + 0.1 * i, "train/steps": 3.0}
                h.update({f"val/{k}": v * (0.8 + 0.1 * e) for k, v in metrics.items()})
                h.update({f"eval/{k}": v * (0.8 + 0.1 * e) for k, v in metrics.items()})
                history.append(h)
            records.append(record(name, seed, metrics, history=history, embeddings_path=str(path),
                                  dataset=str(ds_dir), max_items=max_items))
    records.append(record("npair", 3, {}, status="failed", dataset=str(tiny / "fashion_mnist")))
    return records


def test_build_report_on_a_sweep_shaped_like_the_real_one(tiny, tmp_path, monkeypatch):
    from dml_experiment.report.baselines import raw_baselines
    from flows.report import write_sweep_report

    # The quick profile's comparisons, on the tiny Fashion-MNIST set in place of the glyphs.
    _, profile = load_profile(PROJECT / "params.yaml", "quick", {"datasets.default": "prepared/fashion_mnist",
                                                                    "datasets.continuous": "prepared/rotation"})
    records = fake_sweep(tiny, tmp_path / "artifacts", profile)
    out = tmp_path / "reports" / "quick-test"
    baselines = raw_baselines(tiny / "fashion_mnist", 60, ks=(1, 2, 4, 8))
    # lifted structured still gained at 2H: only the claims with a lifted arm are marked.
    study = {"factor": 2, "tolerance": 0.02, "methods": {"lifted_smooth": {
        "family": "lifted_structured", "metric": "map@r", "steps": [90, 180], "scores": [0.5, 0.6], "gain": 0.1,
        "converged": False, "errors": []}}}
    report = build_report(out, "quick-test", "quick", profile, records, {"default": "v1.dir", "rotation": "v2.dir"}, 600.0,
                          baselines, convergence=study)
    assert report == out / "report.md"
    md = report.read_text()
    c5 = {v["claim"]: v["not_converged"] for v in json.loads((out / "verdicts.json").read_text())["comparisons"]["C5"]["verdicts"]}
    assert c5["npair > lifted_smooth"] == ["lifted_structured"] and c5["facility_location > npair"] == []
    assert "| C5 | `facility_location > npair` |" in md
    c5_rows = [line for line in md.splitlines() if line.startswith("| C5 | `")]
    assert [("(not converged: lifted_structured)" in line) for line in c5_rows] == [
        "lifted" in line.split("`")[1] for line in c5_rows]
    assert "**Not converged: lifted_structured.** lifted_smooth gained 10.0 points" in md
    assert "the verdicts on `facility_location > lifted_smooth`, `npair > lifted_smooth`" in md
    html = (out / "report.html").read_text()
    assert "10.0 min (within the profile's 30-minute target" in md and "default `v1.dir`" in md
    for cid in profile.comparisons:
        assert f"## {cid}: " in md
        for kind in ("recall", "training", "embedding", "retrieval"):
            png = out / "plots" / f"{cid}_{kind}.png"
            assert png.is_file() and png.stat().st_size > 5000, png
            assert f"(plots/{cid}_{kind}.png)" in md and f'src="plots/{cid}_{kind}.png"' in html
    assert "not drawn" not in md
    assert "Published, not ours" in md and "Kendall tau" in md
    assert "NDCG@8" in md and "Spearman" in md and "raw_mahalanobis" in md
    assert "## Failed trials" in md and "`npair-seed3`" in md
    assert "<table>" in html and "<h2" in html
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == set(profile.comparisons)
    assert "triplet_all.recall@1" in metrics["C1"] and "log_ratio.ndcg@8" in metrics["C7"]
    assert "raw_euclidean.recall@1" in metrics["C9"]
    assert all(isinstance(v, (int, float)) or v is None for c in metrics.values() for v in c.values())
    doc = json.loads((out / "verdicts.json").read_text())
    assert [v["claim"] for v in doc["comparisons"]["C9"]["verdicts"]][0] == "triplet_batch_semihard > raw_euclidean"
    assert "one-sample" in doc["comparisons"]["C9"]["verdicts"][0]["test"]
    assert len(doc["comparisons"]["C5"]["published_ranking"]) == 4
    assert not list(out.glob(".*tmp*")) and not list((out / "plots").glob(".*tmp*"))

    # The flow's writer: results.json, the C9 baselines of the default dataset (cached), the report.
    # The re-render keeps the wall time the first build recorded.
    out2 = tmp_path / "reports" / "quick-flow"
    shutil.copytree(out, out2)
    (out2 / "report.md").unlink()
    # A quick-profile report updates the README and docs/results: point that at a copy.
    import flows.report

    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- results:start -->\nHEADLINE\n<!-- results:end -->\n<!-- beside:start -->\nBESIDE\n<!-- beside:end -->\n")
    monkeypatch.setattr(flows.report, "README", readme)
    write_sweep_report(out2, "quick-flow", "quick", profile, records, {}, 0.0)
    # quick is the check beside the headline, never the headline itself
    text = readme.read_text()
    assert "HEADLINE" in text and "BESIDE" not in text and "full is not published yet; quick alone" in text
    assert "Sweep `quick-flow`" in text and (tmp_path / "docs/results/quick/report.md").is_file()
    assert json.loads((out2 / "results.json").read_text())[0]["method"] == records[0]["method"]
    cached = json.loads((out2 / "baselines.json").read_text())
    assert {r["method"] for r in cached["records"]} == {"raw_euclidean", "raw_cosine", "raw_mahalanobis", "raw_pca_whitened",
                                                        "raw_pca_lda"}
    assert "10.0 min" in (out2 / "report.md").read_text()


def test_the_readme_headline_is_full_and_quick_stands_beside_it(tmp_path, caplog):
    """full's run in docs/results/full (records kept) writes the headline; quick's run, from
    its own directory, is published and set beside full claim by claim; a full run elsewhere
    changes nothing."""
    from flows.report import update_readme

    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- results:start -->\nHEADLINE\n<!-- results:end -->\ny\n<!-- beside:start -->\nBESIDE\n"
                      "<!-- beside:end -->\nz\n")
    results = tmp_path / "docs" / "results"
    full, quick = results / "full", tmp_path / "reports" / "quick-1"
    records = known_answer_records()
    build_report(full, "full-1", "full", known_answer_profile(), records, {}, 90.0)
    (full / "records").mkdir()
    (full / "records" / "a.json").write_text("{}")
    assert update_readme(full, "full", readme)
    text = readme.read_text()
    assert "Sweep `full-1`" in text.split("<!-- results:end -->")[0] and "HEADLINE" not in text
    assert "BESIDE" in text  # no quick run published yet
    assert (full / "records" / "a.json").is_file()  # its own directory is the snapshot: records stay

    worse_wins = [dict(r, metrics=class_metrics(0.9)) if r["method"] == "worse" else r for r in records]
    build_report(quick, "quick-1", "quick", known_answer_profile(), worse_wins, {}, 30.0)
    assert update_readme(quick, "quick", readme)
    text = readme.read_text()
    assert (results / "quick" / "report.md").is_file() and not (results / "quick" / "results.json").exists()
    beside = text.split("<!-- beside:start -->")[1].split("<!-- beside:end -->")[0]
    assert "quick (`quick-1`)" in beside and "full (`full-1`)" in beside
    assert "| R | `worse > base` | **holds**" in beside and "**reversed**" in beside and "| no |" in beside
    assert "Sweep `full-1`" in text.split("<!-- results:end -->")[0]  # quick never takes the headline
    assert text.startswith("x\n") and "\ny\n" in text and text.endswith("\nz\n")

    elsewhere = tmp_path / "reports" / "full-2"
    build_report(elsewhere, "full-2", "full", known_answer_profile(), worse_wins, {}, 90.0)
    before = readme.read_text()
    with caplog.at_level("WARNING"):
        assert not update_readme(elsewhere, "full", readme)
    assert readme.read_text() == before and "--out docs/results/full" in caplog.text
    assert json.loads((full / "verdicts.json").read_text())["sweep"] == "full-1"


def test_build_report_on_the_real_smoke_results(tmp_path):
    """The last smoke sweep's results.json, if this checkout has one (reports/ is not in git)."""
    found = sorted((PROJECT / "reports").glob("smoke-*/results.json"))
    if not found:
        pytest.skip("no reports/smoke-*/results.json here (run `dml sweep --profile smoke`)")
    records = json.loads(found[-1].read_text())
    _, profile = load_profile(PROJECT / "params.yaml", "smoke")
    build_report(tmp_path, found[-1].parent.name, "smoke", profile, records, {}, 0.0)
    md = (tmp_path / "report.md").read_text()
    assert all(f"## {cid}: " in md for cid in profile.comparisons)
    assert (tmp_path / "report.html").is_file() and json.loads((tmp_path / "metrics.json").read_text())
    assert len(list((tmp_path / "plots").glob("*.png"))) >= 2 * len(profile.comparisons)


def test_a_rerender_says_when_and_on_which_commit_the_results_were_computed(tmp_path):
    # `dml report`, or a sweep whose trials had all finished before, computes nothing: the
    # report must carry the date, commit and wall time of the run that did.
    from dml_experiment.report.build import run_info

    profile = known_answer_profile()
    (tmp_path / "sweep.json").write_text(json.dumps(
        {"seconds": 600.0, "date": "2026-01-02 03:04 UTC", "commit": "abc1234", "versions": {"default": "v1.dir"}}
    ))
    info = run_info(tmp_path, profile, [], {}, 0.0, None)
    assert (info["date"], info["commit"], info["seconds"], info["versions"]) == (
        "2026-01-02 03:04 UTC", "abc1234", 600.0, {"default": "v1.dir"}
    )
    # An older sweep.json without date and commit: those come from the first report.
    (tmp_path / "sweep.json").write_text(json.dumps({"seconds": 600.0}))
    (tmp_path / "verdicts.json").write_text(json.dumps({"run": {"date": "d0", "commit": "c0", "seconds": 500.0}}))
    info = run_info(tmp_path, profile, [], {}, 0.0, None)
    assert (info["date"], info["commit"], info["seconds"]) == ("d0", "c0", 600.0)
    # A run that measured: now, on the commit given.
    info = run_info(tmp_path, profile, [], {"default": "v2.dir"}, 120.0, "fff0000")
    assert (info["commit"], info["seconds"], info["source"]) == ("fff0000", 120.0, "measured by the sweep flow")


def test_pca_2d_is_the_svd_projection_up_to_sign():
    from dml_experiment.report.plots import pca_2d

    x = np.random.default_rng(0).normal(size=(500, 8)) * np.arange(1, 9)
    xy, explained = pca_2d(x)
    c = x - x.mean(0)
    _, s, vt = np.linalg.svd(c, full_matrices=False)
    np.testing.assert_allclose(np.abs(xy), np.abs(c @ vt[:2].T), rtol=1e-9, atol=1e-9)
    assert explained == pytest.approx(float((s[:2] ** 2).sum() / (s**2).sum()))
    assert pca_2d(np.random.default_rng(1).normal(size=(10, 1)))[0].shape == (10, 2)  # 1-D: zero-padded
