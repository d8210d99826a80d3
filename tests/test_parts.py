import json
import time

from dml_experiment.parts import FILE, PartLog, read_parts, total_seconds
from dml_experiment.report.build import part_text, wall_time_text


def test_each_attempt_is_a_part_refreshed_while_it_runs_and_the_wall_time_is_their_sum(tmp_path):
    with PartLog(tmp_path, every=0.05, started=time.time() - 60) as log:
        time.sleep(0.2)
        on_disk = read_parts(tmp_path)
        assert len(on_disk) == 1 and on_disk[0]["ended"] is None and on_disk[0]["seconds"] >= 60
        assert log.total >= 60
    first = read_parts(tmp_path)
    assert first[0]["ended"] == "finished" and first[0]["part"] == 1
    try:
        with PartLog(tmp_path, every=10):
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    parts = read_parts(tmp_path)
    assert [p["part"] for p in parts] == [1, 2]
    assert parts[1]["ended"] == "ended by KeyboardInterrupt"
    assert total_seconds(parts) == parts[0]["seconds"] + parts[1]["seconds"]


def test_a_part_marked_ended_before_its_report_reads_finished_unless_an_exception_follows(tmp_path):
    with PartLog(tmp_path, every=10) as log:
        log.end()
        assert read_parts(tmp_path)[0]["ended"] == "finished"
        assert "killed" not in part_text(read_parts(tmp_path)[0])
    try:
        with PartLog(tmp_path, every=10) as log:
            log.end()
            raise KeyboardInterrupt  # e.g. while the report is written
    except KeyboardInterrupt:
        pass
    assert [p["ended"] for p in read_parts(tmp_path)] == ["finished", "ended by KeyboardInterrupt"]


def test_a_killed_part_counts_to_its_last_heartbeat_and_the_report_lists_the_parts(tmp_path):
    killed = {"part": 1, "started": "2026-12-06 10:15:00 UTC", "last_seen": "2026-12-06 11:15:00 UTC",
              "seconds": 3600.0, "host": "a", "commit": "abc1234", "ended": None}
    (tmp_path / FILE).write_text(json.dumps([killed]))
    with PartLog(tmp_path, every=10, started=time.time() - 1800) as log:
        assert 5399 < log.total < 5500
    parts = read_parts(tmp_path)
    assert "killed" in part_text(parts[0]) and "60.0 min" in part_text(parts[0])
    text = wall_time_text({"seconds": total_seconds(parts), "parts": parts, "source": "measured"}, 480)
    assert text.startswith("90.0 min (within the profile's 480-minute target") and "in 2 parts" in text


def test_an_unreadable_parts_file_is_ignored_with_a_warning(tmp_path, caplog):
    (tmp_path / FILE).write_text("{not json")
    assert read_parts(tmp_path) == []
    assert FILE in caplog.text


def test_a_second_attempt_into_a_running_sweeps_directory_is_refused_by_name(tmp_path):
    import os

    import pytest

    with PartLog(tmp_path, every=10):
        with pytest.raises(ValueError, match=f"another sweep is running into this directory \\(pid {os.getpid()} on "):
            with PartLog(tmp_path, every=10):
                pass
        assert len(read_parts(tmp_path)) == 1  # the refused attempt added no part
    with PartLog(tmp_path, every=10):  # the first one ended: its lock went with it
        pass
    assert [p["ended"] for p in read_parts(tmp_path)] == ["finished", "finished"]
