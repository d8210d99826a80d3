"""Metric-learning losses. `build_loss(name, **opts)` -> nn.Module loss(emb, labels, indices=None)."""
from __future__ import annotations

from .base import MetricLoss
from .contrastive import ContrastiveLoss
from .facility_location import FacilityLocationLoss
from .infonce import InfoNCELoss
from .lifted_structured import LiftedStructuredLoss
from .log_ratio import LogRatioLoss
from .nce import NCELoss
from .npair import NPairLoss
from .reducers import REDUCERS, Terms
from .registry import LOSSES
from .triplet import TripletMarginLoss

build_loss = LOSSES.build

__all__ = [
    "LOSSES",
    "REDUCERS",
    "ContrastiveLoss",
    "FacilityLocationLoss",
    "InfoNCELoss",
    "LiftedStructuredLoss",
    "LogRatioLoss",
    "MetricLoss",
    "NCELoss",
    "NPairLoss",
    "Terms",
    "TripletMarginLoss",
    "build_loss",
]
