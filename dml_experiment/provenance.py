"""When and on which commit a result was made, and writing it without half-written files."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

from .paths import PROJECT_DIR


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to a temporary sibling, then rename it onto ``path``: a reader sees the
    old file or the new one, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _git(cwd, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit(cwd: str | os.PathLike = PROJECT_DIR) -> str:
    """The short hash of HEAD in ``cwd``, or "unknown" outside a git checkout."""
    return _git(cwd, "rev-parse", "--short", "HEAD") or "unknown"


def git_state(cwd: str | os.PathLike = PROJECT_DIR) -> tuple[str | None, bool]:
    """(the full hash of HEAD or None outside a checkout, whether tracked files differ from it)."""
    commit = _git(cwd, "rev-parse", "HEAD")
    if not commit:
        return None, False
    return commit, bool(_git(cwd, "status", "--porcelain", "--untracked-files=no"))


def now_utc() -> str:
    return f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}"
