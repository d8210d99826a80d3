"""Faults a long sweep survives, on real servers started here as processes (no Docker), as
infra/docker-compose.yml configures them: MLflow with its basic-auth app, a Prefect server
with an API auth string, a Ray head with token auth. One set of servers serves the module;
every sweep runs `dml sweep --profile smoke` against all three with the credentials in its
environment, on a small params file (2 methods x 2 seeds; tuned where tuning is tested).

* the team services refuse a request without credentials and answer one with them;
* MLflow stopped after a trial and restarted 30 s later: the sweep completes, every trial
  is in MLflow once, none RUNNING, the log says the outage once; nothing secret in the log
  or in MLflow's params and tags;
* MLflow stopped in tuning and never restarted: the sweep ends Failed naming the URI and the
  unsent trials, every result on disk; run again with MLflow back it sends them, trains none;
* the output on a tmpfs of a few MB: ENOSPC stops the sweep naming the path, nothing partial
  is left, and with the space freed the same command finishes from the finished trials.

MLFLOW_HTTP_REQUEST_MAX_RETRIES=1 makes every outage outlast MLflow's client retries.
"""
from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from dml_experiment.profile import resolve_profile_dict
from test_atomic_writes import small_filesystem

pytestmark = [
    pytest.mark.slow,
    # MLflow's own SQLAlchemy setup warns about its use of `noload`: not ours to fix.
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated"),
]

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DML, MLFLOW, PREFECT, RAY = (str(BIN / n) for n in ("dml", "mlflow", "prefect", "ray"))
METHODS = ("contrastive", "triplet_all")
SEEDS = [0, 1]


