"""flows.tracking against a real MLflow SQLite store (no mocks): parent and child runs,
params, step-wise metrics, tags, artifacts, failed trials, resume, interrupted runs and the
registered model."""
from __future__ import annotations

import json
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

from dml_core.metrics import load_embeddings, save_embeddings  # noqa: E402
from dml_core.training import TrialConfig, run_trial  # noqa: E402
from dml_core.training.identity import trial_id, trial_name  # noqa: E402
from dml_experiment.record import FAILED, FINISHED, TrialRecord  # noqa: E402
from flows.tracking import (  # noqa: E402
    NOTE,
    PARENT,
    RECORD_DIGEST,
    SweepTracker,
    dataset_partitions,
    flatten,
    metric_key,
    param_value,
    params_of,
    record_digest,
    sweep_description,
    tracking_uri,
    trial_run_name,
    trial_run_names,
    use_tracking_uri,
)

# MLflow's own SQLAlchemy setup warns about its use of `noload`: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")

EXPERIMENT = "dml-test"
MODEL_NAME = "dml-test-embedder"
SWEEP_CONFIG = {"train": {"epochs": 3, "max_batches_per_epoch": 2}, "seeds": [3, 4], "losses": ["triplet"]}


# -- fixtures: one real tiny trial, one store -----------------------------------------------------
def finished_outcome(cfg: TrialConfig, artifacts: Path) -> TrialRecord:
    """A really trained trial, stored the way dml_experiment.runner.write_embeddings stores it."""
    result = run_trial(cfg)
    tid = trial_id(cfg)
    out = artifacts / tid
    out.mkdir(parents=True)
    save_embeddings(out / "embeddings.parquet", result.embeddings, result.labels, metadata={"trial_id": tid})
    torch.save(result.model.state_dict(), out / "model.pt")
    return TrialRecord(
        trial_id=tid, name=trial_name(cfg), method="triplet", seed=cfg.seed, config=cfg.model_dump(mode="json"),
        status=FINISHED, history=result.history,
        metrics=result.metrics, embeddings_path=str(out / "embeddings.parquet"), model_path=str(out / "model.pt"),
        seconds=result.seconds,
    )


def failed_outcome(cfg: TrialConfig, history: list[dict]) -> TrialRecord:
    """What the runner reports for a trial that diverged in its second epoch."""
    return TrialRecord(
        trial_id=trial_id(cfg), name=trial_name(cfg), method="triplet", seed=cfg.seed, config=cfg.model_dump(mode="json"),
        status=FAILED,
        error="TrialError: the loss became nan at epoch 1, step 0", history=history[:1], seconds=0.5,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_dataset, trial_config):
    ok = finished_outcome(trial_config(tiny_dataset, seed=3), tmp_path_factory.mktemp("artifacts"))
    bad = failed_outcome(trial_config(tiny_dataset, seed=4), ok.history)
    return SimpleNamespace(dataset=tiny_dataset, ok=ok, bad=bad)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow_store")
    return SimpleNamespace(root=root, uri=f"sqlite:///{root / 'mlflow.db'}")


@pytest.fixture(scope="module")
def sweep(trained, store):
    """A finished sweep: one finished trial, one failed trial, the best model registered."""
    tracker = SweepTracker(EXPERIMENT, "sweep-main", "smoke", SWEEP_CONFIG, uri=store.uri, tags={"dml.data_version": "abc123.dir"})
    with tracker:
        ok_run = tracker.log_trial(trained.ok, tags={"dml.method": "triplet-semihard"})
        bad_run = tracker.log_trial(trained.bad)
        info = tracker.log_best_model(trained.ok, MODEL_NAME)
    return SimpleNamespace(tracker=tracker, parent=tracker.parent_run_id, ok_run=ok_run, bad_run=bad_run, info=info,
                           client=MlflowClient(tracking_uri=store.uri))


# -- pure functions -------------------------------------------------------------------------------
def test_metric_names_map_to_what_mlflow_accepts():
    assert metric_key("recall@1") == "recall_at_1"
    assert metric_key("map@r") == "map_at_r"
    assert metric_key("val/recall@4") == "val/recall_at_4"
    assert metric_key("eval/ndcg@8") == "eval/ndcg_at_8"
    assert metric_key("train/loss") == "train/loss"
    assert metric_key("weird:name(1)//x/") == "weird_name_1_/x"
    from mlflow.utils.validation import _validate_metric_name

    for name in ("recall@1", "val/map@r", "a b:c", "x//y", "/lead", "é@ü"):
        _validate_metric_name(metric_key(name))  # raises on a name MLflow rejects


