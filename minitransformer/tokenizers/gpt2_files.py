"""GPT-2's own tokenizer files, read for `BPETokenizer.from_gpt2`: the same algorithm, other ids.

GPT-2's tokenizer is two files, named vocab.json and merges.txt by Hugging Face, encoder.json and vocab.bpe
in OpenAI's release:

    vocab.json   {"!": 0, "\\"": 1, ..., "Ġthe": 262, ..., "<|endoftext|>": 50256}     token -> id
    merges.txt   "#version: 0.2", then one merge a line, in the order they were learned: "Ġ t", "Ġ a", ...

Both spell a token's bytes with a printable stand-in alphabet (`byte_chars`): a printable Latin-1 byte
stands for itself, each of the 68 others for a character from chr(256) on, so a space is "Ġ" and a newline
"Ċ". GPT-2 numbers its 256 byte tokens in that alphabet's order ("!" is 0), where BPETokenizer's byte
tokens are the byte values, and merge k makes GPT-2's id 256 + k only because the byte tokens come first.
So loading translates: each merge becomes a pair of BPETokenizer numbers, and `token_ids` gives each
BPETokenizer token the id vocab.json gives it. A token of vocab.json that no merge makes, such as
"<|endoftext|>", becomes a special token: written in a text, it encodes to its id, as in Hugging Face.

Hugging Face's one-file format, tokenizer.json (all that transformers 5's save_pretrained writes), holds the
same vocabulary and merges, plus settings: it is read when they are GPT-2's (GPT2_STYLE), and refused,
naming the setting, when they are not, since other settings would give other ids.
"""

from __future__ import annotations

from pathlib import Path

from .. import files
from ..errors import CheckpointError, describe
from .base import MAX_SPECIAL_TOKENS

ENDOFTEXT = "<|endoftext|>"  # GPT-2's one special token: it ends each text and starts the next
# The names the files go by: Hugging Face's pair, OpenAI's original pair, and Hugging Face's one-file format.
FILE_NAMES = (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe"))
ONE_FILE = "tokenizer.json"
MAX_MERGES_FILE_BYTES = files.MAX_JSON_BYTES  # GPT-2's vocab.bpe holds 456 kB
# What a tokenizer.json must say to be GPT-2's kind of tokenizer: anything else would give other ids.
GPT2_STYLE = {
    "normalizer": None,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "byte_fallback": False, "ignore_merges": False},
}


def byte_chars() -> dict[int, str]:
    """GPT-2's printable stand-in for each byte: a printable Latin-1 byte is itself; the others, in byte
    order, are chr(256), chr(257), ... (so that no token is spelled with a space or a control character)."""
    printable = {*range(33, 127), *range(161, 173), *range(174, 256)}  # "!".."~", "¡".."¬", "®".."ÿ"
    stand_ins = iter(range(256, 512))
    return {b: chr(b) if b in printable else chr(next(stand_ins)) for b in range(256)}


def find_gpt2_files(folder, required: bool = False) -> tuple[Path, Path | None] | None:
    """GPT-2's tokenizer files in `folder`: (vocabulary, merges) under either pair of FILE_NAMES, else
    (tokenizer.json, None), else None (or, with `required`, a FileNotFoundError naming the files)."""
    files.require_path("folder", folder)
    folder = Path(folder)
    for vocab_name, merges_name in FILE_NAMES:
        vocab, merges = folder / vocab_name, folder / merges_name
        if vocab.exists() != merges.exists():  # half a pair: say which half is missing
            there, missing = (vocab, merges) if vocab.exists() else (merges, vocab)
            raise FileNotFoundError(f"{str(folder)!r} holds {there.name} but not {missing.name}: GPT-2's "
                                    "tokenizer needs both files")
        if vocab.exists():
            return vocab, merges
    if (folder / ONE_FILE).exists():
        return folder / ONE_FILE, None
    if required:
        names = " or ".join([*(" + ".join(pair) for pair in FILE_NAMES), ONE_FILE])
        raise FileNotFoundError(f"no GPT-2 tokenizer files in {str(folder)!r}: expected {names}")
    return None


