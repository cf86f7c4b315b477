"""Chinese (and Japanese, Korean) text in plots: a CJK font as matplotlib's fallback.

matplotlib's default font, DejaVu Sans, has no Chinese characters: a poem's tokens on an attention
map would be drawn as empty boxes, with a "Glyph ... missing from font(s) DejaVu Sans" warning for
each. Since matplotlib 3.6 `rcParams["font.family"]` may list several families, and a character
missing from the first is taken from the next. So `use_cjk_font` appends an installed CJK family
to that list: Latin text keeps its font, Chinese characters get theirs. It runs when mt.viz is
imported (and again when a plot starts a new figure, in case a style reset the list).

With no CJK font installed, the first plot whose labels hold CJK text warns once, saying how to
install one. matplotlib caches its font list; a font installed after the cache was written is
found by scanning the system's font folders once, here.
"""

from __future__ import annotations

import re
import warnings

import matplotlib
from matplotlib import font_manager

# Families tried in order: Simplified Chinese first (the poems), then whatever a system may have.
CJK_FAMILIES = (
    "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN", "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei", "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "SimHei", "Heiti SC",
    "Noto Serif CJK SC", "Source Han Serif SC", "SimSun", "AR PL UMing CN", "Noto Sans CJK TC",
    "Noto Sans CJK JP", "Noto Sans CJK KR", "Source Han Sans", "Droid Sans Fallback", "Arial Unicode MS",
)
# File names of such fonts, for fonts that matplotlib's cached list does not know yet.
_CJK_FILE = re.compile(r"cjk|sourcehan|wqy|wenquanyi|pingfang|hiragino|msyh|simhei|simsun|uming|ukai|"
                       r"droidsansfallback|notosans(sc|tc|jp|kr)|notoserif(sc|tc|jp|kr)", re.IGNORECASE)
# Han ideographs, CJK punctuation, kana, Hangul, full-width forms: what DejaVu Sans cannot draw.
_CJK_TEXT = re.compile("[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef"
                       "\U00020000-\U0003ffff]")
INSTALL_HINT = ("no CJK font found: Chinese characters in plots will be empty boxes. Install one, then "
                "restart Python: `sudo apt-get install fonts-noto-cjk` (Debian, Ubuntu), "
                "`sudo pacman -S noto-fonts-cjk` (Arch) or `conda install -c conda-forge font-ttf-noto-cjk`")

_state = {"family": None, "searched": False, "warned": False}


def has_cjk(text: str) -> bool:
    """Whether `text` holds a character that needs a CJK font."""
    return bool(_CJK_TEXT.search(text))


def find_cjk_font() -> str | None:
    """The family name of an installed CJK font (the first of CJK_FAMILIES found), or None."""
    if not _state["searched"]:
        _state["family"] = _first_known() or _first_known(after_scanning=True)
        _state["searched"] = True
    return _state["family"]


def _first_known(after_scanning: bool = False) -> str | None:
    if after_scanning:  # fonts installed after matplotlib wrote its cache: add them to its list
        for path in font_manager.findSystemFonts():
            if _CJK_FILE.search(path):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):  # an unreadable file is no font
                    continue
    names = {f.name for f in font_manager.fontManager.ttflist}
    return next((family for family in CJK_FAMILIES if family in names), None)


def use_cjk_font() -> str | None:
    """Append an installed CJK family to rcParams["font.family"] (Latin text keeps its font).

    Returns the family, or None when no CJK font is installed. Calling it again changes nothing.
    """
    family = find_cjk_font()
    if family is not None:
        current = list(matplotlib.rcParams["font.family"])
        if family not in current:
            matplotlib.rcParams["font.family"] = [*current, family]
    return family


def warn_if_cjk_cannot_be_drawn(text: str) -> None:
    """Once per session: warn how to install a CJK font when `text` needs one and there is none."""
    if not _state["warned"] and has_cjk(text) and find_cjk_font() is None:
        _state["warned"] = True
        warnings.warn(INSTALL_HINT, stacklevel=3)
