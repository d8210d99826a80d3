"""Tuning (issue 15): the profile's `tune:` section, and the search on Ray Tune + Optuna + ASHA."""
from __future__ import annotations

import copy
import math
import os
import shutil

import pytest

from dml_experiment.profile import load_profile
from dml_experiment.tuning.space import Budget, Distribution, TuneSettings, tuning_config
from dml_experiment.resources import RayConfig

BASE = {
    "profiles": {
        "p": {
            "datasets": {"default": "prepared/fashion_mnist"},
            "seeds": [0, 1],
            "methods": {
                "triplet": {"loss": {"name": "triplet", "options": {"margin": 0.2}}, "miner": {"name": "semihard"}},
                "contrastive": {"loss": "contrastive"},
            },
            "tune": {
                "budget": {"trials": 4, "epochs": 2, "max_batches_per_epoch": 3},
                "shared": {"optimizer.lr": {"loguniform": [1e-4, 1e-2]}},
                "methods": {
                    "triplet": {"space": {"loss.margin": {"uniform": [0.05, 0.5]}}, "tie": {"miner.margin": "loss.margin"}},
                    "contrastive": {"space": {"loss.neg_margin": {"uniform": [0.5, 1.5]}}},
                },
            },
        }
    }
}


def params(**tune_changes):
    data = copy.deepcopy(BASE)
    data["profiles"]["p"]["tune"].update(tune_changes)
    return data


# -- the profile ---------------------------------------------------------------------------------
def test_a_valid_tune_section_loads():
    _, prof = load_profile(params(), "p")
    assert prof.tune.space_of("triplet").keys() == {"optimizer.lr", "loss.margin"}
    assert prof.tune.with_ties("triplet", {"loss.margin": 0.3}) == {"loss.margin": 0.3, "miner.margin": 0.3}


def test_a_method_with_a_larger_budget_is_refused_by_name():
    data = params()
    data["profiles"]["p"]["tune"]["methods"]["contrastive"]["budget"] = {"trials": 8, "epochs": 2, "max_batches_per_epoch": 3}
    with pytest.raises(ValueError, match=r"tune\.methods\.contrastive\.budget.*same tuning budget"):
        load_profile(data, "p")


def comparing(data: dict, margin_b: dict, loss_b: dict | None = None) -> dict:
    """`data` with a second triplet arm searching `margin_b`, and a comparison of the two."""
    p = data["profiles"]["p"]
    p["methods"]["triplet_b"] = {"loss": loss_b or {"name": "triplet", "options": {"margin": 0.2}}}
    p["tune"]["methods"]["triplet_b"] = {"space": {"loss.margin": margin_b}}
    p["comparisons"] = {"C": {"claim": "x", "methods": ["triplet", "triplet_b"], "expect": ["triplet != triplet_b"]}}
    return data


def test_a_comparison_whose_arms_search_different_ranges_is_refused_by_name():
    data = comparing(params(), {"uniform": [0.05, 1.0]})
    with pytest.raises(ValueError, match=r"comparisons\.C: triplet searches loss\.margin over uniform \[0\.05, 0\.5\] "
                                         r"but triplet_b over uniform \[0\.05, 1\.0\]"):
        load_profile(data, "p")
    load_profile(comparing(params(), {"uniform": [0.05, 0.5]}), "p")  # one range: accepted
    # The shared learning rate counts too: a method's own lr range is another space.
    data = comparing(params(), {"uniform": [0.05, 0.5]})
    data["profiles"]["p"]["tune"]["methods"]["triplet_b"]["space"]["optimizer.lr"] = {"loguniform": [1e-3, 1e-1]}
    with pytest.raises(ValueError, match=r"comparisons\.C: .*optimizer\.lr"):
        load_profile(data, "p")


def test_a_margin_of_another_loss_is_another_option():
    """A lifted-structured margin (on D) and a triplet margin (on D^2) are two options: their
    ranges may differ (C5 compares different losses)."""
    data = comparing(params(), {"uniform": [0.2, 1.5]}, {"name": "lifted_structured", "options": {"margin": 1.0}})
    load_profile(data, "p")


