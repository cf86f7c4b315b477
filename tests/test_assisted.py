"""Assisted greedy decoding (generation/assisted.py): whatever the assistant drafts, the result is the
model's own greedy output; a bfloat16 copy as the assistant gives float32's text (which plain bfloat16
does not: tests/test_bandwidth.py)."""

import copy

import pytest
import torch

import minitransformer as mt
from minitransformer.kv_cache import Cache, KVCache
from minitransformer.tools.cli import main
from minitransformer.tools.pretrained import load_model

PROMPTS = ["ROMEO:", "JULIET:\nO ", "\n", "HAMLET:", "MENENIUS:\nI", "Good morrow"]  # plain bfloat16 parts on 5


@pytest.fixture(scope="module")
def shakespeare():
    model, tokenizer = load_model("shakespeare-char")
    return model.eval(), tokenizer


def tiny_gpt(seed, vocab=11, max_len=48, scale=4.0):
    """A random GPT with peaked next-token distributions (scaled embeddings), so greedy output varies."""
    torch.manual_seed(seed)
    cfg = mt.TransformerConfig(vocab_size=vocab, d_model=16, n_heads=2, n_layers=2, max_len=max_len)
    model = mt.GPT(cfg).eval()
    with torch.no_grad():
        model.embed.tokens.weight.mul_(scale)
    return model


@pytest.mark.parametrize("prompt", PROMPTS)
def test_a_bfloat16_assistant_gives_float32s_greedy_text_for_200_tokens(shakespeare, prompt):
    model, tokenizer = shakespeare
    ids = torch.tensor([tokenizer.encode(prompt)])
    draft = copy.deepcopy(model).to(torch.bfloat16)
    expected = mt.generate(model, ids, max_new_tokens=200)
    assert torch.equal(mt.generate(model, ids, max_new_tokens=200, assistant_model=draft), expected)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("drafts", [1, 3, 20])
def test_any_assistant_gives_the_models_greedy_output(seed, drafts):
    """An unrelated random assistant is mostly wrong: the model corrects every rejected draft."""
    model, assistant = tiny_gpt(seed), tiny_gpt(seed + 100)
    ids = torch.randint(0, 11, (1, 1 + seed), generator=torch.Generator().manual_seed(seed))
    expected = mt.generate(model, ids, max_new_tokens=40)
    out = mt.generate(model, ids, max_new_tokens=40, assistant_model=assistant, num_assistant_tokens=drafts)
    assert torch.equal(out, expected)


@pytest.mark.parametrize(
    "knobs",
    [
        dict(repetition_penalty=1.5),
        dict(no_repeat_ngram_size=2),
        dict(eos_token_id=3, min_new_tokens=5),
        dict(eos_token_id=[3, 4], max_length=30),
        dict(repetition_penalty=1.3, no_repeat_ngram_size=3, eos_token_id=9),
    ],
)
def test_logits_processors_and_eos_apply_as_in_plain_greedy(knobs):
    model, assistant = tiny_gpt(1), tiny_gpt(1, scale=3.0)  # close to the model: long runs of kept drafts
    ids = torch.tensor([[1, 2, 3]])
    expected = mt.generate(model, ids, max_new_tokens=40, **knobs)
    assert torch.equal(mt.generate(model, ids, max_new_tokens=40, assistant_model=assistant, **knobs), expected)


def test_a_prefix_constraint_applies_to_drafts_and_checks():
    model, assistant = tiny_gpt(2), tiny_gpt(3)
    allowed = lambda batch, ids: [0, 1, 2] if len(ids) % 2 else [5, 6, 7, 8]
    kw = dict(max_new_tokens=30, prefix_allowed_tokens_fn=allowed)
    expected = mt.generate(model, torch.tensor([[4]]), **kw)
    assert torch.equal(mt.generate(model, torch.tensor([[4]]), assistant_model=assistant, **kw), expected)


class Collect:
    def __init__(self):
        self.parts = []

    def put(self, ids):
        self.parts.append(ids.reshape(-1))

    def end(self):
        self.parts.append(None)


def test_a_streamer_receives_the_prompt_then_each_token_then_the_end():
    model = tiny_gpt(4)
    streamer = Collect()
    out = mt.generate(model, torch.tensor([[1, 2]]), max_new_tokens=12, assistant_model=tiny_gpt(4, scale=3.5),
                      streamer=streamer)
    assert streamer.parts[-1] is None and all(len(p) == 1 for p in streamer.parts[1:-1])
    assert torch.equal(torch.cat(streamer.parts[:-1]), out[0])


