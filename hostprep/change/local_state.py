"""The controller's own state dir: private (0700 dirs, 0600 files), atomic, never a path from a host.

Snapshots hold the bytes of files hostprep edits (a .env with passwords), so every directory
from the state root down is 0700 and every file 0600 from the moment it exists: content goes
to a ``mkstemp`` file (unpredictable name, O_EXCL, 0600) in the target's directory, flushed to
disk, then renamed over the target (the rename flushed too), as ansible-core's ``atomic_move``
does. A host name becomes a directory only after :func:`host_dir` accepted it.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

_HOST_DIR = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,252}")


class StateError(ValueError):
    """A name that must not become a path under the controller's state dir."""


def controller_dir() -> Path:
    """Local state directory (HOSTPREP_STATE_DIR, default ~/.local/state/hostprep)."""
    return Path(os.environ.get("HOSTPREP_STATE_DIR") or Path.home() / ".local/state/hostprep")


def host_dir(host: str) -> Path:
    """``<state>/hosts/<host>``, for a host name that is one plain path component.

    >>> try:
    ...     host_dir("../../etc")
    ... except StateError as exc:
    ...     print(exc)
    host name '../../etc' cannot name a state directory
    """
    if not isinstance(host, str) or not _HOST_DIR.fullmatch(host) or ".." in host:
        raise StateError(f"host name {str(host)[:80]!r} cannot name a state directory")
    return controller_dir() / "hosts" / host


def private_dir(path: Path) -> Path:
    """Create ``path`` and its parents below the state root as 0700; tighten ones that exist."""
    root = controller_dir()
    chain = [path, *path.parents]
    todo = [p for p in chain if p == root or root in p.parents]
    root.parent.mkdir(parents=True, exist_ok=True)
    for p in reversed(todo):
        try:
            p.mkdir(mode=0o700)
        except FileExistsError:
            if p.is_symlink() or not p.is_dir():
                raise StateError(f"{p} is not a directory hostprep made") from None
            if p.stat().st_mode & 0o077:
                os.chmod(p, 0o700)
    return path


def write_private(path: Path, text: str) -> Path:
    """Replace ``path`` atomically with a 0600 file (mkstemp in its directory, then rename)."""
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)   # the rename itself survives a power loss
    return path


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_private(path: Path, line: str) -> None:
    """Append one line to a 0600 file (created so; never through a link), in one write."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
        os.write(fd, line.encode())
    finally:
        os.close(fd)
