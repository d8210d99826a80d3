"""The log-ratio batch sampler: anchor, its nearest neighbours in label space, random samples."""
import numpy as np
import pytest
import torch

from dml_core import build_loss
from dml_core.samplers.continuous import ContinuousLabelSampler


@pytest.mark.parametrize("label_dim", [None, 3])
def test_batch_is_anchor_then_nearest_neighbours_then_random(label_dim):
    rng = np.random.default_rng(0)
    labels = rng.uniform(0, 100, size=(200,) if label_dim is None else (200, label_dim))
    s = ContinuousLabelSampler(labels, batch_size=16, num_neighbors=5, seed=1)
    batches = list(s)
    assert len(batches) == len(s) == 200 // 16
    flat = labels.reshape(200, -1)
    for b in batches:
        assert len(b) == 16 and len(set(b)) == 16
        anchor, near, rest = b[0], b[1:6], b[6:]
        d = np.linalg.norm(flat - flat[anchor], axis=1)
        d[anchor] = np.inf
        assert near == sorted(range(200), key=lambda i: (d[i], i))[:5]  # closest first
        assert min(d[rest]) >= d[near[-1]]
    anchors = [b[0] for b in batches]
    assert len(set(anchors)) == len(anchors)  # each sample is an anchor at most once per epoch


def test_ties_at_the_cut_go_to_the_lowest_index():
    labels = np.array([0.0, 1.0, -1.0, 1.0, -1.0, 5.0, 6.0, 7.0])
    s = ContinuousLabelSampler(labels, batch_size=4, num_neighbors=3)
    assert s.neighbors(0).tolist() == [1, 2, 3]


def test_random_part_is_spread_over_the_dataset():
    labels = np.linspace(0, 1, 1000)
    s = ContinuousLabelSampler(labels, batch_size=50, num_neighbors=4, seed=0)
    rest = np.concatenate([b[5:] for b in s])
    assert np.ptp(labels[rest]) > 0.9 and np.abs(np.mean(labels[rest]) - 0.5) < 0.05


def test_seeded_by_epoch_and_sharded_across_ranks():
    labels = np.random.default_rng(1).normal(size=120)
    make = lambda **kw: ContinuousLabelSampler(labels, batch_size=10, num_neighbors=3, seed=4, **kw)
    a, b = make(), make()
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    ranks = [make(num_replicas=3, rank=r) for r in range(3)]
    shards = [list(r) for r in ranks]
    assert all(len(sh) == len(ranks[0]) == (120 // 10) // 3 for sh in shards)
    anchors = [b[0] for sh in shards for b in sh]
    assert len(set(anchors)) == len(anchors)


def test_feeds_the_log_ratio_loss():
    rng = np.random.default_rng(2)
    labels = rng.uniform(size=100)
    x = torch.randn(100, 8)
    batch = next(iter(ContinuousLabelSampler(labels, batch_size=12, num_neighbors=4)))
    loss = build_loss("log_ratio")(x[batch], torch.tensor(labels[batch]))
    assert torch.isfinite(loss) and loss.item() > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="labels must be a float array"):
        ContinuousLabelSampler(np.arange(10), batch_size=4, num_neighbors=1)
    with pytest.raises(ValueError, match="NaN"):
        ContinuousLabelSampler(np.array([0.0, np.nan, 1.0]), batch_size=2, num_neighbors=1)
    with pytest.raises(ValueError, match="num_neighbors"):
        ContinuousLabelSampler(np.zeros(10), batch_size=4, num_neighbors=4)
    with pytest.raises(ValueError, match="batch_size"):
        ContinuousLabelSampler(np.zeros(10), batch_size=11, num_neighbors=1)
    with pytest.raises(ValueError, match="rank"):
        ContinuousLabelSampler(np.zeros(10), batch_size=2, num_neighbors=1, num_replicas=2, rank=2)
