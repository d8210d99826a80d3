import numpy as np
import pytest

from dml_core.samplers import MPerClassSampler, max_batches


def check_batches(batches, labels, classes, m):
    for b in batches:
        assert len(b) == classes * m
        assert len(set(b)) == len(b)  # no sample twice in a batch
        _, counts = np.unique(labels[b], return_counts=True)
        assert len(counts) == classes and (counts == m).all()


def test_balanced_classes_visit_every_sample_once_per_epoch():
    labels = np.repeat(np.arange(8), 24)
    s = MPerClassSampler(labels, batch_size=32, m_per_class=4, seed=3)
    for epoch in range(3):
        s.set_epoch(epoch)
        batches = list(s)
        check_batches(batches, labels, 8, 4)
        seen = np.concatenate(batches)
        assert len(seen) == len(labels) and sorted(seen) == list(range(len(labels)))


def test_uneven_class_sizes_still_visit_every_sample_when_balance_allows():
    # Class sizes not divisible by m: the last chunk is topped up from its own class.
    labels = np.repeat(np.arange(6), [13, 9, 11, 10, 7, 12])
    s = MPerClassSampler(labels, batch_size=12, m_per_class=4, seed=0)
    batches = list(s)
    check_batches(batches, labels, 3, 4)
    assert set(np.concatenate(batches)) == set(range(len(labels)))


def brute_force_max_batches(chunks, c):
    """Greedy: repeatedly take one chunk from each of the c classes with most chunks left."""
    chunks = list(chunks)
    b = 0
    while sum(k > 0 for k in chunks) >= c:
        top = sorted(range(len(chunks)), key=lambda i: -chunks[i])[:c]
        for i in top:
            chunks[i] -= 1
        b += 1
    return b


@pytest.mark.parametrize("seed", range(20))
def test_max_batches_matches_greedy(seed):
    rng = np.random.default_rng(seed)
    chunks = rng.integers(1, 12, rng.integers(2, 9))
    c = int(rng.integers(1, len(chunks) + 1))
    assert max_batches(chunks, c) == brute_force_max_batches(chunks, c)


def test_skewed_classes_reach_the_maximum_number_of_batches():
    labels = np.repeat(np.arange(5), [80, 8, 8, 8, 8])  # one big class, 2 per batch
    s = MPerClassSampler(labels, batch_size=4, m_per_class=2)
    batches = list(s)
    check_batches(batches, labels, 2, 2)
    assert len(batches) == brute_force_max_batches([40, 4, 4, 4, 4], 2) == 16


def test_seeded_reproducible_and_different_per_epoch():
    labels = np.repeat(np.arange(10), 20)
    a = MPerClassSampler(labels, 40, classes_per_batch=5, seed=7)
    b = MPerClassSampler(labels, 40, classes_per_batch=5, seed=7)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    assert list(MPerClassSampler(labels, 40, classes_per_batch=5, seed=8)) != first


@pytest.mark.parametrize("replicas", [2, 3])
def test_distributed_shards_are_disjoint_and_equal(replicas):
    labels = np.repeat(np.arange(10), 30)
    whole = MPerClassSampler(labels, 20, m_per_class=5, seed=1)
    shards = [list(MPerClassSampler(labels, 20, m_per_class=5, seed=1, num_replicas=replicas, rank=r)) for r in range(replicas)]
    lengths = {len(s) for s in shards}
    assert len(lengths) == 1 and lengths.pop() == len(whole) // replicas
    all_batches = [tuple(b) for s in shards for b in s]
    assert len(set(all_batches)) == len(all_batches)
    samples = np.concatenate([np.concatenate(s) for s in shards])
    assert len(np.unique(samples)) == len(samples)  # no sample on two ranks
    assert set(all_batches) <= {tuple(b) for b in whole}


@pytest.mark.parametrize("ratio,classes", [(0.25, 8), (0.5, 16), (0.75, 24)])
def test_class_ratio_sets_classes_per_batch(ratio, classes):
    labels = np.repeat(np.arange(40), 10)
    s = MPerClassSampler(labels, 32, class_ratio=ratio)
    assert s.classes_per_batch == classes
    batches = list(s)
    assert len(batches) > 0
    for b in batches:
        assert len(b) == 32 and len(set(b)) == 32
        _, counts = np.unique(labels[b], return_counts=True)
        assert len(counts) == classes
        # C/m = 0.75: 32 samples over 24 classes, so 8 classes have 2 and 16 have 1
        assert counts.max() - counts.min() <= 1 and counts.sum() == 32


def test_small_class_needs_replacement():
    labels = np.array([0] * 10 + [1] * 3 + [2] * 10)
    with pytest.raises(ValueError, match="class 1 has 3 samples, fewer than m_per_class=4"):
        MPerClassSampler(labels, 8, m_per_class=4)
    s = MPerClassSampler(labels, 8, m_per_class=4, replace=True)
    batches = list(s)
    assert all(len(b) == 8 for b in batches)


def test_errors_name_the_parameter():
    labels = np.repeat(np.arange(3), 10)
    with pytest.raises(ValueError, match="3 classes, fewer than the 4 classes_per_batch"):
        MPerClassSampler(labels, 8, m_per_class=2)
    with pytest.raises(ValueError, match="exactly one of"):
        MPerClassSampler(labels, 8)
    with pytest.raises(ValueError, match="not a multiple of m_per_class"):
        MPerClassSampler(labels, 9, m_per_class=2)
    with pytest.raises(ValueError, match="labels must be a 1-D array of integer"):
        MPerClassSampler(labels.astype(float), 8, m_per_class=2)
    with pytest.raises(ValueError, match="rank"):
        MPerClassSampler(labels, 6, m_per_class=2, num_replicas=2, rank=2)
