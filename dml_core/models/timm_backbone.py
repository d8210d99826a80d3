"""Pretrained timm backbones (optional extra: pip install 'dml[timm]'), from a local file only.

Nothing is downloaded: the weights come from `weights_path`, a state dict saved with
torch.save(model.state_dict()) on a machine that had them.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .registry import BACKBONES


@BACKBONES.register("timm")
class TimmBackbone(nn.Module):
    # The architectures used here (ResNet, Inception) are convolutional; a ViT's patch
    # embedding is a convolution too, so a channels-last input costs it nothing.
    convolutional = True

    def __init__(self, architecture: str = "resnet50", weights_path: str | None = None, in_channels: int = 3):
        super().__init__()
        try:
            import timm
        except ImportError as e:  # pragma: no cover - depends on the optional extra
            raise ValueError("model 'timm' needs the optional extra: pip install 'dml[timm]'") from e
        self.model = timm.create_model(architecture, pretrained=False, num_classes=0, in_chans=in_channels)
        if weights_path is not None:
            path = Path(weights_path)
            if not path.is_file():
                raise ValueError(f"weights_path {str(path)!r} does not exist (timm weights are never downloaded)")
            state = torch.load(path, map_location="cpu", weights_only=True)
            missing, unexpected = self.model.load_state_dict(state, strict=False)
            if missing:
                raise ValueError(f"weights_path {str(path)!r} lacks {len(missing)} parameters, e.g. {missing[0]!r}")
        self.out_features = self.model.num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
