"""The import graph of eventshop's own packages, read from their source.

Nothing is imported: every module is parsed, and each ``import x``, ``from x
import y`` and relative import becomes an edge to the module of ours it names.
Imports inside functions count (one that dodges a cycle at import time is still
a cycle between the modules); imports under ``if TYPE_CHECKING:`` do not (they
are for the type checker only and never run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping, Set
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("domain", "application", "projections")
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Import:
    """One module of ours importing another, where it says so."""

    importer: str
    imported: str
    line: int


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the packages, by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def import_graph(root: Path = ROOT) -> dict[str, list[Import]]:
    """Each module's imports of the packages' modules (itself left out)."""
    files = module_files(root)
    graph: dict[str, list[Import]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[name] = [
            Import(name, imported, line)
            for imported, line in _imported(tree, package, files.keys())
            if imported != name
        ]
    return graph


def modules_imported(path: Path) -> Iterator[tuple[str, int]]:
    """Every module a file's absolute imports name at run time (anyone's, not
    only ours), with the line: for files outside the packages, such as tests."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            for alias in node.names:
                yield f"{node.module}.{alias.name}", node.lineno


def _imported(
    tree: ast.AST, package: str, known: Set[str]
) -> Iterator[tuple[str, int]]:
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                # ``import a.b.c`` runs ``a.b.c`` (and binds ``a``): the module
                # named is the one depended on.
                if alias.name in known:
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in known:
                    yield submodule, node.lineno
                elif base in known:
                    yield base, node.lineno


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    anchor = parts[: len(parts) - (node.level - 1)]
    return ".".join([*anchor, *([node.module] if node.module else [])])


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, except what only a type checker sees (``if TYPE_CHECKING:``)."""
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def cycles(graph: Mapping[str, list[Import]]) -> list[list[Import]]:
    """One cycle per strongly connected group of modules (each group that has
    one), as the imports that close it, the group's first module first."""
    found = []
    for group in _strongly_connected(graph):
        if len(group) > 1:
            found.append(_cycle_through(min(group), group, graph))
    return sorted(found, key=lambda cycle: cycle[0].importer)


def describe(cycle: list[Import]) -> str:
    """``a (line 3) -> b (line 7) -> a``."""
    steps = [f"{step.importer} (line {step.line})" for step in cycle]
    return " -> ".join([*steps, cycle[0].importer])


def _cycle_through(
    start: str, group: Set[str], graph: Mapping[str, list[Import]]
) -> list[Import]:
    # Breadth first from ``start`` within the group, back to ``start``: a
    # shortest cycle through it, the easiest to read.
    came_by: dict[str, Import] = {}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for step in graph[module]:
                if step.imported not in group:
                    continue
                if step.imported == start:
                    path = [step]
                    while path[0].importer != start:
                        path.insert(0, came_by[path[0].importer])
                    return path
                if step.imported not in came_by:
                    came_by[step.imported] = step
                    following.append(step.imported)
        frontier = following
    raise AssertionError(f"{start} is in no cycle of {sorted(group)}")


def _strongly_connected(graph: Mapping[str, list[Import]]) -> list[set[str]]:
    """Tarjan's algorithm, iteratively (no recursion limit to mind)."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, Iterator[Import]]] = [(root, iter(graph[root]))]
        index[root] = lowest[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, steps = work[-1]
            step = next(steps, None)
            if step is not None:
                target = step.imported
                if target not in index:
                    index[target] = lowest[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(graph[target])))
                elif target in on_stack:
                    lowest[module] = min(lowest[module], index[target])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                lowest[parent] = min(lowest[parent], lowest[module])
            if lowest[module] == index[module]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == module:
                        break
                groups.append(group)
    return groups
