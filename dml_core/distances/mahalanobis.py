"""The Mahalanobis distance sqrt((x - y)^T S^-1 (x - y)) with S fitted on data (Mahalanobis
1936).

The classical metric that metric learning starts from: a fixed, non-deep baseline on raw
inputs. With S = L L^T (Cholesky), it is the Euclidean distance between L^-1 x and L^-1 y, so
fitting computes one whitening matrix and every call is a matrix multiply.
"""
from __future__ import annotations

import numpy as np
import torch

from ..kernels.expansion import euclidean_matrix
from .base import Distance
from .registry import DISTANCES


def ledoit_wolf_shrinkage(centered: torch.Tensor) -> float:
    """Ledoit & Wolf (2004) optimal shrinkage towards mu*I (as scikit-learn's LedoitWolf)."""
    n, p = centered.shape
    x2 = centered**2
    emp_cov_trace = x2.sum(0) / n
    mu = emp_cov_trace.sum() / p
    beta_ = (x2.T @ x2).sum()
    delta_ = ((centered.T @ centered) ** 2).sum() / n**2
    beta = (beta_ / n - delta_) / (p * n)
    delta = (delta_ - 2.0 * mu * emp_cov_trace.sum() + p * mu**2) / p
    beta = torch.minimum(beta, delta)
    return 0.0 if float(beta) == 0.0 else float(beta / delta)


def fit_covariance(data: torch.Tensor, shrinkage: float | str) -> torch.Tensor:
    """S = (1 - s) C + s (tr C / p) I, C the covariance of the rows of data (float64)."""
    n, p = data.shape
    centered = data - data.mean(0, keepdim=True)
    if shrinkage == "ledoit_wolf":
        cov = centered.T @ centered / n  # scikit-learn's LedoitWolf uses the biased estimate
        s = ledoit_wolf_shrinkage(centered)
    else:
        cov = centered.T @ centered / (n - 1)
        s = float(shrinkage)
    target = torch.eye(p, dtype=cov.dtype) * (torch.trace(cov) / p)
    return (1.0 - s) * cov + s * target


@DISTANCES.register("mahalanobis")
class MahalanobisDistance(Distance):
    """sqrt((x - y)^T S^-1 (x - y)); `data` [n, dim] fits S.

    shrinkage: a float in [0, 1] blending the sample covariance with a scaled identity, or
    "ledoit_wolf" for the Ledoit-Wolf estimate. A singular covariance (fewer samples than
    dimensions, constant or collinear features) with no shrinkage is refused, not inverted.
    """

    def __init__(self, data=None, shrinkage: float | str = 0.0):
        if data is None:
            raise ValueError("mahalanobis needs data=[n, dim] to fit its covariance")
        data = torch.as_tensor(np.asarray(data) if not isinstance(data, torch.Tensor) else data)
        if data.dim() != 2 or data.shape[0] < 2:
            raise ValueError(f"data must have shape [n >= 2, dim], got {tuple(data.shape)}")
        data = data.detach().to("cpu", torch.float64)
        if not bool(torch.isfinite(data).all()):
            raise ValueError("data contains NaN or inf values")
        if shrinkage != "ledoit_wolf":
            if isinstance(shrinkage, str) or not 0.0 <= float(shrinkage) <= 1.0:
                raise ValueError(
                    f"shrinkage must be a float in [0, 1] or 'ledoit_wolf', got {shrinkage!r}"
                )
        self.shrinkage = shrinkage
        cov = fit_covariance(data, shrinkage)
        eig = torch.linalg.eigvalsh(cov)
        if float(eig[0]) <= 1e-10 * max(float(eig[-1]), 1e-300):
            raise ValueError(
                f"the covariance of data ({data.shape[0]} samples x {data.shape[1]} dims) is "
                f"singular (smallest eigenvalue {float(eig[0]):.3g}); "
                "set shrinkage > 0 or shrinkage='ledoit_wolf'"
            )
        self.covariance = cov
        chol = torch.linalg.cholesky(cov)
        # Rows are whitened as x @ W with W = L^-T, so |xW - yW| = Mahalanobis(x, y).
        self.whitening = torch.linalg.solve_triangular(chol, torch.eye(len(cov), dtype=cov.dtype), upper=False).T
        self.dim = data.shape[1]

    def whiten(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.dim:
            raise ValueError(f"x has dimension {x.shape[1]} but the covariance was fitted on {self.dim}")
        return x @ self.whitening.to(x.device, x.dtype)

    def pairwise(self, x: torch.Tensor, y: torch.Tensor, same: bool) -> torch.Tensor:
        xw = self.whiten(x)
        yw = xw if same else self.whiten(y)
        return euclidean_matrix(xw, yw, same)

    def __repr__(self) -> str:
        return f"MahalanobisDistance(dim={self.dim}, shrinkage={self.shrinkage!r})"
