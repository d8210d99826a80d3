"""Verdicts: does a comparison's claim hold at this scale, judged from the runs across seeds.

A claim is a directed pair written in params.yaml (``comparisons.<id>.expect``):

- ``"A > B"``: A scores higher than B on the comparison's metric. Tested with a paired
  t-test on the per-seed differences A - B (``scipy.stats.ttest_rel``), one-sided in the
  claimed direction (``alternative="greater"``). "A < B" is read as "B > A".
- ``"A != B"``: A and B differ, either way (the same test, two-sided).

Pairs are formed by seed: seed s of A against seed s of B, only seeds that finished for both
(a failed seed drops its pair). When one side is a deterministic baseline (C9's raw-pixel
metrics: ``seed`` None, a single value), the learned seeds are tested against that value with
a one-sample t-test (``scipy.stats.ttest_1samp``), which is the same statistic.

The rule, at alpha = 0.05:

- "holds": p < alpha in the claimed direction (for "!=": two-sided p < alpha);
- "does not hold": p < alpha in the opposite direction (one-sided claims only: the data say
  the reverse of the claim);
- "inconclusive": neither; also with fewer than 2 pairs, or a NaN statistic (e.g. every
  difference exactly 0). A two-sided claim without a significant difference is inconclusive,
  never "does not hold": a t-test cannot show that two methods are equal.

Every verdict carries the mean difference, its 95% Student-t interval and p, so a reader
can see the size of an effect and not only its sign. No correction for multiple claims is
applied; with 3 seeds (2 degrees of freedom) only large, consistent effects reach p < 0.05.
"""
from __future__ import annotations

import math
import re
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats

from .summary import mean_interval

ALPHA = 0.05
HOLDS, DOES_NOT_HOLD, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
# Set by the sanity gate (sanity.py): the methods do not beat raw pixels and the untrained network.
NOT_TESTABLE = "not testable here"
_CLAIM = re.compile(r"\s*([\w.\-]+)\s*(>|<|!=)\s*([\w.\-]+)\s*")


@dataclass(frozen=True)
class Claim:
    """``a op b`` with op ">" (a beats b) or "!=" (a and b differ)."""

    a: str
    op: str
    b: str

    @property
    def text(self) -> str:
        return f"{self.a} {self.op} {self.b}"

    @property
    def two_sided(self) -> bool:
        return self.op == "!="


def parse_claim(text: str) -> Claim:
    """"A > B", "A < B" (stored as "B > A") or "A != B"."""
    m = _CLAIM.fullmatch(text)
    if m is None:
        raise ValueError(f"claim {text!r} is not 'A > B', 'A < B' or 'A != B'")
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
    test: str  # the test used, named for the report
    n: int  # paired seeds (or learned seeds against a fixed baseline)
    mean_a: float
    mean_b: float
    diff: float  # mean of A - B over the pairs
    low: float  # 95% Student-t interval of the mean difference
    high: float
    p: float  # in the claimed direction (two-sided for "!=")
    p_opposite: float  # one-sided p for the reverse direction (NaN for "!=")
    reason: str = ""  # why inconclusive, when it is not for lack of significance
    seeds: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def values_by_seed(records: list[dict], method: str, metric: str) -> dict:
    """{seed: value} of the finished trials of `method` with a finite `metric`. A baseline
    record (seed None) gives {None: value}. Two finished trials of one seed: the last wins."""
    out = {}
    for r in records:
        if r.get("method") != method or r.get("status") != "finished":
            continue
        v = (r.get("metrics") or {}).get(metric)
        if v is None:
            continue
        try:
            v = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(v):
            out[r.get("seed")] = v
    return out


def _ttest(d: np.ndarray, a: np.ndarray | None, b: np.ndarray | None, alternative: str) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if a is not None and b is not None:
            res = stats.ttest_rel(a, b, alternative=alternative)
        else:
            res = stats.ttest_1samp(d, 0.0, alternative=alternative)
    return float(res.pvalue)


