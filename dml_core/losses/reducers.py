"""Reducers: how a loss turns its terms into a scalar (PML's reducer objects, made small).

A loss hands its reducer the sum of its terms and two counts (all terms, terms > 0) rather
than the terms themselves, so a loss that never materialises its terms (the all-triplets
triplet loss) reduces exactly like one that does.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Terms:
    """total: differentiable sum of the terms; count: how many; nonzero: how many are > 0."""

    total: torch.Tensor
    count: int
    nonzero: int

    @classmethod
    def of(cls, values: torch.Tensor) -> "Terms":
        return cls(values.sum(), values.numel(), int((values > 0).sum()))


def mean_reduce(terms: Terms) -> torch.Tensor:
    """Mean over every term, zeros included (the API default)."""
    return terms.total / terms.count


def nonzero_reduce(terms: Terms) -> torch.Tensor:
    """Mean over the terms that are > 0 (PML's AvgNonZeroReducer)."""
    return terms.total / max(terms.nonzero, 1)


def sum_reduce(terms: Terms) -> torch.Tensor:
    return terms.total


REDUCERS = {"mean": mean_reduce, "nonzero": nonzero_reduce, "sum": sum_reduce}
