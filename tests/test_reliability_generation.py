"""generate under huge and odd requests (issue 17): nothing allocated up front, fast refusals that
name the setting, beam sampling that never returns empty slots, and clear errors for odd inputs."""

import contextlib
import time
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import minitransformer as mt
from minitransformer.errors import ConfigError
from minitransformer.generation import generate, memory, stream

V = 11


def tiny_gpt(vocab=V, max_len=32, scale=20.0):
    torch.manual_seed(0)
    cfg = mt.TransformerConfig(vocab_size=vocab, d_model=16, n_heads=2, n_layers=2, max_len=max_len,
                               tie_weights=False)
    model = mt.GPT(cfg).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(scale)  # spread logits: a random model is otherwise near-uniform
    return model


@pytest.fixture(scope="module")
def model():
    return tiny_gpt()


@pytest.fixture(scope="module")
def prompt():
    return torch.tensor([[3, 1, 4, 1, 5]])


@contextlib.contextmanager
def address_space_limit(extra_bytes):
    """Let this process map at most `extra_bytes` more: an 8 GB allocation then fails at once
    instead of filling the test machine's memory."""
    resource = pytest.importorskip("resource")
    try:
        with open("/proc/self/status") as f:
            in_use = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        pytest.skip("needs /proc/self/status (Linux)")
    old = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (in_use + extra_bytes, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, old)


# ----------------------------------------------------------------------------- huge requests


@pytest.mark.parametrize("call", ["max_new_tokens", "max_length", "stream"])
def test_a_huge_length_allocates_as_it_goes(model, prompt, call):
    eos = int(generate(model, prompt, max_new_tokens=1)[0, -1])  # greedy writes it first: it stops at once
    huge = 10**9
    start = time.perf_counter()
    with address_space_limit(2 * 2**30), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "beyond the model's context" (a sliding window)
        if call == "stream":
            out = list(stream(model, prompt, max_new_tokens=huge, eos_token_id=eos))
        else:
            out = generate(model, prompt, eos_token_id=eos, **{call: huge})[0, 5:].tolist()
    assert out == [eos]
    assert time.perf_counter() - start < 1.0


def test_the_growing_buffers_give_the_tokens_of_a_short_request(model):
    """The ids and the mask grow by doubling (5 -> 10 -> 20 columns here): same tokens as before."""
    ids = torch.tensor([[0, 0, 3, 1, 4], [2, 7, 3, 1, 4], [0, 9, 9, 2, 6]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 1, 1, 1]])
    free = generate(model, ids, attention_mask=mask, max_new_tokens=12)
    eos = int(free[:, 5:].flatten().mode().values)
    assert all(eos in row for row in free[:, 5:].tolist())  # the test's precondition: every row stops
    short = generate(model, ids, attention_mask=mask, max_new_tokens=12, eos_token_id=eos, pad_token_id=0)
    with address_space_limit(2 * 2**30), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "beyond the model's context"
        huge = generate(model, ids, attention_mask=mask, max_new_tokens=10**9, eos_token_id=eos, pad_token_id=0)
    assert torch.equal(huge, short)
    for row, free_row in zip(short.tolist(), free.tolist()):
        end = row.index(eos, 5) + 1
        assert row[:end] == free_row[:end]


@pytest.mark.parametrize("knobs, name", [
    (dict(num_beams=10**6), "num_beams"),
    (dict(num_beams=10**6, num_return_sequences=10), "num_beams"),
    (dict(do_sample=True, num_return_sequences=10**6), "num_return_sequences"),
])
def test_too_many_rows_are_refused_up_front(model, prompt, monkeypatch, knobs, name):
    monkeypatch.setattr(memory, "memory_of", lambda device: 2**30)  # a 1 GiB machine, whatever runs the test
    pattern = rf"{name}=1000000 .* more than the 1.1 GB of memory .* {name} <= \d+"
    start = time.perf_counter()
    with address_space_limit(2 * 2**30), pytest.raises(ConfigError, match=pattern):
        generate(model, prompt, max_new_tokens=2, **knobs)
    assert time.perf_counter() - start < 1.0


def test_a_billion_beams_are_refused_on_any_machine(model, prompt):
    start = time.perf_counter()
    with address_space_limit(2 * 2**30), pytest.raises(ConfigError, match="num_beams=1000000000"):
        generate(model, prompt, max_new_tokens=2, num_beams=10**9)
    assert time.perf_counter() - start < 1.0


