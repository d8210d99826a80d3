"""The sweep profiles, the `dml` command and the Prefect flow `dml-sweep`, end to end."""
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from dml_experiment.convergence import study_trials
from dml_experiment.profile import apply_overrides, load_profile

ROOT = Path(__file__).resolve().parent.parent
DML = str(Path(sys.executable).with_name("dml"))
PREFECT = str(Path(sys.executable).with_name("prefect"))


# -- profiles and overrides (fast) --------------------------------------------------------------
@pytest.mark.parametrize("name", ["quick", "smoke", "full", "paper"])
def test_every_profile_of_params_yaml_validates(name):
    profile_name, profile = load_profile(ROOT / "params.yaml", name)
    trials = profile.trials()
    assert profile_name == name and trials
    assert len({id(t) for _, t in trials}) == len(trials)
    if name != "paper":
        # C1-C9, plus variants of them (C5_ratio: facility location at other C/m)
        assert {f"C{i}" for i in range(1, 10)} == {c.split("_")[0] for c in profile.comparisons}


def test_quick_is_the_default_and_shares_one_protocol():
    name, quick = load_profile(ROOT / "params.yaml")
    # Quick trades replicates for steps and search (issue 25): 3 replicates of at least 1,000
    # steps, each method tuned with 8 trials.
    assert name == "quick" and len(quick.seeds) >= 3 and quick.tune.budget.trials >= 8
    assert quick.train.epochs * quick.train.max_batches_per_epoch >= 1000
    for method, t in quick.trials():
        # Only what a method names differs: C3's methods turn the normalisation off, nothing else.
        own = quick.methods[method].model
        assert set(own) <= {"normalize"}
        # train.precision `auto` is resolved for this machine when the trials are made.
        train = quick.train.model_copy(update={"precision": t.train.precision})
        assert quick.train.precision == "auto" and t.train.precision in ("fp32", "bf16")
        assert t.model == quick.model.model_copy(update=own) and t.optimizer == quick.optimizer and t.train == train


def test_every_quick_method_is_tuned_with_one_budget():
    _, quick = load_profile(ROOT / "params.yaml")
    assert quick.tune is not None and quick.tune.metric == "map@r"
    for method in quick.methods:
        assert quick.tune.space_of(method), method
        own = quick.tune.methods.get(method)
        assert own is None or own.budget is None or own.budget == quick.tune.budget
    # Tuning trials train to the final runs' horizon.
    assert (quick.tune.budget.epochs, quick.tune.budget.max_batches_per_epoch) == (quick.train.epochs, quick.train.max_batches_per_epoch)
    _, smoke = load_profile(ROOT / "params.yaml", "smoke")
    assert smoke.tune is None


def test_dotted_overrides():
    _, p = load_profile(ROOT / "params.yaml", "smoke", {"train.epochs": 2, "seeds": [3, 4], "model.options.width": 8})
    assert p.train.epochs == 2 and p.seeds == [3, 4] and p.model.options["width"] == 8
    assert apply_overrides({"a": {"b": 1}}, ["a.c=[1, 2]", "d=x"]) == {"a": {"b": 1, "c": [1, 2]}, "d": "x"}


@pytest.mark.parametrize(
    "overrides,key",
    [
        ({"train.epoch": 2}, "profiles.smoke.train.epoch"),
        ({"train.epochs": 0}, "profiles.smoke.train.epochs"),
        ({"train.epochs": "many"}, "profiles.smoke.train.epochs"),
        ({"methods.npair.loss.name": "npairs"}, "unknown loss name 'npairs'"),
        ({"methods.triplet_all.loss.options.margn": 1}, "unknown option 'margn'"),
        ({"comparisons.CX": {"claim": "x", "methods": ["nope"]}}, "comparisons.CX.methods: unknown method 'nope'"),
        ({"comparisons.C1.methods": ["nope"]}, "is not a method of this comparison"),
    ],
)
def test_bad_params_name_the_key(overrides, key):
    with pytest.raises(ValueError) as e:
        load_profile(ROOT / "params.yaml", "smoke", overrides)
    assert key in str(e.value)


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown profile 'quik'.*quick.*smoke"):
        load_profile(ROOT / "params.yaml", "quik")


