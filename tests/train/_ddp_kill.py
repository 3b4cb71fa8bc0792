"""Run by tests/train/test_distributed.py under torchrun: a tiny model trains in DDP and rank 1 dies
(SIGKILL) after its third step; the run must end with an error, not hang."""

import os
import signal

import torch

from clarec.train import distributed
from clarec.train.loop import Trainer

distributed.init_from_env()
torch.manual_seed(0)
module = torch.nn.Linear(4, 1)
x, y = torch.randn(64, 4), torch.randn(64, 1)
steps = [0]


def die_on_rank_one() -> None:
    steps[0] += 1
    if distributed.rank() == 1 and steps[0] == 3:
        os.kill(os.getpid(), signal.SIGKILL)


def batches(epoch):
    for s in range(0, 64, 8):
        yield x[s : s + 8], y[s : s + 8]


Trainer(epochs=1000, patience=None, num_threads=1, progress=False).fit(
    module,
    batches,
    lambda b: torch.nn.functional.mse_loss(module(b[0]), b[1]),
    torch.optim.SGD(module.parameters(), lr=0.01),
    after_step=[die_on_rank_one],
)
