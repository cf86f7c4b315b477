"""AttentionExplorer: attention maps by layer, head and query token (GPT, MaskedLM, Seq2Seq).

Used by notebooks/11_decoding_explorer.ipynb.
"""

from __future__ import annotations

import math

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .. import viz
from ..generation import eval_mode, generate
from ..models import GPT, MaskedLM, Seq2SeqTransformer
from . import html
from .base import (
    _Explorer,
    buttons,
    dropdown,
    html_output,
    image_output,
    int_slider,
    require_model,
    require_tokenizer,
    text_box,
)

TEXT_INPUTS = {"text": text_box("text", rows=2)}  # GPT and MaskedLM read one text
SEQ2SEQ_INPUTS = {
    "source": text_box("source"),
    "target": text_box("target (empty: the model's output)"),
    "kind": buttons("attention", ["encoder", "decoder", "cross"]),
}
# Drawing the token labels is what costs time (not the heatmap): 64 labelled tokens per axis took about
# 0.45 s to draw on the bundled shakespeare-char model, 256 about 2.5 s. A longer text labels every n-th
# token only, and the figure stops growing, so a redraw stays under a second however long the text.
MAX_LABELS = 48
VIEW = {  # what to draw of the attention computed for the inputs
    "layer": int_slider("layer", 0, 0),
    "head": dropdown("head"),
    "query": dropdown("query", [("all", -1)]),
    "summary": html_output(),
    "plot_output": image_output("mt-attention-plot"),
}


