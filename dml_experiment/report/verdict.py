"""Verdicts: what the replicates of a sweep show about each claim, at this scale.

Each comparison writes its claims before the run (params.yaml, ``comparisons.<id>.expect``),
on one primary metric (MAP@R by default, as Musgrave, Belongie and Lim recommend in "A Metric
Learning Reality Check", ECCV 2020):

- ``"A > B"``: A scores higher than B ("A < B" is read as "B > A");
- ``"A != B"``: A and B differ, either way;
- ``"A ~ B"``: A and B are equivalent: their difference lies within ±margin (the
  comparison's ``margin``, in metric units: 0.01 is one point of MAP@R×100).

**Replicates and pairs.** A replicate is a (training seed, class partition) pair; the arms
of a claim are paired replicate by replicate (records without a partition pair by seed), and
only replicates that finished for both arms count. When one arm is a deterministic baseline
(C9's raw-pixel metrics: ``seed`` None, one value, or one per partition), each learned
replicate is paired with the baseline's value on its partition.

**Tests.** The difference test is a two-sided paired t-test on the per-replicate
differences A - B (``scipy.stats.ttest_rel``; against a fixed baseline the one-sample
``scipy.stats.ttest_1samp`` of the differences, the same statistic). The equivalence test
is Schuirmann's two one-sided tests (TOST; Schuirmann, J Pharmacokinet Biopharm 15, 1987)
against ±margin (``statsmodels.stats.weightstats.ttost_paired``, or
``DescrStatsW(d).ttost_mean`` against a fixed baseline); its p is the larger one-sided p.

**The family and Holm.** Every claim of the whole sweep on its primary metric is one member
of one family, corrected with Holm's step-down procedure (Holm, Scand J Statist 6, 1979;
``statsmodels.stats.multitest.multipletests(method="holm")``), so judging is two passes:
``measure`` every claim (raw p's), then ``adjust`` them together (``judge_family`` does
both). A claim's member is its primary test: the difference test for ``>`` and ``!=``, the
TOST for ``~``. Claims that cannot be tested (fewer than 2 pairs, no finished run, SD 0) and
claims the sanity gate (sanity.py) marks "not testable here" are left out of the family:
they have no p to correct, and a claim that says nothing about the losses should not make
the others harder to show. A claim's secondary reading (TOST for ``!=``, the difference test
for ``~``) is Holm-adjusted in the claim's own place: its p replaces the claim's primary p
in the family (and takes the step it sorts into), so the family counts claims, not tests,
and a claim is read against the same m whichever way it is read.

**The rule**, with Holm-adjusted p's at alpha = 0.05:

- ``A > B``: difference significant and mean A - B > 0: "holds"; significant and < 0:
  "reversed"; otherwise "not shown".
- ``A != B``: difference significant: "holds"; else equivalence shown: "equivalent"; else
  "not shown" (a t-test that finds no difference never shows the arms equal: only the TOST can).
- ``A ~ B``: equivalence shown: "equivalent"; otherwise "not shown", with the reason "the
  arms differ by ..." when the difference test is significant.
- "not testable here": set by the sanity gate (sanity.py), never by this module.

**Intervals.** The interval reported matches the decision. At Holm step k of m a test runs
at alpha_k = alpha / (m - k + 1); a difference is shown with the two-sided
(1 - alpha_k) Student-t interval, which excludes 0 exactly when the raw p passes step k, and
an equivalence with the (1 - 2 alpha_k) interval, which lies inside ±margin exactly when the
TOST passes step k. (Holm's step-down also needs every earlier step to pass, which the
adjusted p says.) Claims outside the family get the plain (1 - alpha) or (1 - 2 alpha) one.

**Minimum detectable effect.** The true mean difference the difference test would detect
with power 0.8 at the level alpha_k of the claim's difference test and its n replicates,
in metric units: Cohen's d_z at which ``statsmodels.stats.power.TTestPower().power`` is 0.8,
times the SD of the paired differences. It is solved with ``scipy.optimize.brentq`` on the
upper tail (``alternative="larger"`` at alpha_k / 2: the opposite tail adds under 1e-3 at
power 0.8) and checked after solving against the two-sided power; TTestPower's own
``solve_power`` returned non-solutions here. A gap smaller than the MDE is one this sweep
could well miss.

**Power of an equivalence claim.** For ``~`` claims the report gives the power of the TOST
at the observed SD if the true difference were 0, and the number of replicates a
conclusive test would need (power 0.8): with se = SD / sqrt(n), df = n - 1 and t_c the
(1 - alpha_k) Student-t quantile, power = P(T_1 > t_c) + P(T_2 > t_c) - 1, T_1 and T_2
non-central t with non-centralities (delta + margin) / se and (margin - delta) / se
(Phillips, J Pharmacokinet Biopharm 18, 1990; ``scipy.stats.nct``).

**Warnings** raised by a test (scipy's precision-loss warning on nearly equal arms, say)
are kept in the claim's ``notes`` and printed beside its verdict, never silenced.
"""
from __future__ import annotations

