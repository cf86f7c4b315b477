"""Interactive explorers for notebooks: move a control, see what the model does.

    SamplingExplorer    greedy / sampling / beam search and every sampling knob; the text and the
                        next-token distribution at any step (viz.plot_next_token_stages)
    AttentionExplorer   attention maps by layer, head and query token (GPT, MaskedLM, Seq2Seq)
    BeamSearchExplorer  num_beams, length_penalty, early_stopping and the search tree
    FillMaskExplorer    a MaskedLM's top predictions for every [MASK] in a text

Built from standard ipywidgets only. Every control is an attribute (`explorer.temperature`,
`explorer.layer`, ...), and so is every output (`.text_output`, an HTML widget, and
`.plot_output`, an Image widget holding a PNG), so code and tests can set `.value` and read the
result. Display an explorer by leaving it last in a cell, or with `display(explorer.widget)`.
A setting that cannot work (top_p=0, a character the tokenizer does not know) shows its error
message in `.error` and leaves the widget alive: the next valid change works again.

Used by notebooks/10_decoding_explorer.ipynb.
"""

from __future__ import annotations

import contextlib
import html
import warnings

import ipywidgets as W
import torch
from matplotlib.figure import Figure

from . import viz
from .generation import generate, next_token_distribution
from .models import GPT, MaskedLM, Seq2SeqTransformer
from .models.base import eval_mode

STYLE = {"description_width": "initial"}  # keep long descriptions readable
_DISTRIBUTION_KEYS = ("temperature", "top_k", "top_p", "min_p", "repetition_penalty")  # what shapes a step
# Plots keep their own size instead of being stretched to the width of the box.
_NATURAL_SIZE = W.Layout(align_self="flex-start", max_width="100%")


class _Explorer:
    """What every explorer shares: the error line, callbacks that cannot kill the widget, display."""

    widget: W.Widget

    def _setup(self):
        self.error = W.HTML()
        self.error.add_class("mt-error")
        self._busy = False  # True while the explorer itself changes controls (their events are ignored)

    def _watch(self, controls, handler):
        """Call handler() (safely) whenever one of the controls' values changes."""
        for control in controls:
            control.observe(lambda _change: self._run(handler), names="value")

    def _run(self, handler) -> bool:
        """Run handler(); show an exception's message in self.error instead of raising it."""
        if self._busy:
            return False
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                handler()
        except Exception as e:  # a widget callback is a boundary: report, don't die
            self.error.value = _message(f"{type(e).__name__}: {e}", "#b00020")
            return False
        notes = "; ".join(str(w.message) for w in caught)
        self.error.value = _message(f"Note: {notes}", "#8a6d00") if notes else ""
        return True

    @contextlib.contextmanager
    def _quietly(self):
        """Change controls from code without triggering the handlers."""
        self._busy = True
        try:
            yield
        finally:
            self._busy = False

    def _repr_mimebundle_(self, **kwargs):  # an explorer left last in a cell shows its widget
        return self.widget._repr_mimebundle_(**kwargs)


