"""The exec/stdin protocol: how a command and its values cross one SSH exec channel.

Callers pass argv lists or a script plus an environment mapping; this module quotes every
value with :func:`shlex.quote`, so no inventory value is ever pasted into a remote shell
unquoted, and values never ride on a command line (see :func:`script_invocation`).
"""

from __future__ import annotations

import shlex
import socket
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import paramiko


@dataclass(frozen=True)
class CommandResult:
    """What one remote exec returned. ``command`` is for humans, never has secrets."""

    command: str
    exit_code: int
    stdout: str
    stderr: str
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def failed(self) -> bool:
        return not self.ok

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        short = self.command if len(self.command) < 60 else self.command[:57] + "..."
        return f"<CommandResult exit={self.exit_code} {short!r}>"


def quote_argv(argv: Sequence[str]) -> str:
    """Join argv into one shell-safe command line."""
    return " ".join(shlex.quote(str(a)) for a in argv)


# Before anything else, a host script fixes what the login's environment could redirect (root's
# /etc/environment, a login without sudo's env_reset): commands come from root-owned system dirs, and
# no DOCKER_HOST, COMPOSE_FILE, BASH_ENV, LD_PRELOAD or odd IFS steers what root runs.
PREAMBLE = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH; IFS=\" \t\n\"; "
            "unset ENV BASH_ENV CDPATH LD_PRELOAD LD_LIBRARY_PATH DOCKER_HOST DOCKER_CONTEXT DOCKER_CONFIG "
            "DOCKER_CERT_PATH DOCKER_TLS_VERIFY COMPOSE_FILE COMPOSE_PROJECT_NAME COMPOSE_PROFILES COMPOSE_ENV_FILES\n")


def script_invocation(script: str, env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(command line, stdin) that run ``script`` under ``/bin/sh`` with ``env`` set as shell variables.

    The command line holds only the fixed script. The values arrive on stdin as quoted
    assignments, read in full (``eval "$(cat)"``) before the script starts: never on a command
    line, where ``ps`` and sudo's log would show them (a .env with passwords, a snapshot of it)
    and where Linux caps one argument at 128 KiB. The script's own commands see an empty stdin.

    >>> command, stdin = script_invocation('echo "$X"', {"X": "a; rm -rf /"})
    >>> print(command.replace(PREAMBLE, "<PREAMBLE>"))
    /bin/sh -c '<PREAMBLE>eval "$(cat)"
    echo "$X"'
    >>> print(stdin)
    X='a; rm -rf /'
    <BLANKLINE>
    """
    for key in env or {}:
        if not key.replace("_", "").isalnum() or key[0].isdigit():
            raise ValueError(f"invalid shell variable name: {key!r}")
    assigns = "".join(f"{k}={shlex.quote(v)}\n" for k, v in (env or {}).items())
    return quote_argv(["/bin/sh", "-c", PREAMBLE + 'eval "$(cat)"\n' + script]), assigns


def open_session(client: paramiko.SSHClient | None, timeout: float) -> paramiko.Channel:
    """A new exec channel on a connected client."""
    transport = client.get_transport() if client is not None else None
    if transport is None:
        raise paramiko.SSHException("not connected")
    return transport.open_session(timeout=timeout)


def exec_plain(chan: paramiko.Channel, command: str, stdin: str | None, timeout: float | None) -> tuple[int, str, str]:
    """One exec channel, read to the end; cheap on the controller (no polling threads)."""
    try:
        chan.exec_command(command)
        return finish(chan, stdin, timeout)
    finally:
        chan.close()


def _read_all(recv: Any) -> bytes:
    chunks: list[bytes] = []
    while True:
        data = recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def finish(chan: paramiko.Channel, stdin: str | None, timeout: float | None) -> tuple[int, str, str]:
    """Send stdin, close it, read stdout then stderr to the end: blocking reads on paramiko's
    events, no polling. Our commands keep stderr far below the 2 MB channel window."""
    if stdin is not None:
        chan.sendall(stdin.encode())
    chan.shutdown_write()
    chan.settimeout(timeout)
    try:
        out = _read_all(chan.recv)
        err = _read_all(chan.recv_stderr)
    except socket.timeout:
        return 124, "", f"timed out after {timeout}s"
    return chan.recv_exit_status(), out.decode(errors="replace"), err.decode(errors="replace")
