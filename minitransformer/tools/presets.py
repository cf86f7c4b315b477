"""Named training recipes: the exact settings that produced each bundled pretrained model.

`python -m minitransformer train --preset shakespeare-char` runs one of these; options given
on the command line (steps, sizes, precision...) override the preset's values. Each preset
builds its tokenizer, model, training task and TrainConfig, and says how the result is scored.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from dataclasses import dataclass, field
from importlib import resources

import torch

from ..checks import is_int
from ..config import TransformerConfig
from ..data import CORPORA, ascii_tokenizer, date_splits, load_text, seq2seq_tokenizer, train_val_split
from ..errors import ConfigError
from ..models import GPT, MaskedLM, Seq2SeqTransformer
from ..poems import poem_splits, poem_tokenizer, poems_text
from ..training import TrainConfig, pick_device
from .pretrained import load_model
from .training_tasks import CausalLMTask, MaskedLMTask, Seq2SeqTask


@dataclass
class Stage:
    """A later stage of a preset trained in stages: it fine-tunes the previous stage's checkpoint."""

    start_from: str  # "best" or "last": which checkpoint of the previous stage it starts from
    model: dict  # changes to the preset's model settings (dropout only: the weights carry over)
    train: dict  # changes to the preset's TrainConfig fields


@dataclass
class Preset:
    name: str
    model_class: type
    model: dict  # TransformerConfig fields (vocab_size comes from the tokenizer)
    train: dict  # TrainConfig fields
    batch_size: int
    corpus: str = "shakespeare"
    extra: dict = field(default_factory=dict)
    stages: tuple[Stage, ...] = ()  # stages 2, 3, ...: one command runs them all, in turn


PRESETS = {
    p.name: p
    for p in [
        Preset(
            "shakespeare-char",
            GPT,
            # no dropout: on a CPU, drawing dropout masks costs more time than the matmuls it regularises
            model=dict(d_model=256, n_heads=4, n_layers=6, max_len=256, dropout=0.0),
            # without dropout the model overfits after ~2,500 steps: stop when 2 evaluations bring no new best
            train=dict(
                steps=4000, lr=1.5e-3, warmup_steps=200, eval_interval=250, precision="bfloat16", patience=2
            ),
            batch_size=16,
            # then a short, gentle fine-tune of the best checkpoint, with dropout: 1.510 -> 1.463
            stages=(
                Stage(
                    "best", dict(dropout=0.1), dict(steps=750, lr=3e-4, warmup_steps=50, eval_interval=125)
                ),
            ),
        ),
        Preset(  # the best model 5 minutes of 2 CPU cores can train, set-up and final save included
            "shakespeare-char-speedrun",
            GPT,
            # each choice is measured against its alternative in benchmarks/speedrun.py
            # context 64 beat 128 by 0.034 nats at the same tokens per step (900 steps against 852)
            model=dict(d_model=192, n_heads=4, n_layers=4, max_len=64, dropout=0.0, tie_weights=True),
            train=dict(
                steps=1_000_000,  # a ceiling: the time budget ends the run
                time_budget=300.0,
                lr=2e-3,
                min_lr=0.0,
                lr_schedule="linear",  # decay to zero, over the time budget
                warmup_steps=100,
                optimizer="muon",
                precision="auto",  # bfloat16 autocast where this machine's matmuls are faster in it
                eval_interval=500,
                eval_batches=20,
            ),
            batch_size=64,
        ),
        Preset(  # "now try it bigger": nanoGPT's Shakespeare GPU size, ~10.8M parameters; see docs/multi_node.md
            "shakespeare-char-large",
            GPT,
            model=dict(d_model=384, n_heads=6, n_layers=6, max_len=256, dropout=0.2),
            train=dict(
                steps=5000, lr=1e-3, min_lr=1e-4, warmup_steps=100, eval_interval=250, precision="bfloat16"
            ),
            batch_size=64,
        ),
        Preset(
            "shakespeare-mlm",
            MaskedLM,
            model=dict(d_model=192, n_heads=3, n_layers=4, max_len=128, dropout=0.1),
            train=dict(steps=3000, lr=1.5e-3, warmup_steps=200, eval_interval=500, precision="bfloat16"),
            batch_size=32,
            # with dropout the accuracy was still rising at step 3,000 (0.540); without it, 2,000 more: 0.64
            stages=(
                Stage(
                    "last", dict(dropout=0.0), dict(steps=2000, lr=1e-3, warmup_steps=100, eval_interval=250)
                ),
            ),
        ),
        Preset(  # Chinese characters: 5,461 tokens, poems of at most 65 characters with their newline
            "tang-poetry-char",
            GPT,
            model=dict(d_model=256, n_heads=4, n_layers=4, max_len=96, dropout=0.0),
            train=dict(steps=1200, lr=2e-3, warmup_steps=100, eval_interval=200, precision="bfloat16"),
            batch_size=32,
            corpus="tang",
        ),
        Preset(
            "dates-seq2seq",
            Seq2SeqTransformer,
            model=dict(d_model=128, n_heads=4, n_layers=2, max_len=48, dropout=0.0),
            train=dict(steps=2500, lr=2e-3, warmup_steps=100, eval_interval=500, precision="float32"),
            batch_size=64,
            corpus="dates",
            extra=dict(n_train=50_000, n_test=1000),
        ),
    ]
}


