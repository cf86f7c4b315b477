"""The command line: `python -m minitransformer train ...`, `generate ...` and `export ...`.

python -m minitransformer train --preset shakespeare-char --out runs/shakespeare-char.safetensors
python -m minitransformer train --preset shakespeare-char --steps 200 --d-model 64 --out runs/quick.st
python -m minitransformer train --preset shakespeare-char --resume runs/shakespeare-char.safetensors
python -m minitransformer generate --model shakespeare-char --prompt "ROMEO:" --max-new-tokens 200
python -m minitransformer generate --model shakespeare-mlm --prompt "To be, or not to b[MASK]"
python -m minitransformer generate --model dates-seq2seq --prompt "Friday, March 5, 2021"
python -m minitransformer course course/   # student notebooks (solutions removed) and an nbgrader course

torchrun --nproc_per_node=4 -m minitransformer train --preset shakespeare-char   # 4 processes (GPUs)
    --batch-size is per process: the global batch is batch size x processes x grad accumulation.
    See docs/multi_node.md.

A user error (a bad value, a missing file, a checkpoint that does not fit) prints one line,
`minitransformer: error: ...`, and exits with status 2, as argparse does; --debug shows the traceback.
Ctrl-C while training saves a checkpoint that --resume continues, and exits with status 130.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import warnings
from importlib import metadata
from pathlib import Path

import torch

from ..errors import MiniTransformerError
from ..training import load_checkpoint, save_checkpoint
from .cli_generate import generate
from .cli_options import PROG, about, add_generate_options, add_train_options, keyword_flags, speak_flags
from .cli_train import train
from .exercises import write_course

# what a user can cause (a bad value or file, a full disk, a diverging run); anything else is a bug
USER_ERRORS = (MiniTransformerError, ValueError, OSError, torch.cuda.OutOfMemoryError)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad command line prints one line (the usage is in --help), as every error here does."""

    def error(self, message):
        self.exit(2, f"{PROG}: error: {message} (see: {self.prog} --help)\n")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    args = build_parser().parse_args(argv)
    try:
        with _warnings_on_one_line(args.flags):
            commands = {"train": train, "generate": generate, "export": _export, "course": _course}
            return commands[args.command](args, argv)
    except KeyboardInterrupt:  # (training handles its own Ctrl-C: it saves first)
        if args.debug:
            raise
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        if args.debug:
            raise
        # what was asked for cannot be done: say why in one line and exit 2, as argparse does for a bad option
        print(f"{PROG}: error: {_message(e, args.flags)}", file=sys.stderr)
        return 2


def _message(error: Exception, flags: dict) -> str:
    if isinstance(
        error, torch.cuda.OutOfMemoryError
    ):  # torch's own message is a paragraph of allocator stats
        return (
            "the GPU ran out of memory: use a smaller --batch-size, with --grad-accum to keep the "
            "global batch (or a smaller model)"
        )
    return speak_flags(str(error), flags)


def build_parser() -> argparse.ArgumentParser:
    kinds = dict(formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[1], **kinds)
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback of an error (default: off)"
    )
    # the same flag after the command; SUPPRESS: its absence there must not undo a --debug given before it
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback of an error (default: off)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,generate,export,course}")
    add_train_options(sub.add_parser("train", help="train a model from a preset", parents=[debug], **kinds))
    add_generate_options(
        sub.add_parser(
            "generate",
            help="continue a text (GPT), fill its [MASK] (masked LM) or turn it into its output "
            "(encoder-decoder)",
            parents=[debug],
            **kinds,
        )
    )
    export = sub.add_parser(
        "export",
        help="copy a checkpoint's weights, tokenizer and metrics without training state",
        parents=[debug],
        **kinds,
    )
    export.add_argument("source", help="a checkpoint written by train")
    export.add_argument("target", help="the new, smaller checkpoint")
    export.add_argument("--half", action="store_true", help="store weights in float16 (default: off)")
    course = sub.add_parser(
        "course",
        help="write the student version of every notebook (solutions removed) and an nbgrader course folder",
        parents=[debug],
        **kinds,
    )
    course.add_argument("out", help="the folder to write: OUT/student/*.ipynb, OUT/source/, OUT/nbgrader_config.py")
    course.add_argument("--notebooks", default="notebooks", help="the instructor notebooks' folder (default: notebooks)")
    for command in sub.choices.values():  # each command's errors speak its own flags
        command.set_defaults(flags=keyword_flags(command))
    return parser


def _version() -> str:
    try:
        return metadata.version("minitransformer")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


@contextlib.contextmanager
def _warnings_on_one_line(flags: dict):
    """A warning prints as `minitransformer: warning: ...`, not as a source file, line and code."""

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"{PROG}: warning: {speak_flags(str(message), flags)}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _export(args, argv) -> int:
    with about("source"):
        model, tokenizer, state = load_checkpoint(args.source, return_state=True)
    metrics = state["metrics"] | {"step": state["training"].get("step")}
    with about("target"):
        save_checkpoint(
            args.target, model, tokenizer, metrics=metrics, dtype=torch.float16 if args.half else None
        )
    print(json.dumps({"target": args.target, **metrics}))
    return 0


def _course(args, argv) -> int:
    notebooks = sorted(Path(args.notebooks).glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise ValueError(f"--notebooks={args.notebooks!r} holds no numbered notebooks (NN_name.ipynb)")
    written = write_course(args.out, notebooks)
    print(json.dumps({"student_notebooks": len(written), "out": str(args.out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
