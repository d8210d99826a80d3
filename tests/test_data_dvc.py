"""End to end: a fresh clone reproduces the prepared data with DVC, offline, from local files.

Clones the repository under test (its committed HEAD) into a temporary directory, with no
DVC cache and with network access blocked by an unusable proxy, and runs `dvc repro prepare`:
the unfrozen import in data.dvc copies /usr/share/datasets/fashion-mnist, the prepare stage
builds prepared/. Afterwards `dvc status` and `git status` must be clean (the committed
dvc.lock matches byte for byte, so preparation is deterministic), and a second `dvc repro`
must run nothing.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dml_core.data import data_version
from dml_core.data.fashion_mnist import DEFAULT_RAW_DIR

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(cmd, cwd, env=None, check=True):
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check and r.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


@pytest.mark.slow
def test_fresh_clone_reproduces_prepare_offline(tmp_path):
    if not all((DEFAULT_RAW_DIR / f"{p}-{k}-ubyte.gz").is_file() for p in ("train", "t10k") for k in ("images-idx3", "labels-idx1")):
        pytest.skip(f"Fashion-MNIST not in {DEFAULT_RAW_DIR}: run `apt-get update && apt-get install -y dataset-fashion-mnist` as root")
    dvc = BIN / "dvc"
    if not dvc.exists():
        dvc = Path(shutil.which("dvc") or "")
        if not dvc.is_file():
            pytest.skip("dvc is not installed")
    if not (REPO / ".git").exists() or run(["git", "rev-parse", "HEAD"], REPO, check=False).returncode:
        pytest.skip(f"{REPO} has no git commit to clone")
    tracked = run(["git", "ls-files", "data.dvc", "dvc.yaml", "dvc.lock", "params.yaml"], REPO).stdout.split()
    if len(tracked) < 4:
        pytest.skip(f"data.dvc, dvc.yaml, dvc.lock and params.yaml are not all committed yet (found {tracked})")

    clone = tmp_path / "clone"
    run(["git", "clone", "--quiet", str(REPO), str(clone)], tmp_path)
    env = {
        **os.environ,
        # The stage runs `python`: the interpreter running this test, with dml_core and pyarrow.
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "DVC_STUDIO_OFFLINE": "1",
        # Offline: any attempt to reach the network fails at once.
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "NO_PROXY": "",
        "GIT_TERMINAL_PROMPT": "0",
    }
    env.pop("PYTHONPATH", None)
    assert not (clone / ".dvc" / "cache").exists()
    # The stage must run the clone's code, not the checkout this test came from.
    where = run([sys.executable, "-c", "import dml_core.data as d; print(d.__file__)"], clone, env).stdout
    assert Path(where.strip()).is_relative_to(clone), where

    repro = run([str(dvc), "repro", "prepare"], clone, env)
    assert "Running stage 'prepare'" in repro.stdout, repro.stdout

    # Only the prepare stage (and data.dvc, which it depends on) ran: the sweep and report
    # stages downstream are test_dvc_pipeline.py's.
    status = run([str(dvc), "status", "prepare"], clone, env)
    assert "Data and pipelines are up to date." in status.stdout, status.stdout
    git_status = run(["git", "status", "--porcelain"], clone, env).stdout
    assert git_status == "", f"the fresh clone is dirty after dvc repro:\n{git_status}\n" + run(["git", "diff"], clone, env).stdout

    again = run([str(dvc), "repro", "prepare"], clone, env)
    assert "Running stage" not in again.stdout and "Importing" not in again.stdout, again.stdout
    assert "Data and pipelines are up to date." in again.stdout

    # The data version recorded by DVC is what data_version() computes.
    lock = yaml.safe_load((clone / "dvc.lock").read_text())["stages"]["prepare"]
    for out in lock["outs"]:
        assert data_version(clone / out["path"]) == out["md5"], out["path"]
