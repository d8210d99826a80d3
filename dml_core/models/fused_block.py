"""pool(relu(bn(x))) of a convolutional block, run as one native kernel where it applies."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..kernels.bn_relu_pool import bn_relu_pool, supported


def _pools_2x2(pool: nn.Module) -> bool:
    def pair(v):
        return tuple(v) if isinstance(v, (tuple, list)) else (v, v)

    return (isinstance(pool, nn.MaxPool2d) and pair(pool.kernel_size) == (2, 2)
            and pair(pool.stride or pool.kernel_size) == (2, 2) and pair(pool.padding) == (0, 0)
            and pair(pool.dilation) == (1, 1) and not pool.ceil_mode and not pool.return_indices)


def fusable(x: torch.Tensor, bn: nn.BatchNorm2d, pool: nn.Module) -> bool:
    """Whether `bn_relu_maxpool` runs the fused kernel: batch norm in training mode with
    batch statistics and affine parameters, a 2x2 max-pool of stride 2, a channels-last CPU
    input (`kernels.bn_relu_pool.supported`), and one thread, since the kernel is
    single-threaded and with more threads torch's own kernels run in parallel."""
    return (bn.training and bn.affine and _pools_2x2(pool) and torch.get_num_threads() == 1
            and supported(x, bn.weight, bn.bias))


@torch.no_grad()
def _update_running(bn: nn.BatchNorm2d, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
    """BatchNorm2d's running averages: momentum, or the cumulative mean when momentum is None;
    the running variance from the unbiased batch variance."""
    bn.num_batches_tracked.add_(1)
    factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    bn.running_mean.mul_(1 - factor).add_(mean.to(bn.running_mean.dtype), alpha=factor)
    unbiased = var.to(bn.running_var.dtype) * (count / max(count - 1, 1))
    bn.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)


def bn_relu_maxpool(x: torch.Tensor, bn: nn.BatchNorm2d, pool: nn.Module) -> torch.Tensor:
    """pool(relu(bn(x))), the same layers and state updates as calling the three modules: the
    fused kernel where `fusable`, the modules elsewhere."""
    if not fusable(x, bn, pool):
        return pool(F.relu(bn(x), inplace=True))
    out, mean, var = bn_relu_pool(x, bn.weight, bn.bias, eps=bn.eps)
    if bn.track_running_stats and bn.running_mean is not None:
        _update_running(bn, mean, var, x.shape[0] * x.shape[2] * x.shape[3])
    return out
