"""The package's layering: every import points down, command modules never import each other,
and no two modules import each other (directly or through others).

Imports inside functions count: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "nasflow"

# Lowest first: a package may import itself and the packages before it, never one after it.
LAYERS = (
    "core",
    "space",
    "data",
    "config",
    "model",
    "efficiency",
    "evaluate",
    "train",
    "tfs",
    "llm",
    "predictors",
    "zero_cost",
    "search",
    "lts",
    "text_prediction",
    "cluster",
    "report",
    "api",
    "cli",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The module `name` refers to (an attribute of a module resolves to the module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> set[str]:
    """The nasflow modules `module` imports, anywhere in its body."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names = [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            target = _resolve(name) if name.startswith("nasflow") else None
            if target and target != module:
                found.add(target)
    return found


GRAPH = {module: _imports(module) for module in MODULES}


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_package_has_a_layer() -> None:
    packages = {_package(m) for m in MODULES} - {None}
    assert packages <= set(LAYERS), sorted(packages - set(LAYERS))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    own = _package(module)
    if own is None:  # nasflow/__init__.py: the version only
        assert GRAPH[module] == set()
        return
    upward = [
        target
        for target in GRAPH[module]
        if _package(target) is not None and LAYERS.index(_package(target)) > LAYERS.index(own)
    ]
    assert upward == [], f"{module} imports packages above it: {upward}"


def test_command_modules_import_the_library_never_each_other() -> None:
    crossing = {
        module: sorted(t for t in targets if t.startswith("nasflow.cli."))
        for module, targets in GRAPH.items()
        if module.startswith("nasflow.cli.")
    }
    assert {m: t for m, t in crossing.items() if t} == {}


def test_no_import_cycles() -> None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert cycles == []
