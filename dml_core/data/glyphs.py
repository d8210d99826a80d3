"""Glyphs: CJK characters as classes, each drawn by every font family: a many-class set.

Each class is one CJK character that every family used maps (``font_source.py``); each
instance is that character rendered by one family (``fonts.py``), white on black, with
seeded jitter (font size, shift, rotation). It plays the part Omniglot plays in the
metric-learning literature (Lake et al., Science 2015: 1,623 characters by 20 drawers):
thousands of classes with a handful of instances each, so the test classes are truly unseen
ones, as in CUB-200 or SOP (Oh Song et al., CVPR 2016).

Classes are split by a seeded permutation (``partition``): the first ``train_classes`` train
(the last ``val_classes`` of them held out as ``val``), the next ``eval_classes`` evaluate.
Another partition seed gives another class-disjoint split of the same characters, so a
comparison can be replicated over class partitions as well as training seeds. The jitter is
drawn per (character, family, render) from ``seed`` and does not depend on the partition.
"""
from __future__ import annotations

import numpy as np

from ..validation import check_count
from .font_source import FontSource, render
from .source import SOURCES


@SOURCES.register("glyphs")
class Glyphs(FontSource):
    """CJK characters (classes) x font families (instances), jittered; split by ``partition``."""

    description = (
        "CJK Unified Ideographs that every font family used maps, one class per character; each "
        "instance is the character rendered by one family with seeded size, shift and rotation "
        "jitter; classes split train / val / eval by a seeded permutation (partition)."
    )
    citation = (
        "Fonts from Debian's packages (see fonts on this card). The benchmark design follows "
        "Omniglot: Lake, Salakhutdinov, Tenenbaum. Human-level concept learning through "
        "probabilistic program induction. Science 350(6266), 2015."
    )

    def __init__(
        self, train_classes: int = 2288, val_classes: int = 288, eval_classes: int | None = 1200, partition: int = 0,
        seed: int = 0, families: list[str] | None = None, image_size: int = 32, font_size: list[int] = (22, 30),
        max_shift: int = 3, renders_per_family: int = 1, max_rotation: float = 8.0,
    ):
        if isinstance(max_rotation, bool) or not isinstance(max_rotation, (int, float)) or not 0 <= max_rotation <= 180:
            raise ValueError(f"max_rotation must be a number of degrees in [0, 180], got {max_rotation!r}")
        super().__init__(
            train_classes=train_classes, val_classes=val_classes, eval_classes=eval_classes, partition=partition,
            seed=seed, families=families, image_size=image_size, font_size=font_size, max_shift=max_shift,
            renders_per_family=check_count(renders_per_family, "renders_per_family", low=1),
            max_rotation=float(max_rotation),
        )

    def draw_jitter(self, characters: int) -> dict[str, np.ndarray]:
        """Per (character, family, render): font size, shift (dx, dy) and rotation (rounded to
        0.01 degree)."""
        p = self.params
        grid = (characters, len(self.families), p["renders_per_family"])
        rng = np.random.default_rng(p["seed"])
        return {
            "size": rng.integers(p["font_size"][0], p["font_size"][1] + 1, size=grid),
            "shift": rng.integers(-p["max_shift"], p["max_shift"] + 1, size=(*grid, 2)),
            "angle": np.round(rng.uniform(-p["max_rotation"], p["max_rotation"], size=grid), 2),
        }

    def draw(self, fonts, jitter, i, codepoint):
        for j, f in enumerate(self.families):
            for r in range(self.params["renders_per_family"]):
                dx, dy = (int(v) for v in jitter["shift"][i, j, r])
                font = fonts.font(j, int(jitter["size"][i, j, r]))
                image = render(font, codepoint, self.params["image_size"], dx, dy, float(jitter["angle"][i, j, r]),
                               where=fonts.where(j))
                yield image, f"{f.file}:U+{codepoint:04X}:{r}", None


__all__ = ["Glyphs"]
