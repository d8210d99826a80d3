"""Sweeps: the grid of trials, the profiles of params.yaml, and the record of each trial."""
from .grid import GridConfig, expand_grid, trial_id, trial_name
from .record import TrialRecord, as_rows

__all__ = ["GridConfig", "TrialRecord", "as_rows", "expand_grid", "trial_id", "trial_name"]