import math
import re
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Mapping

import numpy as np
from scipy import stats

ALPHA = 0.05
MARGIN = 0.01  # default equivalence margin, metric units (±1 point of MAP@R×100)
POWER = 0.8  # the power the minimum detectable effect is computed at
HOLDS, REVERSED, EQUIVALENT, NOT_SHOWN = "holds", "reversed", "equivalent", "not shown"
# Set by the sanity gate (sanity.py): the methods do not beat raw pixels and the untrained network.
NOT_TESTABLE = "not testable here"
SECONDARY = "reported, not judged"  # a secondary metric's numbers: no verdict
VERDICTS = (HOLDS, REVERSED, EQUIVALENT, NOT_SHOWN, NOT_TESTABLE)
_CLAIM = re.compile(r"\s*([\w.\-]+)\s*(>|<|!=|~)\s*([\w.\-]+)\s*")


@dataclass(frozen=True)
class Claim:
    """``a op b`` with op ">" (a beats b), "!=" (a and b differ) or "~" (equivalent)."""

    a: str
    op: str
    b: str

    @property
    def text(self) -> str:
        return f"{self.a} {self.op} {self.b}"


def parse_claim(text: str) -> Claim:
    """"A > B", "A < B" (stored as "B > A"), "A != B" or "A ~ B"."""
    m = _CLAIM.fullmatch(text)
    if m is None:
        raise ValueError(f"claim {text!r} is not 'A > B', 'A < B', 'A != B' or 'A ~ B'")
    a, op, b = m.groups()
    if a == b:
        raise ValueError(f"claim {text!r} compares a method with itself")
    return Claim(b, ">", a) if op == "<" else Claim(a, op, b)


@dataclass
class ClaimVerdict:
    claim: str
    a: str
    op: str
    b: str
    metric: str
    verdict: str
    test: str  # the tests used, named for the report
    n: int  # replicates: (seed, partition) pairs finished for both arms
    mean_a: float
    mean_b: float
    diff: float  # mean of A - B over the pairs
    sd: float  # SD of the paired differences (ddof 1)
    p: float  # raw two-sided p of the difference test
    p_holm: float = math.nan  # the difference test's Holm-adjusted p
    p_tost: float = math.nan  # raw TOST p against ±margin ("!=" and "~" claims)
    p_tost_holm: float = math.nan  # the TOST's Holm-adjusted p
    margin: float = MARGIN
    alpha: float = ALPHA
    step: int | None = None  # Holm step k of the test whose interval is shown (None: outside the family)
    family: int = 0  # m, the number of claims in the family
    level: float = math.nan  # confidence of the interval shown
    interval: str = "difference"  # which interval: "difference" or "equivalence"
    low: float = math.nan
    high: float = math.nan
    mde: float = math.nan  # minimum detectable effect (power 0.8, level alpha_k), metric units
    tost_power: float = math.nan  # "~" claims: the TOST's power at the observed SD if the true difference were 0
    n_needed: int | None = None  # "~" claims: replicates for a TOST with power 0.8 at that SD
    reason: str = ""
    notes: list = field(default_factory=list)  # warnings the tests raised, as text
    replicates: list = field(default_factory=list)  # [seed, partition] of each pair
    differences: list = field(default_factory=list)  # A - B per pair, in the same order

    def as_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


# -- replicates and pairs -----------------------------------------------------------------------
def replicate_values(records: list[dict], method: str, metric: str) -> dict:
    """{(seed, partition): value} of the finished trials of `method` with a finite `metric`.
    A record without a partition has partition None; a baseline has seed None. Two finished
    trials of one replicate: the last wins."""
    out = {}
    for r in records:
        if r.get("method") != method or r.get("status") != "finished":
            continue
        v = (r.get("metrics") or {}).get(metric)
        try:
            v = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(v):
            out[(r.get("seed"), r.get("partition"))] = v
    return out


