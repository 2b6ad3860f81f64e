"""The probe's sections about files: the socket, the project's files, the bind folders and the DAG scan. Pure."""

from __future__ import annotations

import re
from typing import Collection

from hostprep.hostdata import lines
from hostprep.host.posture_facts import DagLine, parse_dags
from hostprep.host.fields import b64_field, int_field, need_int, octal_field
from hostprep.host.facts import DirFacts, FileFacts, ProbeFailed, SocketFacts, from_bytes

DAG_PREFIX = "dags: "   # the DAG scan: one base64 line inside the bind_dirs section (a folder label has no ':')


def parse_socket(path: str, body: str) -> SocketFacts:
    rows = lines(body)
    if not rows or not rows[0].strip():
        return SocketFacts(path=path, exists=False)
    fields = rows[0].split()
    if len(fields) < 5 or not re.fullmatch(r"[0-9a-f]{1,8}", fields[0]):
        raise ProbeFailed(f"malformed socket line in probe output: {rows[0][:80]!r}")
    perms = rows[1].strip() if len(rows) > 1 else ""
    return SocketFacts(path=path, exists=True, mode=int(fields[0], 16) & 0o7777, uid=need_int(fields[1], "socket uid"),
                       gid=need_int(fields[2], "socket gid"), owner=fields[3], group=fields[4],
                       has_acl=perms.endswith("+"))


def parse_file(name: str, body: str) -> FileFacts:
    rows = lines(body)
    if not rows:
        return FileFacts(name=name, exists=False)
    if rows[0].startswith("unsafe "):
        return FileFacts(name=name, exists=True, unsafe=rows[0][len("unsafe "):].strip())
    fields = rows[0].split()
    if len(fields) != 4 or len(rows) > 2:
        raise ProbeFailed(f"truncated file section {name!r} in probe output")
    content = b64_field(rows[1] if len(rows) == 2 else "", name)
    if int_field(fields[3]) != len(content):
        raise ProbeFailed(f"file {name!r}: probe read {len(content)} bytes, stat said {fields[3][:20]}")
    return FileFacts(name=name, exists=True, mode=octal_field(fields[0], f"{name} mode"), uid=need_int(fields[1], f"{name} uid"),
                     gid=need_int(fields[2], f"{name} gid"), content=from_bytes(content))


def parse_bind_dirs(body: str, configured: Collection[str]) -> tuple[DirFacts, ...]:
    """The bind folders' lines, one per folder the settings name (``configured``); the DAG scan's line is
    :func:`parse_dag_scan`'s. A label the settings do not name, or one seen twice, is not what the probe
    printed (forged facts): :class:`ProbeFailed` naming it. Root chowns and creates these folders.
    In the settings' order (the probe prints the project's own folders last, stat'ed together).

    >>> [d.name for d in parse_bind_dirs("logs 0 0 755\\ndags missing", ("dags", "logs"))]
    ['dags', 'logs']
    """
    out: list[DirFacts] = []
    for line in lines(body):
        if line.startswith(DAG_PREFIX) or not line.strip():
            continue
        d = _bind_dir(line)
        if d.name not in configured:
            raise ProbeFailed(f"bind folder {d.name[:80]!r} in probe output is not in hostprep_bind_dirs (forged facts)")
        if any(x.name == d.name for x in out):
            raise ProbeFailed(f"bind folder {d.name[:80]!r} is twice in probe output (forged facts)")
        out.append(d)
    order = list(configured)   # the settings' order, whatever order the probe printed them in
    return tuple(sorted(out, key=lambda d: order.index(d.name)))


def _bind_dir(line: str) -> DirFacts:
    """``LABEL uid gid mode``, ``LABEL missing`` or ``LABEL unsafe <why>``."""
    parts = line.split()
    if len(parts) >= 3 and parts[1] == "unsafe":
        return DirFacts(name=parts[0], exists=True, unsafe=line.split(None, 2)[2].strip())
    if len(parts) == 2 and parts[1] == "missing":
        return DirFacts(name=parts[0], exists=False)
    if len(parts) == 4:
        return DirFacts(name=parts[0], exists=True, uid=need_int(parts[1], "bind dir uid"),
                        gid=need_int(parts[2], "bind dir gid"), mode=octal_field(parts[3], "bind dir mode"))
    raise ProbeFailed(f"malformed bind dir line in probe output: {line[:80]!r}")


def parse_dag_scan(body: str) -> tuple[DagLine, ...]:
    """The DAG folder's Docker-option lines: ``grep -rn`` output, base64 on one ``dags:`` line of the
    bind_dirs section, so nothing a DAG author writes (a separator, a newline in a file name) opens a line."""
    found = [ln[len(DAG_PREFIX):] for ln in lines(body) if ln.startswith(DAG_PREFIX)]
    if len(found) > 1:
        raise ProbeFailed("the DAG scan is twice in probe output")
    return parse_dags(from_bytes(b64_field(found[0], "DAG scan"))) if found else ()
