"""Sweep reports: summaries over replicates, verdicts of the claims, plots, the C9 baselines."""
from .build import build_report, verdict_table
from .summary import HEADLINE, Summary, by_method, markdown_table, mean_interval, summarize

__all__ = ["HEADLINE", "Summary", "build_report", "by_method", "markdown_table", "mean_interval", "summarize", "verdict_table"]
