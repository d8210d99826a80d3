"""The miner interface: miner(embeddings, labels) -> index tuple, computed without autograd."""
from __future__ import annotations

import torch

from ..distances import Distance, build_distance
from ..validation import check_class_labels, check_embeddings, check_positive


class Miner:
    """Mines on a distance matrix. Subclasses implement `mine(dist, labels)`.

    Triplet miners return (anchor, positive, negative); pair miners (a1, p, a2, n); all int64
    on the embeddings' device. Mining never needs gradients, so it runs under no_grad.
    """

    registry_name: str = ""

    def __init__(self, distance: str | Distance | None = "squared_euclidean"):
        # None: the miner uses labels only (all_triplets, all_pairs) and skips the distances.
        self.distance = None if distance is None else build_distance(distance)

    def __call__(self, embeddings: torch.Tensor, labels: torch.Tensor):
        check_embeddings(embeddings)
        labels = check_class_labels(labels, embeddings.shape[0]).to(embeddings.device)
        with torch.no_grad():
            dist = None if self.distance is None else self.distance(embeddings.detach())
            return self.mine(dist, labels)

    def mine(self, dist: torch.Tensor | None, labels: torch.Tensor):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(distance={self.distance!r})"


class MarginMiner(Miner):
    """A triplet miner with a margin and a cap on how many triplets it may return."""

    def __init__(
        self,
        margin: float = 0.2,
        distance: str | Distance = "squared_euclidean",
        max_triplets: int | None = 50_000_000,
    ):
        super().__init__(distance)
        self.margin = check_positive(margin, "margin")
        self.max_triplets = max_triplets
