"""The concept map in notebooks/README.md cannot go stale.

Each row of the map names a topic, the sections that teach it, written `NN §"Heading"` (a `"` inside a heading is
written `\\"`, as Markdown escapes it), and the package modules, in backquotes. The tests check that every cited
notebook exists and has a markdown heading with exactly that text, that every module exists, that every notebook
appears in the README's table, and that every topic the course must teach has a row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
README = NOTEBOOKS / "README.md"
PACKAGE = ROOT / "minitransformer"

REFERENCE = re.compile(r'(\d\d) §"((?:[^"\\]|\\.)*)"')  # 12 §"3. Training compute" (\" for a quote inside)
MARKDOWN_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")  # \" -> "; \sqrt stays (only punctuation is escaped)
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$")
MODULE = re.compile(r"`([\w./-]+(?:\.py|\.json|/))`")  # `ngram.py`, `models/`, `assets/scaling_shakespeare.json`

# Every topic the course must teach (issue 14: the topics of the material the course replaces, each misconception
# it names, and the course's own subjects). Each must occur, ignoring case, in the topic column of some row.
TOPICS = [
    # before the Transformer
    "n-gram language models", "RNNs", "LSTMs", "vanishing", "RNN/LSTM vs Transformer, measured", "parallelism",
    "long-range dependencies",
    # the GPT family, scale, data and compute
    "GPT family and scale", "GPT-1", "GPT-2", "GPT-3", "Megatron-Turing NLG", "training compute", "training data",
    "scaling laws",
    # kinds of models and of generation
    "generative vs discriminative", "conditional vs unconditional generation", "T5 as a family",
    # applications, limits and risks
    "applications: a writing assistant", "dialogue", "question answering", "summarisation", "limits and risks",
    "bias", "hallucination", "misuse",
    # the misconceptions the issue names
    "myth: GPT is pre-trained with masked LM and next-sentence prediction",
    "myth: Megatron-Turing NLG was built by OpenAI and Microsoft with 175B parameters",
    "myth: GPT-3 has 17 layers",
    "myth: multi-head outputs are summed",
    "myth: a positional encoding is an embedding followed by a linear layer",
    "myth: `max_length` counts only new tokens",
    "变压器",
    # the course's own subjects
    "prerequisites", "architecture diagram", "attention", "masks", "positional encodings", "RoPE",
    "multi-head attention", "KV cache", "cross-attention", "feed-forward", "layer normalisation", "pre-LN",
    "parameter counts", "tokenizers", "byte-pair encoding", "Chinese tokenization", "causal language-modelling",
    "fine-tuning", "masked language modelling", "encoder-decoder", "teacher forcing", "decoding strategies",
    "greedy", "beam search", "temperature", "top-k", "top-p", "min-p", "repetition", "constrained decoding",
    "Tang-poetry", "acrostic",
]


@dataclass
class Row:
    line: int  # in README.md, for messages
    topic: str
    references: list[tuple[str, str]]  # (notebook number, heading text)
    modules: list[str]


def concept_map() -> list[Row]:
    """The rows of every table under "## Concept map" (until the next "## " heading)."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index("## Concept map")
    rows = []
    for number, line in enumerate(lines[start + 1 :], start=start + 2):
        if line.startswith("## "):
            break
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if cells[0] == "topic":  # a table's header
            continue
        assert len(cells) == 3, f"README.md line {number}: a row needs 3 cells (topic | sections | package): {line}"
        references = [(nn, MARKDOWN_ESCAPE.sub(r"\1", text)) for nn, text in REFERENCE.findall(cells[1])]
        rows.append(Row(number, cells[0], references, MODULE.findall(cells[2])))
    return rows


ROWS = concept_map()
CITED = sorted({nn for row in ROWS for nn, _ in row.references})


def notebook_file(nn: str) -> Path | None:
    found = sorted(NOTEBOOKS.glob(f"{nn}_*.ipynb"))
    return found[0] if len(found) == 1 else None


def headings(path: Path) -> set[str]:
    """The text of every markdown heading in a notebook (`## 3. Teacher forcing` -> "3. Teacher forcing")."""
    nb = nbformat.read(path, as_version=4)
    return {
        m.group(1)
        for cell in nb.cells
        if cell.cell_type == "markdown"
        for m in map(HEADING.match, cell.source.splitlines())
        if m
    }


def test_the_map_has_rows_and_every_row_cites_a_section():
    assert len(ROWS) >= 50, f"the concept map has only {len(ROWS)} rows"
    uncited = [f"line {row.line}: {row.topic}" for row in ROWS if not row.references]
    assert not uncited, 'rows without a section written NN §"Heading":\n' + "\n".join(uncited)


@pytest.mark.parametrize("nn", CITED)
def test_every_cited_heading_is_in_its_notebook(nn):
    path = notebook_file(nn)
    assert path is not None, f"the concept map cites notebook {nn}, but notebooks/ has no single {nn}_*.ipynb"
    found = headings(path)
    missing = [
        f'README.md line {row.line}: {nn} §"{text}"'
        for row in ROWS
        for number, text in row.references
        if number == nn and text not in found
    ]
    assert not missing, f"{path.name} has no heading with this text (renamed? update the map):\n" + "\n".join(missing)


def test_every_module_in_the_map_exists():
    assert any(row.modules for row in ROWS)
    missing = [
        f"README.md line {row.line}: {module}"
        for row in ROWS
        for module in row.modules
        if not (PACKAGE / module).exists() and not (ROOT / module).exists()
    ]
    assert not missing, "modules the concept map names that do not exist:\n" + "\n".join(missing)


def test_every_topic_of_the_course_has_a_row():
    topics = [row.topic.lower() for row in ROWS]
    absent = [topic for topic in TOPICS if not any(topic.lower() in t for t in topics)]
    assert not absent, f"topics with no row in the concept map: {absent}"


def test_the_readme_lists_every_notebook_and_only_those():
    listed = set(re.findall(r"`(\d\d_\w+\.ipynb)`", README.read_text(encoding="utf-8")))
    on_disk = {path.name for path in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")}
    assert not on_disk - listed, f"notebooks missing from notebooks/README.md: {sorted(on_disk - listed)}"
    assert not listed - on_disk, f"notebooks/README.md lists notebooks that do not exist: {sorted(listed - on_disk)}"


def test_the_parser_reads_escaped_quotes_and_latex():
    cell = r'15 §"1.1 \"GPT is pre-trained\""; 02 §"3. Why divide by $\sqrt{d_k}$?"'
    found = [(nn, MARKDOWN_ESCAPE.sub(r"\1", text)) for nn, text in REFERENCE.findall(cell)]
    assert found == [("15", '1.1 "GPT is pre-trained"'), ("02", r"3. Why divide by $\sqrt{d_k}$?")]
