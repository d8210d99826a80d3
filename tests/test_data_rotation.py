"""The rotation set: exact rotations, angle labels in [0, 360), circular distance, card."""
import math

import numpy as np
import pytest
import torch

from dml_core.data import (
    BatchLoader,
    ContinuousLabel,
    PreparedDataset,
    RandomCropFlip,
    angle_to_unit_vector,
    circular_distance,
    prepare_dataset,
    read_card,
)
from dml_core.data.fashion_mnist import read_fashion_mnist
from dml_core.data.rotation import draw_angles, rotate_images
from dml_core.data.synthetic import write_fashion_mnist


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)


def test_zero_and_quarter_turns_are_exact(images):
    n = len(images)
    np.testing.assert_array_equal(rotate_images(images, np.zeros(n)), images)
    np.testing.assert_array_equal(rotate_images(images, np.full(n, 360.0)), images)
    # Counter-clockwise as displayed: np.rot90 turns the image counter-clockwise.
    np.testing.assert_array_equal(rotate_images(images, np.full(n, 90.0)), np.rot90(images, 1, axes=(1, 2)))
    np.testing.assert_array_equal(rotate_images(images, np.full(n, 180.0)), np.rot90(images, 2, axes=(1, 2)))
    np.testing.assert_array_equal(rotate_images(images, np.full(n, 270.0)), np.rot90(images, 3, axes=(1, 2)))


def test_rotation_fills_with_zeros_and_keeps_the_centre():
    centre = np.zeros((1, 29, 29), np.uint8)
    centre[0, 14, 14] = 200  # the centre pixel stays put under any rotation
    assert rotate_images(centre, np.array([45.0]))[0, 14, 14] == 200
    corner = np.zeros((1, 29, 29), np.uint8)
    corner[0, 0, 0] = 255  # 19.8 px from the centre: outside the frame after 45 degrees
    out = rotate_images(corner, np.array([45.0]))
    assert out.dtype == np.uint8 and out.sum() == 0


def test_angles_seeded_and_in_range():
    a, b = draw_angles(10_000, 3), draw_angles(10_000, 3)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.min() >= 0 and a.max() < 360
    assert not np.array_equal(a, draw_angles(10_000, 4))
    # Roughly uniform: every 30-degree bin is filled.
    assert np.histogram(a, bins=12, range=(0, 360))[0].min() > 600


def test_circular_distance():
    a = np.array([0.0, 10.0, 350.0, 180.0, 90.0])
    b = np.array([359.0, 350.0, 10.0, 0.0, 90.0])
    np.testing.assert_allclose(circular_distance(a, b), [1, 20, 20, 180, 0])
    t = circular_distance(torch.tensor(a), torch.tensor(b))
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), [1, 20, 20, 180, 0])


def test_unit_vector_chord_is_monotone_in_circular_distance():
    a = np.zeros(50)
    b = np.linspace(0, 359, 50)
    chord = np.linalg.norm(angle_to_unit_vector(a) - angle_to_unit_vector(b), axis=1)
    d = circular_distance(a, b)
    np.testing.assert_allclose(chord, 2 * np.sin(np.radians(d) / 2), atol=1e-12)
    v = angle_to_unit_vector(torch.tensor([90.0]))
    np.testing.assert_allclose(v.numpy(), [[0.0, 1.0]], atol=1e-7)


def test_prepared_rotation_set(tmp_path):
    raw = write_fashion_mnist(tmp_path / "raw", per_class=(4, 1))
    out = tmp_path / "rotation"
    card = prepare_dataset("rotation", raw, out, seed=5, val_classes=1)
    info = card["continuous_label"]
    # What the trial reads: an angle with period 360.
    assert (info["kind"], info["period"]) == ("angle", 360.0)
    assert info["name"] == "angle" and info["unit"] == "degrees"
    assert (info["low"], info["high"]) == (0.0, 360.0)
    assert "circular" in info["distance"]
    assert card["augmentation"] == {"hflip": False}
    assert card["params"]["seed"] == 5

    ds = PreparedDataset(out, ["train", "val", "eval"])
    assert ds.continuous_meaning == ContinuousLabel("angle", period=360.0)
    assert read_card(out)["continuous_label"] == info
    assert ds.continuous_labels.dtype == np.float32
    assert ds.continuous_labels.min() >= 0 and ds.continuous_labels.max() < 360
    image, label, angle = ds[0]
    assert image.shape == (1, 28, 28) and isinstance(label, int) and isinstance(angle, float)

    # Each stored image is its raw image rotated by exactly the stored angle.
    raw_images, raw_labels, keys, _ = read_fashion_mnist(raw)
    order = {k: i for i, k in enumerate(keys)}
    src = np.array([order[k] for k in ds.keys(range(len(ds)))])
    expected = rotate_images(raw_images[src], ds.continuous_labels)
    np.testing.assert_array_equal(ds.gather_uint8(range(len(ds)))[..., 0], expected)
    np.testing.assert_array_equal(ds.labels, raw_labels[src])
    # ... and the angles are those drawn for the seed, in source order.
    np.testing.assert_array_equal(ds.continuous_labels, draw_angles(len(keys), 5)[src])

    batch = ds.get_batch([0, 3, 1])
    assert batch.continuous_labels.dtype == torch.float32
    np.testing.assert_array_equal(batch.continuous_labels.numpy(), ds.continuous_labels[[0, 3, 1]])


def test_loader_refuses_flips_on_rotation(tmp_path):
    raw = write_fashion_mnist(tmp_path / "raw", per_class=(2, 1))
    prepare_dataset("rotation", raw, tmp_path / "r", val_classes=0)
    ds = PreparedDataset(tmp_path / "r", "train")
    with pytest.raises(ValueError, match="horizontal flips would corrupt"):
        BatchLoader(ds, [[0, 1]], augment=RandomCropFlip(padding=2, flip=True))
    loader = BatchLoader(ds, [[0, 1]], augment="default")  # crop only
    assert loader.augment.flip is False
    assert next(iter(loader)).images.shape == (2, 1, 28, 28)


def test_rotation_is_deterministic(tmp_path):
    from dml_core.data import data_version

    raw = write_fashion_mnist(tmp_path / "raw", per_class=(2, 1))
    prepare_dataset("rotation", raw, tmp_path / "a")
    prepare_dataset("rotation", raw, tmp_path / "b")
    prepare_dataset("rotation", raw, tmp_path / "c", seed=1)
    assert data_version(tmp_path / "a") == data_version(tmp_path / "b") != data_version(tmp_path / "c")
    assert math.isfinite(PreparedDataset(tmp_path / "a", "eval").continuous_labels.sum())
