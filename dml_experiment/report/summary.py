"""Results of a sweep -> per-method summaries over seeds (mean and 95% interval)."""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from scipy import stats

HEADLINE = ("recall@1", "recall@2", "recall@4", "recall@8", "map@r", "r_precision", "nmi")


@dataclass
class Summary:
    mean: float
    low: float
    high: float
    n: int

    def text(self, scale: float = 100.0, digits: int = 1) -> str:
        if self.n == 0 or math.isnan(self.mean):
            return "-"
        if self.n == 1:
            return f"{self.mean * scale:.{digits}f}"
        return f"{self.mean * scale:.{digits}f} ± {(self.high - self.mean) * scale:.{digits}f}"


def mean_interval(values, confidence: float = 0.95) -> Summary:
    """Mean and the Student-t interval over seeds (n - 1 degrees of freedom)."""
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=np.float64)
    if len(v) == 0:
        return Summary(math.nan, math.nan, math.nan, 0)
    m = float(v.mean())
    if len(v) == 1:
        return Summary(m, m, m, 1)
    half = float(stats.t.ppf(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return Summary(m, m - half, m + half, len(v))


def by_method(results: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        groups[r["method"]].append(r)
    return dict(groups)


def summarize(results: list[dict], metrics=HEADLINE) -> dict[str, dict[str, Summary]]:
    """{method: {metric: Summary}} over the finished trials (seeds) of each method."""
    out = {}
    for method, rows in by_method(results).items():
        done = [r for r in rows if r["status"] == "finished"]
        out[method] = {m: mean_interval([r["metrics"].get(m) for r in done]) for m in metrics}
    return out


def markdown_table(results: list[dict], methods: list[str] | None = None, metrics=HEADLINE) -> str:
    """A table of mean ± 95% half-interval (in %) per method; failed seeds are counted."""
    summary = summarize(results, metrics)
    groups = by_method(results)
    methods = methods or list(summary)
    head = "| method | seeds ok | " + " | ".join(metrics) + " |"
    lines = [head, "|" + "---|" * (len(metrics) + 2)]
    for m in methods:
        if m not in summary:
            lines.append(f"| {m} | 0/0 | " + " | ".join("-" for _ in metrics) + " |")
            continue
        ok = sum(r["status"] == "finished" for r in groups[m])
        lines.append(f"| {m} | {ok}/{len(groups[m])} | " + " | ".join(summary[m][k].text() for k in metrics) + " |")
    return "\n".join(lines)


def comparison_table(results: list[dict], methods: list[str], metrics=HEADLINE, *, scale: float = 100.0,
                     labels: dict[str, str] | None = None) -> str:
    """Like `markdown_table`, for a report section: the best mean of each column in bold,
    and fixed baselines (seed None) marked "fixed" instead of a seed count."""
    summary = summarize(results, metrics)
    groups = by_method(results)
    labels = labels or {}
    best = {}
    for k in metrics:
        means = [summary[m][k].mean for m in methods if m in summary and not math.isnan(summary[m][k].mean)]
        best[k] = max(means) if means else math.nan
    head = "| method | runs | " + " | ".join(labels.get(k, k) for k in metrics) + " |"
    lines = [head, "|---|---|" + "---|" * len(metrics)]
    for m in methods:
        rows = groups.get(m, [])
        ok = sum(r["status"] == "finished" for r in rows)
        fixed = bool(rows) and all(r.get("seed") is None for r in rows)
        runs = "fixed" if fixed and ok else f"{ok}/{len(rows)} seeds"
        cells = []
        for k in metrics:
            s = summary.get(m, {}).get(k)
            text = s.text(scale) if s is not None else "-"
            if s is not None and s.n and s.mean == best[k] and len(methods) > 1:
                text = f"**{text}**"
            cells.append(text)
        lines.append(f"| `{m}` | {runs} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
