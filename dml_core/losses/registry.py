from ..registry import Registry

LOSSES: Registry = Registry("loss")
