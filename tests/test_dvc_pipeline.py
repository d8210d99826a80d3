"""`dvc repro` runs the whole comparison in a fresh clone; push/pull through the local remote."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FASHION = Path("/usr/share/datasets/fashion-mnist")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").exists(), reason="needs dataset-fashion-mnist (apt-get install -y dataset-fashion-mnist)"),
]


def committed() -> bool:
    out = subprocess.run(["git", "ls-files", "dvc.yaml", "dvc.lock", "params.yaml", "flows/sweep.py"], cwd=ROOT, capture_output=True, text=True)
    return len(out.stdout.split()) == 4


def env_for(clone: Path) -> dict:
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", MLFLOW_TRACKING_URI=f"sqlite:///{clone}/mlflow.db")
    env.pop("PYTHONPATH", None)
    return env


def dvc(clone: Path, *args: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    out = subprocess.run([str(BIN / "dvc"), *args], cwd=clone, env=env_for(clone), capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"dvc {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def clone_to(tmp: Path, name: str) -> Path:
    dest = tmp / name
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True, timeout=120)
    return dest


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    if not committed():
        pytest.skip("dvc.yaml, dvc.lock, params.yaml and flows/ are not all committed yet")
    tmp = tmp_path_factory.mktemp("dvc")
    clone = clone_to(tmp, "a")
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["sweep"]["profile"] = "smoke"  # the tiny profile: every comparison, one seed
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    first = dvc(clone, "repro")
    return tmp, clone, first


def test_dvc_repro_runs_the_comparison_offline(reproduced):
    _, clone, first = reproduced
    assert "Running stage 'sweep'" in first.stdout and "Running stage 'report'" in first.stdout
    report = (clone / "reports/dvc/report.md").read_text()
    assert all(f"C{i}" in report for i in range(1, 10))
    status = dvc(clone, "status")
    assert "up to date" in status.stdout, status.stdout
    metrics = dvc(clone, "metrics", "show", "--json")
    shown = json.dumps(json.loads(metrics.stdout))
    assert all(f'"C{i}"' in shown for i in range(1, 10)), shown[:2000]


def test_a_second_repro_runs_no_stage(reproduced):
    _, clone, _ = reproduced
    again = dvc(clone, "repro")
    assert "Running stage" not in again.stdout, again.stdout


def test_push_and_pull_restore_the_prepared_data(reproduced):
    tmp, clone, _ = reproduced
    remote = tmp / "remote"
    dvc(clone, "remote", "modify", "--local", "local", "url", str(remote))
    dvc(clone, "push")
    other = clone_to(tmp, "b")
    dvc(other, "remote", "modify", "--local", "local", "url", str(remote))
    dvc(other, "pull", "prepare")
    from dml_core.data import data_version

    for name in ("fashion_mnist", "rotation"):
        assert (other / "prepared" / name / "card.json").is_file()
        assert data_version(other / "prepared" / name) == data_version(clone / "prepared" / name)
