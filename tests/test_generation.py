"""generate / stream / next_token_distribution: Hugging Face's outputs token for token, and invariants.

The reference is a small randomly initialised GPT-2 (no download) whose weights are scaled up so that
its logits are spread out: near-ties would make greedy and beam comparisons depend on rounding.
"""

import dataclasses
import itertools
import math

import pytest
import torch

import minitransformer as mt
from minitransformer.beam_search import beam_search
from minitransformer.generation import GenerationSettings, generate, next_token_distribution, stream
from minitransformer.logits import LogitsSettings, process_logits
from minitransformer.tokenizers import CharTokenizer

V = 50
PAD = 1  # not 0: Hugging Face's beam search fills with the EOS id when pad_token_id == 0


def tiny_gpt(**kw):
    cfg = mt.TransformerConfig(**(dict(vocab_size=V, d_model=16, n_heads=2, n_layers=2, max_len=32,
                                       tie_weights=False) | kw))
    return mt.GPT(cfg).eval()


def tiny_seq2seq(**kw):
    cfg = mt.TransformerConfig(**(dict(vocab_size=V, d_model=16, n_heads=2, n_layers=2, max_len=32,
                                       tie_weights=False) | kw))
    model = mt.Seq2SeqTransformer(cfg).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(20)  # spread logits: a random model is otherwise near-uniform
    return model


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Models this small gain nothing from a second thread; on a busy machine they lose a lot
    (one-token decoding steps went from 0.4 ms to 55 ms with 2 threads and other jobs running)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pair():
    return hf_and_ours()


def hf_and_ours(**config):
    """(Hugging Face GPT2LMHeadModel, our GPT with the same weights); config: more GPT2Config fields."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=V, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                     bos_token_id=None, eos_token_id=None, **config)  # GPT-2's 50256 is not in V
    hf = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.mul_(5)
    return hf, mt.GPT.from_hf_gpt2(hf)


@pytest.fixture(scope="module")
def prompts():
    """Three left-padded prompts and their attention mask."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(2, V, (3, 6), generator=g)
    mask = torch.ones(3, 6, dtype=torch.long)
    mask[1, :2] = mask[2, :4] = 0
    return ids.masked_fill(mask == 0, PAD), mask


@pytest.fixture(scope="module")
def eos(pair, prompts):
    """A token that the model actually produces: the most frequent one in greedy continuations."""
    hf, _ = pair
    out = hf.generate(prompts[0], attention_mask=prompts[1], max_new_tokens=12, pad_token_id=PAD)
    return int(out[:, 6:].flatten().mode().values)


def both(pair, ids, **kw):
    """Hugging Face's generate and ours on the same arguments; with scores=True, both as dicts."""
    hf, ours = pair
    scores = kw.pop("scores", False)
    expected = hf.generate(ids, pad_token_id=PAD, output_scores=scores, return_dict_in_generate=scores, **kw)
    return expected, generate(ours, ids, pad_token_id=PAD, return_dict=scores, **kw)


# ----------------------------------------------------------------------------- Hugging Face equality

GREEDY_CASES = {
    "one prompt": dict(rows=[0], max_new_tokens=10),
    "left padding": dict(max_new_tokens=10),
    "eos stops and pads": dict(max_new_tokens=12, eos=True),
    "eos list": dict(max_new_tokens=12, eos="list"),
    "min_new_tokens": dict(max_new_tokens=12, eos=True, min_new_tokens=6),
    "repetition_penalty": dict(max_new_tokens=12, repetition_penalty=1.5),
    "no_repeat_ngram_size": dict(max_new_tokens=12, no_repeat_ngram_size=2),
    "max_length": dict(max_length=15),
    "default length": dict(rows=[0]),
    "mask inferred from pad": dict(max_new_tokens=8, no_mask=True),
}


@pytest.mark.filterwarnings("ignore:Using the model-agnostic default")  # Hugging Face's advice
@pytest.mark.parametrize("case", GREEDY_CASES)
def test_greedy_matches_hugging_face(pair, prompts, eos, case):
    kw = dict(GREEDY_CASES[case])
    rows = kw.pop("rows", [0, 1, 2])
    ids, mask = prompts[0][rows], prompts[1][rows]
    if kw.pop("no_mask", False):
        mask = None
    if kw.pop("eos", False):
        kw["eos_token_id"] = [eos, 7] if case == "eos list" else eos
    expected, got = both(pair, ids, attention_mask=mask, do_sample=False, **kw)
    assert torch.equal(got, expected)
    if case == "min_new_tokens":
        assert not (got[:, 6:12] == eos).any() and (got[:, 12:] == eos).any()
    elif "eos_token_id" in kw:
        assert (got[:, 6:] == eos).any()  # the case really exercised stopping


