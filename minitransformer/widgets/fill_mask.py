"""FillMaskExplorer: a MaskedLM's top predictions for every [MASK] in a text.

No notebook shows it yet; tests/test_widgets.py drives it.
"""

from __future__ import annotations

import torch

from .. import viz
from ..generation import eval_mode
from ..models import MaskedLM
from . import html
from .base import _Explorer, html_output, int_slider, require_model, require_tokenizer, text_box


class FillMaskExplorer(_Explorer):
    """A MaskedLM's guesses for every [MASK] in a text, with their probabilities.

    Controls: text (write [MASK] where a token should be predicted), top. Output: text_output,
    one table per [MASK].
    """

    CONTROLS = {
        "text": text_box("text"),
        "top": int_slider("predictions", 1, 20, why="the predictions listed per [MASK]"),
        "text_output": html_output("mt-fill-mask"),
    }

    def __init__(
        self, model, tokenizer, text="ROMEO: But soft, what li[MASK]ht through yonder window", top=5
    ):
        require_model(model, MaskedLM, "FillMaskExplorer needs a MaskedLM")
        require_tokenizer(tokenizer, model)
        if tokenizer.mask_token_id is None:
            raise ValueError(
                "the tokenizer has no [MASK] token: build it with special_tokens=('[MASK]', ...)"
            )
        super().__init__(model, tokenizer, self.CONTROLS, dict(text=text, top=top))
        self._watch(["text", "top"], self.update)
        self._open(["text", "top", "error", "text_output"])

    def update(self):
        """Predict every [MASK] of the text; one table of the top guesses per [MASK]."""
        ids = self.tokenizer.encode(self.text.value)
        where = [i for i, t in enumerate(ids) if t == self.tokenizer.mask_token_id]
        if not where:
            raise ValueError("the text has no [MASK]: write [MASK] where the model should fill in a token")
        with eval_mode(self.model), torch.inference_mode():
            probs = self.model(torch.tensor([ids]))[0, where].softmax(dim=-1)  # (n_masks, V)
        best = probs.topk(min(self.top.value, probs.shape[-1]))
        tables = []
        for n, (position, p, idx) in enumerate(zip(where, best.values.tolist(), best.indices.tolist()), start=1):
            guesses = [(viz.token_label(self.tokenizer, i), q) for q, i in zip(p, idx)]
            tables.append(html.predictions(n, position, guesses))
        self.text_output.value = "".join(tables)
