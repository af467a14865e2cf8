"""Label maps shipped with envsound, by short name: ``--label-map audioset-esc10`` (or ``label_map="audioset-esc10"``)
reads ``audioset_to_esc10.csv`` here.

- ``audioset-esc10``: one AudioSet class per ESC-10 class, paired by name (Dog -> dog, "Chicken, rooster" ->
  rooster, Rain, Ocean -> sea_waves, Crackle -> crackling_fire, "Baby cry, infant cry" -> crying_baby, Sneeze,
  Tick-tock -> clock_tick, Helicopter, Chainsaw), for zero-shot ESC-10 from an AudioSet tagger. Its figures, and
  how far they hold on clips it was not looked at on, are in docs/results.md ("Start from AudioSet").
"""

from __future__ import annotations

from pathlib import Path

SHIPPED = {"audioset-esc10": "audioset_to_esc10.csv"}
"""Short name -> file in this folder."""


def label_map_path(path_or_name: str | Path) -> Path:
    """The file of a label map: ``path_or_name`` itself, or the shipped map of that short name (see :data:`SHIPPED`)
    when no such file exists (a file of that name wins).

    >>> label_map_path("audioset-esc10").name
    'audioset_to_esc10.csv'
    """
    path = Path(path_or_name)
    if not path.exists() and str(path_or_name) in SHIPPED:
        return Path(__file__).with_name(SHIPPED[str(path_or_name)])
    return path