def build(name: str, model_overrides=None, train_overrides=None, batch_size=None, corpus=None, stage=1):
    """-> (model, tokenizer, task, TrainConfig) for preset `name`, with overrides applied.

    corpus: train on another bundled corpus ("python" for the fine-tuning lesson).
    stage: of a preset trained in stages, the settings of this stage (its weights come from the one before).
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets are {sorted(PRESETS)}")
    p = at_stage(PRESETS[name], stage)
    if corpus is not None and p.corpus not in CORPORA:  # pairs of dates or poems: no English text replaces them
        texts = [n for n, q in PRESETS.items() if q.corpus in CORPORA]
        raise ConfigError(
            f"corpus={corpus!r}, but preset {name!r} learns from {p.corpus}, with its own tokenizer; "
            f"a corpus applies to {', '.join(texts)}"
        )
    if corpus is not None:
        p = dataclasses.replace(p, corpus=corpus)
    batch_size = batch_size or p.batch_size
    if p.corpus == "dates":
        tokenizer = seq2seq_tokenizer()
        train_pairs, test_pairs = date_splits(p.extra["n_train"], p.extra["n_test"], seed=0)
        task = Seq2SeqTask(train_pairs, test_pairs, tokenizer, batch_size)
    elif p.corpus == "tang":
        task, tokenizer = _tang_task(model_overrides, p, batch_size)
    else:
        specials = ("[PAD]", "[MASK]") if p.model_class is MaskedLM else ()
        tokenizer = ascii_tokenizer(special_tokens=specials)
        train_text, val_text = train_val_split(load_text(p.corpus))
        train_ids = torch.tensor(tokenizer.encode(train_text))
        val_ids = torch.tensor(tokenizer.encode(val_text))
        context = (model_overrides or {}).get("max_len", p.model["max_len"])
        if p.model_class is MaskedLM:
            task = MaskedLMTask(train_ids, val_ids, context, batch_size, tokenizer)
        else:
            task = CausalLMTask(train_ids, val_ids, context, batch_size)
    cfg = TransformerConfig(
        vocab_size=tokenizer.vocab_size, **(p.model | (model_overrides or {})), extra={"preset": name}
    )
    train = p.train | (train_overrides or {})
    if train.get("precision") == "auto":
        train["precision"] = "bfloat16" if bfloat16_is_faster(train.get("device", "auto")) else "float32"
    if train.get("optimizer") == "muon" and not hasattr(torch.optim, "Muon"):  # torch < 2.9
        warnings.warn(f"this torch ({torch.__version__}) has no torch.optim.Muon: preset {name!r} trains with "
                      "AdamW instead (its loss at the end is a little higher)", stacklevel=2)
        train["optimizer"] = "adamw"
    train_cfg = TrainConfig(**train)
    return p.model_class(cfg), tokenizer, task, train_cfg


def at_stage(p: Preset, stage: int) -> Preset:
    """The preset's settings in stage `stage` (1 = the preset's own; stage k adds stages[k - 2]'s changes)."""
    if not (is_int(stage) and 1 <= stage <= len(p.stages) + 1):
        n = len(p.stages) + 1
        raise ConfigError(f"stage must be in [1, {n}] (preset {p.name!r} trains in {n}), got {stage!r}")
    if stage == 1:
        return p
    later = p.stages[stage - 2]  # (a stage sets its own early stopping, or none)
    train = p.train | {"patience": None} | later.train
    return dataclasses.replace(p, model=p.model | later.model, train=train)


def speedrun_measurements() -> dict:
    """The five-minute recipe's measured ablations, shipped with the package for notebook 07 (the runs are
    benchmarks/speedrun.py's; benchmarks/results/speedrun/ keeps their full records)."""
    text = resources.files("minitransformer").joinpath("assets/speedrun_ablations.json").read_text("utf-8")
    return json.loads(text)