def test_the_same_budget_written_twice_is_accepted():
    data = params()
    data["profiles"]["p"]["tune"]["methods"]["contrastive"]["budget"] = dict(BASE["profiles"]["p"]["tune"]["budget"])
    load_profile(data, "p")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"methods": {"contrastive": {"space": {"loss.margin": {"uniform": [0.1, 0.5]}}}}},
         r"tune\.methods\.contrastive\.space\.loss\.margin: 'margin' is not a tunable option of loss 'contrastive'"),
        ({"methods": {"contrastive": {"space": {"miner.margin": {"uniform": [0.1, 0.5]}}}}}, r"has no miner"),
        ({"methods": {"nope": {"space": {"loss.margin": {"uniform": [0.1, 0.5]}}}}}, r"tune\.methods\.nope: not a method"),
        ({"shared": {"optimizer.lr": {"loguniform": [0.0, 1e-2]}}}, r"loguniform: the low end 0.0 must be > 0"),
        ({"shared": {"optimizer.lr": {"uniform": [0.1, 0.01]}}}, r"low < high"),
        ({"shared": {"model.width": {"int": [2, 8]}}}, r"not loss.<option>, miner.<option> or optimizer"),
        ({"shared": {}, "methods": {"triplet": {"space": {"loss.margin": {"uniform": [0.1, 0.5]}}}}},
         r"tune\.methods\.contrastive: no space to search"),
        ({"methods": {"triplet": {"space": {"loss.margin": {"uniform": [0.1, 0.5]}}, "tie": {"miner.margin": "loss.nope"}},
                      "contrastive": {}}}, r"tie\.miner\.margin: 'loss.nope' is not in the method's space"),
    ],
)
def test_bad_tune_sections_name_the_key(change, message):
    with pytest.raises(ValueError, match=message):
        load_profile(params(**change), "p")


def test_a_distribution_takes_exactly_one_kind():
    with pytest.raises(ValueError, match="exactly one"):
        Distribution(uniform=(0, 1), loguniform=(0.1, 1))
    assert Distribution(choice=[1, 2]).text() == "choice [1, 2]"


def test_tuning_trials_never_name_the_evaluation_split_and_run_the_budget():
    _, prof = load_profile(params(val_items=200), "p")
    trial = prof.method_trials("triplet")[0].model_dump(mode="json")
    cfg = tuning_config(trial, prof.tune, prof.tune.with_ties("triplet", {"loss.margin": 0.33, "optimizer.lr": 0.002}))
    assert cfg["eval"]["split"] is None and cfg["eval"]["val_split"] == "val" and cfg["eval"]["max_items"] == 200
    assert cfg["train"]["epochs"] == 2 and cfg["train"]["max_batches_per_epoch"] == 3 and cfg["seed"] == prof.tune.seed
    assert cfg["loss"]["options"]["margin"] == 0.33 and cfg["miner"]["options"]["margin"] == 0.33
    assert cfg["optimizer"]["lr"] == 0.002
    assert trial["loss"]["options"]["margin"] == 0.2  # a copy: the method's own config is untouched


def test_a_budget_without_a_horizon_trains_as_long_as_a_final_run():
    data = params(budget={"trials": 3})
    data["profiles"]["p"]["train"] = {"epochs": 9, "max_batches_per_epoch": 4}
    data["profiles"]["p"]["optimizer"] = {"schedule": "warmup_cosine", "warmup": 0.05}
    _, prof = load_profile(data, "p")
    assert (prof.tune.budget.epochs, prof.tune.budget.max_batches_per_epoch) == (9, 4)
    cfg = tuning_config(prof.method_trials("triplet")[0].model_dump(mode="json"), prof.tune, {"loss.margin": 0.3})
    final = prof.method_trials("triplet")[0]
    assert cfg["train"]["epochs"] == final.train.epochs and cfg["train"]["max_batches_per_epoch"] == 4
    assert cfg["optimizer"] == final.optimizer.model_dump(mode="json")  # the same schedule, stretched alike


