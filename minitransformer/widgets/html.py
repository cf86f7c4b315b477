"""The explorers' HTML: small functions from plain values to markup, so the update logic stays logic.

Every text that comes from the user or the tokenizer is escaped here.
"""

from __future__ import annotations

from html import escape

ERROR_COLOR, NOTE_COLOR = "#b00020", "#8a6d00"
BAR_COLOR = "#1f77b4"  # matplotlib's first colour, as in the figures
TEXT_BOX = "font-family:monospace;white-space:pre-wrap;border:1px solid #ddd;padding:4px;line-height:1.4"


def message(text: str, color: str) -> str:
    """One line of text in a colour (the explorers' error and note line)."""
    return f"<div style='color:{color};white-space:pre-wrap'>{escape(text)}</div>"


def error(text: str) -> str:
    return message(text, ERROR_COLOR)


def note(text: str) -> str:
    return message(f"Note: {text}", NOTE_COLOR)


def busy(text: str) -> str:
    """The line shown while a long update runs (the kernel is busy; the result replaces it)."""
    return message(f"computing… {text}", NOTE_COLOR)


def generated_text(tokenizer, prompt_ids, new_ids, highlight: int) -> str:
    """The prompt in bold, then the new text with the new token number `highlight` (from 0) marked."""
    pieces = [f"<b>{escape(tokenizer.decode(prompt_ids))}</b>"]
    for i, token_id in enumerate(new_ids):
        text = escape(tokenizer.decode([token_id]))
        pieces.append(f"<mark>{text or '∅'}</mark>" if i == highlight else text)  # ∅: a token with no text
    return f"<div style='{TEXT_BOX}'>{''.join(pieces)}</div>"


def attention_summary(query: str, position: int, keys) -> str:
    """'query X (position i) attends most to: ...'; keys: (label, weight) pairs, strongest first."""
    strongest = ", ".join(f"<b>{escape(label)}</b> {weight:.2f}" for label, weight in keys)
    return f"query <b>{escape(query)}</b> (position {position}) attends most to: {strongest}"


def hypotheses(finished) -> str:
    """A table of beam search's finished hypotheses; finished: (text, score, returned) triples."""
    rows = [[code(text), f"{score:.3f}", "yes" if returned else ""] for text, score, returned in finished]
    return table(rows, header=["finished hypothesis", "score", "returned"])


def predictions(number: int, position: int, guesses) -> str:
    """One [MASK]'s guesses as a table with a bar per probability; guesses: (label, probability) pairs."""
    rows = [[code(label), f"{p:.3f}", bar(p)] for label, p in guesses]
    return f"<p>[MASK] {number} (position {position})</p>{table(rows)}"


def table(rows, header=None) -> str:
    """rows: lists of cell markup; header: column titles (plain text)."""
    head = "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def code(text: str) -> str:
    return f"<code>{escape(text)}</code>"


def bar(fraction: float, width_px: int = 200) -> str:
    """A horizontal bar `fraction` of width_px long."""
    return f"<div style='background:{BAR_COLOR};height:0.8em;width:{width_px * fraction:.0f}px'></div>"
