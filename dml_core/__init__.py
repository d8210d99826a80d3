"""dml_core: the deep-metric-learning library (distances, kernels, miners, samplers, losses,
metrics, data, models, and the trial as a function: ``dml_core.training.run_trial``).

Imports torch, numpy, pyarrow, pydantic and FAISS only; never Ray, Prefect, MLflow or
Optuna. The experiment that runs it (profiles, tuning, Ray runners, records, verdicts,
report) is the package ``dml_experiment``; the Prefect flows and MLflow tracking are in
``flows/``. Neither is imported from here.
"""
from .distances import build_distance
from .losses import build_loss
from .metrics import evaluate
from .miners import build_miner

__all__ = ["build_distance", "build_loss", "build_miner", "evaluate"]
