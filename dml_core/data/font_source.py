"""CJK characters drawn from font files: the fonts read, the characters split, one drawn,
and the base of the sources made of them (``glyphs``, ``glyph_tilt``).

A class is one CJK Unified Ideograph (U+4E00-U+9FFF) that every family used maps; the
classes are split by a seeded permutation of those characters (``partition``): the first
``train_classes`` train (the last ``val_classes`` of them held out as ``val``), the next
``eval_classes`` evaluate, so evaluation is on characters never seen in training, as on the
unseen classes of CUB-200 or SOP (Oh Song et al., CVPR 2016). The sources differ in how they
draw a character's images (which families, what jitter) and in what they label beside the
class; the jitter is drawn over all shared characters in codepoint order, so a character is
drawn the same in every partition.

Rendering uses Pillow's basic layout (no shaping library) and bilinear rotation on an
integer grid: the same parameters and font files give the same bytes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..validation import check_count
from .fonts import SYSTEM_FONT_DIR, Family, find_font, package_version, select_families
from .images import ArrayImages
from .source import Source, SourceData, sha256_file
from .splits import EVAL, TRAIN

BLOCK = (0x4E00, 0x9FFF)  # CJK Unified Ideographs


def read_font(path: Path, family: Family) -> tuple[set[int], str]:
    """(the CJK codepoints of the font's cmap, the font's own version string)."""
    from fontTools.ttLib import TTFont

    try:
        font = TTFont(path, fontNumber=family.face, lazy=True)
        cmap = font.getBestCmap() or {}
        version = font["name"].getDebugName(5) or ""
    except Exception as e:  # noqa: BLE001 - fontTools raises many types for a damaged file
        raise ValueError(
            f"font file {path} (family {family.name!r}, package {family.package}) cannot be read: "
            f"{type(e).__name__}: {e}; reinstall it with `apt-get install --reinstall {family.package}`"
        ) from None
    return {c for c in cmap if BLOCK[0] <= c <= BLOCK[1]}, version.strip()


def common_characters(cmaps: dict[str, set[int]]) -> list[int]:
    """Codepoints every family has, sorted."""
    return sorted(set.intersection(*cmaps.values()))


def load_pillow_font(path: Path, family: Family, size: int):
    from PIL import ImageFont

    try:
        return ImageFont.truetype(str(path), size, index=family.face, layout_engine=ImageFont.Layout.BASIC)
    except OSError as e:
        raise ValueError(
            f"font file {path} (family {family.name!r}, package {family.package}) cannot be rendered: {e}; "
            f"reinstall it with `apt-get install --reinstall {family.package}`"
        ) from None


@dataclass
class FontSet:
    """The families' font files as read from ``raw_dir``: paths, CJK cmaps, versions, and
    the Pillow fonts opened so far (one per family and size)."""

    families: tuple[Family, ...]
    paths: dict[str, Path]
    cmaps: dict[str, set[int]]
    versions: dict[str, str]
    opened: dict[tuple[int, int], object] = field(default_factory=dict)

    @classmethod
    def read(cls, raw_dir: Path, families: tuple[Family, ...]) -> FontSet:
        """Find and read every family's file (errors name the file, family and package)."""
        paths = {f.name: find_font(Path(raw_dir), f) for f in families}
        cmaps, versions = {}, {}
        for f in families:
            cmaps[f.name], versions[f.name] = read_font(paths[f.name], f)
        return cls(families, paths, cmaps, versions)

    def characters(self) -> list[int]:
        """The codepoints every family maps, sorted."""
        return common_characters(self.cmaps)

    def limiting(self) -> str:
        """Which family maps the fewest characters, for an error about too few of them."""
        smallest = min(self.families, key=lambda f: len(self.cmaps[f.name]))
        return (f"the smallest, {smallest.name!r} ({self.paths[smallest.name].name}), "
                f"maps {len(self.cmaps[smallest.name])}")

    def font(self, j: int, size: int):
        """The Pillow font of family ``j`` (its index in ``families``) at ``size`` pixels."""
        font = self.opened.get((j, size))
        if font is None:
            f = self.families[j]
            font = self.opened[(j, size)] = load_pillow_font(self.paths[f.name], f, size)
        return font

    def where(self, j: int) -> str:
        """Names family ``j``'s file in errors."""
        f = self.families[j]
        return f"font {self.paths[f.name]} (family {f.name!r})"

    def card(self) -> list[dict]:
        """The card's ``fonts`` entry: file, package and versions of each family."""
        return [
            {"family": f.name, "file": f.file, "package": f.package, "package_version": package_version(f.package),
             "font_version": self.versions[f.name], "face": f.face, "style": f.style,
             "characters_mapped": len(self.cmaps[f.name])}
            for f in self.families
        ]

    def sources(self) -> dict[str, str]:
        """Each font file's checksum, by file name."""
        return {self.paths[f.name].name: sha256_file(self.paths[f.name]) for f in self.families}


