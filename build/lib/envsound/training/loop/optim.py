"""Optimiser and learning-rate schedule from ``TrainConfig``, shared by classifier training and pre-training."""

from __future__ import annotations

from typing import Any, Iterable

import torch

from envsound.config import TrainConfig


def configure_optimization(params: Iterable, train: TrainConfig, *, total_steps: int) -> Any:
    """What a LightningModule's ``configure_optimizers`` returns: the optimiser (SGD with Nesterov momentum 0.9, Adam
    or AdamW) and its schedule: per step one-cycle (warm-up for ``train.warmup_fraction`` of the steps, then cosine
    decay), per step ``cosine`` (``lr * (1 + cos(pi * step / steps)) / 2``, no warm-up: the schedule of the
    semi-supervised audio comparison of Cances et al. 2022), per epoch ``step`` (``lr`` times ``train.lr_gamma`` after
    each epoch of ``train.lr_milestones``), or none.

    ``params`` may be parameter groups with their own ``lr`` (one-cycle then peaks at each group's ``lr``). The
    optimiser runs torch's fused kernels when every parameter is on the CPU or a CUDA device (:func:`_fusable`).
    """
    params = list(params)
    fused = _fusable(params)
    if train.optimizer == "sgd":
        optimizer = torch.optim.SGD(params, lr=train.lr, momentum=0.9, nesterov=True, weight_decay=train.weight_decay,
                                    fused=fused)
    elif train.optimizer == "adam":
        optimizer = torch.optim.Adam(params, lr=train.lr, weight_decay=train.weight_decay, fused=fused)
    else:
        optimizer = torch.optim.AdamW(params, lr=train.lr, weight_decay=train.weight_decay, fused=fused)
    if fused:
        optimizer.register_load_state_dict_pre_hook(_keep_fused)
    if train.scheduler == "none":
        return optimizer
    if train.scheduler == "step":
        steps = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=train.lr_milestones, gamma=train.lr_gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": steps, "interval": "epoch"}}
    if train.scheduler == "cosine":
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": cosine, "interval": "step"}}
    warmup = train.warmup_fraction
    if abs(warmup * total_steps - 1) < 1e-9:  # a one-step warm-up phase: OneCycleLR divides by zero (e.g. 0.05 x 20)
        warmup = 1.5 / total_steps
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[group["lr"] for group in optimizer.param_groups], total_steps=total_steps,
        pct_start=warmup)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _fusable(params: list) -> bool:
    """Whether every parameter is a float tensor on the CPU or a CUDA device: the devices envsound trains on and
    tests, where torch 2.13 has fused SGD, Adam and AdamW. A fused kernel updates each tensor in one pass instead of
    four or five (``piczak``'s SGD step: benchmarks/bench_kernels.py, docs/benchmarks.md), the same update to float
    rounding. Lightning refuses gradient clipping with a fused optimiser under 16-bit mixed precision; envsound does
    not clip."""
    tensors = [p for group in params for p in (group["params"] if isinstance(group, dict) else [group])]
    return bool(tensors) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in tensors)


def _keep_fused(optimizer: torch.optim.Optimizer, state_dict: dict) -> dict:
    """Resuming a run saved with an unfused optimiser keeps this one fused: ``load_state_dict`` would otherwise take
    the saved groups' ``fused: None`` while the optimiser still tells the 16-bit grad scaler it unscales by itself
    (the unfused step then fails on the scaler's arguments)."""
    for saved, group in zip(state_dict["param_groups"], optimizer.param_groups):
        saved["fused"] = group["fused"]
    return state_dict
