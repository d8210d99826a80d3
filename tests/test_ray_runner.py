"""The grid on Ray Tune / Ray Train: real local Ray, a real `ray start` cluster (slow)."""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dml_experiment.grid import expand_grid
from dml_experiment.resources import RayConfig
from dml_experiment.record import FAILED, FINISHED
from dml_experiment.resources import plan_resources


# -- resource arithmetic: no Ray needed ---------------------------------------------------------
def test_single_worker_trials_share_the_cpus():
    plan = plan_resources(RayConfig(), {"CPU": 2.0}, trials=10)
    assert plan.trial_resources == {"cpu": 1.0} and plan.max_concurrent == 2 and plan.threads == 1
    plan = plan_resources(RayConfig(cpus_per_trial=0.5, max_concurrent_trials=3), {"CPU": 2.0}, trials=10)
    assert plan.max_concurrent == 3
    assert plan_resources(RayConfig(), {"CPU": 16.0}, trials=3).max_concurrent == 3


def test_multi_worker_trials_fit_fractional_cpus():
    plan = plan_resources(RayConfig(num_workers=2), {"CPU": 2.0}, trials=4)
    assert plan.trial_resources == {"cpu": 0.05}
    assert 0.05 + 2 * plan.cpus_per_worker <= 2.0 and plan.cpus_per_worker == 0.95
    plan = plan_resources(RayConfig(num_workers=4, max_concurrent_trials=2), {"CPU": 64.0}, trials=4)
    assert plan.cpus_per_worker == 1.0


@pytest.mark.parametrize(
    "cfg,cluster,key",
    [
        (RayConfig(num_workers=2, cpus_per_worker=1.0), {"CPU": 2.0}, "ray.num_workers"),
        (RayConfig(num_workers=3, cpus_per_worker=1.0, max_concurrent_trials=2), {"CPU": 4.0}, "ray.num_workers"),
        (RayConfig(cpus_per_trial=4), {"CPU": 2.0}, "ray.cpus_per_trial"),
        (RayConfig(use_gpu=True), {"CPU": 2.0}, "ray.use_gpu"),
    ],
)
def test_impossible_requests_fail_before_any_trial(cfg, cluster, key):
    with pytest.raises(ValueError, match=re.escape(key)):
        plan_resources(cfg, cluster, trials=2)


# -- real Ray -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from dml_core.data import prepare_dataset
    from dml_core.data.synthetic import write_fashion_mnist

    root = tmp_path_factory.mktemp("ray_tiny")
    prepare_dataset("fashion_mnist", write_fashion_mnist(root / "raw", per_class=(24, 8)), root / "prepared")
    base = dict(
        dataset=str(root / "prepared"),
        model=dict(name="small_cnn", embedding_dim=8, options=dict(width=4)),
        sampler=dict(batch_size=12, m_per_class=4),
        train=dict(epochs=3, max_batches_per_epoch=2),
        eval=dict(ks=[1, 2], every_epoch=False),
    )
    return root, base


def crash_hook(plan_path: str):
    """A Ray worker setup hook: Trial.train_epoch raises once where the plan file says
    ({"seed", "epoch", "marker"}), as a crash would. Injected from outside the code under test."""

    def install() -> None:
        import json
        from pathlib import Path

        from dml_core.training import trial as trial_module

        original = trial_module.Trial.train_epoch

        def train_epoch(self, epoch: int):
            plan = Path(plan_path)
            if plan.is_file() and self.rank == 0:
                spec = json.loads(plan.read_text())
                marker = Path(spec["marker"])
                if self.config.seed == spec["seed"] and epoch == spec["epoch"] and not marker.exists():
                    marker.write_text(f"crashed at epoch {epoch}\n")
                    raise RuntimeError(f"injected crash at the start of epoch {epoch}")
            return original(self, epoch)

        trial_module.Trial.train_epoch = train_epoch

    return install


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """A local Ray whose workers carry the crash hook (inert until a test writes its plan)."""
    import cloudpickle
    import ray

    from dml_experiment.runner import init_ray

    plan = tmp_path_factory.mktemp("crash") / "plan.json"
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    # As init_ray starts it, plus the hook; init_ray then finds Ray running and uses it.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=256 * 1024**2, runtime_env={"worker_process_setup_hook": crash_hook(str(plan))})
    init_ray(RayConfig(num_cpus=2))
    yield plan
    ray.shutdown()


@pytest.mark.slow
def test_grid_runs_every_trial_and_records_failures(tiny, local_ray):
    from dml_core.metrics import load_embeddings
    from dml_experiment.runner import run_grid

    root, base = tiny
    trials = expand_grid(base, dict(losses=["triplet", {"name": "contrastive", "options": {"neg_margin": 1.0}}], miners=[None, "batch_hard"]))
    diverging = {**base, "optimizer": {"name": "sgd", "lr": 1e30, "momentum": 0.0}}
    trials += expand_grid(diverging, dict(losses=["contrastive"]))
    out = run_grid([("grid", t) for t in trials], RayConfig(), name="grid", storage_path=str(root / "ray"))
    assert [o.trial_id for o in out] and len(out) == 5
    ok = [o for o in out if o.status == FINISHED]
    assert len(ok) == 4
    for o in ok:
        assert [row["epoch"] for row in o.history] == [0, 1, 2]
        assert 0 <= o.metrics["recall@1"] <= 1 and "map@r" in o.metrics
        emb, labels = load_embeddings(o.embeddings_path)
        assert emb.shape[1] == 8 and len(labels) == emb.shape[0]
    bad = out[-1]
    assert bad.status == FAILED and "NaN" in bad.error


