"""The Lightning module: a registered model, its loss, optimiser and clip-level validation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import lightning as L
import torch

from envsound.augment.batch import batch_augment
from envsound.config import AugmentConfig, Config, FeatureConfig, NoisyConfig, SemiConfig, TrainConfig, TransferConfig
from envsound.hardware import keep_freed_memory
from envsound.models.clip import build_network
from envsound.task import Task
from envsound.training.loop.clip_metric import ClipMeans
from envsound.training.loop.losses import origin_loss
from envsound.training.loop.optim import configure_optimization
from envsound.transfer.modes import optimizer_groups


@dataclass(frozen=True)
class LoopSettings:
    """What the training module reads of a run's config: the optimiser, schedule and label smoothing
    (``train``), the on-the-fly augmentation (``augment``) of the inputs ``features`` describes, the per-origin losses
    (``noisy``), the trunk's learning-rate scale of an ``--init`` run (``transfer``), and a semi-supervised module's
    method (``semi``)."""

    train: TrainConfig
    augment: AugmentConfig
    noisy: NoisyConfig
    transfer: TransferConfig
    semi: SemiConfig
    features: FeatureConfig

    @classmethod
    def of(cls, config: Config) -> "LoopSettings":
        return cls(train=config.train, augment=config.augment, noisy=config.noisy, transfer=config.transfer,
                   semi=config.semi, features=config.features)


class ClassifierModule(L.LightningModule):
    """Trains ``network`` on windows; validates on whole clips (window probabilities averaged).

    Logged per epoch: ``train_loss``, ``val_loss`` (cross-entropy / BCE of the clip-averaged probabilities),
    ``val_acc`` (clip accuracy) or ``val_lwlrap`` (multi-label), and ``val_score`` (that score with ties broken by
    lower loss: with mixup or label smoothing the loss is a poor judge of which epoch classifies best, and a small
    validation set makes the score coarse). ``task`` (:class:`~envsound.task.Task`) gives the loss and activation;
    ``n_classes`` is the width of ``network``'s logits. :meth:`from_config` builds the network a config names.
    """

    def __init__(self, network: torch.nn.Module, settings: LoopSettings, *, n_classes: int, task: Task | None = None,
                 class_weights: torch.Tensor | None = None, channels_last: bool = False) -> None:
        super().__init__()
        self.task = task or Task()
        self.save_hyperparameters({"settings": asdict(settings), "n_classes": n_classes, "task": self.task.to_dict()})
        self.settings = settings
        self.channels_last = channels_last  # the runtime's choice (envsound.hardware), not the setting ("auto")
        self.model = network
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # training-loss weights per class (train.class_balance=loss); not saved: they follow from the training set
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.trunk: list[torch.nn.Module] | None = None  # the transferred layers of an --init run (their own lr)
        self.val_clips: ClipMeans | None = None  # made for each validation epoch: its size is the number of clips

    @classmethod
    def from_config(cls, config: Config, n_classes: int, **kwargs):
        """The module training the network ``config.model`` names (sized for ``config.features``), with
        ``config``'s loop settings; ``kwargs`` as the constructor's."""
        return cls(build_network(config, n_classes), LoopSettings.of(config), n_classes=n_classes, **kwargs)

    def setup(self, stage: str) -> None:
        keep_freed_memory()  # in every process, also those runtime.strategy=ddp_spawn starts afresh

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # channels_last only for 4-D log-mel batches; waveform models (batch, 1, samples) that reshape into an image
        # follow the memory format of their own 2-D weights (converted in __init__)
        return self.model(self.to_memory_format(x))

    def to_memory_format(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, noisiness: torch.Tensor | None = None
             ) -> torch.Tensor:
        """The task's loss; with per-origin losses (``noisy`` section) or clips of origin ``noisy``
        (``noisiness`` per clip, 1 = noisy), :func:`~envsound.training.loop.losses.origin_loss`."""
        noisy = self.settings.noisy
        # one loss for both origins, the task's: the origin does not matter (self-training marks its pseudo-labels)
        if noisy.curated_loss == "default" and (noisiness is None or noisy.noisy_loss == "default"):
            return self.task.loss(logits, targets, weight=self.class_weights,
                                  label_smoothing=self.settings.train.label_smoothing)
        if noisiness is None:
            noisiness = torch.zeros(len(logits), device=logits.device)
        return origin_loss(logits, targets, noisiness, task=self.task, config=noisy, weight=self.class_weights)

    def augmented(self, batch, *, mix: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """A training batch ``(x, y)`` or ``(x, y, noisiness)`` after :func:`batch_augment`; a clip's noisiness
        rides along as one more target column, so mixup blends it like the labels. ``mix=False`` leaves out mixup
        and between-class mixing (the rest of ``augment``'s on-the-fly augmentation stays)."""
        x, y, *rest = batch
        aug = self.settings.augment if mix else replace(self.settings.augment, mixup_alpha=0.0, between_class=False)
        features = self.settings.features
        if not rest:
            return (*batch_augment(x, y, aug, features=features), None)
        x, mixed = batch_augment(x, torch.cat([y, rest[0].to(y.dtype)[:, None]], dim=1), aug, features=features)
        return x, mixed[:, :-1], mixed[:, -1]

    def training_step(self, batch, batch_idx):
        x, y, noisiness = self.augmented(batch)
        loss = self.loss(self(x), y, noisiness)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(x))
        return loss

    def on_validation_epoch_start(self) -> None:
        n_clips = self.trainer.val_dataloaders.dataset.n_clips
        self.val_clips = ClipMeans(n_clips, self.hparams["n_classes"]).to(self.device)

    def validation_step(self, batch, batch_idx):
        x, y, clip = batch
        self.val_clips.update(self.task.activation(self(x).float()), y, clip)

    def on_validation_epoch_end(self) -> None:
        probs, targets = (t.cpu() for t in self.val_clips.compute())  # each process's windows added up (DDP)
        self.val_clips = None
        loss = self.task.clip_loss(probs, targets)
        score = self.task.clip_score(probs.numpy(), targets.numpy())
        self.log("val_acc" if self.task.score_name == "accuracy" else f"val_{self.task.score_name}", score,
                 prog_bar=True)
        self.log("val_score", score - 1e-4 * float(loss.clamp(max=10.0)))
        self.log("val_loss", loss, prog_bar=True)

    def configure_optimizers(self):
        train = self.settings.train
        # the trunk of an --init model trains at lr x transfer.trunk_lr_scale
        groups = optimizer_groups(self.model, lr=train.lr, trunk_scale=self.settings.transfer.trunk_lr_scale,
                                  trunk=self.trunk)
        return configure_optimization(groups, train, total_steps=int(self.trainer.estimated_stepping_batches))