def read_gpt2_files(path, merges_file=None) -> tuple[list[tuple[int, int]], list[str], list[int]]:
    """vocab.json and merges.txt, a tokenizer.json, or a folder holding either -> (merges as pairs of
    BPETokenizer ids, special tokens, token_ids): BPETokenizer's arguments."""
    files.require_path("path", path)
    if not Path(path).exists():
        raise FileNotFoundError(f"no GPT-2 tokenizer at {str(path)!r}: pass the folder holding its files, "
                                "its tokenizer.json, or its vocab.json and merges.txt")
    if merges_file is None and Path(path).is_dir():
        path, merges_file = find_gpt2_files(path, required=True)
    if merges_file is None:
        vocab, merges = _read_tokenizer_json(path)
    else:
        files.require_path("merges_file", merges_file)
        vocab = _checked_vocab(files.read_json(path, "GPT-2 vocabulary"), path)
        merges = _read_merges(merges_file)
    return _translate(vocab, merges, path, merges_file or path)


def _translate(vocab: dict[str, int], merges: list, vocab_file, merges_file):
    """The merges spelled as strings -> pairs of BPETokenizer numbers; the rest as in `read_gpt2_files`."""
    # BPETokenizer's numbering, each token spelled as in the files: the bytes 0..255, then merge k is 256 + k.
    number = {char: b for b, char in byte_chars().items()}
    pairs = []
    for where, (a, b) in merges:
        for part in (a, b):
            if part not in number:
                raise CheckpointError(f"{str(merges_file)!r} {where}: {part!r} is neither a byte nor a "
                                      "token made by an earlier merge")
        if a + b in number:  # the token made would get two numbers: later merges could not tell them apart
            raise CheckpointError(f"{str(merges_file)!r} {where}: the merge {a!r} + {b!r} makes "
                                  f"{a + b!r}, a token that an earlier merge (or a byte) already makes")
        pairs.append((number[a], number[b]))
        number[a + b] = 255 + len(pairs)
    _check_every_token_has_an_id(number, vocab, vocab_file)
    special_tokens = sorted(set(vocab) - set(number), key=vocab.__getitem__)  # e.g. ["<|endoftext|>"]
    if len(special_tokens) > MAX_SPECIAL_TOKENS:
        raise CheckpointError(
            f"{len(special_tokens):,} tokens of {str(vocab_file)!r} are made by no merge of "
            f"{str(merges_file)!r} (e.g. {describe(special_tokens[:3])}): are both files from one tokenizer?"
        )
    return pairs, special_tokens, [vocab[token] for token in [*number, *special_tokens]]


def _check_every_token_has_an_id(number: dict[str, int], vocab: dict[str, int], vocab_file) -> None:
    missing = [token for token in number if token not in vocab]
    if missing:
        first = number[missing[0]]
        what = f"byte {first}" if first < 256 else f"the token made by merge {first - 255}"
        others = f" and {len(missing) - 1} more tokens" if len(missing) > 1 else ""
        raise CheckpointError(
            f"{str(vocab_file)!r} has no id for {missing[0]!r} ({what}){others}; every byte and every "
            "token the merges make needs one"
        )


def _checked_vocab(vocab, path) -> dict[str, int]:
    """{token: id}, the ids 0 .. n - 1, each once (a model's embedding has one row per id)."""
    if not isinstance(vocab, dict) or not all(type(i) is int for i in vocab.values()):
        raise CheckpointError(f"{str(path)!r} must hold a JSON object {{token: integer id}}, got "
                              f"{describe(vocab)}")
    if sorted(vocab.values()) != list(range(len(vocab))):
        repeated = len(vocab) - len(set(vocab.values()))
        raise CheckpointError(
            f"the ids in {str(path)!r} must be 0..{len(vocab) - 1}, each once (one per token); "
            f"{f'{repeated} are repeated' if repeated else 'some are missing'}"
        )
    return vocab


