"""What ``--init`` starts from: an envsound classifier or autoencoder checkpoint, checked against the new model.

- :func:`read_source` opens the source through :func:`~envsound.models.files.open_model_file` (a classifier, an
  autoencoder, an AudioSet release or installed name; a baseline, an ensemble or an ONNX export cannot be one), once
  per file and modification time however many times a run asks;
- :func:`source_sections` are the config sections the new run inherits from it (features and model);
- :func:`plan_init` checks every weight-relevant setting in one pass and decides what is loaded: the trunk (a
  classifier's every layer but its head, an autoencoder's encoder), and which head rows are copied (classes the two
  label sets share by name, or by ``transfer.label_map``);
- :func:`apply_init` writes the plan into a freshly built network and logs, by name, what was loaded, replaced and
  newly initialised.
"""

from __future__ import annotations

import copy
import csv
import functools
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from envsound.config import Config
from envsound.errors import CheckpointError, ConfigError
from envsound.models.autoencoder import DEFAULT_FILTERS, encoder_init_state, input_settings, load_encoder_state
from envsound.models.checkpoint import Checkpoint
from envsound.models.clip import build_network
from envsound.models.files import AUTOENCODER, CLASSIFIER, RELEASE, model_path, open_model_file
from envsound.models.pretrained import closest_labels
from envsound.models.registry import check_model_options, get_model_class, is_torch_model, model_names
from envsound.transfer.maps import SHIPPED, label_map_path
from envsound.transfer.notes import note

log = logging.getLogger(__name__)

HEAD = "head"  # every registered network ends in ``head = Sequential(Dropout, Linear)``: the layer a new label set replaces
FRAME_HEAD = "frame_head"  # a frame-level event head (efficientat's model.options.frame_head): new for every label set


@dataclass
class InitPlan:
    """What :func:`apply_init` writes into a new network, and the names to log and save in the checkpoint."""

    source: str
    kind: str  # "classifier" or "autoencoder"
    trunk: dict[str, torch.Tensor]  # tensors named as in the new network (autoencoder: as in its encoder)
    source_labels: list[str] = field(default_factory=list)
    head: dict[str, torch.Tensor] = field(default_factory=dict)  # the source's head tensors (classifier sources)
    rows: dict[int, int] = field(default_factory=dict)  # new class index -> source class index whose row is copied
    labels: list[str] = field(default_factory=list)  # the new label set

    @property
    def same_head(self) -> bool:
        """The label sets are identical, in the same order: the source's head is kept as it is."""
        return self.kind == CLASSIFIER and self.labels == self.source_labels

    def describe(self) -> list[str]:
        """What is loaded, replaced and newly initialised, one line each."""
        lines = [f"loaded from {self.source} ({self.kind}): {len(self.trunk)} tensors ({_prefixes(self.trunk)})"]
        if self.kind != CLASSIFIER:
            lines.append("new: the layers after the encoder and the head (initialised at random)")
        elif self.same_head:
            lines.append(f"head: kept ({len(self.labels)} classes, the same label set)")
        else:
            copied = [f"{self.source_labels[j]}->{self.labels[i]}" if self.source_labels[j] != self.labels[i]
                      else self.labels[i] for i, j in sorted(self.rows.items())]
            new = [name for i, name in enumerate(self.labels) if i not in self.rows]
            lines.append(f"head: replaced ({len(self.source_labels)} -> {len(self.labels)} classes); rows copied for "
                         f"{len(copied)}: {', '.join(copied) or 'none'}; new (random) for {len(new)}: "
                         f"{', '.join(new) or 'none'}")
        return lines

    def to_meta(self) -> dict[str, Any]:
        """For the new checkpoint's ``meta["transfer"]``."""
        return {"source": self.source, "kind": self.kind, "loaded": sorted(self.trunk),
                "copied_rows": {self.labels[i]: self.source_labels[j] for i, j in sorted(self.rows.items())},
                "new_rows": [name for i, name in enumerate(self.labels) if i not in self.rows]
                if self.kind == CLASSIFIER else []}


