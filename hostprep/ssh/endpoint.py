"""How to reach one host: the transport's view of an inventory entry.

The inventory stays pure (hosts, groups, vars); this is where a host's connection vars,
validated by :mod:`hostprep.inventory.settings`, become an :class:`Endpoint`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hostprep.inventory.hosts import BECOME_ENV_VAR, HostEntry
from hostprep.inventory.settings import connection_settings


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


def endpoint_for(
    entry: HostEntry, *, known_hosts: str | None = None, accept_new: bool = False, connect_timeout: float = 10.0
) -> Endpoint:
    """How to reach an inventory host; raises ``SettingsError`` naming the host on a bad connection var.

    >>> endpoint_for(HostEntry("web1", {"ansible_host": "10.0.0.5", "ansible_user": "ubuntu"}, ()))
    <Endpoint web1 ubuntu@10.0.0.5:->
    """
    conn = connection_settings(entry.vars, host=entry.name)
    return Endpoint(
        name=entry.name,
        address=conn.address or entry.name,
        port=conn.port,
        user=conn.user,
        key_file=conn.key_file,
        known_hosts=known_hosts,
        connect_timeout=connect_timeout,
        accept_new=accept_new,
        become_password_env=entry.vars.get(BECOME_ENV_VAR),
    )
