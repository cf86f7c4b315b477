"""Checkpoints: exact round trip, atomic saves, no pickle ever loaded, clear errors for bad files."""

import pickle

import pytest
import torch
from safetensors.torch import save_file

import minitransformer as mt
from minitransformer.tokenizers import CharTokenizer
from minitransformer.training import checkpoints
from minitransformer.training.checkpoints import load_checkpoint, read_metadata, save_checkpoint


def small(cls=mt.GPT, **kw):
    return cls(
        mt.TransformerConfig(**(dict(vocab_size=11, d_model=16, n_heads=2, n_layers=1, max_len=8) | kw))
    )


TOKENIZER = CharTokenizer("abcdefghij", special_tokens=("[PAD]",))


@pytest.mark.parametrize("cls", [mt.GPT, mt.MaskedLM, mt.Seq2SeqTransformer])
@pytest.mark.parametrize("tie", [True, False])
def test_round_trip_is_exact(tmp_path, cls, tie):
    model = small(cls, tie_weights=tie)
    save_checkpoint(tmp_path / "m.safetensors", model, TOKENIZER, metrics={"val_loss": 1.5})
    loaded, tokenizer = load_checkpoint(tmp_path / "m.safetensors")
    assert type(loaded) is cls and loaded.config == model.config
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert (loaded.lm_head.weight is loaded.embed.tokens.weight) == tie
    assert tokenizer.to_dict() == TOKENIZER.to_dict()
    assert read_metadata(tmp_path / "m.safetensors")["metrics"] == {"val_loss": 1.5}


def test_half_precision_on_disk(tmp_path):
    model = small(d_model=64, n_heads=4)
    save_checkpoint(tmp_path / "full.safetensors", model)
    save_checkpoint(tmp_path / "half.safetensors", model, dtype=torch.float16)
    assert (tmp_path / "half.safetensors").stat().st_size < 0.6 * (
        tmp_path / "full.safetensors"
    ).stat().st_size
    loaded, _ = load_checkpoint(tmp_path / "half.safetensors")
    torch.testing.assert_close(loaded.lm_head.weight, model.lm_head.weight, atol=1e-3, rtol=1e-3)


def test_interrupted_save_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    first = small()
    save_checkpoint(path, first)
    before = path.read_bytes()

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")  # the write had begun...
        raise KeyboardInterrupt("interrupted mid-save")  # ...when the user pressed Ctrl-C

    monkeypatch.setattr(checkpoints, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, small(d_model=32))
    assert path.read_bytes() == before
    loaded, _ = load_checkpoint(path)
    assert loaded.config == first.config
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary file left behind


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def test_pickle_with_code_is_refused_and_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, write in [
        ("evil.pt", lambda p: torch.save({"x": _RunsCode()}, p)),
        ("evil.pkl", lambda p: p.write_bytes(pickle.dumps(_RunsCode()))),
    ]:
        write(tmp_path / name)
        with pytest.raises(mt.CheckpointError, match="never unpickles"):
            load_checkpoint(tmp_path / name)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    "make,error,match",
    [
        (lambda p: None, FileNotFoundError, "no checkpoint at"),
        (lambda p: p.mkdir(), mt.CheckpointError, "is a folder"),
        (
            lambda p: p.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage"),
            mt.CheckpointError,
            "not a readable",
        ),
        (
            lambda p: save_file({"w": torch.zeros(2)}, p),
            mt.CheckpointError,
            "not a minitransformer checkpoint",
        ),
    ],
)
def test_bad_files_get_clear_errors(tmp_path, make, error, match):
    path = tmp_path / "x.safetensors"
    make(path)
    with pytest.raises(error, match=match):
        load_checkpoint(path)


def test_truncated_checkpoint_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, small())
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(mt.CheckpointError, match="truncated or damaged"):
        load_checkpoint(path)


def test_tokenizer_vocabulary_mismatch_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, small(vocab_size=12), TOKENIZER)  # tokenizer has 11 ids, model 12
    with pytest.raises(
        mt.CheckpointError, match="tokenizer vocab_size=11 does not match the model's vocab_size=12"
    ):
        load_checkpoint(path)


def test_save_rejects_foreign_objects(tmp_path):
    with pytest.raises(TypeError, match="model must be one of"):
        save_checkpoint(tmp_path / "x.safetensors", torch.nn.Linear(2, 2))