def plan_from_weights(state_dict: dict[str, torch.Tensor], labels: Sequence[str], *, source: str) -> InitPlan:
    """A plan that starts a network from weights of the same model and label set held in memory (e.g. the previous
    round of self-training): every tensor, the head kept."""
    trunk, head = _split_head(state_dict)
    return InitPlan(source=source, kind=CLASSIFIER, trunk=trunk, head=head, source_labels=list(labels),
                    labels=list(labels))


def read_source(path: str | Path) -> Checkpoint:
    """Open an ``--init`` source: an envsound classifier of one network, an autoencoder checkpoint, an AudioSet release
    file or an installed name (e.g. ``efficientat-mn04``).

    The opened file is kept per path, modification time and size (:func:`_opened`): ``resolve(init=)``, then every
    fold's :func:`plan_init` and leakage check read one source, and a cross-validation would otherwise load and check
    it 11 times (1 + 2 per fold); a file rewritten in between is read again. The checkpoint returned is that shared
    one: read it, do not change it.

    Raises:
        CheckpointError: not a model file, an ONNX export, a baseline (no network weights), or an ensemble.
    """
    file = model_path(path)
    stat = file.stat() if file.is_file() else None
    source = _opened(str(path), stat.st_mtime_ns if stat else None, stat.st_size if stat else None)
    source.require(CLASSIFIER, AUTOENCODER, RELEASE, purpose="init (--init)")
    checkpoint = source.checkpoint
    if source.kind == AUTOENCODER:
        return checkpoint
    name = checkpoint.config.model.name
    if not is_torch_model(name) or checkpoint.state_dict is None:
        networks = [n for n in model_names() if is_torch_model(n)]
        raise CheckpointError(f"{path}: model {name!r} is a scikit-learn baseline with no network weights; --init "
                              f"takes a network ({', '.join(networks)}) or an autoencoder.ckpt")
    if checkpoint.config.train.ensemble > 1:
        raise CheckpointError(f"{path}: an ensemble of {checkpoint.config.train.ensemble} networks "
                              "(train.ensemble); --init takes one network")
    return checkpoint


@functools.lru_cache(maxsize=2)  # one source per run; a second for a caller that alternates two
def _opened(path: str, mtime_ns: int | None, size: int | None):
    """:func:`~envsound.models.files.open_model_file` once per (path, modification time, size)."""
    return open_model_file(path, labels_required=False)


def source_kind(checkpoint: Checkpoint) -> str:
    return AUTOENCODER if checkpoint.meta.get("kind") == AUTOENCODER else CLASSIFIER


def source_sections(checkpoint: Checkpoint) -> dict[str, dict[str, Any]]:
    """The sections a run started from ``checkpoint`` inherits (its features and model), applied before ``--preset``,
    ``--config`` and ``--set`` so an override still wins (and is checked by :func:`plan_init`)."""
    data = checkpoint.config.to_dict()
    return {"features": data["features"], "model": data["model"]}


def weight_mismatches(config: Config, source: Config) -> list[str]:
    """Every setting that makes ``source``'s weights unusable for the model ``config`` builds: the model, its
    filter count and options (``model.options``, defaults filled in: an option that keeps the tensor shapes, such as
    ``aclnet``'s ``llf_pool``, still changes what the weights were trained to see), and the input (features kind,
    sample rate, FFT, hop, mel bands and range, deltas)."""
    problems = []
    mine, theirs = config.model, source.model
    if mine.name != theirs.name:
        problems.append(f"model.name {theirs.name!r} in the checkpoint, {mine.name!r} here")
    else:
        default = DEFAULT_FILTERS.get(mine.name)  # other models: a filter count shows in the tensor shapes
        if default is not None and (mine.filters or default) != (theirs.filters or default):
            problems.append(f"model.filters {theirs.filters or default} in the checkpoint, {mine.filters or default} "
                            "here")
        ours, other = check_model_options(mine.name, mine.options), check_model_options(mine.name, theirs.options)
        head_only = getattr(get_model_class(mine.name), "head_options", ())
        problems += [f"model.options.{key} {other[key]!r} in the checkpoint, {ours[key]!r} here"
                     for key in ours if ours[key] != other[key] and key not in head_only]
    for key, ours, other in input_settings(config, source):
        if ours != other and not key.startswith("input frames"):  # a window length only matters through shapes
            problems.append(f"{key} {other!r} in the checkpoint, {ours!r} here")
    return problems


