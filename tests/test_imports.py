"""The package's modules import one another without a circle, and only from the layers they may (issue 30).

Every import of an l2rules module counts, at module level and inside functions alike (an import
moved into a function to dodge a circle is still a circle), ``importlib.import_module("l2rules...")``
too, except those under ``TYPE_CHECKING``
(annotations only) and a module's import of its own parent package (already being imported).
A circle is found as a strongly connected component of the import graph (Tarjan's algorithm,
through graphlib's cycle error). The layers are :data:`LAYERS`, the table docs/development.md shows.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "l2rules"
DEVELOPMENT = PACKAGE.parents[1] / "docs" / "development.md"

#: The architecture's layers, lowest first: each one's modules (a name stands for a module, or a package
#: and every module in it; ``__init__`` is the package ``l2rules`` itself) and the layers they may import
#: besides their own (``*``: every layer before it). docs/development.md shows this table, and the picture.
LAYERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "foundation": (("config", "console", "_lazy"), ()),
    "operators": (("operators",), ()),
    "schema": (("schema",), ("operators",)),
    "outputs": (("outputs",), ("foundation",)),
    "migrate": (("migrate",), ("foundation", "schema")),
    "points": (("points",), ("foundation", "schema")),
    "catalog": (("catalog", "_revision_template"), ("foundation", "operators", "schema", "outputs", "migrate",
                                                    "points")),
    "published": (("published",), ("foundation", "operators", "schema", "outputs", "migrate", "points",
                                   "catalog")),
    "inventory": (("inventory",), ("foundation", "schema", "outputs", "migrate")),
    "association": (("association",), ("foundation", "operators", "schema", "outputs", "migrate", "points",
                                       "catalog", "published", "inventory")),
    "worklist": (("worklist",), ("foundation", "schema", "outputs", "migrate", "points", "catalog", "published",
                                 "inventory", "association")),
    "runs": (("runs",), ("foundation", "schema", "outputs", "migrate", "points", "published", "inventory",
                         "worklist")),
    "report": (("report",), ("foundation", "schema", "outputs", "migrate", "runs")),
    "library": (("__init__", "database"), ("*",)),
    "cli": (("cli", "_fits_cli", "__main__"), ("*",)),
    "tools": (("conformance", "plans"), ("*",)),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imported(module: str, path: Path) -> set[str]:
    """The l2rules modules ``module`` imports anywhere but under ``if TYPE_CHECKING``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def add(target: str) -> None:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c imports a and a.b first
            name = ".".join(parts[:i])
            if name in MODULES and name != module and not module.startswith(name + "."):
                found.add(name)

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                add(submodule if submodule in MODULES else target)
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and isinstance(node.args[0].value, str)):
            add(node.args[0].value)  # importlib.import_module("l2rules.worklist"): an import all the same
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def test_the_import_graph_has_no_circle():
    graph = {module: _imported(module, path) for module, path in MODULES.items()}
    assert "l2rules.published" in graph["l2rules.worklist"]  # (the graph is read: a known edge)
    assert "l2rules.association" in graph["l2rules.worklist"]
    assert "l2rules.worklist" in graph["l2rules.database"]  # (by importlib.import_module)
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import circle: {' -> '.join(exc.args[1])}")
    assert set(order) == set(MODULES)


