"""Grid search: the cartesian product of config values, each point scored by cross-validation.

``envsound grid --set model.filters=16,32,64 --set train.batch_size=16,32,64 ...`` calls :func:`grid_search`. Every
point is one :func:`~envsound.recipes.crossval.run_cv` run in its own sub-folder
(``OUT/model.filters=16__train.batch_size=32/``); a point whose ``cv.json`` exists is read, not rerun (and a
point interrupted half-way resumes its finished folds). The table goes to ``grid.md`` and ``grid.json``: with two
keys, the first key's values are rows and the second's columns (like Table 1 of the DTU paper), cells
"mean ± std" of the fold accuracies in percent.

Values are set on the resolved base config (after presets, --config and the fixed --set values); a grid over
``model.name`` does not re-apply each model's preset.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from envsound.config import Config, parse_override
from envsound.data.records import Manifest
from envsound.errors import ConfigError, EnvsoundError
from envsound.fileio import write_json_atomic, write_text_atomic
from envsound.recipes.context import RunContext
from envsound.recipes.crossval import run_cv

log = logging.getLogger(__name__)

Axes = Sequence[tuple[str, Sequence[str]]]


@dataclass
class GridResult:
    """``points[i]``: ``{"values": {key: value}, "dir", "score", "mean_<score>", "std_<score>", "fold_scores"}``;
    ``score`` is ``accuracy`` (single-label) or ``lwlrap`` (multi-label)."""

    keys: list[str]
    points: list[dict[str, Any]]
    markdown: str
    n_run: int  # points cross-validated by this call (the others were read from their cv.json)

    def to_dict(self) -> dict[str, Any]:
        return {"keys": self.keys, "points": self.points}


def split_grid_overrides(overrides: Sequence[str]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Split ``--set`` texts into fixed ones (one value) and grid axes (``key=v1,v2,...``), in the order given.

    Raises:
        ConfigError: a malformed override, an empty value in a list, or one key given as an axis twice.

    >>> split_grid_overrides(["train.max_epochs=5", "model.filters=16,32"])
    (['train.max_epochs=5'], [('model.filters', ['16', '32'])])
    """
    fixed, axes = [], []
    for text in overrides:
        key, value = parse_override(text)
        values = [v.strip() for v in value.split(",")]
        if len(values) == 1:
            fixed.append(text)
            continue
        if any(v == "" for v in values):
            raise ConfigError(f"--set {text!r}: an empty value in the list; write key=v1,v2,...")
        if key in [k for k, _ in axes]:
            raise ConfigError(f"--set {key}: given as a grid axis twice; list all its values in one --set")
        axes.append((key, values))
    return fixed, axes


def point_configs(config: Config, axes: Axes) -> list[tuple[dict[str, str], Config]]:
    """Every point of the grid (first axis slowest) with its validated config; an invalid value fails before any
    training starts (:class:`ConfigError` naming it)."""
    points = []
    for combo in itertools.product(*[list(values) for _, values in axes]):
        values = {key: value for (key, _), value in zip(axes, combo)}
        point = copy.deepcopy(config)
        for key, value in values.items():
            point.set(key, value, source="grid")
        points.append((values, point.validate()))
    return points


def point_dir_name(values: Mapping[str, str]) -> str:
    """``model.filters=16__train.batch_size=32`` (``base`` for a grid without axes)."""
    name = "__".join(f"{key}={value}" for key, value in values.items())
    return name.replace("/", "_").replace("\\", "_") or "base"


