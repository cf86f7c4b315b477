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
from .beam_search import beam_search
from .config import TransformerConfig
from .data import load_text, train_val_split
from .errors import (
    AssistantError,
    CheckpointError,
    ConfigError,
    MiniTransformerError,
    ShapeError,
    TrainingDivergedError,
    UnknownTokenError,
)
from .generation import (
    GenerationOutput,
    GenerationSettings,
    generate,
    generate_poem,
    next_token_distribution,
    stream,
)
from .layers import DecoderLayer, EncoderLayer, FeedForward
from .logits import (
    LogitsSettings,
    apply_repetition_penalty,
    apply_temperature,
    logits_stages,
    min_p_filter,
    no_repeat_ngram_filter,
    process_logits,
    top_k_filter,
    top_p_filter,
    typical_filter,
)
from .masks import causal_mask, combine_masks, padding_mask
from .models import GPT, Cache, MaskedLM, Seq2SeqTransformer
from .ngram import NGramLM
from .objectives import clm_loss, mask_tokens, mlm_loss, seq2seq_loss
from .positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    apply_rotary,
    sinusoidal_table,
)
from .recurrent import LSTM, RNN, CharLSTM, LSTMCell, RNNCell
from .tokenizers import BPETokenizer, CharTokenizer, load_tokenizer
from .tools.exercises import exercise
from .tools.hf_style import AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM, AutoTokenizer
from .tools.pipelines import pipeline
from .tools.pretrained import PRETRAINED, load_pretrained
from .tools.summary import count_parameters, summary
from .training import TrainConfig, Trainer, load_checkpoint, save_checkpoint

__version__ = "0.1.0"
