"""Reader and writer for the IDX format of MNIST and Fashion-MNIST (optionally gzipped).

Layout (LeCun et al., http://yann.lecun.com/exdb/mnist/; reused unchanged by Fashion-MNIST,
Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747): a 4-byte magic number ``0x00 0x00 <type>
<ndim>``, then ``ndim`` big-endian uint32 dimension sizes, then the array in C order.
Fashion-MNIST's images are ``ubyte`` [N, 28, 28] and its labels ``ubyte`` [N].

The whole file is decompressed in one call and viewed with ``np.frombuffer``: 70,000 images
read in well under a second, with no Python loop over items or pixels.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

# IDX type byte -> big-endian NumPy dtype.
_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in _DTYPES.items()}


def _read_bytes(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"IDX file not found: {path}") from None
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
        # A download cut short ends the gzip stream early ("Compressed file ended before
        # the end-of-stream marker was reached"): say which file, not just what zlib saw.
        raise ValueError(f"{path} is truncated or not a valid gzip file: {e}") from e


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX (or IDX.gz) file into a native-endian NumPy array.

    Raises FileNotFoundError when the file is missing and ValueError, naming the file, when
    it is truncated, has a bad magic number, or holds fewer bytes than its header promises.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(f"{path} is truncated: {len(data)} bytes, not even an IDX header")
    zero, type_code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or type_code not in _DTYPES or ndim == 0:
        raise ValueError(
            f"{path} is not an IDX file (magic bytes {data[:4].hex()}; expected 0000<type><ndim>)"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path} is truncated inside its header ({len(data)} < {header} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _DTYPES[type_code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise ValueError(
            f"{path} is {what}: {len(data)} bytes, header {shape} of {dtype.name} needs {expected}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as IDX, gzipped when ``path`` ends in .gz (used to build test fixtures).

    The gzip header's timestamp is fixed at 0 so the same array gives the same bytes.
    """
    path = Path(path)
    array = np.ascontiguousarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODES:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    code = _CODES[native]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + array.astype(_DTYPES[code], copy=False).tobytes()
    if path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
    return path
