"""Embedding networks in plain torch (no torchvision): small CNN, MLP, ResNet, optional timm."""
from .embedder import Embedder, build_embedder, input_options
from .mlp import MLP
from .registry import BACKBONES
from .resnet import ResNet
from .small_cnn import SmallCNN
from .timm_backbone import TimmBackbone

__all__ = ["BACKBONES", "MLP", "Embedder", "ResNet", "SmallCNN", "TimmBackbone", "build_embedder", "input_options"]