def _read_merges(path) -> list[tuple[str, tuple[str, str]]]:
    """merges.txt: [("line N", (left, right))], skipping the "#version" line and blank lines."""
    with files.open_regular(path, "GPT-2 merges file") as f:
        data = files.read_limited(f, path, "GPT-2 merges file", MAX_MERGES_FILE_BYTES)
    try:
        lines = data.decode("utf-8").split("\n")
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{str(path)!r} is not UTF-8 text ({e})") from None
    merges = []
    for line, text in enumerate(lines, start=1):
        text = text.rstrip("\r")
        if text and not (line == 1 and text.startswith("#version")):
            merges.append((f"line {line}", _merge_pair(text, path, f"line {line}")))
    return merges


def _merge_pair(merge, path, where: str) -> tuple[str, str]:
    """A merge written "a b" (merges.txt, older tokenizer.json files) or ["a", "b"] -> ("a", "b")."""
    parts = merge.split(" ") if isinstance(merge, str) else merge
    if not (isinstance(parts, list) and len(parts) == 2 and all(isinstance(p, str) and p for p in parts)):
        raise CheckpointError(f"{str(path)!r} {where}: a merge is two tokens, \"a b\" or [\"a\", \"b\"], "
                              f"got {describe(merge)}")
    return parts[0], parts[1]


def _read_tokenizer_json(path) -> tuple[dict[str, int], list]:
    """Hugging Face's tokenizer.json -> (vocab with the added tokens, merges), if it is GPT-2's kind."""
    d = files.read_json(path, "Hugging Face tokenizer")
    if isinstance(d, dict) and "model" not in d and all(type(i) is int for i in d.values()):
        raise CheckpointError(f"{str(path)!r} is a vocabulary without merges: pass the merges file too, "
                              "BPETokenizer.from_gpt2(vocab_file, merges_file)")
    _check_gpt2_style(d, path)
    added = d.get("added_tokens") or []
    if not all(isinstance(t, dict) and isinstance(t.get("content"), str) for t in added):
        raise CheckpointError(f"{str(path)!r}: added_tokens must be a list of {{'id', 'content'}} objects")
    stripping = [t["content"] for t in added if any(t.get(k) for k in ("lstrip", "rstrip", "single_word"))]
    if stripping:  # Hugging Face would eat the spaces around these tokens, or match them only as words
        raise CheckpointError(f"{str(path)!r}: the added token {stripping[0]!r} sets lstrip, rstrip or "
                              "single_word, which BPETokenizer's special tokens do not do")
    vocab = d["model"].get("vocab")
    if isinstance(vocab, dict):
        vocab = vocab | {t["content"]: t.get("id") for t in added}
    vocab = _checked_vocab(vocab, path)
    merges = d["model"].get("merges", [])
    if not isinstance(merges, list):
        raise CheckpointError(f"{str(path)!r}: model.merges must be a list, got {describe(merges)}")
    where = [f"model.merges[{i}]" for i in range(len(merges))]
    return vocab, [(w, _merge_pair(m, path, w)) for w, m in zip(where, merges)]


def _check_gpt2_style(d, path) -> None:
    """Refuse a tokenizer.json whose settings differ from GPT-2's (see GPT2_STYLE), naming the setting."""
    if not isinstance(d, dict) or not isinstance(d.get("model"), dict):
        raise CheckpointError(f"{str(path)!r} is not a Hugging Face tokenizer.json (no 'model' object)")
    for section, wanted in GPT2_STYLE.items():
        got = d.get(section)
        if isinstance(wanted, dict) and isinstance(got, dict):  # only the settings GPT2_STYLE names count
            for key, value in wanted.items():
                _require_setting(f"{section}.{key}", got.get(key, value), value, path)
        else:
            _require_setting(section, got, wanted, path)


def _require_setting(name: str, got, wanted, path) -> None:
    if got != wanted:
        raise CheckpointError(
            f"{str(path)!r} is not a GPT-2-style tokenizer: its {name} is {describe(got)}, where GPT-2's "
            f"is {wanted!r}; BPETokenizer.from_gpt2 would give other ids than it does"
        )
