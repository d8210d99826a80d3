from __future__ import annotations

from typing import TYPE_CHECKING

from ..registry import Registry

if TYPE_CHECKING:
    from .base import MetricLoss

LOSSES: Registry[MetricLoss] = Registry("loss")
