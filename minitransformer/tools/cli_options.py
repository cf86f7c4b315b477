"""The command line's options: each with its help text and default, and checked as it is parsed.

A value that cannot work (a batch size of 0, a top_p of 2, --device cuda on a torch without CUDA)
stops the command before anything is loaded, with one line that names the flag and what it accepts.
Errors raised deeper down speak Python keywords (max_new_tokens=...): `speak_flags` rewrites them
into the flags a command-line user typed (--max-new-tokens).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re

import torch

from ..errors import ConfigError
from ..training import TrainConfig, pick_device
from ..training.config import OPTIMIZERS, PRECISIONS, SCHEDULES
from . import presets
from .pretrained import PRETRAINED

PROG = "minitransformer"


# ----------------------------------------------------------------------------- value checks


def integer(minimum: int):
    """An argparse type: an integer >= minimum."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            allowed = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
        return value

    return parse


def number(low: float, high: float = math.inf, high_included: bool = False, low_included: bool = False):
    """An argparse type: a finite number in the interval from low to high."""
    interval = ("[" if low_included else "(") + f"{low:g}, {high:g}" + ("]" if high_included else ")")
    allowed = f"a finite number > {low:g}" if high == math.inf else f"a number in {interval}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        above = value >= low if low_included else value > low
        below = value <= high if high_included else value < high
        if not (above and below and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
        return value

    return parse


def device(text: str) -> str:
    """An argparse type: a device this torch and this machine have ("auto" picks one)."""
    allowed = "auto, cpu, cuda, cuda:N or mps"
    try:
        found = pick_device(text)
    except (ConfigError, RuntimeError):
        found = None
    if found is None or found.type not in ("cpu", "cuda", "mps"):
        raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
    if found.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(
            f"{text!r} needs an NVIDIA GPU and a CUDA build of torch; this torch ({torch.__version__}) "
            "sees no CUDA device: use --device cpu (or auto)"
        )
    if found.type == "cuda" and (found.index or 0) >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{text!r}: this machine has {torch.cuda.device_count()} CUDA devices")
    mps = getattr(torch.backends, "mps", None)
    if found.type == "mps" and not (mps is not None and mps.is_available()):
        raise argparse.ArgumentTypeError(
            f"{text!r} needs an Apple GPU, which this machine lacks: use --device cpu"
        )
    return text


POSITIVE, NATURAL = integer(1), integer(0)


# ----------------------------------------------------------------------------- the options

# (flag, type, help) of the train options that override the preset's model or TrainConfig value
TRAIN_NUMBERS = [
    ("steps", POSITIVE, "optimizer steps to train for"),
    ("time-budget", number(0), "stop at this many seconds, final save included; the lr decays over them"),
    ("lr", number(0), "peak learning rate, reached after the warmup, then a decay (--lr-schedule)"),
    ("warmup-steps", NATURAL, "steps of linear learning-rate warmup"),
    ("eval-interval", POSITIVE, "evaluate, and save --out, every N steps"),
    ("eval-batches", POSITIVE, "validation batches per evaluation"),
    ("grad-accum", POSITIVE, "micro-batches per optimizer step (emulates a larger batch)"),
    ("seed", NATURAL, "random seed of the initial weights, the batches and dropout"),
    ("stage", POSITIVE, "start a preset trained in stages at stage N (from N-1's files by --out); none: all"),
    ("batch-size", POSITIVE, "sequences per micro-batch, per process"),
    ("d-model", POSITIVE, "model width (embedding size)"),
    ("n-heads", POSITIVE, "attention heads; must divide --d-model"),
    ("n-layers", POSITIVE, "Transformer blocks"),
    ("max-len", POSITIVE, "context length in tokens"),
    ("dropout", number(0, 1, low_included=True), "dropout probability"),
]

# (flag, choices, help) of the train options that pick one of a few settings
TRAIN_CHOICES = [
    ("precision", PRECISIONS, "float16 needs CUDA; a preset's auto: bfloat16 where its matmuls are faster"),
    ("lr-schedule", SCHEDULES, "the learning rate's decay after the warmup"),
    ("optimizer", OPTIMIZERS, "muon: Muon for the hidden weight matrices, AdamW for the rest"),
]

# generate: (flag, type, help); the defaults depend on the model family, so the parser's default is None
GENERATE_NUMBERS = [
    ("max-new-tokens", POSITIVE, "tokens to generate (default: 200; an encoder-decoder: up to its max_len)"),
    ("temperature", number(0), "divide the logits by this before sampling (default: 1.0)"),
    (
        "top-k",
        NATURAL,
        "sampling: keep the k likeliest tokens, 0 = all; a masked LM: print k fillers "
        "(default: 50 when sampling; 5 fillers)",
    ),
    (
        "top-p",
        number(0, 1, high_included=True),
        "sampling: keep the likeliest tokens whose probabilities add up to p (default: 1.0, all)",
    ),
    ("num-beams", POSITIVE, "beam search with this many beams, 1 = greedy (default: 1)"),
    ("seed", NATURAL, "seed of the sampling random generator (default: 0)"),
]

DEFAULT_PROMPTS = {  # by pipeline task
    "text-generation": "\n",
    "fill-mask": "To be, or not to b[MASK]",
    "text2text-generation": "Friday, March 5, 2021",
}


def preset_default(field: str) -> str:
    """The preset's value of `field`, for help texts: one value, or one per preset where they differ."""
    values = {}
    for name, p in presets.PRESETS.items():
        if field == "batch_size":
            values[name] = p.batch_size
        else:
            value = p.model.get(field, p.train.get(field, getattr(TrainConfig, field, None)))
            values[name] = "none" if value is None else value
    if len(set(values.values())) == 1:
        return str(next(iter(values.values())))
    return "the preset's: " + ", ".join(f"{name} {value}" for name, value in values.items())


def add_train_options(train: argparse.ArgumentParser) -> None:
    train.add_argument(
        "--preset",
        required=True,
        choices=sorted(presets.PRESETS),
        help="the recipe to train: model family, sizes and training settings (required)",
    )
    _add_file_options(train)
    for name, kind, text in TRAIN_NUMBERS:
        default, metavar = preset_default(name.replace("-", "_")), "SECONDS" if "time" in name else None
        train.add_argument(f"--{name}", type=kind, metavar=metavar, help=f"{text} (default: {default})")
    for name, choices, text in TRAIN_CHOICES:
        default = preset_default(name.replace("-", "_"))
        train.add_argument(f"--{name}", choices=choices, help=f"{text} (default: {default})")
    train.add_argument("--compile", action="store_true", help="torch.compile the model (default: off)")
    train.add_argument("--device", type=device, help="auto picks cuda, then mps, then cpu (default: auto)")
    train.add_argument(
        "--corpus",
        choices=["shakespeare", "python"],
        help="train on another bundled corpus (default: the preset's: shakespeare, dates or tang)",
    )
    train.add_argument("--half", action="store_true", help="store the final weights in float16 (default: off)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar (default: show one)")
    add_threads_option(train)


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """--threads N: torch.set_num_threads(N) first. Idle 2 cores (benchmarks/results/bandwidth-threads): 2 threads
    train 1.2-1.9x faster than 1 and generate 1.2-1.65x faster; None keeps torch's choice."""
    parser.add_argument(
        "--threads",
        type=POSITIVE,
        metavar="N",
        help="CPU threads for torch's arithmetic (torch.set_num_threads); on a machine shared with other "
        f"work, 1 is often fastest (default: torch's choice, {torch.get_num_threads()} here)",
    )


def _add_file_options(train: argparse.ArgumentParser) -> None:
    """Where the run is saved, and what it starts from."""
    train.add_argument(
        "--out",
        metavar="PATH",
        help="checkpoint path (.safetensors), written at every evaluation and at the "
        "end (default: runs/PRESET.safetensors, or the --resume file)",
    )
    train.add_argument(
        "--best-out",
        metavar="PATH",
        help="also keep the checkpoint with the lowest validation loss here (default: none)",
    )
    train.add_argument(
        "--resume",
        metavar="PATH",
        help="continue the run saved in this checkpoint, e.g. after Ctrl-C; give "
        "the same options as the run (default: a new run)",
    )
    train.add_argument(
        "--init-from",
        metavar="PATH_OR_NAME",
        help="fine-tune: start from this checkpoint or bundled model "
        f"({', '.join(PRETRAINED)}) (default: random weights)",
    )
    train.add_argument(
        "--freeze-layers",
        type=NATURAL,
        default=0,
        help="fine-tune: freeze the embeddings and the first N blocks (default: 0)",
    )


def add_generate_options(gen: argparse.ArgumentParser) -> None:
    bundled = "; ".join(f"{name}: {about}" for name, about in PRETRAINED.items())
    gen.add_argument(
        "--model",
        default="shakespeare-char",
        metavar="NAME_OR_PATH",
        help=f"a bundled model or a checkpoint path (default: shakespeare-char). Bundled: {bundled}",
    )
    gen.add_argument(
        "--prompt",
        metavar="TEXT",
        help="a GPT continues it; a masked LM fills its [MASK]; an encoder-decoder "
        "turns it into its output (default: a newline; "
        f"{DEFAULT_PROMPTS['fill-mask']!r}; {DEFAULT_PROMPTS['text2text-generation']!r})",
    )
    gen.add_argument(
        "--do-sample",
        action="store_true",
        default=None,
        help="sample instead of greedy or beam search (default: off)",
    )
    for name, kind, text in GENERATE_NUMBERS:
        gen.add_argument(f"--{name}", type=kind, help=text)
    gen.add_argument(
        "--dtype",
        choices=["float32", "bfloat16", "bfloat16-compiled", "bfloat16-assisted"],
        help="the weights' and KV cache's format: bfloat16 reads half the bytes per token, and its greedy "
        "text can part from float32's at near-ties; bfloat16-compiled: each block's step as compiled code, "
        "our C for one prompt without padding, else torch.compile's (faster; needs a C compiler, seconds to "
        "compile at first use); bfloat16-assisted: a bfloat16 copy drafts "
        "tokens, the float32 model checks them (float32's greedy text) (default: float32)",
    )
    add_threads_option(gen)


# ----------------------------------------------------------------------------- errors in flags

# keyword names in the package's messages that a command-line user knows under another flag
ALIASES = {"checkpoint_path": "--out", "best_path": "--best-out"}


def keyword_flags(parser: argparse.ArgumentParser) -> dict:
    """{keyword: flag} for a command's options: {"max_new_tokens": "--max-new-tokens", ...}."""
    flags = {a.dest: a.option_strings[-1] for a in parser._actions if a.option_strings and a.dest != "help"}
    return flags | ALIASES


def speak_flags(message: str, flags: dict) -> str:
    """The message on one line, with Python keywords (max_new_tokens=) written as flags (--max-new-tokens=).

    A keyword is rewritten where it is the subject of the message ("top_k must be ...", "n_heads in [...]")
    or set to a value ("device='cuda'"), not where a word merely looks like it ("the model in ...").
    """
    message = " ".join(line.strip() for line in message.splitlines() if line.strip())
    names = "|".join(sorted(map(re.escape, flags), key=len, reverse=True))
    keyword = re.compile(rf"(?<![\w.-])({names})(?==|\s+(?:must|is)\b|\s+in \[)")
    return keyword.sub(lambda m: flags[m.group(1)], message)


@contextlib.contextmanager
def about(flag: str):
    """Errors raised inside (a bad file, a value that does not fit) name `flag`, as argparse's do,
    unless they name it already (as the flag, or as its keyword: "init_from='x' ...")."""
    try:
        yield
    except (ValueError, OSError) as e:
        message, keyword = str(e), flag.removeprefix("--").replace("-", "_")
        if flag in message or re.match(rf"{keyword}\b", message):
            raise
        raise ConfigError(f"argument {flag}: {message}") from e
