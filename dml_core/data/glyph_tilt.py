"""Tilted glyphs: CJK characters tilted by a seeded angle, the angle the continuous label.

A continuous-label set for the log-ratio loss of Kim, Sohn & Kwak ("Deep Metric Learning
Beyond Binary Supervision", CVPR 2019) on which learning matters. Each image is one CJK
character (the ``glyphs`` characters: those every font family maps) drawn by one font
family, white on black, tilted counter-clockwise by an angle drawn uniformly from
[-``max_tilt``, ``max_tilt``] degrees (default 40): that angle, rounded to 0.01 degree and
stored as float32, is the label. Each character is drawn ``renders`` times (default 6), by
as many distinct families drawn at random, each with its own tilt.

Why the range: CJK strokes run mostly horizontally and vertically, so stroke directions
alone repeat every 90 degrees; within +-45 degrees the character's upright pose is the
nearest one, and +-40 keeps a 10-degree margin, so the tilt is unambiguous.

Why the jitter: font size (default 14-22 px) and shift (default +-6 px, in a 32 px frame)
vary per image, so that raw pixels cannot read the tilt. On the rotated Fashion-MNIST set
(``rotation``) raw pixels out-rank every learned embedding; here the pixels of two images
barely overlap unless they share position and size, whatever their tilts. A tilted, shifted
glyph may lose a few pixels of a corner at the frame's edge; the strokes still show the tilt.

The split is the glyphs one (``font_source.py``): characters by a seeded permutation
(``partition``), the first ``train_classes`` train (the last ``val_classes`` of them held
out as ``val``), the next ``eval_classes`` evaluate, so evaluation is on characters never
seen in training. The jitter is drawn per (character, render) over all shared characters
in codepoint order from ``seed``, so a character is drawn the same in every partition.

The label is linear (``continuous.py``): the card says ``kind: linear`` with ``low`` and
``high`` the range, so binned labels are equal intervals of it, and the label distance is
the absolute difference in degrees. NDCG relevance is the library's
(``dml_core.metrics.continuous``): rel = 1 / (1 + d), d in degrees, so it halves at 1 degree
and an item 9 degrees off counts a tenth of an exact one: the metric rewards neighbours of
nearly equal tilt. A horizontal flip negates the tilt (and mirrors the character), so the
card marks flips as unsafe.

Rendering is the glyphs one (Pillow's basic layout, bilinear rotation): the same parameters
and font files give the same bytes.
"""
from __future__ import annotations


import numpy as np

from ..validation import check_count
from .continuous import LINEAR
from .font_source import FontSource, render
from .source import SOURCES


def continuous_info(max_tilt: float) -> dict:
    """The card's continuous_label block: a linear label over [-max_tilt, max_tilt]."""
    return {
        # What the trial reads (continuous.py): plain values, binned over [low, high].
        "kind": LINEAR,
        "low": -max_tilt,
        "high": max_tilt,
        # For people reading the card.
        "name": "tilt",
        "unit": "degrees",
        "space": f"[{-max_tilt:g}, {max_tilt:g}] degrees, counter-clockwise positive",
        "distance": "absolute difference |a - b| in degrees",
        "transform": "counter-clockwise rotation as displayed, about the ink box's centre, bilinear, zero fill",
    }


def draw_jitter(grid: tuple[int, int], families: int, p: dict) -> dict[str, np.ndarray]:
    """Per (character, render) of ``grid``: a family (distinct within a character), font
    size, shift (dx, dy) and tilt (rounded to 0.01 degree), from ``p['seed']``."""
    rng = np.random.default_rng(p["seed"])
    chars, renders = grid
    return {
        # A random permutation of the families per character; its first `renders` draw it.
        "family": np.argsort(rng.random((chars, families)), axis=1, kind="stable")[:, :renders],
        "size": rng.integers(p["font_size"][0], p["font_size"][1] + 1, size=grid),
        "shift": rng.integers(-p["max_shift"], p["max_shift"] + 1, size=(*grid, 2)),
        "tilt": np.round(rng.uniform(-p["max_tilt"], p["max_tilt"], size=grid), 2),
    }


def check_range(value, name: str, low: float, high: float) -> float:
    """A number of degrees in (low, high]; a ValueError names ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value <= high:
        raise ValueError(f"{name} must be a number of degrees in ({low:g}, {high:g}], got {value!r}")
    return float(value)


@SOURCES.register("glyph_tilt")
class GlyphTilt(FontSource):
    """CJK characters tilted by a seeded angle (the continuous label); split by ``partition``."""

    description = (
        "CJK Unified Ideographs that every font family used maps, one class per character; each "
        "instance is the character drawn by one family (distinct within a character), tilted by a "
        "seeded uniform angle in [-max_tilt, max_tilt] degrees, with seeded size and shift jitter; "
        "continuous label = the tilt; classes split train / val / eval by a seeded permutation (partition)."
    )
    citation = "Fonts from Debian's packages (see fonts on this card). Continuous-label metric learning: Kim, Sohn, Kwak. Deep Metric Learning Beyond Binary Supervision. CVPR 2019."

    def __init__(
        self, train_classes: int = 1400, val_classes: int = 200, eval_classes: int | None = 800, partition: int = 0,
        seed: int = 0, families: list[str] | None = None, image_size: int = 32, font_size: list[int] = (14, 22),
        max_shift: int = 6, renders: int = 6, max_tilt: float = 40.0,
    ):
        super().__init__(
            train_classes=train_classes, val_classes=val_classes, eval_classes=eval_classes, partition=partition,
            seed=seed, families=families, image_size=image_size, font_size=font_size, max_shift=max_shift,
            renders=renders,
            # Beyond 45 degrees the strokes read as the other axis' tilt (module docstring).
            max_tilt=check_range(max_tilt, "max_tilt", 0.0, 45.0),
        )
        # Distinct families within a character: no more renders than families.
        self.params["renders"] = check_count(renders, "renders", low=1, high=len(self.families))

    def draw_jitter(self, characters: int) -> dict[str, np.ndarray]:
        return draw_jitter((characters, self.params["renders"]), len(self.families), self.params)

    def draw(self, fonts, jitter, i, codepoint):
        for r in range(self.params["renders"]):
            j = int(jitter["family"][i, r])
            dx, dy = (int(v) for v in jitter["shift"][i, r])
            tilt = float(jitter["tilt"][i, r])
            font = fonts.font(j, int(jitter["size"][i, r]))
            image = render(font, codepoint, self.params["image_size"], dx, dy, tilt, where=fonts.where(j))
            yield image, f"{self.families[j].file}:U+{codepoint:04X}:{r}", tilt

    def label_fields(self, values: list) -> dict:
        """The tilts, the continuous label."""
        return {"continuous": np.asarray(values, dtype=np.float32), "continuous_info": continuous_info(self.params["max_tilt"])}


__all__ = ["GlyphTilt", "continuous_info", "draw_jitter"]
