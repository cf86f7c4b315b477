"""Tang poems on demand: `generate_poem` writes a poem of a regular form (poems.FORMS), optionally an
acrostic (藏头诗: its lines open with given characters) or the continuation of an opening, by letting
the model choose only among the tokens that the form allows at each position (constraints.py).

A regular form is a small grammar over characters. With w characters a line and n lines, position
p of the poem (0-based, punctuation counted) is column p % (w + 1) of line p // (w + 1):

    column < w        a Chinese character of the vocabulary (column 0 of an acrostic: its character)
    column = w        a line end: LINE_END["odd"] after lines 1, 3, ..., LINE_END["even"] after 2, 4, ...
    p = (w + 1) * n   "\\n": the poem is over, and generation stops (the newline is the EOS token)

The model wrote poems after a "\\n" in training (poems.py: every poem follows a newline), so the
prompt it sees is "\\n" + prompt, and the position is counted from the last newline. Every strategy
of `generate` works: greedy, sampling (temperature, top_k, top_p) and beam search (num_beams). The
form only removes what it forbids; among the rest the model's probabilities decide. Notebook 14.
"""

from __future__ import annotations

import unicodedata

import torch

from ..errors import describe
from ..poems import FORMS, LINE_END, POEM_END, has_form
from .loop import generate

# What generate_poem decides itself: the prompt, the length, the end, and a single poem as the result.
RESERVED = ("input_ids", "attention_mask", "settings", "max_new_tokens", "max_length", "min_new_tokens",
            "eos_token_id", "pad_token_id", "bos_token_id", "stop_strings", "prefix_allowed_tokens_fn",
            "num_return_sequences", "streamer", "return_dict", "return_dict_in_generate", "return_trace",
            "output_scores", "output_logits", "output_attentions", "src_ids", "src_mask", "tokenizer")


def is_chinese(ch: str) -> bool:
    """A CJK ideograph (a Chinese character), not punctuation, a symbol or a private-use placeholder."""
    return unicodedata.name(ch, "").startswith(("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH"))


class PoemGrammar:
    """The tokens that a form allows at each position of a poem, as ids of one character tokenizer.

    Called as fn(batch_id, input_ids) it is a prefix_allowed_tokens_fn: the poem so far is what
    follows the last newline of input_ids.
    """

    def __init__(self, tokenizer, form: str = "五言绝句", acrostic: str | None = None):
        if form not in FORMS:
            raise ValueError(f"form must be one of {', '.join(FORMS)}, got {describe(form)}")
        self.form, (self.width, self.n_lines) = form, FORMS[form]
        self.length = (self.width + 1) * self.n_lines  # characters and punctuation; the final newline apart
        self.chars, self.marks, self.newline = _vocabulary(tokenizer)
        self.char_ids = list(self.chars.values())  # built once: the list allowed inside every line
        self.ends = {kind: [self.marks[m] for m in LINE_END[kind] if m in self.marks] for kind in LINE_END}
        self.acrostic = None if acrostic is None else _checked_acrostic(self, acrostic)

    def allowed(self, p: int) -> list[int]:
        """The ids allowed at position p of the poem (0 = its first character)."""
        if p >= self.length:
            return [self.newline]
        line, column = divmod(p, self.width + 1)
        if column == self.width:
            return self.ends["odd" if line % 2 == 0 else "even"]  # line 1 is odd, and has index 0
        if column == 0 and self.acrostic:
            return [self.chars[self.acrostic[line]]]
        return self.char_ids

    def __call__(self, batch_id: int, input_ids: torch.Tensor) -> list[int]:
        newlines = (input_ids == self.newline).nonzero()
        start = int(newlines[-1]) + 1 if newlines.numel() else 0
        return self.allowed(input_ids.shape[0] - start)

    def encode_prompt(self, prompt: str) -> list[int]:
        """The ids of an opening, after checking that a poem of the form can start with it."""
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a string (the opening of the poem) or None, got "
                            f"{describe(prompt)}")
        if POEM_END in prompt:
            raise ValueError(f"prompt must not contain a newline (a newline ends a poem), got {prompt!r}")
        known = self.chars | self.marks
        unknown = [f"{ch!r} (character {p + 1})" for p, ch in enumerate(prompt) if ch not in known]
        if unknown:
            raise ValueError(f"prompt has characters outside the tokenizer's vocabulary: "
                             f"{', '.join(unknown)}")
        if len(prompt) > self.length:
            raise ValueError(f"prompt has {len(prompt)} characters, but a whole {self.form} has "
                             f"{self.length} ({self.n_lines} lines of {self.width} characters, each with "
                             "its punctuation)")
        ids = [known[ch] for ch in prompt]
        for p, i in enumerate(ids):
            if i not in self.allowed(p):
                raise ValueError(f"prompt does not fit a {self.form}: {self._misfit(p, prompt[p])}")
        return ids

    def _misfit(self, p: int, ch: str) -> str:
        """Why character p of a prompt cannot stand where it is."""
        line, column = divmod(p, self.width + 1)
        where = f"character {p + 1} {ch!r}"
        if column == self.width:
            marks = "".join(m for m in LINE_END["odd" if line % 2 == 0 else "even"] if m in self.marks)
            return (f"{where} follows the {self.width} characters of line {line + 1}, where one of {marks} "
                    "must end it")
        if column == 0 and self.acrostic and ch in self.chars:
            return f"{where} opens line {line + 1}, but the acrostic asks for {self.acrostic[line]!r}"
        return (f"{where} is character {column + 1} of line {line + 1}, where a Chinese character must be "
                f"(a line has {self.width}, then its punctuation)")


