"""The core never touches Flask (streaming/README.md): a stream must not hold a request
context, so nothing under streaming/ may import flask or use stream_with_context."""

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "streaming"


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_modules_do_not_import_flask():
    modules = sorted(CORE.glob("*.py"))
    assert len(modules) > 5
    for path in modules:
        flaskish = {m for m in _imported_modules(path) if m.split(".")[0] in {"flask", "werkzeug"}}
        assert not flaskish, f"{path.name} imports {flaskish}"


def test_no_stream_with_context_anywhere():
    root = CORE.parent
    for path in [*root.glob("*.py"), *root.glob("blueprints/*.py"), *CORE.glob("*.py")]:
        assert "stream_with_context" not in path.read_text(), path
