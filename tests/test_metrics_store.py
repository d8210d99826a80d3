"""Embeddings + labels to and from Parquet; writes are atomic (temp file, then rename)."""
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from dml_core.metrics import evaluate, load_embeddings, load_metadata, save_embeddings


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_class_labels(tmp_path, dtype):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 7)).astype(dtype)
    y = rng.integers(-5, 5, 50)
    path = save_embeddings(tmp_path / "e.parquet", x, y, metadata={"run": "r1", "split": "test"})
    x2, y2 = load_embeddings(path)
    assert x2.dtype == dtype and x2.shape == (50, 7) and y2.dtype == np.int64
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)
    assert load_metadata(path) == {"run": "r1", "split": "test"}
    assert evaluate(x2, y2) == evaluate(x, y)  # stored now, evaluated later: same numbers


@pytest.mark.parametrize("labels", [np.linspace(0, 1, 20), np.arange(40.0).reshape(20, 2)])
def test_round_trip_continuous_labels_and_torch_input(tmp_path, labels):
    x = torch.randn(20, 3)
    save_embeddings(tmp_path / "c.parquet", x, torch.from_numpy(labels))
    x2, y2 = load_embeddings(tmp_path / "c.parquet")
    np.testing.assert_array_equal(x2, x.numpy())
    np.testing.assert_array_equal(y2, labels)
    assert y2.shape == labels.shape


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "e.parquet"
    save_embeddings(path, np.ones((3, 2), np.float32), np.arange(3))

    def broken(table, where, **kwargs):
        where.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        save_embeddings(path, np.zeros((5, 2), np.float32), np.arange(5))
    monkeypatch.undo()
    x, y = load_embeddings(path)
    assert x.shape == (3, 2) and (x == 1).all()
    assert os.listdir(tmp_path) == ["e.parquet"]


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="NaN or inf"):
        save_embeddings(tmp_path / "a.parquet", np.array([[np.nan, 1.0]]), np.array([0]))
    with pytest.raises(ValueError, match="labels has shape"):
        save_embeddings(tmp_path / "a.parquet", np.ones((2, 2)), np.array([0]))
    with pytest.raises(ValueError, match="metadata must map str to str"):
        save_embeddings(tmp_path / "a.parquet", np.ones((2, 2)), np.array([0, 1]), metadata={"a": 1})
    pq.write_table(__import__("pyarrow").table({"x": [1, 2]}), tmp_path / "other.parquet")
    with pytest.raises(ValueError, match="not an embeddings file"):
        load_embeddings(tmp_path / "other.parquet")
    assert not (tmp_path / "a.parquet").exists()
