"""The parts a sweep ran in: `<report dir>/parts.json`, one entry per attempt of the same sweep.

A long profile may run in parts: killed (or stopped at the end of a working session), then
resumed in the same report directory, on this machine or on another one that received the
directory. Each attempt appends a part when it starts and refreshes the part's last-seen time
every `every` seconds from a background thread, so a part killed without warning still
counts up to its last heartbeat (at most `every` seconds short). The sweep's wall time is the
sum of its parts, and the report lists them. One attempt at a time: a second sweep into the
same directory on this machine is refused while the first runs (its parts, its records and
its trials would interleave with the first's).
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from dml_experiment.provenance import git_commit, write_atomic

log = logging.getLogger(__name__)

FILE = "parts.json"
LOCK = ".sweep.lock"  # held (flock) by the running attempt; its content names the holder


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def read_parts(out_dir: str | Path) -> list[dict]:
    """The parts recorded in `out_dir` (an empty list when there is no parts.json)."""
    path = Path(out_dir) / FILE
    if not path.is_file():
        return []
    try:
        parts = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        log.warning("ignored %s (%s): the sweep's earlier parts are not counted", path, e)
        return []
    return [p for p in parts if isinstance(p, dict) and isinstance(p.get("seconds"), (int, float))] if isinstance(parts, list) else []


def total_seconds(parts: list[dict]) -> float:
    return float(sum(p["seconds"] for p in parts))


class PartLog:
    """Records this attempt as the next part of the sweep in `out_dir` while it runs."""

    def __init__(self, out_dir: str | Path, every: float = 30.0, project_dir: str | Path | None = None,
                 started: float | None = None):
        """`started`: when the attempt began (Unix time; default: on entering), so the part
        counts what ran before its report directory was known (validation, data)."""
        self.out_dir, self.every, self.start_at = Path(out_dir), every, started
        self.project_dir = project_dir
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.parts: list[dict] = []
        self.started = 0.0
        self._held = None

    def _hold(self) -> None:
        """Take the directory's lock, or say which attempt holds it."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        f = open(self.out_dir / LOCK, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise ValueError(f"{self.out_dir}: another sweep is running into this directory ({holder}); "
                             "wait for it to end, or stop it (Ctrl-C), then run this one again") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}, since {_iso(time.time())}\n")
        f.flush()
        self._held = f

    def __enter__(self) -> "PartLog":
        self._hold()
        self.started = self.start_at or time.time()
        commit = git_commit(self.project_dir) if self.project_dir else git_commit()
        self.parts = read_parts(self.out_dir) + [{
            "part": 0, "started": _iso(self.started), "last_seen": _iso(self.started), "seconds": 0.0,
            "host": socket.gethostname(), "commit": commit, "ended": None,
        }]
        self.parts[-1]["part"] = len(self.parts)
        self._write()
        self._thread = threading.Thread(target=self._beat, name="dml-sweep-parts", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._refresh(ended="finished" if exc_type is None else f"ended by {exc_type.__name__}")
        if self._held is not None:
            self._held.close()  # closing releases the flock
            self._held = None

    def end(self, how: str = "finished") -> None:
        """Mark this part ended `how` now, before the sweep writes the report that lists it (a
        part with no end reads as killed there); leaving the context still refreshes its time,
        and an exception raised after this mark replaces it with what ended the part."""
        self._refresh(ended=how)

    @property
    def total(self) -> float:
        """Seconds over every part, this one up to now."""
        with self._lock:
            self._update(time.time())
            return total_seconds(self.parts)

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            self._refresh()

    def _update(self, now: float) -> None:
        self.parts[-1].update(last_seen=_iso(now), seconds=round(now - self.started, 1))

    def _refresh(self, ended: str | None = None) -> None:
        with self._lock:
            self._update(time.time())
            if ended:
                self.parts[-1]["ended"] = ended
            self._write()

    def _write(self) -> None:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(self.out_dir / FILE, json.dumps(self.parts, indent=1))
        except OSError as e:  # a full disk must not end the sweep for its bookkeeping
            log.warning("could not write %s: %s", self.out_dir / FILE, e)
