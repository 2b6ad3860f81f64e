"""The one I/O seam: SSH to a host with paramiko, configured as Fabric reads ~/.ssh/config.

Everything hostprep does on a host goes through :class:`Transport`. Callers
pass argv lists or a script plus an environment mapping; this module quotes
every value with :func:`shlex.quote`, so no inventory value is ever pasted
into a remote shell unquoted. Host keys are verified against a known_hosts
file, at every ProxyJump hop too; unknown keys are refused unless
``accept_new`` is set, which behaves like OpenSSH's ``StrictHostKeyChecking=accept-new``.

Sessions are opened with the ``SSHClient.connect`` call Fabric's ``Connection``
would make (HostName, User, IdentityFile, ProxyJump, ProxyCommand from the SSH
config), without building a ``Connection`` per host: that cost ~2.5 ms of
controller CPU per host. Values never ride on a command line (see
``script_invocation``); a sudo that needs a password is answered on the same channel.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import socket
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import paramiko
from fabric import Config


_IDLE_TICK = 1.0   # seconds between paramiko's idle checks on a connected session


class TransportError(Exception):
    """A host could not be used: connection, authentication or become failed."""


class Unreachable(TransportError):
    """No SSH session could be opened (refused, timed out, no route)."""


class HostKeyRejected(TransportError):
    """The host's key is unknown (and accept-new is off) or has changed."""


class AuthFailed(TransportError):
    """SSH authentication or sudo (become) failed."""


@dataclass(frozen=True)
class Endpoint:
    """How to reach one host. Secrets are never stored here, only env var names."""

    name: str
    address: str
    port: int | None = None   # None: ~/.ssh/config's Port, else 22
    user: str | None = None
    key_file: str | None = None
    known_hosts: str | None = None
    connect_timeout: float = 10.0
    accept_new: bool = False
    become_password_env: str | None = None
    connect_retries: int = 2
    jump: str | None = None   # ProxyJump chain for this hop, instead of ~/.ssh/config's ("": none)

    @property
    def known_hosts_path(self) -> Path:
        return Path(self.known_hosts or "~/.ssh/known_hosts").expanduser()

    def __repr__(self) -> str:
        who = f"{self.user}@" if self.user else ""
        return f"<Endpoint {self.name} {who}{self.address}:{self.port or '-'}>"


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


class _AcceptNewPolicy(paramiko.MissingHostKeyPolicy):
    """Accept and record an unknown key; a changed key still raises in paramiko."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as fh:
            fh.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


def quote_argv(argv: Sequence[str]) -> str:
    """Join argv into one shell-safe command line."""
    return " ".join(shlex.quote(str(a)) for a in argv)


def script_invocation(script: str, env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(command line, stdin) that run ``script`` under ``sh`` with ``env`` set as shell variables.

    The command line holds only the fixed script. The values arrive on stdin as quoted
    assignments, read in full (``eval "$(cat)"``) before the script starts: never on a command
    line, where ``ps`` and sudo's log would show them (a .env with passwords, a snapshot of it)
    and where Linux caps one argument at 128 KiB. The script's own commands see an empty stdin.

    >>> command, stdin = script_invocation('echo "$X"', {"X": "a; rm -rf /"})
    >>> print(command)
    sh -c 'eval "$(cat)"
    echo "$X"'
    >>> print(stdin)
    X='a; rm -rf /'
    <BLANKLINE>
    """
    for key in env or {}:
        if not key.replace("_", "").isalnum() or key[0].isdigit():
            raise ValueError(f"invalid shell variable name: {key!r}")
    assigns = "".join(f"{k}={shlex.quote(v)}\n" for k, v in (env or {}).items())
    return quote_argv(["sh", "-c", 'eval "$(cat)"\n' + script]), assigns


@functools.lru_cache(maxsize=32)
def _known_hosts(path: str, mtime_ns: int) -> paramiko.HostKeys:
    """A known_hosts file parsed once per version of the file."""
    return paramiko.HostKeys(path)


@functools.lru_cache(maxsize=32)
def _private_key(path: str, mtime_ns: int) -> paramiko.PKey | None:
    """An unencrypted private key, loaded once for the whole fleet (None: let paramiko ask/try)."""
    try:
        return paramiko.PKey.from_path(path)
    except (paramiko.SSHException, OSError, ValueError):
        return None


