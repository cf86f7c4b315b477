"""Interactive explorers for notebooks: move a control, see what the model does.

    SamplingExplorer    greedy / sampling / beam search and every sampling knob; the text and the
                        next-token distribution at any step (viz.plot_next_token_stages)   sampling.py
    AttentionExplorer   attention maps by layer, head and query token (GPT, MaskedLM, Seq2Seq)  attention.py
    BeamSearchExplorer  num_beams, length_penalty, early_stopping and the search tree       beam_search.py
    FillMaskExplorer    a MaskedLM's top predictions for every [MASK] in a text             fill_mask.py

Built from standard ipywidgets only (base.py declares the controls, html.py writes the HTML).
Every control is an attribute (`explorer.temperature`, `explorer.layer`, ...), and so is every
output (`.text_output`, an HTML widget, and `.plot_output`, an HTML or Image widget), so code and
tests can set `.value` and read the result. Display an explorer by leaving it last in a cell, or
with `display(explorer.widget)`. A setting that cannot work (top_p=0, a character the tokenizer
does not know) shows its error message in `.error` and leaves the widget alive: the next valid
change works again. A starting value (a constructor argument) outside its control's range is an
error at once, naming the argument and the range. The slider limits were measured so that every
update stays under a second with the bundled models on 2 cores; a prompt that runs past the model's
context (slow: no KV cache there) shows "computing..." in `.error` until the result replaces it.

Used by notebooks/11_decoding_explorer.ipynb.
"""

from .attention import AttentionExplorer
from .beam_search import BeamSearchExplorer
from .fill_mask import FillMaskExplorer
from .sampling import SamplingExplorer

__all__ = ["SamplingExplorer", "AttentionExplorer", "BeamSearchExplorer", "FillMaskExplorer"]