def plan_init(init: str | Path, config: Config, labels: Sequence[str]) -> InitPlan:
    """Check ``init`` against the model ``config`` builds for ``labels`` and decide what is loaded. Nothing is
    loaded here; every mismatch is named in one message.

    Raises:
        CheckpointError: not a usable checkpoint, or weights that do not fit (the message lists every mismatch).
        ConfigError: ``transfer.label_map`` unreadable or naming classes neither label set has.
    """
    source = str(init)
    checkpoint = read_source(init)
    if source_kind(checkpoint) == AUTOENCODER:
        return InitPlan(source=source, kind=AUTOENCODER, trunk=encoder_init_state(checkpoint, config, source=source),
                        labels=list(labels))
    problems = weight_mismatches(config, checkpoint.config)
    if not problems:  # same model and input: compare the tensors themselves (a window length can change shapes)
        single = copy.deepcopy(config)
        single.train.ensemble = 1  # each member of an ensemble starts from the source
        expected = {k: v for k, v in build_network(single, len(labels)).state_dict().items() if not _replaced(k)}
        given = {k: v for k, v in checkpoint.state_dict.items() if not _replaced(k)}
        missing, extra = sorted(set(expected) - set(given)), sorted(set(given) - set(expected))
        shapes = [f"{k} {tuple(given[k].shape)} in the checkpoint, {tuple(v.shape)} here" for k, v in expected.items()
                  if k in given and given[k].shape != v.shape]
        problems += [f"missing tensors {', '.join(missing[:3])}"] if missing else []
        problems += [f"unexpected tensors {', '.join(extra[:3])}"] if extra else []
        problems += [f"shape {s} (features.window_seconds?)" for s in shapes[:3]]
    if problems:
        raise CheckpointError(f"{source}: its weights do not fit this model: {'; '.join(problems)}; drop the "
                              "override (the model and features come from the checkpoint) or drop --init")
    mapping = read_label_map(config.transfer.label_map) if config.transfer.label_map else {}
    rows = match_labels(list(labels), checkpoint.labels, mapping)
    trunk, head = _split_head(checkpoint.state_dict)
    trunk = {k: v for k, v in trunk.items() if not _replaced(k)}
    return InitPlan(source=source, kind=CLASSIFIER, trunk=trunk, head=head, source_labels=list(checkpoint.labels),
                    rows=rows, labels=list(labels))


def apply_init(network: nn.Module, plan: InitPlan | None) -> None:
    """Load ``plan`` into ``network`` (no-op for ``None``): the trunk, then the head as it is (same label set) or
    the rows of the classes the label sets share. Logs what was loaded, replaced and newly initialised."""
    if plan is None:
        return
    if plan.kind == AUTOENCODER:
        load_encoder_state(network, plan.trunk, source=plan.source)
    else:
        result = network.load_state_dict(plan.trunk, strict=False)
        if result.unexpected_keys or any(not _replaced(k) for k in result.missing_keys):  # plan_init checked this
            raise CheckpointError(f"{plan.source}: weights do not fit ({result})")
        linear = head_linear(network)
        with torch.no_grad():
            weight, bias = _head_tensors(plan.head)
            if plan.same_head:
                linear.weight.copy_(weight)
                linear.bias.copy_(bias)
            else:
                for i, j in plan.rows.items():
                    linear.weight[i] = weight[j]
                    linear.bias[i] = bias[j]
    for line in plan.describe():
        note(log, "%s", line)  # once per run: a cross-validation applies one plan to every fold


def head_linear(network: nn.Module) -> nn.Linear:
    """The last linear layer of ``network.head``: the layer whose rows are the classes."""
    head = getattr(network, HEAD, None)
    layers = [m for m in head.modules() if isinstance(m, nn.Linear)] if isinstance(head, nn.Module) else []
    if not layers:
        raise ConfigError(f"model {type(network).__name__} has no 'head' with a linear layer; transfer needs one")
    return layers[-1]