def test_config_flattens_to_string_params_within_the_length_limit():
    flat = flatten({"loss": {"name": "triplet", "options": {"margin": 0.2}}, "miner": None, "opts": {}, "ks": [1, 2]})
    assert flat == {"loss.name": "triplet", "loss.options.margin": 0.2, "miner": None, "opts": {}, "ks": [1, 2]}
    assert params_of({"a": {"b": True, "c": None, "d": [1, 2], "e": "x"}}) == {"a.b": "true", "a.c": "null", "a.d": "[1, 2]", "a.e": "x"}
    long = param_value("x" * 10_000)
    assert len(long) == 6000 and long.endswith("see the config artifact]")


def test_tracking_uri_is_the_project_sqlite_store_unless_the_variable_is_set(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking_uri(tmp_path) == "http://127.0.0.1:5999"


# -- one sweep in a real store --------------------------------------------------------------------
def test_one_parent_run_with_nested_trial_runs(sweep, trained):
    c = sweep.client
    parent = c.get_run(sweep.parent)
    assert parent.info.status == "FINISHED" and parent.info.run_name == "sweep-main"
    assert PARENT not in parent.data.tags
    for run_id, outcome in ((sweep.ok_run, trained.ok), (sweep.bad_run, trained.bad)):
        run = c.get_run(run_id)
        assert run.data.tags[PARENT] == sweep.parent
        assert run.info.run_name == outcome.name
        assert run.info.experiment_id == parent.info.experiment_id
    children = c.search_runs([parent.info.experiment_id], f"tags.`{PARENT}` = '{sweep.parent}'")
    assert {r.info.run_id for r in children} == {sweep.ok_run, sweep.bad_run}


def test_trial_params_are_the_flat_resolved_config(sweep, trained):
    params = sweep.client.get_run(sweep.ok_run).data.params
    assert params["loss.name"] == "triplet" and params["loss.options.margin"] == "0.2"
    assert params["miner.name"] == "batch_semihard" and params["model.embedding_dim"] == "8"
    assert params["eval.ks"] == "[1, 2, 4]" and params["seed"] == "3" and params["distance"] == "null"
    assert params == params_of(trained.ok.config)
    parent = sweep.client.get_run(sweep.parent).data.params
    assert parent == {"train.epochs": "3", "train.max_batches_per_epoch": "2", "seeds": "[3, 4]", "losses": '["triplet"]'}


def test_epoch_metrics_are_logged_with_steps(sweep, trained):
    c = sweep.client
    history = c.get_metric_history(sweep.ok_run, "val/recall_at_1")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [0, 1, 2]
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx([r["val/recall@1"] for r in trained.ok.history])
    assert [m.step for m in c.get_metric_history(sweep.ok_run, "train/loss")] == [0, 1, 2]
    final = c.get_run(sweep.ok_run).data.metrics
    assert final["recall_at_1"] == pytest.approx(trained.ok.metrics["recall@1"])
    assert final["map_at_r"] == pytest.approx(trained.ok.metrics["map@r"])
    assert final["nmi"] == pytest.approx(trained.ok.metrics["nmi"])
    assert not any("@" in k for k in final)


def test_tags_record_provenance(sweep, trained):
    parent = sweep.client.get_run(sweep.parent).data.tags
    assert parent["dml.sweep"] == "sweep-main" and parent["dml.profile"] == "smoke" and parent["dml.role"] == "sweep"
    assert parent["dml.data_version"] == "abc123.dir"
    assert parent["dml.version.mlflow"] == mlflow.__version__
    assert parent["dml.version.torch"] == torch.__version__
    assert {"dml.version.ray", "dml.version.prefect", "dml.version.dml", "dml.git_commit"} <= set(parent)
    child = sweep.client.get_run(sweep.ok_run).data.tags
    assert child["dml.trial_id"] == trained.ok.trial_id
    assert child["dml.seed"] == "3" and child["dml.method"] == "triplet-semihard"  # the caller's tag wins
    assert child["dml.data_version"] == "abc123.dir" and child["dml.git_commit"] == parent["dml.git_commit"]
    assert sweep.client.get_run(sweep.bad_run).data.tags["dml.method"] == "triplet-batch_semihard"


def test_trial_artifacts_are_stored_in_the_project(sweep, trained, store, tmp_path):
    c = sweep.client
    run = c.get_run(sweep.ok_run)
    assert run.info.artifact_uri.startswith((store.root / "mlartifacts").as_uri())
    top = {a.path for a in c.list_artifacts(sweep.ok_run)}
    assert {"config.json", "plots", "embeddings"} <= top
    assert {a.path for a in c.list_artifacts(sweep.ok_run, "plots")} == {"plots/recall_at_k.png", "plots/embeddings_pca.png"}
    local = Path(mlflow.artifacts.download_artifacts(run_id=sweep.ok_run, artifact_path="", dst_path=str(tmp_path), tracking_uri=store.uri))
    for png in ("plots/recall_at_k.png", "plots/embeddings_pca.png"):
        assert (local / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((local / "config.json").read_text()) == trained.ok.config
    emb, labels = load_embeddings(local / "embeddings" / "embeddings.parquet")
    emb0, labels0 = load_embeddings(trained.ok.embeddings_path)
    np.testing.assert_array_equal(emb, emb0)
    np.testing.assert_array_equal(labels, labels0)
    assert {a.path for a in c.list_artifacts(sweep.parent, "config")} == {"config/sweep_config.json"}


def test_a_failed_trial_ends_failed_with_its_error(sweep, trained):
    run = sweep.client.get_run(sweep.bad_run)
    assert run.info.status == "FAILED"
    assert run.data.tags["dml.error"] == trained.bad.error
    assert run.data.metrics["train/loss"] == pytest.approx(trained.bad.history[0]["train/loss"])
    assert "recall_at_1" not in run.data.metrics
    assert {a.path for a in sweep.client.list_artifacts(sweep.bad_run)} == {"config.json"}


def test_the_best_model_is_registered_and_loads_back(sweep, trained, store):
    c = sweep.client
    versions = c.search_model_versions(f"name = '{MODEL_NAME}'")
    assert [str(v.version) for v in versions] == [str(sweep.info.registered_model_version)]
    version = versions[0]
    assert version.run_id == sweep.ok_run  # lineage: the version points at the trial's run
    assert version.tags["dml.trial_id"] == trained.ok.trial_id
    run = c.get_run(sweep.ok_run).info
    assert run.status == "FINISHED"  # reopened to log the model, closed again
    assert run.end_time < version.creation_timestamp  # with the trial's own end time
    parent = c.get_run(sweep.parent).data
    assert parent.tags["dml.best_trial_id"] == trained.ok.trial_id
    assert parent.tags["dml.registered_model"] == f"{MODEL_NAME}/{version.version}"
    assert parent.metrics["best/map_at_r"] == pytest.approx(trained.ok.metrics["map@r"])

    from mlflow.models import get_model_info

    from dml_core.data import PreparedDataset

    with use_tracking_uri(store.uri):
        model = mlflow.pytorch.load_model(f"models:/{MODEL_NAME}/{version.version}")
        signature = get_model_info(f"models:/{MODEL_NAME}/{version.version}").signature
    assert signature.inputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 1, 28, 28)
    assert signature.outputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 8)
    # Five images, though the input example had two: the batch dimension is dynamic.
    images = PreparedDataset(trained.dataset, "eval").get_batch(list(range(5))).images
    with torch.no_grad():
        out = model(images)
    emb, _ = load_embeddings(trained.ok.embeddings_path)
    np.testing.assert_allclose(out.numpy(), emb[:5], rtol=1e-4, atol=1e-5)