BEAM_CASES = [
    dict(num_beams=k, length_penalty=lp, early_stopping=es, eos=e)
    for k, lp, es, e in itertools.product([2, 3, 5], [0.5, 1.0, 2.0], [True, False, "never"], [True, False])
    if e or (lp == 1.0 and es is False)  # without EOS every hypothesis has max length: one case suffices
] + [dict(num_beams=3, length_penalty=1.0, early_stopping=False, eos="list")]  # 3K candidates


@pytest.mark.parametrize("case", BEAM_CASES, ids=str)
def test_beam_search_matches_hugging_face(pair, prompts, eos, case):
    kw = dict(case)
    if e := kw.pop("eos"):
        kw["eos_token_id"] = [eos, 7] if e == "list" else eos
    kw["num_return_sequences"] = min(2, kw["num_beams"])
    expected, got = both(pair, prompts[0], attention_mask=prompts[1], max_new_tokens=8, scores=True, **kw)
    assert torch.equal(got.sequences, expected.sequences)
    torch.testing.assert_close(got.sequences_scores, expected.sequences_scores, atol=1e-4, rtol=1e-5)


def test_beam_cases_are_not_trivial(pair, prompts, eos):
    """In the cases above EOS really ends hypotheses, and the three early_stopping rules disagree."""
    results = [generate(pair[1], prompts[0], attention_mask=prompts[1], max_new_tokens=8, num_beams=2,
                        length_penalty=2.0, early_stopping=rule, eos_token_id=eos, pad_token_id=PAD,
                        return_dict=True) for rule in (True, False, "never")]
    assert (results[0].sequences[:, 6:] == eos).any()
    for a, b in itertools.combinations(results, 2):
        assert not torch.equal(a.sequences_scores, b.sequences_scores)


@pytest.mark.parametrize("kw", [
    dict(top_k=10, temperature=0.8),
    dict(top_k=0, top_p=0.9, num_return_sequences=2),
    dict(min_p=0.1, repetition_penalty=1.2, eos=True),
    dict(typical_p=0.9),
    dict(num_beams=3, num_return_sequences=2, eos=True),  # beam sampling
    dict(num_beams=2, top_p=0.5),  # top-p keeps 2 tokens a beam (1 + number of EOS ids), not 1
], ids=str)
def test_sampling_matches_hugging_face_with_the_same_seed(pair, prompts, eos, kw):
    kw = dict(kw)
    if kw.pop("eos", False):
        kw["eos_token_id"] = eos
    hf, ours = pair
    ids, mask = prompts
    torch.manual_seed(0)
    expected = hf.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=True, pad_token_id=PAD, **kw)
    torch.manual_seed(0)  # generator=None draws from torch's global generator, as Hugging Face does
    got = generate(ours, ids, attention_mask=mask, max_new_tokens=8, do_sample=True, pad_token_id=PAD, **kw)
    assert torch.equal(got, expected)


# ----------------------------------------------------------------------------- sampling


def test_generator_makes_sampling_reproducible():
    model, ids = tiny_gpt(), torch.randint(0, V, (2, 4))
    run = lambda seed: generate(model, ids, max_new_tokens=10, do_sample=True,
                                generator=torch.Generator().manual_seed(seed))
    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


@pytest.mark.parametrize("kw", [dict(top_k=3), dict(top_k=0, top_p=0.5), dict(top_k=0, min_p=0.5)], ids=str)
def test_every_sampled_token_is_allowed_by_the_filters(kw):
    model, ids = tiny_gpt(), torch.randint(0, V, (1, 4))
    with torch.no_grad():
        model.lm_head.weight.mul_(20)
    out = generate(model, ids, max_new_tokens=6, do_sample=True, num_return_sequences=64,
                   generator=torch.Generator().manual_seed(0), **kw)
    with torch.no_grad():
        logits = model(out[:, :-1])[:, 3:]  # (64, 6, V): the logits each new token was drawn from
    for t in range(6):
        kept = process_logits(logits[:, t], out[:, : 4 + t], LogitsSettings(**kw), do_sample=True) > -math.inf
        assert kept.gather(1, out[:, 4 + t, None]).all()
        assert (kept.sum(-1) < V).all()  # the filter really removed tokens


