"""Text generation with Hugging Face's semantics: the decoding loop and what surrounds it.

    settings.py    GenerationSettings: every decoding knob, declared once
    decoding.py    one call's checked inputs and the model seen as "ids -> next-token scores"
    loop.py        generate: greedy search, sampling, beam search
    constraints.py prefix_allowed_tokens_fn: only the tokens a function allows may come next
    poetry.py      generate_poem: Tang poems of a regular form, acrostics (藏头诗), given openings
    streaming.py   stream: each token as soon as it is chosen
    inspection.py  next_token_distribution: one step, stage by stage (notebook 10, the explorers)
    outputs.py     what return_dict_in_generate returns: scores, logits, attention weights per step
    memory.py      refusing, before any work, a request whose rows cannot fit in memory
"""

from .decoding import eval_mode
from .inspection import next_token_distribution
from .loop import generate
from .outputs import GenerationOutput
from .poetry import PoemGrammar, generate_poem
from .settings import GenerationSettings
from .streaming import stream

__all__ = ["GenerationOutput", "GenerationSettings", "PoemGrammar", "eval_mode", "generate", "generate_poem",
           "next_token_distribution", "stream"]
