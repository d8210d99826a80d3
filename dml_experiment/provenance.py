"""When and on which commit a result was made, and writing it without half-written files."""
from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

from .paths import PROJECT_DIR

# The names atomic_file gives its temporary files: `.NAME.<8 hex>.tmp` beside the target.
TEMP_SUFFIX = ".tmp"


class DiskFull(OSError):
    """No space left on the device a sweep writes to. The message names the path written
    and the space left on its filesystem (shutil.disk_usage), so whoever reads it knows
    what to free; ``errno`` stays ENOSPC for code that tests it."""

    def __init__(self, path: str | os.PathLike, cause: str = "", *, message: str | None = None):
        self.path = Path(path)
        if message is None:
            message = f"No space left on device writing {self.path}: {free_space_text(self.path)}"
            message += f" ({cause})" if cause else ""
        super().__init__(errno.ENOSPC, message)

    def __str__(self) -> str:  # OSError's own puts "[Errno 28] " before a message that says it already
        return self.strerror

    def __reduce__(self):  # the message as measured when it happened, also after a pickle (Ray, Prefect)
        return (type(self), (str(self.path),), {"strerror": self.strerror}, None, None)


def is_disk_full(error: BaseException | None) -> bool:
    """Whether ENOSPC is the error or its cause: libraries wrap it (torch.save into a file
    raises a RuntimeError whose context is the OSError)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def free_space_text(path: str | os.PathLike) -> str:
    """'<free> free of <total> on <mount>' for the filesystem holding `path` (or the nearest
    directory above it that exists)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        usage = shutil.disk_usage(p)
    except OSError as e:
        return f"free space unknown ({e})"
    return f"{human_bytes(usage.free)} free of {human_bytes(usage.total)} on the filesystem of {p}"


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; it is renamed onto ``path`` when the
    block ends and removed when the block fails, so a reader sees the old file or the new
    one, never a part, and a failure leaves nothing behind. ENOSPC becomes DiskFull."""
    path = Path(path)
    # A name of its own per writer: two processes writing one file never share a temp file.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")
    try:
        yield tmp
        os.replace(tmp, path)
    except Exception as e:
        if is_disk_full(e) and not isinstance(e, DiskFull):
            raise DiskFull(path, f"{type(e).__name__}: {e}") from e
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to a temporary sibling, then rename it onto ``path``: a reader sees the
    old file or the new one, never a part; on failure the temporary file is removed."""
    with atomic_file(path) as tmp:
        tmp.write_text(text)


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