# -- servers ------------------------------------------------------------------------------------
class MlflowServer:
    """`mlflow server --app-name basic-auth` as compose runs it (the auth config file names
    the user store; the admin password comes from the environment), restartable on its port
    with its stores kept."""

    def __init__(self, directory: Path, password: str, processes):
        self.processes = processes
        self.dir, self.port = directory, processes.free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        config = directory / "basic_auth.ini"
        config.write_text("[mlflow]\ndefault_permission = READ\n"
                          f"database_uri = sqlite:///{directory / 'basic_auth.db'}\nadmin_username = admin\n"
                          "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
        self.env = {**clean_env(), "MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_AUTH_ADMIN_PASSWORD": password,
                    "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)}
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        args = [MLFLOW, "server", "--app-name", "basic-auth", "--host", "127.0.0.1", "--port", str(self.port),
                "--workers", "1", "--backend-store-uri", f"sqlite:///{self.dir / 'mlflow.db'}",
                "--artifacts-destination", str(self.dir / "artifacts")]
        self.proc = self.processes.start(args, self.env, self.dir / "server.log")

    def wait(self) -> None:
        self.processes.wait_healthy(f"{self.uri}/health", self.proc, self.dir / "server.log")

    def stop(self) -> None:
        self.processes.stop(self.proc)


def clean_env() -> dict[str, str]:
    """This environment without any server setting of the machine's own."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_", "RAY_", "DML_"))}


def ray_head(home: Path, temp: Path, env: dict) -> tuple[str, int]:
    """A token-auth Ray head (its token generated into `home`); returns its address and the
    session id of its processes."""
    subprocess.run([RAY, "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=120)
    proc = subprocess.Popen([RAY, "start", "--head", "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={temp}",
                             "--port=0", "--disable-usage-stats"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out[-3000:]
    return re.search(r"--address='([^']+)'", out).group(1), proc.pid


@pytest.fixture(scope="module")
def team(tmp_path_factory, processes):
    """MLflow (basic auth), Prefect (API auth string) and Ray (token auth), each with a fresh
    random secret, and the environment a sweep gets them from."""
    pytest.importorskip("flask_wtf", reason="MLflow's basic-auth app needs Flask-WTF (the test extra installs it)")
    from test_ray_runner import stop_cluster

    tmp = tmp_path_factory.mktemp("team")
    password, prefect_password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    mlflow = MlflowServer(tmp, password, processes)
    prefect_port = processes.free_port()
    prefect_env = {**clean_env(), "PREFECT_HOME": str(tmp / "prefect-server"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                   "PREFECT_SERVER_API_AUTH_STRING": f"dml:{prefect_password}"}
    home, temp = tmp / "ray-home", Path("/tmp") / f"dmlfaults{os.getpid()}"
    home.mkdir()
    ray_env = {**clean_env(), "HOME": str(home), "RAY_AUTH_MODE": "token"}
    prefect, session = None, None
    try:
        mlflow.start()
        prefect = processes.start([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(prefect_port)],
                                  prefect_env, tmp / "prefect.log")
        address, session = ray_head(home, temp, ray_env)
        mlflow.wait()
        processes.wait_healthy(f"http://127.0.0.1:{prefect_port}/api/health", prefect, tmp / "prefect.log")
        token = (home / ".ray" / "auth_token").read_text().strip()
        env = {**clean_env(), "PYTHONUNBUFFERED": "1", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
               "MLFLOW_TRACKING_URI": mlflow.uri, "MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": password,
               "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api", "PREFECT_API_AUTH_STRING": f"dml:{prefect_password}",
               "PREFECT_HOME": str(tmp / "prefect-client"), "RAY_ADDRESS": address, "RAY_AUTH_MODE": "token",
               "RAY_AUTH_TOKEN": token}
        yield SimpleNamespace(tmp=tmp, mlflow=mlflow, env=env, prefect_api=env["PREFECT_API_URL"], ray_address=address,
                              secrets=[password, prefect_password, token], prefect_auth=f"dml:{prefect_password}")
    finally:
        mlflow.stop()
        processes.stop(prefect)
        if session is not None:
            stop_cluster(temp, session)


@pytest.fixture
def mlflow_up(team, monkeypatch):
    """MLflow running (a test before may have stopped it), and this process its client."""
    if team.mlflow.proc is None or team.mlflow.proc.poll() is not None:
        team.mlflow.start()
        team.mlflow.wait()
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(key, team.env[key])
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=team.mlflow.uri)


# -- the sweep ------------------------------------------------------------------------------------
def small_params(directory: Path, tuned: bool) -> Path:
    """params.yaml with its smoke profile cut to 2 methods x 2 seeds (C1), tuned with 2
    trials of 1 epoch per method where `tuned`."""
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    smoke = resolve_profile_dict(data["profiles"], "smoke")
    smoke.update(methods={m: smoke["methods"][m] for m in METHODS}, comparisons={"C1": smoke["comparisons"]["C1"]}, seeds=SEEDS)
    if tuned:
        tune = resolve_profile_dict(data["profiles"], "quick")["tune"]
        tune.update(methods={m: tune["methods"][m] for m in METHODS}, val_items=200,
                    budget={"trials": 2, "epochs": 1, "max_batches_per_epoch": 2})
        smoke["tune"] = tune
    path = directory / "params.yaml"
    path.write_text(yaml.safe_dump({**data, "profiles": {"smoke": smoke}}))
    return path


def sweep_args(params: Path, out: Path, experiment: str, *extra: str) -> list[str]:
    return [DML, "sweep", "--params", str(params), "--profile", "smoke", "--out", str(out / "report"),
            "--set", f"ray.storage_path={out / 'ray'}", "--set", f"mlflow.experiment={experiment}", *extra]


def run_until(processes, args, env, log: Path, ready, what: str, timeout: float = 600) -> subprocess.Popen:
    """Start the sweep (its output into `log`) and return once ready() holds."""
    proc = processes.start(args, env, log)
    deadline = time.time() + timeout
    while not ready():
        assert proc.poll() is None, f"the sweep ended before {what}: {log.read_text()[-4000:]}"
        assert time.time() < deadline, f"no {what} in {timeout} s"
        time.sleep(0.3)
    return proc


def finish(processes, proc: subprocess.Popen, timeout: float = 600) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        processes.stop(proc)
        raise


def files(directory: Path, pattern: str = "*.json") -> list[Path]:
    return sorted(directory.rglob(pattern)) if directory.is_dir() else []


def runs_of(client, experiment: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=1000) if exp else []


def assert_each_once(runs, tuning_trials: int = 0) -> None:
    """One complete run per final trial and per tuning trial, none RUNNING, one parent."""
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    trials = [r.data.tags["dml.trial_id"] for r in runs if r.data.tags.get("dml.role") == "trial"]
    assert sorted(set(trials)) == sorted(trials) and len(trials) == len(METHODS) * len(SEEDS), trials
    tuned = [(r.data.tags["dml.method"], r.data.tags["dml.tuning_index"]) for r in runs
             if r.data.tags.get("dml.role") == "tuning_trial"]
    assert len(set(tuned)) == len(tuned) == tuning_trials, tuned
    assert all(r.info.status in ("FINISHED", "FAILED") for r in runs)
    assert len([r for r in runs if r.data.tags.get("dml.role") == "sweep"]) == 1


def assert_no_secret(team, text: str, runs) -> None:
    for secret in team.secrets:
        assert secret not in text, "a secret is in the sweep's log"
        for r in runs:
            assert not [k for k, v in {**r.data.params, **r.data.tags}.items() if secret in v], r.info.run_name


def http_status(url: str, auth: str | None = None, body: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


# -- the tests ------------------------------------------------------------------------------------
def test_every_team_service_refuses_a_request_without_credentials(team, mlflow_up):
    search = f"{team.mlflow.uri}/api/2.0/mlflow/experiments/search?max_results=1"
    assert http_status(search) == 401
    assert http_status(search, f"admin:{team.secrets[0]}x") == 401
    assert http_status(search, f"admin:{team.secrets[0]}") == 200
    flows = f"{team.prefect_api}/flows/filter"
    assert http_status(flows, body=b"{}") == 401
    assert http_status(flows, "dml:wrong", body=b"{}") == 401
    assert http_status(flows, team.prefect_auth, body=b"{}") == 200
    connect = f"import ray; ray.init(address={team.ray_address!r}, log_to_driver=False); print('NODES', len(ray.nodes()))"
    stranger = {k: v for k, v in team.env.items() if not k.startswith("RAY_AUTH")}
    stranger["HOME"] = str(team.tmp / "stranger")  # no ~/.ray/auth_token either
    refused = subprocess.run([sys.executable, "-c", connect], env=stranger, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "InvalidAuthToken" in refused.stdout + refused.stderr
    member = subprocess.run([sys.executable, "-c", connect], env=team.env, capture_output=True, text=True, timeout=300)
    assert member.returncode == 0 and "NODES 1" in member.stdout, member.stderr[-2000:]


def test_mlflow_away_for_30_s_mid_sweep_the_sweep_completes_with_each_trial_once(team, mlflow_up, processes, tmp_path):
    out, log = tmp_path / "out", tmp_path / "sweep.log"
    args = sweep_args(small_params(tmp_path, tuned=False), out, "faults-outage")
    proc = run_until(processes, args, team.env, log, lambda: files(out / "report" / "records"), "a finished trial")
    stopped = time.time()
    team.mlflow.stop()
    time.sleep(max(0.0, 30 - (time.time() - stopped)))
    team.mlflow.start()
    team.mlflow.wait()
    assert finish(processes, proc) == 0, log.read_text()[-5000:]
    text = log.read_text()
    assert text.count("cannot be reached") == 1 and text.count("is back after") == 1, text[-5000:]
    runs = runs_of(mlflow_up, "faults-outage")
    assert_each_once(runs)
    assert all(r.info.status == "FINISHED" for r in runs)
    assert "Connecting to existing Ray cluster" in text  # the sweep ran on the token-auth head
    assert_no_secret(team, text, runs)
    state = json.loads(urllib.request.urlopen(urllib.request.Request(
        f"{team.prefect_api}/flow_runs/filter", data=b'{"sort": "START_TIME_DESC", "limit": 1}',
        headers={"Content-Type": "application/json",
                 "Authorization": "Basic " + base64.b64encode(team.prefect_auth.encode()).decode()}), timeout=30).read())
    assert state[0]["state"]["type"] == "COMPLETED"  # the flow run, on the auth-string Prefect server


def test_mlflow_gone_for_good_in_tuning_fails_naming_what_it_lacks_and_a_rerun_sends_it(team, mlflow_up, processes, tmp_path):
    out, log = tmp_path / "out", tmp_path / "sweep.log"
    report = out / "report"
    args = sweep_args(small_params(tmp_path, tuned=True), out, "faults-gone", "--set", "mlflow.outage_seconds=5")
    proc = run_until(processes, args, team.env, log, lambda: files(report / "tuning_records"), "a finished tuning trial")
    team.mlflow.stop()
    assert finish(processes, proc) != 0
    text = log.read_text()
    error = next(line for line in reversed(text.splitlines()) if line.startswith("error: "))
    assert team.mlflow.uri in error and "not sent" in error, error
    tuning = len(METHODS) * 2
    assert len(files(report / "tuning_records")) == tuning and len(files(report / "records")) == len(METHODS) * len(SEEDS)
    for name in (f"{m}-seed{s}" for m in METHODS for s in SEEDS):
        assert name in error, (name, error)
    assert "tuning trial #1" in error and (report / "report.md").is_file()
    trained = [p.stat().st_mtime for p in files(out / "ray", "model.pt")]

    team.mlflow.start()
    team.mlflow.wait()
    again = subprocess.run(args, env=team.env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    text = again.stdout + again.stderr
    assert "trials: 0 to run" in text and f"{len(METHODS) * len(SEEDS)} already finished, 0 to run" in text
    assert "not in MLflow yet: sending them" in text
    assert [p.stat().st_mtime for p in files(out / "ray", "model.pt")] == trained  # nothing trained again
    runs = runs_of(mlflow_up, "faults-gone")
    assert_each_once(runs, tuning_trials=tuning)
    assert_no_secret(team, log.read_text() + text, runs)


def partial_files(root: Path) -> list[str]:
    """Files under `root` that are not whole: temporary, empty, or not readable as what
    their name says (JSON, Parquet embeddings, a torch state)."""
    import torch

    from dml_core.metrics import load_embeddings

    bad = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            assert ".tmp" not in path.name and path.stat().st_size > 0
            if path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".parquet":
                load_embeddings(path)
            elif path.suffix == ".pt":
                torch.load(path, weights_only=True)
        except Exception as e:  # noqa: BLE001 - every reason a file is not whole
            bad.append(f"{path.relative_to(root)}: {type(e).__name__} {e}")
    return bad


def test_a_full_disk_stops_the_sweep_naming_the_path_and_the_sweep_resumes_once_space_is_freed(team, mlflow_up, processes, tmp_path):
    with small_filesystem(tmp_path, "6m") as disk:
        filler = disk / "filler"
        # About 2 MiB left: two or three trials (checkpoint, embeddings, model) fit, not four.
        filler.write_bytes(b"\0" * (4 * 1024**2 + 200 * 1024))
        out, log = disk / "sweep", tmp_path / "sweep.log"
        args = sweep_args(small_params(tmp_path, tuned=False), out, "faults-disk")
        assert finish(processes, processes.start(args, team.env, log)) != 0
        text = log.read_text()
        error = next(line for line in reversed(text.splitlines()) if line.startswith("error: "))
        assert "No space left on device" in error and str(disk) in error and "free of" in error, error
        assert partial_files(disk) == []
        done = len(files(out / "report" / "records"))
        assert 1 <= done < len(METHODS) * len(SEEDS), text[-4000:]
        filler.unlink()
        again = subprocess.run(args, env=team.env, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        total = len(METHODS) * len(SEEDS)
        assert f"{done} already finished, {total - done} to run" in again.stdout + again.stderr
        assert (out / "report" / "report.md").is_file() and len(files(out / "report" / "records")) == total
        # What the sweep wrote (Ray Tune's own bookkeeping of a run that went well is Ray's).
        assert partial_files(out / "report") == [] and all(partial_files(a) == [] for a in (out / "ray").glob("*/artifacts"))
    assert_each_once(runs_of(mlflow_up, "faults-disk"))
