"""Tests for minitransformer.tokenizers: round trips, special tokens, files, and Hugging Face as a reference."""

import json
import time
from pathlib import Path

import pytest
import regex
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minitransformer.tokenizers as tokenizers_module
from minitransformer.errors import CheckpointError, UnknownTokenError
from minitransformer.tokenizers import (
    GPT2_SPLIT_PATTERN,
    SPECIAL_TOKENS,
    BPETokenizer,
    CharTokenizer,
    load_tokenizer,
    tokenizer_from_dict,
)

CORPUS = Path(tokenizers_module.__file__).parents[1] / "assets" / "tinyshakespeare.txt"
# hypothesis reuses module-scoped fixtures on purpose: they are read-only here.
FIXTURE_OK = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])




@pytest.fixture(scope="module")
def char_tok(text):
    return CharTokenizer.from_text(text, special_tokens=SPECIAL_TOKENS)


@pytest.fixture(scope="module")
def bpe(text):
    """A small BPE trained once: 20k characters, 42 merges: enough to compress, fast to train."""
    return BPETokenizer.train(text[:20_000], vocab_size=300, special_tokens=("[BOS]", "[EOS]"))


# ---------------------------------------------------------------- CharTokenizer


def test_char_round_trip_and_contiguous_ids(text):
    tok = CharTokenizer.from_text(text)
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert sorted(set(ids)) == list(range(tok.vocab_size)) == list(range(len(tok)))  # every char id is used
    assert repr(tok) == f"CharTokenizer(vocab_size={tok.vocab_size}, special_tokens=[])"


