"""The verdict statistics: one test per outcome (holds, reversed, equivalent, not shown, not
testable here), Holm over the sweep's family, the minimum detectable effect, and replicates
paired by (seed, partition). Records are synthetic rows shaped like results.json's."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import TTestPower

from dml_experiment.report.sanity import RAW, UNTRAINED, gate, reference_values
from dml_experiment.report.verdict import (
    EQUIVALENT, HOLDS, NOT_SHOWN, NOT_TESTABLE, REVERSED, judge, judge_family, measure, minimum_detectable_effect,
    replicates_needed, tost_power,
)
from dml_experiment.profile import ComparisonConfig, Profile

REPLICATES = [(s, p) for s in (0, 1, 2) for p in (0, 1)]  # 3 seeds x 2 class partitions
# Each replicate's own level: partitions differ a lot (another split of the classes), seeds a little.
LEVEL = np.array([0.30 + 0.01 * s + 0.20 * p for s, p in REPLICATES])
NOISE = np.array([0.004, -0.003, 0.002, -0.004, 0.003, -0.002])  # mean 0


def rows(method: str, values, replicates=REPLICATES, metric: str = "map@r") -> list[dict]:
    return [{"trial_id": f"{method}-{s}-{p}", "name": f"{method}-seed{s}-p{p}", "method": method, "seed": s,
             "partition": p, "status": "finished", "metrics": {metric: float(v)}}
            for (s, p), v in zip(replicates, values)]


def arms(shift: float, noise=NOISE) -> list[dict]:
    """`a` = `b` + shift + noise, replicate by replicate."""
    return rows("a", LEVEL + shift + noise) + rows("b", LEVEL)


def profile(comparisons: dict, methods) -> Profile:
    return Profile.model_validate({
        "seeds": [0, 1, 2],
        "methods": {m: {"loss": "contrastive"} for m in methods},
        "comparisons": comparisons,
    })


# -- one test per outcome ---------------------------------------------------------------------
def test_a_clear_effect_in_the_claimed_direction_holds():
    v = judge("a > b", arms(0.05), "map@r")
    assert v.verdict == HOLDS and v.reason == ""
    d = NOISE + 0.05
    assert v.p == pytest.approx(stats.ttest_1samp(d, 0.0).pvalue)  # two-sided, on the paired differences
    assert v.p_holm == pytest.approx(v.p)  # a family of one
    assert (v.step, v.family, v.level) == (1, 1, pytest.approx(0.95))
    assert v.low < 0.05 < v.high and v.n == 6
    assert judge("b < a", arms(0.05), "map@r").verdict == HOLDS  # "B < A" is "A > B"


def test_the_reverse_effect_is_reversed():
    v = judge("a > b", arms(-0.05), "map@r")
    assert v.verdict == REVERSED and v.diff == pytest.approx(-0.05) and v.high < 0
    assert judge("a != b", arms(-0.05), "map@r").verdict == HOLDS  # a difference, either way


def test_noise_is_not_shown():
    noise = np.array([0.020, -0.025, 0.010, -0.015, 0.030, -0.018])
    v = judge("a > b", arms(0.0, noise), "map@r")
    assert v.verdict == NOT_SHOWN and "no significant difference" in v.reason
    assert v.low < 0 < v.high
    # Neither a difference nor an equivalence within ±1 point: "!=" is not shown either.
    w = judge("a != b", arms(0.0, noise), "map@r")
    assert w.verdict == NOT_SHOWN and "equivalence within ±1 not shown" in w.reason


def test_equal_arms_within_the_margin_are_equivalent():
    tiny = np.array([0.001, -0.001, 0.002, -0.002, 0.0005, -0.0005])
    for text in ("a ~ b", "a != b"):
        v = judge(text, arms(0.0, tiny), "map@r")
        assert v.verdict == EQUIVALENT, text
        assert v.p_tost_holm < 0.05 and v.interval == "equivalence"
        assert v.level == pytest.approx(0.90)  # the (1 - 2 alpha) interval of the TOST
        assert -v.margin < v.low and v.high < v.margin
    # The same arms 5 points apart: "~" is not shown, and says that they differ.
    v = judge("a ~ b", arms(0.05), "map@r")
    assert v.verdict == NOT_SHOWN and v.reason.startswith("the arms differ by +5.0")
    # A wider margin is a weaker claim: within ±10 points the 5-point gap is equivalent.
    assert judge("a ~ b", arms(0.05), "map@r", margin=0.10).verdict == EQUIVALENT


def test_raw_p_values_that_pass_alone_do_not_pass_holm_over_the_family():
    # Ten claims, each with a two-sided raw p of 0.02: each holds alone, none after Holm (10 x 0.02).
    n = len(REPLICATES)
    mu = stats.t.isf(0.01, n - 1) * NOISE.std(ddof=1) / math.sqrt(n)
    records, comparisons = [], {}
    for i in range(10):
        records += rows(f"a{i}", LEVEL + mu + NOISE) + rows(f"b{i}", LEVEL)
        comparisons[f"C{i}"] = {"claim": "a beats b", "methods": [f"a{i}", f"b{i}"], "expect": [f"a{i} > b{i}"]}
    prof = profile(comparisons, [f"{x}{i}" for i in range(10) for x in "ab"])
    alone = judge("a0 > b0", records, "map@r")
    assert alone.p == pytest.approx(0.02) and alone.verdict == HOLDS
    family = judge_family(prof.comparisons, records)
    verdicts = [v for vs in family.values() for v in vs]
    assert len(verdicts) == 10 and all(v.verdict == NOT_SHOWN for v in verdicts)
    assert all(v.p_holm == pytest.approx(0.2) and v.family == 10 for v in verdicts)
    assert "raw p 0.020 < 0.05, but p 0.200 Holm-adjusted over 10 claims" in verdicts[0].reason
    # The interval of Holm step k of m is the (1 - alpha / (m - k + 1)) one.
    assert sorted(v.step for v in verdicts) == list(range(1, 11))
    assert all(v.level == pytest.approx(1 - 0.05 / (10 - v.step + 1)) for v in verdicts)


def test_holm_steps_down_from_the_smallest_p():
    records = arms(0.05) + rows("c", LEVEL + 0.0005 * np.arange(6) - 0.00125)
    comps = {"big": {"claim": "a beats b", "methods": ["a", "b"], "expect": ["a > b"]},
             "none": {"claim": "c is like b", "methods": ["b", "c"], "expect": ["c ~ b", "c > b"]}}
    family = judge_family(profile(comps, ["a", "b", "c"]).comparisons, records)
    big = family["big"][0]
    assert big.verdict == HOLDS and big.step == 1 and big.p_holm == pytest.approx(3 * big.p)
    assert family["none"][0].verdict == EQUIVALENT


def test_a_comparison_whose_methods_lose_to_raw_pixels_is_not_testable_here(tmp_path):
    from dml_experiment.report.build import build_report

    low = 0.02  # every learned arm of L is below the raw pixels' 0.05
    records = arms(0.05) + rows("c", LEVEL * 0 + low + 0.01 + NOISE) + rows("d", LEVEL * 0 + low + NOISE)
    refs = [{"method": RAW, "seed": None, "status": "finished", "metrics": {"map@r": 0.05}}] + [
        {"method": UNTRAINED, "seed": s, "status": "finished", "metrics": {"map@r": 0.01}} for s in (0, 1, 2)]
    comps = {"G": {"claim": "a beats b", "methods": ["a", "b"], "expect": ["a > b"]},
             "L": {"claim": "c beats d", "methods": ["c", "d"], "expect": ["c > d"]}}
    prof = profile(comps, "abcd")
    values = reference_values(refs, "map@r")
    family = judge_family(prof.comparisons, records, gate=lambda cid, v: gate(v, values))
    lost = family["L"][0]
    assert lost.verdict == NOT_TESTABLE and "does not beat the raw pixels" in lost.reason
    assert lost.step is None and math.isfinite(lost.p)  # the numbers stay; the claim leaves the family
    assert family["G"][0].verdict == HOLDS and family["G"][0].family == 1

    # ... and through the report builder, into verdicts.json, metrics.json and report.md.
    build_report(tmp_path, "synthetic", "synthetic", prof, records, {}, 60.0, references={"G": refs, "L": refs})
    doc = json.loads((tmp_path / "verdicts.json").read_text())
    assert doc["comparisons"]["L"]["verdicts"][0]["verdict"] == NOT_TESTABLE
    assert doc["comparisons"]["G"]["verdicts"][0]["verdict"] == HOLDS and doc["family_size"] == 1
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["L"]["c_vs_d.holds"] is None and metrics["G"]["a_vs_b.holds"] == 1
    assert "not testable here" in (tmp_path / "report.md").read_text()


# -- the minimum detectable effect ---------------------------------------------------------------
def test_the_minimum_detectable_effect_shrinks_with_more_replicates():
    sd = 0.02
    mdes = [minimum_detectable_effect(n, sd, 0.05) for n in (3, 5, 10, 30)]
    assert all(x > y for x, y in zip(mdes, mdes[1:]))
    assert minimum_detectable_effect(5, sd, 0.005) > mdes[1]  # a stricter Holm level needs a larger effect
    v = judge("a > b", arms(0.05), "map@r")
    assert v.mde == pytest.approx(minimum_detectable_effect(6, float(NOISE.std(ddof=1)), 0.05))
    assert math.isnan(minimum_detectable_effect(1, sd, 0.05))


@pytest.mark.parametrize("n", [2, 3, 5, 10, 40])
@pytest.mark.parametrize("alpha", [0.05, 0.05 / 22, 0.001])
def test_the_minimum_detectable_effect_has_power_0_8(n, alpha):
    """Checked against statsmodels' own power function, at the Holm levels the report uses
    (TTestPower().solve_power returned non-solutions at three of these)."""
    sd = 0.02
    d = minimum_detectable_effect(n, sd, alpha) / sd
    power = TTestPower().power(effect_size=d, nobs=n, alpha=alpha, alternative="two-sided")
    upper = TTestPower().power(effect_size=d, nobs=n, alpha=alpha / 2, alternative="larger")
    assert upper == pytest.approx(0.8, abs=1e-6)
    assert math.isnan(power) or power == pytest.approx(0.8, abs=0.01)


def test_the_mde_on_synthetic_records_is_the_effect_a_t_test_detects_80_percent_of_the_time():
    """Simulated: paired differences with the MDE as their true mean are significant in
    about 80% of 4,000 draws."""
    n, sd, alpha = 6, 0.02, 0.01
    mde = minimum_detectable_effect(n, sd, alpha)
    draws = np.random.default_rng(0).normal(mde, sd, size=(4000, n))
    hits = stats.ttest_1samp(draws, 0.0, axis=1).pvalue < alpha
    assert hits.mean() == pytest.approx(0.8, abs=0.02)


def test_tost_power_matches_a_simulation_and_the_replicates_needed_reach_it():
    n, sd, margin, alpha = 8, 0.01, 0.01, 0.05
    draws = np.random.default_rng(1).normal(0.0, sd, size=(4000, n))
    mean, se = draws.mean(axis=1), draws.std(axis=1, ddof=1) / math.sqrt(n)
    tc = stats.t.ppf(1 - alpha, n - 1)
    shown = ((mean + margin) / se > tc) & ((margin - mean) / se > tc)
    assert tost_power(n, sd, margin, alpha) == pytest.approx(shown.mean(), abs=0.03)
    need = replicates_needed(sd, margin, alpha)
    assert tost_power(need, sd, margin, alpha) >= 0.8 > tost_power(need - 1, sd, margin, alpha)
    assert replicates_needed(0.0, margin, alpha) is None


def test_an_equivalence_claim_out_of_reach_says_so(tmp_path):
    """C8's case: at n = 6 the noise is too large for ±1 point whatever the difference."""
    noise = np.array([0.02, -0.015, 0.01, -0.02, 0.015, -0.01])
    v = judge("a ~ b", arms(0.0, noise), "map@r")
    assert v.verdict == NOT_SHOWN and v.tost_power < 0.8 and v.n_needed > 6
    from dml_experiment.report.build import claim_sentence

    text = claim_sentence(v)
    assert "equivalence is out of reach" in text and f"about {v.n_needed} replicates" in text


