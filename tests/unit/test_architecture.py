"""Imports run one way: blueprints → feature packages → streaming → http_policy
(docs/architecture.md).

The core never touches Flask, so a stream cannot hold a request context; no feature package
imports a blueprint or Flask's request globals; the proxy does not depend on the mock's demo
model; a blueprint uses no other blueprint, only the modules the blueprints share; only the
OpenAI-compatible blueprints (proxy, mock) reach `llm.wire` and the OpenAI error translation.
Every `.py` file under each package is checked, however deep.
"""

from __future__ import annotations

import ast
import re
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
    """The package's own modules: not what a build left under it (bench/build is ignored)."""
    return sorted(path for path in (ROOT / package).rglob("*.py")
                  if "build" not in path.relative_to(ROOT).parts)


def test_there_are_feature_packages_to_check():
    assert {"generation", "llm"} <= set(FEATURES)


def test_core_imports_no_flask_no_feature_and_no_blueprint():
    files = _files(CORE)
    assert len(files) > 5
    forbidden = {"flask", "werkzeug", "blueprints", "app", "services", *FEATURES}
    for path in files:
        wrong = _top_levels(path) & forbidden
        assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


def test_http_policy_imports_no_flask_no_feature_and_no_blueprint():
    """Below the features, like the core, and below the core too (which raises its
    InvalidParameter): it needs nothing of streaming."""
    files = _files(POLICY)
    assert len(files) > 3
    forbidden = {"flask", "werkzeug", "blueprints", "app", "services", CORE, *FEATURES}
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
        above = {"blueprints", "app", "services", "werkzeug"}
        wrong = {m for m in imported if m.split(".")[0] in above}
        wrong |= {m for m in imported if m == "flask" and "request" in path.read_text()}
        assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


PROXY_MODULES = ("llm.wire", "llm.upstream", "llm.relay")


def _imported_through(module: str, *packages: str) -> set[str]:
    """What `module` imports, directly or through the other modules of `packages` it imports."""
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
        todo.extend(name for name in imported if name.split(".")[0] in packages)
    return names


@pytest.mark.parametrize("module", PROXY_MODULES)
def test_the_proxy_does_not_depend_on_the_mock(module):
    """Only llm/mock.py (the mock's demo answers) may use the demo model."""
    imported = _imported_through(module, "llm")
    wrong = {m for m in imported if m.split(".")[0] == "generation" or m == "llm.mock"}
    assert not wrong, f"{module} imports {wrong}, directly or through another llm module"


THE_APP = {"app", "wsgi", "config", "services", "blueprints", CORE, POLICY, *FEATURES}


@pytest.mark.parametrize(("package", "forbidden"), [
    # Real servers on loopback serve the tests and the benchmarks alike.
    ("testbed", {*THE_APP, "tests", "bench"}),
    ("bench", {"tests"}),
    # Loaded by the gunicorn master before any worker is forked and patched.
    ("serving", {*THE_APP - {"serving"}, "flask", "werkzeug", "tests", "testbed"}),
])
def test_a_package_imports_nothing_it_must_not(package, forbidden):
    for path in _files(package):
        wrong = _top_levels(path) & forbidden
        assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


SHARED_BY_BLUEPRINTS = {
    f"blueprints.{name}" for name in ("errors", "bodies", "slots", "responses", "openai_errors",
                                          "access")
}
OPENAI_COMPATIBLE = {"blueprints.proxy", "blueprints.mock_openai", "blueprints.openai_errors"}
OPENAI_ONLY = {"llm.wire", "blueprints.openai_errors"}


def _blueprint_modules() -> list[str]:
    return [".".join(path.relative_to(ROOT).with_suffix("").parts)
            for path in _files("blueprints") if path.name != "__init__.py"]


def test_the_shared_modules_exist():
    assert set(_blueprint_modules()) >= SHARED_BY_BLUEPRINTS | OPENAI_COMPATIBLE


def test_blueprints_import_no_other_blueprint_only_the_shared_modules():
    for path in _files("blueprints"):
        imported = {m for m in _imported(path) if m.startswith("blueprints.")}
        wrong = imported - SHARED_BY_BLUEPRINTS
        assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


@pytest.mark.parametrize("module", sorted(set(_blueprint_modules()) - OPENAI_COMPATIBLE))
def test_only_the_openai_compatible_blueprints_use_the_openai_wire(module):
    """Pages, chat, channels... do not depend on the proxy's wire format, even indirectly."""
    imported = _imported_through(module, "blueprints", "llm")
    wrong = imported & OPENAI_ONLY
    assert not wrong, f"{module} imports {wrong}, directly or through another module"


def test_no_stream_with_context_anywhere():
    for path in ROOT.rglob("*.py"):
        if ".venv" in path.parts or path.name == "test_architecture.py":
            continue
        assert "stream_with_context" not in path.read_text(), path


def test_resolves_relative_imports():
    """The checker itself: a relative import is seen under its absolute name."""
    assert "streaming.cancellation" in _imported(ROOT / "streaming" / "disconnect.py")


def test_services_are_looked_up_through_their_accessor_only():
    """`services()` is typed; a string key of `app.extensions` fails only on a request."""
    allowed = {ROOT / "services.py", ROOT / "broker" / "auto.py"}
    packages = ["blueprints", "bench", "serving", "tests", *FEATURES]
    files = [ROOT / "app.py", ROOT / "gunicorn.conf.py",
             *(path for package in packages for path in _files(package))]
    lookup = re.compile(r"""extensions["']?\s*(\[|\.get\(|,)""")  # [key], .get(key), getattr
    for path in files:
        if path not in allowed and path != Path(__file__).resolve():
            assert not lookup.search(path.read_text()), path.relative_to(ROOT)


def test_generation_depends_on_no_other_feature():
    """The model interface and the demo model sit below every feature that uses them (the
    mock, the upstream backend, generations): a backend of `llm` implements it, never the
    reverse, so no feature cycle can form."""
    others = set(FEATURES) - {"generation"}
    for path in _files("generation"):
        wrong = {m for m in _imported(path) if m.split(".")[0] in others}
        assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"
