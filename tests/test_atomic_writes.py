"""Every file a sweep writes is written whole or not at all: a temporary sibling renamed onto
the target, removed when the write fails; a full disk is an error naming the path and the
free space. The disk is a real tmpfs of a few KiB (mounted as root; skipped otherwise)."""
from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from pathlib import Path

import pytest
import torch

from dml_experiment.provenance import DiskFull, atomic_file, free_space_text, write_atomic


@contextlib.contextmanager
def small_filesystem(parent: Path, size: str = "64k"):
    """A tmpfs of `size` mounted at a new directory under `parent`, unmounted afterwards.
    Skips the test, saying why, when this process may not mount one."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (run the tests as root to check a full disk)")
    mount_point = parent / f"small-{uuid.uuid4().hex[:6]}"
    mount_point.mkdir(parents=True)
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        pytest.skip(f"could not mount a tmpfs here: {out.stderr.strip() or out.returncode}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, timeout=30)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_a_write_replaces_the_file_whole(tmp_path):
    target = tmp_path / "results.json"
    write_atomic(target, "old")
    write_atomic(target, "new")
    assert target.read_text() == "new" and leftovers(tmp_path) == []


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "results.json"
    write_atomic(target, "old")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(target, "half \udcff")  # fails after the temporary file was opened
    assert target.read_text() == "old" and leftovers(tmp_path) == []
    with pytest.raises(RuntimeError, match="stopped"):
        with atomic_file(tmp_path / "model.pt") as tmp:
            torch.save({"w": torch.zeros(3)}, tmp)
            raise RuntimeError("stopped before the rename")
    assert list(tmp_path.iterdir()) == [target]


def test_a_full_disk_names_the_path_and_the_free_space_and_leaves_nothing(tmp_path):
    with small_filesystem(tmp_path, "64k") as disk:
        target = disk / "records" / "abc.json"
        target.parent.mkdir()
        write_atomic(target, "small")
        with pytest.raises(DiskFull) as e:
            write_atomic(target, "x" * 200_000)
        message = str(e.value)
        assert str(target) in message and "free of" in message and str(disk) in message, message
        assert e.value.errno == 28 and isinstance(e.value, OSError)
        assert target.read_text() == "small" and leftovers(target.parent) == []
        with pytest.raises(DiskFull, match="model.pt"):
            # As dml_experiment.runner saves a model: torch wraps the ENOSPC in its own error.
            with atomic_file(disk / "model.pt") as tmp, open(tmp, "wb") as f:
                torch.save({"w": torch.zeros(100_000)}, f)
        assert sorted(p.name for p in disk.iterdir()) == ["records"]


def test_free_space_is_said_for_a_path_that_does_not_exist_yet(tmp_path):
    text = free_space_text(tmp_path / "not" / "yet" / "there.json")
    assert "free of" in text and str(tmp_path) in text
