"""Stable names and ids of trials."""
from __future__ import annotations

import hashlib
import json

from .config import TrialConfig
from .layout import use_channels_last
from .precision import resolve_precision


def trial_id(config: TrialConfig) -> str:
    """A short stable hash of everything that defines the trial's result: the key a sweep
    uses to skip trials it has already finished. Precision and layout are hashed as the
    trial would run them here: `auto` as this machine's default (resolve_precision), a null
    channels_last as the backbone's default (use_channels_last)."""
    resolved = resolve_precision(config)
    data = resolved.model_dump(mode="json")
    data["train"]["channels_last"] = use_channels_last(resolved)
    if data["optimizer"].get("schedule") != "warmup_cosine":
        # Only that schedule reads the warm-up; left out elsewhere, the ids from before it stay.
        data["optimizer"].pop("warmup", None)
    if data.get("partition_scope") == "training":
        # The only scope before class draws existed: left out, the ids of those trials stay.
        data.pop("partition_scope")
    if not data.get("partition"):
        # Partition 0 is the split every trial had before partitions existed: leaving the key
        # out keeps those trials' ids (and the sweeps that skip them) as they were.
        data.pop("partition", None)
    train = data["train"]
    if train["precision"] == "fp32" and not train["channels_last"]:
        # fp32 in NCHW memory is what every trial computed before both keys existed.
        del train["precision"], train["channels_last"]
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
