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


def test_no_module_level_import_cycle():
    def known(name: str) -> str | None:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        return name or None

    def ancestor(pkg: str, m: str) -> bool:  # a submodule may import its own package (already initialising)
        return m.startswith(pkg + ".")

    graph = {m: {k for k in map(known, _imports(p, top_level_only=True)) if k and k != m and not ancestor(k, m)}
             for m, p in MODULES.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
