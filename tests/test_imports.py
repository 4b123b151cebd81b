"""The package's modules import one another without a circle (issue 30).

Every import of an l2rules module counts, at module level and inside functions alike (an import
moved into a function to dodge a circle is still a circle), ``importlib.import_module("l2rules...")``
too, except those under ``TYPE_CHECKING``
(annotations only) and a module's import of its own parent package (already being imported).
A circle is found as a strongly connected component of the import graph (Tarjan's algorithm,
through graphlib's cycle error).
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "l2rules"


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
