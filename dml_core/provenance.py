"""When and on which commit a result was made, and writing it without half-written files."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to a temporary sibling, then rename it onto ``path``: a reader sees the
    old file or the new one, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def git_commit(cwd: str | os.PathLike = PROJECT_DIR) -> str:
    """The short hash of HEAD in ``cwd``, or "unknown" outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def now_utc() -> str:
    return f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}"
