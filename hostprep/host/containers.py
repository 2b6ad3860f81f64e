"""The containers that matter for Docker access, as dockerd stores them. Pure.

The probe's ``containers`` section lists the containers of the Compose project and every other
container whose host config mentions the Docker socket (a socat-style "socket published on a
port" workaround lives outside the project). Per container it sends a few scalar fields of
``config.v2.json`` (grepped on the host, not the whole file) and the one-line ``hostconfig.json``,
every line starting with the file's path (``grep -H``), each kind base64-encoded on one line of
the section: dockerd's JSON leaves U+0085 unescaped, so no byte a compose value holds may reach
a line of the probe. Decoded, it is split at ``"\n"`` only (JSON escapes every newline) and stays data.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from hostprep.hostdata import lines, loads

__all__ = ["ContainerFacts", "ContainersMalformed", "Mount", "parse_containers"]

_LINE = re.compile(r"(?:/var/lib/docker/containers/)?([0-9a-f]{12,64})/(config\.v2|hostconfig)\.json:(.*)")
# a field where a JSON token starts (the probe greps it after "[", "{" or ","), its value without escapes
_FIELD = re.compile(r'[\[{,]?"(Running|Pid|User|Name|Image|com\.docker\.compose\.service|com\.docker\.compose\.project)"'
                    r':(?:"([^"\\]*)"|([a-z0-9]+))')
_DOCKER_HOST = re.compile(r'"DOCKER_HOST=([^"\\]*)"')
_KINDS = {"fields": "config.v2", "hostconfigs": "hostconfig"}   # the section's lines: KIND <base64>


class ContainersMalformed(ValueError):
    """The probe's containers section is not what the probe prints."""


@dataclass(frozen=True)
class Mount:
    """A host path (or a tmpfs) a container sees at ``target``."""

    source: str | None   # None: not from the host (tmpfs, a named volume's data)
    target: str
    kind: str = "bind"   # bind | volume | tmpfs
    read_only: bool = False


@dataclass(frozen=True)
class ContainerFacts:
    """One container: who it is, how it runs, what it mounts and publishes."""

    id: str
    name: str | None = None
    service: str | None = None
    project: str | None = None
    running: bool = False
    user: str | None = None
    image: str | None = None
    docker_host: str | None = None         # DOCKER_HOST in its environment (nothing else of the env is read)
    mounts: tuple[Mount, ...] = ()
    published: tuple[str, ...] = ()        # "HOSTIP:HOSTPORT->PORT/PROTO"
    privileged: bool = False
    networks: tuple[str, ...] = ()         # network mode / networks joined, from the host config

    def mounts_path(self, path: str) -> bool:
        """Whether ``path`` on the host is bind-mounted into this container (a dir holding it counts)."""
        return any(m.source is not None and (m.source == path or path.startswith(m.source.rstrip("/") + "/"))
                   for m in self.mounts if m.kind == "bind")

    def __repr__(self) -> str:
        return f"<Container {self.service or self.name} {'running' if self.running else 'stopped'}>"


def _scalars(text: str) -> dict[str, str]:
    """First value of each scalar field grepped from config.v2.json (``Name`` the one that is a path)."""
    out: dict[str, str] = {}
    for m in _FIELD.finditer(text):
        key, value = m.group(1), m.group(2) if m.group(2) is not None else m.group(3)
        if key == "Name" and not value.startswith("/"):
            continue
        out.setdefault(key, value)
    return out


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _mounts(host: dict[str, Any]) -> tuple[Mount, ...]:
    """Binds (``src:dst[:opts]``), Mounts (long syntax) and Tmpfs from a host config (wrong types: none)."""
    out: list[Mount] = []
    for b in _list(host.get("Binds")):
        parts = str(b).split(":")
        if len(parts) >= 2:
            src = parts[0]
            out.append(Mount(src if src.startswith("/") else None, parts[1], "bind" if src.startswith("/") else "volume",
                             "ro" in (parts[2].split(",") if len(parts) > 2 else [])))
    for m in _list(host.get("Mounts")):
        if isinstance(m, dict) and isinstance(m.get("Target"), str):
            kind = str(m.get("Type") or "bind")
            source = m.get("Source") if kind == "bind" and isinstance(m.get("Source"), str) else None
            out.append(Mount(source, m["Target"], kind, bool(m.get("ReadOnly"))))
    for target in _dict(host.get("Tmpfs")):
        out.append(Mount(None, str(target), "tmpfs"))
    return tuple(out)