class AttentionExplorer(_Explorer):
    """Attention weights by layer, head and query token.

    GPT and MaskedLM: `text=` is the input. Seq2SeqTransformer: `source=` is the encoder's input and
    `target=` the decoder's (None: the model's own greedy output); `kind` picks "encoder",
    "decoder" or "cross" attention. Controls: text (or source and target), kind, layer, head (-1 =
    the mean of all heads), query (-1 = all; a query's row is outlined and its strongest keys listed
    in `summary`). Output: plot_output, the heatmap.
    """

    def __init__(self, model, tokenizer, text="ROMEO: But soft, what light", *, source=None, target=None):
        kinds = (GPT, MaskedLM, Seq2SeqTransformer)
        require_model(model, kinds, "model must be a GPT, MaskedLM or Seq2SeqTransformer")
        require_tokenizer(tokenizer, model)
        self.is_seq2seq = isinstance(model, Seq2SeqTransformer)
        if not self.is_seq2seq and (source, target) != (None, None):
            raise TypeError(f"source= and target= are a Seq2SeqTransformer's inputs; a {type(model).__name__} "
                            "reads text=")
        inputs = SEQ2SEQ_INPUTS if self.is_seq2seq else TEXT_INPUTS
        start = dict(text=text, source=source if source is not None else text, target=target or "")
        start.update(kind="cross", head=0, query=-1)
        cfg = model.config
        heads = [("mean of heads", -1)] + [(str(h), h) for h in range(cfg.n_heads)]
        limits = dict(layer=dict(max=cfg.n_layers - 1), head=dict(options=heads))
        super().__init__(model, tokenizer, {**inputs, **VIEW}, start, limits)
        self._figure = Figure(figsize=(6, 5), layout="constrained")
        self._attentions = None  # set by update(); None while the text cannot be encoded
        self._watch(inputs, self.update)
        self._watch(["layer", "head", "query"], self._draw)
        self._open([*inputs, ["layer", "head", "query"], "error", "summary", "plot_output"])

    def update(self):
        """Run the model on the current text(s) and redraw."""
        with eval_mode(self.model), torch.inference_mode():
            if self.is_seq2seq:
                src = self._encode(self.source.value, "source")
                tgt = self._target_ids(src)
                _, att = self.model(src, tgt, return_attention=True)
                self._attentions = att  # {"encoder", "decoder", "cross"}: lists of (1, H, Tq, Tk)
                self._tokens = {"source": self._labels(src), "target": self._labels(tgt)}
            else:
                ids = self._encode(self.text.value, "text")
                _, att = self.model(ids, return_attention=True)
                self._attentions, self._tokens = {"self": att}, {"source": self._labels(ids)}
        with self._quietly():
            self.query.options = [("all", -1)] + [(f"{i}: {t}", i) for i, t in enumerate(self._part()[1])]
            self.query.value = -1
        self._draw()

    def _encode(self, text, name):
        ids = self.tokenizer.encode(text)
        if not ids:
            raise ValueError(f"the {name} is empty: type some text")
        return torch.tensor([ids], dtype=torch.long)  # (1, T)

    def _target_ids(self, src):
        bos = self.tokenizer.bos_token_id
        if self.target.value:
            ids = self.tokenizer.encode(self.target.value)
            return torch.tensor([([bos] if bos is not None else []) + ids], dtype=torch.long)
        max_new = min(32, self.model.config.max_len - 1)
        return generate(
            self.model,
            src_ids=src,
            bos_token_id=bos,
            eos_token_id=self.tokenizer.eos_token_id,
            max_new_tokens=max_new,
        )  # (1, 1 + new): the decoder's start token, then its output

    def _labels(self, ids):
        return [viz.token_label(self.tokenizer, i) for i in ids[0].tolist()]

    def _part(self):
        """(attention list, query labels, key labels) for the selected kind of attention."""
        if not self.is_seq2seq:
            return self._attentions["self"], self._tokens["source"], self._tokens["source"]
        src, tgt = self._tokens["source"], self._tokens["target"]
        q, k = {"encoder": (src, src), "decoder": (tgt, tgt), "cross": (tgt, src)}[self.kind.value]
        return self._attentions[self.kind.value], q, k

    def _draw(self):
        """The heatmap of the chosen layer and head; the chosen query's row outlined and summarised."""
        if self._attentions is None:
            return
        layers, q_tokens, k_tokens = self._part()
        weights = layers[self.layer.value][0]  # (H, Tq, Tk)
        head = self.head.value
        weights = weights.mean(dim=0) if head == -1 else weights[head]  # (Tq, Tk)
        self._figure.clear()
        ax = self._figure.add_subplot()
        viz.plot_attention(weights, q_tokens, k_tokens, ax=ax, title=self._title())
        _thin_labels(ax.xaxis, len(k_tokens))
        _thin_labels(ax.yaxis, len(q_tokens))
        shown = min(len(k_tokens), MAX_LABELS), min(len(q_tokens), MAX_LABELS)
        self._figure.set_size_inches(2.5 + 0.16 * shown[0], 2.2 + 0.16 * shown[1])
        q = self.query.value
        self.summary.value = ""
        if q >= 0:
            ax.add_patch(_row_outline(q, len(k_tokens)))
            best = weights[q].topk(min(5, len(k_tokens)))
            keys = [(k_tokens[j], w) for w, j in zip(best.values.tolist(), best.indices.tolist())]
            self.summary.value = html.attention_summary(q_tokens[q], q, keys)
        self.plot_output.value = viz.figure_png(self._figure, dpi=90)

    def _title(self):
        name = self.kind.value + " " if self.is_seq2seq else ""
        head = self.head.value
        return f"{name}attention, layer {self.layer.value}, " + ("mean of heads" if head == -1 else f"head {head}")


def _thin_labels(axis, n):
    """Keep the label of every k-th of the n tokens along `axis`, at most MAX_LABELS of them."""
    every = math.ceil(n / MAX_LABELS)
    if every > 1:
        labels = [label.get_text() for label in axis.get_ticklabels()]
        axis.set_ticks(range(0, n, every), labels[::every])


def _row_outline(row, width):
    """A red frame around row `row` of a heatmap `width` cells wide."""
    return Rectangle((-0.5, row - 0.5), width, 1, fill=False, edgecolor="red", linewidth=2)
