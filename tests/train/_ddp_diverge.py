"""Run by tests/train/test_distributed.py under torchrun: only rank 1's slice has a non-finite loss;
every rank must raise DivergedError at the same step (one raising alone would leave the other waiting
in the gradient all-reduce), then both meet at the next collective, as `clarec tune` does."""

import math

import torch

from clarec.train import distributed
from clarec.train.loop import DivergedError, Trainer

distributed.init_from_env()
rank = distributed.rank()
torch.manual_seed(0)
module = torch.nn.Linear(4, 1)
x = torch.randn(8, 4)


def batches(epoch):
    yield torch.arange(8)


def loss_fn(rows):
    loss = module(x[rows]).pow(2).mean()
    return loss * (math.inf if rank == 1 else 1.0)


try:
    Trainer(epochs=2, patience=None, progress=False, num_threads=1).fit(
        module, batches, loss_fn, torch.optim.SGD(module.parameters(), lr=0.1)
    )
    print(f"rank {rank}: finished", flush=True)
except DivergedError:
    print(f"rank {rank}: diverged", flush=True)
print(f"rank {rank}: then {distributed.broadcast_object('decided' if rank == 0 else None)}", flush=True)
