import copy
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

# DML_TEST_DEVICE=cuda runs the tests with the tensors they build on that device, so the
# loss, miner and kernel tests check the same code on a GPU (benchmarks/device_check.py).
TEST_DEVICE = os.environ.get("DML_TEST_DEVICE") or None
TESTS_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_LIBRARIES = tuple(os.path.dirname(m.__file__) + os.sep for m in (torch, np))


def _called_from_tests() -> bool:
    """Is the first caller outside torch's and NumPy's own code a file of tests/?"""
    frame = sys._getframe(2)  # 0: this function, 1: the mode's handler
    while frame is not None and frame.f_code.co_filename.startswith(_LIBRARIES):
        frame = frame.f_back
    return frame is not None and frame.f_code.co_filename.startswith(TESTS_DIR)


class OnTestDevice(TorchFunctionMode):
    """Tensors that test code makes with torch's factories (torch.tensor, randn, arange...)
    and no device of their own are made as on the CPU (the same seeded draws, CPU generators
    allowed) and moved to `device`, a leaf that requires grad staying one; test code's
    .numpy() / np.asarray of a device tensor reads a CPU copy. The library's own factory
    calls are left alone: where one makes a CPU tensor beside device inputs, the test fails,
    as the library would on that device."""

    def __init__(self, device: str):
        super().__init__()
        self.device, self.factories = torch.device(device), _device_constructors()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.factories and kwargs.get("device") is None and "out" not in kwargs and _called_from_tests():
            grad = kwargs.get("requires_grad", False)
            out = func(*args, **{k: v for k, v in kwargs.items() if k != "requires_grad"}).to(self.device)
            return out.requires_grad_() if grad else out
        if func in (torch.Tensor.numpy, torch.Tensor.__array__) and args[0].device.type != "cpu" and _called_from_tests():
            return func(args[0].cpu(), *args[1:], **kwargs)
        return func(*args, **kwargs)


@pytest.fixture(autouse=True)
def _test_device():
    if TEST_DEVICE is None:
        yield
        return
    with OnTestDevice(TEST_DEVICE):
        yield


@pytest.fixture(params=[0, 1, 2], ids=lambda s: f"seed{s}")
def rng(request):
    return np.random.default_rng(request.param)


def _clustered(rng, n=14, dim=3, classes=4, spread=1.0):
    labels = rng.integers(0, classes, n)
    centers = rng.normal(size=(classes, dim)) * 2
    x = centers[labels] + spread * rng.normal(size=(n, dim))
    return torch.tensor(x, dtype=torch.float64), torch.tensor(labels, dtype=torch.int64)


def _grid_points(rng, n=12, dim=2, classes=3):
    # All coordinates exactly representable: the matrix expansion has no rounding error.
    x = rng.integers(0, 3, size=(n, dim)).astype(np.float64)
    labels = rng.integers(0, classes, n)
    return torch.tensor(x), torch.tensor(labels, dtype=torch.int64)


def _edge_batches(rng, *, one_sample: bool = False) -> dict:
    x, y = _clustered(rng)
    g, gy = _grid_points(rng)
    out = {
        "random": (x, y),
        "one_class": (x, torch.zeros_like(y)),
        "singletons": (x, torch.arange(len(y))),
        "grid": (g, gy),
    }
    if one_sample:
        out["one_sample"] = (x[:1], y[:1])
    return out


def _random_indices(batch_size: int, **sizes) -> dict:
    gen = torch.Generator().manual_seed(1)
    draw = lambda lengths: tuple(torch.randint(0, batch_size, (k,), generator=gen) for k in lengths)  # noqa: E731
    return {name: None if lengths is None else draw(lengths) for name, lengths in sizes.items()}


def _reduce(terms, reduction: str) -> float:
    terms = np.asarray(terms, dtype=np.float64)
    if len(terms) == 0:
        return 0.0
    if reduction == "sum":
        return terms.sum()
    if reduction == "nonzero":
        return terms.sum() / max((terms > 0).sum(), 1)
    return terms.mean()


@pytest.fixture
def clustered():
    """clustered(rng, n=14, dim=3, classes=4, spread=1.0): random float64 embeddings with
    class structure, and their int64 labels."""
    return _clustered


@pytest.fixture
def grid_points():
    """grid_points(rng, n=12, dim=2, classes=3): embeddings on a small integer grid, with many
    exactly tied distances and duplicates."""
    return _grid_points


@pytest.fixture
def edge_batches():
    """edge_batches(rng, one_sample=False) -> {kind: (x, y)}: random clusters, one class,
    singletons, and a grid with duplicates, ties and zero distances (and a single sample,
    where a kernel takes one)."""
    return _edge_batches


@pytest.fixture
def random_indices():
    """random_indices(batch_size, name=lengths, ...) -> {name: miner output}: rows drawn
    uniformly (repeats and pairs (i, i) included) from one generator seeded 1, in the order
    given; 3 lengths make triplets (a, p, n), 4 make pairs (a1, p, a2, n), None stays None."""
    return _random_indices


@pytest.fixture
def reduce():
    """reduce(terms, reduction): the API's reductions of a list of loss terms, by hand: `mean`
    over all of them, `nonzero` over those > 0, `sum`; 0 when there is none."""
    return _reduce


