"""The import graph between the top-level packages: acyclic, layered, with ``core`` as its leaf.

Every ``.py`` file of each package is parsed (nothing is imported) and every ``import`` /
``from ... import`` in it counts, at module level and inside functions alike, so a
function-local import cannot hide a dependency.  The layers, lowest first::

    core < analysis < datamodules < lightning_modules < evaluation < callbacks < tools

A package may import the packages below it, never one above it; the applications
(``train.py``, ``scripts/``, ``benchmarks/``, ``tests/``) sit on top and no package imports
them.  ``core`` imports nothing of the project.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple, Optional

ROOT = Path(__file__).resolve().parents[1]

#: The top-level packages, lowest layer first: each may import only those before it.
LAYERS = ("core", "analysis", "datamodules", "lightning_modules", "evaluation", "callbacks", "tools")
#: What uses the packages and is used by none of them.
APPLICATIONS = ("train", "scripts", "benchmarks", "tests")


class Edge(NamedTuple):
    """One import of package ``target`` by a file of package ``source``."""

    source: str
    target: str
    file: str  # relative to the repository root
    line: int
    statement: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.statement} ({self.source} -> {self.target})"


def _imported_modules(node: ast.AST, module_parts: list[str]) -> list[str]:
    """Dotted names an import statement refers to; relative imports resolved against ``module_parts``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    assert isinstance(node, ast.ImportFrom)
    if node.level == 0:
        return [node.module or ""]
    base = module_parts[: len(module_parts) - node.level]  # the file's package, then its parents
    if node.module:
        return [".".join(base + [node.module])]
    return [".".join(base + [alias.name]) for alias in node.names]  # from . import a, b


def import_edges(root: Path, packages: tuple[str, ...] = LAYERS) -> list[Edge]:
    """Every import from one project package (or application) to another, in every file of ``packages``."""
    project = set(LAYERS) | set(APPLICATIONS)
    edges = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root)
            parts = list(relative.with_suffix("").parts)  # [pkg, sub, mod]; [pkg, __init__] for a package
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(relative))
            for node in ast.walk(tree):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                for name in _imported_modules(node, parts):
                    target = name.split(".")[0]
                    if target in project and target != package:
                        edges.append(Edge(package, target, relative.as_posix(), node.lineno, ast.unparse(node)))
    return edges


def find_cycle(edges: list[Edge]) -> Optional[list[Edge]]:
    """One cycle of the package graph as the edges that close it, or None."""
    first: dict[tuple[str, str], Edge] = {}
    for edge in edges:
        first.setdefault((edge.source, edge.target), edge)
    successors: dict[str, list[str]] = {}
    for source, target in first:
        successors.setdefault(source, []).append(target)
    state: dict[str, str] = {}  # "open" while on the DFS stack, then "done"
    stack: list[str] = []

    def visit(node: str) -> Optional[list[str]]:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(successors.get(node, [])):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(successors):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return [first[(a, b)] for a, b in zip(cycle, cycle[1:])]
    return None


def layering_violations(edges: list[Edge]) -> list[Edge]:
    """Imports of a package at the same or a higher layer, or of an application."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    return [e for e in edges if e.target not in rank or rank[e.target] >= rank[e.source]]


def _present_packages(root: Path) -> tuple[str, ...]:
    return tuple(name for name in LAYERS if (root / name / "__init__.py").is_file())


# ---------------------------------------------------------------------------------------------- the project
def test_every_package_is_scanned():
    present = _present_packages(ROOT)
    assert set(LAYERS) - {"tools"} <= set(present), f"missing packages: {set(LAYERS) - set(present)}"
    for package in present:
        assert list((ROOT / package).rglob("*.py")), f"{package}/ holds no .py file"
    edges = {(e.source, e.target) for e in import_edges(ROOT, present)}
    assert {("lightning_modules", "core"), ("callbacks", "evaluation")} <= edges, edges


def test_packages_import_each_other_without_a_cycle():
    cycle = find_cycle(import_edges(ROOT, _present_packages(ROOT)))
    assert cycle is None, "import cycle between top-level packages " + " -> ".join(
        [cycle[0].source] + [e.target for e in cycle]
    ) + ":\n" + "\n".join(f"  {e}" for e in cycle)


def test_core_imports_nothing_of_the_project():
    edges = import_edges(ROOT, ("core",))
    assert not edges, "core/ must import only the standard library, NumPy, SciPy and torch:\n" + "\n".join(
        f"  {e}" for e in edges
    )


def test_packages_import_only_lower_layers():
    bad = layering_violations(import_edges(ROOT, _present_packages(ROOT)))
    assert not bad, (
        f"imports against the layering {' < '.join(LAYERS)} (a package imports only those before it, "
        f"never {', '.join(APPLICATIONS)}):\n" + "\n".join(f"  {e}" for e in bad)
    )


# ---------------------------------------------------------------------------------------------- the checker itself
def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_checker_sees_function_local_and_relative_imports_and_names_them(tmp_path):
    _tree(
        tmp_path,
        {
            "core/__init__.py": "",
            "core/a.py": "import os\n\ndef f():\n    from callbacks.x import y\n",
            "callbacks/__init__.py": "from . import x\n",
            "callbacks/x.py": "from core.a import f\nfrom .. import train\n",
        },
    )
    edges = import_edges(tmp_path, ("core", "callbacks"))
    assert sorted(map(str, edges)) == [
        "callbacks/x.py:1: from core.a import f (callbacks -> core)",
        "callbacks/x.py:2: from .. import train (callbacks -> train)",  # relative, above the package
        "core/a.py:4: from callbacks.x import y (core -> callbacks)",
    ]
    cycle = find_cycle(edges)
    assert cycle is not None and {e.file for e in cycle} == {"core/a.py", "callbacks/x.py"}
    assert {str(e) for e in layering_violations(edges)} == {
        "core/a.py:4: from callbacks.x import y (core -> callbacks)",
        "callbacks/x.py:2: from .. import train (callbacks -> train)",
    }


def test_checker_accepts_a_layered_graph(tmp_path):
    _tree(
        tmp_path,
        {
            "core/__init__.py": "import numpy\n",
            "evaluation/__init__.py": "import core\nfrom lightning_modules import m\n",
            "lightning_modules/__init__.py": "def f():\n    import core.io\n",
        },
    )
    edges = import_edges(tmp_path, ("core", "lightning_modules", "evaluation"))
    assert len(edges) == 3 and find_cycle(edges) is None and layering_violations(edges) == []