class SamplingExplorer(_Explorer):
    """Generate from a prompt and watch how every decoding setting changes the text.

    Controls: prompt, strategy ("greedy", "sampling", "beam"), temperature, top_k (0 = off), top_p,
    min_p (0 = off), repetition_penalty, num_beams, max_new_tokens, seed, and step: the new token
    whose next-token distribution is drawn. Each keyword argument is the starting value of the
    control of the same name. Outputs: text_output (the prompt in bold, the new text after it,
    the token of the chosen step highlighted) and plot_output (the distribution after each
    processing stage as an HTML bar chart, `viz.next_token_stages_html`; the token that was picked
    is marked in red; `top` tokens are drawn).
    """

    def __init__(
        self,
        model,
        tokenizer,
        prompt="ROMEO:",
        *,
        strategy="sampling",
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        min_p=0.0,
        repetition_penalty=1.0,
        num_beams=4,
        max_new_tokens=100,
        seed=0,
        step=1,
        top=15,
    ):
        if not isinstance(model, GPT):
            raise TypeError(
                f"SamplingExplorer continues a prompt: it needs a GPT, got {type(model).__name__}"
            )
        self.model, self.tokenizer, self.top = model, tokenizer, top
        self._setup()
        slider = dict(style=STYLE, continuous_update=False)
        self.prompt = _prompt_box(prompt)
        self.strategy = W.ToggleButtons(
            options=["greedy", "sampling", "beam"], value=strategy, description="strategy", style=STYLE
        )
        self.temperature = W.FloatSlider(
            temperature, min=0.05, max=3.0, step=0.05, description="temperature", **slider
        )
        k_max = min(tokenizer.vocab_size, 200)
        self.top_k = W.IntSlider(top_k, min=0, max=k_max, description="top-k (0 = off)", **slider)
        self.top_p = W.FloatSlider(top_p, min=0.0, max=1.0, step=0.01, description="top-p", **slider)
        self.min_p = W.FloatSlider(
            min_p, min=0.0, max=1.0, step=0.01, description="min-p (0 = off)", **slider
        )
        self.repetition_penalty = W.FloatSlider(
            repetition_penalty, min=0.5, max=2.0, step=0.05, description="repetition penalty", **slider
        )
        self.num_beams = W.IntSlider(num_beams, min=2, max=8, description="beams", **slider)
        self.max_new_tokens = W.IntSlider(
            max_new_tokens, min=1, max=max(400, max_new_tokens), description="new tokens", **slider
        )
        self.seed = W.BoundedIntText(
            seed, min=0, max=2**31 - 1, description="seed", style=STYLE, layout=W.Layout(width="160px")
        )
        self.step = W.IntSlider(step, min=1, max=max_new_tokens, description="show step", **slider)
        self.text_output = W.HTML()
        self.text_output.add_class("mt-generated-text")
        self.plot_output = W.HTML()  # an HTML bar chart: drawing it with matplotlib cost 30 ms an update
        self.plot_output.add_class("mt-distribution-plot")
        self._encoded = (None, None)  # (prompt text, its ids): encode only when the prompt changes
        self._shown = None  # what plot_output shows now, to skip redrawing the same picture
        self.sequence, self.prompt_length = [], 0

        generation_controls = [
            self.prompt,
            self.strategy,
            self.temperature,
            self.top_k,
            self.top_p,
            self.min_p,
            self.repetition_penalty,
            self.num_beams,
            self.max_new_tokens,
            self.seed,
        ]
        self._watch(generation_controls, self.update)
        self._watch([self.step], self._show_step)
        columns = [
            [self.temperature, self.top_k, self.top_p, self.min_p],
            [self.repetition_penalty, self.num_beams, self.max_new_tokens, self.seed],
        ]
        self.widget = W.VBox(
            [
                self.prompt,
                self.strategy,
                W.HBox([W.VBox(c) for c in columns]),
                self.error,
                self.text_output,
                self.step,
                self.plot_output,
            ]
        )
        self._run(self.update)

    def settings(self) -> dict:
        """generate's keyword arguments for the current controls."""
        kwargs = dict(
            max_new_tokens=self.max_new_tokens.value,
            repetition_penalty=self.repetition_penalty.value,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        if self.strategy.value == "sampling":
            kwargs.update(
                do_sample=True,
                temperature=self.temperature.value,
                top_k=self.top_k.value,
                top_p=self.top_p.value,
                min_p=self.min_p.value or None,
            )
        elif self.strategy.value == "beam":
            kwargs.update(num_beams=self.num_beams.value)
        return kwargs

    def update(self):
        """Generate again with the current controls, then redraw the text and the chosen step."""
        sampling = self.strategy.value == "sampling"
        for control in (self.temperature, self.top_k, self.top_p, self.min_p, self.seed):
            control.disabled = not sampling
        self.num_beams.disabled = self.strategy.value != "beam"
        prompt_ids = self._prompt_ids()
        generator = torch.Generator().manual_seed(self.seed.value) if sampling else None
        out = generate(self.model, prompt_ids, generator=generator, **self.settings())  # (1, T + new)
        self.sequence, self.prompt_length = out[0].tolist(), prompt_ids.shape[1]
        n_new = len(self.sequence) - self.prompt_length
        with self._quietly():  # the step slider follows the number of new tokens without a second redraw
            self.step.max = max(n_new, 1)
        self._show_step()

    def _prompt_ids(self):
        text, ids = self._encoded
        if text != self.prompt.value:
            ids = torch.tensor([self.tokenizer.encode(self.prompt.value)], dtype=torch.long)  # (1, T)
            self._encoded = (self.prompt.value, ids)
        return ids

    def _show_step(self):
        """Text with the chosen token highlighted; the distribution it was drawn from."""
        T, s = self.prompt_length, self.step.value
        new = self.sequence[T:]
        self.text_output.value = _generated_html(self.tokenizer, self.sequence[:T], new, s - 1)
        if not new:
            return
        settings = {k: v for k, v in self.settings().items() if k in _DISTRIBUTION_KEYS}
        settings.setdefault("top_k", 0)  # greedy and beam search use no top-k: draw only what applies
        key = (tuple(self.sequence[: T + s]), tuple(sorted(settings.items())))
        if key == self._shown:
            return
        context = torch.tensor([self.sequence[: T + s - 1]])  # (1, T + s - 1): what the model saw
        stages = next_token_distribution(self.model, context, top=1, **settings)
        title = f"step {s}: the next-token distribution after each stage; the token picked is in red"
        self.plot_output.value = viz.next_token_stages_html(
            stages, self.tokenizer, top=self.top, chosen=new[s - 1], title=title
        )
        self._shown = key


class AttentionExplorer(_Explorer):
    """Attention weights by layer, head and query token.

    GPT and MaskedLM: `text=` is the input. Seq2SeqTransformer: `source=` is the encoder's input and
    `target=` the decoder's (None: the model's own greedy output); `kind` picks "encoder",
    "decoder" or "cross" attention. Controls: text (or source and target), kind, layer, head (-1 =
    the mean of all heads), query (-1 = all; a query's row is outlined and its strongest keys listed
    in `summary`). Output: plot_output, the heatmap.
    """

    def __init__(self, model, tokenizer, text="ROMEO: But soft, what light", *, source=None, target=None):
        if not isinstance(model, (GPT, MaskedLM, Seq2SeqTransformer)):
            raise TypeError(
                f"model must be a GPT, MaskedLM or Seq2SeqTransformer, got {type(model).__name__}"
            )
        self.model, self.tokenizer = model, tokenizer
        self.is_seq2seq = isinstance(model, Seq2SeqTransformer)
        self._setup()
        cfg = model.config
        box = dict(continuous_update=False, style=STYLE, layout=W.Layout(width="98%"))
        if self.is_seq2seq:
            self.source = W.Text(source if source is not None else text, description="source", **box)
            self.target = W.Text(target or "", description="target (empty: the model's output)", **box)
            self.kind = W.ToggleButtons(
                options=["encoder", "decoder", "cross"], value="cross", description="attention", style=STYLE
            )
            inputs = [self.source, self.target, self.kind]
        else:
            self.text = W.Textarea(text, description="text", rows=2, **box)
            inputs = [self.text]
        self.layer = W.IntSlider(0, min=0, max=cfg.n_layers - 1, description="layer", style=STYLE)
        self.head = W.Dropdown(
            options=[("mean of heads", -1)] + [(str(h), h) for h in range(cfg.n_heads)],
            value=0,
            description="head",
            style=STYLE,
        )
        self.query = W.Dropdown(options=[("all", -1)], value=-1, description="query", style=STYLE)
        self.summary = W.HTML()
        self.plot_output = W.Image(format="png", layout=_NATURAL_SIZE)
        self.plot_output.add_class("mt-attention-plot")
        self._figure = Figure(figsize=(6, 5), layout="constrained")
        self._attentions = None  # set by update(); None while the text cannot be encoded
        self._watch(inputs, self.update)
        self._watch([self.layer, self.head, self.query], self._draw)
        self.widget = W.VBox(
            [*inputs, W.HBox([self.layer, self.head, self.query]), self.error, self.summary, self.plot_output]
        )
        self._run(self.update)

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
            self.query.options = [("all", -1)] + [(f"{i}: {t}", i) for i, t in enumerate(self._queries())]
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

    def _queries(self):
        return self._part()[1]

    def _draw(self):
        if self._attentions is None:
            return
        layers, q_tokens, k_tokens = self._part()
        weights = layers[self.layer.value][0]  # (H, Tq, Tk)
        head = self.head.value
        weights = weights.mean(dim=0) if head == -1 else weights[head]  # (Tq, Tk)
        name = self.kind.value + " " if self.is_seq2seq else ""
        self._figure.clear()
        ax = self._figure.add_subplot()
        title = f"{name}attention, layer {self.layer.value}, " + (
            "mean of heads" if head == -1 else f"head {head}"
        )
        viz.plot_attention(weights, q_tokens, k_tokens, ax=ax, title=title)
        n = len(q_tokens)
        self._figure.set_size_inches(2.5 + 0.16 * len(k_tokens), 2.2 + 0.16 * n)
        q = self.query.value
        self.summary.value = ""
        if q >= 0:
            ax.add_patch(_row_outline(q, len(k_tokens)))
            best = weights[q].topk(min(5, len(k_tokens)))
            keys = ", ".join(
                f"<b>{html.escape(k_tokens[j])}</b> {w:.2f}"
                for w, j in zip(best.values.tolist(), best.indices.tolist())
            )
            self.summary.value = (
                f"query <b>{html.escape(q_tokens[q])}</b> (position {q}) attends most to: {keys}"
            )
        self.plot_output.value = viz.figure_png(self._figure, dpi=90)


class BeamSearchExplorer(_Explorer):
    """Beam search step by step: every candidate, which beams survive, which hypotheses finish.

    Controls: prompt, num_beams, length_penalty, early_stopping (False, True or "never"),
    max_new_tokens. Outputs: plot_output (the search tree, viz.plot_beam_tree) and text_output
    (the finished hypotheses with their scores, best first).
    """

    def __init__(self, model, tokenizer, prompt="ROMEO:", num_beams=3, max_new_tokens=6):
        if not isinstance(model, GPT):
            raise TypeError(
                f"BeamSearchExplorer continues a prompt: it needs a GPT, got {type(model).__name__}"
            )
        self.model, self.tokenizer = model, tokenizer
        self._setup()
        self.prompt = _prompt_box(prompt)
        self.num_beams = W.IntSlider(num_beams, min=2, max=6, description="beams", style=STYLE)
        self.length_penalty = W.FloatSlider(
            1.0, min=-2.0, max=3.0, step=0.25, description="length penalty", style=STYLE
        )
        self.early_stopping = W.Dropdown(
            options=[("False", False), ("True", True), ("never", "never")],
            value=False,
            description="early stopping",
            style=STYLE,
        )
        self.max_new_tokens = W.IntSlider(
            max_new_tokens, min=1, max=12, description="new tokens", style=STYLE
        )
        self.text_output = W.HTML()
        self.text_output.add_class("mt-beam-text")
        self.plot_output = W.Image(format="png", layout=_NATURAL_SIZE)
        self.plot_output.add_class("mt-beam-plot")
        self._figure = Figure(figsize=(8, 4), layout="constrained")
        controls = [
            self.prompt,
            self.num_beams,
            self.length_penalty,
            self.early_stopping,
            self.max_new_tokens,
        ]
        self._watch(controls, self.update)
        self.widget = W.VBox(
            [
                self.prompt,
                W.HBox(controls[1:3]),
                W.HBox(controls[3:]),
                self.error,
                self.text_output,
                self.plot_output,
            ]
        )
        self._run(self.update)

    def update(self):
        ids = torch.tensor([self.tokenizer.encode(self.prompt.value)], dtype=torch.long)  # (1, T)
        k = self.num_beams.value
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
        rows = "".join(
            f"<tr><td><code>{html.escape(self.tokenizer.decode(h['tokens']))}</code></td><td>{h['score']:.3f}</td>"
            f"<td>{'yes' if h['returned'] else ''}</td></tr>"
            for h in sorted(trace["finished"], key=lambda h: -h["score"])
        )
        self.text_output.value = (
            f"<table><tr><th>finished hypothesis</th><th>score</th><th>returned</th></tr>{rows}</table>"
        )
        steps, most = len(trace["steps"]), 2 * k
        self._figure.clear()
        self._figure.set_size_inches(1.5 + 1.1 * steps, 1.2 + 0.38 * most)
        viz.plot_beam_tree(trace, self.tokenizer, ax=self._figure.add_subplot())
        self.plot_output.value = viz.figure_png(self._figure, dpi=90)


class FillMaskExplorer(_Explorer):
    """A MaskedLM's guesses for every [MASK] in a text, with their probabilities.

    Controls: text (write [MASK] where a token should be predicted), top. Output: text_output,
    one table per [MASK].
    """

    def __init__(
        self, model, tokenizer, text="ROMEO: But soft, what li[MASK]ht through yonder window", top=5
    ):
        if not isinstance(model, MaskedLM):
            raise TypeError(f"FillMaskExplorer needs a MaskedLM, got {type(model).__name__}")
        if tokenizer.mask_token_id is None:
            raise ValueError(
                "the tokenizer has no [MASK] token: build it with special_tokens=('[MASK]', ...)"
            )
        self.model, self.tokenizer = model, tokenizer
        self._setup()
        self.text = W.Text(
            text, description="text", continuous_update=False, style=STYLE, layout=W.Layout(width="98%")
        )
        self.top = W.IntSlider(top, min=1, max=20, description="predictions", style=STYLE)
        self.text_output = W.HTML()
        self.text_output.add_class("mt-fill-mask")
        self._watch([self.text, self.top], self.update)
        self.widget = W.VBox([self.text, self.top, self.error, self.text_output])
        self._run(self.update)

    def update(self):
        ids = self.tokenizer.encode(self.text.value)
        where = [i for i, t in enumerate(ids) if t == self.tokenizer.mask_token_id]
        if not where:
            raise ValueError("the text has no [MASK]: write [MASK] where the model should fill in a token")
        with eval_mode(self.model), torch.inference_mode():
            probs = self.model(torch.tensor([ids]))[0, where].softmax(dim=-1)  # (n_masks, V)
        best = probs.topk(min(self.top.value, probs.shape[-1]))
        tables = []
        for n, (position, p, idx) in enumerate(
            zip(where, best.values.tolist(), best.indices.tolist()), start=1
        ):
            rows = "".join(
                f"<tr><td><code>{html.escape(viz.token_label(self.tokenizer, i))}</code></td>"
                f"<td>{q:.3f}</td><td><div style='background:#1f77b4;height:0.8em;width:{200 * q:.0f}px'></div>"
                f"</td></tr>"
                for q, i in zip(p, idx)
            )
            tables.append(f"<p>[MASK] {n} (position {position})</p><table>{rows}</table>")
        self.text_output.value = "".join(tables)


# ----------------------------------------------------------------------------- helpers


def _message(text, color):
    return f"<div style='color:{color};white-space:pre-wrap'>{html.escape(text)}</div>"


def _generated_html(tokenizer, prompt_ids, new_ids, highlight):
    """The prompt in bold, then the new text with token `highlight` marked."""
    pieces = [f"<b>{html.escape(tokenizer.decode(prompt_ids))}</b>"]
    for i, token_id in enumerate(new_ids):
        text = html.escape(tokenizer.decode([token_id]))
        pieces.append(f"<mark>{text or '∅'}</mark>" if i == highlight else text)
    return (
        "<div style='font-family:monospace;white-space:pre-wrap;border:1px solid #ddd;padding:4px;line-height:1.4'>"
        + "".join(pieces)
        + "</div>"
    )


def _row_outline(row, width):
    from matplotlib.patches import Rectangle

    return Rectangle((-0.5, row - 0.5), width, 1, fill=False, edgecolor="red", linewidth=2)


def _prompt_box(text):
    return W.Textarea(
        text, description="prompt", rows=2, continuous_update=False, style=STYLE, layout=W.Layout(width="98%")
    )