def test_each_method_searches_from_its_own_stable_seed():
    settings = TuneSettings.model_validate({"budget": {"trials": 3, "epochs": 1}, "seed": 0})
    seeds = {m: settings.search_seed(m) for m in ("triplet", "contrastive", "npair")}
    assert len(set(seeds.values())) == 3
    assert seeds == {m: settings.search_seed(m) for m in seeds}  # stable within a process...
    # ...and across processes and machines: sha256, not Python's salted hash().
    assert seeds["triplet"] == 1651188427
    other = TuneSettings.model_validate({"budget": {"trials": 3, "epochs": 1}, "seed": 1})
    assert other.search_seed("triplet") != seeds["triplet"]


def keys_of(data):
    _, prof = load_profile(data, "p")
    return {m: prof.tune.search_key(m, prof.method_trials(m)[0].model_dump(mode="json")) for m in prof.methods}


def test_a_search_key_changes_with_that_methods_search_only():
    keys = keys_of(params())
    assert keys == keys_of(params()) and len(set(keys.values())) == 2
    assert all(len(k) == 16 and int(k, 16) >= 0 for k in keys.values())
    wider = params()
    wider["profiles"]["p"]["tune"]["methods"]["contrastive"]["space"]["optimizer.lr"] = {"loguniform": [1e-4, 1e-1]}
    got = keys_of(wider)
    assert got["triplet"] == keys["triplet"] and got["contrastive"] != keys["contrastive"]
    # what every search shares changes every key: the budget, the seed, the shared space
    for change in ({"budget": {"trials": 5, "epochs": 2, "max_batches_per_epoch": 3}}, {"seed": 1},
                   {"shared": {"optimizer.lr": {"loguniform": [1e-5, 1e-2]}}}):
        got = keys_of(params(**change))
        assert all(got[m] != keys[m] for m in keys), change
    # and so does the trial that is tuned (a default option of the loss)
    other = params()
    other["profiles"]["p"]["methods"]["contrastive"] = {"loss": {"name": "contrastive", "options": {"pos_margin": 0.1}}}
    assert keys_of(other)["contrastive"] != keys["contrastive"]
    # the replicates are not part of it: tuning runs on the first one
    more = params()
    more["profiles"]["p"]["seeds"] = [0, 1, 2]
    assert keys_of(more) == keys


@pytest.mark.parametrize("dist,value,flag", [
    ({"uniform": [0.0, 1.0]}, 0.04, "low"), ({"uniform": [0.0, 1.0]}, 0.06, None), ({"uniform": [0.0, 1.0]}, 0.96, "high"),
    ({"loguniform": [1e-4, 1e-2]}, 1.2e-4, "low"), ({"loguniform": [1e-4, 1e-2]}, 1e-3, None),
    ({"loguniform": [1e-4, 1e-2]}, 0.0095, "high"), ({"int": [1, 21]}, 21, "high"), ({"choice": [1, 2]}, 1, None),
])
def test_a_chosen_value_near_a_bound_is_flagged(dist, value, flag):
    assert Distribution.model_validate(dist).near_bound(value) == flag


def test_the_tuning_table_flags_a_value_at_its_bound(tmp_path):
    from dml_experiment.record import TuningResult, TuningTrial
    from dml_experiment.report.tuning import tuning_section
    from flows.tuning import tuning_document

    _, prof = load_profile(params(), "p")
    curve = [{"epoch": 0, "val/map@r": 0.3}, {"epoch": 1, "val/map@r": 0.5}]
    trials = {"triplet": [TuningTrial("triplet", 0, {"loss.margin": 0.06, "optimizer.lr": 1e-3}, 0.5, 2, "finished", history=curve)],
              "contrastive": [TuningTrial("contrastive", 0, {"loss.neg_margin": 1.0, "optimizer.lr": 1e-3}, 0.5, 2, "finished")]}
    results = {m: TuningResult.of(m, t, 2) for m, t in trials.items()}
    spaces = {m: {k: d.text() for k, d in prof.tune.space_of(m).items()} for m in trials}
    doc = tuning_document(prof.tune, spaces, results, {}, None)
    assert doc["methods"]["triplet"]["chosen"]["at_bound"] == {"loss.margin": "low"}
    assert doc["methods"]["contrastive"]["chosen"]["at_bound"] == {}
    text = tuning_section(doc, tmp_path)
    assert "plots/validation_curves.png" in text and (tmp_path / "validation_curves.png").stat().st_size > 0
    assert "`loss.margin` = 0.06 **at low bound**" in text and "1 method(s) chose a value within 5% of a bound" in text