def test_a_circle_is_found(tmp_path, monkeypatch):
    """The check itself: two modules importing each other inside functions are a circle."""
    package = tmp_path / "l2rules"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from . import b\n")
    (package / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import c\n"
                                  "def g():\n    from .a import f\n")
    (package / "c.py").write_text("from . import b\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["x"]), "PACKAGE", package)
    modules = {_module_name(path): path for path in package.rglob("*.py")}
    monkeypatch.setattr(__import__(__name__, fromlist=["x"]), "MODULES", modules)
    graph = {module: _imported(module, path) for module, path in modules.items()}
    assert graph["l2rules.a"] == {"l2rules.b"} and graph["l2rules.b"] == {"l2rules.a"}
    assert graph["l2rules.c"] == {"l2rules.b"}  # (b's import of c is for annotations only)
    with pytest.raises(graphlib.CycleError):
        list(graphlib.TopologicalSorter(graph).static_order())


def test_the_version_is_kept_once():
    """``__version__`` is the one place; the package metadata (hatch's dynamic version) is read from it."""
    import re
    from importlib import metadata

    import l2rules

    # (the [project] table read by pattern: tomllib is Python 3.11's, and l2rules runs on 3.10)
    project = (PACKAGE.parents[1] / "pyproject.toml").read_text().split("[project]", 1)[1].split("\n[", 1)[0]
    assert re.search(r'^dynamic = \["version"\]', project, re.M) and not re.search(r"^version\s*=", project, re.M)
    assert metadata.version("l2rules") == l2rules.__version__


def _layer_of(module: str) -> str | None:
    """The layer of an l2rules module: the one whose entry names it, or the longest package holding it."""
    name = module.removeprefix("l2rules").removeprefix(".") or "__init__"
    found = [(len(entry), layer) for layer, (entries, _) in LAYERS.items() for entry in entries
             if name == entry or name.startswith(entry + ".")]
    return max(found)[1] if found else None


def _may_import(layer: str) -> set[str]:
    order = list(LAYERS)
    allowed = LAYERS[layer][1]
    return set(order[:order.index(layer)]) if "*" in allowed else set(allowed)


def _wrong_imports(graph: dict[str, set[str]]) -> list[str]:
    """The imports of ``graph`` the layers do not allow, and the modules in no layer."""
    wrong = []
    for module, targets in sorted(graph.items()):
        layer = _layer_of(module)
        if layer is None:
            wrong.append(f"{module}: in no layer (add it to LAYERS and to docs/development.md)")
            continue
        for target in sorted(targets):
            other = _layer_of(target)
            if other != layer and other not in _may_import(layer):
                wrong.append(f"{module} ({layer}) imports {target} ({other})")
    return wrong


def test_each_module_imports_only_from_the_layers_it_may():
    order = list(LAYERS)
    for layer, (_, allowed) in LAYERS.items():  # the picture is an order: a layer imports only earlier ones
        assert all(order.index(other) < order.index(layer) for other in allowed if other != "*"), layer
    graph = {module: _imported(module, path) for module, path in MODULES.items()}
    assert _layer_of("l2rules.runs.lock") == "runs" and _layer_of("l2rules") == "library"
    assert _layer_of("l2rules.inventory.columnar.read") == "inventory"
    assert not _wrong_imports(graph), "\n".join(_wrong_imports(graph))


def test_a_wrong_import_is_found():
    """The check itself: the schema importing the CLI breaks the layers, and a module no layer names is one too."""
    assert _wrong_imports({"l2rules.schema": {"l2rules.cli"}, "l2rules.cli": {"l2rules.schema"}}) == [
        "l2rules.schema (schema) imports l2rules.cli (cli)"]
    assert _wrong_imports({"l2rules.report": {"l2rules.worklist"}}) == [
        "l2rules.report (report) imports l2rules.worklist (worklist)"]
    assert _wrong_imports({"l2rules.newthing": set()}) == [
        "l2rules.newthing: in no layer (add it to LAYERS and to docs/development.md)"]


def layers_table() -> str:
    """:data:`LAYERS` as the Markdown table docs/development.md shows."""
    rows = ["| layer | modules | may import |", "| --- | --- | --- |"]
    for layer, (entries, allowed) in LAYERS.items():
        modules = ", ".join("`l2rules`" if entry == "__init__" else f"`{entry}`" for entry in entries)
        may = "every layer before it" if "*" in allowed else ", ".join(allowed) or "-"
        rows.append(f"| {layer} | {modules} | {may} |")
    return "\n".join(rows) + "\n"


def test_the_development_page_shows_the_layers():
    assert layers_table() in DEVELOPMENT.read_text()
