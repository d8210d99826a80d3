"""What a prepared set's continuous label means, as its card says: the targets a loss
compares, and the classes the label falls into when it is cut into bins.

The source that writes the label says what it is, in the card's ``continuous_label`` block:

- ``kind: angle`` with ``period`` P: a position on a circle of circumference P (the rotation
  set: degrees, P = 360). The label distance is the circular one,
  d(a, b) = min(|a - b| mod P, P - |a - b| mod P). The targets are the unit vectors
  (cos 2 pi a / P, sin 2 pi a / P), whose Euclidean (chord) distance 2 sin(pi d / P) grows
  with d, so a loss that takes Euclidean label distances, such as the log-ratio loss (Kim,
  Sohn & Kwak, "Deep Metric Learning Beyond Binary Supervision", CVPR 2019), ranks label
  pairs as the circle does. Bins are equal arcs of P, the first starting at 0.
- ``kind: linear``: plain values ([N], or vectors [N, L]); the targets are the values
  themselves. Bins (of one value a row) are equal intervals of the range [low, high]: the
  card's ``low`` and ``high`` where it gives them, else the smallest and largest value of
  the rows at hand (the trial takes those of its training rows).

A card whose block has no ``kind`` (one written before the kind was recorded) is read as
``linear``, with a warning that names the card: the values are not reinterpreted by guess,
and preparing the set again records what they mean.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

ANGLE, LINEAR = "angle", "linear"
KINDS = (ANGLE, LINEAR)


def circular_distance(a, b, period: float = 360.0):
    """min(|a - b| mod period, period - |a - b| mod period), for NumPy arrays or tensors."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        d = torch.remainder(torch.abs(torch.as_tensor(a) - torch.as_tensor(b)), period)
        return torch.minimum(d, period - d)
    d = np.remainder(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)), period)
    return np.minimum(d, period - d)


def angle_to_unit_vector(angles, period: float = 360.0):
    """[..., 2] points (cos, sin) on the unit circle, for losses with Euclidean label distance."""
    if isinstance(angles, torch.Tensor):
        rad = angles * (2 * math.pi / period)
        return torch.stack([torch.cos(rad), torch.sin(rad)], dim=-1)
    rad = np.asarray(angles, dtype=np.float64) * (2 * math.pi / period)
    return np.stack([np.cos(rad), np.sin(rad)], axis=-1)


@dataclass(frozen=True)
class ContinuousLabel:
    """The meaning of a continuous label (module docstring): ``kind`` with the ``period`` of
    an angle, or the range [``low``, ``high``] a linear label is binned over."""

    kind: str = LINEAR
    period: float | None = None
    low: float | None = None
    high: float | None = None

    def targets(self, values) -> torch.Tensor:
        """The float32 targets of ``values`` [N] (or [N, L] for a linear label)."""
        t = torch.as_tensor(np.asarray(values), dtype=torch.float32)
        if self.kind == LINEAR:
            return t
        if t.dim() != 1:
            raise ValueError(f"an angle label is one value a row, got values of shape {tuple(t.shape)}")
        return angle_to_unit_vector(t, self.period)

    def classes(self, values, bins: int) -> np.ndarray:
        """The bin 0..bins-1 of each of ``values`` [N] (int64)."""
        v = np.asarray(values, dtype=np.float64)
        if v.ndim != 1:
            raise ValueError(f"binning needs one continuous value a row, got values of shape {v.shape}")
        if self.kind == ANGLE:
            return np.minimum((v % self.period) // (self.period / bins), bins - 1).astype(np.int64)
        if self.low is None or self.high is None:
            raise ValueError("binning a linear label needs its range: low and high")
        width = (self.high - self.low) / bins
        if width <= 0:  # one value throughout: one bin
            return np.zeros(len(v), dtype=np.int64)
        return np.clip(np.floor((v - self.low) / width), 0, bins - 1).astype(np.int64)

    def with_range_of(self, values) -> ContinuousLabel:
        """A linear label without a range takes that of ``values`` [N]; otherwise unchanged."""
        v = np.asarray(values)
        if self.kind != LINEAR or (self.low is not None and self.high is not None) or v.ndim != 1 or not v.size:
            return self
        return replace(self, low=float(v.min()), high=float(v.max()))


def _number(info: dict[str, Any], key: str, where: str, *, positive: bool = False) -> float | None:
    value = info.get(key)
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (positive and value <= 0):
        raise ValueError(
            f"{where}: continuous_label.{key} must be a finite number{' > 0' if positive else ''}, got {value!r}"
        )
    return float(value)


def continuous_entry(continuous: np.ndarray | None, info: dict[str, Any] | None) -> dict[str, Any] | None:
    """The card's continuous_label block for a source's values and ``continuous_info``,
    checked to say what the values mean (ValueError otherwise)."""
    if continuous is None:
        if info is not None:
            raise ValueError("continuous_info is given but the source has no continuous labels")
        return None
    if not isinstance(info, dict) or "kind" not in info:
        raise ValueError(
            f"continuous labels need a continuous_info mapping with a kind ({', '.join(KINDS)}) "
            f"that says what they mean, got {info!r}"
        )
    meaning = read_continuous_label({"continuous_label": info}, "continuous_info")
    if meaning.kind == ANGLE and continuous.ndim != 1:
        raise ValueError(f"continuous_info: an angle label is one value a row, got values of shape {continuous.shape}")
    return info


def read_continuous_label(card: dict[str, Any], where: str | Path) -> ContinuousLabel | None:
    """The meaning of the continuous label of ``card`` (None where the set has none).

    ``where`` names the card in errors: an unknown kind, an angle without a period > 0, or a
    non-numeric low / high is a ValueError naming the field and its value.
    """
    info = card.get("continuous_label")
    if info is None:
        return None
    if not isinstance(info, dict):
        raise ValueError(f"{where}: continuous_label must be a mapping or null, got {info!r}")
    kind = info.get("kind")
    if kind is None:
        warnings.warn(
            f"{where}: continuous_label has no kind, so its values are taken as plain (linear) "
            "values; prepare the dataset again to record what they mean",
            UserWarning,
            stacklevel=2,
        )
        kind = LINEAR
    if kind not in KINDS:
        raise ValueError(f"{where}: continuous_label.kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == ANGLE:
        period = _number(info, "period", str(where), positive=True)
        if period is None:
            raise ValueError(f"{where}: continuous_label.kind is angle but no period is given")
        return ContinuousLabel(ANGLE, period=period)
    return ContinuousLabel(LINEAR, low=_number(info, "low", str(where)), high=_number(info, "high", str(where)))
