''' The package's modules import each other in one direction only. '''
from __future__ import annotations

import ast
import os

import bokehsync

PACKAGE = os.path.dirname(bokehsync.__file__)


def _imports(path: str, module: str) -> set[str]:
    ''' The bokehsync modules ``module`` imports, at run time or for type checking. '''
    tree = ast.parse(open(path, encoding="utf-8").read())
    package = module.rsplit(".", 1)[0] if not path.endswith("__init__.py") else module
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
                found.add(target)
                if not node.module:
                    found.update(f"{base}.{alias.name}" for alias in node.names)
            elif node.module and node.module.startswith("bokehsync"):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("bokehsync"))
    return found


def _graph() -> dict[str, set[str]]:
    modules: dict[str, str] = {}
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                rel = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
                modules[rel.removesuffix(".__init__")] = path
    return {module: {m for m in _imports(path, module) if m in modules and m != module}
            for module, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    ''' One import cycle, as a path of module names, or None. '''
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None
    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles():
    ''' No bokehsync module imports, even for type checking, one that imports it back. '''
    graph = _graph()
    graph.pop("bokehsync", None)  # the package re-exports everything
    graph = {module: targets - {"bokehsync"} for module, targets in graph.items()}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_cycle_finder_finds_a_cycle():
    ''' The check above can fail: a two-module cycle is reported. '''
    assert _cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
