"""The shape of the source tree, for issue notes and docs/architecture.md: longest functions, the parameters of the
fit entry points, the functions that return a Config, files per package.

    .venv/bin/python tools/code_shape.py [--top 10]
"""

from __future__ import annotations

import argparse
import ast
from collections import Counter
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "envsound"
ENTRY_POINTS = {"fit_network", "train_model", "cross_validate", "grid_search", "run_stages", "pretrain_autoencoder"}
ENTRY_CLASSES = {"ClipDataModule", "ClipClassifier"}


def functions(tree: ast.AST, prefix: str = ""):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield f"{prefix}{node.name}", node
            yield from functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from functions(node, f"{prefix}{node.name}.")


def parameter_count(node: ast.FunctionDef) -> int:
    args = node.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs if a.arg not in ("self", "cls")]
    return len(names) + bool(args.vararg) + bool(args.kwarg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    lengths, entries, builders, files = [], [], [], Counter()
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        files[rel.parts[0] if len(rel.parts) > 1 else "(top)"] += 1
        tree = ast.parse(path.read_text())
        for name, node in functions(tree):
            where = f"{rel}:{name}"
            lengths.append((node.end_lineno - node.lineno + 1, where))
            short = name.split(".")
            if short[-1] in ENTRY_POINTS or (short[-1] == "__init__" and len(short) > 1 and short[-2] in ENTRY_CLASSES):
                entries.append((where, parameter_count(node)))
            returns = ast.unparse(node.returns) if node.returns else ""
            if returns.strip("'\"") in ("Config", "config.Config") and not short[-1].startswith("_"):
                builders.append(where)
    print(f"## Longest functions (top {args.top})")
    for lines, where in sorted(lengths, reverse=True)[: args.top]:
        print(f"- {lines} lines: {where}")
    print("## Parameters of the fit entry points")
    for where, count in entries:
        print(f"- {where}: {count}")
    print(f"## Public functions that return a Config ({len(builders)})")
    for where in builders:
        print(f"- {where}")
    print("## Files per package")
    print(", ".join(f"{name} {count}" for name, count in sorted(files.items())))


if __name__ == "__main__":
    main()
