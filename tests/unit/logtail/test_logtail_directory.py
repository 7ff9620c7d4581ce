"""logtail/directory.py: only regular files directly inside LOG_DIR can be named."""

from __future__ import annotations

import os

import pytest

from logtail.directory import LogDirectory, acceptable_name


@pytest.fixture
def logs(tmp_path):
    root = tmp_path / "logs"
    root.mkdir()
    (root / "app.log").write_text("app\n")
    (root / "other.log").write_text("other\n")
    (root / ".hidden").write_text("hidden\n")
    (root / "sub").mkdir()
    (root / "sub" / "inner.log").write_text("inner\n")
    (tmp_path / "secret.txt").write_text("secret\n")
    (root / "current.log").symlink_to("app.log")
    (root / "escape.log").symlink_to(tmp_path / "secret.txt")
    (root / "dotdot.log").symlink_to("../secret.txt")
    (root / "to-hidden.log").symlink_to(".hidden")
    (root / "dangling.log").symlink_to("nowhere.log")
    (root / "loop.log").symlink_to("loop.log")
    (root / "outdir").symlink_to(tmp_path)
    os.mkfifo(root / "pipe.log")
    return LogDirectory(str(root))


def read(directory: LogDirectory, name: str) -> bytes | None:
    descriptor = directory.open(name)
    if descriptor is None:
        return None
    try:
        return os.read(descriptor, 100)
    finally:
        os.close(descriptor)


def test_lists_only_what_can_be_opened(logs):
    assert logs.names() == ["app.log", "current.log", "other.log"]


def test_opens_regular_files_and_symlinks_to_them_inside(logs):
    assert read(logs, "app.log") == b"app\n"
    assert read(logs, "current.log") == b"app\n"
    assert logs.identity("current.log") == logs.identity("app.log") is not None


@pytest.mark.parametrize("name", [
    "", ".", "..", "../secret.txt", "../../etc/passwd", "/etc/passwd", "sub/inner.log",
    "sub", "..\\secret.txt", "app.log\0", "app.log/", "./app.log", ".hidden", "%2e%2e",
    "escape.log", "dotdot.log", "to-hidden.log", "dangling.log", "loop.log", "outdir",
    "outdir/secret.txt", "pipe.log", "missing.log", "a" * 256, "app\nlog", "app\x7flog",
])
def test_everything_else_is_refused_the_same_way(logs, name):
    assert logs.open(name) is None
    assert logs.identity(name) is None


def test_a_missing_directory_lists_nothing(tmp_path):
    directory = LogDirectory(str(tmp_path / "absent"))
    assert directory.names() == []
    assert directory.open("app.log") is None


def test_a_relative_directory_is_fixed_when_created(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    directory = LogDirectory("logs")
    monkeypatch.chdir("/")
    assert directory.path == str(tmp_path / "logs")


@pytest.mark.parametrize(("name", "ok"), [
    ("access.log", True), ("app log 2.txt", True), ("журнал.log", True), (".x", False),
    ("a/b", False), ("a\\b", False), ("a\tb", False), ("a\u2028b", False),
])
def test_acceptable_names(name, ok):
    assert acceptable_name(name) is ok
