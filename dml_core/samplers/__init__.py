"""Batch samplers (METHODS.md S4)."""
from .m_per_class import MPerClassSampler, max_batches

__all__ = ["MPerClassSampler", "max_batches"]