@pytest.mark.slow
def test_an_interrupted_grid_raises_and_leaves_the_rest_unrecorded(tiny, local_ray):
    """Ctrl-C during the final runs: Ray Tune stops and returns from fit(). The trials that
    ended were recorded as they ended; the others must not come back as failed records (a
    resume would not run them) nor as a grid to report: the grid raises."""
    from dml_experiment.runner import GridInterrupted, run_grid

    root, base = tiny
    trials = expand_grid(base, dict(losses=["triplet"], seeds=[11, 12, 13, 14, 15, 16]))
    ended = []

    def interrupt(record):
        ended.append(record)
        if len(ended) == 1:
            os.kill(os.getpid(), signal.SIGINT)

    try:
        with pytest.raises(GridInterrupted, match="run the same sweep again"):
            run_grid([("grid", t) for t in trials], RayConfig(), name="interrupted", storage_path=str(root / "ray"),
                     progress=False, on_trial_end=interrupt)
    except KeyboardInterrupt:
        pytest.fail("the SIGINT reached the test: Ray Tune did not take it")
    assert 1 <= len(ended) < len(trials) and ended[0].status == FINISHED


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_a_crashed_trial_resumes_to_the_same_result(tiny, local_ray, workers):
    from dml_experiment.runner import run_grid

    root, base = tiny
    trial = expand_grid(base, dict(losses=["triplet"], miners=["random"], seeds=[5]))
    marker = root / f"crash-{workers}.marker"
    cfg = RayConfig(num_workers=workers, max_failures=1)
    a = run_grid([("triplet", t) for t in trial], cfg, name=f"clean-{workers}", storage_path=str(root / "ray"))[0]
    local_ray.write_text(json.dumps({"seed": 5, "epoch": 1, "marker": str(marker)}))
    try:
        b = run_grid([("triplet", t) for t in trial], cfg, name=f"crash-{workers}", storage_path=str(root / "ray"))[0]
    finally:
        local_ray.unlink()
    assert marker.exists(), "the crash hook never fired"
    assert a.status == b.status == FINISHED
    assert a.metrics == b.metrics
    assert [r["train/loss"] for r in a.history] == [r["train/loss"] for r in b.history]


RAY_BIN = Path(sys.executable).with_name("ray")


@pytest.mark.slow
def test_grid_runs_on_a_cluster_given_by_ray_address(tiny, tmp_path):
    """A real `ray start --head` in its own temp dir, token auth on, two trials through it."""
    root, base = tiny
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home), RAY_AUTH_MODE="token")
    env.pop("RAY_ADDRESS", None)
    subprocess.run([str(RAY_BIN), "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=60)
    temp = Path("/tmp") / f"dmlray{os.getpid()}"
    # A session of its own: every daemon `ray start` leaves behind keeps this session id,
    # so the cleanup can find them all (some rename themselves, e.g. ray::DashboardAgent).
    proc = subprocess.Popen(
        [str(RAY_BIN), "start", "--head", "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={temp}", "--port=0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    out, err = proc.communicate(timeout=120)
    start = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    try:
        assert start.returncode == 0, start.stderr[-2000:]
        address = re.search(r"--address='([^']+)'", start.stdout + start.stderr).group(1)
        script = textwrap.dedent(
            f"""
            import json
            from dml_experiment.grid import expand_grid
            from dml_experiment.resources import RayConfig
            from dml_experiment.runner import run_grid
            trials = expand_grid({base!r}, dict(losses=["triplet"], seeds=[0, 1]))
            out = run_grid([("grid", t) for t in trials], RayConfig(), name="cluster", storage_path={str(tmp_path / 'ray')!r}, progress=False)
            import ray
            print("NODES", len(ray.nodes()), "STATUS", json.dumps([o.status for o in out]))
            """
        )
        run = subprocess.run([sys.executable, "-c", script], env={**env, "RAY_ADDRESS": address}, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        assert 'STATUS ["finished", "finished"]' in run.stdout
    finally:
        stop_cluster(temp, proc.pid)


def stop_cluster(temp: Path, session: int) -> None:
    """Kill the head's processes (its session, or --temp-dir in their arguments), not every
    Ray on the machine: `ray stop` would also end other clusters; gcs_server ignores SIGTERM."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid,sid,args"], capture_output=True, text=True).stdout
    pids = []
    for line in out.splitlines()[1:]:
        pid, sid, args = line.split(None, 2) if len(line.split(None, 2)) == 3 else (*line.split(), "")
        if int(sid) == session or str(temp) in args:
            pids.append(int(pid))
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.5)
