"""The base every loss shares: input validation, the empty case, and reduction."""
from __future__ import annotations

import torch
from torch import nn

from ..kernels.indices import check_indices
from ..validation import check_class_labels, check_embeddings
from .reducers import REDUCERS, Terms


class MetricLoss(nn.Module):
    """loss(embeddings [B, dim], labels [B], indices=None) -> scalar.

    Subclasses implement `terms(embeddings, labels, indices) -> Terms`. With no term to
    average (no valid pair or triplet) the loss is 0 and its gradient a tensor of zeros,
    never NaN and never None.
    """

    registry_name: str = ""
    #: losses on class ids validate integer labels; regression losses override this.
    class_labels: bool = True

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in REDUCERS:
            raise ValueError(f"unknown reduction {reduction!r}; known: {', '.join(REDUCERS)}")
        self.reduction = reduction

    def check_labels(self, labels: torch.Tensor, batch_size: int) -> torch.Tensor:
        return check_class_labels(labels, batch_size)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, indices=None) -> torch.Tensor:
        check_embeddings(embeddings)
        labels = self.check_labels(labels, embeddings.shape[0]).to(embeddings.device)
        if indices is not None:
            indices = check_indices(indices, embeddings.shape[0])
        terms = self.terms(embeddings, labels, indices)
        if terms.count == 0:
            # Tie the zero to the graph so backward gives zeros rather than no gradient.
            return embeddings.sum() * 0.0
        return REDUCERS[self.reduction](terms)

    def terms(self, embeddings: torch.Tensor, labels: torch.Tensor, indices) -> Terms:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
