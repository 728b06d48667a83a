"""The package's structure as docs/ARCHITECTURE.md draws it: each layer imports what its row says and only layers of
the rows above it, and no module imports itself back through others (imports inside functions count too)."""

from __future__ import annotations

import ast
import functools
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "soniquebay_assets"


@functools.cache
def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


@functools.cache
def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _layer(module: str) -> str:
    """`catalog` for soniquebay_assets.catalog.db, `settings` for soniquebay_assets.settings."""
    return module.split(".")[1]


def _module_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path):
            while imported and imported not in modules:  # a name imported from a module: the module
                imported = imported.rpartition(".")[0]
            if imported and imported != name and not name.startswith(imported + "."):
                targets.add(imported)
        graph[name] = targets
    return graph


def test_no_module_imports_itself_back_through_others():
    graph = _module_graph()
    on_path: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        on_path.append(module)
        for target in sorted(graph[module]):
            if target in on_path:
                circle = on_path[on_path.index(target):] + [target]
                raise AssertionError("import circle: " + " -> ".join(circle))
            if target not in done:
                visit(target)
        on_path.pop()
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module)


def _layer_table() -> list[tuple[list[str], set[str], set[str]]]:
    """(layers of the row, project layers it imports, other packages it imports) per row, top to bottom."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    table = text[text.index("| folder or module |"):].split("\n\n")[0].splitlines()[2:]
    rows = []
    for line in table:
        where, _what, imports = (cell.strip() for cell in line.strip().strip("|").rsplit("|", 2))
        layers = [re.sub(r"\.py$", "", name.strip("/").split("/")[-1])
                  for name in re.findall(r"`([^`]+)`", where)]
        project, _, others = imports.partition(";") if "`" in imports else ("", "", imports)
        rows.append((layers, set(re.findall(r"`([^`]+)`", project)),
                     {o.strip() for o in others.split(",") if o.strip() and o.strip() != "nothing"}))
    return rows


def test_each_layer_imports_what_the_architecture_says():
    std = set(sys.stdlib_module_names) | {"__future__"}
    actual_project: dict[str, set[str]] = {}
    actual_other: dict[str, set[str]] = {}
    for module, targets in _module_graph().items():
        if module == "soniquebay_assets":
            continue
        layer = _layer(module)
        # the package's face (its version) belongs to no layer
        actual_project.setdefault(layer, set()).update(
            _layer(t) for t in targets if t != "soniquebay_assets" and _layer(t) != layer)
        for imported in _imports(_modules()[module]):
            top = imported.split(".")[0]
            if top not in std and top != "soniquebay_assets":
                actual_other.setdefault(layer, set()).add(top)
    rows = _layer_table()
    described = [layer for layers, _, _ in rows for layer in layers]
    assert sorted(described) == sorted({_layer(m) for m in _modules() if m != "soniquebay_assets"})
    above: set[str] = set()
    for layers, project, others in rows:
        for layer in layers:
            assert actual_project.get(layer, set()) == project, (layer, sorted(actual_project.get(layer, set())))
            assert actual_other.get(layer, set()) == others, (layer, sorted(actual_other.get(layer, set())))
            assert project <= above, f"{layer} imports a layer of a row below it: {sorted(project - above)}"
        above.update(layers)
    assert not any("celery_app" in p or "cli" in p for layers, p, _ in rows if "cli" not in layers), \
        "nothing but the command line imports cli/, and nothing imports the worker's celery_app"