def grid_search(
    manifest: Manifest,
    config: Config,
    axes: Axes,
    *,
    folds: Sequence[int] | None = None,
    out_dir: str | Path,
    context: RunContext = RunContext(),
    init: str | Path | Mapping[int, str | Path] | None = None,
    unlabelled: Manifest | None = None,
) -> GridResult:
    """Cross-validate ``config`` with every combination of ``axes`` values; write ``grid.md`` and ``grid.json``.

    Args:
        manifest: the dataset (with official folds).
        config: the resolved base config.
        axes: ``[(dotted key, [value, ...]), ...]`` (values as text, parsed like ``--set``).
        folds, init, unlabelled: as for :func:`run_cv`.
        out_dir: grid folder; one sub-folder per point (:func:`point_dir_name`).
        context: its ``cache``, ``progress`` and ``on_error`` reach every point's :func:`run_cv`; its
            ``resume`` and ``overwrite`` are not read: a point whose ``cv.json`` exists is reused, one whose folder
            exists resumes its finished folds, and nothing is overwritten (delete a point's folder to rerun it).

    Raises:
        ConfigError: an unknown key or invalid value (before anything runs).
        EnvsoundError: a point's existing ``cv.json`` was made with other settings (delete it or use another out).
        DatasetLayoutError: as :func:`run_cv`.

    >>> result = grid_search(load_dataset("esc10", root), config, [("model.filters", ["16", "32"])], out_dir="g")
    >>> print(result.markdown)
    """
    out_dir = Path(out_dir)
    points, n_run = [], 0
    for values, point in point_configs(config, axes):
        run_dir = out_dir / point_dir_name(values)
        summary_path = run_dir / "cv.json"
        wanted = json.loads(json.dumps(point.to_dict()))
        if summary_path.exists():
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
            if _as_today(summary.get("config")) != wanted:
                raise EnvsoundError(f"{summary_path} was made with other settings than grid point {values}; "
                                    "delete that folder to rerun it, or choose another --out")
            log.info("grid point %s: reusing %s", values, summary_path)
        else:
            log.info("grid point %s: cross-validating", values)
            # the grid, not the caller, decides these per point: an interrupted point keeps its finished folds
            point_context = replace(context, resume=run_dir.exists(), overwrite=False)
            summary = run_cv(manifest, point, folds=folds, out_dir=run_dir, context=point_context, init=init,
                             unlabelled=unlabelled)
            n_run += 1
        score = summary.get("score", "accuracy")
        points.append({"values": values, "dir": str(run_dir), "score": score,
                       f"mean_{score}": summary[f"mean_{score}"], f"std_{score}": summary[f"std_{score}"],
                       "fold_scores": [f[score] for f in summary["folds"]]})
    keys = [key for key, _ in axes]
    result = GridResult(keys=keys, points=points, markdown=grid_markdown(keys, axes, points), n_run=n_run)
    write_json_atomic(out_dir / "grid.json", {**result.to_dict(), "dataset": manifest.name,
                                              "base_config": config.to_dict()})
    write_text_atomic(out_dir / "grid.md", result.markdown)
    return result


def grid_markdown(keys: Sequence[str], axes: Axes, points: Sequence[Mapping[str, Any]]) -> str:
    """The grid as a Markdown table of "mean ± std" of the score (accuracy or lwlrap, %); two keys give a rows x
    columns table."""
    score = points[0].get("score", "accuracy") if points else "accuracy"

    def cell(point: Mapping[str, Any]) -> str:
        return f"{point[f'mean_{score}'] * 100:.1f} ± {point[f'std_{score}'] * 100:.1f}"

    if len(keys) == 2:
        (row_key, row_values), (col_key, col_values) = axes
        by_values = {(p["values"][row_key], p["values"][col_key]): p for p in points}
        lines = [f"| {row_key} \\ {col_key} | " + " | ".join(col_values) + " |",
                 "|---|" + "---|" * len(col_values)]
        for r in row_values:
            lines.append(f"| {r} | " + " | ".join(cell(by_values[(r, c)]) for c in col_values) + " |")
    else:
        lines = ["| " + " | ".join(keys or ["config"]) + f" | {score} (%) |", "|---" * (max(len(keys), 1) + 1) + "|"]
        for p in points:
            lines.append("| " + " | ".join([p["values"][k] for k in keys] or ["base"]) + f" | {cell(p)} |")
    return "\n".join(lines) + f"\n\nCells: mean ± std of the fold {score} (%) in cross-validation.\n"


def _as_today(saved: Any) -> Any:
    """A point's saved config in today's layout (keys that moved since it was written, config.RENAMED_KEYS), or as
    it was when it no longer loads."""
    try:
        return json.loads(json.dumps(Config.from_dict(saved).to_dict()))
    except (ConfigError, AttributeError):
        return saved