def split_characters(
    characters: list[int], n_train: int, n_eval: int | None, partition: int, *, families: int, limiting: str
) -> tuple[np.ndarray, np.ndarray]:
    """(codepoints in label order, split name per label): the first ``n_train`` of the
    ``partition``'s permutation of ``characters`` train, the next ``n_eval`` (None: all the
    rest) evaluate. Asking for more than there are is an error that says how many there are."""
    wanted = len(characters) - n_train if n_eval is None else n_eval
    if n_train + max(wanted, 1) > len(characters):
        raise ValueError(
            f"train_classes {n_train} + eval_classes {n_eval} asks for more classes than the "
            f"{len(characters)} characters that all {families} families share ({limiting}); "
            "lower them or drop a family"
        )
    order = np.random.default_rng(partition).permutation(len(characters))[: n_train + wanted]
    codepoints = np.asarray(characters, dtype=np.int64)[order]
    split = np.where(np.arange(len(codepoints)) < n_train, TRAIN, EVAL).astype("<U7")
    return codepoints, split


def render(font, codepoint: int, size: int, dx: int, dy: int, angle: float, *, where: str) -> np.ndarray:
    """uint8 [size, size]: the glyph's ink box centred, rotated ``angle`` degrees
    counter-clockwise about the centre (bilinear), then shifted by (dx, dy) pixels.

    Drawn on a canvas with a margin of size / 2 on every side so rotation loses no ink, then
    cropped. A glyph with no ink is an error naming ``where`` (the font) and the character.
    """
    from PIL import Image, ImageDraw

    pad = size // 2
    side = size + 2 * pad
    canvas = Image.new("L", (side, side), 0)
    char = chr(codepoint)
    left, top, right, bottom = font.getbbox(char)
    if right <= left or bottom <= top:
        raise ValueError(f"{where} renders U+{codepoint:04X} {char!r} blank, though its cmap lists it")
    x = round(side / 2 - (left + right) / 2)
    y = round(side / 2 - (top + bottom) / 2)
    ImageDraw.Draw(canvas).text((x, y), char, fill=255, font=font)
    if canvas.getbbox() is None:
        raise ValueError(f"{where} renders U+{codepoint:04X} {char!r} blank, though its cmap lists it")
    if angle:
        canvas = canvas.rotate(angle, resample=Image.Resampling.BILINEAR)
    box = (pad - dx, pad - dy, pad - dx + size, pad - dy + size)
    return np.asarray(canvas.crop(box), dtype=np.uint8)


def class_names(codepoints: np.ndarray) -> list[str]:
    """'U+4E00 一' for each codepoint."""
    return [f"U+{cp:04X} {chr(cp)}" for cp in codepoints.tolist()]


