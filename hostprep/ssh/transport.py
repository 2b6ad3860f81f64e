"""The one I/O seam: SSH to a host with paramiko, configured as Fabric reads ~/.ssh/config.

Everything hostprep does on a host goes through :class:`Transport`. Its seams live beside it:
:mod:`hostprep.ssh.config` (SSH config, host keys, jump hosts), :mod:`hostprep.ssh.exec`
(the exec/stdin protocol: every value quoted here, never on a command line) and
:mod:`hostprep.ssh.sudo` (a sudo that needs a password is answered on the same channel).
"""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import paramiko

from hostprep.ssh.endpoint import Endpoint, endpoint_for
from hostprep.errors import AuthFailed, HostKeyRejected, TransportError, Unreachable
from hostprep.ssh.config import (
    auth_kwargs, connect_kwargs, fabric_config, host_key_client, jump_chain, last_hop, parse_hop, port_of,
    proxy_command, refusal, ssh_config,
)
from hostprep.ssh.exec import CommandResult, exec_plain, open_session, quote_argv, script_invocation
from hostprep.ssh.sudo import NO_PASSWORD, become_password, check_not_asked, exec_become

__all__ = [
    "AuthFailed", "CommandResult", "Endpoint", "HostKeyRejected", "Transport", "TransportError", "Unreachable",
    "connect_kwargs", "endpoint_for", "jump_chain", "parse_hop", "quote_argv", "script_invocation",
]

_IDLE_TICK = 1.0   # seconds between paramiko's idle checks on a connected session


@dataclass
class Transport:
    """An SSH session to one host. Use as a context manager."""

    endpoint: Endpoint
    _ssh: paramiko.SSHClient | None = field(default=None, init=False, repr=False)
    _via: "Transport | None" = field(default=None, init=False, repr=False)    # the last ProxyJump hop
    _port: int = field(default=22, init=False, repr=False)                    # the port dialled
    execs: int = field(default=0, init=False)

    def __enter__(self) -> "Transport":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sock(self, hostname: str, ssh: Mapping[str, Any]) -> Any:
        """A socket through ~/.ssh/config's ProxyJump hops (each verified like any host) or ProxyCommand."""
        ep = self.endpoint
        hops = jump_chain(ep, ssh)
        if not hops:
            return proxy_command(ep, ssh)
        self._via = Transport(last_hop(ep, hops))
        self._via.open()
        assert self._via._ssh is not None
        via = self._via._ssh.get_transport()
        assert via is not None
        return via.open_channel("direct-tcpip", (hostname, self._port), ("127.0.0.1", 0),
                                timeout=ep.connect_timeout)

    def open(self) -> None:
        """Connect, verifying the host key; retry briefly on network errors only."""
        if self._ssh is not None:
            return
        ep = self.endpoint
        ssh = ssh_config(ep.address)
        hostname = ssh.get("hostname", ep.address)
        self._port = port_of(ep, ssh)
        last: Exception | None = None
        for attempt in range(ep.connect_retries + 1):
            client = host_key_client(ep, hostname, self._port)
            try:
                kwargs = connect_kwargs(ep, ssh, fabric_config(), auth_kwargs(ep))
                sock = self._sock(hostname, ssh)
                if sock is not None:
                    kwargs["sock"] = sock
                client.connect(**kwargs)
            except (paramiko.SSHException, OSError, EOFError, TransportError) as exc:
                client.close()
                self._close_jump()
                if isinstance(exc, TransportError):   # a jump host refused, or a bad ProxyJump
                    raise
                fatal = refusal(ep, self._port, exc)
                if fatal is not None:
                    raise fatal from None
                last = exc
            else:
                self._connected(client)
                return
            if attempt < ep.connect_retries:
                time.sleep(0.3 * (attempt + 1))
        raise Unreachable(f"{ep.name}: cannot connect to {ep.address}:{self._port}: {last}") from None

    def _connected(self, client: paramiko.SSHClient) -> None:
        transport = client.get_transport()
        if transport is not None:
            # paramiko's reader thread wakes on every socket timeout (0.1 s) to look for a close;
            # once connected, a slower tick is plenty (close() below wakes it at once).
            transport.sock.settimeout(_IDLE_TICK)
        self._ssh = client

    def close(self) -> None:
        if self._ssh is not None:
            transport = self._ssh.get_transport()
            sock = transport.sock if transport is not None else None
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):   # ends the reader thread's recv() now, not at its next tick
                    sock.shutdown(socket.SHUT_RDWR)
            self._ssh.close()
            self._ssh = None
        self._close_jump()

    def _close_jump(self) -> None:
        if self._via is not None:
            self._via.close()
            self._via = None

    def run(
        self,
        argv: Sequence[str],
        *,
        sudo: bool = False,
        stdin: str | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Run argv (quoted here) on the host; never raises on a non-zero exit."""
        return self._exec(quote_argv(argv), sudo=sudo, stdin=stdin, timeout=timeout)

    def run_script(
        self,
        script: str,
        env: Mapping[str, str] | None = None,
        *,
        sudo: bool = False,
        timeout: float | None = None,
    ) -> CommandResult:
        """Run a fixed sh script in one exec; ``env``'s values go on stdin (see ``script_invocation``)."""
        command, payload = script_invocation(script, env)
        return self._exec(command, sudo=sudo, stdin=payload, timeout=timeout)

    def _exec(self, command: str, *, sudo: bool, stdin: str | None, timeout: float | None) -> CommandResult:
        self.open()
        ep = self.endpoint
        password = become_password(ep) if sudo else None
        if sudo and password is None:
            command = NO_PASSWORD + command
        started = time.monotonic()
        self.execs += 1
        try:
            chan = open_session(self._ssh, ep.connect_timeout)
            if password is not None:
                exited, stdout, stderr = exec_become(ep, chan, command, password, stdin, timeout)
            else:
                exited, stdout, stderr = exec_plain(chan, command, stdin, timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise Unreachable(f"{ep.name}: connection lost: {exc}") from None
        elapsed = time.monotonic() - started
        if sudo:
            check_not_asked(ep, stderr)
        return CommandResult(command, exited, stdout, stderr, elapsed)
