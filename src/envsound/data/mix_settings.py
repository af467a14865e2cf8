"""How ``envsound mix`` makes its mixtures: :class:`MixSettings`, checked when built, and the command-line options
generated from its fields (each field's ``cli`` metadata), so the CLI never copies them by hand. Kept apart from the
mixing code (:mod:`envsound.data.mixtures`) so that building the CLI's parser imports no audio library."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envsound.errors import ConfigError


def cli(option: str, metavar: str, help: str) -> dict[str, Any]:
    """A field's metadata for its ``envsound mix`` option."""
    return {"cli": {"option": option, "metavar": metavar, "help": help}}


@dataclass(frozen=True, kw_only=True)
class MixSettings:
    """How mixtures are made; every field is keyword-only and checked when the object is built.

    Defaults and why:

    - ``n_curated=60`` mixtures per fold, ``noisy_factor=4``: FSDKaggle2019 has about 4x more noisy clips than curated
      ones (19,815 vs 4,970); 60 per fold on ESC-10's four training folds gives 240 curated + 960 noisy mixtures.
    - ``min_seconds=4``, ``max_seconds=12``: ESC-50 events last up to 5 s, so a mixture can hold them side by side;
      FSDKaggle2019 clips vary in length too, which exercises the padding/cropping of the training loader.
    - ``min_events=1``, ``max_events=3`` distinct classes per mixture (most FSDKaggle2019 clips carry one or two
      labels, a few more).
    - ``sample_rate=22050``: the project's feature rate (``features.sample_rate``), so features need no second
      resampling, and half the disk and mixing work of 44.1 kHz.
    - ``background_dbfs=-45``: RMS level of the coloured-noise background, in dB relative to full scale. Low enough
      that few mixtures need scaling down: ESC-10 events have crest factors (peak over RMS) of 14-26 dB, so an event
      at -27 dBFS RMS peaks near full scale (ESC-10 folds 1-4 with the defaults: 8 % of mixtures scaled; with -40
      dBFS, 19 %).
    - ``snr_db=(6, 18)``: each event's RMS (over its trimmed extent) lies 6..18 dB above the background. 6 dB is the
      floor of URBAN-SED (Scaper's reference set) so the quietest event is still clearly audible; the range is 12 dB
      wide (URBAN-SED's is 24) because this is a tagging set: every labelled event should be audible next to the
      others of its mixture.
    - ``trim_top_db=40``: leading/trailing audio more than 40 dB below a clip's loudest 20 ms is cut (ESC-50 pads
      short sounds with silence), so an event's onset and offset mean something.
    - Noisy-label rates (per true label: ``swap_rate`` replaced by a wrong class, else ``missing_rate`` dropped; per
      clip: ``extra_rate`` one wrong class added). Fonseca et al. 2019 ("Audio tagging with noisy labels and minimal
      supervision", DCASE) give a rough estimate that about 60 % of the noisy set's labels have some problem
      (incorrect or incomplete). They give no split by kind of error to copy, so the per-kind rates are our choice:
      missing 0.20 (web tags omit sounds most often), swap 0.15 and extra 0.15. With 1-3 events per mixture that
      leaves about 56 % of noisy mixtures with labels that differ from the truth (28 % with 1 event, whose only
      label cannot go missing; 64 % with 2; 77 % with 3; 57 % measured on ESC-10 folds 1-4), a noisy-label
      precision of about 0.76 and a recall of about 0.70. A clip always keeps at least one label: when every true
      label would be dropped, one of them (at random) is kept; wholly wrong labels come from swaps.

    Args:
        seed: >= 0; the same seed (and manifest) gives byte-identical output.
        n_curated: curated mixtures per fold, >= 1.
        noisy_factor: noisy mixtures per fold = ``round(noisy_factor * n_curated)``, >= 0 (0: an empty noisy part).
        min_seconds, max_seconds: mixture length drawn uniformly in ``[min_seconds, max_seconds]``, 0.5..600 s.
        min_events, max_events: events per mixture drawn uniformly in ``[min_events, max_events]``, 1..20; every
            fold needs at least ``max_events`` classes.
        sample_rate: output rate in Hz, 8000..96000.
        background_dbfs: background RMS in dBFS, -120..0.
        snr_db: ``(low, high)`` event level above the background in dB, -40..60, low <= high.
        background_folder: optional folder of audio files (searched recursively) used as backgrounds instead of
            generated noise: a random file and offset per mixture (looped when shorter), set to ``background_dbfs``.
            Backgrounds carry no label and are shared by all folds.
        missing_rate, swap_rate: per true label, each 0..1, with ``missing_rate + swap_rate <= 1``.
        extra_rate: per noisy mixture, 0..1.
        trim_top_db: > 0 dB, see above.

    Raises:
        ConfigError: a value of the wrong type or out of range (the message names the field and the valid range).
    """

    seed: int = field(default=0, metadata=cli("--seed", "N", "the same seed gives byte-identical files"))
    n_curated: int = field(default=60, metadata=cli("--curated", "N", "curated mixtures per fold"))
    noisy_factor: float = field(default=4.0, metadata=cli("--noisy-factor", "X", "noisy mixtures per curated one"))
    min_seconds: float = field(default=4.0, metadata=cli("--min-seconds", "S", "shortest mixture"))
    max_seconds: float = field(default=12.0, metadata=cli("--max-seconds", "S", "longest mixture"))
    min_events: int = field(default=1, metadata=cli("--min-events", "N", "fewest events a mixture"))
    max_events: int = field(default=3, metadata=cli(
        "--max-events", "N", "most events a mixture, each of another class"))
    sample_rate: int = field(default=22050, metadata=cli("--sample-rate", "HZ", "of the WAV files written"))
    background_dbfs: float = field(default=-45.0, metadata=cli("--background-dbfs", "DB", "background RMS level"))
    snr_db: tuple[float, float] = field(default=(6.0, 18.0), metadata=cli(
        "--snr-db", "LOW,HIGH", "event level above the background, drawn in this range"))
    background_folder: str | None = field(default=None, metadata=cli(
        "--background-folder", "DIR", "audio laid under every mixture (default: coloured noise from the seed)"))
    missing_rate: float = field(default=0.20, metadata=cli("--missing-rate", "P", "noisy part: a true label dropped"))
    swap_rate: float = field(default=0.15, metadata=cli(
        "--swap-rate", "P", "noisy part: a label swapped for a wrong one"))
    extra_rate: float = field(default=0.15, metadata=cli(
        "--extra-rate", "P", "noisy part: one wrong label added to a clip"))
    trim_top_db: float = field(default=40.0, metadata=cli(
        "--trim-top-db", "DB", "silence cut from each event: quieter than its loudest 20 ms by this"))

    def __post_init__(self) -> None:
        ints = {"seed": (0, None), "n_curated": (1, None), "min_events": (1, 20), "max_events": (1, 20),
                "sample_rate": (8000, 96000)}
        for key, (lo, hi) in ints.items():
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo or (
                    hi is not None and value > hi):
                raise ConfigError(f"MixSettings.{key}={value!r} is out of range; valid: an integer "
                                  f"{lo}..{hi if hi is not None else ''}")
        floats = {"noisy_factor": (0, 1000), "min_seconds": (0.5, 600), "max_seconds": (0.5, 600),
                  "background_dbfs": (-120, 0), "missing_rate": (0, 1), "swap_rate": (0, 1), "extra_rate": (0, 1),
                  "trim_top_db": (1e-3, 200)}
        for key, (lo, hi) in floats.items():
            check_number(f"MixSettings.{key}", getattr(self, key), lo, hi)
        if self.min_seconds > self.max_seconds:
            raise ConfigError(f"MixSettings: min_seconds={self.min_seconds!r} exceeds max_seconds={self.max_seconds!r}")
        if self.min_events > self.max_events:
            raise ConfigError(f"MixSettings: min_events={self.min_events!r} exceeds max_events={self.max_events!r}")
        if self.missing_rate + self.swap_rate > 1:
            raise ConfigError(f"MixSettings: missing_rate + swap_rate = {self.missing_rate + self.swap_rate:g} "
                              "exceeds 1; each true label is swapped, dropped or kept")
        if not (isinstance(self.snr_db, (tuple, list)) and len(self.snr_db) == 2):
            raise ConfigError(f"MixSettings.snr_db={self.snr_db!r} is not valid; give (low, high) in dB")
        for value in self.snr_db:
            check_number("MixSettings.snr_db", value, -40, 60)
        if self.snr_db[0] > self.snr_db[1]:
            raise ConfigError(f"MixSettings.snr_db={self.snr_db!r}: low exceeds high")
        object.__setattr__(self, "snr_db", (float(self.snr_db[0]), float(self.snr_db[1])))
        if self.background_folder is not None:
            if not isinstance(self.background_folder, (str, os.PathLike)):
                raise ConfigError(f"MixSettings.background_folder={self.background_folder!r} is not a folder path")
            object.__setattr__(self, "background_folder", os.fspath(self.background_folder))

    @property
    def n_noisy(self) -> int:
        """Noisy mixtures per fold."""
        return int(round(self.noisy_factor * self.n_curated))


def check_number(key: str, value: object, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not (
            math.isfinite(value) and lo <= value <= hi):
        raise ConfigError(f"{key}={value!r} is out of range; valid: a number {lo:g}..{hi:g}")
