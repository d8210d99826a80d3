"""C++ kernels beside the Python ones, compiled on first use for the machine that runs them.

A source `dml_core/kernels/<name>.cpp` exporting plain C functions (pointers and sizes, no
torch headers, so a build takes about a second) is compiled with the system's C++ compiler at
-O3 -march=native into a cache directory, and loaded with ctypes. The cache key hashes the
source, the compiler's version, the flags and the CPU's feature flags, so a home directory
shared by machines of different CPUs never loads a library built for another.

`library(name)` returns the loaded library, or None where it cannot be built (no compiler:
`make compiler` installs one) or is switched off (DML_NATIVE_KERNELS=0, for an A/B timing);
the caller then runs its torch path. Which of the two a process runs is logged once.
A build writes to a temporary name and renames, so concurrent trials never load half a file.
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

FLAGS = ["-O3", "-march=native", "-std=c++17", "-fPIC", "-shared", "-fno-math-errno"]
HERE = Path(__file__).resolve().parent


def enabled() -> bool:
    """False where DML_NATIVE_KERNELS is 0/false/off: every caller then runs its torch path."""
    return os.environ.get("DML_NATIVE_KERNELS", "1").strip().lower() not in ("0", "false", "off", "no")


def cache_dir() -> Path:
    root = os.environ.get("DML_KERNEL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "dml", "kernels")
    return Path(root)


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def build(source: Path) -> Path:
    """The shared library of the C++ file `source` for this machine: built if the cache lacks
    it. Raises RuntimeError naming the source and the compiler's message when the build fails,
    FileNotFoundError when no C++ compiler is on PATH."""
    source = Path(source)
    name = source.stem
    compiler = _compiler()
    if compiler is None:
        raise FileNotFoundError("no C++ compiler (g++, c++ or clang++; or set CXX) on PATH")
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256("\0".join([source.read_text(), version, " ".join(FLAGS), _cpu_flags()]).encode()).hexdigest()[:16]
    target = cache_dir() / f"{name}-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        done = subprocess.run([compiler, *FLAGS, str(source), "-o", tmp], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"building {source} with {compiler} failed:\n{done.stderr.strip()[-2000:]}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


@lru_cache(maxsize=None)
def library(name: str) -> ctypes.CDLL | None:
    """The loaded kernel library `name`, or None (logged once) where it is off or cannot be built."""
    if not enabled():
        log.info("native kernel %s off (DML_NATIVE_KERNELS=%s): torch's kernels run instead",
                 name, os.environ.get("DML_NATIVE_KERNELS"))
        return None
    try:
        path = build(HERE / f"{name}.cpp")
        log.info("native kernel %s: %s", name, path)
        return ctypes.CDLL(str(path))
    except (FileNotFoundError, RuntimeError, OSError) as exc:
        log.warning("native kernel %s unavailable, torch's kernels run instead: %s", name, exc)
        return None
