"""The glyph_tilt source: CJK characters tilted by a seeded angle, the continuous label."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dml_core.data import ContinuousLabel, PreparedDataset, prepare_dataset, read_card
from dml_core.data.fonts import FAMILIES, select_families
from dml_core.data.glyph_tilt import draw_jitter
from dml_core.data.font_source import FontSet, render
from dml_core.metrics import evaluate_continuous

# Four small families (4-5 MB each), as tests/test_data_glyphs.py.
SMALL = ["ar-pl-sungti", "wqy-microhei", "vl-gothic", "droid-fallback"]
TINY = dict(train_classes=10, val_classes=2, eval_classes=6, families=SMALL, renders=3, shard_size=20)
SPLITS = ("train", "val", "eval")


@pytest.fixture(scope="module")
def fonts_dir(font_folder) -> Path:
    return font_folder(SMALL)


def _everything(out: Path) -> PreparedDataset:
    return PreparedDataset(out, list(SPLITS))


def test_the_card_says_the_label_is_a_linear_tilt_and_counts_the_splits(fonts_dir, tmp_path):
    card = prepare_dataset("glyph_tilt", fonts_dir, tmp_path / "t", **TINY)
    info = card["continuous_label"]
    assert (info["kind"], info["low"], info["high"]) == ("linear", -40.0, 40.0)
    assert info["name"] == "tilt" and info["unit"] == "degrees" and "absolute" in info["distance"]
    assert card["splits"] == {
        "train": {"rows": 8 * 3, "classes": 8}, "val": {"rows": 2 * 3, "classes": 2}, "eval": {"rows": 6 * 3, "classes": 6},
    }
    assert card["num_images"] == 16 * 3 and card["image"]["shape"] == [32, 32, 1]
    assert card["augmentation"] == {"hflip": False}
    assert [f["family"] for f in card["fonts"]] == SMALL and card["params"]["max_tilt"] == 40.0

    ds = _everything(tmp_path / "t")
    # What a trial reads: plain values, binned over the card's range.
    assert ds.continuous_meaning == ContinuousLabel("linear", low=-40.0, high=40.0)
    tilt = ds.continuous_labels
    assert tilt.dtype == np.float32 and tilt.min() >= -40 and tilt.max() <= 40
    assert np.array_equal(tilt, np.round(tilt.astype(np.float64), 2).astype(np.float32))
    images = ds.gather_uint8(np.arange(len(ds)))
    assert (images.reshape(len(ds), -1).max(1) > 128).all()  # every image has ink
    # The renders of a character are drawn by distinct families.
    keys = ds.keys(np.arange(len(ds)))
    for label in np.unique(ds.labels):
        files = [keys[i].split(":")[0] for i in np.flatnonzero(ds.labels == label)]
        assert len(files) == 3 == len(set(files))


def test_each_image_is_its_character_tilted_by_its_label(fonts_dir, tmp_path):
    """Re-render every image from its key and the seed's jitter: the stored tilt is the one applied."""
    prepare_dataset("glyph_tilt", fonts_dir, tmp_path / "t", **TINY)
    ds = _everything(tmp_path / "t")
    card = read_card(tmp_path / "t")
    fonts = FontSet.read(fonts_dir, select_families(SMALL))
    characters = fonts.characters()
    jitter = draw_jitter((len(characters), 3), len(SMALL), card["params"])
    files = [f.file for f in select_families(SMALL)]
    for row, key in enumerate(ds.keys(np.arange(len(ds)))):
        file, cp, r = key.split(":")
        i, r = characters.index(int(cp[2:], 16)), int(r)
        j = int(jitter["family"][i, r])
        assert files[j] == file
        tilt = float(jitter["tilt"][i, r])
        assert np.float32(tilt) == ds.continuous_labels[row]
        dx, dy = (int(v) for v in jitter["shift"][i, r])
        again = render(fonts.font(j, int(jitter["size"][i, r])), int(cp[2:], 16), 32, dx, dy, tilt, where=file)
        assert np.array_equal(again, ds.gather_uint8([row])[0, ..., 0]), key