def test_a_warning_of_a_test_is_kept_with_its_claim():
    """Differences equal to 1e-13 relative make scipy warn of precision loss; the claim carries
    the warning, and the report prints it."""
    v = judge("a > b", rows("a", LEVEL + 0.3 + 1e-13 * NOISE) + rows("b", LEVEL), "map@r")
    assert any("Precision loss" in n for n in v.notes), v.notes
    from dml_experiment.report.build import claim_sentence

    assert "the tests warned: RuntimeWarning: Precision loss" in claim_sentence(v)
    assert judge("a > b", arms(0.05), "map@r").notes == []

# -- replicates ------------------------------------------------------------------------------------
def test_replicates_pair_by_seed_and_partition():
    v = measure("a > b", arms(0.03), "map@r")
    assert v.n == 6 and v.replicates == [list(k) for k in REPLICATES]
    assert v.differences == pytest.approx(list(0.03 + NOISE))  # never a partition 0 run against a partition 1 one
    # A failed replicate drops its pair only.
    records = [r for r in arms(0.03) if not (r["method"] == "a" and (r["seed"], r["partition"]) == (1, 1))]
    records.append({"method": "a", "seed": 1, "partition": 1, "status": "failed", "metrics": {}})
    w = measure("a > b", records, "map@r")
    assert w.n == 5 and [1, 1] not in w.replicates
    # Records from before partitions pair by seed.
    old = [{"method": m, "seed": s, "status": "finished", "metrics": {"map@r": 0.4 + 0.01 * s + (0.05 if m == "a" else 0)}}
           for m in "ab" for s in range(3)]
    u = measure("a > b", old, "map@r")
    assert u.n == 3 and u.replicates == [[0, None], [1, None], [2, None]]
    # A fixed baseline scored per partition pairs with each learned replicate's partition.
    fixed = rows("a", LEVEL + 0.03 + NOISE) + [
        {"method": "raw_euclidean", "seed": None, "partition": p, "status": "finished", "metrics": {"map@r": 0.30 + 0.20 * p}}
        for p in (0, 1)]
    f = measure("a > raw_euclidean", fixed, "map@r")
    assert f.n == 6 and "one-sample" in f.test
    assert f.differences == pytest.approx(list(LEVEL + 0.03 + NOISE - [0.30 + 0.20 * p for _, p in REPLICATES]))


