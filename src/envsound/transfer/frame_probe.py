"""``transfer.mode=probe`` for a model with a frame head (``model.options.frame_head``, ``--preset sed``): the
source's trunk frozen, only the frame head trained, on when each sound is (strong labels) or, without them, on what
each clip holds (weak labels); then, on strong labels with ``events.finetune_epochs`` > 0, trunk and head trained
together (:mod:`envsound.transfer.frame_finetune`).

The trunk's frame steps (:meth:`~envsound.models.efficientat.EfficientAT.frame_steps`) of every evaluation window of
the training clips are computed once. With strong labels (``strong_labels.csv``) a step's target is 1 for each class
with an event over the step's centre, and the loss is the binary cross-entropy of every step; without them the
frames' linear-softmax pooling is trained towards the clip's labels (what SED systems learn from weak labels). The
head trains in a small Lightning loop (``train.max_epochs``, ``train.lr``, ``train.weight_decay``,
``train.batch_size`` windows a batch); a minute or two on a CPU for a few hundred clips, an hour for 1,200
mixtures. Given the run folder, each stage keeps its state at every epoch's end (``frame_head/last.ckpt``,
``frame_finetune/last.ckpt``: :mod:`envsound.transfer.stages`), and ``resume`` continues it from there; a resumed
run whose fine-tuning has begun does not train the head again (the fine-tuning's state holds the whole network).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

import lightning as L
import numpy as np
import torch
from torch import nn

from envsound.config import Config
from envsound.data.strong_labels import frame_targets
from envsound.features.windows import eval_windows, start_seconds
from envsound.models.clip import ClipModel, build_network, inference_runtime
from envsound.models.frames import FrameHead, check_frame_task, linear_softmax_logit
from envsound.task import Task
from envsound.transfer.progress import CountLines
from envsound.transfer.source import InitPlan, apply_init
from envsound.transfer.stages import FRAME_FINETUNE, FRAME_HEAD, fit_stage, stage_state

log = logging.getLogger(__name__)


def fit_frame_head(plan: InitPlan | None, config: Config, features: Sequence[np.ndarray], targets: np.ndarray, *,
                   labels: Sequence[str], task: Task, strong: Sequence[Sequence] | None = None,
                   out_dir: str | Path | None = None, resume: bool = False) -> dict[str, torch.Tensor]:
    """The state dict of a network whose trunk is ``plan``'s and whose frame head is trained on the frozen trunk's
    steps of ``features``: on ``strong[i]`` (clip ``i``'s events) when given, else on ``targets`` (clip labels).
    ``out_dir``: the run folder, where each stage keeps its state at every epoch's end; ``resume`` continues the
    stages from those states.

    Raises:
        ConfigError: a single-label task (events are found per class, as a multi-label set labels them).
        KeyboardInterrupt: Ctrl-C or SIGTERM stopped a stage (its state in ``out_dir`` holds its finished epochs).
    """
    check_frame_task(task.multi_label)
    start_time = time.perf_counter()
    n_classes = len(labels)
    network = build_network(config, n_classes)
    apply_init(network, plan)
    model = ClipModel(config=config, labels=list(labels), task=task, network=network,
                      runtime=inference_runtime(config, lambda: build_network(config, n_classes),
                                                device=config.runtime.accelerator, network=network,
                                                setting="runtime.accelerator"))
    finetune = strong is not None and config.events.finetune_epochs > 0
    finetune_state = stage_state(out_dir, FRAME_FINETUNE)
    if resume and finetune and finetune_state is not None and finetune_state.exists():
        log.info("frame head: trained before; the fine-tuning goes on from %s (it holds the whole network)",
                 finetune_state)
    else:
        _fit_head(model, config, features, targets, labels=labels, strong=strong,
                  state=stage_state(out_dir, FRAME_HEAD), resume=resume)
        log.info("frame head: %d clips on %s labels, %d epochs, %.1f s", len(features),
                 "strong" if strong is not None else "clip", config.train.max_epochs, time.perf_counter() - start_time)
    network = model.network
    if finetune:
        from envsound.transfer.frame_finetune import finetune_frames

        precision = config.runtime.precision if config.runtime.precision != "auto" else model.runtime.precision
        network = finetune_frames(network, config, features, strong, labels=labels,
                                  accelerator=model.runtime.accelerator, precision=precision,
                                  state=finetune_state, resume=resume)
    return {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}


def _fit_head(model: ClipModel, config: Config, features: Sequence[np.ndarray], targets: np.ndarray, *,
              labels: Sequence[str], strong: Sequence[Sequence] | None, state: Path | None, resume: bool) -> None:
    """Train ``model.network``'s frame head in place on the frozen trunk's steps of every evaluation window."""
    network = model.network
    step = model.frame_seconds
    inputs, outputs = [], []
    lines = CountLines("frame head: the trunk's steps", len(features), unit="clips")
    for i, clip in enumerate(features):
        windows, starts = eval_windows(clip, config.features)
        steps = model.run_network(windows, lambda batch: network.frame_steps(batch).float())  # bf16 autocast
        inputs.append(steps)
        for begin in start_seconds(starts, config.features):
            outputs.append(frame_targets(strong[i], labels, begin=begin, steps=steps.shape[1], step=step)
                           if strong is not None else targets[i])
        lines.step()
    x, y = torch.from_numpy(np.concatenate(inputs)), torch.from_numpy(np.stack(outputs).astype(np.float32))
    log.info("frame head: %d windows (%d steps of %.2f s)", len(x), x.shape[1], step)
    head = network.frame_head.cpu().train()  # Lightning keeps a module's mode (cuDNN's GRU backward needs train)
    L.seed_everything(config.train.seed, workers=True, verbose=False)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=config.train.batch_size,
                                         shuffle=True, generator=torch.Generator().manual_seed(config.train.seed))
    fit_stage(FrameHeadFit(head, strong=strong is not None, lr=config.train.lr, weight_decay=config.train.weight_decay),
              loader, what="frame head", state=state, resume=resume, max_epochs=config.train.max_epochs,
              accelerator=model.runtime.accelerator)
    network.frame_head = head.cpu().eval()


class FrameHeadFit(L.LightningModule):
    """A :class:`~envsound.models.frames.FrameHead` trained on precomputed trunk steps ``(batch, steps, D)``:
    against frame targets ``(batch, steps, K)`` (``strong``) or clip targets ``(batch, K)`` through linear-softmax
    pooling."""

    def __init__(self, head: FrameHead, *, strong: bool, lr: float, weight_decay: float) -> None:
        super().__init__()
        self.head, self.strong, self.lr, self.weight_decay = head, strong, lr, weight_decay

    def training_step(self, batch, batch_index: int) -> torch.Tensor:
        steps, target = batch
        logits = self.head(steps)
        if not self.strong:
            logits = linear_softmax_logit(logits)
        loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), target)
        self.log("train_loss", loss, on_epoch=True, on_step=False, prog_bar=False)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.head.parameters(), lr=self.lr, weight_decay=self.weight_decay)
