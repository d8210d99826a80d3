"""The memory layout of a trial's network and its image batches: channels-last or not.

Channels-last (NHWC) lets oneDNN and cuDNN run convolutions without transposing their
inputs, most of all in bf16 / fp16, where the tensor-core and AMX kernels want NHWC. It
changes no arithmetic but the order of the sums, so results agree to rounding.
"""
from __future__ import annotations

import torch

from ..models import BACKBONES


def convolutional(model_name: str) -> bool:
    """Does the backbone compute on 4-D activations (its class's `convolutional` flag)?"""
    return bool(getattr(BACKBONES.get(model_name), "convolutional", False))


def use_channels_last(config) -> bool:
    """train.channels_last, or where it is None (the default) whether the backbone is
    convolutional."""
    chosen = config.train.channels_last
    return convolutional(config.model.name) if chosen is None else bool(chosen)


def batch_to(x: torch.Tensor, device: str | torch.device, channels_last: bool) -> torch.Tensor:
    """A batch moved to `device`, a 4-D one in channels-last memory when asked (in the one
    copy that moves it); anything else as it is."""
    if channels_last and x.dim() == 4:
        return x.to(device, memory_format=torch.channels_last)
    return x.to(device)