def test_what_fits_is_not_refused(model, prompt, monkeypatch):
    per_row = memory.bytes_per_row(model, mt.GenerationSettings(num_beams=4))
    monkeypatch.setattr(memory, "memory_of", lambda device: 4 * per_row)
    assert generate(model, prompt, max_new_tokens=2, num_beams=4).shape == (1, 7)
    with pytest.raises(ConfigError, match="num_beams <= 4"):
        generate(model, prompt, max_new_tokens=2, num_beams=5)


# ----------------------------------------------------------------------------- beam sampling


@pytest.fixture(scope="module")
def pair():
    """(Hugging Face GPT2LMHeadModel, our GPT with the same weights), logits spread out."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=50, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                     bos_token_id=None, eos_token_id=None)
    hf = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.mul_(5)
    return hf, mt.GPT.from_hf_gpt2(hf)


def sampled(model_generate, ids, **kw):
    torch.manual_seed(0)  # the same draws for both libraries: the global generator, as Hugging Face uses
    return model_generate(ids, pad_token_id=1, do_sample=True, **kw)


def test_beam_sampling_never_returns_an_empty_slot(pair):
    """top_k=1 keeps 2 tokens a beam: after one token only 2 sequences are possible, and Hugging Face
    fills the third slot with id -1 and score -1e9. We refuse, saying how many exist."""
    hf, ours = pair
    ids = torch.randint(2, 50, (2, 6), generator=torch.Generator().manual_seed(1))
    kw = dict(num_beams=3, top_k=1, max_new_tokens=1)
    with pytest.raises(ValueError, match="only 2 possible sequences .* num_return_sequences <= 2"):
        sampled(lambda i, **k: generate(ours, i, **k), ids, num_return_sequences=3, **kw)
    for n, new in ((2, 1), (3, 3)):  # where every returned slot is real, the results are Hugging Face's
        kw["max_new_tokens"] = new
        expected = sampled(hf.generate, ids, num_return_sequences=n, **kw)
        got = sampled(lambda i, **k: generate(ours, i, **k), ids, num_return_sequences=n, **kw)
        assert torch.equal(got, expected) and got.min() >= 0


def test_beam_sampling_with_a_tiny_temperature_is_beam_search(pair):
    """temperature=1e-9 puts every real score below -1e9, Hugging Face's "impossible" mark, so its
    search returns no new tokens. Here, as temperature -> 0, beam sampling becomes beam search: the
    same sequences, with scores divided by the temperature."""
    _, ours = pair
    ids = torch.randint(2, 50, (2, 6), generator=torch.Generator().manual_seed(1))
    greedy = generate(ours, ids, max_new_tokens=4, pad_token_id=1)
    for eos in (None, int(greedy[0, 8])):  # an EOS id that ends some candidates on the way
        kw = dict(num_beams=2, num_return_sequences=2, max_new_tokens=4, eos_token_id=eos, return_dict=True)
        out = sampled(lambda i, **k: generate(ours, i, **k), ids, temperature=1e-9, **kw)
        beams = generate(ours, ids, pad_token_id=1, **kw)
        assert torch.equal(out.sequences, beams.sequences) and out.sequences.shape[1] > 6
        torch.testing.assert_close(out.sequences_scores * 1e-9, beams.sequences_scores)


@given(
    num_beams=st.integers(2, 4),
    fewer=st.integers(0, 3),
    do_sample=st.booleans(),
    temperature=st.integers(-12, 0).map(lambda e: 10.0**e),
    top_k=st.sampled_from([0, 1, 2, 50]),
    eos=st.one_of(st.none(), st.integers(0, V - 1)),
    max_new_tokens=st.integers(1, 4),
    length_penalty=st.sampled_from([-1.0, 0.0, 1.0, 2.0]),
    early_stopping=st.sampled_from([True, False, "never"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_beam_search_returns_only_real_hypotheses(model, num_beams, fewer, eos, seed, **knobs):
    """Every returned row is a real hypothesis (ids in the vocabulary, at least one new token, a
    finite score), or the call says that fewer sequences are possible than were asked for."""
    n = max(1, num_beams - fewer)
    ids = torch.randint(0, V, (2, 3), generator=torch.Generator().manual_seed(seed))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sampling knobs without do_sample only warn
            out = generate(model, ids, num_beams=num_beams, num_return_sequences=n, eos_token_id=eos,
                           generator=torch.Generator().manual_seed(seed), return_dict=True, **knobs)
    except ValueError as error:
        assert "possible sequences" in str(error)
        return
    assert out.sequences.shape[0] == 2 * n and out.sequences.shape[1] > 3
    assert out.sequences.min() >= 0 and out.sequences.max() < V
    assert torch.isfinite(out.sequences_scores).all()


def test_beam_sampling_draws_the_best_candidates_when_the_rest_underflow(pair):
    """With temperature 1e-3 only the best token keeps a probability above 0 in float32; the other
    candidates the draw needs are the best ones left (Hugging Face draws impossible ones: ids -1)."""
    _, ours = pair
    ids = torch.randint(2, 50, (2, 6), generator=torch.Generator().manual_seed(1))
    out = sampled(lambda i, **k: generate(ours, i, **k), ids, num_beams=3, num_return_sequences=3, top_k=0,
                  temperature=1e-3, max_new_tokens=1)
    with torch.no_grad():
        best = ours(ids)[:, -1].topk(3).indices  # (2, 3): the three most likely next tokens
    assert torch.equal(out[:, -1].view(2, 3), best)


def test_an_overflowing_length_penalty_is_refused(model, prompt):
    for lp in (1e300, -1e300, 200.0):
        with pytest.raises(ConfigError, match=r"length_penalty=.* too extreme.*\|length_penalty\| <= "):
            generate(model, prompt, num_beams=2, length_penalty=lp, max_new_tokens=3)
    out = generate(model, prompt, num_beams=2, length_penalty=50.0, max_new_tokens=3, return_dict=True)
    assert torch.isfinite(out.sequences_scores).all()  # within float32's range: allowed


# ----------------------------------------------------------------------------- odd inputs


def test_no_repeat_ngram_that_bans_every_token_says_so():
    model = tiny_gpt(vocab=5)
    with pytest.raises(ValueError, match="no_repeat_ngram_size=1 bans every token") as error:
        generate(model, torch.tensor([[0, 1]]), no_repeat_ngram_size=1, max_new_tokens=10)
    assert "temperature" not in str(error.value)


def test_a_temperature_that_overflows_is_named(model, prompt):
    with pytest.raises(ValueError, match="at the temperature stage"):
        generate(model, prompt, do_sample=True, temperature=1e-45, max_new_tokens=2)


@pytest.mark.parametrize("streamer", [object(), type("PutOnly", (), {"put": lambda self, x: None})()],
                         ids=["nothing", "no end"])
def test_a_streamer_without_put_and_end_is_a_type_error(model, prompt, streamer):
    with pytest.raises(TypeError, match="streamer must have put"):
        generate(model, prompt, max_new_tokens=2, streamer=streamer)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int32])
def test_ids_of_any_integer_dtype_are_read_as_long(model, prompt, dtype):
    expected = generate(model, prompt, max_new_tokens=3)
    got = generate(model, prompt.to(dtype), max_new_tokens=3)
    assert got.dtype == torch.long and torch.equal(got, expected)
    assert list(stream(model, prompt.to(dtype), max_new_tokens=3)) == expected[0, 5:].tolist()


def test_meta_tensors_and_a_device_mismatch_are_refused(model, prompt):
    with pytest.raises(ValueError, match="input_ids is on the meta device"):
        generate(model, prompt.to("meta"), max_new_tokens=2)
    with pytest.raises(ValueError, match="attention_mask is on the meta device"):
        generate(model, prompt, attention_mask=torch.ones(1, 5, device="meta"), max_new_tokens=2)
    with pytest.raises(ValueError, match="input_ids is on cpu, the model on meta"):
        generate(tiny_gpt().to("meta"), prompt, max_new_tokens=2)


def test_right_padding_is_warned_about(model):
    ids = torch.tensor([[3, 1, 4, 0], [2, 7, 1, 8]])
    with pytest.warns(UserWarning, match="right-padding was detected: row 0 of attention_mask"):
        generate(model, ids, attention_mask=torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]]), max_new_tokens=2)
    with pytest.warns(UserWarning, match="right-padding was detected: row 0 of the attention mask inferred"):
        generate(model, ids, pad_token_id=0, max_new_tokens=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # left padding is the right way: no warning
        generate(model, ids, attention_mask=torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]]), max_new_tokens=2)


# ----------------------------------------------------------------------------- hypothesis profiles


def test_hypothesis_profiles_search_randomly():
    """A derandomized profile replays the same examples every run: --hypothesis-seed changed nothing."""
    assert not settings.default.derandomize
    assert not settings.get_profile("ci").derandomize and settings.get_profile("ci").database is None
    assert settings.get_profile("thorough").max_examples >= 1000
    assert settings.get_profile("dev").max_examples < settings.get_profile("thorough").max_examples
