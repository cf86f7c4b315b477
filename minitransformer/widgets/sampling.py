"""SamplingExplorer: greedy, sampling or beam search from a prompt, with every sampling knob.

Used by notebooks/11_decoding_explorer.ipynb.
"""

from __future__ import annotations

import torch

from .. import viz
from ..checks import checked, require_choice
from ..generation import generate, next_token_distribution
from ..models import GPT
from . import html
from .base import (
    ON_RELEASE,
    _Explorer,
    buttons,
    float_slider,
    html_output,
    in_range,
    int_slider,
    number_box,
    prompt_box,
    require_model,
    require_tokenizer,
)

_DISTRIBUTION_KEYS = ("temperature", "top_k", "top_p", "min_p", "repetition_penalty")  # what shapes a step
# The most new tokens an update may generate, measured on the bundled shakespeare-char model so that an
# update stays under a second on 2 cores: 200 tokens of greedy search or sampling take about 0.5 s;
# beam search costs about num_beams times more per token, so it stops at 100 (8 beams: about 0.6 s).
NEW_TOKEN_LIMITS = {"greedy": 200, "sampling": 200, "beam": 100}
MAX_TOP = 100  # rows of the distribution chart


class SamplingExplorer(_Explorer):
    """Generate from a prompt and watch how every decoding setting changes the text.

    Controls: prompt, strategy ("greedy", "sampling", "beam"), temperature, top_k (0 = off), top_p,
    min_p (0 = off), repetition_penalty, num_beams, max_new_tokens, seed, and step: the new token
    whose next-token distribution is drawn. Each keyword argument is the starting value of the
    control of the same name, and must lie in that control's range (max_new_tokens: at most
    NEW_TOKEN_LIMITS[strategy]; a prompt that runs past the model's context shows "computing..."
    while the slow sliding window runs). Outputs: text_output (the prompt in bold, the new text after it,
    the token of the chosen step highlighted) and plot_output (the distribution after each
    processing stage as an HTML bar chart, `viz.next_token_stages_html`; the token that was picked
    is marked in red; `top` tokens are drawn).
    """

    CONTROLS = {
        "prompt": prompt_box(),
        "strategy": buttons("strategy", ["greedy", "sampling", "beam"]),
        "temperature": float_slider("temperature", 0.05, 3.0, 0.05, **ON_RELEASE),
        "top_k": int_slider("top-k (0 = off)", 0, 200, **ON_RELEASE, why="0 = off; at most 200 or the vocabulary size"),
        "top_p": float_slider("top-p", 0.0, 1.0, 0.01, **ON_RELEASE),
        "min_p": float_slider("min-p (0 = off)", 0.0, 1.0, 0.01, **ON_RELEASE),
        "repetition_penalty": float_slider("repetition penalty", 0.5, 2.0, 0.05, **ON_RELEASE),
        "num_beams": int_slider("beams", 2, 8, **ON_RELEASE),
        "max_new_tokens": int_slider("new tokens", 1, max(NEW_TOKEN_LIMITS.values()), **ON_RELEASE,
                                     why="the limit keeps an update under a second; beam search "
                                     f"stops at {NEW_TOKEN_LIMITS['beam']}"),
        "seed": number_box("seed", 0, 2**31 - 1, width="160px"),
        "step": int_slider("show step", 1, 100, **ON_RELEASE, why="a new token: at most max_new_tokens"),
        "text_output": html_output("mt-generated-text"),
        "plot_output": html_output("mt-distribution-plot"),  # HTML bars: a matplotlib figure cost 30 ms
    }
    GENERATION_CONTROLS = [name for name in CONTROLS if name != "step" and not name.endswith("_output")]
    LAYOUT = [
        "prompt",
        "strategy",
        [
            ["temperature", "top_k", "top_p", "min_p"],
            ["repetition_penalty", "num_beams", "max_new_tokens", "seed"],
        ],
        "error",
        "text_output",
        "step",
        "plot_output",
    ]

    @checked(  # (the controls' table checks the other arguments; the strategy first, since limits read it)
        strategy=lambda name, value: require_choice(name, value, list(NEW_TOKEN_LIMITS)),
        top=in_range(1, MAX_TOP, integer=True, why="the rows of the distribution chart"),
    )
    def __init__(
        self, model, tokenizer, prompt="ROMEO:", *, strategy="sampling", temperature=1.0, top_k=0, top_p=1.0,
        min_p=0.0, repetition_penalty=1.0, num_beams=4, max_new_tokens=100, seed=0, step=1, top=15,
    ):
        require_model(model, GPT, "SamplingExplorer continues a prompt: it needs a GPT")
        require_tokenizer(tokenizer, model)
        start = dict(
            prompt=prompt, strategy=strategy, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
            repetition_penalty=repetition_penalty, num_beams=num_beams, max_new_tokens=max_new_tokens,
            seed=seed, step=step,
        )
        limits = dict(  # bounds that depend on the tokenizer or the arguments
            top_k=dict(max=min(tokenizer.vocab_size, 200)),
            max_new_tokens=dict(max=NEW_TOKEN_LIMITS[strategy]),
            step=dict(max=max_new_tokens),
        )
        super().__init__(model, tokenizer, self.CONTROLS, start, limits)
        self.top = top
        self.sequence, self.prompt_length = [], 0  # the last generated ids; how many are the prompt
        # Caches, so that a slider's update stays fast: the prompt's ids, and the key of the chart shown.
        self._encoded, self._shown = (None, None), None
        self._watch(self.GENERATION_CONTROLS, self.update)
        self._watch(["step"], self._show_step)
        self._open(self.LAYOUT)

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
        self._follow_strategy()
        prompt_ids = self._prompt_ids()
        self._say_if_slow(prompt_ids.shape[1], self.max_new_tokens.value)
        generator = torch.Generator().manual_seed(self.seed.value) if sampling else None
        out = generate(self.model, prompt_ids, generator=generator, **self.settings())  # (1, T + new)
        self.sequence, self.prompt_length = out[0].tolist(), prompt_ids.shape[1]
        n_new = len(self.sequence) - self.prompt_length
        with self._quietly():  # the step slider follows the number of new tokens without a second redraw
            self.step.max = max(n_new, 1)
        self._show_step()

    def _follow_strategy(self):
        """Enable the controls the strategy reads, and give the new-token slider the strategy's limit."""
        sampling = self.strategy.value == "sampling"
        for control in (self.temperature, self.top_k, self.top_p, self.min_p, self.seed):
            control.disabled = not sampling
        self.num_beams.disabled = self.strategy.value != "beam"
        with self._quietly():  # a value above the new limit moves down to it, without a second update
            self.max_new_tokens.max = NEW_TOKEN_LIMITS[self.strategy.value]

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
        self.text_output.value = html.generated_text(self.tokenizer, self.sequence[:T], new, s - 1)
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