def paired_differences(a_vals: dict, b_vals: dict) -> tuple[list, np.ndarray, np.ndarray, np.ndarray, str]:
    """(seeds, a, b, a - b, kind) with kind "paired" (seed by seed), "vs_fixed_b" / "vs_fixed_a"
    (a single deterministic value on one side) or "none"."""
    fixed_a = list(a_vals) == [None]
    fixed_b = list(b_vals) == [None]
    if fixed_a and fixed_b:
        return [], np.zeros(0), np.zeros(0), np.zeros(0), "none"
    if fixed_b:
        seeds = sorted(s for s in a_vals if s is not None)
        a = np.array([a_vals[s] for s in seeds])
        b = np.full(len(seeds), b_vals[None])
        return seeds, a, b, a - b, "vs_fixed_b"
    if fixed_a:
        seeds = sorted(s for s in b_vals if s is not None)
        b = np.array([b_vals[s] for s in seeds])
        a = np.full(len(seeds), a_vals[None])
        return seeds, a, b, a - b, "vs_fixed_a"
    seeds = sorted(s for s in set(a_vals) & set(b_vals) if s is not None)
    a = np.array([a_vals[s] for s in seeds])
    b = np.array([b_vals[s] for s in seeds])
    return seeds, a, b, a - b, "paired"


def describe_test(kind: str, two_sided: bool) -> str:
    side = "two-sided" if two_sided else "one-sided in the claimed direction"
    if kind == "paired":
        return f"paired t-test on per-seed differences ({side}; scipy.stats.ttest_rel)"
    if kind in ("vs_fixed_a", "vs_fixed_b"):
        return f"one-sample t-test of the learned seeds against the fixed baseline value ({side}; scipy.stats.ttest_1samp)"
    return "no test (both sides deterministic)"


def judge(claim: Claim | str, records: list[dict], metric: str, alpha: float = ALPHA) -> ClaimVerdict:
    """The verdict of one claim on `metric`, from the records (trials and baselines)."""
    claim = parse_claim(claim) if isinstance(claim, str) else claim
    a_vals = values_by_seed(records, claim.a, metric)
    b_vals = values_by_seed(records, claim.b, metric)
    seeds, a, b, d, kind = paired_differences(a_vals, b_vals)
    n = len(d)
    s = mean_interval(d)
    mean_a = float(np.mean(list(a_vals.values()))) if a_vals else math.nan
    mean_b = float(np.mean(list(b_vals.values()))) if b_vals else math.nan
    p = p_opp = math.nan
    reason = ""
    if not a_vals or not b_vals:
        missing = [m for m, v in ((claim.a, a_vals), (claim.b, b_vals)) if not v]
        reason = f"no finished run with {metric} for {', '.join(missing)}"
    elif kind == "none":
        reason = "both sides are deterministic baselines: nothing to test across seeds"
    elif n < 2:
        reason = f"{n} paired seed{'s' if n != 1 else ''}: a test needs at least 2"
    else:
        pa, pb = (a, b) if kind == "paired" else (None, None)
        if claim.two_sided:
            p = _ttest(d, pa, pb, "two-sided")
        else:
            p = _ttest(d, pa, pb, "greater")
            p_opp = _ttest(d, pa, pb, "less")
        if math.isnan(p):
            reason = "the test is undefined (every difference is exactly equal)"
    if not math.isnan(p) and p < alpha:
        verdict = HOLDS
    elif not claim.two_sided and not math.isnan(p_opp) and p_opp < alpha:
        verdict = DOES_NOT_HOLD
    else:
        verdict = INCONCLUSIVE
    return ClaimVerdict(
        claim=claim.text, a=claim.a, op=claim.op, b=claim.b, metric=metric, verdict=verdict,
        test=describe_test(kind, claim.two_sided), n=n, mean_a=mean_a, mean_b=mean_b,
        diff=s.mean, low=s.low, high=s.high, p=p, p_opposite=p_opp, reason=reason, seeds=list(seeds),
    )


def judge_comparison(comparison, records: list[dict], metric: str | None = None, alpha: float = ALPHA) -> list[ClaimVerdict]:
    """Every `expect` claim of a ComparisonConfig, on its metric (or `metric`)."""
    metric = metric or comparison.metric
    return [judge(text, records, metric, alpha) for text in comparison.expect]


def overall(verdicts: list[ClaimVerdict]) -> str:
    """One word for a comparison: holds / does not hold / inconclusive when every claim
    agrees, otherwise "mixed (2 hold, 1 inconclusive)"; "no claim" without any."""
    if not verdicts:
        return "no claim"
    kinds = [v.verdict for v in verdicts]
    if len(set(kinds)) == 1:
        return kinds[0]
    counts = [(HOLDS, "hold", "holds"), (DOES_NOT_HOLD, "do not hold", "does not hold"),
              (INCONCLUSIVE, "inconclusive", "inconclusive"), (NOT_TESTABLE, "not testable here", "not testable here")]
    parts = [f"{kinds.count(k)} {plural if kinds.count(k) > 1 else single}" for k, plural, single in counts if kinds.count(k)]
    return "mixed (" + ", ".join(parts) + ")"