def _aead_first(sock: Any, **kwargs: Any) -> paramiko.Transport:
    """A paramiko Transport that offers AES-GCM first (OpenSSH 6.2+ has it; others fall back to the rest).

    GCM is authenticated encryption done in C; the ctr+hmac pairs cost a pure-Python MAC
    comparison per packet on the controller.
    """
    t = paramiko.Transport(sock, **kwargs)
    opts = t.get_security_options()
    gcm = tuple(c for c in opts.ciphers if c.endswith("-gcm@openssh.com"))
    opts.ciphers = gcm + tuple(c for c in opts.ciphers if c not in gcm)
    return t


@functools.lru_cache(maxsize=1)
def _fabric_config() -> Config:
    """Fabric's config (its files and ~/.ssh/config, or $HOSTPREP_SSH_CONFIG), loaded once per process."""
    return Config(runtime_ssh_path=os.environ.get("HOSTPREP_SSH_CONFIG") or None)


@functools.lru_cache(maxsize=4096)
def _ssh_config(address: str) -> paramiko.SSHConfigDict:
    """What ~/.ssh/config says for one address, as Fabric reads it (looked up once per address)."""
    return _fabric_config().base_ssh_config.lookup(address)


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def parse_hop(hop: str) -> tuple[str | None, str, int | None]:
    """``[user@]host[:port]`` from a ProxyJump list, as OpenSSH writes it.

    >>> parse_hop("ops@bastion:2222")
    ('ops', 'bastion', 2222)
    >>> parse_hop("[::1]:22")
    (None, '::1', 22)
    """
    user, _, rest = hop.strip().rpartition("@")
    host, port = rest, None
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port = int(tail[1:]) if tail.startswith(":") and tail[1:].isdigit() else None
    elif rest.count(":") == 1 and rest.partition(":")[2].isdigit():
        host, _, digits = rest.partition(":")
        port = int(digits)
    if not host or "ssh://" in hop:
        raise TransportError(f"unsupported ProxyJump hop {hop!r} (use [user@]host[:port])")
    return (user or None), host, port


def port_of(ep: Endpoint, ssh: Mapping[str, Any]) -> int:
    """The port to dial: the inventory's, else ~/.ssh/config's, else 22."""
    return ep.port or int(ssh.get("port", 22))


def connect_kwargs(ep: Endpoint, ssh: Mapping[str, Any], config: Config, auth: Mapping[str, Any]) -> dict[str, Any]:
    """``SSHClient.connect`` arguments exactly as Fabric's ``Connection`` would build them.

    The inventory's user and port win; ~/.ssh/config supplies HostName (for the inventory's
    address), Port, User and IdentityFile (after Fabric's own key files and ours).
    """
    kwargs = dict(auth)
    keys = [*_listed(config.connect_kwargs.get("key_filename")), *_listed(auth.get("key_filename")),
            *_listed(ssh.get("identityfile"))]
    if keys:
        kwargs["key_filename"] = keys
    else:
        kwargs.pop("key_filename", None)
    return {**kwargs, "hostname": ssh.get("hostname", ep.address), "port": port_of(ep, ssh),
            "username": ep.user or ssh.get("user", config.user), "timeout": ep.connect_timeout,
            "transport_factory": _aead_first}


def jump_chain(ep: Endpoint, ssh: Mapping[str, Any]) -> list[str]:
    """The hops to go through, first to last: the endpoint's own list, else ~/.ssh/config's.

    A host that is its own jump host (a ``Host *`` block) goes direct, as Fabric does.
    """
    spec = ep.jump if ep.jump is not None else ssh.get("proxyjump", "")
    if spec.strip().lower() == "none":
        return []
    hops = [h for h in spec.split(",") if h.strip()]
    port = port_of(ep, ssh)
    me = {(ep.address, port), (ssh.get("hostname", ep.address), port)}
    return [] if any((host, hop_port or 22) in me for _, host, hop_port in map(parse_hop, hops)) else hops