def paired_differences(a_vals: dict, b_vals: dict) -> tuple[list, np.ndarray, str]:
    """(replicates, a - b, kind): kind "paired" (replicate by replicate), "vs_fixed" (one arm
    deterministic: each learned replicate against the baseline's value on its partition, or
    its partition-free value) or "none" (both deterministic, or nothing)."""
    fixed_a = bool(a_vals) and all(s is None for s, _ in a_vals)
    fixed_b = bool(b_vals) and all(s is None for s, _ in b_vals)
    if fixed_a and fixed_b:
        return [], np.zeros(0), "none"
    if fixed_a or fixed_b:
        learned, fixed, sign = (b_vals, a_vals, -1.0) if fixed_a else (a_vals, b_vals, 1.0)
        by_part = {p: v for (_, p), v in fixed.items()}
        reps = sorted((k for k in learned if k[0] is not None and (k[1] in by_part or None in by_part)), key=_order)
        d = np.array([sign * (learned[k] - by_part.get(k[1], by_part.get(None))) for k in reps])
        return reps, d, "vs_fixed"
    reps = sorted((k for k in set(a_vals) & set(b_vals) if k[0] is not None), key=_order)
    return reps, np.array([a_vals[k] - b_vals[k] for k in reps]), "paired"


def _order(key):
    seed, part = key
    return (seed, part is not None, part or 0)


def describe_test(kind: str, op: str) -> str:
    if kind == "none":
        return "no test (both sides deterministic)"
    if kind == "paired":
        diff = "two-sided paired t-test on per-replicate differences (scipy.stats.ttest_rel)"
        tost = "TOST (statsmodels ttost_paired)"
    else:
        diff = "two-sided one-sample t-test of the learned replicates against the fixed baseline (scipy.stats.ttest_1samp)"
        tost = "TOST (statsmodels DescrStatsW.ttost_mean)"
    return f"{tost}; {diff}" if op == "~" else f"{diff}; {tost}" if op == "!=" else diff


# -- pass 1: the raw tests of one claim --------------------------------------------------------
def measure(claim: Claim | str, records: list[dict], metric: str, margin: float = MARGIN) -> ClaimVerdict:
    """The raw numbers of one claim: pairs, mean difference, SD, the raw two-sided p and (for
    "!=" and "~") the raw TOST p. The verdict is provisional ("not shown") until ``adjust``."""
    from statsmodels.stats.weightstats import DescrStatsW, ttost_paired

    claim = parse_claim(claim) if isinstance(claim, str) else claim
    a_vals = replicate_values(records, claim.a, metric)
    b_vals = replicate_values(records, claim.b, metric)
    reps, d, kind = paired_differences(a_vals, b_vals)
    n = len(d)
    p = p_tost = math.nan
    reason = ""
    caught: list = []
    if not a_vals or not b_vals:
        missing = [m for m, v in ((claim.a, a_vals), (claim.b, b_vals)) if not v]
        reason = f"no finished run with {metric} for {', '.join(missing)}"
    elif kind == "none":
        reason = "both sides are deterministic baselines: nothing to test across replicates"
    elif n < 2:
        reason = f"{n} paired replicate{'s' if n != 1 else ''}: a test needs at least 2"
    elif float(np.std(d)) == 0.0:
        reason = "every paired difference is the same (SD 0): no t-test is defined"
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if kind == "paired":
                a = np.array([a_vals[k] for k in reps])
                b = np.array([b_vals[k] for k in reps])
                p = float(stats.ttest_rel(a, b, alternative="two-sided").pvalue)
                if claim.op in ("!=", "~"):
                    p_tost = float(ttost_paired(a, b, -margin, margin)[0])
            else:
                p = float(stats.ttest_1samp(d, 0.0, alternative="two-sided").pvalue)
                if claim.op in ("!=", "~"):
                    p_tost = float(DescrStatsW(d).ttost_mean(-margin, margin)[0])
    return ClaimVerdict(
        claim=claim.text, a=claim.a, op=claim.op, b=claim.b, metric=metric, verdict=NOT_SHOWN,
        test=describe_test(kind, claim.op), n=n,
        mean_a=float(np.mean(list(a_vals.values()))) if a_vals else math.nan,
        mean_b=float(np.mean(list(b_vals.values()))) if b_vals else math.nan,
        diff=float(d.mean()) if n else math.nan, sd=float(d.std(ddof=1)) if n >= 2 else math.nan,
        p=p, p_tost=p_tost, margin=margin, reason=reason,
        replicates=[list(k) for k in reps], differences=[float(x) for x in d],
        notes=sorted({f"{w.category.__name__}: {w.message}" for w in caught}) if reason == "" else [],
    )