def test_a_good_assistant_has_most_drafts_kept(shakespeare):
    """Greedy decoding counts: with a bfloat16 copy, nearly every draft is the model's own choice."""
    from minitransformer.generation.assisted import assisted_greedy
    from minitransformer.generation.decoding import Decoding
    from minitransformer.generation.settings import GenerationSettings

    model, tokenizer = shakespeare
    draft = copy.deepcopy(model).to(torch.bfloat16).eval()
    run = Decoding(model, GenerationSettings(max_new_tokens=200), torch.tensor([tokenizer.encode("ROMEO:")]),
                   None, None, None, None, None)
    assisted_greedy(run, draft)
    assert run.drafted >= 199 and run.accepted / run.drafted > 0.9


@pytest.mark.parametrize(
    "call, match",
    [
        (dict(do_sample=True), "greedy search"),
        (dict(num_beams=2), "greedy search"),
        (dict(input_ids=torch.zeros(2, 3, dtype=torch.long)), "one prompt at a time, got 2"),
        (dict(assistant_model=tiny_gpt(0, vocab=12)), "the same vocabulary: its vocab_size is 12"),
        (dict(max_new_tokens=60), "within both contexts"),
        (dict(output_scores=True), "output_scores"),
        (dict(use_cache=False), "use_cache=True"),
    ],
)
def test_what_assisted_decoding_cannot_do_is_named(call, match):
    kwargs = dict(input_ids=torch.zeros(1, 3, dtype=torch.long), assistant_model=tiny_gpt(1), max_new_tokens=10)
    kwargs |= call
    with pytest.raises(mt.AssistantError, match=f"assistant_model: assisted generation needs .*{match}"):
        mt.generate(tiny_gpt(0), **kwargs)


def test_an_encoder_decoder_is_refused():
    model, tokenizer = load_model("dates-seq2seq")
    src = torch.tensor([tokenizer.encode("March 5, 2021")])
    with pytest.raises(mt.ConfigError, match="decoder-only models"):
        mt.generate(model, src_ids=src, bos_token_id=tokenizer.bos_token_id, assistant_model=model)


def test_crop_forgets_the_newest_positions():
    cache = Cache([KVCache(8), KVCache(8)])
    for layer in cache.layers:
        layer.append(torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 4))
    kept = cache[0].keys[:, :, :3].clone()
    cache.crop(3)
    assert cache.length == 3 and torch.equal(cache[0].keys, kept)
    cache.crop(7)  # never grows
    assert cache.length == 3


def test_the_pipeline_and_the_command_line_draft_in_bfloat16(capsys):
    plain = mt.pipeline("text-generation", model="shakespeare-char")
    assisted = mt.pipeline("text-generation", model="shakespeare-char", assistant_dtype="bfloat16")
    assert {p.dtype for p in assisted.model.parameters()} == {torch.float32}
    assert {p.dtype for p in assisted.assistant.parameters()} == {torch.bfloat16}
    assert assisted("ROMEO:", max_new_tokens=200) == plain("ROMEO:", max_new_tokens=200)
    # sampling, several prompts or a text past the context: no assistant, the model alone
    assert assisted(["ROMEO:", "JULIET:"], max_new_tokens=5) == plain(["ROMEO:", "JULIET:"], max_new_tokens=5)
    assert assisted("ROMEO:", max_new_tokens=300)[0]["generated_text"].startswith("ROMEO:")
    texts = {}
    for dtype in ("float32", "bfloat16-assisted"):
        assert main(["generate", "--prompt", "HAMLET:", "--max-new-tokens", "200", "--dtype", dtype]) == 0
        texts[dtype] = capsys.readouterr().out
    assert texts["float32"] == texts["bfloat16-assisted"]
    with pytest.raises(ValueError, match="assistant_dtype drafts greedy tokens for task 'text-generation'"):
        mt.pipeline("fill-mask", model="shakespeare-mlm", assistant_dtype="bfloat16")


@pytest.mark.parametrize("kwargs", [
    dict(max_length=300),  # past the context: the model slides, assisted decoding cannot
    dict(max_new_tokens=20, use_cache=False),
    dict(max_new_tokens=20, do_sample=True, top_k=1),
    dict(max_new_tokens=20, num_beams=2),
], ids=["max_length-past-the-context", "no-cache", "sampling", "beams"])
def test_the_assisted_pipeline_falls_back_to_the_model_wherever_generate_would_refuse_the_assistant(kwargs):
    """The pipeline asks the generation's own check (AssistantError), so it never passes an assistant that
    generate refuses: the result is the plain pipeline's, with its warnings once."""
    import warnings

    plain = mt.pipeline("text-generation", model="shakespeare-char")
    assisted = mt.pipeline("text-generation", model="shakespeare-char", assistant_dtype="bfloat16")
    results = []
    for pipe in (plain, assisted):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            text = pipe("ROMEO:", **kwargs, generator=torch.Generator().manual_seed(0))
        results.append((text, [str(w.message) for w in caught]))
    assert results[0] == results[1]
