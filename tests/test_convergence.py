"""The convergence study (issue 25): each loss family at H and at 2H, flagged where 2H still gains."""
from __future__ import annotations

import copy

import pytest

from dml_experiment.convergence import study_document, study_trials, unconverged_families
from dml_experiment.profile import load_profile
from dml_experiment.report.convergence import convergence_section, not_converged_note

BASE = {"profiles": {"p": {
    "datasets": {"default": "prepared/fashion_mnist"},
    "seeds": [3, 4],
    "train": {"epochs": 3, "max_batches_per_epoch": 5},
    "eval": {"max_items": 600},
    "methods": {
        "triplet": {"loss": {"name": "triplet", "options": {"margin": 0.2}}, "miner": "batch_semihard"},
        "contrastive": {"loss": "contrastive"},
    },
    "convergence": {"methods": ["triplet", "contrastive"], "val_items": 300},
}}}


def profile(**changes):
    data = copy.deepcopy(BASE)
    data["profiles"]["p"].update(changes)
    return load_profile(data, "p")[1]


def record(method, epochs, score, status="finished"):
    history = [{"epoch": e, "train/steps": 5, "val/map@r": score} for e in range(epochs)]
    return {"method": method, "status": status, "history": history, "error": None if status == "finished" else "boom",
            "config": {"eval": {"split": None}, "train": {"epochs": epochs}}}


def test_each_method_runs_at_the_horizon_and_at_twice_it_on_validation_only():
    prof = profile()
    runs = study_trials(prof, {"triplet": {"loss.margin": 0.35}})
    assert [(m, t.train.epochs) for m, t in runs] == [("triplet", 3), ("triplet", 6), ("contrastive", 3), ("contrastive", 6)]
    for m, t in runs:
        assert t.eval.split is None and t.eval.val_split == "val" and t.eval.max_items == 300
        assert t.seed == 3 and t.train.max_batches_per_epoch == 5
    assert runs[0][1].loss.options["margin"] == 0.35 and runs[2][1].loss.options == {}


def test_a_method_still_improving_at_2h_is_flagged_and_a_flat_one_passes():
    prof = profile()
    rows = [record("triplet", 3, 0.60), record("triplet", 6, 0.65),  # +5 points: not converged
            record("contrastive", 3, 0.50), record("contrastive", 6, 0.51)]  # +1 point: converged
    doc = study_document(prof, rows, lambda m: "map@r")
    assert doc["methods"]["triplet"]["converged"] is False and doc["methods"]["triplet"]["steps"] == [15, 30]
    assert doc["methods"]["contrastive"]["converged"] is True
    assert doc["methods"]["contrastive"]["gain"] == pytest.approx(0.01)
    flagged = unconverged_families(doc)
    assert set(flagged) == {"triplet"} and "5.0 points" in flagged["triplet"]
    assert not_converged_note(["triplet", "contrastive"], prof, flagged) == {"triplet": flagged["triplet"]}
    assert not_converged_note(["contrastive"], prof, flagged) == {}
    text = convergence_section(doc)
    assert "**not converged**" in text and "Not converged: triplet." in text


def test_a_failed_run_is_not_measured_never_passed():
    prof = profile()
    rows = [record("triplet", 3, 0.60), record("triplet", 6, 0.0, status="failed")]
    doc = study_document(prof, rows, lambda m: "map@r")
    assert doc["methods"]["triplet"]["converged"] is None and doc["methods"]["contrastive"]["converged"] is None
    assert unconverged_families(doc) == {}
    assert "not measured (boom)" in convergence_section(doc)


def test_a_profile_without_a_study_says_so_and_an_unknown_method_is_refused():
    assert "No convergence study" in convergence_section(None)
    with pytest.raises(ValueError, match=r"convergence\.methods\[1\]: unknown method 'npair'"):
        profile(convergence={"methods": ["triplet", "npair"]})