def characters_entry(shared: int, codepoints: np.ndarray) -> dict:
    """The card's ``characters`` entry: the block, how many all families share, those used."""
    return {
        "block": f"CJK Unified Ideographs U+{BLOCK[0]:04X}-U+{BLOCK[1]:04X}",
        "shared_by_all_families": shared,
        "used": "".join(chr(c) for c in codepoints.tolist()),
    }


class FontSource(Source):
    """A Source of CJK characters drawn by font families. It checks the parameters every
    such source has, reads the fonts, splits the characters and gathers the drawings; a
    subclass draws them (``draw_jitter``, ``draw``) and may label them (``label_fields``)."""

    layout = "font files by their Debian names (ukai.ttc, ipag.ttf, ...), directly or in any subfolder"
    default_raw_dir = SYSTEM_FONT_DIR

    def __init__(self, *, train_classes, val_classes, eval_classes, partition, seed, families, image_size,
                 font_size, max_shift, **drawing: Any):
        """The shared parameters, checked; ``drawing``, the subclass's own, as it checked them."""
        size = check_count(image_size, "image_size", low=8)
        if not isinstance(font_size, (list, tuple)) or len(font_size) != 2:
            raise ValueError(f"font_size must be [low, high] in pixels, got {font_size!r}")
        low = check_count(font_size[0], "font_size[0]", low=4, high=size)
        super().__init__(
            train_classes=check_count(train_classes, "train_classes", low=2),
            val_classes=check_count(val_classes, "val_classes", low=0, high=train_classes - 1),
            eval_classes=None if eval_classes is None else check_count(eval_classes, "eval_classes", low=1),
            partition=check_count(partition, "partition", low=0),
            seed=check_count(seed, "seed", low=0),
            families=None if families is None else list(families),
            image_size=size,
            font_size=[low, check_count(font_size[1], "font_size[1]", low=low, high=size)],
            max_shift=check_count(max_shift, "max_shift", low=0, high=size // 4),
            **drawing,
        )
        self.families = select_families(self.params["families"])

    def draw_jitter(self, characters: int) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        """The jitter of every drawing of ``characters`` characters, from ``params['seed']``."""
        raise NotImplementedError

    def draw(  # pragma: no cover - abstract
        self, fonts: FontSet, jitter: dict[str, np.ndarray], i: int, codepoint: int
    ) -> Iterator[tuple[np.ndarray, str, Any]]:
        """(image, key, label value) of each drawing of character ``i`` (of all shared characters)."""
        raise NotImplementedError

    def label_fields(self, values: list) -> dict[str, Any]:
        """SourceData fields made of the drawings' label values, beside the class."""
        return {}

    def load(self, raw_dir: Path) -> SourceData:
        p = self.params
        fonts = FontSet.read(Path(raw_dir), self.families)
        characters = fonts.characters()
        codepoints, class_split = split_characters(
            characters, p["train_classes"], p["eval_classes"], p["partition"],
            families=len(self.families), limiting=fonts.limiting(),
        )
        jitter = self.draw_jitter(len(characters))
        position = {c: i for i, c in enumerate(characters)}
        images, labels, keys, values = [], [], [], []
        for label, cp in enumerate(codepoints.tolist()):
            for image, key, value in self.draw(fonts, jitter, position[cp], cp):
                images.append(image)
                labels.append(label)
                keys.append(key)
                values.append(value)
        labels = np.asarray(labels, dtype=np.int64)
        return self.finish(
            SourceData(
                images=ArrayImages(np.stack(images)[..., None]),
                labels=labels,
                class_names=class_names(codepoints),
                split=class_split[labels],
                keys=keys,
                sources=fonts.sources(),
                # A mirrored character is another (or no) character.
                hflip_safe=False,
                extra_card={"fonts": fonts.card(), "characters": characters_entry(len(characters), codepoints)},
                **self.label_fields(values),
            )
        )


__all__ = ["BLOCK", "FontSet", "FontSource", "common_characters", "render", "split_characters"]
