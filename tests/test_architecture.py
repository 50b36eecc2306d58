"""The shape of the package itself: one Keras-free configuration module, no import cycle, short functions."""

import ast
import pathlib
import sys

import pytest

import keras_resnext as kr

PACKAGE = pathlib.Path(kr.__file__).parent
MAX_FUNCTION_LINES = 50  # code lines, docstring excluded
# Functions allowed to be longer, with the reason a reader would accept.
LONG_FUNCTIONS = {}


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path):
    """Every keras_resnext module `path` imports, at any depth of the file (deferred imports too).

    `from package import submodule` counts as importing the submodule; a package's
    own `__init__`, which Python runs before any of its submodules, is not an edge.
    """
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                     for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def test_the_configuration_module_imports_no_keras():
    tree = ast.parse((PACKAGE / "config.py").read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= set(sys.stdlib_module_names), imported


def test_the_package_has_no_import_cycle():
    graph = {name: _imports(path) - {name} for name, path in MODULES.items()}
    assert graph["keras_resnext.config"] == set()
    assert "keras_resnext.models" not in graph["keras_resnext.flops"]
    assert not {"keras_resnext.models", "keras_resnext.flops"} & graph["keras_resnext.layers"]
    visiting, done = [], set()

    def visit(name):
        if name in done:
            return
        assert name not in visiting, "import cycle: " + " -> ".join(visiting[visiting.index(name):] + [name])
        visiting.append(name)
        for dependency in graph[name]:
            visit(dependency)
        visiting.pop()
        done.add(name)

    for name in graph:
        visit(name)


def _long_functions():
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                body = node.body
                if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                    lines -= body[0].end_lineno - body[0].lineno + 1
                if lines > MAX_FUNCTION_LINES and f"{name}.{node.name}" not in LONG_FUNCTIONS:
                    yield f"{name}.{node.name}: {lines} lines"


def test_no_function_is_longer_than_fifty_lines():
    assert list(_long_functions()) == []


def test_public_surface_agrees_with_itself():
    lazy = set(kr._LAZY_MODULES)
    assert lazy <= set(kr.__all__) and lazy <= set(dir(kr))
    assert set(kr.__all__) <= set(dir(kr))
    for name in kr.__all__:
        assert getattr(kr, name) is not None, name
    with pytest.raises(AttributeError):
        kr.not_a_module