def primary_p(v: ClaimVerdict) -> float:
    """The claim's member of the family: the TOST p for "~", else the difference test's p."""
    return v.p_tost if v.op == "~" else v.p


def in_family(v: ClaimVerdict) -> bool:
    return v.verdict != NOT_TESTABLE and math.isfinite(primary_p(v))


# -- pass 2: Holm over the family, then the rule -----------------------------------------------
def holm(pvals: list[float], alpha: float = ALPHA) -> tuple[list[float], list[int]]:
    """(Holm-adjusted p's, Holm step k of each, 1-based), in the order given."""
    if not pvals:
        return [], []
    from statsmodels.stats.multitest import multipletests

    adjusted = multipletests(pvals, alpha=alpha, method="holm")[1]
    steps = np.empty(len(pvals), dtype=int)
    steps[np.argsort(pvals, kind="stable")] = np.arange(1, len(pvals) + 1)
    return [float(x) for x in adjusted], [int(s) for s in steps]


def holm_in_place(pvals: list[float], i: int, p: float, alpha: float = ALPHA) -> tuple[float, int]:
    """Holm-adjusted p and step of `p` read in member i's place (a claim's secondary test)."""
    if not math.isfinite(p):
        return math.nan, 0
    adjusted, steps = holm(pvals[:i] + [p] + pvals[i + 1:], alpha)
    return adjusted[i], steps[i]


def interval(differences, alpha: float) -> tuple[float, float]:
    """The two-sided (1 - alpha) Student-t interval of the mean difference."""
    from statsmodels.stats.weightstats import DescrStatsW

    d = np.asarray(differences, dtype=float)
    if len(d) < 2:
        m = float(d.mean()) if len(d) else math.nan
        return m, m
    low, high = DescrStatsW(d).tconfint_mean(alpha=alpha)
    return float(low), float(high)


