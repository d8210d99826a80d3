"""The pieces that let a sweep outlive its tracking server and a full disk, each on its own
(fast): the outbox (retries, one log line per outage, a bounded wait, refused items set
aside), the records on disk, and the clean-up after ENOSPC. The slow end-to-end checks
against real servers are in test_faults.py."""
from __future__ import annotations

import json
import logging
import time

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from dml_experiment.provenance import DiskFull
from dml_experiment.record import FINISHED, TrialRecord, TuningTrial
from flows.disk import as_disk_full, discard_tune_attempts, remove_partials, trial_disk_full
from flows.outbox import Outbox, short_error
from flows.records import RecordStore


class Server:
    """Stands in for MLflow's answers: down until `up` is set, recording what it received."""

    def __init__(self):
        self.up, self.received = False, []

    def send(self, item):
        def call():
            if not self.up:
                raise ConnectionError("[Errno 111] Connection refused")
            self.received.append(item)
        return call


def outbox(caplog, seconds: float = 30.0) -> Outbox:
    caplog.set_level(logging.INFO, logger="dml-test")
    return Outbox("http://user:pw@127.0.0.1:9/", seconds, logging.getLogger("dml-test"), max_backoff=0.2)


def test_an_outage_is_logged_once_and_everything_is_sent_once_in_order_when_it_ends(caplog):
    server, box = Server(), outbox(caplog)
    for i in range(5):
        box.put(f"trial {i}", server.send(i))
    time.sleep(0.8)  # several retries while the server is away
    assert box.pending() == [f"trial {i}" for i in range(5)] and server.received == []
    server.up = True
    assert box.flush() == [] and server.received == [0, 1, 2, 3, 4]
    text = caplog.text
    assert text.count("cannot be reached") == 1 and text.count("is back after") == 1
    assert "pw" not in text and "user:***@127.0.0.1" in text  # the URI without its password
    box.close()


def test_flush_waits_no_longer_than_the_outage_allows_and_names_what_is_left(caplog):
    server, box = Server(), outbox(caplog, seconds=0.5)
    box.put("contrastive-seed0 (abc)", server.send(0))
    started = time.monotonic()
    assert box.flush() == ["contrastive-seed0 (abc)"]
    assert time.monotonic() - started < 5
    assert "Connection refused" in box.outage_text()
    assert box.close() == ["contrastive-seed0 (abc)"]


def test_a_request_the_server_refuses_is_set_aside_and_the_rest_goes_on(caplog):
    server, box = Server(), outbox(caplog)
    server.up = True

    def bad():
        raise MlflowException("Invalid value for param", error_code=INVALID_PARAMETER_VALUE)

    box.put("bad trial", bad)
    box.put("good trial", server.send("good"))
    assert box.flush() == [] and server.received == ["good"]
    assert [label for label, _ in box.refused] == ["bad trial"] and "cannot be reached" not in caplog.text
    box.close()


def test_short_error_keeps_the_os_error():
    long = MlflowException("API request to http://h/api/2.0/mlflow/runs/search failed with exception HTTPConnectionPool("
                           "host='h', port=1): Max retries exceeded (Caused by NewConnectionError(\"x: Failed to establish "
                           "a new connection: [Errno 111] Connection refused\"))")
    assert short_error(long) == "[Errno 111] Connection refused"


def test_an_outbox_pickles_empty_for_ray_tune(caplog):
    import pickle

    server, box = Server(), outbox(caplog)
    box.put("x", lambda: None)
    copy = pickle.loads(pickle.dumps(box))
    assert copy.pending() == [] and copy.uri == box.uri
    server.up = True
    copy.put("y", server.send("y"))
    assert copy.flush() == [] and server.received == ["y"]
    box.close()
    copy.close()


def test_records_round_trip_and_a_tuning_record_of_another_sweep_is_not_read(tmp_path):
    store = RecordStore(tmp_path, "smoke-1")
    record = TrialRecord(trial_id="abc", name="t-seed0", method="t", seed=0, status=FINISHED, metrics={"map@r": 0.5})
    store.write_trial(record)
    (store.trials_dir / "broken.json").write_text("{")  # not written by the store: ignored
    assert store.trials() == {"abc": record} and store.trials({"other"}) == {}
    trial = TuningTrial(method="t", index=1, values={"loss.margin": 0.2}, score=0.4, epochs=1, status=FINISHED)
    store.write_tuning(trial)
    assert store.tuning("t") == {1: trial}
    assert RecordStore(tmp_path, "smoke-2").tuning("t") == {}
    assert not [p for p in tmp_path.rglob(".*")]