def _refuses_bad_batches(fn) -> None:
    x, y = torch.randn(5, 3), torch.tensor([0, 0, 1, 1, 2])
    with pytest.raises(ValueError, match="labels has length 3"):
        fn(x, y[:3])
    with pytest.raises(ValueError, match="labels must be an integer"):
        fn(x, y.double())
    bad = x.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="embeddings contains NaN"):
        fn(bad, y)


def _zero_with_zero_gradient(loss, labels, **factory) -> None:
    x = torch.randn(len(labels), 3, requires_grad=True, **factory)
    out = loss(x, torch.tensor(labels))
    out.backward()
    assert out.item() == 0 and torch.equal(x.grad, torch.zeros_like(x))


@pytest.fixture
def refuses_bad_batches():
    """refuses_bad_batches(fn): asserts that fn(embeddings, labels), a loss or a miner,
    refuses labels of the wrong length, float class labels and a NaN embedding, naming each."""
    return _refuses_bad_batches


@pytest.fixture
def zero_with_zero_gradient():
    """zero_with_zero_gradient(loss, labels, **factory): asserts that the loss of random
    [len(labels), 3] embeddings (made with torch.randn's `factory` options) is exactly 0 with
    an exactly zero gradient."""
    return _zero_with_zero_gradient


# The smallest trial that trains and scores: a small CNN, the triplet loss with batch
# semi-hard mining, two batches an epoch on one thread.
TINY_TRIAL = dict(
    model=dict(name="small_cnn", embedding_dim=8, options=dict(width=4)),
    loss=dict(name="triplet", options=dict(margin=0.2)),
    miner=dict(name="batch_semihard"),
    sampler=dict(batch_size=12, m_per_class=4),
    train=dict(epochs=3, max_batches_per_epoch=2, num_threads=1),
    eval=dict(ks=[1, 2], every_epoch=False),
    seed=3,
)


def _tiny_trial(dataset: str, **over) -> dict:
    cfg = {**copy.deepcopy(TINY_TRIAL), "dataset": dataset}
    for key, value in over.items():
        # A component (loss, miner...) is replaced whole, so that its options never mix
        # with the default's; the train and eval sections take single settings.
        cfg[key] = {**cfg[key], **value} if key in ("train", "eval") else value
    return cfg


@pytest.fixture(scope="session")
def tiny_trial():
    """tiny_trial(dataset, **over) -> the tiny trial's config as a dict: a key of `over`
    replaces the default's, but for train and eval, whose keys update the default's."""
    return _tiny_trial


@pytest.fixture(scope="session")
def trial_config(tiny_trial):
    """trial_config(dataset, seed=3) -> the tiny trial's TrialConfig, in fp32 and scored after
    every epoch, as the tracking tests log it: the registered model is served in fp32 and must
    give back the very embeddings the trial scored; a bf16 trial's differ from it by bf16
    rounding (~2e-3)."""
    from dml_core.training import TrialConfig

    return lambda dataset, seed=3: TrialConfig.model_validate(tiny_trial(
        dataset, seed=seed, train=dict(precision="fp32"), eval=dict(ks=[1, 2, 4], every_epoch=True),
    ))


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> str:
    """A prepared Fashion-MNIST-format set of 24 train and 8 eval images a class, made up
    (dml_core.data.synthetic); shared by the whole session, so never written to."""
    from dml_core.data import prepare_dataset
    from dml_core.data.synthetic import write_fashion_mnist

    root = tmp_path_factory.mktemp("tiny")
    raw = write_fashion_mnist(root / "raw", per_class=(24, 8))
    prepare_dataset("fashion_mnist", raw, root / "prepared")
    return str(root / "prepared")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], env: dict, log: Path, cwd: Path | None = None) -> subprocess.Popen:
    # Its own session, so that stopping it ends all its children too.
    with open(log, "ab") as out:
        return subprocess.Popen(args, env=env, cwd=cwd or log.parent, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None:
        return
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, seconds: float = 240) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer in {seconds} s: {log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def processes():
    """Servers run as background processes, for the tests of the team's services:
    free_port(); start(args, env, log, cwd=log's folder), its output appended to `log`;
    stop(proc), SIGTERM then SIGKILL to its whole session (None: nothing to stop);
    wait_healthy(url, proc, log, seconds=240), until `url` answers (the log's tail if it
    exits or never answers)."""
    return SimpleNamespace(free_port=_free_port, start=_start, stop=_stop, wait_healthy=_wait_healthy)


@pytest.fixture(scope="session")
def font_folder(tmp_path_factory):
    """font_folder(names) -> a new folder of links to the installed files of these font
    families, laid out as the DVC import lays them out; skips the test where one is not
    installed, but CI must have them all (`make fonts`)."""
    from dml_core.data.fonts import SYSTEM_FONT_DIR, find_font, select_families

    def make(names: list[str]) -> Path:
        try:
            found = {f.file: find_font(SYSTEM_FONT_DIR, f) for f in select_families(names)}
        except FileNotFoundError:
            if os.environ.get("CI"):
                raise RuntimeError("CI must install the CJK fonts (`make fonts`) before the tests") from None
            pytest.skip("the CJK font packages are not installed (`make fonts`)")
        root = tmp_path_factory.mktemp("fonts")
        for file, path in found.items():
            (root / file).symlink_to(path)
        return root

    return make
