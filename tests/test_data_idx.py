"""IDX reading: round trip, and clear errors on truncated or foreign files."""
import gzip

import numpy as np
import pytest

from dml_core.data.idx import read_idx, write_idx


@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_round_trip(tmp_path, suffix, dtype):
    a = (np.arange(2 * 3 * 4) * 3).astype(dtype).reshape(2, 3, 4)
    path = write_idx(tmp_path / f"a-idx3-ubyte{suffix}", a)
    b = read_idx(path)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def test_write_is_deterministic(tmp_path):
    a = np.arange(100, dtype=np.uint8)
    p1, p2 = write_idx(tmp_path / "1.gz", a), write_idx(tmp_path / "2.gz", a)
    assert p1.read_bytes() == p2.read_bytes()


def test_truncated_gzip_names_the_file(tmp_path):
    path = write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((50, 28, 28), np.uint8) + 7)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz.*truncated"):
        read_idx(path)


def test_payload_shorter_than_header_says(tmp_path):
    path = write_idx(tmp_path / "x.gz", np.zeros((10, 4, 4), np.uint8))
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-5]))
    with pytest.raises(ValueError, match=r"x\.gz is truncated.*\(10, 4, 4\)"):
        read_idx(path)


def test_not_an_idx_file(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(b"<html>not found</html>"))
    with pytest.raises(ValueError, match="labels.gz is not an IDX file"):
        read_idx(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.gz"):
        read_idx(tmp_path / "nope.gz")