def test_char_special_tokens_get_first_ids(char_tok, text):
    assert [char_tok.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert (char_tok.pad_token_id, char_tok.unk_token_id, char_tok.bos_token_id) == (0, 1, 2)
    assert (char_tok.eos_token_id, char_tok.mask_token_id) == (3, 4)
    assert char_tok.special_token_ids == frozenset(range(5))
    assert char_tok.vocab_size == len(set(text)) + 5
    assert char_tok.id_to_token(5) == sorted(set(text))[0]  # ordinary chars follow, in sorted order
    plain = CharTokenizer("ab")
    assert (
        plain.mask_token_id is None and plain.pad_token_id is None and plain.special_token_ids == frozenset()
    )


def test_char_special_token_order_is_kept():
    tok = CharTokenizer("ab", special_tokens=("[MASK]", "[PAD]"))
    assert (tok.mask_token_id, tok.pad_token_id, tok.token_to_id("a")) == (0, 1, 2)


def test_char_special_token_in_text_encodes_to_its_id(char_tok):
    ids = char_tok.encode("the [MASK] sat")
    assert ids.count(char_tok.mask_token_id) == 1
    assert len(ids) == len("the  sat") + 1
    assert char_tok.decode(ids) == "the [MASK] sat"
    without = CharTokenizer.from_text("the [MASK] sat")  # no special tokens: "[MASK]" is six characters
    assert len(without.encode("the [MASK] sat")) == len("the [MASK] sat")


def test_char_unknown_character_raises_with_the_character_and_position():
    tok = CharTokenizer.from_text("hello")
    with pytest.raises(UnknownTokenError) as info:
        tok.encode("hell€")
    message = str(info.value)
    assert repr("€") in message and "position 4" in message and "[UNK]" in message
    assert isinstance(info.value, ValueError)


def test_char_unknown_character_maps_to_unk():
    tok = CharTokenizer.from_text("hello", special_tokens=("[UNK]",))
    assert tok.encode("hex") == [tok.token_to_id("h"), tok.token_to_id("e"), tok.unk_token_id]


def test_char_decode_skip_special_tokens_and_input_types(char_tok):
    ids = [char_tok.bos_token_id, *char_tok.encode("to be"), char_tok.eos_token_id, char_tok.pad_token_id]
    assert char_tok.decode(ids) == "[BOS]to be[EOS][PAD]"
    assert char_tok.decode(ids, skip_special_tokens=True) == "to be"
    assert char_tok.decode(tuple(ids)) == char_tok.decode(torch.tensor(ids)) == "[BOS]to be[EOS][PAD]"
    assert char_tok.convert_ids_to_tokens(ids[:3]) == ["[BOS]", "t", "o"]


@pytest.mark.parametrize("bad", [-1, 70, 10**6])
def test_char_decode_rejects_ids_outside_the_vocabulary(char_tok, bad):
    with pytest.raises(ValueError, match=rf"token id {bad} .*0 to {char_tok.vocab_size - 1}"):
        char_tok.decode([5, bad])


@pytest.mark.parametrize("ids", [torch.ones(2, 3, dtype=torch.long), torch.tensor([1.0, 2.0]), "abc", [1.5]])
def test_decode_rejects_wrong_kinds_of_ids(char_tok, ids):
    with pytest.raises((TypeError, ValueError)):
        char_tok.decode(ids)


@pytest.mark.parametrize(
    "chars, special, match",
    [("aba", (), "'a'"), (["a", "bc"], (), "'bc'"), ("ab", ("[PAD]", "[PAD]"), "PAD"), ("", (), "empty")],
)
def test_char_constructor_rejects_bad_vocabularies(chars, special, match):
    with pytest.raises(ValueError, match=match):
        CharTokenizer(chars, special_tokens=special)


def test_char_save_load_round_trip(char_tok, tmp_path):
    path = tmp_path / "sub" / "char.json"
    char_tok.save(path)
    for loaded in (CharTokenizer.load(path), load_tokenizer(path)):
        assert isinstance(loaded, CharTokenizer)
        assert loaded.to_dict() == char_tok.to_dict()
        assert loaded.encode("O Romeo, [MASK]!") == char_tok.encode("O Romeo, [MASK]!")
    assert json.loads(path.read_text(encoding="utf-8"))["type"] == "char"


@FIXTURE_OK
@given(st.data())
def test_char_round_trip_property(char_tok, data):
    s = "".join(data.draw(st.lists(st.sampled_from(char_tok.chars + SPECIAL_TOKENS))))
    assert char_tok.decode(char_tok.encode(s)) == s


# ---------------------------------------------------------------- files and dicts, both tokenizers


@pytest.mark.parametrize("loader", [CharTokenizer.load, BPETokenizer.load, load_tokenizer])
@pytest.mark.parametrize(
    "content, match",
    [
        (None, "no tokenizer file"),
        ("{not json", "not a tokenizer JSON"),
        (b"\xff\xfe\x00", "not a tokenizer JSON"),
        ('{"type": "char"}', "'chars'|'merges'|not 'bpe'"),
        ('{"type": "char", "chars": "ab", "special_tokens": []}', "must be a list|not 'bpe'"),
        (
            json.dumps(
                {"type": "bpe", "merges": [[300, 1]], "special_tokens": [], "pattern": GPT2_SPLIT_PATTERN}
            ),
            "merges\\[0\\]|not 'char'",
        ),
        ('{"type": "bpe", "merges": [], "special_tokens": [], "pattern": "x"}', "'pattern'|not 'char'"),
        ('{"type": "wordpiece"}', "wordpiece"),
        ("[1, 2]", "JSON object|'type'"),
    ],
)
def test_loading_a_missing_or_garbled_file_raises_a_clear_error(tmp_path, loader, content, match):
    path = tmp_path / "tok.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(CheckpointError, match=match):
        loader(path)


def test_tokenizer_from_dict_dispatches_on_type(char_tok, bpe):
    assert isinstance(tokenizer_from_dict(char_tok.to_dict()), CharTokenizer)
    assert tokenizer_from_dict(bpe.to_dict()).merges == bpe.merges
    with pytest.raises(CheckpointError, match="'bpe', 'char'"):
        tokenizer_from_dict({"type": "sentencepiece"})


# ---------------------------------------------------------------- BPETokenizer


@FIXTURE_OK
@given(st.text())
def test_bpe_round_trips_any_unicode_text(bpe, s):
    assert bpe.decode(bpe.encode(s)) == s


@FIXTURE_OK
@given(st.lists(st.integers(0, 299)))
def test_bpe_decodes_any_valid_ids(bpe, ids):
    assert isinstance(bpe.decode(ids), str)  # broken UTF-8 becomes "\ufffd" rather than an exception


def test_bpe_vocab_size_and_ids(bpe):
    assert bpe.vocab_size == len(bpe) == 300
    assert len(bpe.merges) == 300 - 256 - 2
    assert (bpe.bos_token_id, bpe.eos_token_id) == (298, 299)  # special tokens come after the merges
    assert bpe.special_token_ids == frozenset({298, 299}) and bpe.pad_token_id is None
    assert repr(bpe) == "BPETokenizer(vocab_size=300, merges=42, special_tokens=['[BOS]', '[EOS]'])"
    tokens = bpe.convert_ids_to_tokens(range(300))
    assert tokens[:3] == ["\x00", "\x01", "\x02"] and tokens[-1] == "[EOS]"
    assert all(bpe.token_to_id(t) == i for i, t in enumerate(tokens) if "\ufffd" not in t)


def test_bpe_known_merges_give_known_ids():
    tok = BPETokenizer(merges=[(ord("h"), ord("i")), (ord(" "), 256)])  # "hi" -> 256, " hi" -> 257
    assert tok.encode("hi hi hip") == [256, 257, 257, ord("p")]
    assert tok.id_to_token(257) == " hi"
    assert BPETokenizer(merges={(ord("h"), ord("i")): 256}).encode("hi") == [256]


@pytest.mark.parametrize(
    "merges, match",
    [
        ([(1, 256)], r"merges\[0\]"),
        ([(1, 2), (1, 2)], "repeats"),
        ([(1,)], r"merges\[0\]"),
        ({(1, 2): 300}, "256"),
    ],
)
def test_bpe_rejects_bad_merges(merges, match):
    with pytest.raises(ValueError, match=match):
        BPETokenizer(merges)


def test_bpe_vocab_size_too_small_raises():
    with pytest.raises(ValueError, match=r"vocab_size must be an int >= 256 \+ 2.*257"):
        BPETokenizer.train("some text", vocab_size=257, special_tokens=("[BOS]", "[EOS]"))


def test_bpe_training_is_deterministic(text, bpe):
    again = BPETokenizer.train(text[:20_000], vocab_size=300, special_tokens=("[BOS]", "[EOS]"))
    assert again.merges == bpe.merges
    assert len(bpe.merges) == 42 and bpe.merges != BPETokenizer.train(text[20_000:40_000], 300).merges[:42]


def test_bpe_merges_compress_held_out_text(text, bpe):
    held_out = text[100_000:120_000]
    assert len(bpe.encode(held_out)) < 0.8 * len(held_out.encode("utf-8"))


def test_bpe_special_tokens_survive(bpe):
    s = "[BOS]First Citizen:[EOS]x[EOS]"
    ids = bpe.encode(s)
    assert ids[0] == bpe.bos_token_id and ids[-1] == bpe.eos_token_id and ids.count(bpe.eos_token_id) == 2
    assert bpe.decode(ids) == s
    assert bpe.decode(ids, skip_special_tokens=True) == "First Citizen:x"
    assert BPETokenizer(merges=bpe.merges).encode("[EOS]") == list(b"[EOS]")  # no special tokens: plain bytes


def test_bpe_training_never_merges_across_special_tokens():
    # Without cutting out "[EOS]" first, "EO", "OS" and "EOS" would be the most frequent pairs.
    with pytest.warns(UserWarning, match="ran out of pairs after 1 merges"):
        tok = BPETokenizer.train("ab[EOS]" * 50, vocab_size=270, special_tokens=("[EOS]",))
    assert tok.convert_ids_to_tokens(range(256, 256 + len(tok.merges))) == ["ab"]
    assert tok.vocab_size == 258


def test_bpe_save_load_gives_identical_encodings(bpe, text, tmp_path):
    bpe.save(tmp_path / "bpe.json")
    for loaded in (BPETokenizer.load(tmp_path / "bpe.json"), load_tokenizer(tmp_path / "bpe.json")):
        assert loaded.to_dict() == bpe.to_dict()
        sample = "[BOS]" + text[50_000:52_000] + " naïve 🤖[EOS]"
        assert loaded.encode(sample) == bpe.encode(sample)


def test_bpe_unpaired_surrogate_raises_a_clear_error(bpe):
    with pytest.raises(ValueError, match=r"'\\ud800' at position 2"):
        bpe.encode("ab\ud800")


def test_pre_split_known_answer():
    assert regex.findall(GPT2_SPLIT_PATTERN, "Hello world's 123  ok\n\n") == [
        "Hello",
        " world",
        "'s",
        " 123",
        " ",
        " ok",
        "\n\n",
    ]


# ---------------------------------------------------------------- Hugging Face as a reference (offline)


def _gpt2_byte_chars() -> dict[int, str]:
    """GPT-2's printable stand-in for each byte: printable Latin-1 bytes are themselves, the rest 256, 257..."""
    printable = {
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    }
    extra = iter(range(256, 512))
    return {b: chr(b) if b in printable else chr(next(extra)) for b in range(256)}


@pytest.fixture(scope="module")
def hf_twin(bpe):
    """A Hugging Face GPT-2 tokenizer built in memory from our merges and special tokens, with our ids: no
    download needed. Without our special tokens it would read "[BOS]" in a text as five bytes."""
    transformers = pytest.importorskip("transformers")
    chars = _gpt2_byte_chars()
    as_str = lambda i: "".join(chars[b] for b in bpe._tokens_bytes[i])  # noqa: E731
    vocab = {as_str(i): i for i in range(256 + len(bpe.merges))}
    merges = [(as_str(a), as_str(b)) for a, b in bpe.merges]
    # No default "<|endoftext|>": it would take id 298, which is our "[BOS]".
    hf = transformers.GPT2TokenizerFast(
        vocab=vocab, merges=merges, unk_token=None, bos_token=None, eos_token=None
    )
    hf.add_special_tokens({"additional_special_tokens": list(bpe.special_tokens)})
    assert hf.convert_tokens_to_ids(list(bpe.special_tokens)) == [bpe.bos_token_id, bpe.eos_token_id]
    return hf


def test_pre_split_matches_hugging_face():
    pre_tokenizers = pytest.importorskip("tokenizers.pre_tokenizers")
    hf = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    chars = _gpt2_byte_chars()
    for s in [
        "Hello world's 123  ok",
        "I'LL don't  \n\n  x",
        "naïve café — 日本語 🤖!!",
        "a\t\tb\r\n\x0b\x1c end  ",
    ]:
        ours = [
            "".join(chars[b] for b in chunk.encode("utf-8")) for chunk in regex.findall(GPT2_SPLIT_PATTERN, s)
        ]
        assert ours == [piece for piece, _ in hf.pre_tokenize_str(s)]


def test_bpe_matches_hugging_face_on_held_out_shakespeare(bpe, hf_twin, text):
    held_out = text[200_000:230_000]
    assert bpe.encode(held_out) == hf_twin(held_out)["input_ids"]


# Text from common English characters, so that the learned merges actually fire and compete, and pieces of
# the special tokens, which must become their ids whole and stay bytes when broken.
ENGLISH_AND_SPECIALS = st.lists(st.sampled_from([*"etaoinshrdlu ,.'!\n[]", "[BOS]", "[EOS]", "BOS", "[EO"]))


@FIXTURE_OK
@given(st.text() | st.text(st.sampled_from("etaoinshrdlu ,.'!\n")) | ENGLISH_AND_SPECIALS.map("".join))
def test_bpe_matches_hugging_face_on_any_text(bpe, hf_twin, s):
    assert bpe.encode(s) == hf_twin(s)["input_ids"]


def test_bpe_matches_hugging_face_on_text_with_special_tokens(bpe, hf_twin):
    for s in ["[BOS]", "a [BOS] b[EOS]c", " [EOS] [BOS]x", "[BOS[EOS]]", "<|endoftext|>"]:
        assert bpe.encode(s) == hf_twin(s)["input_ids"], s


def test_bpe_matches_hugging_face_on_long_chunks(bpe, hf_twin, text):
    # Chunks far longer than a word take the fast merge path (merging.merge_by_rank).
    letters = "".join(ch for ch in text[300_000:340_000] if ch.isalpha())
    for s in [letters, "he" * 5_000, "e" * 3_000, " " * 500 + "x"]:
        assert bpe.encode(s) == hf_twin(s)["input_ids"]


# ---------------------------------------------------------------- the full corpus


@pytest.mark.slow
def test_bpe_trains_on_the_full_corpus(text):
    start = time.perf_counter()
    tok = BPETokenizer.train(text, vocab_size=512, special_tokens=("[EOS]",))
    seconds = time.perf_counter() - start
    print(f"BPE training on {len(text):,} characters to vocab_size=512 took {seconds:.2f} s")
    assert tok.vocab_size == 512 and seconds < 60
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert len(ids) < 0.6 * len(text.encode("utf-8"))