def test_comparison_config_fields_and_equivalence_claims():
    c = ComparisonConfig(claim="x", methods=["a", "b"], expect=["a ~ b", "a != b", "a > b"])
    assert c.metric == "map@r" and c.margin == 0.01 and c.secondary == [] and c.factor == c.quote == c.departs == ""
    with pytest.raises(ValueError):
        ComparisonConfig(claim="x", methods=["a", "b"], margin=0)
    with pytest.raises(ValueError, match="primary metric"):
        ComparisonConfig(claim="x", methods=["a", "b"], secondary=["map@r"])


# -- the interaction of a 2 x 2 -------------------------------------------------------------------
def test_the_interaction_of_a_two_by_two_is_the_difference_of_differences():
    """a1 - b1 = +5 points, a2 - b2 = +1 point: the interaction is +4, with an interval from
    the per-replicate values, and a design without interaction gives one covering 0."""
    from dml_experiment.report.verdict import interaction

    recs = rows("a1", LEVEL + 0.05 + NOISE) + rows("b1", LEVEL) + rows("a2", LEVEL + 0.01) + rows("b2", LEVEL)
    x = interaction([["a1", "b1"], ["a2", "b2"]], recs, "map@r")
    assert x["n"] == 6 and x["diff"] == pytest.approx(0.04)
    assert x["low"] < 0.04 < x["high"] and x["p"] == pytest.approx(stats.ttest_1samp(0.04 + NOISE, 0.0).pvalue)
    flat = rows("a1", LEVEL + 0.05 + NOISE) + rows("b1", LEVEL) + rows("a2", LEVEL + 0.05) + rows("b2", LEVEL)
    y = interaction([["a1", "b1"], ["a2", "b2"]], flat, "map@r")
    assert y["low"] < 0 < y["high"] and y["p"] > 0.5


def test_an_interaction_must_name_four_methods_of_its_comparison():
    with pytest.raises(ValueError, match="interaction"):
        ComparisonConfig(claim="x", methods=["a", "b", "c", "d"], interaction=[["a", "b"], ["c", "a"]])
    ComparisonConfig(claim="x", methods=["a", "b", "c", "d"], interaction=[["a", "b"], ["c", "d"]])