def test_final_trials_take_the_tuned_values():
    _, prof = load_profile(params(), "p")
    values = {"triplet": {"loss.margin": 0.4, "miner.margin": 0.4, "optimizer.lr": 0.003}}
    final = [t for m, t in prof.trials(values) if m == "triplet"]
    assert [t.seed for t in final] == [0, 1]
    assert all(t.loss.options["margin"] == 0.4 and t.miner.options["margin"] == 0.4 and t.optimizer.lr == 0.003 for t in final)
    assert all(t.eval.split == "eval" for t in final)


def test_the_chosen_trial_is_the_best_that_ran_the_whole_budget():
    from dml_experiment.record import TuningResult, TuningTrial, choose

    trials = [
        TuningTrial("m", 0, {"x": 0}, 0.5, 2, "finished"),
        TuningTrial("m", 1, {"x": 1}, 0.9, 1, "stopped"),  # higher, but after fewer epochs
        TuningTrial("m", 2, {"x": 2}, 0.6, 2, "finished"),
        TuningTrial("m", 3, {"x": 3}, None, 0, "failed", error="boom"),
    ]
    assert choose(trials, 2).index == 2
    assert choose(trials, 2, mode="min").index == 0
    assert choose([trials[1]], 2).index == 1  # no full trial: the best scored one
    assert choose([trials[3]], 2) is None
    result = TuningResult.of("m", trials[::-1], 2)
    assert [t.index for t in result.trials] == [0, 1, 2, 3] and result.chosen.index == 2 and result.values == {"x": 2}
    assert Budget(trials=3, epochs=2, max_batches_per_epoch=5).steps() == 10


# -- the search on Ray ------------------------------------------------------------------------------
BEST_MARGIN = 0.3


def synthetic_objective(config: dict) -> None:
    """A known optimum: the validation score peaks at margin 0.3 and rises with the epochs."""
    from ray import tune

    margin = config["params"]["trial"]["loss"]["options"]["margin"]
    for epoch in range(config["params"]["trial"]["train"]["epochs"]):
        score = math.exp(-(((margin - BEST_MARGIN) / 0.1) ** 2)) * (0.5 + 0.25 * epoch)
        tune.report({"score": score, "epoch": epoch, "val/map@r": score, "status": "finished"})


@pytest.fixture(scope="module")
def ray_session():
    import sys

    import cloudpickle
    import ray

    from dml_experiment.runner import init_ray

    # Workers cannot import this test module: its objective travels by value (Ray pickles
    # the trainable with its vendored cloudpickle).
    import ray.cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    init_ray(RayConfig(num_cpus=2))
    yield
    ray.shutdown()


def synthetic_search(seed: int, tmp_path):
    from dml_experiment.tuning.search import MethodSearch, run_tuning

    settings = TuneSettings.model_validate({
        "seed": seed, "budget": {"trials": 12, "epochs": 2},
        "methods": {"a": {"space": {"loss.margin": {"uniform": [0.0, 1.0]}}},
                    "b": {"space": {"loss.margin": {"uniform": [0.0, 1.0]}}}},
    })
    trial = {"dataset": "unused", "loss": {"name": "triplet", "options": {"margin": 0.2}}, "train": {"epochs": 2}, "eval": {}}
    searches = {m: MethodSearch(m, trial, settings.space_of(m)) for m in ("a", "b")}
    seen = []
    out = run_tuning(searches, settings, RayConfig(num_cpus=2), name=f"synthetic{seed}", storage_path=str(tmp_path),
                     on_trial_end=seen.append, progress=False, trainable=synthetic_objective)
    return out, seen, {m: r.values for m, r in out.items()}


@pytest.mark.slow
def test_the_search_finds_the_known_best_margin_and_a_seed_repeats_it(ray_session, tmp_path):
    out, seen, picked = synthetic_search(3, tmp_path / "one")
    assert {m: len(r.trials) for m, r in out.items()} == {"a": 12, "b": 12}  # the budget, exactly
    assert sorted((r.method, r.index) for r in seen) == sorted((m, i) for m in "ab" for i in range(12))
    for m in "ab":
        assert abs(picked[m]["loss.margin"] - BEST_MARGIN) < 0.06, (m, picked[m])
        assert any(t.status == "stopped" for t in out[m].trials)  # ASHA stopped poor margins after one epoch
    _, _, again = synthetic_search(3, tmp_path / "two")
    assert again == picked  # the same seed, the same chosen configuration


