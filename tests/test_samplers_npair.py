"""N-pair batches: N distinct classes x 2 samples, built on MPerClassSampler."""
import numpy as np
import pytest
import torch

from dml_core import build_loss
from dml_core.losses.npair import first_two_per_class
from dml_core.samplers.npair import NPairSampler


def test_batches_are_n_classes_times_two_and_cover_the_epoch():
    labels = np.repeat(np.arange(12), 6)
    s = NPairSampler(labels, num_pairs=4, seed=2)
    batches = list(s)
    assert len(batches) == len(s) == 72 // 8
    for b in batches:
        classes, counts = np.unique(labels[b], return_counts=True)
        assert len(b) == 8 and len(classes) == 4 and (counts == 2).all()
    assert sorted(np.concatenate(batches).tolist()) == list(range(72))


def test_the_loss_uses_every_sample_of_a_batch():
    labels = np.repeat(np.arange(10), 4)
    batch = next(iter(NPairSampler(labels, num_pairs=5)))
    y = torch.tensor(labels[batch])
    a, p = first_two_per_class(y)
    assert len(a) == 5 and sorted(a.tolist() + p.tolist()) == list(range(10))
    assert torch.isfinite(build_loss("npair")(torch.randn(10, 4), y))


def test_seeded_and_sharded():
    labels = np.repeat(np.arange(8), 4)
    assert list(NPairSampler(labels, num_pairs=2, seed=1)) == list(NPairSampler(labels, num_pairs=2, seed=1))
    shards = [list(NPairSampler(labels, num_pairs=2, num_replicas=2, rank=r)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) and not set(map(tuple, shards[0])) & set(map(tuple, shards[1]))


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_pairs"):
        NPairSampler(np.repeat(np.arange(4), 2), num_pairs=0)
    with pytest.raises(ValueError, match="fewer than the 5 classes_per_batch"):
        NPairSampler(np.repeat(np.arange(4), 2), num_pairs=5)
    with pytest.raises(ValueError, match="fewer than m_per_class=2"):
        NPairSampler(np.array([0, 0, 1, 2, 2]), num_pairs=2)
