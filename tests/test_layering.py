"""Layering: every import inside src/expnet (at module level or inside a function, which only
hides a dependency) goes down or sideways, never up, and no two modules or packages import each
other, however indirectly.

The layers, lowest first. A package may import its own layer or lower ones; within a layer the
package graph must still be acyclic. Shapley values are computed from attention matrices (models)
and used by an explainer, so ``shapley`` sits below ``explainers``; ``report`` holds the HTML and
figure primitives that the concept and diagnostic reports build on, so it sits below them.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "expnet"

LAYERS: list[set[str]] = [
    {"expnet", "errors", "seeding", "io", "words", "data", "pretrained"},
    {"models"},
    {"network", "shapley", "pipeline"},
    {"explainers"},
    {"metrics", "evaluation", "corpus", "explanation_run"},
    {"report"},
    {"concepts", "diagnostics"},
    {"benchmark", "demo"},
    {"cli"},
]
LAYER = {package: level for level, packages in enumerate(LAYERS) for package in packages}

def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted((SRC / PACKAGE).rglob("*.py"))}


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The expnet modules ``name`` imports anywhere in its file; ``from package import module``
    counts as importing the module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = {f"{target}.{alias.name}" for alias in node.names} & known
            found |= submodules or {target}
    return {target for target in found if target == PACKAGE or target.startswith(PACKAGE + ".")}


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imported(name, path, known) - {name} for name, path in found.items()}


def top_package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_package_has_a_layer():
    assert {top_package(name) for name in modules()} <= set(LAYER)


def test_no_module_imports_a_higher_layer():
    upward = [
        f"{name} ({top_package(name)}) imports {target} ({top_package(target)})"
        for name, targets in import_graph().items()
        for target in sorted(targets)
        if LAYER[top_package(target)] > LAYER[top_package(name)]
    ]
    assert not upward, "\n".join(upward)


def test_no_cycle_between_modules():
    assert not cycles(import_graph())


def test_no_cycle_between_packages():
    packages: dict[str, set[str]] = {}
    for name, targets in import_graph().items():
        packages.setdefault(top_package(name), set()).update(top_package(t) for t in targets if top_package(t) != top_package(name))
    assert not cycles(packages)


def test_the_checks_catch_a_cycle_and_an_upward_import():
    graph = {"expnet.models.a": {"expnet.network.b"}, "expnet.network.b": {"expnet.models.a"}}
    assert cycles(graph) == [["expnet.models.a", "expnet.network.b"]]
    assert LAYER[top_package("expnet.network.b")] > LAYER[top_package("expnet.models.a")]


def test_the_import_reader_sees_absolute_relative_and_in_function_imports(tmp_path):
    """The checks above pass on an empty graph, so the reader itself must find real edges."""
    graph = import_graph()
    assert {"expnet.cli.common", "expnet.corpus", "expnet.explainers", "expnet.report.html"} <= graph["expnet.cli.explain"]
    assert "expnet.network.model" in graph["expnet.explainers.learned"]
    source = tmp_path / "module.py"
    source.write_text(
        "from ..models import classifier\nfrom . import sibling\n"
        "def f():\n    import expnet.cli.main\n    from expnet.io import atomic_write_json\n"
    )
    known = {"expnet.models.classifier", "expnet.network.sibling", "expnet.cli.main", "expnet.io"}
    found = imported("expnet.network.module", source, known)
    assert found == {"expnet.models.classifier", "expnet.network.sibling", "expnet.cli.main", "expnet.io"}
