"""Widget responsiveness: how long `SamplingExplorer` takes to show new text after a slider moves.

The explorer is built on the bundled `shakespeare-char` model, its new-token count set to 100,
and its temperature slider moved ~20 times between two values. ipywidgets runs a slider's
observers synchronously when `.value` is set from Python, so the time of the assignment is the
time until the output is refreshed; we check that the output did change. If the widget offers
no temperature slider we can find, its update method is called directly instead (the note says
which). Until `minitransformer.widgets` or the bundled model exists, the section reports
"not available yet" instead of failing.
"""

from __future__ import annotations

import time

import torch

from .common import compare, fmt, not_available, stats, target

NAME = "widgets"
TITLE = "Widget responsiveness: SamplingExplorer update with 100 new tokens"
UPDATES, SMOKE_UPDATES = 20, 3
NEW_TOKENS, SMOKE_NEW_TOKENS = 100, 10
TARGET_MS = 150.0
UPDATE_METHODS = ("update", "refresh", "_update", "_refresh", "render", "_render")


def _widgets(obj, depth=0):
    """Every ipywidgets widget reachable from obj's attributes and children (depth-limited)."""
    import ipywidgets

    found, seen = [], set()

    def visit(x, d):
        if id(x) in seen or d > 4:
            return
        seen.add(id(x))
        if isinstance(x, ipywidgets.Widget):
            found.append(x)
            for child in getattr(x, "children", ()) or ():
                visit(child, d + 1)
        if not isinstance(x, ipywidgets.Widget) or d == 0:
            for value in getattr(x, "__dict__", {}).values():
                if isinstance(value, (list, tuple)):
                    for item in value:
                        visit(item, d + 1)
                else:
                    visit(value, d + 1)

    visit(obj, depth)
    return found


def _slider(widgets, *words):
    """The first numeric widget whose label contains words[0], else words[1], ..."""
    numeric = [
        w
        for w in widgets
        if isinstance(getattr(w, "value", None), (int, float)) and not isinstance(w.value, bool)
    ]
    for word in words:
        for w in numeric:
            label = f"{getattr(w, 'description', '')} {getattr(w, 'tooltip', '') or ''}".lower()
            if word in label:
                return w
    return None


def _output_state(widgets):
    """A fingerprint of everything the widget shows as text, to tell that an update happened."""
    parts = []
    for w in widgets:
        if hasattr(w, "outputs"):
            parts.append(repr(w.outputs))
        elif isinstance(getattr(w, "value", None), str):
            parts.append(w.value)
    return hash(tuple(parts))


def _generation_only(explorer, model, tokenizer, n):
    """Stats of `generate` alone with the explorer's current settings, or None if it has no settings()."""
    settings = getattr(explorer, "settings", None)
    prompt = getattr(getattr(explorer, "prompt", None), "value", None)
    if not callable(settings) or not isinstance(prompt, str):
        return None
    from minitransformer.generation import generate

    ids = torch.tensor([tokenizer.encode(prompt)])  # (1, T)
    kwargs = settings()

    def once():
        generate(model, ids, generator=torch.Generator().manual_seed(0), **kwargs)

    return compare({"generate": once}, warmup=1, repeat=n)["generate"]


def run(smoke: bool) -> dict:
    try:
        from minitransformer.widgets import SamplingExplorer
    except ImportError as e:
        return not_available(TITLE, f"minitransformer.widgets.SamplingExplorer is not importable yet ({e}).")
    import minitransformer as mt

    try:
        model, tokenizer = mt.load_pretrained("shakespeare-char")
    except (FileNotFoundError, ValueError, OSError) as e:
        return not_available(TITLE, f"the bundled shakespeare-char model is missing ({e}).")
    try:
        explorer = SamplingExplorer(model, tokenizer)
    except TypeError as e:
        return not_available(
            TITLE,
            f"SamplingExplorer(model, tokenizer) failed ({e}); adapt benchmarks/widgets.py to its signature.",
        )
    widgets = _widgets(explorer)
    new_tokens = SMOKE_NEW_TOKENS if smoke else NEW_TOKENS
    length = _slider(widgets, "new token", "max_new", "length", "tokens")
    if length is not None:
        length.value = new_tokens
    temperature = _slider(widgets, "temperature", "temp")
    method = next(
        (getattr(explorer, m) for m in UPDATE_METHODS if callable(getattr(explorer, m, None))), None
    )
    if temperature is None and method is None:
        return not_available(
            TITLE, "SamplingExplorer has no temperature slider and no update method to call."
        )
    times, changed = [], 0
    values = (0.8, 1.2)
    n = SMOKE_UPDATES if smoke else UPDATES
    for i in range(n + 1):  # the first update is a warm-up
        before = _output_state(widgets)
        start = time.perf_counter()
        if temperature is not None:
            temperature.value = values[i % 2]
        else:
            method()
        elapsed = time.perf_counter() - start
        changed += _output_state(widgets) != before
        if i:
            times.append(elapsed)
    s = stats(times)
    generation = _generation_only(explorer, model, tokenizer, n)
    how = (
        f"temperature slider ({temperature.description!r}) .value set"
        if temperature is not None
        else f"{method.__name__}() called directly"
    )
    note = (
        f"{how}; new tokens {'set to ' + str(new_tokens) if length is not None else 'left at the default'} "
        f"(slider {getattr(length, 'description', None)!r}); {n} timed updates after a warm-up; "
        f"the output changed in {changed} of {n + 1} updates. "
        + (
            f"generate() alone with the widget's settings: {fmt(generation['median'] * 1e3)} ms median, "
            "the rest of an update is drawing (text and plot)."
            if generation
            else ""
        )
    )
    return {
        "title": TITLE,
        "status": "ok",
        "note": note,
        "columns": ["updates", "median ms", "p95 ms", "min ms", "of which generate() (median ms)"],
        "rows": [
            [n, fmt(s["median"] * 1e3), fmt(s["p95"] * 1e3), fmt(s["min"] * 1e3)]
            + [fmt(generation["median"] * 1e3) if generation else "-"]
        ],
        "metrics": {"median_ms": s["median"] * 1e3, "p95_ms": s["p95"] * 1e3, "updates": n, "new_tokens": new_tokens}
        | ({"generate_only_median_ms": generation["median"] * 1e3} if generation else {}),
        "targets": [
            target(
                f"widget update <= {TARGET_MS:g} ms median",
                s["median"] * 1e3,
                TARGET_MS,
                f"{s['median'] * 1e3:.0f} ms (p95 {s['p95'] * 1e3:.0f} ms)",
                higher_is_better=False,
            )
        ],
    }


def plot(ax, section):
    m = section["metrics"]
    bars = {"update, median": m["median_ms"], "update, p95": m["p95_ms"]}
    if "generate_only_median_ms" in m:
        bars["generate() alone, median"] = m["generate_only_median_ms"]
    ax.barh(list(bars), list(bars.values()))
    ax.axvline(TARGET_MS, color="red", linestyle="--", label=f"target {TARGET_MS:g} ms (median)")
    ax.set_xlabel("ms")
    ax.set_title(f"SamplingExplorer update, {m.get('new_tokens', NEW_TOKENS)} new tokens")
    ax.legend(fontsize=7)
