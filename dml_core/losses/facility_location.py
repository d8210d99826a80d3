"""The facility-location (clustering) loss (Song, Jegelka, Rathod, Murphy, "Deep Metric
Learning via Facility Location", CVPR 2017, Sec. 3), as tf.contrib.losses.metric_learning.
cluster_loss computes it.

D non-squared Euclidean, K = number of classes in the batch, g(S) = nearest-medoid assignment:
  F(S)  = -sum_i min_{j in S} D_ij                             (the facility-location score)
  F_gt  = sum_k max_{j in class k} -sum_{i in class k} D_ij    (the oracle score)
  loss  = [max_{|S| = K} (F(S) + gamma (1 - NMI(g(S), y))) - F_gt]_+
with NMI = MI / sqrt(H1 H2). The max is found without autograd (kernels.clustering_search):
greedy loss-augmented inference (Algorithm 1), then PAM swaps, run from the greedy set and from
the class medoids of F_gt (a second start that finds the exact max in more of the cases where
the greedy one stops at a local optimum); the better set is kept. The loss is then recomputed
differentiably from the chosen medoids, so its gradient is the paper's grad F(S_PAM) - grad F_gt,
with NMI a constant. Any set under-estimates the max, so the loss never exceeds the exact one.
pam_rounds bounds the swap rounds per start (0: greedy only, plus the class-medoid start).

There is one term per batch: every reduction gives the loss itself. indices are not used (the
loss clusters the whole batch); passing them is a ValueError. Ties in g(S) go to the medoid
with the lowest batch index.
"""
from __future__ import annotations

import torch

from ..distances import build_distance
from ..kernels.clustering_search import FacilitySearch, nmi
from ..validation import check_positive
from .base import MetricLoss
from .reducers import Terms
from .registry import LOSSES


@LOSSES.register("facility_location")
class FacilityLocationLoss(MetricLoss):
    def __init__(self, gamma: float = 1.0, pam_rounds: int = 10, reduction: str = "mean"):
        super().__init__(reduction)
        self.gamma = check_positive(gamma, "gamma", allow_zero=True)
        if isinstance(pam_rounds, bool) or not isinstance(pam_rounds, int) or pam_rounds < 0:
            raise ValueError(f"pam_rounds must be an int >= 0, got {pam_rounds!r}")
        self.pam_rounds = pam_rounds
        self.distance = build_distance("euclidean")

    def search(self, dist: torch.Tensor, labels: torch.Tensor):
        """Without autograd: the chosen medoids S, NMI(g(S), y), each sample's class index and
        the class medoids of F_gt (all on dist's device)."""
        with torch.no_grad():
            search = FacilitySearch(dist.detach().cpu(), labels.cpu(), self.gamma)
            truth = search.class_medoids()
            starts = [search.greedy(search.num_classes), truth]
            medoids = max((search.pam(s, self.pam_rounds) for s in starts), key=search.objective)
            score = nmi(search.assign(medoids), search.y)
        device = dist.device
        return medoids.to(device), score, search.y.to(device), truth.to(device)

    def terms(self, embeddings, labels, indices) -> Terms:
        if indices is not None:
            raise ValueError("facility_location clusters the whole batch; indices (a miner's output) must be None")
        if len(labels) == 0:
            return Terms(embeddings.sum() * 0.0, 0, 0)
        dist = self.distance(embeddings)
        medoids, score, y, truth = self.search(dist, labels)
        f_pred = -dist[:, medoids].amin(1).sum()
        f_gt = -dist[torch.arange(len(y), device=y.device), truth[y]].sum()
        loss = torch.relu(f_pred + self.gamma * (1.0 - score) - f_gt)
        return Terms(loss, 1, int(loss > 0))

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, pam_rounds={self.pam_rounds}, reduction={self.reduction!r}"