def _vocabulary(tokenizer):
    """({Chinese character: id}, {line-end mark: id}, newline id) of a character tokenizer."""
    if not (callable(getattr(tokenizer, "convert_ids_to_tokens", None)) and hasattr(tokenizer, "vocab_size")):
        raise TypeError(f"tokenizer must be a character tokenizer such as poems.poem_tokenizer(), got "
                        f"{describe(tokenizer)}")
    ids = {t: i for i, t in enumerate(tokenizer.convert_ids_to_tokens(range(tokenizer.vocab_size)))}
    chars = {t: i for t, i in ids.items() if len(t) == 1 and is_chinese(t)}
    marks = {m: ids[m] for m in dict.fromkeys(LINE_END["odd"] + LINE_END["even"]) if m in ids}
    missing = ["'\\n'"] if POEM_END not in ids else []
    missing += ["Chinese characters"] if not chars else []
    missing += [f"line end {LINE_END[kind]}" for kind in LINE_END if not set(LINE_END[kind]) & set(marks)]
    if missing:
        raise ValueError(f"tokenizer has no {' and no '.join(missing)}: a poem needs a character tokenizer "
                         "over Tang poems, such as poems.poem_tokenizer()")
    return chars, marks, ids[POEM_END]


def _checked_acrostic(grammar: PoemGrammar, acrostic) -> str:
    form, n = grammar.form, grammar.n_lines
    if not isinstance(acrostic, str):
        raise TypeError(f"acrostic must be a string with one character per line, got {describe(acrostic)}")
    if len(acrostic) != n:
        fitting = [f for f, (_, lines) in FORMS.items() if lines == len(acrostic)]
        hint = (f"forms with {len(acrostic)} lines: {', '.join(fitting)}" if fitting
                else "the forms have 4 or 8 lines")
        raise ValueError(f"acrostic must have one character per line: a {form} has {n} lines, got "
                         f"{len(acrostic)} characters {acrostic!r} ({hint})")
    why = lambda ch: "not in the vocabulary" if is_chinese(ch) else "not a Chinese character"
    bad = [f"{ch!r} (line {i + 1}: {why(ch)})" for i, ch in enumerate(acrostic) if ch not in grammar.chars]
    if bad:
        raise ValueError(f"acrostic must be Chinese characters of the tokenizer's vocabulary, got "
                         f"{', '.join(bad)}")
    return acrostic


def generate_poem(model, tokenizer, form: str = "五言绝句", acrostic: str | None = None,
                  prompt: str | None = None, **generate_kwargs) -> str:
    """A poem of `form` (五言绝句, 七言绝句, 五言律诗 or 七言律诗), without its final newline.

    acrostic: one character per line, which opens it (藏头诗). prompt: the poem's opening, kept as it
    is (characters and punctuation that fit the form, e.g. "床前明月光" for a 五言 form).
    generate_kwargs: decoding knobs of `generate`: do_sample, temperature, top_k, top_p, num_beams,
    repetition_penalty, generator, ... The length, the end and the constraint are set here.
    """
    grammar = PoemGrammar(tokenizer, form, acrostic)
    prompt_ids = grammar.encode_prompt("" if prompt is None else prompt)
    reserved = sorted(set(generate_kwargs) & set(RESERVED))
    if reserved:
        raise TypeError(f"generate_poem sets {reserved} itself (the form fixes the length and the end); pass "
                        "decoding knobs such as do_sample, temperature, top_k, top_p, num_beams, generator")
    _check_model(model, tokenizer, grammar)
    device = next(model.parameters()).device
    ids = torch.tensor([[grammar.newline, *prompt_ids]], device=device)  # (1, T): a poem follows a newline
    new = grammar.length + 1 - len(prompt_ids)  # the rest of the poem and its final newline
    out = generate(model, ids, max_new_tokens=new, eos_token_id=grammar.newline,
                   prefix_allowed_tokens_fn=grammar, **generate_kwargs)
    poem = tokenizer.decode(out[0, 1:].tolist()).rstrip(POEM_END)
    if not has_form(poem, form):  # the grammar allows nothing else: this would be a bug here, not the model's
        raise RuntimeError(f"generate_poem produced {poem!r}, which is not a {form}")
    return poem


def _check_model(model, tokenizer, grammar: PoemGrammar) -> None:
    config = getattr(model, "config", None)
    if config is None or not hasattr(model, "next_token_logits"):
        raise TypeError(f"model must be a GPT trained on poems, got {describe(model)}")
    if config.vocab_size < tokenizer.vocab_size:
        raise ValueError(f"model has vocab_size={config.vocab_size}, fewer than the tokenizer's "
                         f"{tokenizer.vocab_size} tokens: they do not belong together")
    need = grammar.length + 1  # the opening newline and every character but the final newline is read
    if config.max_len < need:
        sizes = {f: (w + 1) * n + 1 for f, (w, n) in FORMS.items()}
        fitting = [f"{f} ({size})" for f, size in sizes.items() if size <= config.max_len]
        raise ValueError(f"form={grammar.form!r} needs a model context (config.max_len) of at least {need} "
                         f"tokens (a newline and {grammar.length} characters), but the model has "
                         f"max_len={config.max_len}; forms that fit: {', '.join(fitting) or 'none'}")
