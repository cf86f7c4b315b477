"""Pictures of what a Transformer computes: attention maps, masks, positions, next-token distributions.

Every function draws with matplotlib and returns what it drew on: an `ax=` (or `fig=` for grids)
can be passed in, otherwise a new figure is made. Tensors may be torch tensors, NumPy arrays or
nested lists. Letters as everywhere in the package: B batch, H heads, L layers, T/Tq/Tk sequence
lengths, S source length, C = d_model, D = d_head, V vocabulary.

    attention.py   plot_attention, plot_attention_grid, plot_cross_attention, to_bertviz, plot_mask,
                   plot_generation_attention (what each generated token attended to)
    positions.py   plot_sinusoidal, plot_position_similarity, plot_rope_rotation
    decoding.py    plot_next_token_stages (logits.logits_stages) and next_token_stages_html
    beam_tree.py   plot_beam_tree (beam_search trace)
    curves.py      plot_history, LivePlot (a Trainer callback), plot_embeddings_pca
    architecture.py  plot_architecture (a model's block diagram, from its config and modules), parameter_parts
    _common.py     colours, token labels, figure_png

Used by the widgets and the notebooks (11_decoding_explorer and the topic notebooks), as `viz.plot_attention`.
"""

from ._common import CHOSEN_COLOR, KEPT_COLOR, REMOVED_COLOR, figure_png, show_token, token_label
from .architecture import parameter_parts, plot_architecture
from .attention import (
    plot_attention,
    plot_attention_grid,
    plot_cross_attention,
    plot_generation_attention,
    plot_mask,
    to_bertviz,
)
from .beam_tree import plot_beam_tree
from .curves import LivePlot, plot_embeddings_pca, plot_history
from .decoding import next_token_stages_html, plot_next_token_stages
from .positions import plot_position_similarity, plot_rope_rotation, plot_sinusoidal

__all__ = [
    "CHOSEN_COLOR",
    "KEPT_COLOR",
    "REMOVED_COLOR",
    "LivePlot",
    "figure_png",
    "next_token_stages_html",
    "parameter_parts",
    "plot_architecture",
    "plot_attention",
    "plot_attention_grid",
    "plot_beam_tree",
    "plot_cross_attention",
    "plot_embeddings_pca",
    "plot_generation_attention",
    "plot_history",
    "plot_mask",
    "plot_next_token_stages",
    "plot_position_similarity",
    "plot_rope_rotation",
    "plot_sinusoidal",
    "show_token",
    "token_label",
]
