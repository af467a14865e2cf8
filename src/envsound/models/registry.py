"""Model name -> class. A new model is one new file plus one line in :data:`MODELS` (a pre-trained family's network
may instead be named by its family: :attr:`envsound.models.families.Family.networks`).

Torch models (``nn.Module``) take ``(batch, in_channels, n_mels, frames)`` log-mel input, or for the raw-waveform
models (``aclnet``, ``envnet2``) ``(batch, samples)`` / ``(batch, 1, samples)``, and return logits; the baselines
(:class:`~envsound.models.baselines.SklearnBaseline`) take MFCC summary statistics of log-mel windows. Each class
carries ``input_kind`` (``"logmel"``, ``"waveform"`` or ``"mfcc_stats"``) and ``preset``: config sections it prefers,
applied before the user's YAML and overrides (see :func:`envsound.recipes.config.resolve`). A model with settings of
its own (``model.options``) lists them in ``options: ClassVar[dict[str, OptionSpec]]`` and takes each as a keyword
argument; :func:`build_model` checks ``model.options`` against that list (models without one take no options).
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from envsound.config import ModelConfig
from envsound.errors import ConfigError
from envsound.models.aclnet import AclNet
from envsound.models.baselines import KNNBaseline, RandomForestBaseline, SklearnBaseline
from envsound.models.blocks import OptionSpec, describe_options, resolve_options
from envsound.models.cnn import CNN
from envsound.models.crnn import CRNN
from envsound.models.dtu import DTUClassifier
from envsound.models.efficientat import EfficientAT
from envsound.models.families import network_class, network_names
from envsound.models.envnet2 import EnvNet2
from envsound.models.piczak import Piczak
from envsound.models.resnet import ResNet
from envsound.models.wrn import WideResNet

MODELS: dict[str, type] = {
    "cnn": CNN,
    "piczak": Piczak,
    "dtu": DTUClassifier,
    "knn": KNNBaseline,
    "random_forest": RandomForestBaseline,
    "aclnet": AclNet,
    "envnet2": EnvNet2,
    "crnn": CRNN,
    "resnet": ResNet,
    "wrn28": WideResNet,
    "efficientat": EfficientAT,
}


def model_names() -> list[str]:
    """The registered model names, in registry order (``cnn`` first: the default), then the families' networks."""
    return list(MODELS) + network_names()


def get_model_class(name: str) -> type:
    """The class registered as ``name``.

    Raises:
        ConfigError: unknown name; the message lists the valid names.
    """
    found = MODELS.get(name) if isinstance(name, str) else None
    found = found or (network_class(name) if isinstance(name, str) else None)
    if found is None:
        raise ConfigError(f"model.name={name!r} is not a registered model; valid: {', '.join(model_names())}")
    return found


def model_preset(name: str) -> dict[str, Any]:
    """A deep copy of the config sections model ``name`` prefers, e.g. ``{"features": {"n_mels": 60, ...}}``.

    >>> model_preset("piczak")["features"]["n_mels"]
    60
    """
    return copy.deepcopy(get_model_class(name).preset)


def feature_kind(name: str) -> str:
    """The ``features.kind`` model ``name`` needs: ``"waveform"`` for raw-waveform models, else ``"logmel"`` (the
    baselines' MFCC statistics are computed from log-mel windows)."""
    return "waveform" if getattr(get_model_class(name), "input_kind", "logmel") == "waveform" else "logmel"


def check_feature_kind(name: str, kind: str) -> None:
    """Raise :class:`ConfigError` unless ``features.kind = kind`` is what model ``name`` takes.

    >>> check_feature_kind("aclnet", "logmel")   # ConfigError: model 'aclnet' takes features.kind=waveform ...
    """
    needed = feature_kind(name)
    if kind != needed:
        raise ConfigError(f"model {name!r} takes features.kind={needed}, but the config has features.kind={kind}; "
                          f"set features.kind={needed} (the preset of '--model {name}' does) or choose a {kind} "
                          f"model ({', '.join(n for n in MODELS if feature_kind(n) == kind)})")


def model_options(name: str) -> dict[str, OptionSpec]:
    """The options model ``name`` takes in ``model.options`` (empty for most models), e.g.
    ``model_options("crnn")["hidden"].default == 64``."""
    return dict(getattr(get_model_class(name), "options", {}))


def check_model_options(name: str, options: Any) -> dict[str, Any]:
    """``options`` (``model.options``) checked against model ``name``'s, typed, with the defaults filled in.

    Raises:
        ConfigError: an unknown model, an option the model does not have, or a bad value; the message names the
            model and the key or value and lists the model's options with their ranges and defaults.

    >>> check_model_options("crnn", {"hiden": 32})   # ConfigError: model 'crnn' has no option 'hiden' ...
    """
    return resolve_options(name, model_options(name), options)


def describe_model_options(name: str) -> str:
    """``rnn (gru|lstm, default gru), hidden (int 8..1024, default 64), ...``; ``none`` for a model without options."""
    return describe_options(model_options(name))


def is_torch_model(name: str) -> bool:
    """True for ``nn.Module`` models (trained by the Lightning loop), False for the scikit-learn baselines."""
    return issubclass(get_model_class(name), nn.Module)


def is_network(name: str) -> bool:
    """True for a network, whose training takes a validation split and offline copies: a torch model, or a frozen
    network (``birdnet-v2.4``, ``yamnet``: a probe reads its embeddings); False for the scikit-learn baselines."""
    from envsound.models.frozen import FROZEN

    return name in FROZEN or is_torch_model(name)


def build_model(model_cfg: ModelConfig, *, n_classes: int, in_channels: int, n_mels: int,
                n_frames: int) -> nn.Module | SklearnBaseline:
    """Instantiate ``model_cfg.name`` with its ``filters`` / ``dropout`` (None = the model's default) and its
    ``options`` (checked by :func:`check_model_options`; each becomes a keyword argument of the model's constructor).

    ``in_channels`` (1, or 2 with ``features.deltas``), ``n_mels`` and ``n_frames`` (``features.window_frames``) size
    the torch models; the baselines ignore them (their input width comes from the data at ``fit``).

    Raises:
        ConfigError: unknown name, a setting out of range for that model, or an option it does not have.

    >>> model = build_model(ModelConfig(name="cnn"), n_classes=50, in_channels=1, n_mels=128, n_frames=216)
    """
    model_cfg.validate()
    cls = get_model_class(model_cfg.name)
    options = check_model_options(model_cfg.name, model_cfg.options)
    if issubclass(cls, SklearnBaseline):
        return cls(n_classes=n_classes, filters=model_cfg.filters, dropout=model_cfg.dropout, **options)
    return cls(n_classes=n_classes, in_channels=in_channels, n_mels=n_mels, n_frames=n_frames,
               filters=model_cfg.filters, dropout=model_cfg.dropout, **options)