def test_same_parameters_same_bytes(fonts_dir, tmp_path):
    prepare_dataset("glyph_tilt", fonts_dir, tmp_path / "a", **TINY)
    prepare_dataset("glyph_tilt", fonts_dir, tmp_path / "b", **TINY)
    prepare_dataset("glyph_tilt", fonts_dir, tmp_path / "c", **{**TINY, "seed": 1})
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert "card.json" in files and len(files) > 3
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert _everything(tmp_path / "a").continuous_labels.tolist() != _everything(tmp_path / "c").continuous_labels.tolist()


def test_train_val_and_eval_characters_are_disjoint_and_eval_is_unseen(fonts_dir, tmp_path):
    card = prepare_dataset("glyph_tilt", fonts_dir, tmp_path / "t", **TINY)
    chars = {}
    for split in SPLITS:
        ds = PreparedDataset(tmp_path / "t", split)
        # The character is part of the key: the split is by character, not by label number alone.
        chars[split] = {k.split(":")[1] for k in ds.keys(np.arange(len(ds)))}
    assert [len(chars[s]) for s in SPLITS] == [8, 2, 6]
    assert not chars["train"] & chars["val"] and not chars["train"] & chars["eval"] and not chars["val"] & chars["eval"]
    used = card["characters"]["used"]
    assert {f"U+{ord(c):04X}" for c in used[10:]} == chars["eval"]  # eval: after the 10 training (8 + 2 val) characters
    # Another partition draws other characters; a character keeps its renders wherever it lands.
    other = prepare_dataset("glyph_tilt", fonts_dir, tmp_path / "p", **{**TINY, "partition": 1})
    assert other["characters"]["used"] != used
    a, b = _everything(tmp_path / "t"), _everything(tmp_path / "p")
    ka, kb = a.keys(np.arange(len(a))), b.keys(np.arange(len(b)))
    shared = sorted(set(ka) & set(kb))
    for k in shared:
        assert np.array_equal(a.gather_uint8([ka.index(k)]), b.gather_uint8([kb.index(k)]))


def test_raw_pixels_cannot_read_the_tilt(fonts_dir, tmp_path):
    """The point of the jitter: raw pixels rank the unseen characters' tilts no better than chance."""
    params = {**TINY, "train_classes": 4, "val_classes": 0, "eval_classes": 150, "renders": 4, "shard_size": 1000}
    prepare_dataset("glyph_tilt", fonts_dir, tmp_path / "t", **params)
    ds = PreparedDataset(tmp_path / "t", "eval")
    pixels = ds.get_batch(np.arange(len(ds))).images.reshape(len(ds), -1).numpy()
    metrics = evaluate_continuous(pixels, ds.continuous_labels, ks=(8,))
    assert len(ds) == 600 and abs(metrics["spearman"]) < 0.05, metrics
    # Sanity of the check itself: the tilt read exactly ranks perfectly.
    assert evaluate_continuous(ds.continuous_labels[:, None], ds.continuous_labels, ks=(8,))["spearman"] > 0.99


@pytest.mark.parametrize(
    "params, match",
    [
        ({"max_tilt": 50}, r"max_tilt must be a number of degrees in \(0, 45\], got 50"),
        ({"max_tilt": 0}, r"max_tilt must be a number of degrees in \(0, 45\], got 0"),
        ({"renders": 5}, "renders must be between 1 and 4"),
        ({"max_shift": 9}, "max_shift must be between 0 and 8"),
        ({"font_size": [20, 40]}, "font_size\\[1\\] must be between 20 and 32"),
        ({"families": ["comic-sans", "vl-gothic"]}, "families: unknown family 'comic-sans'"),
    ],
)
def test_bad_params_name_the_param(fonts_dir, tmp_path, params, match):
    with pytest.raises(ValueError, match=match):
        prepare_dataset("glyph_tilt", fonts_dir, tmp_path / "x", **{**TINY, **params})
    assert not (tmp_path / "x").exists()


def test_the_params_entry_prepares_a_many_character_set():
    """params.yaml's glyph_tilt: >= 1,000 train and >= 500 eval characters, 6 renders of all 18 families."""
    import yaml

    spec = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())["data"]["datasets"]["glyph_tilt"]
    assert spec["source"] == "glyph_tilt" and spec.get("families") is None and len(FAMILIES) == 18
    assert spec["train_classes"] - spec["val_classes"] >= 1000 and spec["eval_classes"] >= 500
    assert spec["max_tilt"] <= 45
