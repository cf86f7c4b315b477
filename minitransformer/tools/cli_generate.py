"""`minitransformer generate`: what generating means for each model family, through `pipeline(...)`.

GPT                  text-generation        continues --prompt
MaskedLM             fill-mask              fills each [MASK] in --prompt: the --top-k fillers
Seq2SeqTransformer   text2text-generation   turns --prompt into its output ("March 5, 2021" -> "2021-03-05")
"""

from __future__ import annotations

import torch

from .. import matvec
from ..errors import ConfigError, UnknownTokenError
from ..models import GPT, MaskedLM, Seq2SeqTransformer
from .cli_options import DEFAULT_PROMPTS, about
from .pipelines import pipeline
from .pretrained import load_model

TASKS = {GPT: "text-generation", MaskedLM: "fill-mask", Seq2SeqTransformer: "text2text-generation"}
DECODING = ("max_new_tokens", "do_sample", "temperature", "top_p", "num_beams", "seed")  # not for fill-mask


def generate(args, argv=None) -> int:
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    with about("--model"):
        model, tokenizer = load_model(args.model)
    task = next(task for family, task in TASKS.items() if isinstance(model, family))
    prompt = DEFAULT_PROMPTS[task] if args.prompt is None else args.prompt
    _check_prompt(prompt, tokenizer, model, task, args.model)
    assisted = args.dtype == "bfloat16-assisted"  # a bfloat16 copy drafts, the float32 model checks
    dtype = "auto" if assisted else (args.dtype or "auto").removesuffix("-compiled")
    assistant = "bfloat16" if assisted else None
    pipe = pipeline(task, model=(model, tokenizer), dtype=dtype, assistant_dtype=assistant)
    if task == "fill-mask":
        for name in DECODING:
            if getattr(args, name) is not None:
                raise ConfigError(
                    f"argument --{name.replace('_', '-')}: {args.model!r} is a masked LM, which "
                    "fills each [MASK] in --prompt at once; it takes only --prompt and --top-k"
                )
        _print_fills(pipe(prompt, top_k=5 if args.top_k is None else args.top_k))
        return 0
    with matvec.compiled(args.dtype == "bfloat16-compiled"):
        print(pipe(prompt, **_decoding(args, task))[0]["generated_text"])
    return 0


def _decoding(args, task) -> dict:
    """generate()'s keywords from the flags, with the defaults the help text names."""
    settings = dict(
        do_sample=bool(args.do_sample),
        temperature=1.0 if args.temperature is None else args.temperature,
        top_k=50 if args.top_k is None else args.top_k,
        top_p=1.0 if args.top_p is None else args.top_p,
        num_beams=args.num_beams or 1,
        generator=torch.Generator().manual_seed(args.seed or 0),
    )
    if args.max_new_tokens is not None or task == "text-generation":  # an encoder-decoder stops at its eos
        settings["max_new_tokens"] = args.max_new_tokens or 200
    return settings


def _check_prompt(prompt: str, tokenizer, model, task: str, name) -> None:
    """The prompt this model can read: not empty, only known symbols, [MASK] for a masked LM, and (except
    for a GPT, which slides over a long prompt) no longer than the model's context."""
    if not prompt:
        raise ConfigError(
            f"argument --prompt: is empty; give at least one character (e.g. "
            f"--prompt {DEFAULT_PROMPTS[task]!r})"
        )
    try:
        ids = tokenizer.encode(prompt)
    except UnknownTokenError as e:
        reason = str(e).split(";")[0]  # (the rest advises how to build a tokenizer, not a user's fix)
        raise ConfigError(
            f"argument --prompt: {reason}; {name!r} knows only the symbols it was trained on"
        ) from e
    if task == "fill-mask" and tokenizer.mask_token_id not in ids:
        raise ConfigError(
            f"argument --prompt: must contain [MASK], the symbol to fill in, e.g. "
            f"--prompt {DEFAULT_PROMPTS[task]!r}; got {prompt!r}"
        )
    if task != "text-generation" and len(ids) > model.config.max_len:
        raise ConfigError(
            f"argument --prompt: has {len(ids)} tokens, more than {name!r} reads at once "
            f"(max_len={model.config.max_len}); shorten it"
        )


def _print_fills(results) -> None:
    """A line per filler: probability, token, the text with it; a header per [MASK] if there are several."""
    groups = results if results and isinstance(results[0], list) else [results]
    for i, fills in enumerate(groups):
        if len(groups) > 1:
            print(f"[MASK] {i + 1} of {len(groups)}:")
        for fill in fills:
            print(f"{fill['score']:.3f}  {fill['token_str']!r}  {fill['sequence']}")
