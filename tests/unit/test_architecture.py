"""Imports run one way: blueprints → feature packages → streaming → http_policy (ARCHITECTURE.md).

The core never touches Flask, so a stream cannot hold a request context; no feature package
imports a blueprint or Flask's request globals; the proxy does not depend on the mock's demo
model; a blueprint uses no other blueprint but `common`. Every `.py` file under each package is
checked, however deep.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = "streaming"
POLICY = "http_policy"  # Flask-free too, and below the core: the core may use it
NOT_FEATURES = {CORE, POLICY, "blueprints", "tests", "bench", "testbed", "templates", "static",
                "docs", "deploy"}
FEATURES = sorted(
    path.name for path in ROOT.iterdir()
    if (path / "__init__.py").is_file() and path.name not in NOT_FEATURES
)


def _imported(path: Path) -> set[str]:
    """Absolute names of every module `path` imports, relative imports resolved."""
    package = path.relative_to(ROOT).parent.parts
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else ()
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            if not node.module:  # `from . import x` imports the submodule x
                names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _top_levels(path: Path) -> set[str]:
    return {name.split(".")[0] for name in _imported(path)}


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_there_are_feature_packages_to_check():
    assert {"generation", "llm"} <= set(FEATURES)


def test_core_imports_no_flask_no_feature_and_no_blueprint():
    files = _files(CORE)
    assert len(files) > 5
    forbidden = {"flask", "werkzeug", "blueprints", "app", *FEATURES}
    for path in files:
        wrong = _top_levels(path) & forbidden
        assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


def test_http_policy_imports_no_flask_no_core_no_feature_and_no_blueprint():
    forbidden = {"flask", "werkzeug", "blueprints", "app", CORE, *FEATURES}
    for path in _files(POLICY):
        wrong = _top_levels(path) & forbidden
        assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


@pytest.mark.parametrize("package", FEATURES)
def test_features_import_no_blueprint_and_no_request_globals(package):
    for path in _files(package):
        imported = _imported(path)
        wrong = {m for m in imported if m.split(".")[0] in {"blueprints", "app", "werkzeug"}}
        wrong |= {m for m in imported if m == "flask" and "request" in path.read_text()}
        assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


PROXY_MODULES = ("llm.wire", "llm.upstream", "llm.relay")


def _imported_through(module: str, package: str) -> set[str]:
    """What `module` imports, directly or through the other modules of `package` it imports."""
    seen: set[str] = set()
    names: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        path = ROOT / (current.replace(".", "/") + ".py")
        if current in seen or not path.is_file():
            continue
        seen.add(current)
        imported = _imported(path)
        names |= imported
        todo.extend(name for name in imported if name.split(".")[0] == package)
    return names


@pytest.mark.parametrize("module", PROXY_MODULES)
def test_the_proxy_does_not_depend_on_the_mock(module):
    """Only llm/mock.py (the mock's demo answers) may use the demo model."""
    imported = _imported_through(module, "llm")
    wrong = {m for m in imported if m.split(".")[0] == "generation" or m == "llm.mock"}
    assert not wrong, f"{module} imports {wrong}, directly or through another llm module"


def test_the_testbed_imports_nothing_of_the_app_and_bench_nothing_of_the_tests():
    """Real servers on loopback (testbed/) serve the tests and the benchmarks alike."""
    app = {"app", "wsgi", "config", "access_log", "blueprints", CORE, *FEATURES}
    for package, forbidden in (("testbed", {*app, "tests", "bench"}), ("bench", {"tests"})):
        for path in _files(package):
            wrong = _top_levels(path) & forbidden
            assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


def test_blueprints_import_no_other_blueprint_but_common():
    for path in _files("blueprints"):
        wrong = {m for m in _imported(path) if m.startswith("blueprints.")} - {"blueprints.common"}
        assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


def test_no_stream_with_context_anywhere():
    for path in ROOT.rglob("*.py"):
        if ".venv" in path.parts or path.name == "test_architecture.py":
            continue
        assert "stream_with_context" not in path.read_text(), path


def test_resolves_relative_imports():
    """The checker itself: a relative import is seen under its absolute name."""
    assert "streaming.cancellation" in _imported(ROOT / "streaming" / "disconnect.py")
