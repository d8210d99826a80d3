"""InfoNCE and NCE terms over the [B, B] matrix of scaled cosine similarities, one per ordered
positive pair (i, j) in row-major order, with every negative of i or k of them drawn per pair.

s_ij = cos(f_i, f_j) / t, N_ij the negatives of i used for the pair:
  InfoNCE (Oord, Li, Vinyals 2018, eq. 4):
    term_ij = -log(exp(s_ij) / (exp(s_ij) + sum_{n in N_ij} exp(s_in))) = softplus(logsumexp_{n in N_ij} s_in - s_ij)
  NCE (Gutmann & Hyvarinen, AISTATS 2010, Sec. 2; Mnih & Teh, ICML 2012, Sec. 3), k noise
  samples from p_n uniform over the |N_i| negatives of i, the model density
  p_m(j | i) = exp(s_ij) / Z_i and c_i = ln Z_i + ln(k / |N_i|):
    term_ij = -ln sigmoid(s_ij - c_i) - sum_{n in N_ij} ln(1 - sigmoid(s_in - c_i))
            = softplus(c_i - s_ij) + sum_{n in N_ij} softplus(s_in - c_i)
  ln Z_i is given per anchor (``log_z``; None: Z_i = 1, the unnormalised density);
  ``batch_log_normalizer`` computes it over the anchor's candidates in the batch.
k negatives are drawn uniformly without replacement, as the top k of iid uniform keys over
the negatives of i (a uniform k-subset), from the generator passed in.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def reference_cosine_logits(embeddings: torch.Tensor, *, temperature: float) -> torch.Tensor:
    """cos(f_i, f_j) / t for every pair, from the broadcast pairwise cosine."""
    return F.cosine_similarity(embeddings[:, None, :], embeddings[None, :, :], dim=2) / temperature


def reference_sample_negatives(neg, *, anchors, k: int, generator) -> torch.Tensor:
    """Row by row: the negatives of the anchor ordered by their keys, largest first, cut at k."""
    keys = torch.rand(len(anchors), neg.shape[1], generator=generator)
    rows = []
    for r, a in enumerate(anchors.tolist()):
        negatives = [c for c in range(neg.shape[1]) if neg[a, c]]
        rows.append(sorted(negatives, key=lambda c: -float(keys[r, c]))[:k])
    return torch.tensor(rows, dtype=torch.int64).reshape(len(anchors), k)


def _pair_negatives(neg, i, num_negatives, generator):
    """The columns N_ij of each pair: every negative (a list per pair) or k drawn ones."""
    if num_negatives is None:
        return [neg[a].nonzero().squeeze(1) for a in i.tolist()]
    return list(reference_sample_negatives(neg, anchors=i, k=num_negatives, generator=generator))


def reference_infonce_terms(logits, *, pos, neg, num_negatives=None, generator=None) -> torch.Tensor:
    """-log of the softmax of s_ij among s_ij and the s_in, pair by pair, through plain autograd."""
    if num_negatives is not None and not bool(neg.any()):
        return logits.new_zeros(0)
    i, j = pos.nonzero(as_tuple=True)
    terms = [
        -torch.log_softmax(torch.cat([logits[a, b, None], logits[a, cols]]), 0)[0]
        for a, b, cols in zip(i.tolist(), j.tolist(), _pair_negatives(neg, i, num_negatives, generator))
    ]
    return torch.stack(terms) if terms else logits.new_zeros(0)


def reference_batch_log_normalizer(logits, *, pos, neg) -> torch.Tensor:
    """ln of the sum of exp(s_ik) over the candidates k of each anchor, row by row (0 without any)."""
    rows = []
    for a in range(len(logits)):
        cols = [k for k in range(logits.shape[1]) if pos[a, k] or neg[a, k]]
        rows.append(torch.log(torch.exp(logits[a, cols]).sum()) if cols else logits.new_zeros(()))
    return torch.stack(rows) if rows else logits.new_zeros(0)


def reference_nce_terms(logits, *, pos, neg, num_noise: int, generator, log_z=None) -> torch.Tensor:
    """-ln h(real) - sum ln(1 - h(noise)), h = sigmoid(s - c_i), pair by pair."""
    if not bool(neg.any()):
        return logits.new_zeros(0)
    i, j = pos.nonzero(as_tuple=True)
    terms = []
    for a, b, cols in zip(i.tolist(), j.tolist(), _pair_negatives(neg, i, num_noise, generator)):
        c = math.log(num_noise / int(neg[a].sum())) + (0.0 if log_z is None else log_z[a])
        terms.append(-F.logsigmoid(logits[a, b] - c) - F.logsigmoid(c - logits[a, cols]).sum())
    return torch.stack(terms) if terms else logits.new_zeros(0)


def cosine_logits(embeddings: torch.Tensor, *, temperature: float) -> torch.Tensor:
    x = F.normalize(embeddings, dim=1)
    return (x @ x.T) / temperature


def sample_negatives(
    neg: torch.Tensor, *, anchors: torch.Tensor, k: int, generator: torch.Generator, name: str
) -> torch.Tensor:
    """[P, k] columns: for each anchor row, k distinct negatives drawn uniformly. `name` is the
    loss option that sets k, for the error when an anchor has fewer than k negatives."""
    if len(anchors) == 0:
        return torch.empty(0, k, dtype=torch.int64, device=neg.device)
    available = neg.sum(1)[anchors]
    if int(available.min()) < k:
        raise ValueError(
            f"{name}={k} is larger than the {int(available.min())} negatives an anchor has in "
            f"this batch; lower {name} or use batches with more classes"
        )
    keys = torch.rand(len(anchors), neg.shape[1], generator=generator).to(neg.device)
    return keys.masked_fill_(~neg[anchors], -1.0).topk(k, dim=1).indices


def infonce_terms(
    logits: torch.Tensor,
    *,
    pos: torch.Tensor,
    neg: torch.Tensor,
    num_negatives: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """term_ij with every negative of i (num_negatives None) or num_negatives drawn per pair. A
    batch without any negative has no term when drawing (there is nothing to draw), and terms
    log(1 + 0) = 0 otherwise."""
    i, j = pos.nonzero(as_tuple=True)
    if num_negatives is None:
        has_neg = neg.any(1)
        # Rows without negatives: a finite stand-in inside logsumexp (whose backward would
        # be NaN on an all -inf row), then -inf outside, where softplus(-inf) = 0.
        fill = torch.where(has_neg, float("-inf"), 0.0).to(logits.dtype)[:, None]
        lse = torch.logsumexp(torch.where(neg, logits, fill), 1)
        lse = torch.where(has_neg, lse, torch.full_like(lse, float("-inf")))
        return F.softplus(lse[i] - logits[i, j])
    if not bool(neg.any()):
        return logits.new_zeros(0)
    cols = sample_negatives(neg, anchors=i, k=num_negatives, generator=generator, name="num_negatives")
    lse = torch.logsumexp(logits[i[:, None], cols], 1)
    return F.softplus(lse - logits[i, j])


def batch_log_normalizer(logits: torch.Tensor, *, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """ln Z_i = ln sum_{k in P_i u N_i} exp(s_ik): the model density normalised over the
    anchor's candidates in the batch (0 for an anchor without any)."""
    masked = logits.masked_fill(~(pos | neg), float("-inf"))
    out = torch.logsumexp(masked, dim=1)
    return torch.where(torch.isfinite(out), out, torch.zeros_like(out))


def nce_terms(
    logits: torch.Tensor, *, pos: torch.Tensor, neg: torch.Tensor, num_noise: int, generator: torch.Generator,
    log_z: torch.Tensor | None = None,
) -> torch.Tensor:
    """term_ij with num_noise noise columns drawn per pair; no term in a batch without any
    negative (no noise to contrast with)."""
    if not bool(neg.any()):
        return logits.new_zeros(0)
    i, j = pos.nonzero(as_tuple=True)
    cols = sample_negatives(neg, anchors=i, k=num_noise, generator=generator, name="num_noise")
    # c_i = ln Z_i + ln(k p_n) = ln Z_i + ln k - ln |N_i|
    offset = math.log(num_noise) - torch.log(neg.sum(1)[i].to(logits.dtype))
    if log_z is not None:
        offset = offset + log_z[i]
    real = F.softplus(offset - logits[i, j])
    noise = F.softplus(logits[i[:, None], cols] - offset[:, None]).sum(1)
    return real + noise
