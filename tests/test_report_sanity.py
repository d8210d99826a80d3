"""The sanity gate: claims are judged only where their methods beat raw pixels and the untrained network."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dml_experiment.report.sanity import RAW, UNTRAINED, gate, reference_records, reference_values
from dml_experiment.report.verdict import HOLDS, NOT_SHOWN, NOT_TESTABLE, judge, overall


def records(method: str, values: list[float], metric: str = "map@r") -> list[dict]:
    return [{"method": method, "seed": s, "status": "finished", "metrics": {metric: v}} for s, v in enumerate(values)]


def refs(raw: float, untrained: list[float]) -> list[dict]:
    return [{"method": RAW, "seed": None, "status": "finished", "metrics": {"map@r": raw}}] + [
        {"method": UNTRAINED, "seed": s, "status": "finished", "metrics": {"map@r": v}} for s, v in enumerate(untrained)
    ]


def test_a_clear_effect_above_both_references_is_judged():
    recs = records("a", [0.40, 0.42, 0.41, 0.43, 0.40]) + records("b", [0.30, 0.31, 0.29, 0.30, 0.32])
    values = reference_values(refs(0.05, [0.01, 0.02, 0.015]), "map@r")
    assert values == {RAW: 0.05, UNTRAINED: pytest.approx(0.015)}
    v = gate(judge("a > b", recs, "map@r"), values)
    assert v.verdict == HOLDS and v.reason == ""


def test_the_same_effect_below_raw_pixels_is_not_testable_here_with_the_numbers():
    recs = records("a", [0.040, 0.042, 0.041, 0.043, 0.040]) + records("b", [0.030, 0.031, 0.029, 0.030, 0.032])
    raw = judge("a > b", recs, "map@r")
    assert raw.verdict == HOLDS  # the paired test alone would call it
    v = gate(raw, reference_values(refs(0.05, [0.01, 0.02, 0.015]), "map@r"))
    assert v.verdict == NOT_TESTABLE
    assert "a 4.1 does not beat the raw pixels (Euclidean) 5.0" in v.reason and "b 3.0" in v.reason
    assert "untrained" not in v.reason  # both arms beat the untrained network
    assert v.diff == raw.diff and v.p == raw.p  # the numbers stay for the reader
    assert overall([v, raw]) == "mixed (1 holds, 1 not testable here)"


def test_one_arm_below_the_untrained_network_is_enough():
    recs = records("a", [0.40, 0.42, 0.41]) + records("b", [0.01, 0.011, 0.012])
    v = gate(judge("a > b", recs, "map@r"), reference_values(refs(0.005, [0.02, 0.02, 0.02]), "map@r"))
    assert v.verdict == NOT_TESTABLE and "b 1.1 does not beat the untrained network (random init) 2.0" in v.reason


def test_a_claim_against_a_fixed_raw_baseline_is_gated_on_the_untrained_network_only():
    recs = records("learned", [0.03, 0.031, 0.032]) + [
        {"method": "raw_euclidean", "seed": None, "status": "finished", "metrics": {"map@r": 0.05}}
    ]
    values = reference_values(refs(0.05, [0.01, 0.01, 0.01]), "map@r")
    v = gate(judge("learned > raw_euclidean", recs, "map@r"), values, fixed={"raw_euclidean"})
    assert v.verdict != NOT_TESTABLE  # losing to raw pixels is this claim's answer, not a gate
    v = gate(judge("learned > raw_euclidean", recs, "map@r"), reference_values(refs(0.05, [0.04] * 3), "map@r"),
             fixed={"raw_euclidean"})
    assert v.verdict == NOT_TESTABLE


def test_no_references_or_no_runs_leave_the_verdict_alone():
    recs = records("a", [0.4, 0.41]) + records("b", [0.4, 0.41])
    v = judge("a != b", recs, "map@r")
    assert gate(v, {}) == v
    missing = judge("a > c", recs, "map@r")
    assert gate(missing, {RAW: 0.9}).verdict == NOT_SHOWN


def test_references_are_scored_like_the_trials(tmp_path):
    from dml_core.data import PreparedDataset, prepare_dataset
    from dml_core.data.synthetic import write_fashion_mnist
    from dml_core.metrics import evaluate
    from dml_experiment.report.baselines import raw_pixels
    from dml_core.training import TrialConfig
    from dml_core.training.embed import stratified_subset

    raw = write_fashion_mnist(tmp_path / "raw", per_class=(12, 4))
    prepare_dataset("fashion_mnist", raw, tmp_path / "fm")
    config = TrialConfig.model_validate({
        "dataset": str(tmp_path / "fm"), "loss": {"name": "contrastive"}, "distance": "cosine",
        "model": {"name": "small_cnn", "embedding_dim": 8, "options": {"width": 4}},
        "sampler": {"batch_size": 12, "m_per_class": 4}, "eval": {"ks": [1, 2], "max_items": 40},
    })
    got = reference_records(config, [0, 1])
    assert [(r["method"], r["seed"]) for r in got] == [(UNTRAINED, 0), (UNTRAINED, 1), (RAW, None)]
    assert got[0]["metrics"] != got[1]["metrics"]  # each seed's own initialisation

    ev = PreparedDataset(tmp_path / "fm", "eval")
    rows = stratified_subset(ev.labels, 40, seed=0)  # the items every trial is scored on
    expected = evaluate(raw_pixels(ev, rows).astype(np.float32), ev.labels[rows], ks=[1, 2], distance="euclidean", seed=0)
    assert got[2]["metrics"] == pytest.approx(expected)


# -- the references are built like the trials, without building the trials -----------------------
@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory):
    """A tiny Fashion-MNIST set (class labels) and its rotation set (a continuous label)."""
    from dml_core.data import prepare_dataset
    from dml_core.data.synthetic import write_fashion_mnist

    root = tmp_path_factory.mktemp("sanity")
    raw = write_fashion_mnist(root / "raw", per_class=(12, 4))
    prepare_dataset("fashion_mnist", raw, root / "fm")
    prepare_dataset("rotation", raw, root / "rot", seed=1)
    return root


def trial_config(dataset, labels="class", **over):
    from dml_core.training import TrialConfig

    continuous = labels == "continuous"
    return TrialConfig.model_validate({
        "dataset": str(dataset), "labels": labels, "distance": "cosine",
        "loss": {"name": "log_ratio" if continuous else "contrastive"},
        "model": {"name": "small_cnn", "embedding_dim": 8, "options": {"width": 4}},
        "sampler": {"kind": "continuous", "batch_size": 12, "options": {"num_neighbors": 3}} if continuous
        else {"batch_size": 12, "m_per_class": 4},
        "train": {"num_threads": 1}, "eval": {"ks": [1, 2], "max_items": 40}, **over,
    })


@pytest.mark.parametrize("partition", [0, 1])
def test_the_untrained_network_is_the_one_a_trial_of_that_seed_starts_from(tiny_sets, partition):
    from dml_core.training import Trial
    from dml_experiment.report.sanity import reference_config, untrained_network

    for seed in (0, 3):
        config = trial_config(tiny_sets / "fm", seed=seed, partition=partition)
        trial = Trial(config)
        got = untrained_network(reference_config(config), seed, trial.train_set.image_shape).state_dict()
        expected = trial.model.state_dict()
        assert list(got) == list(expected)
        assert all(torch.equal(got[k], expected[k]) for k in expected), seed


@pytest.mark.parametrize("dataset,labels", [("fm", "class"), ("rot", "continuous")])
def test_each_reference_equals_the_score_of_a_whole_trial(tiny_sets, dataset, labels):
    # The independent path: a whole Trial of each seed, scored before any step (what the
    # references were computed with before), and its network swapped for the raw pixels.
    from dml_core.training import Trial
    from dml_experiment.report.sanity import reference_config

    config = trial_config(tiny_sets / dataset, labels)
    got = reference_records(config, [0, 2])
    assert [(r["method"], r["seed"]) for r in got] == [(UNTRAINED, 0), (UNTRAINED, 2), (RAW, None)]
    for record, seed in zip(got, [0, 2]):
        trial = Trial(reference_config(config).model_copy(update={"seed": seed}))
        assert record["metrics"] == trial.score(trial.eval_set)[0]
    trial.model = torch.nn.Flatten()
    assert got[2]["metrics"] == trial.score(trial.eval_set)[0]
    assert got[0]["metrics"] != got[1]["metrics"]


def test_the_raw_pixel_reference_of_a_class_set_is_c9s_raw_euclidean_baseline(tiny_sets):
    from dml_experiment.report.baselines import raw_baselines
    from dml_experiment.report.sanity import raw_from_baselines

    config = trial_config(tiny_sets / "fm")
    baselines = raw_baselines(tiny_sets / "fm", 40, ks=(1, 2))
    computed = reference_records(config, [0])[-1]
    assert computed["method"] == RAW
    raw = raw_from_baselines(config, baselines)
    assert raw == computed["metrics"]  # exactly: why the baseline's numbers may stand in
    assert reference_records(config, [0], raw)[-1] == computed
    # Anything that makes them other numbers: computed, not reused.
    other_ks = trial_config(tiny_sets / "fm", eval={"ks": [1], "max_items": 40})
    assert raw_from_baselines(other_ks, baselines) is None
    assert raw_from_baselines(trial_config(tiny_sets / "fm", eval={"ks": [1, 2], "max_items": 30}), baselines) is None
    assert raw_from_baselines(trial_config(tiny_sets / "rot", "continuous"), baselines) is None
    assert raw_from_baselines(config, [dict(b, status="failed") for b in baselines]) is None
    assert raw_from_baselines(config, None) is None