def _read_all(recv: Any) -> bytes:
    chunks: list[bytes] = []
    while True:
        data = recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


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

    def _client(self, hostname: str, port: int) -> paramiko.SSHClient:
        """A paramiko client that knows only this host's known keys (parsed once per file, not per host).

        Keys are looked up by the name paramiko checks: ~/.ssh/config's HostName if it sets one.
        """
        ep = self.endpoint
        client = paramiko.SSHClient()
        path = ep.known_hosts_path
        if path.exists():
            name = hostname if port == 22 else f"[{hostname}]:{port}"
            for keytype, key in (_known_hosts(str(path), path.stat().st_mtime_ns).lookup(name) or {}).items():
                client.get_host_keys().add(name, keytype, key)
        policy: paramiko.MissingHostKeyPolicy = (
            _AcceptNewPolicy(ep.known_hosts_path) if ep.accept_new else paramiko.RejectPolicy()
        )
        client.set_missing_host_key_policy(policy)
        return client

    def _auth(self) -> dict[str, Any]:
        ep = self.endpoint
        if not ep.key_file:
            return {}
        key_path = Path(ep.key_file).expanduser()
        pkey = _private_key(str(key_path), key_path.stat().st_mtime_ns) if key_path.exists() else None
        return {"pkey": pkey} if pkey is not None else {"key_filename": [str(key_path)]}

    def _sock(self, hostname: str, ssh: Mapping[str, Any]) -> Any:
        """A socket through ~/.ssh/config's ProxyJump hops (each verified like any host) or ProxyCommand."""
        ep = self.endpoint
        hops = jump_chain(ep, ssh)
        if hops:
            user, host, port = parse_hop(hops[-1])
            if ep.name.count("(jump host") >= 8:
                raise TransportError(f"{ep.name}: ProxyJump chain is circular or longer than 8 hops")
            # the first hop follows its own ~/.ssh/config, like `ssh -J`; later hops go through the earlier ones
            hop = replace(ep, name=f"{ep.name} (jump host {host})", address=host, port=port, user=user,
                          become_password_env=None, jump=",".join(hops[:-1]) or None)
            self._via = Transport(hop)
            self._via.open()
            assert self._via._ssh is not None
            via = self._via._ssh.get_transport()
            assert via is not None
            return via.open_channel("direct-tcpip", (hostname, self._port), ("127.0.0.1", 0),
                                    timeout=ep.connect_timeout)
        if "proxycommand" in ssh and ep.jump is None:
            return paramiko.ProxyCommand(ssh["proxycommand"])
        return None

    def open(self) -> None:
        """Connect, verifying the host key; retry briefly on network errors only."""
        if self._ssh is not None:
            return
        ep = self.endpoint
        ssh = _ssh_config(ep.address)
        hostname = ssh.get("hostname", ep.address)
        self._port = port_of(ep, ssh)
        last: Exception | None = None
        for attempt in range(ep.connect_retries + 1):
            client = self._client(hostname, self._port)
            try:
                kwargs = connect_kwargs(ep, ssh, _fabric_config(), self._auth())
                sock = self._sock(hostname, ssh)
                if sock is not None:
                    kwargs["sock"] = sock
                client.connect(**kwargs)
            except (paramiko.SSHException, OSError, EOFError, TransportError) as exc:
                client.close()
                self._close_jump()
                if isinstance(exc, TransportError):   # a jump host refused, or a bad ProxyJump
                    raise
                fatal = self._refusal(exc)
                if fatal is not None:
                    raise fatal from None
                last = exc
            else:
                transport = client.get_transport()
                if transport is not None:
                    # paramiko's reader thread wakes on every socket timeout (0.1 s) to look for a close;
                    # once connected, a slower tick is plenty (close() below wakes it at once).
                    transport.sock.settimeout(_IDLE_TICK)
                self._ssh = client
                return
            if attempt < ep.connect_retries:
                time.sleep(0.3 * (attempt + 1))
        raise Unreachable(f"{ep.name}: cannot connect to {ep.address}:{self._port}: {last}") from None

    def _refusal(self, exc: Exception) -> TransportError | None:
        """The error that ends a connect at once (key or auth refused); None: a network error, retry."""
        ep = self.endpoint
        if isinstance(exc, paramiko.BadHostKeyException):
            return HostKeyRejected(
                f"{ep.name}: HOST KEY CHANGED for [{ep.address}]:{self._port} "
                f"(got {exc.key.get_name()}, known_hosts {ep.known_hosts_path} has another); refusing")
        if isinstance(exc, paramiko.AuthenticationException):
            return AuthFailed(f"{ep.name}: SSH authentication failed as {ep.user or 'default user'}: {exc}")
        if isinstance(exc, paramiko.SSHException) and "not found in known_hosts" in str(exc):
            return HostKeyRejected(
                f"{ep.name}: host key for [{ep.address}]:{self._port} is not in {ep.known_hosts_path}; "
                "refusing (add it, or pass --accept-new to trust it on first use)")
        return None

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

    def _become_password(self) -> str | None:
        name = self.endpoint.become_password_env
        if not name:
            return None
        value = os.environ.get(name)
        if value is None:
            raise AuthFailed(f"{self.endpoint.name}: become password variable ${name} is not set")
        return value

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
        password = self._become_password() if sudo else None
        if sudo and password is None:
            command = "sudo -n -- " + command
        started = time.monotonic()
        self.execs += 1
        try:
            if password is not None:
                exited, stdout, stderr = self._become(command, password, stdin, timeout)
            else:
                exited, stdout, stderr = self._raw(command, stdin, timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise Unreachable(f"{self.endpoint.name}: connection lost: {exc}") from None
        elapsed = time.monotonic() - started
        if sudo and "sudo: a password is required" in stderr:
            raise AuthFailed(
                f"{self.endpoint.name}: sudo needs a password; set ansible_become_password to an env lookup"
            )
        return CommandResult(command, exited, stdout, stderr, elapsed)

    def _session(self) -> paramiko.Channel:
        transport = self._ssh.get_transport() if self._ssh is not None else None
        if transport is None:
            raise paramiko.SSHException("not connected")
        return transport.open_session(timeout=self.endpoint.connect_timeout)

    def _raw(self, command: str, stdin: str | None, timeout: float | None) -> tuple[int, str, str]:
        """One exec channel, read to the end; cheap on the controller (no polling threads)."""
        chan = self._session()
        try:
            chan.exec_command(command)
            return _finish(chan, stdin, timeout)
        finally:
            chan.close()

    def _become(self, command: str, password: str, stdin: str | None,
                timeout: float | None) -> tuple[int, str, str]:
        """sudo that asks for a password, on one exec channel, like Ansible's become.

        The password is written only after sudo shows its own (random) prompt, and stdin only
        after the shell behind sudo says it runs, so sudo never reads the payload as a password.
        A second prompt means the password was refused: stop there. Nothing sudo prints before
        the command starts is returned as the command's output, and sudo -S never echoes.
        """
        token = os.urandom(8).hex()
        prompt, ready = f"[hostprep-sudo-{token}]", f"@@hostprep:become-{token}"
        chan = self._session()
        try:
            chan.set_combine_stderr(True)   # the prompt goes to stderr, the marker to stdout
            # the shell behind sudo says it runs, then waits for one line before the command starts
            inner = f"echo {ready}; read -r _go; {command}"
            chan.exec_command(f"sudo -S -p {shlex.quote(prompt)} -- sh -c {shlex.quote(inner)}")
            chan.settimeout(self.endpoint.connect_timeout + 30)
            seen, answered = b"", False
            try:
                while ready.encode() + b"\n" not in seen:
                    data = chan.recv(4096)
                    if not data:   # sudo gave up before the command started
                        return chan.recv_exit_status(), "", seen.decode(errors="replace")
                    seen += data
                    prompts = seen.count(prompt.encode())
                    if prompts > 1:
                        raise AuthFailed(f"{self.endpoint.name}: sudo refused the become password")
                    if prompts and not answered:
                        chan.sendall(password.encode() + b"\n")
                        answered = True
            except socket.timeout:
                raise AuthFailed(f"{self.endpoint.name}: sudo did not start the command (no answer)") from None
            chan.set_combine_stderr(False)   # before the go-ahead: the command has printed nothing yet
            chan.sendall(b"\n")
            return _finish(chan, stdin, timeout)
        finally:
            chan.close()


def _finish(chan: paramiko.Channel, stdin: str | None, timeout: float | None) -> tuple[int, str, str]:
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
