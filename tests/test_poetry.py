"""generate_poem: every poem has its form, whatever the strategy and however much the model resists;
acrostics open the lines, openings are kept, and bad requests say what is wrong. Small random GPTs over
the real poem vocabulary (poem_tokenizer(): 5,461 tokens) stand in for the trained model."""

import pytest
import torch

import minitransformer as mt
from minitransformer.generation import PoemGrammar, generate, generate_poem
from minitransformer.generation.poetry import is_chinese
from minitransformer.poems import FORMS, LINE_END, has_form, poem_lines, poem_tokenizer


@pytest.fixture(scope="module")
def tok():
    return poem_tokenizer()


def random_gpt(tok, max_len=72, seed=0):
    torch.manual_seed(seed)
    cfg = mt.TransformerConfig(vocab_size=tok.vocab_size, d_model=16, n_heads=2, n_layers=1, max_len=max_len)
    return mt.GPT(cfg).eval()


@pytest.fixture(scope="module")
def model(tok):
    return random_gpt(tok)


@pytest.fixture(scope="module")
def rebel(tok):
    """A model that wants anything but a poem: newline first, then [UNK], then "●", then a comma,
    at every position (its logits are E @ u for one direction u, whatever the input)."""
    model = random_gpt(tok)
    u = torch.zeros(model.config.d_model)
    u[0] = 1.0
    with torch.no_grad():
        model.norm_f.weight.zero_()
        model.norm_f.bias.copy_(u)
        for ch, size in (("\n", 10.0), ("[UNK]", 9.0), ("●", 8.0), ("，", 7.0)):
            model.embed.tokens.weight[tok.token_to_id(ch)] = size * u
    return model


STRATEGIES = {
    "greedy": dict(),
    "sampling": dict(do_sample=True, temperature=0.8, top_k=40, top_p=0.9),
    "beam search": dict(num_beams=3),
    "beam sampling": dict(num_beams=2, do_sample=True),
}


def assert_poem(poem, form):
    assert has_form(poem, form), poem
    assert all(is_chinese(ch) for line in poem_lines(poem) for ch in line), poem


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("form", FORMS)
def test_every_poem_has_its_form(model, tok, form, strategy):
    poem = generate_poem(model, tok, form, generator=torch.Generator().manual_seed(0), **STRATEGIES[strategy])
    assert_poem(poem, form)


def test_without_the_constraint_the_same_model_writes_no_poem(model, tok):
    """So the test above is not passed by luck: the raw model's 24 characters are no 五言绝句."""
    ids = torch.tensor([[tok.token_to_id("\n")]])
    for seed in range(3):
        raw = generate(model, ids, max_new_tokens=24, do_sample=True,
                       generator=torch.Generator().manual_seed(seed))
        assert not has_form(tok.decode(raw[0, 1:].tolist()), "五言绝句")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_form_wins_against_a_model_that_wants_to_stop_or_write_unknowns(rebel, tok, strategy):
    ids = torch.tensor([[tok.token_to_id("\n")]])
    assert tok.decode(generate(rebel, ids, max_new_tokens=3)[0, 1:].tolist()) == "\n\n\n"  # what it wants
    for form in FORMS:
        assert_poem(generate_poem(rebel, tok, form, generator=torch.Generator().manual_seed(1),
                                  **STRATEGIES[strategy]), form)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_form_survives_a_ban_on_repeats(model, tok, strategy):
    """no_repeat_ngram_size=1 bans every token already written, line ends included: where that leaves the
    form nothing, its tokens come back (Hugging Face's rule), and the characters are all different."""
    poem = generate_poem(model, tok, "五言律诗", no_repeat_ngram_size=1,
                         generator=torch.Generator().manual_seed(0), **STRATEGIES[strategy])
    assert_poem(poem, "五言律诗")
    chars = "".join(poem_lines(poem))
    assert len(set(chars)) == len(chars) == 40


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("form, acrostic", [("五言绝句", "春夏秋冬"), ("七言律诗", "一二三四五六七八")])
def test_acrostic_lines_start_with_the_requested_characters(model, tok, form, acrostic, strategy):
    poem = generate_poem(model, tok, form, acrostic=acrostic, generator=torch.Generator().manual_seed(0),
                         **STRATEGIES[strategy])
    assert_poem(poem, form)
    assert "".join(line[0] for line in poem_lines(poem)) == acrostic


