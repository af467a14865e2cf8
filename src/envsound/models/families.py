"""Pre-trained model families as plug-ins: family name -> what envsound needs to take its official files as they
are. A :class:`Family` is its release table (:class:`~envsound.models.releases.Pretrained` rows), how its files are
recognised, how one is opened, the frontend its networks expect (``features.frontend``, a name in
:data:`~envsound.config.frontends.FRONTENDS`), its licence and the networks it adds to
:mod:`envsound.models.registry`. What an opened file answers (labels, licence, digest, window, embeddings,
probabilities) and how a file is recognised, whatever runs it, is the contract: :mod:`envsound.models.contract`.

Pure data, no torch: the callables are named ``"package.module:attribute"`` and imported only when a file is read,
so naming the installed models costs nothing. :func:`envsound.models.files.open_model_file`, the model registry and
:func:`envsound.models.contract.open_family_model` ask here; a new family is its own module (network, recogniser,
opener), its frontend's record and one record in :data:`FAMILIES` (or :func:`register_family` from code outside the
package).

A family's ``runtime`` says what runs its files and so what its recogniser is shown (:func:`recognise`): ``torch``
(EfficientAT: a loaded torch payload) or ``litert``, frozen networks LiteRT runs as they are (BirdNET V2.4 and YAMNet
as TFLite files, :mod:`envsound.models.frozen`: the structure of a TFLite file). The litert family's plug-in is its
table (:data:`envsound.models.frozen.FROZEN`: a new member is a row there, with its licence); its record's
``recognise`` (:func:`~envsound.models.frozen.recognise_structure`) and ``checkpoint``
(:meth:`~envsound.models.litert.FrozenModel.load`) are what :func:`envsound.models.contract.open_family_model` calls,
as it calls the torch families'. ``open_model_file`` and the predictor still open a TFLite file directly.

The ``spec`` family (runtime ``spec``) holds the networks a user installed from an ONNX or TFLite file and a spec
(:mod:`envsound.models.spec`): its table is what is installed here, and a file is its member when an installed spec
beside it names it. LiteRT or ONNX Runtime runs it, as a frozen network.

>>> [spec.download_name for spec in family_releases()][:2]
['efficientat-mn01', 'efficientat-mn02']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from envsound.config.frontends import Ref, resolve
from envsound.models.releases import Pretrained, installed_path

if TYPE_CHECKING:
    from envsound.models.frozen import FrozenRelease


@dataclass(frozen=True)
class Family:
    """One pre-trained family.

    ``releases``: its table, name -> :class:`~envsound.models.releases.Pretrained`; ``recognise``: ``(payload) ->
    bool``, whether a loaded torch file is one of its files; ``checkpoint``: ``(payload, *, path, labels_required)
    -> Checkpoint``, raising :class:`~envsound.errors.CheckpointError` for a file it recognises but cannot take;
    ``frontend``: the ``features.frontend`` its checkpoints set; ``networks``: model name -> class, for networks not
    in :data:`~envsound.models.registry.MODELS`; ``describe``: how a message names its files; ``runtime``: what runs
    its files (``torch``; ``litert``: ``recognise`` takes a :class:`~envsound.models.frozen.Structure` and returns
    its member or ``None``, ``checkpoint`` is ``(path, *, device, precision)`` -> a window scorer); ``licence``: the
    terms its weights come under (``""``: each release says, as the litert family's rows do)."""

    name: str
    describe: str
    releases: Ref
    recognise: Ref
    checkpoint: Ref
    frontend: str
    networks: Mapping[str, Ref] = field(default_factory=dict)
    runtime: str = "torch"
    licence: str = ""

    def table(self) -> Mapping[str, Pretrained]:
        return resolve(self.releases)


FAMILIES: dict[str, Family] = {
    "efficientat": Family("efficientat", "an EfficientAT AudioSet release .pt (e.g. mn04_as_mAP_432.pt)",
                          releases="envsound.models.releases:PRETRAINED",
                          recognise="envsound.models.pretrained:is_official_state",
                          checkpoint="envsound.models.pretrained:official_checkpoint", frontend="efficientat",
                          licence="MIT"),
    "litert": Family("litert", "a BirdNET V2.4 or YAMNet .tflite (LiteRT runs it)",
                     releases="envsound.models.frozen:BUILT_IN", recognise="envsound.models.frozen:recognise_structure",
                     checkpoint="envsound.models.litert:FrozenModel.load", frontend="envsound", runtime="litert"),
    "spec": Family("spec", "an ONNX or TFLite network installed with a spec ('envsound download --from FILE --spec "
                   "SPEC')", releases="envsound.models.spec:INSTALLED", recognise="envsound.models.spec:recognise_spec",
                   checkpoint="envsound.models.litert:FrozenModel.load", frontend="envsound", runtime="spec"),
}


def register_family(family: Family) -> None:
    """Add ``family`` under its name (a family from outside the package; a name taken is replaced)."""
    FAMILIES[family.name] = family


def family_releases(runtime: str | None = None) -> Iterator[Pretrained | FrozenRelease]:
    """Every release of every family (of ``runtime`` only, when given: ``"torch"``, ``"litert"``), in registry and
    table order."""
    for family in FAMILIES.values():
        if runtime is None or family.runtime == runtime:
            yield from family.table().values()


def by_download_name(name: str) -> Pretrained | None:
    """The release ``name`` names: its download name (``efficientat-mn04``), its table name (``mn04_as``) or that
    without ``_as`` (``mn04``); ``None`` for any other string."""
    for family in FAMILIES.values():
        key = name.removeprefix(family.name + "-")
        for spec in family.table().values():
            if key in (spec.name, spec.name.removesuffix("_as")) or name == spec.download_name:
                return spec
    return None


def installed_names() -> list[str]:
    """Every name ``envsound download`` and a model argument accept, from the tables."""
    return [spec.download_name for spec in family_releases()]


def installed_releases() -> list[Pretrained]:
    """The releases whose files are installed here."""
    return [spec for spec in family_releases() if installed_path(spec) is not None]


def recognise(payload: Any, *, runtime: str = "torch") -> Family | None:
    """The family of ``runtime`` whose files look like ``payload``, or ``None``: what its runtime reads of a file
    (``torch``: the loaded torch file; ``litert``: its :class:`~envsound.models.frozen.Structure`), shown to each of
    its families' recognisers in registry order (a recogniser answers a truthy value, e.g. the member, for its own)."""
    return next((family for family in FAMILIES.values()
                 if family.runtime == runtime and resolve(family.recognise)(payload)), None)


def network_class(name: str) -> type | None:
    """The network class a family registers as model ``name``, or ``None``."""
    ref = next((family.networks[name] for family in FAMILIES.values() if name in family.networks), None)
    return None if ref is None else resolve(ref)


def network_names() -> list[str]:
    """The model names the families add."""
    return [name for family in FAMILIES.values() for name in family.networks]
