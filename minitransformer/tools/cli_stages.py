"""Presets trained in stages: one `train` command runs every stage, each from the previous one's checkpoint.

    python -m minitransformer train --preset shakespeare-char --out runs/char.safetensors --best-out B
      stage 1 -> runs/char.stage1.safetensors (last) and runs/char.stage1.best.safetensors (best)
      stage 2 -> runs/char.safetensors and B, starting from stage 1's best (or last) checkpoint

`--stage N` starts at stage N (from stage N-1's files beside --out, or from --init-from / --resume), so a
run stopped in stage 2 continues there. Options given on the command line apply to every stage. With
--init-from or --resume and no --stage, the command is one run with stage 1's settings (fine-tuning).
"""

from __future__ import annotations

import copy
from pathlib import Path

from ..errors import ConfigError
from . import presets


def count(preset: str) -> int:
    """How many stages preset `preset` trains in (1 for most)."""
    return len(presets.PRESETS[preset].stages) + 1


def stage_path(out, stage: int, best: bool = False) -> str:
    """Where stage `stage` (not the last) saves beside `out`: OUT.stageK.safetensors (.best: its best)."""
    out = Path(out)
    name = f"{out.stem}.stage{stage}{'.best' if best else ''}{out.suffix or '.safetensors'}"
    return str(out.with_name(name))


def plan(args) -> range:
    """The stages this command runs: every stage for a new run, stage N and those after it for --stage N,
    and a single run (with stage 1's settings) for --init-from or --resume without --stage."""
    n = count(args.preset)
    if args.stage is not None and args.stage > n:
        raise ConfigError(
            f"argument --stage: preset {args.preset!r} trains in {n} stage{'s' * (n > 1)}, got {args.stage}"
        )
    if args.stage is None and (args.init_from or args.resume):
        return range(1, 2)
    return range(args.stage or 1, n + 1)


def stage_args(args, stage: int, stages: range):
    """The options of stage `stage` of `stages`: where it saves, what it starts from. The last stage saves
    to --out and --best-out; an earlier one beside them."""
    staged = copy.copy(args)
    staged.stage, staged.final_out = stage, args.out
    staged.stages = count(args.preset) if len(stages) > 1 or args.stage else 1  # (for the messages)
    if stage < stages[-1]:  # an intermediate result, in float32: the next stage trains on
        staged.out, staged.best_out = stage_path(args.out, stage), stage_path(args.out, stage, best=True)
        staged.half = False
    if stage > stages[0] or (stage > 1 and not (args.init_from or args.resume)):
        staged.init_from, staged.resume = _previous(args, stage, stages[0]), None
    return staged


def _previous(args, stage: int, start: int) -> str:
    """The checkpoint of stage `stage` - 1 that stage `stage` starts from (the preset says best or last)."""
    best = presets.PRESETS[args.preset].stages[stage - 2].start_from == "best"
    path = stage_path(args.out, stage - 1, best)
    if stage == start and not Path(path).is_file():  # (an earlier stage of this command writes it)
        raise ConfigError(
            f"argument --stage: stage {stage} of {args.preset!r} starts from stage {stage - 1}'s checkpoint "
            f"{path!r}, which does not exist; run stage {stage - 1} first, or give --init-from"
        )
    return path