def test_cli_refuses_bad_params_before_starting_anything(tmp_path):
    start = time.perf_counter()
    out = subprocess.run([DML, "sweep", "--profile", "smoke", "--set", "train.epochs=0"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "profiles.smoke.train.epochs" in out.stderr
    assert "Prefect" not in out.stderr and "Ray" not in out.stderr
    assert time.perf_counter() - start < 60
    bad = yaml.safe_load((ROOT / "params.yaml").read_text())
    bad["profiles"]["quick"]["loss_typo"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(bad))
    out = subprocess.run([DML, "validate", "--params", str(tmp_path / "params.yaml")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "profiles.quick.loss_typo" in out.stderr


def test_cli_help_names_the_commands():
    out = subprocess.run([DML, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for cmd in ("prepare", "validate", "sweep", "report"):
        assert cmd in out.stdout


# -- the flow, for real (slow) ------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def runs_in(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        try:
            return con.execute("select run_uuid, status from runs").fetchall()
        except sqlite3.OperationalError:
            return []


def child_trial_ids(db: Path, status: str = "FINISHED") -> set[str]:
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "select t.value from tags t join runs r on r.run_uuid = t.run_uuid where t.key = 'dml.trial_id' and r.status = ?",
            (status,),
        ).fetchall()
    return {r[0] for r in rows}


@pytest.mark.slow
def test_flow_fails_at_validation_before_data_or_ray(tmp_path):
    from flows.sweep import dml_sweep

    env_before = set(os.listdir(ROOT))
    with pytest.raises(ValueError, match="profiles.smoke.train.epochs"):
        dml_sweep(profile="smoke", overrides={"train.epochs": -1})
    assert set(os.listdir(ROOT)) == env_before  # no ray_results, no reports, no mlflow.db


def tagged_runs(db: Path, role: str) -> list[tuple]:
    """(method, tuning index, status) of the runs with dml.role = role."""
    with sqlite3.connect(db) as con:
        return con.execute(
            "select m.value, i.value, r.status from runs r join tags t on t.run_uuid = r.run_uuid"
            " left join tags m on m.run_uuid = r.run_uuid and m.key = 'dml.method'"
            " left join tags i on i.run_uuid = r.run_uuid and i.key = 'dml.tuning_index'"
            " where t.key = 'dml.role' and t.value = ?", (role,),
        ).fetchall()


def kill_when(args, env, ready, what: str) -> None:
    """Start the sweep and SIGKILL its whole process group once ready() holds."""
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 600
    try:
        while time.time() < deadline and not ready():
            assert proc.poll() is None, f"the sweep ended before {what}: " + proc.stdout.read().decode()[-3000:]
            time.sleep(1)
        assert ready(), f"no {what} within 10 min"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole sweep: driver, Prefect, Ray workers
        proc.wait()


# Smoke with a small tuning stage: each method 2 tuning trials of 1 epoch.
TUNED_SMOKE = ("tune={budget: {trials: 2, epochs: 1, max_batches_per_epoch: 2}, val_items: 200, "
               "shared: {optimizer.lr: {loguniform: [0.0003, 0.003]}}, "
               "methods: {log_ratio: {metric: ndcg@8}, triplet_binned: {metric: ndcg@8}, contrastive_binned: {metric: ndcg@8}}}")


@pytest.mark.slow
def test_a_sweep_killed_in_tuning_and_in_training_resumes_without_repeating_a_trial(tmp_path):
    db = tmp_path / "mlflow.db"
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{db}", PYTHONUNBUFFERED="1")
    smoke = load_profile(ROOT / "params.yaml", "smoke")[1]
    tuned_total = 2 * len(smoke.methods)
    # Tuned, every method is its own trial (each searches from its own seed, so methods that
    # coincide untuned get other values), plus the convergence study's runs.
    finals = len(smoke.methods) + len(study_trials(smoke, None))
    args = [DML, "sweep", "--profile", "smoke", "--set", TUNED_SMOKE, "--set", "mlflow.experiment=resume-test",
            "--out", str(tmp_path / "report")]

    def tuned(n):
        return lambda: runs_in(db) and len([r for r in tagged_runs(db, "tuning_trial") if r[2] == "FINISHED"]) >= n

    # 1. Killed during tuning, after a few tuning trials.
    kill_when(args, env, tuned(3), "3 tuning trials")
    tuned_before = {(m, i) for m, i, s in tagged_runs(db, "tuning_trial") if s == "FINISHED"}
    assert 3 <= len(tuned_before) < tuned_total and not child_trial_ids(db)
    # 2. Killed during the final runs: tuning then ran only the tuning trials left.
    kill_when(args, env, lambda: runs_in(db) and len(child_trial_ids(db)) >= 2, "2 final trials")
    tuning_trials = [(m, i) for m, i, s in tagged_runs(db, "tuning_trial") if s in ("FINISHED", "FAILED")]
    assert len(tuning_trials) == tuned_total and len(set(tuning_trials)) == tuned_total  # none repeated, none lost
    assert tuned_before <= set(tuning_trials)
    done_before = child_trial_ids(db)
    assert 2 <= len(done_before) < finals
    assert any(status == "RUNNING" for _, status in runs_in(db))  # the parent, killed mid-way
    # 3. To the end.
    third = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    log = third.stdout + third.stderr
    assert "trials: 0 to run" in log  # no tuning trial left
    # Finished: those in MLflow, and those whose record reached the disk before the kill but
    # not MLflow (sent now, not trained again).
    finished, to_run = map(int, re.search(r"(\d+) already finished, (\d+) to run", log).groups())
    assert len(done_before) <= finished and finished + to_run == finals
    assert (finished == len(done_before)) or "not in MLflow yet: sending them" in log
    assert len(child_trial_ids(db)) == finals  # none lost
    assert not any(status == "RUNNING" for _, status in runs_in(db))
    # A tuning trial killed while its run was being written is KILLED and ran again.
    assert len([r for r in tagged_runs(db, "tuning_trial") if r[2] != "KILLED"]) == tuned_total
    assert sorted(m for m, _, s in tagged_runs(db, "tuning") if s == "FINISHED") == sorted(
        {m for m, _ in tuning_trials})  # every method's tuning run closed
    with sqlite3.connect(db) as con:  # none repeated: one finished run per trial, each named for its arm
        finished = con.execute(
            "select r.name, t.value from runs r join tags t on t.run_uuid = r.run_uuid"
            " where t.key = 'dml.trial_id' and r.status = 'FINISHED'"
        ).fetchall()
        tuned_from = con.execute(
            "select count(*) from tags t join runs r on r.run_uuid = t.run_uuid and r.status = 'FINISHED'"
            " join tags i on i.run_uuid = t.run_uuid and i.key = 'dml.trial_id' where t.key = 'dml.tuning_run'"
        ).fetchone()[0]
    assert len(finished) == finals and len({name for name, _ in finished}) == finals
    assert tuned_from == finals  # every final run names the tuning run it came from
    with sqlite3.connect(db) as con:  # the killed parent run was reopened and finished, not duplicated
        parents = con.execute(
            "select count(*) from runs r where not exists (select 1 from tags t where t.run_uuid = r.run_uuid and t.key = 'mlflow.parentRunId')"
        ).fetchone()[0]
    assert parents == 1
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Tuning (validation classes)" in report and "plots/tuning.png" in report
    assert "plots/validation_curves.png" in report
    # The part that wrote the report reads as finished there, not as killed.
    wall = next(line for line in report.splitlines() if line.startswith("- wall time:"))
    assert "in 3 parts" in wall and re.search(r"at `\w+`; trial compute", wall), wall
    # 4. One method's space changed (NCE's temperature searched too, an option no other arm of
    # C8 shares): a new sweep, in which only that method is tuned again and only its final run
    # trains; every other method's tuning records and final runs serve.
    wider = TUNED_SMOKE.replace("methods: {", "methods: {nce: {space: {loss.temperature: {loguniform: [0.01, 1.0]}}}, ")
    fourth = subprocess.run(args[:4] + ["--set", wider] + args[6:], env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert fourth.returncode == 0, fourth.stdout[-3000:] + fourth.stderr[-3000:]
    log = fourth.stdout + fourth.stderr
    assert f"tuning {len(smoke.methods)} methods x 2 trials: 2 to run" in log
    assert re.search(rf"{finals - 1} already finished, 1 to run", log), log[-3000:]


@pytest.mark.slow
def test_deployment_runs_on_a_real_prefect_server_and_worker(tmp_path):
    """make serve's script on private ports, then the README's command, to Completed."""
    env = dict(
        os.environ,
        SERVE_DIR=str(tmp_path / "serve"),
        PREFECT_PORT=str(free_port()),
        MLFLOW_PORT=str(free_port()),
        PREFECT_HOME=str(tmp_path / "prefect-home"),
    )
    api = f"http://127.0.0.1:{env['PREFECT_PORT']}/api"
    try:
        up = subprocess.run([str(ROOT / "scripts" / "serve.sh")], env=env, capture_output=True, text=True, timeout=300)
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        cli = dict(env, PREFECT_API_URL=api)
        run = subprocess.run(
            [PREFECT, "deployment", "run", "dml-sweep/default", "-p", "profile=smoke", "-p", 'overrides={"mlflow.experiment": "e2e"}'],
            env=cli, capture_output=True, text=True, timeout=120,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        flow_run_id = next(line.split()[-1] for line in run.stdout.splitlines() if "UUID" in line)
        state = wait_for_flow_run(flow_run_id, cli, timeout=900)
        assert state == "COMPLETED", Path(env["SERVE_DIR"], "prefect-worker.log").read_text()[-4000:]
        check_mlflow(f"http://127.0.0.1:{env['MLFLOW_PORT']}", "e2e")
    finally:
        subprocess.run([str(ROOT / "scripts" / "stop.sh")], env=env, timeout=120)


def wait_for_flow_run(flow_run_id: str, env: dict, timeout: float) -> str:
    code = (
        "import asyncio, sys\n"
        "from prefect.client.orchestration import get_client\n"
        "async def main():\n"
        "    async with get_client() as c:\n"
        f"        r = await c.read_flow_run('{flow_run_id}')\n"
        "        print(r.state.type.value if r.state else 'NONE')\n"
        "asyncio.run(main())\n"
    )
    deadline = time.time() + timeout
    state = "NONE"
    while time.time() < deadline:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        state = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "NONE"
        if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return state
        time.sleep(5)
    return state


def check_mlflow(uri: str, experiment: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    smoke = load_profile(ROOT / "params.yaml", "smoke")[1]
    finals = len(smoke.trials()) + len(study_trials(smoke, None))  # the final runs and the convergence study's
    assert len(children) == finals and all(r.info.status == "FINISHED" for r in children)
    assert len({r.info.run_name for r in children}) == finals  # every arm and seed told apart
    history = client.get_metric_history(children[0].info.run_id, "train_loss") or client.get_metric_history(children[0].info.run_id, "train/loss")
    assert history
    versions = client.search_model_versions("name='dml-embedder'")
    assert versions


def test_the_sweeps_prefect_server_sends_no_telemetry_from_the_project_root():
    """pyproject.toml turns the temporary server's telemetry off (offline machines logged an
    ERROR every 10 minutes); the environment variable still overrides it."""
    code = "from prefect.settings import get_current_settings as s; print(s().server.analytics_enabled)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}

    def enabled(extra: dict[str, str]) -> str:
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, **extra},
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()

    assert enabled({}) == "False"
    assert enabled({"PREFECT_SERVER_ANALYTICS_ENABLED": "true"}) == "True"
