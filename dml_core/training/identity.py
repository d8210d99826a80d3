"""Stable names and ids of trials."""
from __future__ import annotations

import hashlib
import json

from .config import TrialConfig


def trial_id(config: TrialConfig) -> str:
    """A short stable hash of everything that defines the trial's result: the key a sweep
    uses to skip trials it has already finished."""
    data = config.model_dump(mode="json")
    if not data.get("partition"):
        # Partition 0 is the split every trial had before partitions existed: leaving the key
        # out keeps those trials' ids (and the sweeps that skip them) as they were.
        data.pop("partition", None)
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def trial_name(config: TrialConfig) -> str:
    parts = [config.loss.name]
    if config.miner:
        parts.append(config.miner.name)
    if config.distance:
        parts.append(config.distance)
    parts.append(f"seed{config.seed}")
    if config.partition:
        parts.append(f"p{config.partition}")
    return "-".join(parts)
