"""Fashion-MNIST preparation: counts, class-disjoint splits, card, determinism, bad input."""
import json

import numpy as np
import pytest

from dml_core.data import PreparedDataset, data_version, prepare_dataset, read_card
from dml_core.data.fashion_mnist import CLASS_NAMES, DEFAULT_RAW_DIR, read_fashion_mnist
from dml_core.data.synthetic import write_fashion_mnist

REAL_FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]
HAVE_REAL = all((DEFAULT_RAW_DIR / f).is_file() for f in REAL_FILES)
needs_real = pytest.mark.skipif(
    not HAVE_REAL,
    reason=f"Fashion-MNIST not in {DEFAULT_RAW_DIR}: run `apt-get update && apt-get install -y "
    "dataset-fashion-mnist` as root",
)


@pytest.fixture
def raw(tmp_path):
    return write_fashion_mnist(tmp_path / "raw", per_class=(6, 2))


def all_rows(path):
    return PreparedDataset(path, read_card(path)["splits"].keys())


def test_counts_splits_and_card(raw, tmp_path):
    out = tmp_path / "prepared" / "fashion_mnist"
    card = prepare_dataset("fashion_mnist", raw, out, val_classes=1)
    assert card["num_images"] == 80 and card["num_classes"] == 10
    assert card["image"]["shape"] == [28, 28, 1]
    assert {s: v["rows"] for s, v in card["splits"].items()} == {"train": 32, "val": 8, "eval": 40}
    labels = {s: set(PreparedDataset(out, s).labels.tolist()) for s in card["splits"]}
    assert labels == {"train": {0, 1, 2, 3}, "val": {4}, "eval": {5, 6, 7, 8, 9}}
    assert [c["name"] for c in card["classes"]] == CLASS_NAMES
    assert card["classes"][4]["counts"] == {"val": 8}
    assert set(card["sources"]) == set(REAL_FILES)
    assert all(v.startswith("sha256:") for v in card["sources"].values())
    assert card["params"] == {"train_classes": None, "val_classes": 1, "image_size": 28, "shard_size": 10000}
    assert card["continuous_label"] is None and card["augmentation"] == {"hflip": True}
    assert card["eval_protocol"] == {"query": ["eval"], "reference": None}
    assert sum(s["rows"] for s in card["shards"]) == 80
    # The card on disk is what prepare_dataset returned.
    assert json.loads((out / "card.json").read_text()) == card


def test_prepared_images_are_the_raw_images(raw, tmp_path):
    out = tmp_path / "fm"
    prepare_dataset("fashion_mnist", raw, out, shard_size=7)
    images, labels, keys, _ = read_fashion_mnist(raw)
    ds = all_rows(out)
    assert len(ds) == len(images)
    order = {k: i for i, k in enumerate(keys)}
    src = np.array([order[k] for k in ds.keys(range(len(ds)))])
    np.testing.assert_array_equal(ds.gather_uint8(range(len(ds)))[..., 0], images[src])
    np.testing.assert_array_equal(ds.labels, labels[src])
    assert sorted(src.tolist()) == list(range(len(images)))


def test_train_classes_param(raw, tmp_path):
    card = prepare_dataset("fashion_mnist", raw, tmp_path / "o", train_classes=7, val_classes=0)
    assert {s: v["classes"] for s, v in card["splits"].items()} == {"train": 7, "eval": 3}


def test_deterministic_bytes_and_version(raw, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    prepare_dataset("fashion_mnist", raw, a, shard_size=16)
    prepare_dataset("fashion_mnist", raw, b, shard_size=16)
    files = sorted(p.name for p in a.iterdir())
    assert files == sorted(p.name for p in b.iterdir()) and len(files) > 3
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert data_version(a) == data_version(b)
    c = tmp_path / "c"
    prepare_dataset("fashion_mnist", raw, c, shard_size=16, val_classes=1)
    assert data_version(c) != data_version(a)


def test_image_size_resizes(raw, tmp_path):
    card = prepare_dataset("fashion_mnist", raw, tmp_path / "o", image_size=32)
    assert card["image"]["shape"] == [32, 32, 1]
    assert PreparedDataset(tmp_path / "o", "eval")[0][0].shape == (1, 32, 32)


def test_missing_raw_dir_says_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"raw_dir .*nowhere.*apt-get install -y dataset-fashion-mnist"):
        prepare_dataset("fashion_mnist", tmp_path / "nowhere", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_file_names_it(raw, tmp_path):
    (raw / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte.gz"):
        prepare_dataset("fashion_mnist", raw, tmp_path / "out")


def test_truncated_file_leaves_no_output(raw, tmp_path):
    path = raw / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-100])
    out = tmp_path / "prepared" / "fm"
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz"):
        prepare_dataset("fashion_mnist", raw, out)
    assert not (tmp_path / "prepared").exists()


def test_failure_keeps_the_previous_output(raw, tmp_path, monkeypatch):
    out = tmp_path / "fm"
    prepare_dataset("fashion_mnist", raw, out)
    before = data_version(out)
    import dml_core.data.prepared as prepared

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(prepared, "_write_shard", broken)
    with pytest.raises(OSError, match="disk full"):
        prepare_dataset("fashion_mnist", raw, out, val_classes=1)
    assert data_version(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fm", "raw"]  # no temp dir left


def test_label_image_count_mismatch(raw, tmp_path):
    from dml_core.data.idx import write_idx

    write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz holds .* labels but .*t10k-images"):
        prepare_dataset("fashion_mnist", raw, tmp_path / "out")


@pytest.mark.parametrize(
    "params, match",
    [
        ({"train_classes": 10}, "train_classes must be between 1 and 9"),
        ({"train_classes": 0}, "train_classes must be between 1 and 9"),
        ({"val_classes": 5}, "val_classes must be between 0 and 4"),
        ({"val_classes": -1}, "val_classes must be between 0 and 4"),
        ({"image_size": "big"}, "image_size must be an integer"),
        ({"shard_size": 0}, "shard_size must be >= 1"),
        ({"colour": True}, "unknown option 'colour' for dataset source 'fashion_mnist'; known options: image_size, train_classes, val_classes"),
    ],
)
def test_bad_params_name_the_param(raw, tmp_path, params, match):
    with pytest.raises(ValueError, match=match):
        prepare_dataset("fashion_mnist", raw, tmp_path / "out", **params)
    assert not (tmp_path / "out").exists()


def test_unknown_source_lists_known_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset source name 'mnist'; known dataset source names: cars196, cub200, fashion_mnist, glyph_tilt, glyphs, imagefolder, inshop, rotation, sop"):
        prepare_dataset("mnist", tmp_path, tmp_path / "out")


@needs_real
def test_real_fashion_mnist(tmp_path):
    import time

    start = time.perf_counter()
    card = prepare_dataset("fashion_mnist", None, tmp_path / "fm", val_classes=1)
    elapsed = time.perf_counter() - start
    assert elapsed < 30, f"preparing 70k images took {elapsed:.1f}s"
    assert card["num_images"] == 70_000
    assert {s: v["rows"] for s, v in card["splits"].items()} == {"train": 28_000, "val": 7_000, "eval": 35_000}
    assert all(c["counts"] == {("train" if c["label"] < 4 else "val" if c["label"] == 4 else "eval"): 7000} for c in card["classes"])
    ds = PreparedDataset(tmp_path / "fm", ["train", "val", "eval"])
    assert len(ds) == 70_000
    # Reading the shards back gives the files' pixels: Fashion-MNIST's mean is ~0.286.
    images = ds.gather_uint8(np.arange(0, 70_000, 7))
    assert 0.25 < images.mean() / 255 < 0.32
