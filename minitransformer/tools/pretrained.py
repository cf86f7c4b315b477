"""Small pretrained models that ship inside the package, so a notebook can start from a good model at once.

    model, tokenizer = mt.load_pretrained("shakespeare-char")

The files live in the data folder minitransformer/pretrained/. Each model was trained with the
package's own command line; `MODEL_CARDS.md` beside the files records the exact command, the time,
the hardware and the final metrics, and tests/test_pretrained.py re-scores every model on held-out data.

`load_model` also reads a folder holding GPT-2 as Hugging Face saves it (model.safetensors and config.json,
with vocab.json and merges.txt, OpenAI's encoder.json and vocab.bpe, or tokenizer.json): nothing is
downloaded, so a user who has GPT-2's files on disk runs `mt.pipeline("text-generation", model=folder)`.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from ..errors import CheckpointError, describe
from ..models import GPT
from ..tokenizers import BPETokenizer, find_gpt2_files
from ..training.checkpoints import load_checkpoint

PRETRAINED = {
    "shakespeare-char": "GPT, character-level, trained on Tiny Shakespeare (causal LM)",
    "shakespeare-mlm": "MaskedLM, character-level, trained on Tiny Shakespeare (masked LM)",
    "dates-seq2seq": "Seq2SeqTransformer, turns dates like 'March 5, 2021' into '2021-03-05'",
    "tang-poetry-char": "GPT, character-level, trained on 35,193 Tang poems (Chinese, causal LM)",
}


def pretrained_path(name: str) -> Path:
    if not isinstance(name, str):
        raise TypeError(
            f"name must be the str name of a bundled model ({', '.join(PRETRAINED)}), got {describe(name)}"
        )
    if name not in PRETRAINED:
        known = "\n".join(f"  {k}: {v}" for k, v in PRETRAINED.items())
        raise ValueError(f"unknown pretrained model {name!r}; the bundled models are:\n{known}")
    # importlib.resources finds the data folder inside the installed package, wherever it lives
    path = Path(str(resources.files("minitransformer") / "pretrained" / f"{name}.safetensors"))
    if not path.exists():
        raise FileNotFoundError(
            f"the bundled file for {name!r} is missing from the installation ({path.name})"
        )
    return path


def load_pretrained(name: str, device="cpu"):
    """A bundled model by name -> (model in eval mode, tokenizer)."""
    return load_checkpoint(pretrained_path(name), map_location=device)


def load_model(name_or_path, device="cpu"):
    """A bundled name, the path of any checkpoint written by save_checkpoint, or a folder holding GPT-2's
    files -> (model, tokenizer)."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(
            "name_or_path must be a bundled model name or a checkpoint path (a str or pathlib.Path), "
            f"got {describe(name_or_path)}"
        )
    if str(name_or_path) in PRETRAINED:
        return load_pretrained(str(name_or_path), device)
    if not Path(name_or_path).exists():
        raise FileNotFoundError(
            f"{str(name_or_path)!r} is neither a bundled model ({', '.join(PRETRAINED)}) nor an existing "
            "checkpoint file or GPT-2 folder"
        )
    folder = Path(name_or_path)
    if folder.is_dir() and any((folder / name).exists() for name in ("config.json", "model.safetensors")):
        return load_gpt2_folder(folder, device)
    return load_checkpoint(name_or_path, map_location=device)


def load_gpt2_folder(folder: Path, device="cpu"):
    """GPT-2 saved by Hugging Face -> (GPT, BPETokenizer with GPT-2's ids, or None without its files)."""
    if not (folder / "model.safetensors").is_file():
        raise CheckpointError(
            f"{str(folder)!r} holds config.json but no model.safetensors, the weights of a GPT-2 folder "
            "(pickled pytorch_model.bin files are never loaded)"
        )
    model = GPT.from_hf_gpt2(folder).to(device)
    vocabulary = find_gpt2_files(folder)
    tokenizer = BPETokenizer.from_gpt2(*vocabulary) if vocabulary else None
    if tokenizer is not None and tokenizer.vocab_size > model.config.vocab_size:
        raise CheckpointError(
            f"the tokenizer files in {str(folder)!r} hold {tokenizer.vocab_size} tokens, more than the "
            f"{model.config.vocab_size} the model has embeddings for: are they from the same model?"
        )
    return model, tokenizer
