"""The layout's rules, checked over every module's imports (docs/design.md, "Layout").

procl's modules form layers that data flows up through: data -> features -> model and
selection -> train -> infer and decode -> runs -> app and bench. A module imports only
from its own layer or below (no arrow back up), no two modules import each other
through any chain (no circle), and the library never imports streamlit (but for the
bench's timing of the app's Explore page, which runs the app).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "procl"

# Each module's layer, lowest first; a module may import from layers <= its own.
LAYERS = [
    ["procl", "procl.io", "procl.paths", "procl.metrics", "procl.words"],
    ["procl.data"],
    ["procl.features", "procl.dist"],
    ["procl.model", "procl.selection", "procl.decode", "procl.task_head"],
    ["procl.config", "procl.runs", "procl.names", "procl.baselines"],
    ["procl.corrections"],
    ["procl.infer"],
    ["procl.evaluate", "procl.train"],
    ["procl.explore", "procl.procedure", "procl.viz", "procl.jobs", "procl.upload", "procl.refine",
     "procl.framemap", "procl.choosek"],
    ["procl.bench", "procl.cli", "procl.__main__"],
]
STREAMLIT_ALLOWED = {"procl.bench.explore_page"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[str, bool]]:
    """(module imported, at the module's top level) for every import of one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, id(node) in top))
            # `from procl import runs` imports the module procl.runs
            found += [(f"{node.module}.{alias.name}", id(node) in top) for alias in node.names]
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def procl_modules(name: str) -> set[str]:
    """The procl modules `name` imports (a from-import of a name resolves to its module)."""
    return {m for m, _ in imports(MODULES[name]) if m in MODULES and m != name}


def layer(name: str) -> int:
    """The layer of a module: that of its longest listed prefix."""
    best = None
    for i, group in enumerate(LAYERS):
        for prefix in group:
            covers = name == prefix or (prefix != "procl" and name.startswith(prefix + "."))  # the package alone
            if covers and (best is None or len(prefix) > best[1]):
                best = (i, len(prefix))
    assert best is not None, f"{name} is in no layer of tests/test_structure.py: add it where it belongs"
    return best[0]


def test_every_module_has_a_layer():
    for name in MODULES:
        layer(name)
    stale = [m for group in LAYERS for m in group if m not in MODULES]
    assert not stale, f"LAYERS names modules that no longer exist: {stale}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_arrow_back_up(name):
    up = sorted(m for m in procl_modules(name) if layer(m) > layer(name))
    assert not up, f"{name} (layer {layer(name)}) imports from a higher layer: {up}"


def test_no_import_circle():
    graph = {name: procl_modules(name) for name in MODULES}
    # a package's __init__ importing its own submodules is how packages work: not a circle
    graph = {n: {m for m in deps if not (m.startswith(n + ".") and MODULES[n].name == "__init__.py")}
             for n, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_procl_never_imports_streamlit():
    for name, path in MODULES.items():
        if name in STREAMLIT_ALLOWED:
            continue
        assert not any(m == "streamlit" or m.startswith("streamlit.") for m, _ in imports(path)), name


def test_procl_imports_sit_at_the_top():
    """An import of a procl module inside a function hides an arrow: they sit at the top."""
    inner = sorted(f"{name} imports {m}" for name, path in MODULES.items()
                   for m, at_top in imports(path) if not at_top and m.split(".")[0] == "procl")
    assert not inner, inner
