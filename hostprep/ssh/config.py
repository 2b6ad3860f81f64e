"""SSH client setup as Fabric reads ~/.ssh/config: ports, users, keys, known_hosts, jump hosts.

Sessions are opened with the ``SSHClient.connect`` call Fabric's ``Connection`` would make
(HostName, User, IdentityFile, ProxyJump, ProxyCommand from the SSH config), without building
a ``Connection`` per host: that cost ~2.5 ms of controller CPU per host. Host keys are verified
against a known_hosts file, at every ProxyJump hop too; unknown keys are refused unless
``accept_new`` is set, which behaves like OpenSSH's ``StrictHostKeyChecking=accept-new``.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

import paramiko
from fabric import Config

from hostprep.ssh.endpoint import Endpoint
from hostprep.errors import AuthFailed, HostKeyRejected, SettingsError, TransportError
from hostprep.inventory.settings import proxy_safe

MAX_JUMPS = 8
_PORT = re.compile(r"[0-9]{1,5}")   # ASCII digits only: "²".isdigit() is True, and int() refuses it


class _AcceptNewPolicy(paramiko.MissingHostKeyPolicy):
    """Accept and record an unknown key; a changed key still raises in paramiko."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as fh:
            fh.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


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
def fabric_config() -> Config:
    """Fabric's config (its files and ~/.ssh/config, or $HOSTPREP_SSH_CONFIG), loaded once per process."""
    return Config(runtime_ssh_path=os.environ.get("HOSTPREP_SSH_CONFIG") or None)


@functools.lru_cache(maxsize=4096)
def ssh_config(address: str) -> paramiko.SSHConfigDict:
    """What ~/.ssh/config says for one address, as Fabric reads it (looked up once per address)."""
    return fabric_config().base_ssh_config.lookup(address)


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def parse_hop(hop: str) -> tuple[str | None, str, int | None]:
    """``[user@]host[:port]`` from a ProxyJump list, as OpenSSH writes it.

    >>> parse_hop("ops@bastion:2222")
    ('ops', 'bastion', 2222)
    >>> parse_hop("[::1]:22")
    (None, '::1', 22)
    >>> parse_hop("bastion:\u00b2")
    Traceback (most recent call last):
    ...
    hostprep.errors.TransportError: ProxyJump hop 'bastion:²': the port is not a number from 1 to 65535
    """
    user, _, rest = hop.strip().rpartition("@")
    host, port = rest, None
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port = _hop_port(hop, tail[1:]) if tail.startswith(":") else None
    elif rest.count(":") == 1:
        host, _, digits = rest.partition(":")
        port = _hop_port(hop, digits)
    if not host or "ssh://" in hop:
        raise TransportError(f"unsupported ProxyJump hop {hop!r} (use [user@]host[:port])")
    return (user or None), host, port


def _hop_port(hop: str, text: str) -> int:
    port = _port_number(text)
    if port is None:
        raise TransportError(f"ProxyJump hop {hop!r}: the port is not a number from 1 to 65535")
    return port


def _port_number(value: Any) -> int | None:
    """A TCP port from text (or an int), or None: ASCII digits, 1..65535."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(text, str) and _PORT.fullmatch(text) and 1 <= int(text) <= 65535:
        return int(text)
    return None


def port_of(ep: Endpoint, ssh: Mapping[str, Any]) -> int:
    """The port to dial: the inventory's, else ~/.ssh/config's, else 22.

    >>> port_of(Endpoint("web1", "web1"), {"port": "abc"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hostprep.errors.SettingsError: web1: Port 'abc' in the SSH config (...) is not a number from 1 to 65535
    """
    if ep.port:
        return ep.port
    port = _port_number(ssh.get("port", 22))
    if port is None:
        where = os.environ.get("HOSTPREP_SSH_CONFIG") or "~/.ssh/config or /etc/ssh/ssh_config"
        raise SettingsError(f"{ep.name}: Port {str(ssh.get('port'))[:40]!r} in the SSH config ({where}) "
                            "is not a number from 1 to 65535")
    return port


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


def last_hop(ep: Endpoint, hops: list[str]) -> Endpoint:
    """The endpoint of the last jump host; it reaches the earlier hops through its own ``jump``.

    The first hop follows its own ~/.ssh/config, like ``ssh -J``; it is verified like any host.
    """
    user, host, port = parse_hop(hops[-1])
    if ep.name.count("(jump host") >= MAX_JUMPS:
        raise TransportError(f"{ep.name}: ProxyJump chain is circular or longer than {MAX_JUMPS} hops")
    return replace(ep, name=f"{ep.name} (jump host {host})", address=host, port=port, user=user,
                   become_password_env=None, jump=",".join(hops[:-1]) or None)


def proxy_command(ep: Endpoint, ssh: Mapping[str, Any]) -> paramiko.ProxyCommand | None:
    """~/.ssh/config's ProxyCommand for this host, unless the endpoint is a jump hop of ours."""
    if "proxycommand" in ssh and ep.jump is None:
        # %h/%n/%r went into the command: refuse what OpenSSH 9.6 refuses (CVE-2023-51385)
        for host in (ep.address, ssh.get("hostname")):
            why = proxy_safe(host, None)
            if why:
                raise SettingsError(f"{ep.name}: {why}; not expanded into a ProxyCommand")
        why = proxy_safe(None, ssh.get("user") or ep.user)
        if why:
            raise SettingsError(f"{ep.name}: {why}; not expanded into a ProxyCommand")
        return paramiko.ProxyCommand(ssh["proxycommand"])
    return None


def host_key_client(ep: Endpoint, hostname: str, port: int) -> paramiko.SSHClient:
    """A paramiko client that knows only this host's known keys (parsed once per file, not per host).

    Keys are looked up by the name paramiko checks: ~/.ssh/config's HostName if it sets one.
    """
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


def auth_kwargs(ep: Endpoint) -> dict[str, Any]:
    """The inventory's key file: loaded once if unencrypted, else handed to paramiko by name."""
    if not ep.key_file:
        return {}
    key_path = Path(ep.key_file).expanduser()
    pkey = _private_key(str(key_path), key_path.stat().st_mtime_ns) if key_path.exists() else None
    return {"pkey": pkey} if pkey is not None else {"key_filename": [str(key_path)]}


def refusal(ep: Endpoint, port: int, exc: Exception) -> TransportError | None:
    """The error that ends a connect at once (key or auth refused); None: a network error, retry."""
    if isinstance(exc, paramiko.BadHostKeyException):
        return HostKeyRejected(
            f"{ep.name}: HOST KEY CHANGED for [{ep.address}]:{port} "
            f"(got {exc.key.get_name()}, known_hosts {ep.known_hosts_path} has another); refusing")
    if isinstance(exc, paramiko.AuthenticationException):
        return AuthFailed(f"{ep.name}: SSH authentication failed as {ep.user or 'default user'}: {exc}")
    if isinstance(exc, paramiko.SSHException) and "not found in known_hosts" in str(exc):
        return HostKeyRejected(
            f"{ep.name}: host key for [{ep.address}]:{port} is not in {ep.known_hosts_path}; "
            "refusing (add it, or pass --accept-new to trust it on first use)")
    return None
