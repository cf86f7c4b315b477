"""What every explorer shares: controls declared in a table, an error line, safe callbacks, display.

An explorer declares its controls and outputs as a table, attribute name -> `Control`,

    CONTROLS = {"temperature": float_slider("temperature", 0.05, 3.0, 0.05), ...}

and its look as nested lists of those names (`LAYOUT`). `_Explorer` builds one widget per entry
and sets it as an attribute (`explorer.temperature`), so code and tests can drive every control
through `.value` and read every output. The same table checks the starting values first: a value
that a control cannot take is an error naming the argument and its range, not a traitlets error
(or a silent clamp to the slider's end) from inside ipywidgets.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field

import ipywidgets as W

from ..checks import is_int, is_number, require_choice
from ..errors import ConfigError, describe
from . import html

STYLE = {"description_width": "initial"}  # keep long descriptions readable
ON_RELEASE = {"continuous_update": False}  # report when let go or left, not at every move or key
FULL_WIDTH = {"width": "98%"}
NATURAL_SIZE = {"align_self": "flex-start", "max_width": "100%"}  # a plot keeps its size, not the box's


@dataclass(frozen=True)
class Control:
    """How to build one control or output: its ipywidgets class, options, layout and CSS class."""

    kind: type
    options: dict = field(default_factory=dict)
    layout: dict = field(default_factory=dict)
    css_class: str | None = None
    why: str = ""  # why the range is what it is, for the error message of a starting value outside it

    def make(self, value=None, **changes) -> W.Widget:
        """The widget, starting at `value` (None: the class's own); `changes` override options."""
        options = {**self.options, **changes}
        if value is not None:
            options["value"] = value
        if self.layout:
            options["layout"] = W.Layout(**self.layout)
        widget = self.kind(**options)
        if self.css_class:
            widget.add_class(self.css_class)
        return widget

    def check(self, name, value, **changes):
        """Raise unless the control (with `changes` to its options) can start at `value`."""
        options = {**self.options, **changes}
        if issubclass(self.kind, (W.IntSlider, W.BoundedIntText)):
            require_in_range(name, value, options["min"], options["max"], integer=True, why=self.why)
        elif issubclass(self.kind, W.FloatSlider):
            require_in_range(name, value, options["min"], options["max"], why=self.why)
        elif issubclass(self.kind, (W.Text, W.Textarea)):
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a string, got {describe(value)}")
        elif "options" in options:  # a choice: ToggleButtons or Dropdown, of labels or (label, value) pairs
            require_choice(name, value, [o[1] if isinstance(o, tuple) else o for o in options["options"]])


def require_in_range(name, value, low, high, integer=False, why=""):
    """TypeError unless value is a number (an int if `integer`); ConfigError unless low <= value <= high."""
    kind = "an integer" if integer else "a number"
    if not (is_int(value) if integer else is_number(value)):
        raise TypeError(f"{name} must be {kind} in [{low}, {high}], got {describe(value)}")
    if not low <= value <= high:  # (NaN fails this too)
        hint = f" ({why})" if why else ""
        raise ConfigError(f"{name} must be {kind} in [{low}, {high}], got {describe(value)}{hint}")


def in_range(low, high, integer=False, why=""):
    """A check for `@checked`: a number in [low, high]."""
    return lambda name, value: require_in_range(name, value, low, high, integer, why)


def int_slider(description, low, high, why="", **options) -> Control:
    options = dict(min=low, max=high, description=description, style=STYLE, **options)
    return Control(W.IntSlider, options, why=why)


def float_slider(description, low, high, step, **options) -> Control:
    options = dict(min=low, max=high, step=step, description=description, style=STYLE, **options)
    return Control(W.FloatSlider, options)


def buttons(description, options) -> Control:
    """One of a few choices, all visible."""
    return Control(W.ToggleButtons, dict(options=options, description=description, style=STYLE))


def dropdown(description, options=()) -> Control:
    """One of many choices; options: labels, or (label, value) pairs."""
    return Control(W.Dropdown, dict(options=list(options), description=description, style=STYLE))


def number_box(description, low, high, width) -> Control:
    options = dict(min=low, max=high, description=description, style=STYLE)
    return Control(W.BoundedIntText, options, layout={"width": width})


def text_box(description, rows=None) -> Control:
    """A one-line text box, or a text area of `rows` lines; it reports its text when it loses focus."""
    kind, options = (W.Text, {}) if rows is None else (W.Textarea, {"rows": rows})
    return Control(kind, dict(description=description, style=STYLE, **options, **ON_RELEASE), FULL_WIDTH)


def prompt_box() -> Control:
    return text_box("prompt", rows=2)


def html_output(css_class=None) -> Control:
    return Control(W.HTML, css_class=css_class)


def image_output(css_class) -> Control:
    """A PNG image (a matplotlib figure, `viz.figure_png`) at its own size."""
    return Control(W.Image, dict(format="png"), NATURAL_SIZE, css_class)


def require_model(model, kinds, needs: str):
    """TypeError unless model is one of `kinds`; `needs` says what the explorer needs and why."""
    if not isinstance(model, kinds):
        raise TypeError(f"{needs}, got {type(model).__name__}")


def require_tokenizer(tokenizer, model):
    """TypeError unless tokenizer encodes and decodes; ValueError if it has ids the model cannot read."""
    if not all(hasattr(tokenizer, a) for a in ("encode", "decode", "vocab_size")):
        raise TypeError(f"tokenizer must be a minitransformer tokenizer (encode, decode, vocab_size), "
                        f"got {describe(tokenizer)}")
    if tokenizer.vocab_size > model.config.vocab_size:
        raise ValueError(f"tokenizer has {tokenizer.vocab_size} tokens, more than the model's "
                         f"vocab_size={model.config.vocab_size}: use the tokenizer the model was trained with")


class _Explorer:
    """The error line, callbacks that cannot kill the widget, building from the tables, display."""

    widget: W.Widget

    def __init__(self, model, tokenizer, controls: dict, start=None, changes=None):
        """Build every entry of `controls` as an attribute; start: name -> starting value;
        changes: name -> options that depend on the model or the arguments (a slider's max).
        Every starting value is checked (in table order) before the first widget is built."""
        start, changes = start or {}, changes or {}
        for name, control in controls.items():
            if name in start:
                control.check(name, start[name], **changes.get(name, {}))
        self.model, self.tokenizer = model, tokenizer
        self.error = W.HTML()
        self.error.add_class("mt-error")
        self._busy = False  # True while the explorer itself changes controls (their events are ignored)
        for name, control in controls.items():
            setattr(self, name, control.make(start.get(name), **changes.get(name, {})))

    def _watch(self, names, handler):
        """Call handler() (safely) whenever one of the named controls' values changes."""
        for name in names:
            getattr(self, name).observe(lambda _change: self._run(handler), names="value")

    def _open(self, layout):
        """Arrange the widget as `layout` says, then show the first result."""
        self.widget = self._arrange(layout)
        self._run(self.update)

    def _arrange(self, layout, vertical=True) -> W.Box:
        """layout: names from top to bottom; a list inside is a row, a list inside a row a column."""
        items = [self._arrange(x, not vertical) if isinstance(x, list) else getattr(self, x) for x in layout]
        return W.VBox(items) if vertical else W.HBox(items)

    def update(self):
        raise NotImplementedError

    def _say_if_slow(self, prompt_length, new_tokens):
        """Show "computing..." before a generation that runs past the model's context.

        The slider limits keep an update under a second while the prompt and the new tokens fit in
        the context (max_len); beyond it each new token recomputes the whole window without the KV
        cache, num_beams times over, and a long prompt can take many seconds. The front end shows
        this line while the kernel works; the result (and generate's own note) replaces it.
        """
        context = self.model.config.max_len
        beyond = prompt_length + new_tokens - 1 - context  # (the last new token is never fed back)
        if beyond > 0:
            self.error.value = html.busy(
                f"{beyond} of the tokens lie beyond the model's context (max_len={context}) and each "
                "recomputes the whole window: a shorter prompt or fewer new tokens is faster"
            )

    def _run(self, handler) -> bool:
        """Run handler(); show an exception's message in self.error instead of raising it."""
        if self._busy:
            return False
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                handler()
        except Exception as e:  # a widget callback is a boundary: report, don't die
            self.error.value = html.error(f"{type(e).__name__}: {e}")
            return False
        notes = "; ".join(str(w.message) for w in caught)
        self.error.value = html.note(notes) if notes else ""
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
