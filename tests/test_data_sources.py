"""CUB-200-2011, Cars196, SOP, In-shop and image folders, on tiny trees in their release layouts."""
import shutil

import numpy as np
import pytest

from dml_core.data import PreparedDataset, data_version, known_sources, prepare_dataset, read_card
from dml_core.data import synthetic

# name -> (tree writer, params, expected rows per split, expected classes per split)
CASES = {
    "cub200": (
        lambda root: synthetic.write_cub200(root, num_classes=6, per_class=3),
        {"val_classes": 1, "image_size": 16},
        {"train": 6, "val": 3, "eval": 9},
        {"train": 2, "val": 1, "eval": 3},
    ),
    "cars196": (
        lambda root: synthetic.write_cars196(root, num_classes=6, per_class=3),
        {"val_classes": 1, "image_size": 16},
        {"train": 6, "val": 3, "eval": 9},
        {"train": 2, "val": 1, "eval": 3},
    ),
    "sop": (
        lambda root: synthetic.write_sop(root, train_classes=4, test_classes=3, per_class=2),
        {"val_classes": 1, "image_size": 16},
        {"train": 6, "val": 2, "eval": 6},
        {"train": 3, "val": 1, "eval": 3},
    ),
    "inshop": (
        lambda root: synthetic.write_inshop(root, train_items=4, eval_items=3, per_item=3),
        {"val_classes": 1, "image_size": 16},
        {"train": 9, "val": 3, "query": 3, "gallery": 6},
        {"train": 3, "val": 1, "query": 3, "gallery": 3},
    ),
    "imagefolder": (
        lambda root: synthetic.write_imagefolder(root, num_classes=4, per_class=3, size=16),
        {"image_size": 16},
        {"train": 6, "eval": 6},
        {"train": 2, "eval": 2},
    ),
}


def test_every_source_is_covered():
    # fashion_mnist, rotation, glyphs and glyph_tilt read real Debian package files: their own test modules.
    assert set(CASES) | {"fashion_mnist", "rotation", "glyphs", "glyph_tilt"} == set(known_sources())


@pytest.mark.parametrize("name", sorted(CASES))
def test_source_on_its_release_layout(tmp_path, name):
    write, params, rows, classes = CASES[name]
    raw = write(tmp_path / "raw")
    out = tmp_path / "prepared" / name
    card = prepare_dataset(name, raw, out, **params)
    assert card["source"] == name
    assert {s: v["rows"] for s, v in card["splits"].items()} == rows
    assert {s: v["classes"] for s, v in card["splits"].items()} == classes
    assert card["image"]["shape"] == [16, 16, 3]
    assert card["num_images"] == sum(rows.values())
    assert card["sources"] and all(v.startswith("sha256:") for v in card["sources"].values())
    assert card["citation"] and card["description"]
    # Disjoint classes between train, val and the eval side; labels in range.
    seen = {s: set(PreparedDataset(out, s).labels.tolist()) for s in rows}
    eval_side = set().union(*(seen[s] for s in rows if s not in ("train", "val")))
    assert not seen["train"] & eval_side
    assert not seen.get("val", set()) & (seen["train"] | eval_side)
    every = set().union(*seen.values())
    assert every == set(range(card["num_classes"]))
    # Validation classes are the last training classes.
    if "val" in seen:
        assert min(seen["val"]) > max(seen["train"])
    # Every class in the card has its images.
    assert sum(sum(c["counts"].values()) for c in card["classes"]) == card["num_images"]
    ds = PreparedDataset(out, list(rows))
    batch = ds.get_batch(range(len(ds)))
    assert batch.images.shape == (len(ds), 3, 16, 16)
    assert 0.0 <= float(batch.images.min()) and float(batch.images.max()) <= 1.0


