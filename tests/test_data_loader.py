"""The memory-mapped dataset and batch source return exactly what was prepared, fast."""
import pickle

import numpy as np
import pyarrow as pa
import pytest
import torch

from dml_core.data import (
    Batch,
    BatchLoader,
    PreparedDataset,
    RandomCropFlip,
    collate_batch,
    prepare_dataset,
    sequential_batches,
    to_float,
)
from dml_core.data.fashion_mnist import read_fashion_mnist
from dml_core.data.synthetic import write_fashion_mnist

SPLITS = ["train", "val", "eval"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The same synthetic Fashion-MNIST prepared in one shard per split and in shards of 7 rows."""
    root = tmp_path_factory.mktemp("loader")
    raw = write_fashion_mnist(root / "raw", per_class=(6, 2))
    prepare_dataset("fashion_mnist", raw, root / "one", val_classes=1)
    prepare_dataset("fashion_mnist", raw, root / "many", val_classes=1, shard_size=7)
    return raw, root / "one", root / "many"


def source_arrays(raw, ds):
    images, labels, keys, _ = read_fashion_mnist(raw)
    order = {k: i for i, k in enumerate(keys)}
    src = np.array([order[k] for k in ds.keys(range(len(ds)))])
    return images[src][..., None], labels[src]


def test_shards_are_memory_mapped_not_copied(prepared):
    _, one, many = prepared
    before = pa.total_allocated_bytes()
    ds = PreparedDataset(many, SPLITS)
    assert len(ds.shards) > 3
    assert pa.total_allocated_bytes() - before < 4096  # nothing read into Arrow's memory pool
    for view in ds._images:
        assert not view.flags.owndata and not view.flags.writeable


@pytest.mark.parametrize("which", ["one", "many"])
def test_loader_returns_exactly_what_was_prepared(prepared, which):
    raw, one, many = prepared
    ds = PreparedDataset(one if which == "one" else many, SPLITS)
    images, labels = source_arrays(raw, ds)
    idx = np.random.default_rng(0).permutation(len(ds))[:50]
    np.testing.assert_array_equal(ds.gather_uint8(idx), images[idx])
    batch = ds.get_batch(idx)
    assert isinstance(batch, Batch)
    assert batch.images.dtype == torch.float32 and batch.images.shape == (50, 1, 28, 28)
    assert batch.images.is_contiguous()
    np.testing.assert_array_equal((batch.images * 255).round().to(torch.uint8).numpy(), images[idx].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(batch.labels.numpy(), labels[idx])
    assert batch.labels.dtype == torch.int64 and batch.continuous_labels is None
    np.testing.assert_array_equal(batch.indices.numpy(), idx)
    image, label = ds[int(idx[0])]
    assert torch.equal(image, batch.images[0]) and label == labels[idx[0]]


def test_one_and_many_shards_agree(prepared):
    _, one, many = prepared
    a, b = PreparedDataset(one, SPLITS), PreparedDataset(many, SPLITS)
    assert a.keys(range(len(a))) == b.keys(range(len(b)))
    np.testing.assert_array_equal(a.gather_uint8(range(len(a))), b.gather_uint8(range(len(b))))
    np.testing.assert_array_equal(a.labels, b.labels)


def test_ranks_read_disjoint_shards_covering_the_split(prepared):
    _, _, many = prepared
    full = PreparedDataset(many, "eval")
    parts = [PreparedDataset(many, "eval", rank=r, num_replicas=3) for r in range(3)]
    keys = [set(p.keys(range(len(p)))) for p in parts]
    assert sum(len(k) for k in keys) == len(full)
    assert set().union(*keys) == set(full.keys(range(len(full))))
    assert all(not (keys[i] & keys[j]) for i in range(3) for j in range(i + 1, 3))
    with pytest.raises(ValueError, match="rank 9 of 10 gets no shard"):
        PreparedDataset(many, "val", rank=9, num_replicas=10)
    with pytest.raises(ValueError, match=r"rank must be in \[0, 2\)"):
        PreparedDataset(many, "eval", rank=2, num_replicas=2)


def test_pickling_sends_the_path_not_the_pixels(prepared):
    _, one, _ = prepared
    ds = PreparedDataset(one, SPLITS)
    blob = pickle.dumps(ds)
    assert len(blob) < 20_000  # the card, not 80 x 784 pixels + labels
    clone = pickle.loads(blob)
    np.testing.assert_array_equal(clone.gather_uint8(range(len(ds))), ds.gather_uint8(range(len(ds))))


@pytest.mark.parametrize("workers", [0, 2])
def test_torch_dataloader_with_a_batch_sampler(prepared, workers):
    _, _, many = prepared
    ds = PreparedDataset(many, "train")
    batches = [[0, 5, 9], [1, 2], [30, 31, 3]]
    loader = torch.utils.data.DataLoader(ds, batch_sampler=batches, collate_fn=collate_batch, num_workers=workers)
    got = list(loader)
    for b, idx in zip(got, batches):
        assert torch.equal(b.images, ds.get_batch(idx).images)
        assert b.labels.tolist() == ds.labels[idx].tolist()


def test_batch_loader_with_the_m_per_class_sampler(prepared):
    samplers = pytest.importorskip("dml_core.samplers")
    _, _, many = prepared
    ds = PreparedDataset(many, ["train", "val"])
    sampler = samplers.MPerClassSampler(ds.labels, batch_size=8, m_per_class=4, seed=1)
    loader = BatchLoader(ds, sampler, augment="default", seed=3)
    loader.set_epoch(0)
    seen = 0
    for batch in loader:
        assert batch.images.shape == (8, 1, 28, 28)
        _, counts = np.unique(batch.labels.numpy(), return_counts=True)
        assert counts.tolist() == [4, 4]
        np.testing.assert_array_equal(batch.labels.numpy(), ds.labels[batch.indices.numpy()])
        seen += 1
    assert seen == len(loader) > 0


def test_batch_loader_is_reproducible_per_epoch(prepared):
    _, one, _ = prepared
    ds = PreparedDataset(one, "train")
    batches = sequential_batches(len(ds), 10)

    def run(epoch):
        loader = BatchLoader(ds, batches, augment=RandomCropFlip(padding=4), seed=7)
        loader.set_epoch(epoch)
        return torch.cat([b.images for b in loader])

    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))
    with pytest.raises(ValueError, match="augment must be None, 'default' or a RandomCropFlip"):
        BatchLoader(ds, batches, augment="heavy")


def test_sequential_batches_cover_everything_in_order():
    b = sequential_batches(10, 4)
    assert [list(r) for r in b] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_normalize_uses_the_train_statistics(prepared):
    _, one, _ = prepared
    ds = PreparedDataset(one, "train", normalize=True)
    x = ds.get_batch(range(len(ds))).images
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-2
    raw = PreparedDataset(one, "train").get_batch(range(len(ds))).images
    mean, std = ds.card["image"]["mean"][0], ds.card["image"]["std"][0]
    torch.testing.assert_close(x, (raw - mean) / std)


def test_bad_indices_and_splits(prepared):
    _, one, _ = prepared
    ds = PreparedDataset(one, "train")
    with pytest.raises(IndexError, match=f"index {len(ds)} out of range"):
        ds.get_batch([0, len(ds)])
    with pytest.raises(IndexError, match="index -1 out of range"):
        ds.get_batch([-1])
    with pytest.raises(ValueError, match="unknown split 'test'.*available splits: train, val, eval"):
        PreparedDataset(one, "test")


# --- augmentation -----------------------------------------------------------------------


@pytest.fixture
def batch():
    return torch.randint(1, 256, (64, 10, 12, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_no_padding_no_flip_is_identity(batch):
    assert torch.equal(RandomCropFlip(padding=0, flip=False)(batch), batch)


def test_flip_mirrors_about_half_of_the_images(batch):
    out = RandomCropFlip(padding=0, flip=True)(batch, torch.Generator().manual_seed(1))
    same = [torch.equal(o, b) for o, b in zip(out, batch)]
    mirrored = [torch.equal(o, b.flip(1)) for o, b in zip(out, batch)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 16 < sum(mirrored) < 48


def test_crop_is_a_shift_with_zero_fill(batch):
    p = 3
    out = RandomCropFlip(padding=p, flip=False)(batch, torch.Generator().manual_seed(2))
    assert out.shape == batch.shape and out.dtype == torch.uint8
    shifts = set()
    for o, b in zip(out, batch):
        padded = torch.zeros((10 + 2 * p, 12 + 2 * p, 3), dtype=torch.uint8)
        padded[p : p + 10, p : p + 12] = b
        match = [
            (dy, dx)
            for dy in range(2 * p + 1)
            for dx in range(2 * p + 1)
            if torch.equal(padded[dy : dy + 10, dx : dx + 12], o)
        ]
        assert len(match) == 1
        shifts.add(match[0])
    assert len(shifts) > 10  # offsets differ between images


def test_to_float_layout_and_scale():
    x = torch.tensor([[[[0, 255, 51]]]], dtype=torch.uint8)  # [1, 1, 1, 3]
    y = to_float(x)
    assert y.shape == (1, 3, 1, 1)
    torch.testing.assert_close(y.flatten(), torch.tensor([0.0, 1.0, 0.2]))
    z = to_float(x, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])
    torch.testing.assert_close(z.flatten(), torch.tensor([-1.0, 1.0, -0.6]))


def test_batch_work_leaves_the_thread_setting_alone(prepared):
    _, one, _ = prepared
    before = torch.get_num_threads()
    PreparedDataset(one, "train").get_batch([0, 1, 2], augment=RandomCropFlip())
    assert torch.get_num_threads() == before
