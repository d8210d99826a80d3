"""Training: the trial as a plain function (no Ray here: the experiment package runs it on Ray)."""
from .config import TrialConfig
from .embed import embed, stratified_subset
from .trial import Trial, TrialError, TrialResult, run_trial

__all__ = ["Trial", "TrialConfig", "TrialError", "TrialResult", "embed", "run_trial", "stratified_subset"]