@pytest.mark.parametrize("prompt", ["床", "床前明月光", "床前明月光，", "床前明月光，疑是地上霜。举",
                                    "床前明月光，疑是地上霜。举头望明月，低头思故乡。"])
@pytest.mark.parametrize("strategy", ["greedy", "beam search"])
def test_the_prompt_opens_the_poem(model, tok, prompt, strategy):
    poem = generate_poem(model, tok, "五言绝句", prompt=prompt, **STRATEGIES[strategy])
    assert_poem(poem, "五言绝句")
    assert poem.startswith(prompt)


def test_prompt_and_acrostic_together(model, tok):
    poem = generate_poem(model, tok, "七言绝句", acrostic="春眠不觉", prompt="春风又绿江南岸，眠",
                         do_sample=True, generator=torch.Generator().manual_seed(0))
    assert_poem(poem, "七言绝句")
    assert poem.startswith("春风又绿江南岸，眠")
    assert "".join(line[0] for line in poem_lines(poem)) == "春眠不觉"


def test_sampling_is_reproducible_and_varies_with_the_seed(model, tok):
    poems = [generate_poem(model, tok, do_sample=True, generator=torch.Generator().manual_seed(seed))
             for seed in (0, 0, 1)]
    assert poems[0] == poems[1] != poems[2]