# -- resume, interruption, failure: each on a sweep of its own ----------------------------------
def test_a_resumed_sweep_reopens_its_parent_and_lists_finished_trials(trained, store):
    first = SweepTracker(EXPERIMENT, "sweep-resume", "smoke", SWEEP_CONFIG, uri=store.uri)
    with first:
        ok_run = first.log_trial(trained.ok)
        first.log_trial(trained.bad)
    again = SweepTracker(EXPERIMENT, "sweep-resume", "smoke", {**SWEEP_CONFIG, "seeds": [3, 4, 5]}, uri=store.uri)
    with again:
        assert again.resumed and again.parent_run_id == first.parent_run_id
        assert again.finished_trials() == {trained.ok.trial_id: ok_run}  # the failed one runs again
        retry = again.log_trial(trained.bad)
    run = MlflowClient(tracking_uri=store.uri).get_run(again.parent_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["seeds"] == "[3, 4]"  # MLflow params are immutable: the first value stays
    assert run.data.tags["dml.changed_params_on_resume"] == "seeds"
    assert MlflowClient(tracking_uri=store.uri).get_run(retry).data.tags[PARENT] == first.parent_run_id


def test_sending_a_trial_again_logs_it_once_and_replaces_a_half_logged_run(trained, store):
    """What a sweep's outbox relies on: log_trial may be called again after any failure."""
    client = MlflowClient(tracking_uri=store.uri)
    with SweepTracker(EXPERIMENT, "sweep-resend", "smoke", SWEEP_CONFIG, uri=store.uri) as tracker:
        # What a server that went away mid-send leaves: the run created, nothing logged, RUNNING.
        tags = {PARENT: tracker.parent_run_id, "dml.sweep": "sweep-resend", "dml.role": "trial",
                "dml.trial_id": trained.ok.trial_id, RECORD_DIGEST: record_digest(trained.ok)}
        half = client.create_run(tracker.experiment_id, tags=tags).info.run_id
        assert tracker.logged_digests() == set()
        first = tracker.log_trial(trained.ok)
        assert tracker.log_trial(trained.ok) == first != half
        assert tracker.logged_digests() == {record_digest(trained.ok)}
        gone = client.get_run(half).info
        assert gone.lifecycle_stage == "deleted" and gone.status == "KILLED"  # none left RUNNING
        runs = tracker.search_runs(f"tags.`dml.sweep` = 'sweep-resend' AND tags.`dml.trial_id` = '{trained.ok.trial_id}'")
        assert [r.info.run_id for r in runs] == [first] and client.get_run(first).info.status == "FINISHED"


def test_runs_left_running_by_a_killed_process_are_marked_killed(trained, store):
    client = MlflowClient(tracking_uri=store.uri)
    killed = SweepTracker(EXPERIMENT, "sweep-killed", "smoke", SWEEP_CONFIG, uri=store.uri)
    killed.start()  # ... and the process dies: no finish(), a trial run half logged
    orphan = client.create_run(killed.experiment_id, tags={PARENT: killed.parent_run_id, "dml.sweep": "sweep-killed", "dml.trial_id": "x"})
    other = SweepTracker(EXPERIMENT, "sweep-other", "smoke", SWEEP_CONFIG, uri=store.uri)
    other.start()  # a different sweep, still running: not ours to touch
    assert client.get_run(orphan.info.run_id).info.status == "RUNNING"

    with SweepTracker(EXPERIMENT, "sweep-killed", "smoke", SWEEP_CONFIG, uri=store.uri) as again:
        assert client.get_run(orphan.info.run_id).info.status == "KILLED"
        assert client.get_run(orphan.info.run_id).data.tags["dml.interrupted"] == "true"
        assert again.parent_run_id == killed.parent_run_id
        assert client.get_run(again.parent_run_id).info.status == "RUNNING"  # reopened, ours now
        assert again.mark_interrupted() == []  # idempotent; never kills the open parent
        assert again.finished_trials() == {}
    assert client.get_run(other.parent_run_id).info.status == "RUNNING"
    other.finish()


def test_an_exception_ends_the_parent_run_failed(store):
    tracker = SweepTracker(EXPERIMENT, "sweep-crash", "smoke", SWEEP_CONFIG, uri=store.uri)
    with pytest.raises(ValueError, match="boom"):
        with tracker:
            raise ValueError("boom")
    client = MlflowClient(tracking_uri=store.uri)
    run = client.get_run(tracker.parent_run_id)
    assert run.info.status == "FAILED" and run.data.tags["dml.error"] == "ValueError: boom"
    with SweepTracker(EXPERIMENT, "sweep-crash", "smoke", SWEEP_CONFIG, uri=store.uri):
        pass  # the re-run succeeds: the same parent run, finished, the old error gone
    run = client.get_run(tracker.parent_run_id)
    assert run.info.status == "FINISHED" and "dml.error" not in run.data.tags


def test_a_sweep_marked_failed_ends_failed_with_its_cause(trained, store):
    with SweepTracker(EXPERIMENT, "sweep-all-failed", "smoke", SWEEP_CONFIG, uri=store.uri) as tracker:
        tracker.log_trial(trained.bad)
        tracker.fail("all 1 trials failed with the same error: TrialError: nan")
    run = MlflowClient(tracking_uri=store.uri).get_run(tracker.parent_run_id)
    assert run.info.status == "FAILED" and run.data.tags["dml.error"].endswith("TrialError: nan")


def test_a_tracker_pickles_for_prefect_and_reports_and_urls(sweep, store, tmp_path):
    clone = pickle.loads(pickle.dumps(sweep.tracker))
    assert clone.finished_trials() == {sweep.tracker.finished_trials().popitem()[0]: sweep.ok_run}
    (tmp_path / "report.md").write_text("# report\n")
    clone.log_report(tmp_path)
    clone.log_artifact(tmp_path / "report.md", "extra")
    paths = {a.path for a in sweep.client.list_artifacts(sweep.parent, "report")} | {a.path for a in sweep.client.list_artifacts(sweep.parent, "extra")}
    assert paths == {"report/report.md", "extra/report.md"}
    assert clone.parent_url() == f"http://127.0.0.1:5000/#/experiments/{clone.experiment_id}/runs/{sweep.parent}"


# -- run names and the sweep's description ----------------------------------------------------------
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("profile", ["quick", "smoke", "full", "paper"])
def test_every_run_name_of_a_sweep_is_unique_and_names_its_arm_and_seed(profile):
    from dml_experiment.profile import load_profile

    _, prof = load_profile(ROOT / "params.yaml", profile)
    trials = prof.trials()
    names = trial_run_names(trials)
    assert len(names) == len(trials) and len(set(names.values())) == len(trials)
    for method, cfg in trials:
        replicate = f"-p{cfg.partition}" if cfg.partition else ""  # a replicate's class partition, when not 0
        assert names[trial_id(cfg)] == f"{method}-seed{cfg.seed}{replicate}"
    if profile == "smoke":  # the three contrastive arms no longer share `contrastive-seed0`
        assert {"contrastive-seed0", "contrastive_pos_margin-seed0", "contrastive_binned-seed0"} <= set(names.values())


def test_grid_trials_and_clashing_names_stay_unique(trained, trial_config):
    base = trial_config(trained.dataset, seed=0)
    other_margin = base.model_copy(update={"loss": base.loss.model_copy(update={"options": {"margin": 0.5}})})
    names = trial_run_names([("grid", base), ("grid", other_margin), ("triplet_all", base.model_copy(update={"seed": 1}))])
    assert list(names.values()) == [
        "grid-triplet-batch_semihard-seed0",
        f"grid-triplet-batch_semihard-seed0-{trial_id(other_margin)}",
        "triplet_all-seed1",
    ]


def test_the_partition_of_a_dataset_card_is_in_the_run_name(trained, tmp_path, trial_config):
    card = json.loads((Path(trained.dataset) / "card.json").read_text())
    card["params"]["partition"] = 3
    (tmp_path / "card.json").write_text(json.dumps(card))
    partitions = dataset_partitions([trained.dataset, str(tmp_path)])
    assert partitions == {str(tmp_path): 3}
    assert trial_run_name("triplet_all", 2, partitions.get(str(tmp_path))) == "triplet_all-seed2-p3"
    cfg = trial_config(str(tmp_path), seed=2)
    assert trial_run_names([("triplet_all", cfg)], partitions) == {trial_id(cfg): "triplet_all-seed2-p3"}


def test_a_trial_run_takes_the_name_the_sweep_gives_it(trained, store):
    with SweepTracker(EXPERIMENT, "sweep-names", "smoke", SWEEP_CONFIG, uri=store.uri) as tracker:
        run_id = tracker.log_trial(trained.ok, tags={"dml.method": "triplet_semihard"}, run_name="triplet_semihard-seed3")
    run = MlflowClient(tracking_uri=store.uri).get_run(run_id)
    assert run.info.run_name == "triplet_semihard-seed3" and run.data.tags["dml.method"] == "triplet_semihard"


def test_the_parent_run_description_lists_the_comparisons(sweep):
    from dml_experiment.profile import load_profile

    assert sweep.client.get_run(sweep.parent).data.tags[NOTE].startswith("Sweep `sweep-main` of profile `smoke`.")
    _, prof = load_profile(ROOT / "params.yaml", "quick")
    text = sweep_description("quick-1234abcd", "quick", prof.model_dump(mode="json"))
    for cid, comp in prof.comparisons.items():
        line = next(line for line in text.splitlines() if line.startswith(f"- **{cid}**"))
        assert comp.claim in line and all(m in line for m in comp.methods) and all(e in line for e in comp.expect)