def _published(host: dict[str, Any]) -> tuple[str, ...]:
    """Ports bound on a host address (``PortBindings``); host networking publishes everything."""
    out = []
    for port, binds in sorted(_dict(host.get("PortBindings")).items()):
        for b in _list(binds):
            if isinstance(b, dict):
                out.append(f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort') or '?'}->{port}")
    if host.get("NetworkMode") == "host":
        out.append("host network (every listening port)")
    return tuple(out)


def _one(cid: str, config: str, host_text: str) -> ContainerFacts:
    f = _scalars(config)
    dh = _DOCKER_HOST.search(config)
    try:
        host = _dict(loads(host_text, "hostconfig") if host_text.strip() else {})
    except ValueError:
        raise ContainersMalformed(f"container {cid[:12]}: malformed hostconfig JSON") from None
    mode = host.get("NetworkMode")
    return ContainerFacts(
        id=cid, name=(f.get("Name") or "").lstrip("/") or None, service=f.get("com.docker.compose.service") or None,
        project=f.get("com.docker.compose.project") or None, running=f.get("Running") == "true",
        user=f.get("User") or None, image=f.get("Image") or None, docker_host=dh.group(1) if dh else None,
        mounts=_mounts(host), published=_published(host), privileged=host.get("Privileged") is True,
        networks=(str(mode),) if isinstance(mode, str) and mode else (),
    )


def _decoded(body: str) -> list[tuple[str, str]]:
    """(kind, line) of the section's ``fields <base64>`` / ``hostconfigs <base64>`` lines, decoded."""
    out: list[tuple[str, str]] = []
    for line in lines(body):
        kind, _, value = line.partition(" ")
        if kind not in _KINDS:
            if line.strip():
                raise ContainersMalformed(f"malformed containers line: {line[:60]!r}")
            continue
        try:
            text = base64.b64decode(value.strip(), validate=True).decode("utf-8", "surrogateescape")
        except (binascii.Error, ValueError):
            raise ContainersMalformed(f"malformed base64 in the containers section ({kind})") from None
        out += [(_KINDS[kind], ln) for ln in lines(text)]
    return out


def parse_containers(body: str) -> tuple[ContainerFacts, ...]:
    """The probe's ``containers`` section: ``fields`` (``<id>/config.v2.json:<field>`` lines of grep -o) and
    ``hostconfigs`` (one ``<id>/hostconfig.json:<json>`` line per container), each base64 on one line.

    >>> cid, enc = "a" * 64, lambda *x: base64.b64encode("\\n".join(x).encode()).decode()
    >>> fields = enc(*(f"{cid}/config.v2.json:" + x for x in ('{"Running":true', ',"Name":"/p-w-1"',
    ...                                                        ',"com.docker.compose.service":"w"')))
    >>> host = enc(f"{cid}/hostconfig.json:" + '{"Binds": ["/var/run/docker.sock:/var/run/docker.sock:ro"]}')
    >>> c = parse_containers(f"fields {fields}\\nhostconfigs {host}")[0]
    >>> (c.name, c.service, c.running, c.mounts_path("/var/run/docker.sock"), c.mounts[0].read_only)
    ('p-w-1', 'w', True, True, True)
    """
    configs: dict[str, list[str]] = {}
    hosts: dict[str, str] = {}
    for kind, line in _decoded(body):
        if not line.strip():
            continue
        m = _LINE.fullmatch(line)
        if m is None or m.group(2) != kind:
            raise ContainersMalformed(f"malformed containers line: {line[:60]!r}")
        if kind == "hostconfig":
            if m.group(1) in hosts:
                raise ContainersMalformed(f"container {m.group(1)[:12]}: two host configs")
            hosts[m.group(1)] = m.group(3)
        else:
            configs.setdefault(m.group(1), []).append(m.group(3))
    return tuple(_one(cid, "\n".join(configs.get(cid, [])), hosts.get(cid, ""))
                 for cid in sorted(set(configs) | set(hosts)))
