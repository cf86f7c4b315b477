"""Text generation with Hugging Face's semantics: the decoding loop and what surrounds it.

    settings.py    GenerationSettings: every decoding knob, declared once
    decoding.py    one call's checked inputs and the model seen as "ids -> next-token scores"
    loop.py        generate: greedy search, sampling, beam search
    streaming.py   stream: each token as soon as it is chosen
    inspection.py  next_token_distribution: one step, stage by stage (notebook 10, the explorers)
    outputs.py     what return_dict_in_generate returns: scores, logits, attention weights per step
    memory.py      refusing, before any work, a request whose rows cannot fit in memory
"""

from .decoding import eval_mode
from .inspection import next_token_distribution
from .loop import generate
from .outputs import GenerationOutput
from .settings import GenerationSettings
from .streaming import stream

__all__ = ["GenerationOutput", "GenerationSettings", "eval_mode", "generate", "next_token_distribution", "stream"]
