"""dml_core: deep metric learning building blocks (distances, miners, samplers, losses).

Imports torch and numpy only; orchestration (Prefect, Ray, MLflow) lives in flows/.
"""
from .distances import build_distance
from .losses import build_loss
from .metrics import evaluate
from .miners import build_miner

__all__ = ["build_distance", "build_loss", "build_miner", "evaluate"]
