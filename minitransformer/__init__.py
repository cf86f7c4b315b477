"""minitransformer: a readable, from-scratch Transformer for learning how language models generate text.

Every component is checked numerically against PyTorch's and Hugging Face's implementations
(see tests/). Start with the notebooks in notebooks/, or:

    import minitransformer as mt
    model, tokenizer = mt.load_pretrained("shakespeare-char")
"""

from .attention import (
    KVCache,
    MultiHeadAttention,
    attention_fast,
    attention_reference,
    scaled_dot_product_attention,
)
from .config import TransformerConfig
from .errors import (
    CheckpointError,
    ConfigError,
    MiniTransformerError,
    ShapeError,
    TrainingDivergedError,
    UnknownTokenError,
)
from .layers import DecoderLayer, EncoderLayer, FeedForward
from .masks import causal_mask, combine_masks, padding_mask
from .models import GPT, Cache, MaskedLM, Seq2SeqTransformer
from .positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    apply_rotary,
    sinusoidal_table,
)
from .summary import count_parameters, summary

__version__ = "0.1.0"
