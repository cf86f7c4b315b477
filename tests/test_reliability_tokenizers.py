"""Tokenizers under hostile files and hostile text (issue 17): loading and encoding cost stays linear, a file
cannot bring its own regular expression, and no character of a text is silently dropped."""

import json
import random
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_tokenizers import FIXTURE_OK

from minitransformer.errors import CheckpointError
from minitransformer.tokenizers import (
    GPT2_SPLIT_PATTERN,
    BPETokenizer,
    CharTokenizer,
    load_tokenizer,
    tokenizer_from_dict,
)
from minitransformer.tokenizers import base as base_module
from minitransformer.tokenizers import bpe as bpe_module
from minitransformer.tokenizers.merging import merge_by_rank
from minitransformer.tokenizers.pretokenize import ALLOWED_PATTERNS, ONE_CHUNK_PATTERN


@pytest.fixture(scope="module")
def bpe(text):
    return BPETokenizer.train(text[:20_000], vocab_size=300, special_tokens=("[BOS]", "[EOS]"))


def bpe_dict(merges=(), special_tokens=(), pattern=GPT2_SPLIT_PATTERN) -> dict:
    merges = [list(m) for m in merges]
    return {"type": "bpe", "merges": merges, "special_tokens": list(special_tokens), "pattern": pattern}


def load_within(seconds: float, d: dict):
    """tokenizer_from_dict(d), which must answer (return or raise) within `seconds`."""
    start = time.perf_counter()
    try:
        return tokenizer_from_dict(d)
    finally:
        assert time.perf_counter() - start < seconds


# ---------------------------------------------------------------- loading cost: merges and special tokens


def test_chained_merges_are_refused_before_their_tokens_are_built(tmp_path):
    # (97, 97), (97, 256), (97, 257), ...: tokens of 2, 3, 4, ... bytes, 72 MB in all from a 170 kB file.
    chain = [(97, 97)] + [(97, 256 + k) for k in range(12_000)]
    with pytest.raises(CheckpointError, match=r"MAX_VOCAB_BYTES = 67,108,864.*merges\[\d+\]"):
        load_within(1.0, bpe_dict(chain))
    (tmp_path / "tok.json").write_text(json.dumps(bpe_dict(chain)), encoding="utf-8")
    with pytest.raises(CheckpointError, match="MAX_VOCAB_BYTES"):
        load_tokenizer(tmp_path / "tok.json")
    # Doubling, (256, 256), (257, 257), ...: the 100th token alone would need 2**101 bytes.
    doubling = [(97, 97)] + [(256 + k, 256 + k) for k in range(100)]
    with pytest.raises(CheckpointError, match="MAX_VOCAB_BYTES"):
        load_within(1.0, bpe_dict(doubling))
    with pytest.raises(ValueError, match="MAX_VOCAB_BYTES"):
        BPETokenizer(doubling)  # built in code: the same limit, as a ValueError
    assert BPETokenizer(chain[:1000]).vocab_size == 256 + 1000  # a long chain under the limit still loads


def test_more_merges_than_the_limit_are_refused(monkeypatch):
    monkeypatch.setattr(bpe_module, "MAX_MERGES", 100)  # the real limit, 1,000,000, makes a 15 MB file
    merges = [(a, b) for a in range(10) for b in range(11)]
    with pytest.raises(CheckpointError, match="110 merges, more than MAX_MERGES = 100"):
        tokenizer_from_dict(bpe_dict(merges))
    assert len(tokenizer_from_dict(bpe_dict(merges[:100])).merges) == 100


@pytest.mark.parametrize("pair", [(97, 257), (257, 97), (-1, 97), (True, 97), (97.0, 98), ("a", "b")])
def test_merges_must_name_existing_ids(pair):
    with pytest.raises(
        CheckpointError, match=r"merges\[1\] must be a pair of existing ids, each in 0\.\.256"
    ):
        tokenizer_from_dict(bpe_dict([(97, 98), pair]))


def char_dict(special_tokens) -> dict:
    return {"type": "char", "chars": ["a"], "special_tokens": list(special_tokens)}


@pytest.mark.parametrize("cls_dict", [lambda specials: bpe_dict(special_tokens=specials), char_dict])
def test_special_tokens_are_limited_in_number_and_length(cls_dict):
    too_many = [f"<|{i}|>" for i in range(base_module.MAX_SPECIAL_TOKENS + 1)]
    with pytest.raises(CheckpointError, match="1,025 tokens, more than MAX_SPECIAL_TOKENS = 1024"):
        load_within(1.0, cls_dict(too_many))
    with pytest.raises(CheckpointError, match="at most MAX_SPECIAL_TOKEN_LENGTH = 64 characters"):
        load_within(1.0, cls_dict(["x" * 65]))
    assert load_within(1.0, cls_dict(["x" * 64])).vocab_size >= 2


def test_the_largest_special_tokens_allowed_still_encode_fast():
    # 1024 tokens of 64 characters that share a prefix, and a text that matches the prefix everywhere.
    tok = CharTokenizer("<|xy", special_tokens=["<|" + "x" * 58 + f"{i:04d}" for i in range(1024)])
    hostile = ("<|" + "x" * 58 + "y") * 2_000
    start = time.perf_counter()
    assert tok.decode(tok.encode(hostile)) == hostile
    assert time.perf_counter() - start < 2.0


# ---------------------------------------------------------------- the pre-split pattern


