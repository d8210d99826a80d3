"""The glyphs source: CJK characters x font families, from the real Debian font files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dml_core.data import PreparedDataset, prepare_dataset, read_card
from dml_core.data.fonts import FAMILIES

# Four small families (4-5 MB each): printed sans, Song and Gothic designs.
SMALL = ["ar-pl-sungti", "wqy-microhei", "vl-gothic", "droid-fallback"]
TINY = dict(train_classes=8, val_classes=2, eval_classes=6, families=SMALL, shard_size=40)


@pytest.fixture(scope="module")
def fonts_dir(font_folder) -> Path:
    return font_folder(SMALL)


def _shards(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.arrow"))}


def test_classes_are_characters_and_instances_are_families(fonts_dir, tmp_path):
    card = prepare_dataset("glyphs", fonts_dir, tmp_path / "g", **TINY)
    assert card["splits"] == {
        "train": {"rows": 6 * 4, "classes": 6}, "val": {"rows": 2 * 4, "classes": 2}, "eval": {"rows": 6 * 4, "classes": 6},
    }
    assert card["image"]["shape"] == [32, 32, 1] and card["augmentation"]["hflip"] is False
    fonts = {f["family"]: f for f in card["fonts"]}
    assert list(fonts) == SMALL
    assert fonts["vl-gothic"]["file"] == "VL-Gothic-Regular.ttf" and fonts["vl-gothic"]["package"] == "fonts-vlgothic"
    assert fonts["vl-gothic"]["package_version"] and fonts["vl-gothic"]["font_version"]
    used = card["characters"]["used"]
    assert len(used) == 14 and card["characters"]["shared_by_all_families"] >= 3000
    assert [c["name"] for c in card["classes"]] == [f"U+{ord(ch):04X} {ch}" for ch in used]
    assert set(card["sources"]) == {f.file for f in FAMILIES if f.name in SMALL}

    train = PreparedDataset(tmp_path / "g", "train")
    evaluation = PreparedDataset(tmp_path / "g", "eval")
    assert not set(train.labels) & set(evaluation.labels)
    images = train.get_batch(np.arange(len(train))).images.numpy()
    assert images.shape == (24, 1, 32, 32) and images.max() == 1.0
    # Every instance has ink, and the instances of one character differ (another family).
    assert (images.reshape(24, -1).max(1) > 0.5).all()
    same = images[train.labels == train.labels[0]]
    assert len(same) == 4 and np.abs(same[0] - same[1]).mean() > 0.02


def test_same_parameters_same_bytes_and_partitions_redraw_the_split(fonts_dir, tmp_path):
    a = prepare_dataset("glyphs", fonts_dir, tmp_path / "a", **TINY)
    prepare_dataset("glyphs", fonts_dir, tmp_path / "b", **TINY)
    assert _shards(tmp_path / "a") == _shards(tmp_path / "b")
    assert (tmp_path / "a" / "card.json").read_bytes() == (tmp_path / "b" / "card.json").read_bytes()

    # Every shared character in use (eval_classes None: all that train leaves), two partitions.
    every = {**TINY, "eval_classes": None, "shard_size": 10_000}
    a = prepare_dataset("glyphs", fonts_dir, tmp_path / "a", **every)
    c = prepare_dataset("glyphs", fonts_dir, tmp_path / "c", **{**every, "partition": 1})
    assert c["characters"]["used"] != a["characters"]["used"]
    assert sorted(c["characters"]["used"]) == sorted(a["characters"]["used"])
    # A character keeps its renderings whichever partition it lands in: the jitter is drawn per
    # (character, family), not per position in the split.
    def rendered(out):
        found = {}
        for split in ("train", "val", "eval"):
            ds = PreparedDataset(out, split)
            rows = np.arange(len(ds))
            found.update(zip(ds.keys(rows), ds.gather_uint8(rows)))
        return found

    ra, rc = rendered(tmp_path / "a"), rendered(tmp_path / "c")
    shared = sorted(set(ra) & set(rc))
    assert len(shared) == len(ra) == len(rc)
    assert all(np.array_equal(ra[k], rc[k]) for k in shared)


def test_a_missing_font_package_is_named_and_nothing_is_written(fonts_dir, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for p in fonts_dir.iterdir():
        if p.name != "VL-Gothic-Regular.ttf":
            (raw / p.name).symlink_to(p.resolve())
    out = tmp_path / "prepared" / "glyphs"
    with pytest.raises(FileNotFoundError, match=r"VL-Gothic-Regular\.ttf.*'vl-gothic'.*fonts-vlgothic.*apt-get install"):
        prepare_dataset("glyphs", raw, out, **TINY)
    assert not (tmp_path / "prepared").exists() or list((tmp_path / "prepared").iterdir()) == []


def test_a_corrupted_font_file_is_named(fonts_dir, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for p in fonts_dir.iterdir():
        if p.name == "wqy-microhei.ttc":
            (raw / p.name).write_bytes(p.resolve().read_bytes()[:5000])  # cut short, as a broken download
        else:
            (raw / p.name).symlink_to(p.resolve())
    (tmp_path / "prepared").mkdir()
    with pytest.raises(ValueError, match=r"wqy-microhei\.ttc.*'wqy-microhei'.*fonts-wqy-microhei"):
        prepare_dataset("glyphs", raw, tmp_path / "prepared" / "glyphs", **TINY)
    assert list((tmp_path / "prepared").iterdir()) == []


def test_a_font_whose_glyph_is_empty_is_named_with_the_character(fonts_dir, tmp_path):
    """A cmap that lists a character whose outline is empty (a damaged or stub font)."""
    from fontTools.ttLib import TTFont
    from fontTools.ttLib.tables._g_l_y_f import Glyph

    from dml_core.data.font_source import BLOCK

    src = (fonts_dir / "VL-Gothic-Regular.ttf").resolve()
    font = TTFont(src)
    cmap = font.getBestCmap()
    # Empty every CJK glyph, so whichever characters the split draws, one is blank.
    for cp, name in cmap.items():
        if BLOCK[0] <= cp <= BLOCK[1]:
            font["glyf"][name] = Glyph()
    raw = tmp_path / "raw"
    raw.mkdir()
    for p in fonts_dir.iterdir():
        if p.name != src.name:
            (raw / p.name).symlink_to(p.resolve())
    font.save(raw / src.name)
    (tmp_path / "prepared").mkdir()
    with pytest.raises(ValueError, match=r"VL-Gothic-Regular\.ttf \(family 'vl-gothic'\) renders U\+[0-9A-F]{4} '.' blank"):
        prepare_dataset("glyphs", raw, tmp_path / "prepared" / "glyphs", **TINY)
    assert list((tmp_path / "prepared").iterdir()) == []


def test_an_impossible_split_says_how_many_characters_there_are(fonts_dir, tmp_path):
    (tmp_path / "prepared").mkdir()
    with pytest.raises(ValueError, match=r"train_classes 20000 \+ eval_classes 1000 asks for more classes than the \d+ characters that all 4 families share \(the smallest, .* maps \d+\)"):
        prepare_dataset("glyphs", fonts_dir, tmp_path / "prepared" / "glyphs",
                        **{**TINY, "train_classes": 20000, "val_classes": 200, "eval_classes": 1000})
    assert list((tmp_path / "prepared").iterdir()) == []
    with pytest.raises(ValueError, match="val_classes"):
        prepare_dataset("glyphs", fonts_dir, tmp_path / "x", **{**TINY, "val_classes": 8})
    with pytest.raises(ValueError, match="families: unknown family 'comic-sans'"):
        prepare_dataset("glyphs", fonts_dir, tmp_path / "x", **{**TINY, "families": ["comic-sans", "vl-gothic"]})


def test_the_default_set_meets_the_many_class_protocol():
    """params.yaml's glyphs: >= 1,000 train, >= 200 val, >= 1,000 eval classes, 18 families."""
    import yaml

    spec = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())["data"]["datasets"]["glyphs"]
    assert spec["train_classes"] - spec["val_classes"] >= 1000 and spec["val_classes"] >= 200 and spec["eval_classes"] >= 1000
    assert spec.get("families") is None and len(FAMILIES) == 18
    prepared = Path(__file__).parents[1] / "prepared" / "glyphs"
    if (prepared / "card.json").is_file():  # after `dvc repro prepare`
        card = read_card(prepared)
        assert card["splits"]["train"]["classes"] >= 1000 and card["splits"]["val"]["classes"] >= 200
        assert card["splits"]["eval"]["classes"] >= 1000 and card["num_images"] == 18 * card["num_classes"]
        assert json.dumps(card["fonts"])