def test_a_tuning_record_serves_every_sweep_that_gives_its_method_the_same_search(tmp_path):
    trial = TuningTrial(method="t", index=0, values={"loss.margin": 0.2}, score=0.4, epochs=1, status=FINISHED)
    RecordStore(tmp_path, "full-1").write_tuning(trial, "k1")
    assert RecordStore(tmp_path, "full-2").tuning("t", "k1") == {0: trial}  # another sweep, the same search
    assert RecordStore(tmp_path, "full-2").tuning("t", "k2") == {}  # the method's search changed
    assert RecordStore(tmp_path, "full-1").tuning("t", "k2") == {}  # even in the sweep that wrote it
    # A record written before records had keys belongs to the sweep it names, which keys it.
    legacy = TuningTrial(method="t", index=1, values={"loss.margin": 0.3}, score=0.5, epochs=1, status=FINISHED)
    RecordStore(tmp_path, "full-1").write_tuning(legacy)
    assert RecordStore(tmp_path, "full-2").key_tuning("t", "k1") == 0
    assert RecordStore(tmp_path, "full-2").tuning("t", "k1") == {0: trial}
    assert RecordStore(tmp_path, "full-1").tuning("t", "k1") == {0: trial, 1: legacy}
    assert RecordStore(tmp_path, "full-1").key_tuning("t", "k1") == 1
    assert RecordStore(tmp_path, "full-1").key_tuning("t", "k1") == 0  # done once
    assert RecordStore(tmp_path, "full-2").tuning("t", "k1") == {0: trial, 1: legacy}
    assert json.loads((tmp_path / "tuning_records" / "t" / "1.json").read_text())["sweep"] == "full-1"


def test_after_enospc_only_what_the_records_point_at_is_kept(tmp_path):
    run = tmp_path / "smoke-1-1700000000"
    (run / "artifacts" / "done").mkdir(parents=True)
    (run / "artifacts" / "done" / "model.pt").write_bytes(b"whole")
    (run / "artifacts" / "cut").mkdir()
    (run / "tune_trial_0" / "checkpoint_000000").mkdir(parents=True)
    (run / "tune_trial_0" / "checkpoint_000000" / "state.pt").write_bytes(b"half")
    (run / "experiment_state.json").write_text("{")
    earlier = tmp_path / "smoke-1-1600000000"  # an attempt of another process: not this one's to clean
    earlier.mkdir()
    (earlier / "params.json").write_text("{}")
    (tmp_path / ".results.json.1a2b3c4d.tmp").write_text("half")
    discard_tune_attempts(tmp_path, "smoke-1", since=1700000000, keep={"done"})
    remove_partials(tmp_path)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["smoke-1-1600000000/params.json", "smoke-1-1700000000/artifacts/done/model.pt"]


def test_a_trial_that_failed_on_a_full_disk_is_told_from_one_that_failed(tmp_path):
    assert trial_disk_full("TrialError: the loss became nan", [tmp_path]) is None
    full = trial_disk_full("RayTaskError(OSError): ...\nOSError: [Errno 28] No space left on device", [tmp_path])
    assert isinstance(full, DiskFull) and str(tmp_path) in str(full) and "[Errno 28]" in str(full)
    wrapped = RuntimeError("Tune stopped")
    wrapped.__context__ = DiskFull(tmp_path / "records" / "x.json")
    assert as_disk_full(wrapped, [tmp_path]) is wrapped.__context__
    assert as_disk_full(ValueError("bad"), [tmp_path]) is None


@pytest.mark.parametrize("uri,shown", [
    ("http://admin:secret@127.0.0.1:5000", "http://admin:***@127.0.0.1:5000"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
])
def test_a_tracking_uri_is_shown_without_its_password(uri, shown):
    from flows.tracking import redacted_uri

    assert redacted_uri(uri) == shown
