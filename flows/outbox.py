"""What a sweep sends to MLflow, sent by one background thread, so that the tracking server
going away never stops the training.

    outbox = Outbox(uri, outage_seconds=600, logger=logger, kept_in="reports/x/records")
    outbox.put("contrastive-seed0 (946bf3948376)", lambda: tracker.log_trial(record))
    ...
    pending = outbox.flush()   # [] once all is sent; else the labels MLflow never got

Why a thread: Ray Tune calls the sweep's callbacks on its event loop, and MLflow's HTTP client
retries a refused request for minutes; a send made there would hold every trial back, and its
final error would end the whole Tune run. Here a send that fails is retried, oldest first,
with a backoff (1, 2, 4 ... `max_backoff` s) for as long as the sweep trains; `flush` waits
at most until the outage has lasted `outage_seconds`. Each item must be idempotent (the
trackers' log_trial are): a send cut off half-way is simply sent again. The outage is
logged once when it starts and once when it ends, never once per trial.

An error the server answers for the item itself (HTTP 400, 404, 409, ...: a bad value, a
deleted run) is not an outage: retrying cannot fix it, so the item is set aside as refused,
logged, and the rest goes on.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from flows.tracking import redacted_uri

log = logging.getLogger(__name__)

# Statuses the server gives for a request that cannot succeed as sent: not an outage.
REFUSED = range(400, 500)
TRANSIENT = {401, 403, 408, 429}  # credentials being rotated, timeouts, rate limits: wait


@dataclass
class Item:
    label: str
    send: Callable[[], Any]


def refused_by_server(error: BaseException) -> bool:
    """Whether MLflow answered that this request is wrong (4xx), not that it is away."""
    from mlflow.exceptions import MlflowException

    if not isinstance(error, MlflowException):
        return False
    status = error.get_http_status_code()
    return status in REFUSED and status not in TRANSIENT


def short_error(error: BaseException) -> str:
    """The gist of a failed request: MLflow's message repeats the whole URL and urllib3's
    retry state; the OS error at its end ("[Errno 111] Connection refused") says it."""
    text = " ".join(str(error).split())
    found = re.search(r"\[Errno -?\d+\] [^\"')]+", text)
    if found:
        return found.group(0).strip()
    return f"{type(error).__name__}: {text}"[:200]


class Outbox:
    """Items sent in the order given by one daemon thread; see the module docstring."""

    def __init__(self, uri: str, outage_seconds: float, logger=None, *, kept_in: str = "the sweep's directory",
                 max_backoff: float = 10.0):
        self.uri, self.outage_seconds, self.max_backoff = redacted_uri(uri), outage_seconds, max_backoff
        self.log = logger or log
        self.kept_in = kept_in
        self.items: deque[Item] = deque()
        self.refused: list[tuple[str, str]] = []  # (label, the server's answer)
        self.sent = 0
        self.outage_since: float | None = None  # time.monotonic() of the first failed send
        self.outages = 0
        self.last_error: str | None = None
        self.stopped = False
        self.cond = threading.Condition()
        self.wake = threading.Event()  # cuts a backoff short: close()
        self.thread: threading.Thread | None = None

    # Ray Tune pickles its callbacks (tuner.pkl, for a restore the sweep never does), and a
    # sweep's callbacks hold the outbox: a copy is an empty outbox to the same server.
    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("items", "cond", "wake", "thread")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.items, self.thread = deque(), None
        self.cond, self.wake = threading.Condition(), threading.Event()

    # -- the caller's side ---------------------------------------------------------------------
    def put(self, label: str, send: Callable[[], Any]) -> None:
        """Queue `send` (idempotent) under `label`; returns at once."""
        with self.cond:
            self.items.append(Item(label, send))
            if self.thread is None:
                self.thread = threading.Thread(target=self.run, name="dml-mlflow-outbox", daemon=True)
                self.thread.start()
            self.cond.notify_all()

    def pending(self) -> list[str]:
        with self.cond:
            return [i.label for i in self.items]

    def flush(self) -> list[str]:
        """Wait until every item is sent, or until the current outage has lasted
        `outage_seconds` (and for an outage that began long before, one more backoff's
        worth of tries, at most `outage_seconds`); returns the labels still pending."""
        started = time.monotonic()
        with self.cond:
            while self.items and not self.stopped:
                if self.outage_since is not None:
                    deadline = max(self.outage_since + self.outage_seconds,
                                   started + min(self.max_backoff, self.outage_seconds))
                    if time.monotonic() >= deadline:
                        break
                self.cond.wait(timeout=0.5)
            return [i.label for i in self.items]

    def close(self) -> list[str]:
        """Stop sending (a send under way finishes in its thread); returns the labels left."""
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
        self.wake.set()
        return self.pending()

    def outage_text(self) -> str:
        seconds = 0.0 if self.outage_since is None else time.monotonic() - self.outage_since
        return f"MLflow at {self.uri} unreachable for {seconds:.0f} s (last error: {self.last_error})"

    # -- the thread ----------------------------------------------------------------------------
    def run(self) -> None:
        backoff = 1.0
        while True:
            with self.cond:
                while not self.items and not self.stopped:
                    self.cond.wait()
                if self.stopped:
                    return
                item = self.items[0]
            try:
                item.send()
            except Exception as e:  # noqa: BLE001 - any failure of a send is handled here, never raised
                if refused_by_server(e):
                    self.set_aside(item, e)
                    continue
                self.failed(e)
                self.wake.wait(backoff)
                backoff = min(2 * backoff, self.max_backoff)
                continue
            backoff = 1.0
            self.delivered(item)

    def delivered(self, item: Item) -> None:
        with self.cond:
            if self.items and self.items[0] is item:
                self.items.popleft()
            self.sent += 1
            if self.outage_since is not None:
                self.log.info(f"MLflow at {self.uri} is back after {time.monotonic() - self.outage_since:.0f} s: "
                              f"sending the {len(self.items) + 1} item(s) kept meanwhile")
                self.outage_since = None
            self.cond.notify_all()

    def failed(self, error: Exception) -> None:
        with self.cond:
            self.last_error = short_error(error)
            if self.outage_since is None:
                self.outage_since = time.monotonic()
                self.outages += 1
                self.log.warning(
                    f"MLflow at {self.uri} cannot be reached ({self.last_error}); the sweep goes on: every trial is "
                    f"kept in {self.kept_in} and sent when the server is back (retried with backoff; at the end the "
                    f"sweep waits at most {self.outage_seconds:.0f} s for it)")
            self.cond.notify_all()

    def set_aside(self, item: Item, error: Exception) -> None:
        answer = " ".join(f"{type(error).__name__}: {error}".split())[:300]
        self.log.error(f"MLflow at {self.uri} refused {item.label}: {answer} (kept on disk; not sent again in this sweep)")
        with self.cond:
            if self.items and self.items[0] is item:
                self.items.popleft()
            self.refused.append((item.label, answer))
            self.cond.notify_all()
