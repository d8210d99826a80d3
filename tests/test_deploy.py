"""The path a Prefect user takes, without `make serve`: against a real Prefect server in a
temporary PREFECT_HOME, `prefect deploy --all` from the project root (no DML_* variable
set), `prefect worker start --pool dml-pool`, `prefect deployment run dml-sweep/default`.

One server, one work pool, one deploy and one worker serve every test of the module."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = [
    pytest.mark.slow,
    # MLflow's own SQLAlchemy setup warns about its use of `noload`: not ours to fix.
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated"),
]

from dml_experiment.convergence import study_trials  # noqa: E402
from dml_experiment.profile import load_profile  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PREFECT = str(Path(sys.executable).with_name("prefect"))


@pytest.fixture(scope="module")
def prefect(tmp_path_factory, processes):
    """A Prefect server, the process work pool, the deployments of a plain `prefect deploy
    --all` run in the project root, and a worker whose flow runs log to a private MLflow."""
    tmp = tmp_path_factory.mktemp("prefect")
    port = processes.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DML_", "PREFECT_", "MLFLOW_"))}
    env.update(PREFECT_HOME=str(tmp / "home"), PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
               PREFECT_SERVER_ANALYTICS_ENABLED="false", PYTHONUNBUFFERED="1")
    started = time.perf_counter()
    server = processes.start([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env,
                             tmp / "server.log", cwd=ROOT)
    worker = None
    try:
        processes.wait_healthy(f"http://127.0.0.1:{port}/api/health", server, tmp / "server.log", seconds=180)
        pool = subprocess.run([PREFECT, "work-pool", "create", "dml-pool", "--type", "process"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert pool.returncode == 0, pool.stdout + pool.stderr
        deploy = subprocess.run([PREFECT, "--no-prompt", "deploy", "--all"], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=300)
        assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
        mlflow_db = tmp / "mlflow.db"
        worker_env = dict(env, MLFLOW_TRACKING_URI=f"sqlite:///{mlflow_db}")
        # The worker starts somewhere else than the project: the deployment must say where.
        worker = processes.start([PREFECT, "worker", "start", "--pool", "dml-pool"], worker_env, tmp / "worker.log", cwd=tmp)
        print(f"prefect server, pool, deploy and worker up in {time.perf_counter() - started:.0f} s")
        yield SimpleNamespace(env=env, tmp=tmp, deploy=deploy, mlflow_uri=f"sqlite:///{mlflow_db}", worker_log=tmp / "worker.log")
    finally:
        processes.stop(worker)
        processes.stop(server)


def run_deployment(prefect, *params: str, timeout: float = 1200) -> tuple[str, str]:
    """`prefect deployment run dml-sweep/default -p ...`, then wait: (final state, message)."""
    args = [PREFECT, "deployment", "run", "dml-sweep/default"]
    for p in params:
        args += ["-p", p]
    run = subprocess.run(args, env=prefect.env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    flow_run_id = next(line.split()[-1] for line in run.stdout.splitlines() if "UUID" in line)
    deadline = time.time() + timeout
    while time.time() < deadline:
        state, message = flow_run_state(prefect, flow_run_id)
        if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return state, message
        time.sleep(5)
    raise AssertionError(f"flow run {flow_run_id} still {state} after {timeout} s: {prefect.worker_log.read_text()[-3000:]}")


def flow_run_state(prefect, flow_run_id: str) -> tuple[str, str]:
    code = (
        "import asyncio, json\n"
        "from prefect.client.orchestration import get_client\n"
        "async def main():\n"
        "    async with get_client() as c:\n"
        f"        r = await c.read_flow_run('{flow_run_id}')\n"
        "        print(json.dumps([r.state.type.value if r.state else 'NONE', r.state.message if r.state else '']))\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=prefect.env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return tuple(json.loads(out.stdout.strip().splitlines()[-1]))


def test_a_plain_deploy_points_the_workers_at_the_project(prefect):
    code = (
        "import asyncio, json\n"
        "from prefect.client.orchestration import get_client\n"
        "async def main():\n"
        "    async with get_client() as c:\n"
        "        for name in ('default', 'full', 'paper'):\n"
        "            d = await c.read_deployment_by_name(f'dml-sweep/{name}')\n"
        "            print(json.dumps(d.pull_steps))\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=prefect.env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    for line in out.stdout.strip().splitlines():
        assert json.loads(line) == [{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}]


def test_the_deployment_runs_to_completed_with_its_runs_in_mlflow(prefect):
    from mlflow.tracking import MlflowClient

    started = time.perf_counter()
    state, message = run_deployment(
        prefect, "profile=smoke", 'overrides={"mlflow.experiment": "deploy-e2e"}', f"report_dir={prefect.tmp / 'report'}",
    )
    print(f"smoke sweep through the deployment: {state} in {time.perf_counter() - started:.0f} s")
    assert state == "COMPLETED", f"{message}\n{prefect.worker_log.read_text()[-4000:]}"
    client = MlflowClient(tracking_uri=prefect.mlflow_uri)
    exp = client.get_experiment_by_name("deploy-e2e")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert "C4" in parents[0].data.tags["mlflow.note.content"]  # the description lists the comparisons
    smoke = load_profile(ROOT / "params.yaml", "smoke")[1]
    finals = len(smoke.trials()) + len(study_trials(smoke, None))  # the final runs and the convergence study's
    assert len(children) == finals and all(r.info.status == "FINISHED" for r in children)
    names = [r.info.run_name for r in children]
    assert len(set(names)) == len(names)
    assert {"contrastive-seed0", "contrastive_pos_margin-seed0", "contrastive_binned-seed0"} <= set(names)
    assert (prefect.tmp / "report" / "report.md").is_file()


def test_the_deployment_stops_before_any_trial_naming_a_damaged_shard(prefect):
    from flows.data import ensure_prepared

    ensure_prepared(ROOT / "params.yaml", {"default": "prepared/fashion_mnist"}, ROOT)  # the copy's source
    copy = prefect.tmp / "damaged"
    shutil.copytree(ROOT / "prepared" / "fashion_mnist", copy)
    shard = copy / "eval-00000.arrow"
    with open(shard, "r+b") as f:  # cut short, as an interrupted copy leaves it
        f.truncate(100_000)
    overrides = json.dumps({"datasets.default": str(copy), "mlflow.experiment": "deploy-damaged"})
    state, message = run_deployment(prefect, "profile=smoke", f"overrides={overrides}", f"report_dir={prefect.tmp / 'damaged-report'}")
    assert state == "FAILED" and str(shard) in message, message
    from mlflow.tracking import MlflowClient

    assert MlflowClient(tracking_uri=prefect.mlflow_uri).get_experiment_by_name("deploy-damaged") is None
    assert not (prefect.tmp / "damaged-report").exists()