def test_sampled_frequencies_match_the_filtered_distribution():
    """Chi-square goodness of fit of 20,000 one-step draws (seeded, so the outcome is fixed)."""
    model, ids = tiny_gpt(), torch.randint(0, V, (1, 5))
    with torch.no_grad():
        model.lm_head.weight.mul_(8)
    n, settings = 20_000, LogitsSettings(temperature=1.5, top_k=6)
    out = generate(model, ids, max_new_tokens=1, do_sample=True, top_k=6, temperature=1.5,
                   num_return_sequences=n, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        probs = process_logits(model(ids)[:, -1], ids, settings, do_sample=True).softmax(-1)[0]
    expected = probs * n
    kept = expected > 0
    assert kept.sum() == 6 and expected[kept].min() > 5  # the test's own preconditions
    observed = torch.bincount(out[:, -1], minlength=V).double()
    assert observed[~kept].sum() == 0
    chi2 = ((observed[kept] - expected[kept]) ** 2 / expected[kept]).sum()
    assert chi2 < 20.52  # the 0.999 quantile of chi-square with 5 degrees of freedom


# ----------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("num_beams", [1, 3])
def test_kv_cache_gives_the_same_tokens_as_recomputing(num_beams):
    model = tiny_gpt()
    with torch.no_grad():
        model.lm_head.weight.mul_(20)
    ids, mask = torch.randint(2, V, (2, 5)), torch.tensor([[1] * 5, [0, 0, 1, 1, 1]])
    kw = dict(attention_mask=mask, max_new_tokens=10, num_beams=num_beams, eos_token_id=3, pad_token_id=0)
    assert torch.equal(generate(model, ids, **kw), generate(model, ids, use_cache=False, **kw))
    s2s, src = tiny_seq2seq(), torch.randint(2, V, (2, 7))
    kw = dict(src_ids=src, bos_token_id=2, max_new_tokens=10, num_beams=num_beams)
    assert torch.equal(generate(s2s, use_cache=True, **kw), generate(s2s, use_cache=False, **kw))


def test_beam_width_one_equals_greedy():
    model = tiny_gpt()
    ids = torch.randint(0, V, (2, 4))
    with torch.no_grad():
        greedy = generate(model, ids, max_new_tokens=8)
        step = lambda x: model(x)[:, -1]
        beams, _, _ = beam_search(step, lambda i: None, lambda s, x, n: s, ids, num_beams=1, max_length=12)
    assert torch.equal(beams, greedy)


def test_beam_search_keeps_k_beams_when_the_best_candidates_all_end():
    """With E EOS ids, (1 + E) * K candidates are kept each step, so K beams can always go on."""
    K, logits = 2, torch.tensor([3.0, 3.0, 1.0, 0.5, 0.0, -1.0])  # the two EOS ids are the likeliest
    step = lambda ids: logits.expand(ids.shape[0], -1)
    _, _, trace = beam_search(step, lambda i: None, lambda s, x, n: s, torch.zeros(K, 1, dtype=torch.long),
                              num_beams=K, max_length=6, eos_ids=torch.tensor([0, 1]), fill_id=5,
                              length_penalty=2.0, early_stopping="never", return_trace=True)
    steps = trace[0]["steps"]
    assert len(steps) == 5  # ran to max_length
    for s in steps[:-1]:
        assert sum(c["beam"] is not None for c in s["candidates"]) == K
        assert sum(c["ends"] for c in s["candidates"][: 2 * K]) >= 2  # the best 2K alone would not do


def test_sequences_longer_than_the_context_use_a_sliding_window():
    model, ids = tiny_gpt(max_len=8), torch.randint(0, V, (1, 10))
    with pytest.warns(UserWarning, match="sees only the newest 8"):
        out = generate(model, ids, max_new_tokens=5)
    expected = ids
    with torch.no_grad():
        for _ in range(5):
            expected = torch.cat([expected, model(expected[:, -8:])[:, -1:].argmax(-1)], dim=1)
    assert torch.equal(out, expected)
    with pytest.warns(UserWarning):
        assert torch.equal(generate(model, ids[:, :6], max_new_tokens=9, use_cache=False),
                           generate(model, ids[:, :6], max_new_tokens=9))


def test_default_length_is_20_new_tokens_capped_at_the_context():
    model = tiny_gpt(max_len=32)
    assert generate(model, torch.zeros(1, 5, dtype=torch.long)).shape == (1, 25)
    assert generate(model, torch.zeros(1, 20, dtype=torch.long)).shape == (1, 32)


def test_seq2seq_starts_with_bos_and_stops_at_eos():
    model, src = tiny_seq2seq(), torch.randint(3, V, (3, 6))
    free = generate(model, src_ids=src, bos_token_id=2, max_new_tokens=8)
    assert free.shape == (3, 9) and (free[:, 0] == 2).all()
    t = next(t for t in range(2, 9) if free[0, t] not in free[0, :t])  # a token new in row 0
    eos = int(free[0, t])
    out = generate(model, src_ids=src, bos_token_id=2, eos_token_id=eos, pad_token_id=0, max_new_tokens=8)
    assert torch.equal(out[0, : t + 1], free[0, : t + 1]) and (out[0, t + 1 :] == 0).all()
    for row in out:  # after the first EOS only padding
        ends = (row == eos).nonzero()
        if len(ends):
            assert (row[int(ends[0]) + 1 :] == 0).all()
    beams = generate(model, src_ids=src, bos_token_id=2, max_new_tokens=6, num_beams=3,
                     num_return_sequences=2)
    assert beams.shape == (6, 7) and (beams[:, 0] == 2).all()


def test_model_mode_is_restored_and_dropout_is_off():
    model, ids = tiny_gpt(dropout=0.5).train(), torch.randint(0, V, (1, 4))
    first = generate(model, ids, max_new_tokens=6)
    assert model.training and torch.equal(first, generate(model, ids, max_new_tokens=6))


def test_output_is_an_ordinary_tensor():
    out = generate(tiny_gpt(), torch.randint(0, V, (1, 3)), max_new_tokens=2)
    out[0, 0] = 1  # an inference-mode tensor would refuse this
    assert not out.is_inference()


# ----------------------------------------------------------------------------- streaming and stop strings


@pytest.fixture(scope="module")
def char_model():
    tok = CharTokenizer.from_text("abcdefgh \n", special_tokens=["[EOS]"])
    torch.manual_seed(3)
    cfg = mt.TransformerConfig(vocab_size=tok.vocab_size, d_model=16, n_heads=2, n_layers=1, max_len=64)
    model = mt.GPT(cfg)
    with torch.no_grad():
        model.lm_head.weight.mul_(10)
    return model.eval(), tok


@pytest.mark.parametrize("do_sample", [False, True])
def test_stream_yields_the_tokens_of_generate(char_model, do_sample):
    model, tok = char_model
    ids = torch.tensor([tok.encode("abc")])
    kw = dict(max_new_tokens=12, do_sample=do_sample) | (dict(top_k=0) if do_sample else {})
    expected = generate(model, ids, generator=torch.Generator().manual_seed(5), **kw)[0, 3:]
    got = list(stream(model, ids, generator=torch.Generator().manual_seed(5), **kw))
    assert got == expected.tolist()
    text = "".join(stream(model, "abc", tok, generator=torch.Generator().manual_seed(5), **kw))
    assert text == tok.decode(expected.tolist())


def test_stop_strings_end_each_sequence_after_the_stop_string(char_model):
    model, tok = char_model
    ids = torch.tensor([tok.encode("ab"), tok.encode("hg")])
    free = generate(model, ids, max_new_tokens=15)
    stop = tok.decode(free[0, 5:7].tolist())  # two characters that row 0 writes
    out = generate(model, ids, max_new_tokens=15, stop_strings=[stop], tokenizer=tok, pad_token_id=0)
    text = tok.decode(out[0, 2:].tolist())
    end = tok.decode(free[0, 2:].tolist()).index(stop) + len(stop)  # first time the string appears
    assert text[:end] == tok.decode(free[0, 2:].tolist())[:end] and stop in text[:end]
    assert (out[0, 2 + end :] == 0).all()
    with pytest.raises(ValueError, match="tokenizer"):
        generate(model, ids, stop_strings="x")


def test_hugging_face_style_streamer_gets_prompt_then_each_token(char_model):
    model, _ = char_model
    calls = []

    class Recorder:
        def put(self, value):
            calls.append(value.tolist())

        def end(self):
            calls.append("end")

    out = generate(model, torch.tensor([[1, 2]]), max_new_tokens=3, streamer=Recorder())
    assert calls == [[[1, 2]], *[[t] for t in out[0, 2:].tolist()], "end"]


# ----------------------------------------------------------------------------- teaching views


def test_beam_trace_describes_the_search(pair, prompts, eos):
    _, ours = pair
    out = generate(ours, prompts[0][:1], max_new_tokens=6, num_beams=3, eos_token_id=eos, pad_token_id=PAD,
                   num_return_sequences=2, return_trace=True)
    (item,) = out.trace
    assert item["prompt"] == prompts[0][0].tolist()
    first = item["steps"][0]["candidates"]
    assert len(first) == 6 and all(c["parent"] == 0 for c in first)  # 2K candidates, all from beam 0
    for step in item["steps"]:
        scores = [c["score"] for c in step["candidates"]]
        assert scores == sorted(scores, reverse=True)
        beams = [c["beam"] for c in step["candidates"] if c["beam"] is not None]
        assert sorted(beams) == list(range(len(beams)))
    returned = [h for h in item["finished"] if h["returned"]]
    torch.testing.assert_close(torch.tensor([h["score"] for h in returned]), out.sequences_scores)
    for h, row in zip(returned, out.sequences, strict=True):
        assert row[6 : 6 + len(h["tokens"])].tolist() == h["tokens"]


def test_next_token_distribution_shows_each_stage():
    model, ids = tiny_gpt(), torch.randint(0, V, (1, 5))
    with torch.no_grad():
        model.lm_head.weight.mul_(20)
    result = next_token_distribution(model, ids, top=4, temperature=0.7, top_k=8, top_p=0.8)
    names = [s["name"] for s in result["stages"]]
    assert names == ["raw", "temperature", "top-k", "top-p"]
    n_kept = [s["n_kept"] for s in result["stages"]]
    assert n_kept[:3] == [V, V, 8] and 1 <= n_kept[3] <= 8
    with torch.no_grad():
        final = process_logits(model(ids)[:, -1], ids, result["settings"], do_sample=True).softmax(-1)[0]
    torch.testing.assert_close(result["stages"][-1]["probs"], final)
    for stage in result["stages"]:
        assert stage["top_probs"] == sorted(stage["top_probs"], reverse=True) and len(stage["top_ids"]) == 4
        assert stage["top_ids"][0] == int(stage["probs"].argmax())


# ----------------------------------------------------------------------------- arguments


def test_every_setting_is_a_keyword_and_its_default_changes_nothing():
    model, ids = tiny_gpt(), torch.randint(0, V, (1, 3))
    defaults = {f.name: f.default for f in dataclasses.fields(GenerationSettings)}
    assert torch.equal(generate(model, ids, **defaults), generate(model, ids))
    settings = GenerationSettings(max_new_tokens=5, num_beams=2)
    assert torch.equal(generate(model, ids, settings=settings), generate(model, ids, max_new_tokens=5, num_beams=2))
    assert torch.equal(generate(model, ids, settings=settings, num_beams=1), generate(model, ids, max_new_tokens=5))
    with pytest.raises(TypeError, match="max_new_token"):
        generate(model, ids, max_new_token=5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.top_p = 0.5


BAD = [
    (dict(do_sample=True, temperature=0.0), ValueError, "temperature"),
    (dict(do_sample=True, top_p=1.5), ValueError, "top_p"),
    (dict(do_sample=True, top_p=0.0), ValueError, "top_p"),
    (dict(do_sample=True, min_p=0.0), ValueError, "min_p"),
    (dict(do_sample=True, top_k=-1), ValueError, "top_k"),
    (dict(do_sample=True, typical_p=2.0), ValueError, "typical_p"),
    (dict(repetition_penalty=0.0), ValueError, "repetition_penalty"),
    (dict(no_repeat_ngram_size=-1), ValueError, "no_repeat_ngram_size"),
    (dict(num_return_sequences=2), ValueError, "num_return_sequences"),
    (dict(num_beams=2, num_return_sequences=3), ValueError, "num_return_sequences"),
    (dict(num_beams=0), ValueError, "num_beams"),
    (dict(max_new_tokens=-1), ValueError, "max_new_tokens"),
    (dict(max_new_tokens=0), ValueError, "max_new_tokens"),
    (dict(max_length=3), ValueError, "max_length"),
    (dict(min_new_tokens=-2), ValueError, "min_new_tokens"),
    (dict(early_stopping="always"), ValueError, "early_stopping"),
    (dict(early_stopping=1), ValueError, "early_stopping"),
    (dict(length_penalty=float("nan")), ValueError, "length_penalty"),
    (dict(eos_token_id=V), ValueError, "eos_token_id"),
    (dict(eos_token_id=[3, -1]), ValueError, "eos_token_id"),
    (dict(eos_token_id=[]), ValueError, "eos_token_id"),
    (dict(eos_token_id=2.0), TypeError, "eos_token_id"),
    (dict(pad_token_id=V + 3), ValueError, "pad_token_id"),
    (dict(input_ids=torch.zeros(1, 0, dtype=torch.long)), ValueError, "bos_token_id"),
    (dict(input_ids=None), ValueError, "bos_token_id"),
    (dict(input_ids=torch.zeros(1, 3)), TypeError, "input_ids"),
    (dict(input_ids=torch.zeros(3, dtype=torch.long)), ValueError, r"input_ids\[None\]"),
    (dict(input_ids=torch.full((1, 3), V)), ValueError, "input_ids"),
    (dict(attention_mask=torch.ones(1, 4)), ValueError, "attention_mask"),
    (dict(attention_mask=torch.zeros(1, 3)), ValueError, "attention_mask"),
    (dict(num_beams=2, return_trace=False, streamer=object()), ValueError, "streamer"),
    (dict(return_trace=True), ValueError, "num_beams"),
    (dict(generator=0), TypeError, "generator"),
    (dict(do_sample="yes"), TypeError, "do_sample"),
    (dict(stop_strings=[""], tokenizer=object()), ValueError, "stop_strings"),
    (dict(src_ids=torch.zeros(1, 3, dtype=torch.long)), ValueError, "src_ids"),
]


@pytest.mark.parametrize("kw, error, name", BAD, ids=[f"{b[2]}-{i}" for i, b in enumerate(BAD)])
def test_invalid_arguments_raise_and_name_the_argument(kw, error, name):
    kw = {"input_ids": torch.zeros(1, 3, dtype=torch.long), **kw}
    with pytest.raises(error, match=name):
        generate(tiny_gpt(), **kw)


def test_invalid_model_and_seq2seq_arguments():
    with pytest.raises(TypeError, match="GPT or a Seq2SeqTransformer"):
        generate(mt.MaskedLM(mt.TransformerConfig(vocab_size=V, d_model=16, n_heads=2, n_layers=1)),
                 torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="src_ids"):
        generate(tiny_seq2seq(), torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="bos_token_id"):
        generate(tiny_seq2seq(), src_ids=torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="stream cannot follow beam search"):
        next(stream(tiny_gpt(), torch.zeros(1, 3, dtype=torch.long), num_beams=2))
    with pytest.raises(ValueError, match="batch size 1"):
        next(stream(tiny_gpt(), torch.zeros(2, 3, dtype=torch.long)))


def test_generate_works_as_a_model_method(monkeypatch):
    from minitransformer.models.base import ModelBase

    monkeypatch.setattr(ModelBase, "generate", lambda self, *a, **k: generate(self, *a, **k), raising=False)
    model, ids = tiny_gpt(), torch.randint(0, V, (1, 3))
    assert torch.equal(model.generate(ids, max_new_tokens=4), generate(model, ids, max_new_tokens=4))


def test_nan_logits_get_a_clear_error():
    model = tiny_gpt()
    with torch.no_grad():
        model.lm_head.weight[5, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN logits"):
        generate(model, torch.zeros(1, 3, dtype=torch.long), max_new_tokens=2)


def test_sampling_settings_with_greedy_warn_that_they_are_ignored():
    with pytest.warns(UserWarning, match="only matter when sampling"):
        out = generate(tiny_gpt(), torch.zeros(1, 3, dtype=torch.long), max_new_tokens=2, temperature=0.0)
    assert out.shape == (1, 5)
