"""Training: the trial as a plain function (no Ray here: the experiment package runs it on Ray)."""
from .config import TrialConfig
from .embed import embed, stratified_subset
from .trial import Trial, TrialError, TrialResult, build_model, open_splits, run_trial, score_model, scored_rows

__all__ = [
    "Trial", "TrialConfig", "TrialError", "TrialResult", "build_model", "embed", "open_splits", "run_trial", "score_model",
    "scored_rows", "stratified_subset",
]
