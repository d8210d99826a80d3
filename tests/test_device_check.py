"""benchmarks/device_check.py runs on a CPU at its --quick size, as CI runs it (the GPU
machine runs it at full size with --device cuda)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # ~40 s: fresh processes for pytest, the losses benchmark and two trials
def test_device_check_runs_on_a_cpu_at_its_quick_size(tmp_path):
    out = tmp_path / "summary.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "device_check.py"), "--device", "cpu", "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary["environment"]["device"] == "cpu"
    tests = summary["tests"]
    assert tests["passed"] > 0 and tests["failed"] == tests["errors"] == 0
    losses = summary["losses"]
    assert losses and all("seconds" in row["ours"] for row in losses)
    trials = {row["precision"]: row for row in summary["trial"]}
    assert set(trials) == {"fp32", "bf16"}
    for row in trials.values():
        assert row["steps"] == 3 and row["steps_per_s"] > 0 and 0 <= row["data_share"] <= 1
        assert row["channels_last"] is True and 0 <= row["map@r"] <= 1
    assert "== summary" in proc.stdout and "steps/s" in proc.stdout