def read_label_map(path: str | Path) -> dict[str, str]:
    """``source class -> target class`` from a two-column CSV (an optional header ``source,target``), or from a map
    shipped with envsound by its short name (``"audioset-esc10"``, see :mod:`envsound.transfer.maps`). A name with a
    comma (AudioSet's ``Chicken, rooster``) is quoted, as CSV requires: ``"Chicken, rooster",rooster``.

    Raises:
        ConfigError: unreadable, a row without two names (its line named), or a source class mapped twice.
    """
    path = label_map_path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            rows = [(reader.line_num, row) for row in reader if row and any(cell.strip() for cell in row)]
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the label map ({exc.strerror or exc}); give a CSV file or a "
                          f"shipped map: {', '.join(SHIPPED)}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:  # found by fuzzing (issue 68): raised as they were
        raise ConfigError(f"{path}: not a UTF-8 CSV label map ({exc}); save it as UTF-8 text, two columns "
                          "source,target") from None
    if rows and [c.strip().lower() for c in rows[0][1]] == ["source", "target"]:
        rows = rows[1:]
    mapping: dict[str, str] = {}
    for line, row in rows:
        if len(row) != 2 or not all(cell.strip() for cell in row):
            quote = "; a name with a comma is quoted, e.g. \"Chicken, rooster\",rooster" if len(row) > 2 else ""
            raise ConfigError(f"{path}: line {line} {','.join(row)!r}: expected two class names, source,target"
                              f"{quote}")
        src, dst = (cell.strip() for cell in row)
        if src in mapping:
            raise ConfigError(f"{path}: source class {src!r} is mapped twice")
        mapping[src] = dst
    return mapping


def match_labels(labels: Sequence[str], source_labels: Sequence[str], mapping: dict[str, str]) -> dict[int, int]:
    """``new class index -> source class index`` for the classes both label sets have: names equal up to case and
    ``_``/``-``/space, plus the pairs of ``mapping`` (source -> target), which win.

    Raises:
        ConfigError: ``mapping`` names a class that is not in the source's or the new label set.
    """
    unknown = [f"source {s!r}{_closest(s, source_labels)}" for s in mapping if s not in source_labels]
    unknown += [f"target {t!r}{_closest(t, labels)}" for t in mapping.values() if t not in labels]
    if unknown:
        listed = f"source classes: {', '.join(source_labels)}; " if len(source_labels) <= 60 else ""
        raise ConfigError(f"transfer.label_map names classes the label sets lack: {', '.join(unknown)} "
                          f"({listed}target classes: {', '.join(labels)})")
    by_name = {_normal(name): j for j, name in enumerate(source_labels)}
    rows = {i: by_name[_normal(name)] for i, name in enumerate(labels) if _normal(name) in by_name}
    index = {name: i for i, name in enumerate(labels)}
    rows.update({index[t]: list(source_labels).index(s) for s, t in mapping.items()})
    return rows


def _closest(name: str, names: Sequence[str]) -> str:
    near = closest_labels(name, list(names))
    return f" (closest: {', '.join(map(repr, near))})" if near else ""


def _normal(name: str) -> str:
    return re.sub(r"[\s_-]+", " ", name).strip().casefold()


def _in_head(key: str) -> bool:
    return key.startswith(HEAD + ".")


def _replaced(key: str) -> bool:
    """A tensor a run from ``--init`` never loads: the head's, or a frame head's (its classes are the source's)."""
    return key.startswith((HEAD + ".", FRAME_HEAD + "."))


def _split_head(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``state_dict`` as (every tensor but the head's, the head's)."""
    return ({k: v for k, v in state_dict.items() if not _in_head(k)},
            {k: v for k, v in state_dict.items() if _in_head(k)})


def head_keys(state_dict: dict[str, torch.Tensor]) -> tuple[str, str]:
    """The keys of the head's last linear layer (``head.1.weight``, ``head.1.bias``) in a network's state dict.

    Raises:
        ConfigError: the state dict has no linear head.
    """
    keys = sorted((k for k in state_dict if _in_head(k)), reverse=True)
    weight = next((k for k in keys if k.endswith(".weight")), None)
    bias = next((k for k in keys if k.endswith(".bias")), None)
    if weight is None or bias is None:
        raise ConfigError("the model has no linear 'head'; transfer needs one")
    return weight, bias


def _head_tensors(head: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    weight, bias = head_keys(head)
    return head[weight], head[bias]


def _prefixes(state: dict[str, torch.Tensor]) -> str:
    return ", ".join(dict.fromkeys(k.split(".")[0] + ".*" for k in state))