@pytest.mark.slow
def test_tuning_never_reads_the_evaluation_classes(ray_session, tmp_path):
    """The evaluation shards are deleted from a copy of the data: any read of them fails."""
    import json

    from dml_core.data import prepare_dataset
    from dml_core.data.synthetic import write_fashion_mnist
    from dml_experiment.tuning.search import MethodSearch, run_tuning
    from dml_core.training.trial import Trial
    from dml_core.training.config import TrialConfig

    data = tmp_path / "prepared"
    prepare_dataset("fashion_mnist", write_fashion_mnist(tmp_path / "raw", per_class=(24, 8)), data)
    card = json.loads((data / "card.json").read_text())
    evals = [s["file"] for s in card["shards"] if s["split"] == "eval"]
    assert evals
    for name in evals:
        (data / name).unlink()
    base = dict(dataset=str(data), model=dict(name="small_cnn", embedding_dim=8, options=dict(width=4)),
                loss=dict(name="triplet", options=dict(margin=0.2)), sampler=dict(batch_size=12, m_per_class=6),
                train=dict(epochs=2, max_batches_per_epoch=2), eval=dict(ks=[1, 2], every_epoch=False))
    with pytest.raises(Exception):  # the control: a trial that opens the evaluation split fails here
        Trial(TrialConfig.model_validate(base))
    settings = TuneSettings.model_validate({"budget": {"trials": 3, "epochs": 2, "max_batches_per_epoch": 2},
                                            "methods": {"triplet": {"space": {"loss.margin": {"uniform": [0.05, 0.5]}}}}})
    out = run_tuning({"triplet": MethodSearch("triplet", base, settings.space_of("triplet"))}, settings,
                     RayConfig(num_cpus=2), name="noeval", storage_path=str(tmp_path / "ray"), progress=False)
    trials = out["triplet"].trials
    assert len(trials) == 3 and all(t.status != "failed" for t in trials), [t.error for t in trials]
    assert all(0 <= t.score <= 1 and t.history and "val/map@r" in t.history[-1] for t in trials)
    shutil.rmtree(tmp_path / "ray", ignore_errors=True)


DRIVER_PID = os.getpid()


def interrupting_objective(config: dict) -> None:
    """The synthetic objective, but its first trial interrupts the driver as Ctrl-C would."""
    import signal
    import time

    if not os.environ.get("DML_TEST_INTERRUPTED"):
        os.environ["DML_TEST_INTERRUPTED"] = "1"  # the worker process is reused: interrupt once
        os.kill(DRIVER_PID, signal.SIGINT)
        time.sleep(2)
    synthetic_objective(config)


@pytest.mark.slow
def test_an_interrupted_tuning_chooses_nothing_and_says_the_sweep_resumes(ray_session, tmp_path):
    from dml_experiment.tuning.search import MethodSearch, TuningInterrupted, run_tuning

    settings = TuneSettings.model_validate({
        "budget": {"trials": 12, "epochs": 2},
        "methods": {"a": {"space": {"loss.margin": {"uniform": [0.0, 1.0]}}}},
    })
    trial = {"dataset": "unused", "loss": {"name": "triplet", "options": {"margin": 0.2}}, "train": {"epochs": 2}, "eval": {}}
    try:
        with pytest.raises(TuningInterrupted, match="run the same sweep again"):
            run_tuning({"a": MethodSearch("a", trial, settings.space_of("a"))}, settings, RayConfig(num_cpus=2),
                       name="interrupted", storage_path=str(tmp_path), progress=False, trainable=interrupting_objective)
    except KeyboardInterrupt:
        pytest.fail("the SIGINT reached the test: Ray Tune did not take it")


# -- bounds, ceilings, ties ----------------------------------------------------------------------
def _trial(**changes):
    from dml_core.training.config import TrialConfig

    cfg = {"dataset": "prepared/fashion_mnist", "loss": {"name": "triplet", "options": {"margin": 0.2}},
           "model": {"name": "small_cnn", "embedding_dim": 8, "normalize": True}}
    cfg.update(changes)
    return TrialConfig.model_validate(cfg)


