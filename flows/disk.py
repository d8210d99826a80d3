"""A full disk during a sweep: recognise it, stop, and leave nothing half-written.

The sweep's own files are written atomically (dml_experiment.provenance.atomic_file), so a
full disk there raises DiskFull and leaves no part behind. Two places need more:

* A trial that hits ENOSPC inside Ray fails like any trial, and Ray, writing on the same
  full disk, may not manage to store its error: :func:`trial_disk_full` recognises it by
  the error or by the space left, so the sweep stops instead of recording a failure that
  is not the method's.
* Ray Tune writes its own bookkeeping (trial directories, checkpoints, experiment state) in
  place, so ENOSPC leaves truncated files there. A sweep never reads an earlier attempt's
  bookkeeping (each attempt is a new Tune run, resumed from the records), so
  :func:`discard_tune_attempts` removes it, keeping only the finished trials' artifacts.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from dml_experiment.provenance import TEMP_SUFFIX, DiskFull, is_disk_full

# A trial that failed with less than this free where the sweep writes failed for want of
# space: a trial writes more than this each epoch (checkpoint, embeddings, model).
LOW_SPACE = 1024**2
ENOSPC_TEXT = re.compile(r"\[errno 28\]|no space left on device", re.IGNORECASE)
ARTIFACTS = "artifacts"  # dml_experiment.runner keeps each finished trial's files there


def free_bytes(path: str | os.PathLike) -> int | None:
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def fullest(paths) -> Path:
    """The path, of those given, whose filesystem has the least space left."""
    paths = [Path(p) for p in paths]
    return min(paths, key=lambda p: free_bytes(p) if free_bytes(p) is not None else 1 << 62)


def trial_disk_full(error: str | None, paths) -> DiskFull | None:
    """DiskFull when a trial's failure `error` is ENOSPC, or when the fullest of `paths`
    has under LOW_SPACE left (Ray could not even store the error); else None."""
    where = fullest(paths)
    free = free_bytes(where)
    if error and ENOSPC_TEXT.search(error):
        line = next(line for line in error.splitlines() if ENOSPC_TEXT.search(line))
        return DiskFull(where, f"a trial failed with {line.strip()[:300]}")
    if free is not None and free < LOW_SPACE:
        last = (error or "no error stored").strip().splitlines()[-1][:300]
        return DiskFull(where, f"a trial failed with {free} bytes left there: {last}")
    return None


def as_disk_full(error: BaseException, paths) -> DiskFull | None:
    """`error` as a DiskFull (itself when it is one) if it is ENOSPC or came about on a
    full disk (Ray reading back an error file it could not write, say); else None."""
    # Ray Tune wraps what its callbacks raise (a TuneError holding the traceback as text):
    # the DiskFull raised there is the message to give.
    seen, cause = set(), error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, DiskFull):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    first_line = (str(error).strip().splitlines() or [""])[0][:300]
    if is_disk_full(error):
        return DiskFull(fullest(paths), f"{type(error).__name__}: {first_line}")
    where = fullest(paths)
    free = free_bytes(where)
    if free is not None and free < LOW_SPACE:
        return DiskFull(where, f"the sweep stopped with {type(error).__name__}: {first_line}")
    return None


def remove_partials(directory: str | os.PathLike) -> list[Path]:
    """Remove the temporary files a failed atomic write can leave (``.NAME....tmp`` and
    matplotlib's ``.STEM.tmp.png``) under `directory`; returns them."""
    removed = []
    root = Path(directory)
    if not root.is_dir():
        return removed
    for path in root.rglob(".*"):
        name = path.name
        if path.is_file() and (name.endswith(TEMP_SUFFIX) or f"{TEMP_SUFFIX}." in name):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def discard_tune_attempts(storage: str | os.PathLike, sweep: str, since: float, keep: set[str]) -> list[Path]:
    """Remove Ray Tune's bookkeeping of this sweep's attempts started at or after `since`
    (a Unix time; Tune runs are named ``<sweep>-<unix time>`` and ``<sweep>-tune-<unix
    time>`` by the flow and the tuner): all but the artifacts of the trials in `keep` (the
    finished ones, whose records point at them)."""
    root = Path(storage)
    removed = []
    if not root.is_dir():
        return removed
    pattern = re.compile(rf"^{re.escape(sweep)}-(?:tune-)?(\d+)$")
    for run in root.iterdir():
        found = pattern.match(run.name)
        if not found or int(found.group(1)) < int(since) or not run.is_dir():
            continue
        artifacts = run / ARTIFACTS
        entries = [e for e in run.iterdir() if e != artifacts]
        entries += [e for e in artifacts.iterdir() if e.name not in keep] if artifacts.is_dir() else []
        for entry in entries:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed
