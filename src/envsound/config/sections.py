"""The sections of a run's config, one dataclass each: its fields (with the comment that documents each, read by
``docs/config.md``), defaults and range checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml

from envsound.config.frontends import FRONTENDS, frontend_spec
from envsound.config.values import check_value
from envsound.errors import ConfigError

ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps")
PRECISIONS = ("auto", "32", "bf16-mixed", "16-mixed")
SWITCHES = ("auto", "true", "false")


@dataclass
class FeatureConfig:
    """How a waveform becomes model input.

    ``kind`` is ``"logmel"`` (input ``(batch, 1 or 2, n_mels, frames)``) or ``"waveform"`` (``(batch, samples)``).
    Windows of ``window_seconds`` are what a model sees; at evaluation and prediction a clip is cut into windows
    every ``eval_hop_seconds`` (short clips padded) and the window probabilities are averaged.
    """

    kind: str = "logmel"
    sample_rate: int = 22050  # Hz, 4000..192000
    n_fft: int = 1024  # samples, >= 16
    hop_length: int = 512  # samples, 1..n_fft
    n_mels: int = 128  # 1..n_fft//2+1
    f_min: float = 0.0  # Hz
    f_max: float | None = None  # Hz, None = sample_rate / 2
    deltas: bool = False  # add a delta channel (Piczak 2015)
    n_mfcc: int = 20  # MFCCs for the classical baselines
    window_seconds: float = 5.0  # > 0
    eval_hop_seconds: float = 1.0  # > 0
    # N > 0: N windows evenly spaced over the clip instead of one every eval_hop_seconds (EnvNet-v2's 10-crop
    # testing); predict spreads up to N over each 60-s block of a longer file.
    eval_crops: int = 0
    min_seconds: float = 0.1  # shorter clips are an AudioLoadError
    # EnvNet-v2's input (features/edges.py): cut a clip's leading and trailing exact zeros, and pad edge_pad windows
    # of zeros on each side of it, before its features, in training, evaluation and prediction alike
    trim_zeros: bool = False
    edge_pad: float = 0.0
    # how a log-mel is computed: envsound (Slaney mel, dB; librosa's maths) | efficientat (EfficientAT's AudioSet
    # frontend: pre-emphasis, Kaldi mel, natural log, fixed normalisation; what its pre-trained networks expect)
    frontend: str = "envsound"
    win_length: int | None = None  # efficientat: STFT window in samples, 1..n_fft (None = n_fft)

    def validate(self) -> None:
        check_value(self.kind in ("logmel", "waveform"), "features.kind", self.kind, "'logmel' or 'waveform'")
        check_value(self.frontend in FRONTENDS, "features.frontend", self.frontend, " or ".join(map(repr, FRONTENDS)))
        spec = frontend_spec(self.frontend)
        if not spec.deltas:
            check_value(self.kind == "logmel" and not self.deltas, "features.frontend", self.frontend,
                        f"{self.frontend} with features.kind=logmel and deltas false")
        windowed = [name for name, other in FRONTENDS.items() if other.win_length]
        check_value(self.win_length is None or (spec.win_length and 1 <= self.win_length <= self.n_fft),
                    "features.win_length", self.win_length,
                    f"1..n_fft with features.frontend={' or '.join(windowed)}, else unset")
        check_value(4000 <= self.sample_rate <= 192000, "features.sample_rate", self.sample_rate, "4000..192000 Hz")
        check_value(self.n_fft >= 16, "features.n_fft", self.n_fft, ">= 16")
        check_value(1 <= self.hop_length <= self.n_fft, "features.hop_length", self.hop_length, "1..n_fft")
        check_value(1 <= self.n_mels <= self.n_fft // 2 + 1, "features.n_mels", self.n_mels, "1..n_fft//2+1")
        f_max = self.sample_rate / 2 if self.f_max is None else self.f_max
        check_value(0 <= self.f_min < f_max <= self.sample_rate / 2, "features.f_min/f_max", (self.f_min, self.f_max),
                    "0 <= f_min < f_max <= sample_rate/2")
        check_value(1 <= self.n_mfcc <= self.n_mels, "features.n_mfcc", self.n_mfcc, "1..n_mels")
        check_value(self.window_seconds > 0, "features.window_seconds", self.window_seconds, "> 0")
        check_value(self.eval_hop_seconds > 0, "features.eval_hop_seconds", self.eval_hop_seconds, "> 0")
        check_value(self.eval_crops >= 0, "features.eval_crops", self.eval_crops, ">= 0 (0: every eval_hop_seconds)")
        check_value(self.min_seconds >= 0, "features.min_seconds", self.min_seconds, ">= 0")
        # below one window, every window holds some of the clip, and a timeline stays within the file
        check_value(0 <= self.edge_pad < 1, "features.edge_pad", self.edge_pad,
                    "0 <= edge_pad < 1 window of silence on each side of a clip (EnvNet-v2: 0.5)")

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * self.sample_rate))

    @property
    def window_frames(self) -> int:
        """Frames of a centred STFT over one window: ``1 + window_samples // hop_length`` (``efficientat``: the
        pre-emphasised window is one sample shorter; see :meth:`~envsound.config.frontends.Frontend.frames`)."""
        return self.frames(self.window_samples)

    def frames(self, samples: int) -> int:
        """Log-mel frames of a waveform of ``samples`` samples (``samples >= 1``)."""
        return frontend_spec(self.frontend).frames(samples, hop_length=self.hop_length)

    @property
    def eval_hop_frames(self) -> int:
        return max(1, int(round(self.eval_hop_seconds * self.sample_rate / self.hop_length)))


@dataclass
class ModelConfig:
    """Which registered model, its width, and the options only that model has. ``None`` means the model's default.

    ``options`` maps option names to numbers, strings or bools, e.g. YAML ``model: {name: crnn, options: {rnn: lstm,
    hidden: 32}}`` or ``--set 'model.options={rnn: lstm, hidden: 32}'`` (the whole mapping). Each model declares the
    options it takes (``envsound.models.registry.model_options``); building the model checks them, and an option the
    model does not have, or a bad value, is a :class:`ConfigError` listing the valid ones. An option set to ``None``
    means the model's default and is dropped by :meth:`validate`.
    """

    name: str = "cnn"
    filters: int | None = None  # base number of convolution filters, >= 1
    dropout: float | None = None  # 0..1
    # option name -> scalar. A bare ``dict`` on purpose: Config.set passes a mapping through as it is, where the
    # ``dict[str, Any]`` hint would be coerced to its first argument's type (str).
    options: dict = field(default_factory=dict)

    def validate(self) -> None:
        check_value(self.filters is None or self.filters >= 1, "model.filters", self.filters, ">= 1")
        check_value(self.dropout is None or 0 <= self.dropout < 1, "model.dropout", self.dropout, "0 <= dropout < 1")
        check_value(isinstance(self.options, Mapping), "model.options", self.options,
                    "a mapping of option: value, e.g. {hidden: 32}")
        for key, value in self.options.items():
            check_value(isinstance(key, str) and key != "", "model.options", key, "option names are non-empty strings")
            check_value(value is None or isinstance(value, (bool, int, float, str)), f"model.options.{key}", value,
                   "a number, a string or a bool")
        self.options = {key: value for key, value in self.options.items() if value is not None}

    def set_option(self, key: str, value: Any, *, source: str = "--set") -> None:
        """Set ``model.options.<key>`` to ``value`` (``--set model.options.hidden=32``); a string is parsed as YAML
        (``32`` -> 32, ``lstm`` -> 'lstm', ``none`` -> the model's default). Whether the model has that option, and
        the value's range, are checked when the model is built.

        Raises:
            ConfigError: an empty key, or a value that is not a number, string or bool.
        """
        if not isinstance(key, str) or not key or "." in key:
            raise ConfigError(f"{source}: model.options.{key} is not an option name; write model.options.NAME=VALUE")
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value) if value.strip() else value
            except yaml.YAMLError:
                pass
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            self.options = {k: v for k, v in self.options.items() if k != key}
            return
        check_value(isinstance(value, (bool, int, float, str)), f"model.options.{key}", value,
                    "a number, a string or a bool")
        self.options = {**self.options, key: value}


@dataclass
class TrainConfig:
    """The training loop (Lightning). A validation split for early stopping, when asked for (``val_fraction`` > 0),
    comes from the training folds."""

    max_epochs: int = 200
    # The run makes at least this many optimizer steps: max_epochs is raised when its epochs give fewer (a few
    # labelled clips make one-step epochs). Unset: 1,500 with label_fraction < 1, semi or not (the budget
    # where FixMatch's mask rate levels off on ESC-10; training/loop/fit.py SMALL_LABEL_MIN_STEPS), else 0
    # (max_epochs as given).
    min_steps: int | None = None
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"  # adamw | adam | sgd
    # onecycle (warm-up, then cosine decay to ~0) | cosine (cosine decay from lr to 0, no warm-up) | step (x lr_gamma
    # after each of lr_milestones) | none
    scheduler: str = "onecycle"
    warmup_fraction: float = 0.05  # of all steps, for onecycle
    lr_milestones: list[int] = field(default_factory=list)  # step: epochs after which lr is multiplied by lr_gamma
    lr_gamma: float = 0.1  # step: the factor at each milestone, 0 < gamma <= 1
    # What an epoch visits: random = one random window per clip (a crop); all = every window of every clip, cut every
    # features.eval_hop_seconds as evaluation cuts them, shuffled, each from the clip or a random offline copy;
    # all_copies = every window of every clip and of every copy (copies count as clips: Piczak 2015's epoch).
    windows: str = "random"
    patience: int = 30  # epochs without improvement of the monitored metric before stopping; 0 = never stop early
    monitor: str = "accuracy"  # what selects the best epoch: accuracy (clip accuracy, ties -> lower loss) | loss
    # Validation split of the training clips (grouped by source recording) for early stopping and best-epoch choice.
    # Default 0: train on every clip for the whole schedule and keep the last epoch. On ESC-10 (240 training clips)
    # a 10 % split is too small to choose epochs, and stopping early under a one-cycle schedule keeps a model from
    # its high-learning-rate phase (docs/results.md, "Toward 92 %").
    val_fraction: float = 0.0
    pretrain_val_fraction: float = 0.1  # autoencoder pre-training: held-out clips for early stopping on reconstruction
    seed: int = 0
    # networks trained from seeds seed, seed + 1, ...; their logits averaged (N x training time); a frame head's
    # (--preset sed): N probes, each fine-tuned, their frame logits averaged, the decoding tuned on the shared split
    ensemble: int = 1
    label_smoothing: float = 0.0
    label_fraction: float = 1.0  # keep this stratified share of the training clips labelled (0 < p <= 1), by source
    shots: int = 0  # keep K labelled clips per class (stratified, by source; 0 = all); excludes label_fraction < 1
    class_balance: str = "auto"  # auto | sampler | loss | off (auto: loss weights when max/min class count > 1.5)

    def validate(self) -> None:
        check_value(self.max_epochs >= 1, "train.max_epochs", self.max_epochs, ">= 1")
        check_value(self.min_steps is None or self.min_steps >= 0, "train.min_steps", self.min_steps,
                    ">= 0 (0 = max_epochs as given; unset = auto)")
        check_value(self.batch_size >= 1, "train.batch_size", self.batch_size, ">= 1")
        check_value(self.lr > 0, "train.lr", self.lr, "> 0")
        check_value(self.weight_decay >= 0, "train.weight_decay", self.weight_decay, ">= 0")
        check_value(self.optimizer in ("adamw", "adam", "sgd"), "train.optimizer", self.optimizer, "adamw, adam or sgd")
        check_value(self.scheduler in ("onecycle", "cosine", "step", "none"), "train.scheduler", self.scheduler,
                    "onecycle, cosine, step or none")
        check_value(all(m >= 1 for m in self.lr_milestones) and self.lr_milestones == sorted(set(self.lr_milestones)),
                    "train.lr_milestones", self.lr_milestones, "increasing epochs >= 1, e.g. [300, 600, 900]")
        check_value(0 < self.lr_gamma <= 1, "train.lr_gamma", self.lr_gamma, "0 < gamma <= 1")
        check_value(self.windows in ("random", "all", "all_copies"), "train.windows", self.windows,
                    "random, all or all_copies")
        check_value(0 < self.warmup_fraction < 1, "train.warmup_fraction", self.warmup_fraction, "0 < fraction < 1")
        check_value(self.monitor in ("accuracy", "loss"), "train.monitor", self.monitor, "accuracy or loss")
        check_value(self.patience >= 0, "train.patience", self.patience, ">= 0")
        check_value(0 <= self.val_fraction < 1, "train.val_fraction", self.val_fraction, "0 <= val_fraction < 1")
        check_value(0 <= self.pretrain_val_fraction < 1, "train.pretrain_val_fraction", self.pretrain_val_fraction,
                    "0 <= fraction < 1")
        check_value(1 <= self.ensemble <= 20, "train.ensemble", self.ensemble, "1..20")
        check_value(0 <= self.label_smoothing < 1, "train.label_smoothing", self.label_smoothing, "0..1")
        check_value(0 < self.label_fraction <= 1, "train.label_fraction", self.label_fraction, "0 < fraction <= 1")
        check_value(self.shots >= 0, "train.shots", self.shots, ">= 0 (0 = every labelled clip)")
        if self.shots and self.label_fraction < 1:
            raise ConfigError(f"train.shots={self.shots} (--shots) and train.label_fraction={self.label_fraction} "
                              "(--label-fraction) both choose the labelled clips; give one of them")
        if self.class_balance == "False":  # a YAML file's bare `off` reads as false
            self.class_balance = "off"
        check_value(self.class_balance in ("auto", "sampler", "loss", "off"), "train.class_balance",
                    self.class_balance, "auto, sampler, loss or off")


@dataclass
class RuntimeConfig:
    """Where and how the network runs (:mod:`envsound.hardware`): "auto" picks from the machine found, and the choice
    is logged, written as a comment into the run's config.yaml and saved in the checkpoint's meta["runtime"]. None of
    it changes what a run learns, only how fast (DDP aside: its global batch is ``train.batch_size``)."""

    accelerator: str = "auto"  # auto (CUDA, then MPS, else CPU) | cpu | cuda | gpu | mps
    devices: int = 1  # processes (CPU) or GPUs; > 1 trains data-parallel through Lightning (runtime.strategy)
    num_nodes: int = 1  # machines of a multi-node run (launched by torchrun or SLURM; README)
    strategy: str = "auto"  # auto (ddp when devices > 1; gloo on CPU) | ddp | ddp_spawn
    precision: str = "auto"  # auto | 32 | bf16-mixed | 16-mixed (GPU); auto: bf16 on a CPU only where it is faster
    channels_last: str = "auto"  # auto | true | false: channels-last memory format (log-mel models, and waveform
    # models with 2-D layers: envnet2, aclnet)
    num_workers: int = 0  # DataLoader worker processes

    def validate(self) -> None:
        check_value(self.accelerator in ACCELERATORS, "runtime.accelerator", self.accelerator, ", ".join(ACCELERATORS))
        check_value(self.devices >= 1, "runtime.devices", self.devices, ">= 1")
        check_value(self.num_nodes >= 1, "runtime.num_nodes", self.num_nodes, ">= 1")
        check_value(self.strategy in ("auto", "ddp", "ddp_spawn"), "runtime.strategy", self.strategy,
                    "auto, ddp or ddp_spawn")
        check_value(self.precision in PRECISIONS, "runtime.precision", self.precision, ", ".join(PRECISIONS))
        # older configs and checkpoints hold a YAML bool here (true/false before 'auto' existed)
        self.channels_last = str(self.channels_last).lower()
        check_value(self.channels_last in SWITCHES, "runtime.channels_last", self.channels_last, "auto, true or false")
        check_value(self.num_workers >= 0, "runtime.num_workers", self.num_workers, ">= 0")

    @property
    def processes(self) -> int:
        """Training processes in all: devices per node x nodes."""
        return self.devices * self.num_nodes


SEMI_METHODS = ("none", "fixmatch", "mixmatch", "remixmatch", "mean_teacher", "self_training")


@dataclass
class FixMatchConfig:
    """``semi.method=fixmatch``: whose guess is the pseudo-label, and how confident it must be."""

    threshold: float = 0.95  # threshold_mode fixed: confidence a pseudo-label needs, 0 < t <= 1
    # fixed = threshold; adaptive = FreeMatch's self-adaptive threshold (single-label; threshold unused)
    threshold_mode: str = "fixed"
    # whose weak-view prediction is the pseudo-label: student (FixMatch's paper) | ema (an exponential moving average
    # of the student, semi.ema_decay, in eval mode: a teacher that changes slower than the student it labels for)
    guesser: str = "student"

    def validate(self) -> None:
        check_value(0 < self.threshold <= 1, "semi.fixmatch.threshold", self.threshold, "0 < threshold <= 1")
        check_value(self.threshold_mode in ("fixed", "adaptive"), "semi.fixmatch.threshold_mode",
                    self.threshold_mode, "fixed or adaptive")
        check_value(self.guesser in ("student", "ema"), "semi.fixmatch.guesser", self.guesser, "student or ema")


@dataclass
class MixMatchConfig:
    """``semi.method=mixmatch`` and ``remixmatch``: views, sharpening and their mixup."""

    views: int = 2  # mixmatch: weak views averaged into each guess (K); remixmatch: strong views per window; >= 1
    temperature: float = 0.5  # sharpening temperature, 0 < T <= 1
    mix_alpha: float = 0.75  # Beta(alpha, alpha) of their mixup, > 0

    def validate(self) -> None:
        check_value(self.views >= 1, "semi.mixmatch.views", self.views, ">= 1")
        check_value(0 < self.temperature <= 1, "semi.mixmatch.temperature", self.temperature, "0 < T <= 1")
        check_value(self.mix_alpha > 0, "semi.mixmatch.mix_alpha", self.mix_alpha, "> 0")


@dataclass
class SelfTrainingConfig:
    """``semi.method=self_training``: the rounds, their step budget and where each starts."""

    # the pool share pseudo-labelled in each round after the first (labelled clips only), 0 < s <= 1
    rounds: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75, 1.0])
    # full = every round round 0's steps (the supervised run's: len(rounds) + 1 times them in all);
    # split = the run's step budget (train.min_steps) split evenly over its rounds, a supervised run's steps in all
    round_budget: str = "full"
    # what a round after the first starts from: scratch = a fresh network (the paper's, so a round does not inherit
    # its teacher's mistakes) | previous = the previous round's weights, trained on further
    round_init: str = "scratch"

    def validate(self) -> None:
        check_value(bool(self.rounds) and all(0 < s <= 1 for s in self.rounds), "semi.self_training.rounds",
                    self.rounds, "one or more pool shares 0 < s <= 1, e.g. [0.25, 0.5, 0.75, 1.0]")
        check_value(self.round_budget in ("full", "split"), "semi.self_training.round_budget", self.round_budget,
                    "full or split")
        check_value(self.round_init in ("scratch", "previous"), "semi.self_training.round_init", self.round_init,
                    "scratch or previous")


@dataclass
class SemiConfig:
    """Semi-supervised training on labelled and unlabelled batches together (``training/semi/``).

    The settings every method shares are here; each method's own are its sub-section (``semi.fixmatch.*``,
    ``semi.mixmatch.*`` for MixMatch and ReMixMatch, ``semi.self_training.*``). Keys written before the
    sub-sections (``semi.threshold``, ``semi.views``, ``semi.rounds``, ...) still load, into their sub-section.
    ``fixmatch``: pseudo-label = argmax of the weak view (random crop + time roll), aligned to the labelled class
    distribution (``distribution_alignment``), where its top probability is at least ``fixmatch.threshold`` (or,
    with ``fixmatch.threshold_mode=adaptive``, FreeMatch's self-adaptive threshold); with ``fixmatch.guesser=ema``
    an exponential moving average of the student (``ema_decay``) makes the weak-view guess; the strong view (speed /
    pitch change, SpecAugment, gain, noise) is trained towards it. ``mixmatch`` (single-label): sharpened mean guess
    over ``mixmatch.views`` weak views (``mixmatch.temperature``), everything mixed with mixup
    (``mixmatch.mix_alpha``), squared error on the unlabelled rows. ``remixmatch`` (single-label): the weak view's
    aligned, sharpened guess is the target of ``mixmatch.views`` strong views, mixed with the labelled windows;
    cross-entropy throughout. ``mean_teacher``: an exponential moving average (``ema_decay``) of the student is the
    teacher; the student's probabilities on a strong view are pulled towards the teacher's on a weak view (mean
    squared error). ``self_training``: supervised rounds, each on the labelled clips plus the share
    ``self_training.rounds[r - 1]`` of the unlabelled pool the previous round's model is surest of, class-balanced,
    with its guesses as labels; every round a fresh network (or the previous round's, ``self_training.round_init``)
    for the run's step budget or its share of it (``self_training.round_budget``; ``recipes/self_training.py``);
    its pseudo-labelled clips are of origin ``noisy`` (the ``noisy`` section).
    The unlabelled term weighs ``lambda_u`` (unset: the method's own, see :attr:`unlabelled_weight`), ramped up over
    the first ``rampup`` share of the run's optimizer steps for every method but FixMatch. Each step draws
    ``mu x train.batch_size`` unlabelled windows. ``epoch``: ``labelled`` = an epoch is one pass over the labelled
    clips (the unlabelled pool is sampled for as many steps), so ``train.max_epochs`` gives exactly a supervised run's
    optimizer steps whatever the pool's size; ``pool`` = one pass over the larger of the two (the labelled batches
    cycle), as before this key existed.
    """

    method: str = "none"  # none | fixmatch | mixmatch | remixmatch | mean_teacher | self_training
    lambda_u: float | None = None  # unlabelled loss weight, >= 0; unset: the method's (see unlabelled_weight)
    mu: int = 2  # unlabelled : labelled batch size (FixMatch's paper 7, Cances et al. 1; 2 measured on ESC-10), >= 1
    # mean_teacher, and fixmatch's guesser ema: teacher = decay x teacher + (1 - decay) x student, 0 < d < 1
    ema_decay: float = 0.999
    rampup: float = 0.4  # all but fixmatch: sigmoid ramp-up of lambda_u over this share of the steps, 0-1
    strong_gain_db: float = 6.0  # strong view: random gain in +-dB per example, >= 0
    strong_snr_db: float = 20.0  # strong view: noise added this many dB below the window's peak (random up to 2x)
    strong_speed: float = 1.0  # strong view: speed changed by a factor in [1/s, s], >= 1 (1: no change)
    strong_shift_bins: float = 0.0  # strong view: mel axis shifted up to this many bands either way, >= 0
    epoch: str = "labelled"  # labelled | pool: what one epoch passes over (see above)
    # Mixup on the labelled batch of fixmatch / mean_teacher (its soft targets hold the confidence down)
    labelled_mixup: bool = False
    distribution_alignment: bool = True  # single-label, all but mean_teacher: align guesses to the labelled classes
    fixmatch: FixMatchConfig = field(default_factory=FixMatchConfig)  # semi.fixmatch.*
    mixmatch: MixMatchConfig = field(default_factory=MixMatchConfig)  # semi.mixmatch.* (mixmatch and remixmatch)
    self_training: SelfTrainingConfig = field(default_factory=SelfTrainingConfig)  # semi.self_training.*

    DEFAULT_LAMBDA_U = {"fixmatch": 1.0, "mean_teacher": 1.0, "mixmatch": 75.0, "remixmatch": 1.5}

    @property
    def unlabelled_weight(self) -> float:
        """``lambda_u``, or the method's default, its paper's: MixMatch's squared error is averaged over classes, hence
        75 (for 10 classes); ReMixMatch 1.5 (its unmixed strong-view term gets a third of that)."""
        return self.lambda_u if self.lambda_u is not None else self.DEFAULT_LAMBDA_U.get(self.method, 1.0)

    def validate(self) -> None:
        check_value(self.method in SEMI_METHODS, "semi.method", self.method, ", ".join(SEMI_METHODS))
        check_value(self.lambda_u is None or self.lambda_u >= 0, "semi.lambda_u", self.lambda_u, ">= 0 (or unset)")
        check_value(self.mu >= 1, "semi.mu", self.mu, ">= 1")
        check_value(0 < self.ema_decay < 1, "semi.ema_decay", self.ema_decay, "0 < decay < 1")
        check_value(0 <= self.rampup <= 1, "semi.rampup", self.rampup, "0 <= rampup <= 1 (a share of the run's steps)")
        check_value(self.strong_gain_db >= 0, "semi.strong_gain_db", self.strong_gain_db, ">= 0")
        check_value(self.strong_snr_db > 0, "semi.strong_snr_db", self.strong_snr_db, "> 0")
        check_value(self.strong_speed >= 1, "semi.strong_speed", self.strong_speed, ">= 1 (factors in [1/s, s])")
        check_value(self.strong_shift_bins >= 0, "semi.strong_shift_bins", self.strong_shift_bins, ">= 0")
        check_value(self.epoch in ("labelled", "pool"), "semi.epoch", self.epoch, "labelled or pool")
        for method in (self.fixmatch, self.mixmatch, self.self_training):
            method.validate()


# The per-copy probability keys of AugmentConfig, one per offline transform: what "every transform off" means.
OFFLINE_TRANSFORMS = ("pitch_shift", "time_stretch", "gain", "noise", "background", "shift")


@dataclass
class AugmentConfig:
    """Augmentation of the training clips, in two parts.

    Offline (audiomentations): ``copies`` augmented copies of every *training* clip, made once and cached as
    features; each epoch a clip is drawn as its original or one of its copies. Each transform has a probability per
    copy (0 = off) and a range.

    On the fly, on each training batch (``augment/batch.py``): time roll, mel band edge jitter, SpecAugment masks,
    then mixup or, for waveform models, between-class mixing.
    """

    time_roll: bool = True  # rotate each training window by a random number of frames (samples)
    spec_augment: bool = True  # time and frequency masks (log-mel models)
    # the mel bank's edges jittered per training window (log-mel models; EfficientAT's fmin/fmax augmentation, made
    # on the cached bands: augment/band_shift.py):
    fmin_shift_hz: float = 0.0  # f_min drawn from f_min + [0, this) Hz (efficientat: 10; 0 = off)
    fmax_shift_hz: float = 0.0  # f_max drawn from f_max ± this / 2 Hz (efficientat: 2000; 0 = off)
    mixup_alpha: float = 0.2  # 0 = off
    between_class: bool = False  # waveform models: gain-aware between-class mixing (EnvNet-v2) instead of mixup
    bc_gain: str = "a_weighting"  # a_weighting (the BC paper's) | rms: how between-class mixing measures loudness
    copies: int = 8  # augmented copies per training clip, 0..100; 0 = offline augmentation off
    workers: int = 0  # processes making copies; 0 = one per CPU core
    pitch_shift: float = 0.5  # probability, 0..1
    pitch_semitones_min: float = -2.0  # -12..12
    pitch_semitones_max: float = 2.0  # -12..12, >= min
    time_stretch: float = 0.5  # probability, 0..1
    stretch_rate_min: float = 0.8  # 0.1..10 (< 1 slower, > 1 faster)
    stretch_rate_max: float = 1.25  # 0.1..10, >= min
    gain: float = 0.5  # probability, 0..1
    gain_db_min: float = -6.0  # -40..40 dB
    gain_db_max: float = 6.0  # -40..40 dB, >= min
    noise: float = 0.5  # probability of additive Gaussian noise, 0..1
    noise_snr_db_min: float = 10.0  # -20..80 dB
    noise_snr_db_max: float = 40.0  # -20..80 dB, >= min
    background: float = 0.0  # probability of a mixed-in background sound, 0..1
    background_snr_db_min: float = 3.0  # -20..80 dB
    background_snr_db_max: float = 30.0  # -20..80 dB, >= min
    background_folder: str | None = None  # audio to mix in; None = the split's own training clips
    shift: float = 0.0  # probability of a circular time shift, 0..1
    shift_max_fraction: float = 0.5  # largest shift as a fraction of the clip, 0..1

    def validate(self) -> None:
        check_value(self.mixup_alpha >= 0, "augment.mixup_alpha", self.mixup_alpha, ">= 0")
        for name in ("fmin_shift_hz", "fmax_shift_hz"):
            check_value(0 <= getattr(self, name) <= 8000, f"augment.{name}", getattr(self, name), "0..8000 Hz")
        check_value(self.bc_gain in ("a_weighting", "rms"), "augment.bc_gain", self.bc_gain, "a_weighting or rms")
        check_value(0 <= self.copies <= 100, "augment.copies", self.copies, "0..100")
        check_value(self.workers >= 0, "augment.workers", self.workers, ">= 0 (0 = one per core)")
        for name in OFFLINE_TRANSFORMS:
            check_value(0 <= getattr(self, name) <= 1, f"augment.{name}", getattr(self, name), "a probability 0..1")
        for name, (least, most) in (("pitch_semitones", (-12, 12)), ("stretch_rate", (0.1, 10)),
                                    ("gain_db", (-40, 40)), ("noise_snr_db", (-20, 80)),
                                    ("background_snr_db", (-20, 80))):
            low, high = getattr(self, f"{name}_min"), getattr(self, f"{name}_max")
            for end, value in (("min", low), ("max", high)):
                check_value(least <= value <= most, f"augment.{name}_{end}", value, f"{least}..{most}")
            check_value(low <= high, f"augment.{name}_min/max", (low, high), f"min <= max, within {least}..{most}")
        check_value(0 < self.shift_max_fraction <= 1, "augment.shift_max_fraction", self.shift_max_fraction,
                    "0 < f <= 1")
        any_on = any(getattr(self, name) for name in OFFLINE_TRANSFORMS)
        check_value(self.copies == 0 or any_on, "augment.copies", self.copies,
                    "0 while every transform's probability is 0 (copies would equal their originals)")


TRANSFER_MODES = ("auto", "full", "gradual", "probe", "probe_full")


@dataclass
class TransferConfig:
    """How a model started from another one (``--init``) is trained (``envsound.transfer``).

    The *trunk* is what was transferred: every layer but the head of a classifier checkpoint, the encoder of an
    autoencoder checkpoint. ``full``: everything trains, the trunk at ``lr x trunk_lr_scale``. ``gradual``: the trunk
    is frozen (weights, batch-norm statistics and dropout: eval mode) for ``freeze_epochs`` epochs, then trains as in
    ``full``. ``probe``: the trunk stays fixed; a logistic regression (``probe_c``) is fitted on its embeddings and
    becomes the head. ``probe_full``: the probe's head first, then everything trains as in ``full`` (LP-FT, Kumar et
    al. 2022: a fitted head keeps the first steps from distorting the trunk's features). ``auto``: the mode that won
    the few-shot experiment (docs/results.md): ``probe`` for a classifier checkpoint (``full`` with a
    semi-supervised method or an ensemble, but an ensemble of frame heads: N probes), ``full`` for an autoencoder's.
    """

    mode: str = "auto"  # auto | full | gradual | probe | probe_full
    freeze_epochs: int = 20  # gradual: epochs with the trunk frozen, >= 1
    trunk_lr_scale: float = 1.0  # full and gradual: trunk learning rate = train.lr x this, 0 < scale <= 1
    probe_c: float = 1.0  # probe: inverse L2 strength of the logistic regression, > 0
    label_map: str | None = None  # CSV "source,target" class names whose head rows are copied (default: same names)

    def validate(self) -> None:
        check_value(self.mode in TRANSFER_MODES, "transfer.mode", self.mode, ", ".join(TRANSFER_MODES))
        check_value(self.freeze_epochs >= 1, "transfer.freeze_epochs", self.freeze_epochs, ">= 1")
        check_value(0 < self.trunk_lr_scale <= 1, "transfer.trunk_lr_scale", self.trunk_lr_scale, "0 < scale <= 1")
        check_value(self.probe_c > 0, "transfer.probe_c", self.probe_c, "> 0")


NOISY_LOSSES = ("default", "lsoft", "lq")


@dataclass
class NoisyConfig:
    """Training on clips whose labels may be wrong (``origin`` ``noisy``: FSDKaggle2019's noisy set, the noisy part of
    ``envsound mix``, self-training's pseudo-labelled clips) next to clips with trusted labels (``curated``, and every
    clip of a set without origins).

    Losses (``training/loop/losses.py``), one per origin: ``default`` is the task's own (BCE for multi-label,
    cross-entropy for single-label); ``lsoft`` is soft bootstrapping (Reed et al. 2015; Fonseca et al. 2019 used it on
    FSDKaggle's noisy clips): the target becomes ``beta * label + (1 - beta) * prediction``, so a confident prediction
    can outvote a wrong label; ``lq`` is the generalised cross-entropy of Zhang & Sabuncu 2018, ``(1 - p^q) / q`` on the
    labelled outcome, between cross-entropy (q -> 0) and the noise-tolerant mean absolute error (q = 1).
    ``noisy_share`` p > 0: each training window is drawn from a noisy clip with probability p (with replacement),
    ``epoch_clips`` windows per epoch (0: the number of training clips), so the two sets mix at a set rate whatever
    their sizes.
    """

    curated_loss: str = "default"  # default | lsoft | lq
    noisy_loss: str = "default"  # default | lsoft | lq
    beta: float = 0.7  # lsoft: weight of the given label against the prediction, 0 < beta <= 1
    q: float = 0.7  # lq: 0 < q <= 1
    noisy_share: float = 0.0  # 0: clips drawn uniformly (shuffled); 0 < p < 1: share of windows from noisy clips
    epoch_clips: int = 0  # windows per epoch when noisy_share > 0 (0: the number of training clips)

    def validate(self) -> None:
        for key in ("curated_loss", "noisy_loss"):
            check_value(getattr(self, key) in NOISY_LOSSES, f"noisy.{key}", getattr(self, key), ", ".join(NOISY_LOSSES))
        check_value(0 < self.beta <= 1, "noisy.beta", self.beta, "0 < beta <= 1")
        check_value(0 < self.q <= 1, "noisy.q", self.q, "0 < q <= 1")
        check_value(0 <= self.noisy_share < 1, "noisy.noisy_share", self.noisy_share, "0 <= share < 1")
        check_value(self.epoch_clips >= 0, "noisy.epoch_clips", self.epoch_clips, ">= 0")


STAGE_SEMI = ("none", "fixmatch", "mean_teacher")
WARMUP_SETS = ("noisy", "all")


@dataclass
class StagesConfig:
    """The multi-stage schedule of ``envsound stages`` for curated + noisy sets (``recipes/stages.py``).

    Stage 0 warms up on the noisy clips (``warmup_on`` ``noisy``: the DCASE 2019 task 2 baseline) or on curated and
    noisy clips together, each with its origin's loss (``all``: the competition's winners, L_soft on the noisy ones
    via ``noisy.noisy_loss``); stage 1 fine-tunes on the curated clips from stage 0's
    weights; the filter keeps each noisy clip whose every label stage 1 gives at least ``keep_threshold``; stage 2
    trains on the curated plus kept noisy clips from stage 1's weights, with the noisy clips not kept as an unlabelled
    pool for ``pseudo_label`` (a semi-supervised method) when set. The baseline trains on the curated clips alone for
    as many epochs as the stages together.
    """

    warmup_epochs: int = 30  # stage 0, >= 1
    warmup_on: str = "noisy"  # noisy | all: stage 0's clips
    finetune_epochs: int = 30  # stage 1, >= 1
    final_epochs: int = 30  # stage 2, >= 0 (0: no stage 2)
    tune_lr_scale: float = 1.0  # stages 1 and 2 train at train.lr x this (they start from a trained model), 0 < s <= 1
    keep_threshold: float = 0.5  # filter: a kept noisy clip's labels all reach this probability, 0 < t < 1
    pseudo_label: str = "none"  # none | fixmatch | mean_teacher: stage 2's use of the noisy clips not kept

    def validate(self) -> None:
        check_value(self.warmup_epochs >= 1, "stages.warmup_epochs", self.warmup_epochs, ">= 1")
        check_value(self.warmup_on in WARMUP_SETS, "stages.warmup_on", self.warmup_on, ", ".join(WARMUP_SETS))
        check_value(self.finetune_epochs >= 1, "stages.finetune_epochs", self.finetune_epochs, ">= 1")
        check_value(self.final_epochs >= 0, "stages.final_epochs", self.final_epochs, ">= 0")
        check_value(0 < self.tune_lr_scale <= 1, "stages.tune_lr_scale", self.tune_lr_scale, "0 < scale <= 1")
        check_value(0 < self.keep_threshold < 1, "stages.keep_threshold", self.keep_threshold, "0 < threshold < 1")
        check_value(self.pseudo_label in STAGE_SEMI, "stages.pseudo_label", self.pseudo_label, ", ".join(STAGE_SEMI))



@dataclass
class LeakageConfig:
    """The content guard (``features/fingerprint.py``): audio entering a run from outside its split (a background
    folder, an unlabelled pool) that sounds like a validation or test clip is refused, unless ``allow_overlap``."""

    allow_overlap: bool = False  # True: report such clips in a warning and go on (--allow-overlap)
    match_ber: float = 0.30  # robust-fingerprint bit error rate below which two clips are the same sound, 0..0.5

    def validate(self) -> None:
        check_value(0 < self.match_ber <= 0.5, "leakage.match_ber", self.match_ber, "0 < ber <= 0.5")


@dataclass
class EventsConfig:
    """Sound events from the window timeline (``predict --events``, :mod:`envsound.events`): each class's
    window probabilities (a frame model's: frame probabilities), median-filtered, above a threshold, make its events
    (onset, offset, score); events close together joined, short ones dropped."""

    threshold: float | None = None  # a class is active at or above it, 0 < t <= 1; unset: the task's (0.5, or fitted)
    median_seconds: float = 3.0  # median filter over the windows' probabilities, in seconds (0: none), >= 0
    min_seconds: float = 0.0  # shorter events are dropped (after joining), >= 0
    gap_seconds: float = 0.0  # two events of one class at most this far apart become one (0: none), >= 0
    # double thresholding: an event is a run at or above threshold x this that reaches the threshold somewhere
    # (from where it rises above the lower one to where it falls below it), 0 < h <= 1 (1: one threshold)
    hysteresis: float = 1.0
    # "none of these" (a single-label network): the share of its own classes' windows the open-set gate may reject,
    # calibrated on the training clips (envsound.models.open_set); a window below every class's gate gets no label
    # and makes no event. 0 <= share < 0.5 (0: off, every window is one of the classes)
    open_set: float = 0.05
    # what a frame head (model.options.frame_head) trains on: auto (the set's strong labels where it has a
    # strong_labels.csv and the head trains on a frozen trunk, transfer.mode probe; an efficientat head without --init
    # on such a set is refused; else its clip labels) | strong | clip (clip labels through linear-softmax pooling)
    train_on: str = "auto"
    # a frame head trained on strong labels (transfer.mode probe): then trunk and head trained together for this many
    # epochs at train.lr x transfer.trunk_lr_scale, with time shifts, mixing and masks (transfer/frame_finetune.py);
    # 0: the head alone
    finetune_epochs: int = 0
    # threshold, median_seconds, min_seconds, gap_seconds and hysteresis chosen for the best event F1 on the
    # validation clips (train.val_fraction > 0, a set with strong labels), never on a test fold, saved in the checkpoint
    tune: bool = False

    def validate(self) -> None:
        check_value(self.train_on in ("auto", "strong", "clip"), "events.train_on", self.train_on,
                    "one of auto, strong, clip")
        check_value(self.finetune_epochs >= 0, "events.finetune_epochs", self.finetune_epochs, ">= 0")
        check_value(self.threshold is None or 0 < self.threshold <= 1, "events.threshold", self.threshold,
                    "0 < threshold <= 1 (or unset)")
        check_value(self.median_seconds >= 0, "events.median_seconds", self.median_seconds, ">= 0")
        check_value(self.min_seconds >= 0, "events.min_seconds", self.min_seconds, ">= 0")
        check_value(self.gap_seconds >= 0, "events.gap_seconds", self.gap_seconds, ">= 0")
        check_value(0 < self.hysteresis <= 1, "events.hysteresis", self.hysteresis, "0 < hysteresis <= 1")
        check_value(0 <= self.open_set < 0.5, "events.open_set", self.open_set, "0 <= open_set < 0.5 (0: off)")

