"""BeamSearchExplorer: num_beams, length_penalty, early_stopping and the search tree, step by step.

Used by notebooks/11_decoding_explorer.ipynb.
"""

from __future__ import annotations

import torch
from matplotlib.figure import Figure

from .. import viz
from ..generation import generate
from ..models import GPT
from . import html
from .base import (
    _Explorer,
    dropdown,
    float_slider,
    html_output,
    image_output,
    int_slider,
    prompt_box,
    require_model,
    require_tokenizer,
)

# Measured on the bundled shakespeare-char model: 6 beams and 12 new tokens (144 candidates in the tree)
# take about 0.6 s to search and draw on 2 cores; drawing the tree is most of it.
LIMITS_WHY = "the limits keep the tree readable and its update under a second"


class BeamSearchExplorer(_Explorer):
    """Beam search step by step: every candidate, which beams survive, which hypotheses finish.

    Controls: prompt, num_beams, length_penalty, early_stopping (False, True or "never"),
    max_new_tokens. Outputs: plot_output (the search tree, viz.plot_beam_tree) and text_output
    (the finished hypotheses with their scores, best first).
    """

    CONTROLS = {
        "prompt": prompt_box(),
        "num_beams": int_slider("beams", 2, 6, why=LIMITS_WHY),
        "length_penalty": float_slider("length penalty", -2.0, 3.0, 0.25),
        "early_stopping": dropdown("early stopping", [("False", False), ("True", True), ("never", "never")]),
        "max_new_tokens": int_slider("new tokens", 1, 12, why=LIMITS_WHY),
        "text_output": html_output("mt-beam-text"),
        "plot_output": image_output("mt-beam-plot"),
    }
    LAYOUT = [
        "prompt",
        ["num_beams", "length_penalty"],
        ["early_stopping", "max_new_tokens"],
        "error",
        "text_output",
        "plot_output",
    ]

    def __init__(self, model, tokenizer, prompt="ROMEO:", num_beams=3, max_new_tokens=6):
        require_model(model, GPT, "BeamSearchExplorer continues a prompt: it needs a GPT")
        require_tokenizer(tokenizer, model)
        start = dict(prompt=prompt, num_beams=num_beams, length_penalty=1.0, max_new_tokens=max_new_tokens)
        super().__init__(model, tokenizer, self.CONTROLS, start)
        self._figure = Figure(figsize=(8, 4), layout="constrained")
        self._watch(["prompt", "num_beams", "length_penalty", "early_stopping", "max_new_tokens"], self.update)
        self._open(self.LAYOUT)

    def update(self):
        """Search again; list the finished hypotheses, best first, and draw the tree."""
        ids = torch.tensor([self.tokenizer.encode(self.prompt.value)], dtype=torch.long)  # (1, T)
        k = self.num_beams.value
        self._say_if_slow(ids.shape[1], self.max_new_tokens.value)
        out = generate(
            self.model,
            ids,
            num_beams=k,
            num_return_sequences=k,
            length_penalty=self.length_penalty.value,
            early_stopping=self.early_stopping.value,
            max_new_tokens=self.max_new_tokens.value,
            eos_token_id=self.tokenizer.eos_token_id,
            return_trace=True,
        )
        trace = out.trace[0]
        finished = sorted(trace["finished"], key=lambda h: -h["score"])
        rows = [(self.tokenizer.decode(h["tokens"]), h["score"], h["returned"]) for h in finished]
        self.text_output.value = html.hypotheses(rows)
        steps, most = len(trace["steps"]), 2 * k  # the tree's columns; at most 2k candidates a step
        self._figure.clear()
        self._figure.set_size_inches(1.5 + 1.1 * steps, 1.2 + 0.38 * most)
        viz.plot_beam_tree(trace, self.tokenizer, ax=self._figure.add_subplot())
        self.plot_output.value = viz.figure_png(self._figure, dpi=90)
