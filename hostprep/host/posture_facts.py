"""What the posture checks read on a host besides the containers: how dockerd listens, and what the
DAG files ask Docker for. Pure parsers of the probe's ``daemon`` and ``dags`` sections.

Nothing here is followed or run: a DAG line is text to match, daemon.json is JSON to read.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from hostprep.hostdata import lines, loads

__all__ = ["DaemonFacts", "DagLine", "PostureMalformed", "parse_daemon", "parse_dags"]


class PostureMalformed(ValueError):
    """The probe's daemon or dags section is not what the probe prints."""


@dataclass(frozen=True)
class DaemonFacts:
    """dockerd's TCP listeners: from its flags, /etc/docker/daemon.json ``hosts``, and its own
    listening sockets (socket activation hands it one without a flag)."""

    tcp_hosts: tuple[str, ...] = ()          # tcp://... from flags and daemon.json
    listening: tuple[str, ...] = ()          # "ADDR:PORT" of TCP sockets dockerd listens on
    tls_verify: bool = False                 # --tlsverify (flag or daemon.json): clients must present a cert
    config_error: str | None = None          # daemon.json that is not JSON (dockerd would refuse to start)

    @property
    def tcp_without_tls(self) -> bool:
        return bool(self.tcp_hosts or self.listening) and not self.tls_verify


def _addr(hex_addr: str) -> str:
    """``0100007F:0947`` (/proc/net/tcp) → ``127.0.0.1:2375``; IPv6 shown as ``[hex]:port``."""
    ip, port = hex_addr.split(":")
    if len(ip) == 8:
        shown = ".".join(str(b) for b in reversed(bytes.fromhex(ip)))
    else:
        shown = "[::]" if set(ip) == {"0"} else f"[{ip.lower()}]"
    return f"{shown}:{int(port, 16)}"


def _flags(cmdline: str) -> tuple[list[str], bool]:
    """tcp:// hosts and --tlsverify from dockerd's command line (``-H x``, ``-H=x``, ``--host x``, ``--host=x``)."""
    args, hosts, verify = cmdline.split(), [], False
    for i, a in enumerate(args):
        value = a.split("=", 1)[1] if "=" in a and a.split("=", 1)[0] in ("-H", "--host") else \
            (args[i + 1] if a in ("-H", "--host") and i + 1 < len(args) else None)
        if value and value.startswith("tcp://"):
            hosts.append(value)
        if a.split("=", 1)[0] == "--tlsverify" and a.split("=", 1)[-1] != "false":
            verify = True
    return hosts, verify


def _daemon_json(b64: str) -> tuple[list[str], bool, str | None]:
    try:
        data = loads(base64.b64decode(b64, validate=True) or b"{}", "daemon.json")
    except (binascii.Error, ValueError):
        return [], False, "/etc/docker/daemon.json is not valid JSON"
    if not isinstance(data, dict):
        return [], False, "/etc/docker/daemon.json is not a JSON object"
    hosts = data.get("hosts")
    tcp = [h for h in hosts if isinstance(h, str) and h.startswith("tcp://")] if isinstance(hosts, list) else []
    return tcp, data.get("tlsverify") is True, None


def parse_daemon(body: str) -> DaemonFacts:
    """``cmdline <args>``, ``daemonjson <base64>``, ``listen <hex addr>`` lines.

    >>> parse_daemon("cmdline dockerd -H unix:///var/run/docker.sock -H tcp://0.0.0.0:2375\\nlisten 00000000:0947")
    DaemonFacts(tcp_hosts=('tcp://0.0.0.0:2375',), listening=('0.0.0.0:2375',), tls_verify=False, config_error=None)
    """
    hosts: list[str] = []
    listening: list[str] = []
    verify, error = False, None
    for line in lines(body):
        kind, _, value = line.partition(" ")
        if kind == "cmdline":
            found, v = _flags(value)
            hosts, verify = hosts + found, verify or v
        elif kind == "daemonjson":
            found, v, error = _daemon_json(value.strip())
            hosts, verify = hosts + found, verify or v
        elif kind == "listen" and re.fullmatch(r"[0-9A-Fa-f]{8,32}:[0-9A-Fa-f]{4}", value.strip()):
            listening.append(_addr(value.strip()))
        elif line.strip():
            raise PostureMalformed(f"malformed daemon line: {line[:60]!r}")
    return DaemonFacts(tuple(dict.fromkeys(hosts)), tuple(dict.fromkeys(listening)), verify, error)


@dataclass(frozen=True)
class DagLine:
    """A line of a DAG file that mentions Docker settings the posture checks judge."""

    file: str
    line: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


_DAG = re.compile(r"\./([^:\n]{1,300}\.py):([0-9]{1,7}):(.*)")


def parse_dags(body: str) -> tuple[DagLine, ...]:
    """``grep -rn`` output run in the DAG folder (decoded from the probe's base64): ``./FILE.py:LINE:TEXT``,
    split at ``"\\n"`` only; anything else is skipped (grep's own messages), never trusted.

    >>> parse_dags("./etl/run.py:12:    privileged=True,")
    (DagLine(file='etl/run.py', line=12, text='    privileged=True,'),)
    """
    out = []
    for line in lines(body):
        m = _DAG.fullmatch(line)
        if m:
            out.append(DagLine(m.group(1), int(m.group(2)), m.group(3)))
    return tuple(out)
