"""Sweeps: the grid of trials and (later) profiles, tracking and the report."""
from .grid import GridConfig, expand_grid, trial_id, trial_name

__all__ = ["GridConfig", "expand_grid", "trial_id", "trial_name"]
