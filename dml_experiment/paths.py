"""Where the project lies: the checkout holding params.yaml, prepared/, reports/ and the
MLflow store. Relative paths of a profile are taken from here, whatever the working
directory of the process (a Ray worker runs in its trial's directory)."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]


def project_path(path: str | os.PathLike) -> Path:
    """`path` itself when absolute, else the same path under the project."""
    p = Path(path)
    return p if p.is_absolute() else PROJECT_DIR / p
