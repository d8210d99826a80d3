"""Global-batch mining across data-parallel workers (torch.distributed; no Ray here).

Each worker embeds its local batch; the embeddings and labels of all workers are gathered
so miners and losses see the GLOBAL batch. all_gather returns tensors without a graph, so
the local slot is replaced by the local tensor (with its graph): the gradient of the global
loss reaches this worker's parameters through its own rows only, as in
pytorch-metric-learning's DistributedLossWrapper. DDP then AVERAGES gradients over workers;
every worker computed the same global loss, so the summed contributions equal the gradient
of one process on the concatenated batch only after scaling the loss by the world size.
"""
from __future__ import annotations

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world_size); (0, 1) when torch.distributed is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_gather_with_grad(local: torch.Tensor) -> torch.Tensor:
    """Concatenate every worker's tensor along dim 0 (equal sizes), the local part differentiable."""
    rank, size = world()
    if size == 1:
        return local
    parts = [torch.empty_like(local) for _ in range(size)]
    dist.all_gather(parts, local.detach().contiguous())
    parts[rank] = local
    return torch.cat(parts)


def global_batch(embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return all_gather_with_grad(embeddings), all_gather_with_grad(labels)


def loss_scale() -> float:
    """Multiply the global loss by this before backward (see the module docstring)."""
    return float(world()[1])


def average_across_workers(value: float) -> float:
    rank, size = world()
    if size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t) / size