def test_a_triplet_margin_has_its_distances_span_as_ceiling():
    from dml_experiment.tuning.bounds import ceilings

    assert ceilings(_trial()) == {"loss.margin": 4.0}  # D^2 on the unit sphere
    assert ceilings(_trial(distance="euclidean")) == {"loss.margin": 2.0}
    assert ceilings(_trial(distance="cosine", model={"name": "small_cnn", "embedding_dim": 8, "normalize": False})) == {"loss.margin": 2.0}
    assert ceilings(_trial(distance="euclidean", model={"name": "small_cnn", "embedding_dim": 8, "normalize": False})) == {}
    assert ceilings(_trial(miner={"name": "semihard", "options": {"margin": 0.2}}, distance="euclidean")) == \
        {"loss.margin": 2.0, "miner.margin": 2.0}
    assert ceilings(_trial(loss={"name": "contrastive"})) == {}


def test_a_high_bound_at_the_ceiling_is_not_flagged_and_one_below_it_is():
    from dml_experiment.tuning.bounds import at_ceiling, bound_flags

    space = {"loss.margin": Distribution.model_validate({"loguniform": [0.001, 2.0]}),
             "optimizer.lr": Distribution.model_validate({"loguniform": [1e-4, 1.0]})}
    values = {"loss.margin": 1.9, "optimizer.lr": 0.9}
    assert bound_flags(space, values, {"loss.margin": 2.0}) == {"optimizer.lr": "high"}
    assert at_ceiling(space, values, {"loss.margin": 2.0}) == {"loss.margin": 2.0}
    assert bound_flags(space, values, {"loss.margin": 4.0}) == {"loss.margin": "high", "optimizer.lr": "high"}
    assert at_ceiling(space, values, {"loss.margin": 4.0}) == {}
    assert bound_flags(space, {"loss.margin": 0.0011, "optimizer.lr": 0.01}, {"loss.margin": 2.0}) == {"loss.margin": "low"}


def _result(method, scores, values):
    from dml_experiment.record import TuningResult, TuningTrial

    trials = [TuningTrial(method, i, v, s, 2, "finished") for i, (s, v) in enumerate(zip(scores, values))]
    return TuningResult.of(method, trials, 2)


def test_a_method_whose_trials_all_tie_is_not_flagged_and_the_report_says_why(tmp_path):
    from dml_experiment.report.tuning import tuning_section
    from flows.tuning import tuning_document

    _, prof = load_profile(params(), "p")
    values = [{"loss.margin": 0.49, "optimizer.lr": 1e-3}, {"loss.margin": 0.2, "optimizer.lr": 1e-3}]
    results = {"triplet": _result("triplet", [0.017, 0.017], values),
               "contrastive": _result("contrastive", [0.5, 0.4], [{"loss.neg_margin": 1.49, "optimizer.lr": 1e-3}] * 2)}
    assert results["triplet"].tied and not results["contrastive"].tied
    assert not _result("triplet", [0.3], values[:1]).tied  # one trial is no tie
    spaces = {m: {k: d.text() for k, d in prof.tune.space_of(m).items()} for m in results}
    doc = tuning_document(prof.tune, spaces, results, {}, None, {"triplet": {"loss.margin": 4.0}})
    tri, con = doc["methods"]["triplet"]["chosen"], doc["methods"]["contrastive"]["chosen"]
    assert tri["at_bound"] == {} and tri["tied"] is True
    assert con["at_bound"] == {"loss.neg_margin": "high"} and con["tied"] is False
    text = tuning_section(doc, tmp_path)
    assert "(every trial tied)" in text and "Every trial of `triplet` scored the same" in text
    assert "**1 method(s) chose a value within 5% of a bound of its space** (`contrastive`;" in text


