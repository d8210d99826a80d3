"""Batch samplers (C classes x m: Song et al. CVPR 2017; N-pair batches: Sohn, NeurIPS 2016; continuous-label batches for log-ratio: Kim et al. CVPR 2019)."""
from .continuous import ContinuousLabelSampler
from .m_per_class import MPerClassSampler, max_batches
from .npair import NPairSampler

__all__ = ["ContinuousLabelSampler", "MPerClassSampler", "NPairSampler", "max_batches"]
