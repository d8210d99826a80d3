"""Damaged prepared data is caught before any trial, with the file named: by the check
against the card's checksums, by `ensure_prepared` (prepare again or stop), by `dml sweep`
and by the flow. A data error inside a trial names the file; a sweep whose trials all fail
for one cause exits non-zero and says the cause once."""
from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dml_core.data import PreparedDataset, data_version, prepare_dataset
from dml_core.data.synthetic import write_fashion_mnist
from dml_core.data.version import DataIntegrityError, verify_prepared
from flows.data import ensure_prepared

ROOT = Path(__file__).resolve().parent.parent
DML = str(Path(sys.executable).with_name("dml"))
SHARD = "eval-00000.arrow"


def truncate(path: Path) -> None:
    """Cut the file to half its size, as an interrupted copy would."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def change_one_byte(path: Path) -> None:
    """Flip one pixel byte in the middle: still a valid Arrow file, other data."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {"truncated": truncate, "one byte changed": change_one_byte}


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return write_fashion_mnist(tmp_path_factory.mktemp("raw") / "fashion-mnist", per_class=(24, 8))


@pytest.fixture
def project(tmp_path, raw) -> Path:
    """A params.yaml whose data section prepares the synthetic set into prepared/fashion_mnist."""
    params = {"data": {"out_root": "prepared", "datasets": {"fashion_mnist": {
        "source": "fashion_mnist", "raw_dir": str(raw), "train_classes": 5, "val_classes": 2, "shard_size": 40}}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    prepare_dataset("fashion_mnist", raw, tmp_path / "prepared" / "fashion_mnist", train_classes=5, val_classes=2, shard_size=40)
    return tmp_path


def damaged_copy(source: Path, into: Path, damage: str) -> Path:
    """A copy of a prepared dataset with `damage` done to its shard SHARD."""
    out = into / "damaged"
    shutil.copytree(source, out)
    DAMAGE[damage](out / SHARD)
    return out


# -- the check (fast) -----------------------------------------------------------------------------
@pytest.mark.parametrize("damage", DAMAGE)
def test_the_card_checksums_catch_a_damaged_shard_and_name_it(project, damage):
    data = project / "prepared" / "fashion_mnist"
    verify_prepared(data)  # intact: silent
    DAMAGE[damage](data / SHARD)
    with pytest.raises(DataIntegrityError) as e:
        verify_prepared(data)
    assert str(data / SHARD) in str(e.value) and "the card recorded sha256:" in str(e.value)
    assert "train-00000.arrow" not in str(e.value)  # only the damaged one is named


def test_a_missing_shard_and_a_broken_card_are_named(project):
    data = project / "prepared" / "fashion_mnist"
    (data / SHARD).unlink()
    with pytest.raises(DataIntegrityError, match=f"{data / SHARD}: missing"):
        verify_prepared(data)
    (data / "card.json").write_text("{not json")
    with pytest.raises(DataIntegrityError, match=f"{data / 'card.json'}: not a readable dataset card"):
        verify_prepared(data)


@pytest.mark.parametrize("damage", DAMAGE)
def test_ensure_prepared_prepares_a_damaged_dataset_again(project, damage):
    data = project / "prepared" / "fashion_mnist"
    version = data_version(data)
    DAMAGE[damage](data / SHARD)
    warnings = CollectingLogger()
    versions = ensure_prepared(project / "params.yaml", {"default": "prepared/fashion_mnist"}, project, logger=warnings)
    assert versions == {"default": version}  # the same bytes as before the damage
    assert any(str(data / SHARD) in m and "preparing" in m for m in warnings.messages)
    verify_prepared(data)


@pytest.mark.parametrize("damage", DAMAGE)
def test_ensure_prepared_stops_naming_the_file_when_nothing_can_prepare_it_again(project, tmp_path_factory, damage):
    copy = damaged_copy(project / "prepared" / "fashion_mnist", tmp_path_factory.mktemp("elsewhere"), damage)
    with pytest.raises(DataIntegrityError) as e:
        ensure_prepared(project / "params.yaml", {"default": str(copy)}, project)
    assert str(e.value).startswith("datasets.default: ") and str(copy / SHARD) in str(e.value)
    assert "no data.datasets entry of params.yaml writes it" in str(e.value)


def test_a_version_other_than_the_one_in_dvc_lock_is_reported(project):
    stale = "0" * 32 + ".dir"
    lock = {"schema": "2.0", "stages": {"prepare": {"outs": [{"path": "prepared/fashion_mnist", "md5": stale}]}}}
    (project / "dvc.lock").write_text(yaml.safe_dump(lock))
    warnings = CollectingLogger()
    versions = ensure_prepared(project / "params.yaml", {"default": "prepared/fashion_mnist"}, project, logger=warnings)
    assert versions["default"] != stale
    assert any(f"dvc.lock records {stale}" in m for m in warnings.messages)


def test_a_data_error_inside_a_trial_names_the_file(project):
    data = project / "prepared" / "fashion_mnist"
    truncate(data / SHARD)
    with pytest.raises(ValueError, match=f"{data / SHARD}: not a readable shard .*ArrowInvalid"):
        PreparedDataset(data, "eval")


def test_failure_summary_gives_each_cause_once():
    from flows.sweep import failure_summary

    err = "ValueError: /d/train-00000.arrow holds 40 rows, the card says 41"
    assert failure_summary([{"status": "failed", "error": err}] * 3) == f"all 3 trials failed with the same error: {err}"
    mixed = failure_summary([{"status": "failed", "error": "A"}, {"status": "failed", "error": "B"}, {"status": "failed", "error": "B"}])
    assert mixed == "all 3 trials failed; causes: [2 trial(s)] B; [1 trial(s)] A"
    assert failure_summary([{"status": "failed", "error": "A"}, {"status": "finished", "error": None}]) is None
    assert failure_summary([]) is None


class CollectingLogger(logging.Logger):
    """A real logger that also keeps its formatted messages."""

    def __init__(self):
        super().__init__("collect", logging.DEBUG)
        self.messages: list[str] = []

    def handle(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


# -- dml sweep and the flow (slow: they start Prefect) ---------------------------------------------
def mlflow_runs(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        try:
            return con.execute("select count(*) from runs").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


@pytest.mark.slow
@pytest.mark.parametrize("damage", DAMAGE)
def test_dml_sweep_stops_before_any_trial_naming_the_damaged_file(project, tmp_path, damage):
    copy = damaged_copy(project / "prepared" / "fashion_mnist", tmp_path, damage)
    db = tmp_path / "mlflow.db"
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{db}")
    out = subprocess.run(
        [DML, "sweep", "--profile", "smoke", "--set", f"datasets.default={copy}", "--out", str(tmp_path / "report")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 2, out.stdout[-3000:] + out.stderr[-3000:]
    error = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and str(copy / SHARD) in error[0], out.stderr[-3000:]
    assert "trials" not in out.stdout + out.stderr  # the sweep never got to its trials
    assert mlflow_runs(db) == 0 and not (tmp_path / "report").exists()


@pytest.mark.slow
@pytest.mark.parametrize("damage", DAMAGE)
def test_the_flow_stops_before_any_trial_naming_the_damaged_file(project, tmp_path, monkeypatch, damage):
    from flows.sweep import dml_sweep

    copy = damaged_copy(project / "prepared" / "fashion_mnist", tmp_path, damage)
    db = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    with pytest.raises(DataIntegrityError) as e:
        dml_sweep(profile="smoke", overrides={"datasets.default": str(copy)}, report_dir=str(tmp_path / "report"))
    assert str(copy / SHARD) in str(e.value)
    assert mlflow_runs(db) == 0 and not (tmp_path / "report").exists()


@pytest.mark.slow
def test_a_sweep_whose_trials_all_fail_for_one_cause_exits_non_zero_saying_it_once(project, tmp_path):
    # The shards are intact (the checksums pass), but the card lies about a shard's rows:
    # every trial fails opening it, with the same error.
    data = tmp_path / "lying"
    shutil.copytree(project / "prepared" / "fashion_mnist", data)
    card = json.loads((data / "card.json").read_text())
    shard = next(s for s in card["shards"] if s["split"] == "train")
    shard["rows"] += 1
    (data / "card.json").write_text(json.dumps(card))
    db = tmp_path / "mlflow.db"
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{db}")
    methods = {"contrastive": {"loss": {"name": "contrastive"}}, "triplet_all": {"loss": {"name": "triplet"}}}
    out = subprocess.run(
        [DML, "sweep", "--profile", "smoke", "--set", f"datasets.default={data}", "--set", f"methods={json.dumps(methods)}",
         "--set", "comparisons={}", "--set", "sampler.m_per_class=4", "--set", "sampler.batch_size=12",
         "--set", "mlflow.experiment=all-fail", "--out", str(tmp_path / "report")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    error = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    cause = f"{data / shard['file']} holds {shard['rows'] - 1} rows, the card says {shard['rows']}"
    assert len(error) == 1 and "all 2 trials failed with the same error" in error[0] and cause in error[0], out.stderr[-3000:]
    assert (out.stdout + out.stderr).count(cause) <= 2  # the error line and the flow run's final state only
    with sqlite3.connect(db) as con:  # the parent run says it failed; both trials are recorded
        statuses = sorted(r[0] for r in con.execute("select status from runs"))
    assert statuses == ["FAILED", "FAILED", "FAILED"]
