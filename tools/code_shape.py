"""The shape of the source tree, for issue notes and docs/architecture.md: its files and lines (as ``wc -l`` counts
them), longest functions, the parameters of the fit entry points, the functions that return a Config, files per
package, imports of the top package and import circles (lazy imports included; an import under ``if TYPE_CHECKING:``
never runs, so it makes no circle and is left out).

    .venv/bin/python tools/code_shape.py [--top 10] [--src OTHER_CHECKOUT/src/envsound]
"""

from __future__ import annotations

import argparse
import ast
from collections import Counter
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "envsound"
ENTRY_POINTS = {"fit_network", "train_model", "run_cv", "cross_validate", "grid_search", "run_stages",
                "pretrain_autoencoder"}
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


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(src: Path) -> tuple[dict[str, set[str]], list[str]]:
    """Module -> the envsound modules it imports (anywhere in it), and the lines that import the top package."""
    paths = {module_name(path, src): path for path in src.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in paths}
    top = []
    for name, path in paths.items():
        for node in _run_time_nodes(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("envsound"):
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
                if node.module == "envsound" and name != "envsound":
                    top.append(f"{path.relative_to(src)}:{node.lineno}")
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names if alias.name.startswith("envsound")]
            graph[name] |= {target for target in targets if target in paths and target != name}
    return graph, top


def _run_time_nodes(tree: ast.AST):
    """Every node of ``tree`` but those under ``if TYPE_CHECKING:`` (annotations' imports, never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in ast.walk(child))
            continue
        yield node
        yield from _run_time_nodes(node)


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--src", type=Path, default=SRC, help="the package to read (default: this checkout's)")
    args = parser.parse_args()
    src = args.src.resolve()
    lengths, entries, builders, files, lines_of_source = [], [], [], Counter(), 0
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src)
        files[rel.parts[0] if len(rel.parts) > 1 else "(top)"] += 1
        text = path.read_text()
        lines_of_source += text.count("\n")
        tree = ast.parse(text)
        for name, node in functions(tree):
            where = f"{rel}:{name}"
            lengths.append((node.end_lineno - node.lineno + 1, where))
            short = name.split(".")
            if short[-1] in ENTRY_POINTS or (short[-1] == "__init__" and len(short) > 1 and short[-2] in ENTRY_CLASSES):
                entries.append((where, parameter_count(node)))
            returns = ast.unparse(node.returns) if node.returns else ""
            if returns.strip("'\"") in ("Config", "config.Config") and not short[-1].startswith("_"):
                builders.append(where)
    print(f"## Source: {sum(files.values())} files, {lines_of_source:,} lines")
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
    graph, top = import_graph(src)
    print(f"## Imports of the top package from inside it ({len(top)})")
    for where in top:
        print(f"- {where}")
    found = circles(graph)
    print(f"## Import circles, lazy imports included ({len(found)})")
    for circle in found:
        print(f"- {' <-> '.join(circle)}")


if __name__ == "__main__":
    main()
