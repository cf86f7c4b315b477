"""Training: one readable loop for every model and objective.

    for each step:  lr = schedule(step)                  linear warmup, then cosine decay (optim.py)
                    loss = task.loss(model, batch)       CLM, MLM or seq2seq (tools/training_tasks.py)
                    loss.backward(); clip gradients; AdamW step                      (trainer.py)

AdamW decays only the weight matrices of linear layers: biases, LayerNorm gains and
embeddings are left alone (decaying them only hurts). Every `eval_interval` steps the
validation loss is estimated on fixed batches and, if a path is set, a checkpoint is written
(atomically, see checkpoints.py) with everything needed to resume bit-for-bit on the CPU.

Notebooks read `trainer.history` (a list of dicts) to plot the loss as it falls.

The same loop scales out: under `torchrun --nproc_per_node=N` each process trains on its own
slice of every batch and DistributedDataParallel averages the gradients (distributed.py; the
helpers do nothing in a single process). Optional speed-ups: `compile=True` (torch.compile) and
mixed precision, bfloat16 anywhere it is supported or float16 on CUDA with a gradient scaler.

    config.py       TrainConfig, pick_device
    optim.py        lr_at, param_groups, adamw
    trainer.py      Trainer
    checkpoints.py  save_checkpoint, load_checkpoint, read_metadata
    distributed.py  the torchrun helpers
    tying.py        tied_weights (which parameters a model shares)
"""

from . import distributed
from .checkpoints import load_checkpoint, read_metadata, save_checkpoint
from .config import PRECISIONS, TrainConfig, pick_device
from .optim import adamw, lr_at, param_groups
from .trainer import Trainer
from .tying import tied_weights
