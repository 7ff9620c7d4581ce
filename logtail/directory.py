"""The log files a client may name: regular files directly inside LOG_DIR, nothing else.

A name comes straight from the URL (gunicorn has already percent-decoded it once; nothing here
decodes again, so `%2e%2e` is just a strange file name). Every way out is refused with the same
`None`, so a caller cannot tell "missing" from "forbidden" and learns nothing about what exists
outside the directory:

- names that are empty, start with `.` (so `.`, `..` and hidden files), hold `/`, `\\`, NUL or
  any other unprintable character, or are longer than 255 characters;
- anything that is not a regular file (directories, FIFOs, devices, sockets);
- symlinks, unless their target is itself an acceptable file directly inside the directory
  (`current.log -> app.log` works; `escape.log -> /etc/passwd` does not).

The file is then opened with `O_NOFOLLOW` relative to the directory's descriptor, so a symlink
swapped in between the check and the open is refused too. Calls do a few local syscalls each
and never wait on anything.
"""

from __future__ import annotations

import os
import stat

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def acceptable_name(name: str) -> bool:
    """Whether `name` could name a log: one printable path component, not hidden."""
    return (0 < len(name) <= 255 and name.isprintable() and not name.startswith(".")
            and "/" not in name and "\\" not in name)


class LogDirectory:
    """The regular files directly inside `path`, by name. Shared by a worker's greenlets."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)

    def names(self) -> list[str]:
        """The names `open` accepts now, sorted; empty if the directory does not exist."""
        try:
            entries = [entry.name for entry in os.scandir(self.path)]
        except OSError:
            return []
        return sorted(name for name in entries if self.stat(name) is not None)

    def stat(self, name: str) -> os.stat_result | None:
        """The file `name` stands for now (not following a last symlink), or None if it is
        not a log."""
        found = self._locate(name)
        if found is None:
            return None
        root, target = found
        try:
            info = os.stat(os.path.join(root, target), follow_symlinks=False)
        except (OSError, ValueError):
            return None
        return info if stat.S_ISREG(info.st_mode) else None

    def identity(self, name: str) -> tuple[int, int] | None:
        """(device, inode) of the file `name` stands for now, or None if it is not a log."""
        info = self.stat(name)
        return None if info is None else (info.st_dev, info.st_ino)

    def open(self, name: str) -> int | None:
        """A read-only descriptor of the log `name` (the caller closes it), or None."""
        found = self._locate(name)
        if found is None:
            return None
        root, target = found
        try:
            directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.stat(target, dir_fd=directory,
                                        follow_symlinks=False).st_mode):
                return None  # checked before opening: opening a FIFO or device has effects
            descriptor = os.open(target, _OPEN_FLAGS, dir_fd=directory)
        except (OSError, ValueError):
            return None
        finally:
            os.close(directory)
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):  # replaced between stat and open
            os.close(descriptor)
            return None
        return descriptor

    def _locate(self, name: str) -> tuple[str, str] | None:
        """(the directory's real path, the real name of the file `name` leads to) or None."""
        if not acceptable_name(name):
            return None
        root = os.path.realpath(self.path)
        real = os.path.realpath(os.path.join(root, name))
        target = os.path.basename(real)
        if os.path.dirname(real) != root or not acceptable_name(target):
            return None
        return root, target