@pytest.mark.parametrize("name", sorted(CASES))
def test_source_is_deterministic(tmp_path, name):
    write, params, _, _ = CASES[name]
    raw = write(tmp_path / "raw")
    prepare_dataset(name, raw, tmp_path / "a", **params)
    prepare_dataset(name, raw, tmp_path / "b", **params, workers=1)  # workers never change the bytes
    assert data_version(tmp_path / "a") == data_version(tmp_path / "b")


def test_cub_class_names_and_default_half_split(tmp_path):
    raw = synthetic.write_cub200(tmp_path / "raw", num_classes=8, per_class=2)
    card = prepare_dataset("cub200", raw / "CUB_200_2011", tmp_path / "o", val_classes=0, image_size=8)
    assert card["splits"]["train"]["classes"] == 4 and card["splits"]["eval"]["classes"] == 4
    assert card["classes"][0]["name"] == "001.Bird_1"


def test_imagefolder_pixels_are_exact(tmp_path):
    from PIL import Image

    raw = synthetic.write_imagefolder(tmp_path / "raw", num_classes=2, per_class=2, size=12)
    prepare_dataset("imagefolder", raw, tmp_path / "o", image_size=12)
    ds = PreparedDataset(tmp_path / "o", ["train", "eval"])
    for i, key in enumerate(ds.keys(range(len(ds)))):
        expected = np.asarray(Image.open(raw / key).convert("RGB"))
        np.testing.assert_array_equal(ds.gather_uint8([i])[0], expected)


def test_inshop_eval_protocol_is_query_vs_gallery(tmp_path):
    raw = synthetic.write_inshop(tmp_path / "raw")
    card = prepare_dataset("inshop", raw, tmp_path / "o", val_classes=0, image_size=8)
    assert card["eval_protocol"] == {"query": ["query"], "reference": ["gallery"]}
    q = PreparedDataset(tmp_path / "o", "query").labels
    g = PreparedDataset(tmp_path / "o", "gallery").labels
    assert set(q.tolist()) == set(g.tolist())
    with pytest.raises(ValueError, match="unknown split 'eval'.*available splits: train, query, gallery"):
        PreparedDataset(tmp_path / "o", "eval")


# --- bad input: a clear error naming the file or param, and no output ------------------


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BAD_INPUT = [
    ("cub200", lambda raw: (raw / "CUB_200_2011" / "images.txt").unlink(), FileNotFoundError, "images.txt not found"),
    (
        "cub200",
        lambda raw: _truncate(next((raw / "CUB_200_2011" / "images").rglob("*.jpg"))),
        ValueError,
        r"cannot decode image .*\.jpg \(listed in images.txt\)",
    ),
    (
        "cub200",
        lambda raw: next((raw / "CUB_200_2011" / "images").rglob("*.jpg")).unlink(),
        FileNotFoundError,
        "1 image.* listed in images.txt are missing",
    ),
    (
        "cub200",
        lambda raw: (raw / "CUB_200_2011" / "classes.txt").write_text(
            (raw / "CUB_200_2011" / "classes.txt").read_text() + "7 007.Bird_without_images\n"
        ),
        ValueError,
        r"1 class\(es\) have no images, e.g. 6 \('007.Bird_without_images'\)",
    ),
    (
        "cub200",
        lambda raw: (raw / "CUB_200_2011" / "image_class_labels.txt").write_text("1 1 extra\n"),
        ValueError,
        "image_class_labels.txt line 1: expected 2 whitespace-separated fields",
    ),
    ("cars196", lambda raw: (raw / "cars_annos.mat").unlink(), FileNotFoundError, "cars_annos.mat not found"),
    ("cars196", lambda raw: _truncate(raw / "cars_annos.mat"), ValueError, "cars_annos.mat is truncated or not a MATLAB file"),
    (
        "cars196",
        lambda raw: _truncate(raw / "car_ims" / "000002.jpg"),
        ValueError,
        r"cannot decode image .*000002.jpg \(listed in cars_annos.mat\)",
    ),
    (
        "sop",
        lambda raw: (raw / "Stanford_Online_Products" / "Ebay_test.txt").write_text(
            (raw / "Stanford_Online_Products" / "Ebay_test.txt").read_text() + "99 1 1 bicycle_final/1_0.JPG\n"
        ),
        ValueError,
        "Ebay_train.txt and Ebay_test.txt share 1 class",
    ),
    (
        "sop",
        lambda raw: (raw / "Stanford_Online_Products" / "Ebay_train.txt").write_text("id class path\n1 1 x.jpg\n"),
        ValueError,
        "Ebay_train.txt: header .* is not the SOP header",
    ),
    ("sop", lambda raw: shutil.rmtree(raw / "Stanford_Online_Products"), FileNotFoundError, "Ebay_train.txt not found"),
    (
        "inshop",
        lambda raw: (raw / "Eval" / "list_eval_partition.txt").write_text(
            "\n".join((raw / "Eval" / "list_eval_partition.txt").read_text().splitlines()[:-2]) + "\n"
        ),
        ValueError,
        "list_eval_partition.txt declares 21 images but lists 19: truncated",
    ),
    ("inshop", lambda raw: shutil.rmtree(raw / "Eval"), FileNotFoundError, "list_eval_partition.txt not found"),
    (
        "imagefolder",
        lambda raw: [p.unlink() for p in (raw / "class_01").iterdir()],
        ValueError,
        "class folder .*class_01 holds no image file",
    ),
    (
        "imagefolder",
        lambda raw: _truncate(raw / "class_00" / "img_001.png"),
        ValueError,
        "cannot decode image .*img_001.png",
    ),
]


