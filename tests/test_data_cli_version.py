"""The `python -m dml_core.data` entry point, params.yaml's data: section, and data_version."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dml_core.data import data_version, prepare_dataset, source_options
from dml_core.data.__main__ import main
from dml_core.data.config import dataset_jobs
from dml_core.data.synthetic import write_fashion_mnist

REPO = Path(__file__).resolve().parents[1]


def write_params(tmp_path, data):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"data": data, "train": {"other": "section"}}))
    return path


@pytest.fixture
def params(tmp_path):
    write_fashion_mnist(tmp_path / "raw", per_class=(2, 1))
    return write_params(
        tmp_path,
        {
            "out_root": "out",
            "datasets": {
                "fm": {"source": "fashion_mnist", "raw_dir": "raw", "val_classes": 1},
                "rotation": {"raw_dir": "raw", "seed": 2, "val_classes": 0},
            },
        },
    )


def test_prepare_from_params(params, capsys):
    assert main(["prepare", "--params", str(params)]) == 0
    out = capsys.readouterr().out
    root = params.parent / "out"
    assert sorted(p.name for p in root.iterdir()) == ["fm", "rotation"]
    assert f"version {data_version(root / 'fm')}" in out
    assert main(["version", str(root / "rotation")]) == 0
    assert capsys.readouterr().out.strip() == data_version(root / "rotation")


def test_prepare_only_some(params):
    assert main(["prepare", "--params", str(params), "--only", "rotation"]) == 0
    assert [p.name for p in (params.parent / "out").iterdir()] == ["rotation"]


def test_module_runs_as_a_subprocess(params):
    r = subprocess.run(
        [sys.executable, "-m", "dml_core.data", "prepare", "--params", str(params), "--only", "fm"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "fm: train 12 rows / 4 classes, val 3 rows / 1 classes, eval 15 rows / 5 classes" in r.stdout


@pytest.mark.parametrize(
    "data, match",
    [
        ({"out_root": "o", "datasets": {"fm": {"source": "fashion_mnist", "raw_dir": "raw", "bogus": 1}}}, "unknown option 'bogus'"),
        ({"out_root": "o", "datasets": {"fm": {"source": "mnist"}}}, "unknown dataset source name 'mnist'"),
        ({"outroot": "o", "datasets": {"fm": {}}}, "unknown key data.outroot; known keys: out_root, datasets"),
        ({"datasets": {}}, "data.datasets must map dataset names"),
        ({"out_root": "o", "datasets": {"fm": {"source": "fashion_mnist", "raw_dir": "missing"}}}, "apt-get install -y dataset-fashion-mnist"),
    ],
)
def test_bad_params_exit_2_with_a_message(tmp_path, capsys, data, match):
    path = write_params(tmp_path, data)
    assert main(["prepare", "--params", str(path)]) == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_missing_params_file(tmp_path, capsys):
    assert main(["prepare", "--params", str(tmp_path / "nope.yaml")]) == 2
    assert "params file" in capsys.readouterr().err


def test_relative_paths_are_taken_from_the_params_file(params):
    jobs = {j["name"]: j for j in dataset_jobs(params)}
    assert jobs["fm"]["raw_dir"] == params.parent / "raw"
    assert jobs["fm"]["out_dir"] == params.parent / "out" / "fm"
    assert jobs["rotation"]["source"] == "rotation" and jobs["rotation"]["params"] == {"seed": 2, "val_classes": 0}


def test_data_version_is_dvcs_directory_hash(tmp_path):
    dvc_build = pytest.importorskip("dvc_data.hashfile.build")
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.local import LocalFileSystem

    raw = write_fashion_mnist(tmp_path / "raw", per_class=(2, 1))
    out = tmp_path / "prepared"
    prepare_dataset("fashion_mnist", raw, out, shard_size=5)
    (out / "sub").mkdir()  # nested files are hashed the way DVC does too
    (out / "sub" / "x.txt").write_text("x")
    fs = LocalFileSystem()
    _, _, obj = dvc_build.build(HashFileDB(fs, str(tmp_path / "odb")), str(out), fs, "md5")
    assert data_version(out) == obj.hash_info.value
    assert data_version(out).endswith(".dir")


def test_data_version_of_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="prepare the dataset first"):
        data_version(tmp_path / "absent")


# --- the repository's pipeline files ------------------------------------------------------


def test_repo_params_drive_valid_preparations():
    jobs = dataset_jobs(REPO / "params.yaml")
    names = {j["name"]: j for j in jobs}
    assert {"fashion_mnist", "rotation"} <= set(names)
    for job in jobs:
        known = source_options(job["source"])
        assert set(job["params"]) <= set(known), job["name"]
        assert job["out_dir"].parent == REPO / "prepared"
        # Prepared output lives outside the imported raw folder (DVC would clash otherwise).
        assert REPO / "data" not in job["out_dir"].parents


def test_repo_pipeline_files_agree():
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["prepare"]
    assert stage["cmd"] == "python -m dml_core.data prepare --params params.yaml"
    assert stage["params"] == ["data"]
    jobs = dataset_jobs(REPO / "params.yaml")
    assert sorted(stage["outs"]) == sorted(j["out_dir"].relative_to(REPO).as_posix() for j in jobs)
    raw_dirs = {j["raw_dir"].relative_to(REPO).as_posix() for j in jobs}
    assert raw_dirs <= set(stage["deps"])

    # data.dvc: an *unfrozen* import of the local Debian files into data/fashion-mnist. A
    # frozen import (what `dvc import-url` writes) cannot be reproduced on a fresh clone.
    dvcfile = yaml.safe_load((REPO / "data.dvc").read_text())
    assert not dvcfile.get("frozen", False)
    assert [d["path"] for d in dvcfile["deps"]] == ["/usr/share/datasets/fashion-mnist"]
    assert [o["path"] for o in dvcfile["outs"]] == ["data/fashion-mnist"]

    lock = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]["prepare"]
    params = yaml.safe_load((REPO / "params.yaml").read_text())["data"]
    assert lock["params"]["params.yaml"]["data"] == params, "dvc.lock is stale: run `dvc repro prepare`"
    offline = (REPO / ".dvc" / "config").read_text()
    assert "analytics = false" in offline and "check_update = false" in offline
