"""What every explorer shares: controls declared in a table, an error line, safe callbacks, display.

An explorer declares its controls and outputs as a table, attribute name -> `Control`,

    CONTROLS = {"temperature": float_slider("temperature", 0.05, 3.0, 0.05), ...}

and its look as nested lists of those names (`LAYOUT`). `_Explorer` builds one widget per entry
and sets it as an attribute (`explorer.temperature`), so code and tests can drive every control
through `.value` and read every output.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field

import ipywidgets as W

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


def int_slider(description, low, high, **options) -> Control:
    return Control(W.IntSlider, dict(min=low, max=high, description=description, style=STYLE, **options))


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


class _Explorer:
    """The error line, callbacks that cannot kill the widget, building from the tables, display."""

    widget: W.Widget

    def __init__(self, model, tokenizer, controls: dict, start=None, changes=None):
        """Build every entry of `controls` as an attribute; start: name -> starting value;
        changes: name -> options that depend on the model or the arguments (a slider's max)."""
        self.model, self.tokenizer = model, tokenizer
        self.error = W.HTML()
        self.error.add_class("mt-error")
        self._busy = False  # True while the explorer itself changes controls (their events are ignored)
        start, changes = start or {}, changes or {}
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