def bfloat16_is_faster(device="auto") -> bool:
    """Whether this machine multiplies matrices faster in bfloat16 than in float32: CPUs with bfloat16
    units (AVX512-BF16, AMX) do, by 2-6x; without them bfloat16 is emulated, and slower. Timed, best of
    5 products of 512 x 512 matrices each (a few milliseconds); on CUDA, asked of torch."""
    device = pick_device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    seconds = {}
    for dtype in (torch.float32, torch.bfloat16, torch.float32, torch.bfloat16):  # interleaved, warm
        a = torch.randn(512, 512).to(dtype)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            a @ a
            times.append(time.perf_counter() - start)
        seconds[dtype] = min(times)
    return seconds[torch.bfloat16] < 0.8 * seconds[torch.float32]


def _tang_task(model_overrides, p: Preset, batch_size: int):
    """Next-character prediction on the training poems, validated on the held-out last 5%."""
    train_poems, val_poems = poem_splits()
    tokenizer = poem_tokenizer(train_poems)
    train_ids = torch.tensor(tokenizer.encode(poems_text(train_poems)))
    val_ids = torch.tensor(tokenizer.encode(poems_text(val_poems)))
    context = (model_overrides or {}).get("max_len", p.model["max_len"])
    return CausalLMTask(train_ids, val_ids, context, batch_size), tokenizer


def describe(name: str) -> str:
    """The preset's own settings (before any command-line override)."""
    p = PRESETS[name]
    return f"{name}: {p.model_class.__name__} {p.model}, batch {p.batch_size}, {p.train}"


def replace_train(cfg: TrainConfig, **changes) -> TrainConfig:
    return dataclasses.replace(cfg, **{k: v for k, v in changes.items() if v is not None})


def init_from(source, model, tokenizer, freeze_layers: int = 0):
    """Fine-tuning: copy the weights of `source` (bundled name or checkpoint) into `model`.

    `model` must have the same architecture (its dropout may differ); with freeze_layers > 0 the
    embeddings and the first `freeze_layers` blocks stay fixed. Returns `model`, in training mode.
    """
    pretrained, pre_tokenizer = load_model(source)
    _require_same_model(source, pretrained, pre_tokenizer, model, tokenizer, freeze_layers)
    model.load_state_dict(pretrained.state_dict())
    if freeze_layers:
        model.embed.requires_grad_(False)
        for block in model.blocks[:freeze_layers]:
            block.requires_grad_(False)
    return model.train()


def require_same_recipe(option: str, source, found, found_tokenizer, model, tokenizer) -> None:
    """--resume / init_from: the checkpoint's model class, preset and tokenizer must be this run's.

    `found` and `found_tokenizer` come from the checkpoint `source`; `model` and `tokenizer` from the
    preset. The preset's name is in config.extra["preset"] (build() puts it there; checkpoints keep it).
    """
    where, preset = f"{option}={str(source)!r}", model.config.extra.get("preset")
    found_preset = found.config.extra.get("preset")
    if type(found) is not type(model) or found_preset not in (None, preset):
        trained = f" trained with preset {found_preset!r}" if found_preset else ""
        known = isinstance(found_preset, str) and found_preset in PRESETS
        fix = f"; use --preset {found_preset}" if known else ""
        raise ConfigError(
            f"{where} holds a {type(found).__name__}{trained}, but preset {preset!r} trains a "
            f"{type(model).__name__}{fix}"
        )
    theirs = found_tokenizer.to_dict() if found_tokenizer is not None else None
    if theirs not in (None, tokenizer.to_dict()) or found.config.vocab_size != tokenizer.vocab_size:
        raise ConfigError(
            f"{where} uses another tokenizer (vocab_size={found.config.vocab_size}) than preset "
            f"{preset!r} (vocab_size={tokenizer.vocab_size}); continue on the same vocabulary"
        )


def _require_same_model(source, pretrained, pre_tokenizer, model, tokenizer, freeze_layers):
    """init_from's checks: the same model class, preset, tokenizer and sizes, and blocks enough to freeze."""
    require_same_recipe("init_from", source, pretrained, pre_tokenizer, model, tokenizer)
    ours, theirs = model.config.to_dict(), pretrained.config.to_dict()
    differ = sorted(k for k in ours if k not in ("dropout", "extra") and ours[k] != theirs[k])
    if differ:
        raise ConfigError(
            f"init_from={source!r} has another architecture: {', '.join(f'{k}={theirs[k]}' for k in differ)} "
            f"(this model has {', '.join(f'{k}={ours[k]}' for k in differ)}); pass the same sizes"
        )
    blocks = getattr(model, "blocks", None)
    if freeze_layers < 0 or (blocks is not None and freeze_layers > len(blocks)):
        raise ConfigError(f"freeze_layers must be in [0, {len(blocks or [])}], got {freeze_layers}")
