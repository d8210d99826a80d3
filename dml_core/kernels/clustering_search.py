"""The combinatorial part of the facility-location loss (Song, Jegelka, Rathod, Murphy, CVPR 2017):
loss-augmented inference max_{|S| = K} F(S) + gamma (1 - NMI(g(S), y)), run without autograd.

F(S) = -sum_i min_{j in S} D_ij, g(S)[i] = the medoid nearest to i, NMI = MI / sqrt(H1 H2)
(Strehl & Ghosh, JMLR 2002; scikit-learn's `average_method="geometric"`, with its conventions: 1 when
both labelings are a single cluster, 0 when only one of them is).

- `greedy` is Algorithm 1: K times, add the point that maximises the augmented objective.
- `pam` refines by swaps (Kaufman & Rousseeuw's PAM): every (medoid, non-medoid) swap is
  scored by the exact augmented objective and improving swaps are applied until none is left.
  (The paper's Algorithm 2 only tries the members of each medoid's cluster, scored by the
  within-cluster facility value; scoring the true objective makes each step an improvement.)

Every candidate of a step is scored at once. NMI depends on the contingency table only through
G = sum_cells n log n and A = sum_clusters n log n (the class sum C is fixed):
MI = (G - A - C + n log n) / n, H_pred = (n log n - A) / n, H_true = (n log n - C) / n.
A candidate changes the table only where points move: for a swap (slot k -> c), points of
other slots move to c when D_ic < d1_i, points of slot k when D_ic < d2_i, the others of slot k
go to their second-nearest medoid. So every count after every candidate move is an occupied
count minus/plus sums of 0/1 move masks grouped by cell (index_add over [candidates, B]), and
f(n) = n log n is a table lookup: O(C B) per step for all K swaps of each candidate, never a
[candidates, K, classes] table.
"""
from __future__ import annotations

import torch


def reference_nmi(pred: torch.Tensor, true: torch.Tensor) -> float:
    """MI / sqrt(H(pred) H(true)) of two labelings, from their joint distribution; 1 when
    both are a single cluster, 0 when only one is."""
    _, p = torch.unique(pred, return_inverse=True)
    _, t = torch.unique(true, return_inverse=True)
    joint = torch.zeros(int(p.max()) + 1, int(t.max()) + 1, dtype=torch.float64)
    joint = joint.index_put_((p, t), torch.ones(len(p), dtype=torch.float64), accumulate=True) / len(p)
    p_pred, p_true = joint.sum(1), joint.sum(0)
    h_pred, h_true = -(p_pred * p_pred.log()).sum(), -(p_true * p_true.log()).sum()
    if len(p_pred) == 1 or len(p_true) == 1:  # a zero entropy
        return float(len(p_pred) == len(p_true))
    cells = joint > 0
    mi = (joint[cells] * (joint / (p_pred[:, None] * p_true[None, :]))[cells].log()).sum()
    return float(mi / (h_pred * h_true).sqrt())


def reference_objective(dist: torch.Tensor, labels: torch.Tensor, medoids: torch.Tensor, gamma: float) -> float:
    """F(S) + gamma (1 - NMI(g(S), y)) for one medoid set S, point by point: F(S) =
    -sum_i min_{j in S} D_ij, g(S)[i] the nearest medoid (ties to the lowest index)."""
    s = sorted(int(m) for m in medoids)
    nearest = torch.tensor([min(s, key=lambda m: (float(dist[i, m]), m)) for i in range(len(labels))])
    f = -sum(float(dist[i, nearest[i]]) for i in range(len(labels)))
    return f + gamma * (1.0 - reference_nmi(nearest, labels))


def xlogx(x: torch.Tensor) -> torch.Tensor:
    return torch.special.xlogy(x, x)


def nmi_from_sums(g: torch.Tensor, a: torch.Tensor, class_term: torch.Tensor, n: int) -> torch.Tensor:
    """NMI from G = sum_cells f(n_ac), A = sum_a f(n_a), class_term = sum_c f(n_c), f = x log x."""
    n_log_n = float(xlogx(torch.tensor(float(n), dtype=torch.float64)))
    mi = ((g - a - class_term + n_log_n) / n).clamp_min(0.0)
    h_pred = ((n_log_n - a) / n).clamp_min(0.0)
    h_true = (n_log_n - class_term) / n
    tiny = 1e-12
    degenerate = (h_pred <= tiny) | (h_true <= tiny)
    both_single = (h_pred <= tiny) & (h_true <= tiny)
    value = (mi / torch.sqrt((h_pred * h_true).clamp_min(tiny * tiny))).clamp(0.0, 1.0)
    return torch.where(degenerate, both_single.to(value.dtype), value)