def test_a_bound_is_flagged_only_where_every_trial_tied_at_the_top_sits_at_it(tmp_path):
    """C2's easy triplets: trials whose network never moves all score the untrained MAP@R, and
    the first of them (the choice) may sit at a bound while another, inside, scores as well."""
    from dml_experiment.report.tuning import tuning_section
    from dml_experiment.tuning.bounds import shared_bound_flags
    from flows.tuning import tuning_document

    _, prof = load_profile(params(), "p")
    space = prof.tune.space_of("contrastive")
    edge, inside = {"loss.neg_margin": 1.49, "optimizer.lr": 1e-3}, {"loss.neg_margin": 0.7, "optimizer.lr": 1e-3}
    assert shared_bound_flags(space, [edge]) == {"loss.neg_margin": "high"}
    assert shared_bound_flags(space, [edge, inside]) == {}
    assert shared_bound_flags(space, [edge, dict(edge, **{"optimizer.lr": 2e-3})]) == {"loss.neg_margin": "high"}

    results = {
        # the first two share the best score, one of them inside the space; a worse one does not count
        "contrastive": _result("contrastive", [0.0119, 0.0119, 0.004], [edge, inside, edge]),
        # the best alone, at the bound: flagged although a worse trial lies inside
        "triplet": _result("triplet", [0.0119, 0.01], [{"loss.margin": 0.49, "optimizer.lr": 1e-3},
                                                        {"loss.margin": 0.2, "optimizer.lr": 1e-3}]),
    }
    assert [t.index for t in results["contrastive"].best_ties] == [0, 1] and not results["contrastive"].tied
    assert len(results["triplet"].best_ties) == 1
    spaces = {m: {k: d.text() for k, d in prof.tune.space_of(m).items()} for m in results}
    doc = tuning_document(prof.tune, spaces, results, {}, None, {"triplet": {"loss.margin": 4.0}})
    con, tri = doc["methods"]["contrastive"]["chosen"], doc["methods"]["triplet"]["chosen"]
    assert (con["at_bound"], con["ties"], con["index"]) == ({}, 2, 0)
    assert tri["at_bound"] == {"loss.margin": "high"} and tri["ties"] == 1
    text = tuning_section(doc, tmp_path)
    assert "(2 trials tied at this score)" in text and "In `contrastive` several trials share the best score" in text
    assert "**1 method(s) chose a value within 5% of a bound of its space** (`triplet`;" in text
    # A search resumed in parts: its time is this attempt's, and the text says so.
    assert "Tuning took 13.7 min." in tuning_section(tuning_document(prof.tune, spaces, results, {}, 822.6))
    resumed = tuning_section(tuning_document(prof.tune, spaces, results, {}, 822.6, None, 290))
    assert "Tuning took" not in resumed
    assert "took 13.7 min of tuning; earlier parts of the sweep had finished 290 of its trials" in resumed


def test_the_report_marks_a_margin_at_its_ceiling_without_a_flag(tmp_path):
    from dml_experiment.report.tuning import tuning_section
    from flows.tuning import tuning_document

    _, prof = load_profile(params(), "p")
    results = {"triplet": _result("triplet", [0.6, 0.5], [{"loss.margin": 0.49, "optimizer.lr": 1e-3},
                                                         {"loss.margin": 0.1, "optimizer.lr": 1e-3}])}
    spaces = {"triplet": {k: d.text() for k, d in prof.tune.space_of("triplet").items()}}
    doc = tuning_document(prof.tune, spaces, results, {}, None, {"triplet": {"loss.margin": 0.5, "miner.margin": 0.5}})
    chosen = doc["methods"]["triplet"]["chosen"]
    assert chosen["at_bound"] == {} and chosen["at_ceiling"] == {"loss.margin": 0.5}
    text = tuning_section(doc, tmp_path)
    assert "`loss.margin` = 0.49 (at its ceiling 0.5)" in text and "No chosen value lies within 5% of a bound" in text
    assert "`triplet` chose a margin at its ceiling" in text


# -- resuming a search ---------------------------------------------------------------------------
def _drive(searcher, n: int, tag: str):
    """Ask and tell `n` trials of a synthetic objective, one at a time, as Tune would."""
    from dml_experiment.record import TuningTrial
    from dml_experiment.tuning.search import SCORE

    out = []
    for i in range(n):
        p = searcher.suggest(f"{tag}{i}")["params"]
        v = p["values"]
        score = -abs(math.log10(v["optimizer.lr"]) + 3.0) - (v["loss.margin"] - 0.2) ** 2
        searcher.on_trial_complete(f"{tag}{i}", result={SCORE: score})
        out.append(TuningTrial(p["method"], p["index"], v, score, 2, "finished"))
    return out


