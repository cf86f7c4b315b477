"""The bilingual material: docs/glossary.md is complete and points at real notebooks; every notebook opens with
its learning objectives in English and Chinese."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GLOSSARY = (ROOT / "docs" / "glossary.md").read_text(encoding="utf-8")
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CJK = re.compile(r"[\u4e00-\u9fff]")


def table_rows(heading: str) -> list[list[str]]:
    section = GLOSSARY.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = [line.strip().strip("|").split("|") for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row] for row in rows[2:]]  # after the header and its rule


def test_every_term_has_english_chinese_and_real_notebooks():
    numbers = {p.name[:2] for p in NOTEBOOKS}
    rows = table_rows("## Terms")
    assert len(rows) >= 80
    for english, chinese, where in rows:
        assert english and CJK.search(chinese), (english, chinese)
        for number in re.findall(r"\d\d", where):
            assert number in numbers, f"{english!r} points at notebook {number}, which does not exist"


def test_mistranslations_name_the_wrong_and_the_right_term():
    rows = table_rows("## Mistranslations")
    assert any(row[0].startswith("Transformer") and "变压器" in row[2] for row in rows)
    for english, right, wrong, _why in rows:
        assert CJK.search(right), english
        assert CJK.search(wrong), f"{english}: name the mistranslation"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_opens_with_objectives_in_both_languages(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    opening = "".join("".join(c["source"]) for c in cells[:4] if c["cell_type"] == "markdown")
    assert "学习目标" in opening, f"{path.name}: objectives in Chinese (学习目标) missing from the opening"
    assert "What you will learn" in opening, f"{path.name}: objectives in English missing from the opening"
