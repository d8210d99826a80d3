"""The MLflow UI shows a sweep: a real `mlflow server` on 127.0.0.1, a sweep logged to it with
SweepTracker, the experiment's runs page rendered by headless Chromium (slow).

The screenshot stays at reports/ui/mlflow-runs.png (printed in the test output) for CI to
keep as an artifact.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dml_experiment.record import FAILED
from test_tracking import failed_outcome, finished_outcome

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated"),
]

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "reports" / "ui" / "mlflow-runs.png"
MLFLOW = Path(sys.executable).with_name("mlflow")  # the venv's own server
SWEEP = "ui-sweep"


# -- helpers --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium() -> str:
    """The chromium binary; installed with apt-get (as root) when missing, else a skip."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, timeout=900)
        found = shutil.which("chromium")
        if found:
            return found
    pytest.skip("headless Chromium is needed: install Debian's package with `apt-get install -y chromium`")


def wait_healthy(url: str, server: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(f"mlflow server not healthy after {timeout}s:\n{log.read_text()[-3000:]}")


def run_chromium(binary: str, url: str, profile_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    """Headless Chromium with no background traffic; a fresh profile per call. The virtual
    time budget lets the single-page app fetch and render the runs before the capture."""
    cmd = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile_dir}", "--window-size=1400,900", "--virtual-time-budget=15000", *extra, url,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


# -- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`mlflow server` on a free port with a temporary SQLite store and artifact root."""
    root = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    log = root / "server.log"
    cmd = [
        str(MLFLOW), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts"),
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url
    finally:
        # The server forks workers: end the whole session group this test started.
        try:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, 9)


@pytest.fixture(scope="module")
def logged_sweep(server, tmp_path_factory, tiny_dataset, trial_config):
    """Two trained trials and a failed one, logged to the server as one sweep."""
    from flows.tracking import SweepTracker

    artifacts = tmp_path_factory.mktemp("ui_artifacts")
    outcomes = [finished_outcome(trial_config(tiny_dataset, seed=s), artifacts) for s in (0, 1)]
    outcomes.append(failed_outcome(trial_config(tiny_dataset, seed=2), outcomes[0].history))
    tracker = SweepTracker("dml-ui", SWEEP, "smoke", {"seeds": [0, 1, 2]}, uri=server, tags={"dml.data_version": "ui.dir"})
    with tracker:
        for o in outcomes:
            tracker.log_trial(o)
        best = max((o for o in outcomes if o.status != FAILED), key=lambda o: o.metrics["map@r"])
        tracker.log_best_model(best, "dml-ui-embedder")
    return tracker, outcomes


# -- the test ---------------------------------------------------------------------------------------
def test_the_runs_page_lists_the_sweep(server, logged_sweep, tmp_path, capsys):
    binary = chromium()
    tracker, outcomes = logged_sweep
    # The runs tab (the bare experiment URL opens MLflow 3's GenAI overview instead), in the
    # tracker's shared view grouped by sweep: the plain table shows trials collapsed under
    # their parent run.
    url = tracker.runs_url()
    assert url.startswith(f"{server}/#/experiments/{tracker.experiment_id}/runs?")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)

    shot = run_chromium(binary, url, tmp_path / "profile-shot", f"--screenshot={SCREENSHOT}")
    assert SCREENSHOT.is_file() and SCREENSHOT.stat().st_size > 10_000, f"no screenshot:\n{shot.stderr[-3000:]}"
    with capsys.disabled():
        print(f"\n[mlflow-ui] screenshot of {url}: {SCREENSHOT}")

    dom = run_chromium(binary, url, tmp_path / "profile-dom", "--dump-dom").stdout
    assert "mlflow" in dom.lower(), "the page did not render"
    assert SWEEP in dom, "the sweep's parent run is not listed"
    missing = [o.name for o in outcomes if o.name not in dom]
    assert not missing, f"runs not listed on the page: {missing}"