def _searcher(done=()):
    from dml_experiment.tuning.search import MethodSearch, make_searcher

    _, prof = load_profile(params(budget={"trials": 9, "epochs": 2, "max_batches_per_epoch": 3}), "p")
    trial = prof.method_trials("triplet")[0].model_dump(mode="json")
    searches = {"triplet": MethodSearch("triplet", trial, prof.tune.space_of("triplet"), list(done))}
    return make_searcher(searches, prof.tune, {"threads": 1})


def test_a_resumed_search_proposes_what_an_uninterrupted_one_would():
    whole = _drive(_searcher(), 9, "a")  # 3 random start-up trials, then TPE
    for k in (1, 3, 5):
        rest = _drive(_searcher(whole[:k]), 9 - k, f"b{k}-")
        assert [t.index for t in rest] == list(range(k, 9))
        assert [t.values for t in rest] == [t.values for t in whole[k:]], k
    assert len({tuple(t.values.values()) for t in whole}) == 9  # no point drawn twice


def test_records_the_search_would_not_draw_are_kept_and_not_drawn_again(caplog):
    from dml_experiment.record import TuningTrial

    whole = _drive(_searcher(), 4, "a")
    foreign = [TuningTrial("triplet", i, {"optimizer.lr": 1e-3 * (i + 1), "loss.margin": 0.1 * (i + 1)}, -0.1 * i, 2, "finished")
               for i in range(3)]
    with caplog.at_level("WARNING"):
        rest = _drive(_searcher(foreign), 6, "c")
    assert "triplet tuning trial #0: the resumed search proposed" in caplog.text
    drawn = [t.values for t in rest]
    assert all(f.values not in drawn for f in foreign) and drawn[0] != whole[0].values
    assert [t.index for t in rest] == list(range(3, 9))


def _run_asha(scheduler, curves, first_index: int, metric: str):
    """Each curve's trial in turn through `scheduler`, as Tune would feed it; returns the
    epochs each trained and the records an attempt would write."""
    from dml_experiment.record import TuningTrial
    from dml_experiment.tuning.search import SCORE, Replayed
    from ray.tune.schedulers import TrialScheduler

    epochs, records = [], []
    for i, curve in enumerate(curves, start=first_index):
        trial = Replayed(f"t{i}", {"params": {"method": "triplet"}})
        scheduler.on_trial_add(None, trial)
        history = []
        for e, score in enumerate(curve):
            result = {"training_iteration": e + 1, SCORE: score}
            history.append({"epoch": float(e), metric: score})
            if scheduler.on_trial_result(None, trial, result) == TrialScheduler.STOP:
                break
        scheduler.on_trial_complete(None, trial, result)
        epochs.append(len(history))
        records.append(TuningTrial("triplet", i, {}, history[-1][metric], len(history),
                                   "finished" if len(history) == len(curve) else "stopped", history=history))
    return epochs, records


def test_a_resumed_asha_stops_the_trials_an_uninterrupted_one_would():
    from dml_experiment.tuning.search import make_scheduler

    _, prof = load_profile(params(budget={"trials": 8, "epochs": 9, "max_batches_per_epoch": 3},
                                  early_stop={"grace_period": 1, "reduction_factor": 3}), "p")
    metric = prof.tune.val_metric_of("triplet")
    levels = [0.5, 0.3, 0.6, 0.2, 0.55, 0.1, 0.7, 0.25]
    curves = [[lv * (e + 1) / 9 for e in range(9)] for lv in levels]
    whole, records = _run_asha(make_scheduler(prof.tune), curves, 0, metric)
    assert whole.count(9) < len(whole)  # ASHA stopped some
    resumed, _ = _run_asha(make_scheduler(prof.tune, {"triplet": records[:4]}), curves[4:], 4, metric)
    assert resumed == whole[4:]
    forgetful, _ = _run_asha(make_scheduler(prof.tune), curves[4:], 4, metric)
    assert forgetful != whole[4:]  # empty rungs: the first trial after a resume runs the horizon
