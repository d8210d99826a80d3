from ..registry import Registry

DISTANCES: Registry = Registry("distance")
