"""The CJK font families of the ``glyphs`` source: which file, from which Debian package.

One file per family: styles of one family (Regular and Bold, IPA and IPAex, the Big5 and GB
encodings of AR PL KaitiM) render nearly the same glyph, which would make retrieval trivial.
The families mix printed (Ming/Song, Gothic/Hei) and handwriting-like (Kai, Seto, Klee, LXGW
WenKai) designs, so the instances of a character vary the way drawers vary in Omniglot
(Lake et al., Science 2015).

Fonts are never downloaded: they come from Debian's packages, imported into the project with
DVC (``data/fonts/*.dvc``), and read from ``raw_dir`` (the import, or /usr/share/fonts).
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SYSTEM_FONT_DIR = Path("/usr/share/fonts")


@dataclass(frozen=True)
class Family:
    name: str
    file: str  # the file name in its Debian package (and in data/fonts/)
    package: str
    style: str
    face: int = 0  # the face of a TrueType collection (.ttc)


FAMILIES: tuple[Family, ...] = (
    Family("ar-pl-ukai", "ukai.ttc", "fonts-arphic-ukai", "kai"),
    Family("ar-pl-uming", "uming.ttc", "fonts-arphic-uming", "ming"),
    Family("ar-pl-kaitim", "bkai00mp.ttf", "fonts-arphic-bkai00mp", "kai"),
    Family("ar-pl-sungti", "gbsn00lp.ttf", "fonts-arphic-gbsn00lp", "song"),
    Family("wqy-zenhei", "wqy-zenhei.ttc", "fonts-wqy-zenhei", "hei"),
    Family("wqy-microhei", "wqy-microhei.ttc", "fonts-wqy-microhei", "hei"),
    Family("ipa-gothic", "ipag.ttf", "fonts-ipafont-gothic", "gothic"),
    Family("ipa-mincho", "ipam.ttf", "fonts-ipafont-mincho", "mincho"),
    Family("seto", "setofont.ttf", "fonts-seto", "handwriting"),
    Family("klee", "KleeOne-Regular.ttf", "fonts-klee", "handwriting"),
    Family("hanazono", "HanaMinA.ttf", "fonts-hanazono", "mincho"),
    Family("vl-gothic", "VL-Gothic-Regular.ttf", "fonts-vlgothic", "gothic"),
    Family("droid-fallback", "DroidSansFallbackFull.ttf", "fonts-droid-fallback", "sans"),
    Family("cwtex-kai", "cwkai.ttf", "fonts-cwtex-kai", "kai"),
    Family("cwtex-ming", "cwming.ttf", "fonts-cwtex-ming", "ming"),
    Family("lxgw-wenkai", "LXGWWenKai-Regular.ttf", "fonts-lxgw-wenkai", "handwriting"),
    Family("noto-sans-cjk", "NotoSansCJK-Regular.ttc", "fonts-noto-cjk", "sans"),
    Family("noto-serif-cjk", "NotoSerifCJK-Regular.ttc", "fonts-noto-cjk", "serif"),
)
FAMILY_NAMES = tuple(f.name for f in FAMILIES)
PACKAGES = tuple(dict.fromkeys(f.package for f in FAMILIES))
INSTALL_LINE = "apt-get update && apt-get install -y " + " ".join(PACKAGES)


def select_families(names: list[str] | None) -> tuple[Family, ...]:
    """The named families (all when None), in the order of FAMILIES; unknown names are errors."""
    if names is None:
        return FAMILIES
    if isinstance(names, str) or not isinstance(names, (list, tuple)) or len(names) < 2:
        raise ValueError(f"families must be a list of at least 2 family names, got {names!r}")
    unknown = [n for n in names if n not in FAMILY_NAMES]
    if unknown:
        raise ValueError(f"families: unknown family {unknown[0]!r}; known: {', '.join(FAMILY_NAMES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"families lists a family twice: {names!r}")
    return tuple(f for f in FAMILIES if f.name in names)


def find_font(raw_dir: Path, family: Family) -> Path:
    """``raw_dir/<file>`` (the DVC import), else the first ``<file>`` below raw_dir (the
    Debian layout under /usr/share/fonts). A missing file names its package."""
    direct = raw_dir / family.file
    if direct.is_file():
        return direct
    found = sorted(p for p in raw_dir.rglob(family.file) if p.is_file()) if raw_dir.is_dir() else []
    if found:
        return found[0]
    raise FileNotFoundError(
        f"font file {family.file} of family {family.name!r} not found in {raw_dir}: install its "
        f"package {family.package} as root (`{INSTALL_LINE}`), then `dvc repro prepare` imports "
        "it into data/fonts"
    )


def package_version(package: str) -> str | None:
    """The installed Debian version of ``package`` (dpkg-query), or None off Debian."""
    if shutil.which("dpkg-query") is None:
        return None
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True, check=False
    )
    return out.stdout.strip() or None if out.returncode == 0 else None