def minimum_detectable_effect(n: int, sd: float, alpha: float, power: float = POWER) -> float:
    """The mean difference a two-sided t-test at `alpha` on n pairs detects with `power`, in
    the metric's units: d_z with TTestPower().power(d_z) = power, times the SD (see the
    module's docstring for why the upper tail is solved and the two-sided power checked)."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    from scipy.optimize import brentq
    from statsmodels.stats.power import TTestPower

    tp = TTestPower()

    def gap(d: float) -> float:
        return float(tp.power(effect_size=d, nobs=n, alpha=alpha / 2, alternative="larger")) - power

    high = 1.0
    while gap(high) < 0:
        high *= 2
    d = brentq(gap, 0.0, high, xtol=1e-10)
    two_sided = float(tp.power(effect_size=d, nobs=n, alpha=alpha, alternative="two-sided"))
    if math.isfinite(two_sided) and abs(two_sided - power) > 0.01:
        raise ArithmeticError(f"minimum detectable effect d={d:.4g} at n={n}, alpha={alpha:.3g} has "
                              f"two-sided power {two_sided:.3f}, not {power}")
    return d * sd


def tost_power(n: int, sd: float, margin: float, alpha: float, delta: float = 0.0) -> float:
    """The TOST's power against ±margin on n pairs with SD `sd` if the true difference is
    `delta` (Phillips 1990; see the module's docstring)."""
    if n < 2 or not math.isfinite(sd) or sd <= 0:
        return math.nan
    se, df = sd / math.sqrt(n), n - 1
    tc = stats.t.ppf(1 - alpha, df)
    p = stats.nct.sf(tc, df, (delta + margin) / se) + stats.nct.sf(tc, df, (margin - delta) / se) - 1.0
    return float(min(1.0, max(0.0, p)))


def replicates_needed(sd: float, margin: float, alpha: float, power: float = POWER, most: int = 100_000) -> int | None:
    """The fewest pairs (>= 2) at which the TOST reaches `power` if the true difference is 0
    (None: not within `most`)."""
    if not math.isfinite(sd) or sd <= 0:
        return None
    low, high = 2, 2
    while tost_power(high, sd, margin, alpha) < power:
        low, high = high, high * 2
        if high > most:
            return None
    while low < high:  # the power grows with n: the first n that reaches it
        mid = (low + high) // 2
        low, high = (mid + 1, high) if tost_power(mid, sd, margin, alpha) < power else (low, mid)
    return low


def decide(v: ClaimVerdict, p_holm: float, p_tost_holm: float, diff_step: int | None, tost_step: int | None,
           family: int, alpha: float = ALPHA) -> ClaimVerdict:
    """The verdict of one claim from its Holm-adjusted p's (see the module's rule), with the
    interval that matches it and the minimum detectable effect at its level. ``diff_step`` and
    ``tost_step``: the Holm steps of the difference test and the TOST (None: not in the family)."""
    def level_of(step):
        return alpha / (family - step + 1) if step else alpha

    sig = math.isfinite(p_holm) and p_holm < alpha
    equiv = math.isfinite(p_tost_holm) and p_tost_holm < alpha
    equivalence_interval = v.op == "~" or (v.op == "!=" and not sig and equiv)
    step = tost_step if equivalence_interval else diff_step
    lvl = 2 * level_of(step) if equivalence_interval else level_of(step)
    low, high = interval(v.differences, lvl)
    v = replace(v, p_holm=p_holm, p_tost_holm=p_tost_holm, step=step, family=family, alpha=alpha, level=1 - lvl,
                interval="equivalence" if equivalence_interval else "difference", low=low, high=high,
                mde=minimum_detectable_effect(v.n, v.sd, level_of(diff_step)))
    if v.op == "~":
        v = replace(v, tost_power=tost_power(v.n, v.sd, v.margin, level_of(tost_step)),
                    n_needed=replicates_needed(v.sd, v.margin, level_of(tost_step)))
    diff_alpha = level_of(diff_step)
    if v.verdict == NOT_TESTABLE or v.reason:  # gated, or nothing to test: the reason says why
        return v
    where = f"Holm-adjusted over {family} claim{'s' if family != 1 else ''}"
    if v.op == ">":
        if sig:
            return replace(v, verdict=HOLDS if v.diff > 0 else REVERSED)
        return replace(v, reason=_not_significant(v.p, p_holm, alpha, where))
    if v.op == "!=":
        if sig:
            return replace(v, verdict=HOLDS)
        if equiv:
            return replace(v, verdict=EQUIVALENT)
        return replace(v, reason=_not_significant(v.p, p_holm, alpha, where)
                       + f"; equivalence within ±{v.margin * 100:g} not shown either (TOST p {_p(p_tost_holm)})")
    if equiv:
        return replace(v, verdict=EQUIVALENT)
    if sig:
        lo, hi = interval(v.differences, diff_alpha)
        return replace(v, reason=f"the arms differ by {v.diff * 100:+.1f} [{lo * 100:+.1f}, {hi * 100:+.1f}] "
                                 f"(×100, {_pct(1 - diff_alpha)} interval; difference p {_p(p_holm)}, {where})")
    return replace(v, reason=f"equivalence within ±{v.margin * 100:g} not shown (TOST p {_p(p_tost_holm)}, {where})")


def _p(p: float) -> str:
    return "-" if not math.isfinite(p) else "< 0.001" if p < 0.001 else f"{p:.3f}"


def _pct(level: float) -> str:
    return f"{level * 100:.4g}%"


def _not_significant(p: float, p_holm: float, alpha: float, where: str) -> str:
    if math.isfinite(p) and p < alpha <= p_holm:
        return f"raw p {_p(p)} < {alpha:g}, but p {_p(p_holm)} {where}"
    return f"no significant difference (p {_p(p_holm)}, {where})"


def adjust(verdicts: list[ClaimVerdict], alpha: float = ALPHA) -> list[ClaimVerdict]:
    """Pass 2: Holm over the family (the verdicts that are in it), then the rule for each.
    Verdicts outside the family are returned with their intervals at the plain level."""
    members = [i for i, v in enumerate(verdicts) if in_family(v)]
    pvals = [primary_p(verdicts[i]) for i in members]
    adjusted, steps = holm(pvals, alpha)
    m = len(members)
    out = list(verdicts)
    for j, i in enumerate(members):
        v = verdicts[i]
        if v.op == "~":
            p_diff, diff_step = holm_in_place(pvals, j, v.p, alpha)
            out[i] = decide(v, p_diff, adjusted[j], diff_step, steps[j], m, alpha)
        elif v.op == "!=":
            p_tost, tost_step = holm_in_place(pvals, j, v.p_tost, alpha)
            out[i] = decide(v, adjusted[j], p_tost, steps[j], tost_step, m, alpha)
        else:
            out[i] = decide(v, adjusted[j], math.nan, steps[j], None, m, alpha)
    for i, v in enumerate(verdicts):
        if i not in members:
            if v.verdict != NOT_TESTABLE and not v.reason:
                v = replace(v, reason="the test is undefined")
            out[i] = decide(v, math.nan, math.nan, None, None, m, alpha)
    return out


# -- the API -------------------------------------------------------------------------------------
def judge(claim: Claim | str, records: list[dict], metric: str, alpha: float = ALPHA, margin: float = MARGIN) -> ClaimVerdict:
    """One claim judged alone (a family of one: no correction)."""
    return adjust([measure(claim, records, metric, margin)], alpha)[0]


def judge_family(comparisons: Mapping, records: list[dict], alpha: float = ALPHA,
                 gate: Callable[[str, ClaimVerdict], ClaimVerdict] | None = None) -> dict[str, list[ClaimVerdict]]:
    """{comparison id: its claims' verdicts}, every `expect` claim of every comparison (a
    ComparisonConfig: ``expect``, ``metric``, ``margin``) judged as one Holm family.

    ``gate(cid, verdict)`` (the sanity gate) runs between the two passes, on the raw numbers;
    a claim it marks "not testable here" leaves the family."""
    measured = []
    for cid, comp in comparisons.items():
        for text in comp.expect:
            v = measure(text, records, comp.metric, getattr(comp, "margin", MARGIN))
            measured.append((cid, gate(cid, v) if gate is not None else v))
    judged = adjust([v for _, v in measured], alpha)
    out: dict[str, list[ClaimVerdict]] = {cid: [] for cid in comparisons}
    for (cid, _), v in zip(measured, judged):
        out[cid].append(v)
    return out


def unjudged(claim: Claim | str, records: list[dict], metric: str, confidence: float = 0.95,
             margin: float = MARGIN) -> ClaimVerdict:
    """A secondary metric's numbers for a claim: the raw two-sided p and the plain
    `confidence` interval, never a verdict and never in the family."""
    v = measure(claim, records, metric, margin)
    low, high = interval(v.differences, 1 - confidence)
    return replace(v, verdict=SECONDARY, level=confidence, low=low, high=high)


def interaction(pairs, records: list[dict], metric: str, confidence: float = 0.95) -> dict:
    """The interaction of a 2 x 2 design, [[a1, b1], [a2, b2]]: the mean over replicates of
    (a1 - b1) - (a2 - b2), how much the effect of one factor changes with the other, with its
    plain Student-t interval and the raw two-sided p of a one-sample t-test (reported, never
    judged). Replicates are those finished for all four arms."""
    (a1, b1), (a2, b2) = pairs
    values = [replicate_values(records, m, metric) for m in (a1, b1, a2, b2)]
    reps = sorted(set.intersection(*(set(v) for v in values)), key=_order)
    d = np.array([(values[0][k] - values[1][k]) - (values[2][k] - values[3][k]) for k in reps])
    out = {"text": f"({a1} − {b1}) − ({a2} − {b2})", "metric": metric, "n": len(d),
           "diff": float(d.mean()) if len(d) else math.nan, "low": math.nan, "high": math.nan, "p": math.nan, "notes": []}
    if len(d) >= 2 and float(np.std(d)) > 0:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out["p"] = float(stats.ttest_1samp(d, 0.0).pvalue)
            out["low"], out["high"] = interval(d, 1 - confidence)
        out["notes"] = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    return out


def overall(verdicts: list[ClaimVerdict]) -> str:
    """One word for a comparison when every claim agrees (holds, reversed, ...), otherwise
    "mixed (2 hold, 1 not shown)"; "no claim" without any."""
    if not verdicts:
        return "no claim"
    kinds = [v.verdict for v in verdicts]
    if len(set(kinds)) == 1:
        return kinds[0]
    plural = {HOLDS: "hold"}
    parts = [f"{kinds.count(k)} {plural.get(k, k) if kinds.count(k) > 1 else k}" for k in VERDICTS if kinds.count(k)]
    return "mixed (" + ", ".join(parts) + ")"
