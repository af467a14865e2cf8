"""Clip-level validation through torchmetrics: the mean of each clip's window probabilities, added up over the
processes of a DDP run by torchmetrics' own synchronisation."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from envsound.training.loop.clip_metric import ClipMeans

PROBS = torch.tensor([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.4, 0.6], [0.6, 0.4]])
TARGETS = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
CLIPS = torch.tensor([0, 0, 1, 2, 2])  # clip 0 has two windows, clip 1 one, clip 2 two; clip 3 none
EXPECTED = torch.tensor([[0.8, 0.2], [0.2, 0.8], [0.5, 0.5], [0.0, 0.0]])


def test_each_clip_is_the_mean_of_its_windows_and_keeps_its_targets():
    metric = ClipMeans(4, 2)
    metric.update(PROBS[:3], TARGETS[:3], CLIPS[:3])  # a clip's windows may come in different batches
    metric.update(PROBS[3:], TARGETS[3:], CLIPS[3:])
    probs, targets = metric.compute()
    assert torch.allclose(probs, EXPECTED)
    assert torch.equal(targets, torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 0.0]]))


def _rank(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    metric = ClipMeans(4, 2)
    mine = slice(0, 3) if rank == 0 else slice(3, 5)  # each process scores its share of the windows
    metric.update(PROBS[mine], TARGETS[mine], CLIPS[mine])
    probs, _ = metric.compute()
    torch.save(probs, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built in")
def test_two_processes_add_up_their_windows(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(port, str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        assert torch.allclose(torch.load(tmp_path / f"rank{rank}.pt"), EXPECTED)
