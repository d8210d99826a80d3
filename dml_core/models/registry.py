from ..registry import Registry

BACKBONES: Registry = Registry("model")
