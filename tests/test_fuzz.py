"""Property tests across the public API: random valid input never crashes and never gives NaN;
random invalid input gets one of the documented errors (ValueError / TypeError and their
subclasses, see docs/errors.md), never anything else."""

import warnings

import torch
from hypothesis import given
from hypothesis import strategies as st

import minitransformer as mt

V, MAX_LEN = 13, 10
DOCUMENTED = (ValueError, TypeError)
MODELS = {
    "gpt": mt.GPT(
        mt.TransformerConfig(vocab_size=V, d_model=16, n_heads=2, n_layers=1, max_len=MAX_LEN)
    ).eval(),
    "mlm": mt.MaskedLM(
        mt.TransformerConfig(vocab_size=V, d_model=16, n_heads=2, n_layers=1, max_len=MAX_LEN)
    ).eval(),
}


@given(
    kind=st.sampled_from(sorted(MODELS)),
    batch=st.integers(0, 3),
    length=st.integers(0, MAX_LEN + 3),
    low=st.integers(-2, V - 1),
    high=st.integers(0, V + 2),
    padded=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_forward_on_random_shapes_and_ids(kind, batch, length, low, high, padded, seed):
    # the ids come from the example's own seed, so that hypothesis can replay a failing example
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(min(low, high), max(low, high) + 1, (batch, length), generator=g)
    mask = None
    if padded and batch and length:
        mask = torch.ones(batch, length, dtype=torch.long)
        mask[0, : length // 2] = 0
        mask[0, -1] = 1  # a row keeps at least one real token
    try:
        with torch.no_grad():
            logits = MODELS[kind](ids, mask)
    except DOCUMENTED:
        valid = batch > 0 and 0 < length <= MAX_LEN and ids.min() >= 0 and ids.max() < V
        assert not valid, "valid input was refused"
        return
    assert logits.shape == (batch, length, V) and torch.isfinite(logits).all()


@given(
    do_sample=st.booleans(),
    temperature=st.floats(-1.0, 3.0),
    top_k=st.integers(-2, 20),
    top_p=st.floats(-0.5, 1.5),
    min_p=st.one_of(st.none(), st.floats(-0.5, 1.5)),
    typical_p=st.floats(-0.5, 1.5),
    repetition_penalty=st.floats(-1.0, 3.0),
    no_repeat_ngram_size=st.integers(-1, 3),
    num_beams=st.integers(0, 3),
    num_return_sequences=st.integers(0, 4),
    max_new_tokens=st.integers(-1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_generate_with_random_settings(seed, **kwargs):
    prompt = torch.randint(0, V, (2, 3), generator=torch.Generator().manual_seed(seed))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sampling knobs without do_sample only warn
            out = mt.generate(MODELS["gpt"], prompt, generator=torch.Generator().manual_seed(0), **kwargs)
    except DOCUMENTED:
        return
    n = kwargs["num_return_sequences"]
    assert out.dtype == torch.long and out.shape[0] == 2 * n
    assert 3 < out.shape[1] <= 3 + kwargs["max_new_tokens"]
    assert (out[:, :3] == prompt.repeat_interleave(n, dim=0)).all()
    assert out.min() >= 0 and out.max() < V


@given(text=st.text(max_size=40))
def test_char_tokenizer_on_arbitrary_text(text):
    tok = mt.CharTokenizer("abc ", special_tokens=("[UNK]",))
    ids = tok.encode(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert len(tok.decode(ids)) == len(ids) or "[UNK]" in tok.decode(ids)
