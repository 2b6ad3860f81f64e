"""Where a container reaches the Docker socket: the socket's paths and the binds that show it. Pure.

One rule for everyone who asks: the posture audit (which containers mount the socket) and the
socket-proxy strategy (which paths its override must mask, and whether one still shows it).
"""

from __future__ import annotations

import re

from hostprep.host.containers import ContainerFacts
from hostprep.inventory.settings import HostSettings

__all__ = ["exposed_at", "socket_paths", "socket_views"]


def socket_paths(settings: HostSettings) -> set[str]:
    """Every host path that is the Docker socket: the configured one and its /run <-> /var/run alias.

    >>> sorted(socket_paths(HostSettings())), sorted(socket_paths(HostSettings(socket_path="/srv/d.sock")))
    (['/run/docker.sock', '/var/run/docker.sock'], ['/srv/d.sock'])
    """
    p = settings.socket_path
    if p.startswith("/var/run/"):
        return {p, p.removeprefix("/var")}
    return {p, "/var" + p} if p.startswith("/run/") else {p}


def _clean(path: str) -> str:
    """A container or host path with repeated and trailing slashes gone ("/" stays "/")."""
    return re.sub(r"/+", "/", path).rstrip("/") or "/"


def exposed_at(source: str | None, target: str, settings: HostSettings) -> list[str]:
    """Where a bind of host ``source`` at ``target`` shows the socket inside the container: the socket
    itself, or any folder above one of its paths (``/run``, ``/var``, ``/``).

    >>> exposed_at("/run/", "/host/run", HostSettings())
    ['/host/run/docker.sock']
    >>> exposed_at("/", "/host", HostSettings())
    ['/host/run/docker.sock', '/host/var/run/docker.sock']
    >>> exposed_at("./dags", "/opt/dags", HostSettings())
    []
    """
    if not source or not source.startswith("/") or not target.startswith("/"):
        return []
    src, dst = _clean(source), _clean(target)
    out = set()
    for p in socket_paths(settings):
        if p == src:
            out.add(dst)
        elif p.startswith(src.rstrip("/") + "/"):
            out.add(_clean(dst + "/" + p[len(src):].lstrip("/")))
    return sorted(out)


def socket_views(c: ContainerFacts, settings: HostSettings) -> list[str]:
    """The paths inside container ``c`` where it reaches the socket: shown by a bind, and not covered by
    a deeper mount (hostprep's ``/dev/null``, a tmpfs) that hides it; the deepest mount over a path wins.

    >>> from hostprep.host.containers import Mount
    >>> run = Mount("/run", "/host/run")
    >>> c = ContainerFacts("w", mounts=(run,))
    >>> socket_views(c, HostSettings())
    ['/host/run/docker.sock']
    >>> socket_views(ContainerFacts("w", mounts=(run, Mount("/dev/null", "/host/run/docker.sock"))), HostSettings())
    []
    """
    mounts = [(m, _clean(m.target)) for m in c.mounts if m.target.startswith("/")]
    views = set()
    for m, _ in mounts:
        if m.kind != "bind":
            continue
        for view in exposed_at(m.source, m.target, settings):
            over = [(mm, t) for mm, t in mounts if view == t or view.startswith(t.rstrip("/") + "/")]
            deepest = max(len(t) for _, t in over)
            if any(top.kind == "bind" and view in exposed_at(top.source, top.target, settings)
                   for top, t in over if len(t) == deepest):   # two at one path (never from Docker): either shows
                views.add(view)
    return sorted(views)