@pytest.mark.parametrize("pattern", ["(a|aa)+$", "x", GPT2_SPLIT_PATTERN + "|a", "", r"\w+"])
def test_a_file_may_carry_only_the_patterns_the_package_writes(pattern, tmp_path):
    with pytest.raises(
        CheckpointError, match=r"'pattern' must be one of .*GPT2_SPLIT_PATTERN.*ONE_CHUNK_PATTERN"
    ):
        load_within(1.0, bpe_dict([(97, 97)], pattern=pattern))
    (tmp_path / "tok.json").write_text(json.dumps(bpe_dict(pattern=pattern)), encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"build the tokenizer in code: BPETokenizer\("):
        BPETokenizer.load(tmp_path / "tok.json")


@pytest.mark.parametrize("pattern", list(ALLOWED_PATTERNS.values()))
def test_the_allowed_patterns_survive_save_and_load(pattern, text, tmp_path):
    tok = BPETokenizer.train(text[:5_000], vocab_size=270, pattern=pattern)
    tok.save(tmp_path / "tok.json")
    loaded = load_tokenizer(tmp_path / "tok.json")
    assert loaded.pattern == pattern and loaded.encode(text[9_000:10_000]) == tok.encode(text[9_000:10_000])


def test_a_pattern_given_in_code_is_still_used():
    tok = BPETokenizer([(ord("a"), ord(" "))], pattern=r"\S+\s*")  # a space ends a chunk, so "a " can merge
    assert tok.encode("a a") == [256, ord("a")]
    with pytest.raises(CheckpointError, match="'pattern'"):
        tokenizer_from_dict(tok.to_dict())  # but its file is refused: only the package's patterns load


def test_a_pattern_that_skips_characters_raises_instead_of_dropping_them():
    words_only = BPETokenizer(pattern=r"\w+", special_tokens=("[EOS]",))
    with pytest.raises(ValueError, match=r"pattern '\\\\w\+' skips ' ' at position 2; .*cover the text"):
        words_only.encode("hi there!")
    with pytest.raises(ValueError, match=r"skips '!' at position 12"):  # positions count the special token
        words_only.encode("hi[EOS]there!")
    with pytest.raises(ValueError, match=r"skips 'b' at position 0"):
        BPETokenizer(pattern=r"a").encode("ba")
    with pytest.raises(ValueError, match=r"skips ' ' at position 3"):
        BPETokenizer.train(
            "the cat", vocab_size=260, pattern=r"\w+"
        )  # training too: its merges would miss text
    covering = BPETokenizer(pattern=r"\w+|[\s\S]")  # the fix the message suggests
    assert covering.decode(covering.encode("hi there!")) == "hi there!"


def test_a_pattern_with_groups_splits_on_whole_matches():
    # findall would return the groups, "hi" and " " only partly: the chunks are the whole matches.
    grouped = BPETokenizer([(ord("h"), ord("i"))], pattern=r"(\w)+|(\s)+|[^\w\s]+")
    assert grouped.encode("hi  you!") == [256, ord(" "), ord(" "), *b"you!"]


# ---------------------------------------------------------------- encoding cost: a fast path for long chunks


@st.composite
def merges_and_chunk(draw):
    """Random merges over a small alphabet (each pair of existing ids), and a chunk of those bytes."""
    alphabet = draw(st.lists(st.integers(0, 255), min_size=1, max_size=4, unique=True))
    merges, known = [], list(alphabet)
    for _ in range(draw(st.integers(0, 40))):
        pair = (draw(st.sampled_from(known)), draw(st.sampled_from(known)))
        if pair not in merges:
            merges.append(pair)
            known.append(255 + len(merges))
    return merges, bytes(draw(st.lists(st.sampled_from(alphabet), max_size=300)))


@given(merges_and_chunk())
def test_the_fast_merge_equals_the_readable_loop_on_random_merges(case):
    merges, chunk = case
    tok = BPETokenizer(merges)
    assert merge_by_rank(list(chunk), tok._ranks) == list(tok._encode_chunk(chunk))


@FIXTURE_OK
@given(st.text(st.sampled_from("etaoinshrdlu .,'\n"), max_size=400))
def test_the_fast_merge_equals_the_readable_loop_on_english_letters(bpe, s):
    chunk = s.encode()
    assert merge_by_rank(list(chunk), bpe._ranks) == list(bpe._encode_chunk(chunk))


def test_the_fast_merge_equals_the_readable_loop_on_shakespeare(bpe, text):
    for start in range(0, 400_000, 20_000):
        chunk = text[start : start + 500].encode()  # lines, spaces and all, as one chunk
        assert merge_by_rank(list(chunk), bpe._ranks) == list(bpe._encode_chunk(chunk))
    one_chunk = BPETokenizer(bpe.merges, pattern=ONE_CHUNK_PATTERN)
    assert one_chunk.encode(text[:700]) == list(bpe._encode_chunk(text[:700].encode()))


def test_a_megabyte_without_spaces_encodes_in_seconds(text):
    # One chunk of a million letters. The readable loop scans the chunk once per merge that fires: with 768
    # merges that is about 40 s (the issue measured 71 s); the fast path takes one or two.
    tok = BPETokenizer.train(text[:50_000], vocab_size=1024)
    s = "".join(random.Random(0).choices("etaoinshrdlu", k=1_000_000))
    start = time.perf_counter()
    ids = tok.encode(s)
    seconds = time.perf_counter() - start
    # A generous bound that keeps the quadratic cliff away; the benchmarks measure speed.
    assert seconds < 10, f"1 MB of letters took {seconds:.1f} s to encode"
    assert len(ids) < 0.8 * len(s) and tok.decode(ids) == s
