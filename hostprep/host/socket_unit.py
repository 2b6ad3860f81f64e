"""Who makes the Docker socket, and so what undoes a change to it: systemd's docker.socket or dockerd. Pure.

On Ubuntu (docker-ce or docker.io) systemd is PID 1: ``docker.socket`` (``ListenStream=/run/docker.sock``,
``SocketMode=0660``, ``SocketGroup=docker``) makes the socket and hands it to ``dockerd -H fd://``,
which never touches the file. A ``chmod`` then survives ``systemctl restart docker`` and is undone
only when the socket unit makes the file again (``systemctl restart docker.socket``, a reboot), and
a ``groupmod`` of the docker group reaches the socket only then. A dockerd that makes its own socket
(``-H unix://...`` or no ``-H``, no socket activation) does both on each of its restarts.

The probe prints ``systemctl show docker.socket`` (drop-ins merged by systemd), the group entry of its
``SocketGroup``, and dockerd's command line; these functions read them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hostprep.hostdata import lines

SYSTEMD, DOCKERD = "systemd", "dockerd"
_KEYS = ("Id", "LoadState", "ActiveState", "UnitFileState", "Listen", "SocketMode", "SocketUser", "SocketGroup",
         "FragmentPath", "DropInPaths", "GroupEntry")


@dataclass(frozen=True)
class SocketUnit:
    """docker.socket as systemd has it loaded, drop-ins included: what it makes on its next start."""

    load_state: str
    active_state: str = ""
    listen: tuple[str, ...] = ()       # the stream sockets' paths
    mode: int | None = None            # SocketMode
    user: str | None = None            # SocketUser (None: root)
    group: str | None = None           # SocketGroup (None: root)
    group_gid: int | None = None       # that group's GID in /etc/group now
    fragment: str | None = None        # the unit file
    drop_ins: tuple[str, ...] = ()     # its drop-in files

    @property
    def active(self) -> bool:
        return self.load_state == "loaded" and self.active_state == "active"

    def listens_on(self, path: str) -> bool:
        """Does the unit listen on ``path`` (``/var/run`` is ``/run`` on every systemd host)?"""
        return canonical(path) in {canonical(p) for p in self.listen}


def canonical(path: str) -> str:
    """``/var/run/docker.sock`` and ``/run/docker.sock`` are one file.

    >>> canonical("/var/run/docker.sock")
    '/run/docker.sock'
    """
    return "/run/" + path[len("/var/run/"):] if path.startswith("/var/run/") else path


def _digits(v: str) -> int | None:
    return int(v) if re.fullmatch(r"[0-9]{1,10}", v) else None


def parse_show(text: str) -> SocketUnit | None:
    """``systemctl show docker.socket -p ...`` (plus the probe's ``GroupEntry=``) → :class:`SocketUnit`.

    None when there is no output (no systemd) or no such unit.

    >>> u = parse_show("LoadState=loaded\\nActiveState=active\\nListen=/run/docker.sock (Stream)\\n"
    ...                "SocketMode=0660\\nSocketGroup=docker\\nGroupEntry=docker:x:999:")
    >>> (u.active, u.listen, oct(u.mode or 0), u.group, u.group_gid)
    (True, ('/run/docker.sock',), '0o660', 'docker', 999)
    """
    props: dict[str, list[str]] = {}
    for line in lines(text):
        key, sep, value = line.partition("=")
        if sep and key in _KEYS:
            props.setdefault(key, []).append(value.strip())

    def one(key: str) -> str:
        return (props.get(key) or [""])[-1]

    if one("LoadState") in ("", "not-found"):
        return None
    listen = tuple(v.rsplit(" (", 1)[0] for v in props.get("Listen", []) if v.endswith("(Stream)"))
    entry = one("GroupEntry").split(":")
    mode = one("SocketMode")
    return SocketUnit(
        load_state=one("LoadState"), active_state=one("ActiveState"), listen=listen,
        mode=int(mode, 8) if re.fullmatch(r"[0-7]{1,4}", mode) else None,
        user=one("SocketUser") or None, group=one("SocketGroup") or None,
        group_gid=_digits(entry[2]) if len(entry) > 2 and entry[0] == one("SocketGroup") else None,
        fragment=one("FragmentPath") or None, drop_ins=tuple(one("DropInPaths").split()))


def dockerd_hosts(argv: list[str]) -> tuple[str, ...]:
    """The addresses dockerd was told to listen on (``-H``/``--host``, every spelling).

    >>> dockerd_hosts(["/usr/sbin/dockerd", "-H", "fd://", "--host=unix:///x.sock", "-Htcp://a:1"])
    ('fd://', 'unix:///x.sock', 'tcp://a:1')
    """
    out, it = [], iter(argv[1:])
    for arg in it:
        if arg in ("-H", "--host"):
            out.append(next(it, ""))
        elif arg.startswith("--host="):
            out.append(arg[len("--host="):])
        elif arg.startswith("-H") and not arg.startswith("--"):
            out.append(arg[2:].lstrip("="))
    return tuple(h for h in out if h)


def dockerd_group(argv: list[str]) -> str:
    """The group dockerd gives the sockets it makes (``-G``/``--group``, default ``docker``)."""
    group, it = "docker", iter(argv[1:])
    for arg in it:
        if arg in ("-G", "--group"):
            group = next(it, group)
        elif arg.startswith("--group="):
            group = arg[len("--group="):]
    return group


def manager(unit: SocketUnit | None, dockerd_argv: list[str], path: str) -> str | None:
    """Who makes the socket at ``path``: ``"systemd"`` (docker.socket, dockerd on ``fd://``), ``"dockerd"``
    (dockerd makes it itself), or None (no dockerd running and no active socket unit for it)."""
    hosts = dockerd_hosts(dockerd_argv)
    if unit is not None and unit.active and unit.listens_on(path) and (not dockerd_argv or "fd://" in hosts):
        return SYSTEMD
    if dockerd_argv:
        return DOCKERD
    return None


REMADE_BY = {   # what makes the socket again: its mode, owner and GID back to what its maker sets
    SYSTEMD: "a reboot or `systemctl restart docker.socket`",
    DOCKERD: "a dockerd restart or a reboot",
    None: "a restart of whatever makes the socket (dockerd or docker.socket) or a reboot",
}
KEPT_BY = {     # what looks like it would, but keeps the socket as it is
    SYSTEMD: "`systemctl restart docker` keeps it (dockerd reuses systemd's socket)",
    DOCKERD: "",
    None: "",
}


def undone_by(by: str | None) -> str:
    """What undoes a change to the socket's mode on a host whose socket ``by`` makes.

    >>> print(undone_by("systemd"))
    a reboot or `systemctl restart docker.socket` undoes it; `systemctl restart docker` keeps it (dockerd reuses systemd's socket)
    """
    kept = KEPT_BY.get(by, "")
    return f"{REMADE_BY.get(by, REMADE_BY[None])} undoes it" + (f"; {kept}" if kept else "")


def remake_hint(by: str | None) -> str:
    """How an operator makes the socket again on purpose, at a moment of their choosing."""
    if by == SYSTEMD:
        return "`sudo systemctl restart docker.socket docker` (running containers stop)"
    if by == DOCKERD:
        return "restart dockerd (`sudo systemctl restart docker`; running containers stop)"
    return "restart Docker or reboot"
