from ..registry import Registry

MINERS: Registry = Registry("miner")