@pytest.mark.filterwarnings("ignore:Using the model-agnostic default")  # Hugging Face's advice
@pytest.mark.parametrize("kw", [dict(), dict(num_beams=3)], ids=["greedy", "beam search"])
def test_the_grammar_gives_hugging_face_the_same_poem(tok, kw):
    """The poem grammar as Hugging Face's prefix_allowed_tokens_fn, on a GPT-2 with the same weights."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=tok.vocab_size, n_positions=32, n_embd=32, n_layer=1, n_head=4, resid_pdrop=0.0,
        embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None, eos_token_id=None)).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.mul_(5)  # spread logits, so that no near-tie decides the comparison
    ours = mt.GPT.from_hf_gpt2(hf)
    grammar = PoemGrammar(tok, "五言绝句", acrostic="明月清风")
    ids = torch.tensor([[tok.token_to_id("\n"), *tok.encode("明")]])
    newline = tok.token_to_id("\n")
    expected = hf.generate(ids, max_new_tokens=24, eos_token_id=newline, pad_token_id=newline,
                           prefix_allowed_tokens_fn=grammar, **kw)
    poem = generate_poem(ours, tok, "五言绝句", acrostic="明月清风", prompt="明", **kw)
    assert tok.decode(expected[0, 1:].tolist()) == poem + "\n"


def test_line_ends_follow_the_odd_and_even_rule(tok):
    grammar = PoemGrammar(tok, "五言律诗")
    ends = {tok.id_to_token(i) for line in range(8) for i in grammar.allowed(6 * line + 5) if line % 2 == 0}
    assert ends <= set(LINE_END["odd"]) and "，" in ends and "。" not in ends
    ends = {tok.id_to_token(i) for line in range(8) for i in grammar.allowed(6 * line + 5) if line % 2 == 1}
    assert ends <= set(LINE_END["even"]) and "。" in ends and "，" not in ends
    assert grammar.allowed(48) == [tok.token_to_id("\n")]
    inside = {tok.id_to_token(i) for i in grammar.allowed(0)}
    assert len(inside) > 5000 and all(is_chinese(c) for c in inside)
    assert "●" in tok.chars and "●" not in inside  # a placeholder for lost characters, not one to write


# ----------------------------------------------------------------------------- bad requests

BAD = [  # (arguments, error, what the message says)
    (dict(form="五言"), ValueError,
     "form must be one of 五言绝句, 七言绝句, 五言律诗, 七言律诗, got '五言'"),
    (dict(acrostic="春夏秋"), ValueError,
     r"acrostic must have one character per line: a 五言绝句 has 4 lines, got 3"),
    (dict(acrostic="一二三四五六七八"), ValueError,
     "got 8 characters '一二三四五六七八' .forms with 8 lines: 五言律诗, 七言律诗"),
    (dict(acrostic="春，秋冬"), ValueError, r"'，' \(line 2: not a Chinese character\)"),
    (dict(acrostic="春夏𪚥冬"), ValueError, r"'𪚥' \(line 3: not in the vocabulary\)"),
    (dict(acrostic=["春", "夏", "秋", "冬"]), TypeError, "acrostic must be a string"),
    (dict(prompt="床前𪚥月光，A"), ValueError,
     r"outside the tokenizer's vocabulary: '𪚥' \(character 3\), 'A' \(character 7\)"),
    (dict(prompt="床前明月光照"), ValueError,
     "does not fit a 五言绝句: character 6 '照' follows the 5 characters of line 1, where one of ，？ must"),
    (dict(prompt="床前，"), ValueError,
     "character 3 '，' is character 3 of line 1, where a Chinese character must be"),
    (dict(prompt="床前明月光，疑是地上霜，"), ValueError,
     "character 12 '，' follows the 5 characters of line 2, where one of 。？"),
    (dict(prompt="床前明月光，疑是地上霜。举头望明月，低头思故乡。好"), ValueError,
     "prompt has 25 characters, but a whole 五言绝句 has 24"),
    (dict(prompt="床前\n"), ValueError, "prompt must not contain a newline"),
    (dict(prompt="床前明月光，", acrostic="春夏秋冬"), ValueError,
     "character 1 '床' opens line 1, but the acrostic asks for '春'"),
    (dict(prompt=5), TypeError, "prompt must be a string"),
    (dict(form="七言律诗", context=32), ValueError,
     r"form='七言律诗' needs a model context \(config.max_len\) of at least 65 tokens .* max_len=32; "
     r"forms that fit: 五言绝句 \(25\)$"),
    (dict(max_new_tokens=5), TypeError, r"generate_poem sets \['max_new_tokens'\] itself"),
    (dict(prefix_allowed_tokens_fn=None, num_return_sequences=2), TypeError,
     "num_return_sequences', 'prefix_allowed"),
    (dict(temperature=0.0, do_sample=True), ValueError, "temperature"),  # generate's knobs, checked there
]


@pytest.mark.parametrize("kw, error, message", BAD, ids=[str(b[0])[:40] for b in BAD])
def test_bad_requests_name_the_argument_and_what_is_allowed(model, tok, kw, error, message):
    kw = dict(kw)
    net = random_gpt(tok, max_len=kw.pop("context")) if "context" in kw else model
    with pytest.raises(error, match=message):
        generate_poem(net, tok, **kw)


def test_a_tokenizer_that_cannot_write_poems_is_refused(model):
    with pytest.raises(ValueError, match=r"tokenizer has no '\\n' and no Chinese characters and no line end"):
        generate_poem(model, mt.CharTokenizer.from_text("abc ,."))
    with pytest.raises(TypeError, match="tokenizer must be a character tokenizer"):
        generate_poem(model, object())


def test_a_model_with_a_smaller_vocabulary_is_refused(tok):
    small = mt.GPT(mt.TransformerConfig(vocab_size=100, d_model=16, n_heads=2, n_layers=1, max_len=32))
    with pytest.raises(ValueError, match="model has vocab_size=100, fewer than the tokenizer's 5461 tokens"):
        generate_poem(small, tok)
