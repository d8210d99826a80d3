"""Batch samplers (METHODS.md S4; N-pair batches; continuous-label batches for log-ratio)."""
from .continuous import ContinuousLabelSampler
from .m_per_class import MPerClassSampler, max_batches
from .npair import NPairSampler

__all__ = ["ContinuousLabelSampler", "MPerClassSampler", "NPairSampler", "max_batches"]