@pytest.mark.parametrize("name, damage, error, match", BAD_INPUT, ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_INPUT)])
def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, name, damage, error, match):
    write, params, _, _ = CASES[name]
    raw = write(tmp_path / "raw")
    damage(raw)
    out = tmp_path / "prepared" / name
    with pytest.raises(error, match=match):
        prepare_dataset(name, raw, out, **params)
    assert not out.exists()
    leftovers = list((tmp_path / "prepared").iterdir()) if (tmp_path / "prepared").exists() else []
    assert leftovers == []


@pytest.mark.parametrize("name", sorted(CASES))
def test_missing_raw_dir(tmp_path, name):
    _, params, _, _ = CASES[name]
    with pytest.raises(FileNotFoundError, match=r"raw_dir .*absent does not exist"):
        prepare_dataset(name, tmp_path / "absent", tmp_path / "out", **params)


@pytest.mark.parametrize("name", ["cub200", "cars196", "sop", "inshop"])
def test_wrong_layout(tmp_path, name):
    raw = synthetic.write_imagefolder(tmp_path / "raw")  # an image folder is not a release layout
    with pytest.raises(FileNotFoundError, match="not (found|hold)"):
        prepare_dataset(name, raw, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_imagefolder_without_class_folders(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.png").write_bytes(b"")
    with pytest.raises(ValueError, match="no class sub-folders"):
        prepare_dataset("imagefolder", tmp_path / "raw", tmp_path / "out")


def test_raw_dir_required_for_photo_sets(tmp_path):
    with pytest.raises(ValueError, match="raw_dir is required for dataset source 'cub200'"):
        prepare_dataset("cub200", None, tmp_path / "out")


def test_split_leaving_a_split_empty(tmp_path):
    raw = synthetic.write_imagefolder(tmp_path / "raw", num_classes=3)
    with pytest.raises(ValueError, match="val_classes must be between 0 and 0"):
        prepare_dataset("imagefolder", raw, tmp_path / "out", train_classes=1, val_classes=1)
    with pytest.raises(ValueError, match="train_classes must be between 1 and 2"):
        prepare_dataset("imagefolder", raw, tmp_path / "out", train_classes=3)
    raw1 = synthetic.write_imagefolder(tmp_path / "one", num_classes=1)
    with pytest.raises(ValueError, match="need at least 2 classes"):
        prepare_dataset("imagefolder", raw1, tmp_path / "out")


def test_card_is_readable_and_checked(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a prepared dataset"):
        read_card(tmp_path)
