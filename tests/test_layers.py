"""The import layers: ``mmdrfuse`` (the core) < ``baselines`` < ``benchmarks`` / ``ablations``, and no cycle
between modules. A lower layer never imports a higher one, at module level or inside a function: the core finds the
compared methods through the ``mmdrfuse.methods`` entry points instead (see mmdrfuse/methods.py)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("mmdrfuse", "baselines", "benchmarks", "ablations")
LAYER = {"mmdrfuse": 0, "baselines": 1, "benchmarks": 2, "ablations": 2}


def _module(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """First-party modules imported by a file (module-level statements only, or every statement)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    me = _module(path)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                pkg = me.split(".") if path.name == "__init__.py" else me.split(".")[:-1]
                base = pkg[: len(pkg) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            names = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] in PACKAGES}
    return found


FILES = sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))
MODULES = {_module(p): p for p in FILES}


@pytest.mark.parametrize("path", FILES, ids=[_module(p) for p in FILES])
def test_no_import_of_a_higher_layer(path):
    mine = LAYER[_module(path).split(".")[0]]
    bad = sorted(m for m in _imports(path, top_level_only=False) if LAYER[m.split(".")[0]] > mine)
    assert not bad, f"{_module(path)} imports {bad} (a higher layer)"


def _known(name: str) -> str | None:
    """The first-party module an imported name belongs to (``benchmarks.report.STD_SUFFIX`` -> benchmarks.report)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    """module -> the first-party modules it imports. A submodule importing its own package is left out: the package
    is already initialising (or initialised) when its submodule runs."""
    def ancestor(pkg: str, m: str) -> bool:
        return m.startswith(pkg + ".")

    return {m: {k for k in map(_known, _imports(p, top_level_only)) if k and k != m and not ancestor(k, m)}
            for m, p in MODULES.items()}


def _first_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_first_cycle_finds_a_cycle():
    assert _first_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _first_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_module_level_import_cycle():
    cycle = _first_cycle(_graph(top_level_only=True))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_import_cycle_through_function_level_imports():
    """No cycle either when the imports inside functions count: two modules that need each other (even lazily)
    belong together, or what both need belongs in a third module."""
    cycle = _first_cycle(_graph(top_level_only=False))
    assert cycle is None, "import cycle (counting imports inside functions): " + " -> ".join(cycle)


def test_only_detection_yolo_touches_ultralytics():
    """Ultralytics patches process-wide state on import (PIL.Image.open, OMP_NUM_THREADS, its online checks):
    benchmarks.detection.yolo imports it with those undone, and no other module imports it."""
    def imports_ultralytics(path: Path) -> bool:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            if any(n.split(".")[0] == "ultralytics" for n in names):
                return True
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
                return True  # a dynamic import (yolo.versions: the torch and Ultralytics versions)
        return False

    assert [m for m, p in MODULES.items() if imports_ultralytics(p)] == ["benchmarks.detection.yolo"]