def nmi(pred: torch.Tensor, true: torch.Tensor) -> float:
    """NMI (geometric) of two labelings given as 1-D integer tensors."""
    _, p = torch.unique(pred, return_inverse=True)
    _, t = torch.unique(true, return_inverse=True)
    kp, kt = int(p.max()) + 1, int(t.max()) + 1
    cells = torch.bincount(p * kt + t, minlength=kp * kt).double()
    if kp == kt == int((cells > 0).sum()):
        # A bijection between groups: exactly 1 (the float formula can miss it by an ulp, and
        # the loss's hinge would then keep a 1e-16 gradient on a perfect clustering).
        return 1.0
    g = xlogx(cells).sum()
    a = xlogx(torch.bincount(p).double()).sum()
    c = xlogx(torch.bincount(t).double()).sum()
    return float(nmi_from_sums(g, a, c, len(pred)))


def group_sum(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """[C, size]: values[:, m] summed over the columns m with index[m] = g (a sparse matmul with
    a one-hot matrix, in O(C n) instead of O(C n size))."""
    out = torch.zeros(values.shape[0], size, dtype=values.dtype, device=values.device)
    return out.index_add_(1, index, values)


class FacilitySearch:
    """Loss-augmented medoid search on a fixed [B, B] distance matrix (float64, no grad)."""

    def __init__(self, dist: torch.Tensor, labels: torch.Tensor, gamma: float):
        self.dist = dist.detach().to(torch.float64)
        self.n = len(labels)
        _, self.y = torch.unique(labels, return_inverse=True)
        self.num_classes = int(self.y.max()) + 1 if self.n else 0
        self.class_term = xlogx(torch.bincount(self.y).to(torch.float64)).sum()
        self.gamma = float(gamma)
        # Counts are integers in [0, n]: f(m) = m log m by table lookup, not by a log per cell.
        self.table = xlogx(torch.arange(self.n + 1, dtype=torch.float64))

    def f(self, counts: torch.Tensor) -> torch.Tensor:
        return self.table.take(counts)

    # -- exact scores of one medoid set ------------------------------------------------------
    def assign(self, medoids: torch.Tensor) -> torch.Tensor:
        """g(S): the nearest medoid of each point; ties go to the lowest point index."""
        s = medoids.sort().values
        return s[self.dist[:, s].argmin(1)]

    def objective(self, medoids: torch.Tensor) -> float:
        """F(S) + gamma (1 - NMI(g(S), y))."""
        f = -float(self.dist[:, medoids].amin(1).sum())
        return f + self.gamma * (1.0 - nmi(self.assign(medoids), self.y))

    def class_medoids(self) -> torch.Tensor:
        """Per class (in label order), the member j minimising sum_{i in class} D_ij: the
        medoids of the oracle score F_gt."""
        within = torch.zeros(self.num_classes, self.n, dtype=torch.float64).index_add_(0, self.y, self.dist)
        within = within.masked_fill(self.y[None, :] != torch.arange(self.num_classes)[:, None], float("inf"))
        return within.argmin(1)

    def augmented(self, f: torch.Tensor, g: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return f + self.gamma * (1.0 - nmi_from_sums(g, a, self.class_term, self.n))

    # -- contingency sums for many candidates at once ----------------------------------------
    def _cells(self, slot: torch.Tensor, with_class: bool) -> tuple[torch.Tensor, int]:
        """Key of each point's (slot, class) cell, or of its slot alone; and the column count."""
        ncol = self.num_classes if with_class else 1
        return (slot * ncol + self.y) if with_class else slot, ncol

    def _after_moves(self, moved: torch.Tensor, slot: torch.Tensor, with_class: bool) -> torch.Tensor:
        """[C]: sum over the existing cells of f(count - moved out) plus f of the new cluster's
        cells, when candidate c takes the points moved[c] out of their current slots."""
        key, _ = self._cells(slot, with_class)
        _, inv, counts = torch.unique(key, return_inverse=True, return_counts=True)
        remaining = counts - group_sum(moved, inv, len(counts))
        return self.f(remaining).sum(1) + self.f(self._by_column(moved, with_class)).sum(1)

    def _by_column(self, values: torch.Tensor, with_class: bool) -> torch.Tensor:
        """[C, classes] sums per class, or [C, 1] totals."""
        if with_class:
            return group_sum(values, self.y, self.num_classes)
        return values.sum(1, keepdim=True)

    def _after_swaps(self, to_new, to_new_if_own, near1, near2, k: int, with_class: bool) -> torch.Tensor:
        """[C, K]: sum over cells of f(count) after swapping the medoid of slot k for candidate c.

        to_new[c, i]: i moves to c when its medoid stays (D_ic < d1_i); to_new_if_own[c, i]: i
        moves to c when its own medoid is the one removed (D_ic < d2_i); otherwise such a point
        goes to its second-nearest medoid near2[i].
        """
        key1, ncol = self._cells(near1, with_class)
        key2, _ = self._cells(near2, with_class)
        cells, inv1 = torch.unique(key1, return_inverse=True)  # the occupied cells
        nu = len(cells)
        row_of = cells // ncol  # the slot of each cell
        # Column nu is an always-empty cell: where a second-nearest cell is not occupied yet.
        base = torch.bincount(inv1, minlength=nu + 1) - group_sum(to_new, inv1, nu + 1)
        fb = self.f(base)
        # Rows other than k, before slot k's points are re-homed: all cells minus row k's.
        others = fb.sum(1, keepdim=True) - group_sum(fb[:, :nu], row_of, k)
        # Slot k's points that do not go to c go to their second-nearest slot's cell.
        span = k * ncol  # keys are < span
        pair_keys, pair_inv = torch.unique(near1 * span + key2, return_inverse=True)
        added = group_sum(1 - to_new_if_own, pair_inv, len(pair_keys))
        target = pair_keys % span
        at = torch.searchsorted(cells, target).clamp_max(nu - 1)
        before = base[:, torch.where(cells[at] == target, at, nu)]
        others = others + group_sum(self.f(before + added) - self.f(before), pair_keys // span, k)
        # The new cluster of c: points from other slots (to_new) plus slot k's own (to_new_if_own).
        new_cols = self._by_column(to_new, with_class)  # as if no point of slot k joined c
        extra = group_sum(to_new_if_own - to_new, inv1, nu)  # slot k's points joining c, per cell
        lifted = new_cols[:, cells % ncol]
        new_row = self.f(new_cols).sum(1, keepdim=True) + group_sum(self.f(lifted + extra) - self.f(lifted), row_of, k)
        return others + new_row

    # -- the two algorithms ---------------------------------------------------------------------
    def greedy(self, k: int) -> torch.Tensor:
        """Algorithm 1: S <- S + argmax_c F(S + c) + gamma (1 - NMI(g(S + c), y)), K times."""
        d1 = torch.full((self.n,), float("inf"), dtype=torch.float64)
        slot = torch.zeros(self.n, dtype=torch.int64)
        free = torch.ones(self.n, dtype=torch.bool)
        chosen = []
        for t in range(k):
            cand = free.nonzero().squeeze(1)
            dc = self.dist[cand]  # [C, B]: rows, as D is symmetric
            moved_mask = dc < d1
            moved = moved_mask.to(torch.int64)
            f = -torch.minimum(dc, d1).sum(1)
            score = self.augmented(f, self._after_moves(moved, slot, True), self._after_moves(moved, slot, False))
            best = int(score.argmax())
            c = int(cand[best])
            chosen.append(c)
            free[c] = False
            d1 = torch.where(moved_mask[best], dc[best], d1)
            slot = torch.where(moved_mask[best], torch.full_like(slot, t), slot)
        return torch.tensor(chosen, dtype=torch.int64)

    def swap_scores(self, medoids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[C, K] augmented objective of every swap (slot k -> candidate c), and the candidates."""
        k = len(medoids)
        free = torch.ones(self.n, dtype=torch.bool)
        free[medoids] = False
        cand = free.nonzero().squeeze(1)
        d_s = self.dist[:, medoids]
        if k >= 2:
            vals, order = d_s.topk(2, dim=1, largest=False)
            d1, d2, near1, near2 = vals[:, 0], vals[:, 1], order[:, 0], order[:, 1]
        else:  # one medoid: removing it sends every point to the candidate
            d1, near1 = d_s[:, 0], torch.zeros(self.n, dtype=torch.int64)
            d2, near2 = torch.full_like(d1, float("inf")), near1
        dc = self.dist[cand]
        to_new, to_new_if_own = (dc < d1).to(torch.int64), (dc < d2).to(torch.int64)
        kept1, kept2 = torch.minimum(dc, d1), torch.minimum(dc, d2)
        f = -(kept1.sum(1, keepdim=True) + group_sum(kept2 - kept1, near1, k))
        g = self._after_swaps(to_new, to_new_if_own, near1, near2, k, True)
        a = self._after_swaps(to_new, to_new_if_own, near1, near2, k, False)
        return self.augmented(f, g, a), cand

    def pam(self, medoids: torch.Tensor, max_rounds: int) -> torch.Tensor:
        """Swap refinement. Each round scores every (slot, candidate) swap at once, then walks
        the slots in order of their best swap's score and applies each slot's best swap that
        the exact objective confirms as an improvement: the scores go stale after the first
        swap, the re-check keeps every step an improvement, and one round does the work of
        several single-swap rounds. Stops when no swap improves or after max_rounds rounds."""
        medoids = medoids.clone()
        k = len(medoids)
        current = self.objective(medoids)
        for _ in range(max_rounds):
            if k == self.n:
                break
            scores, cand = self.swap_scores(medoids)
            # The best swap of each slot, best slots first.
            per_slot, best_cand = scores.max(0)
            top = per_slot.sort(descending=True)
            # A relative tolerance: a "gain" at rounding level would let two sets swap forever.
            tol = 1e-9 * (1.0 + abs(current))
            used_cand, start = set(), current
            for value, slot in zip(top.values.tolist(), top.indices.tolist()):
                c = int(cand[best_cand[slot]])
                if value <= start + tol:  # no gain even against the set this round began with
                    break
                if c in used_cand:
                    continue
                trial = medoids.clone()
                trial[slot] = c
                score = self.objective(trial)
                if score > current + tol:
                    medoids, current = trial, score
                    used_cand.add(c)
            if current == start:
                break
        return medoids
