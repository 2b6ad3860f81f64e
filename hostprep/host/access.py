"""Can the worker reach Docker? The kernel's rule for the socket, and what the worker says. Pure.

Shared by verification, the audit and the reports (the before/after view of the worker).
"""

from __future__ import annotations

import re
from typing import Iterable

from hostprep.host.facts import Facts, SocketFacts
from hostprep.hostdata import lines


def can_connect(sock: SocketFacts, uid: int | None, gid: int | None, groups: Iterable[int]) -> bool | None:
    """Would a process with these ids be allowed to connect(2) to the socket? None: can't tell.

    Linux picks exactly one class (owner, else any matching group, else other)
    and connecting needs its write bit. An ACL may grant more than the mode
    shows, so a "no" with an ACL present is "can't tell".

    >>> can_connect(SocketFacts("/s", True, 0o660, 0, 998), 50000, 0, [0, 998])
    True
    """
    if not sock.exists or sock.mode is None or uid is None:
        return None
    if uid == 0:
        return True
    if uid == sock.uid:
        bits = sock.mode >> 6
    elif sock.gid is not None and (sock.gid == gid or sock.gid in set(groups)):
        bits = sock.mode >> 3
    else:
        bits = sock.mode
    if bits & 0o2:
        return True
    return None if sock.has_acl else False


def worker_view(facts: Facts) -> dict[str, str | int | None]:
    """What the worker itself says: `id` and `docker ps` (the before/after operators look at).

    From a shallow probe the same truth is read on the host instead: the worker's ids from
    /proc and whether the socket's mode lets them connect.
    """
    w = facts.worker
    if facts.deep or not w.found:
        return {"id": w.id_output, "docker_ps_rc": w.docker_ps_rc, "docker_ps": w.docker_ps_output,
                "method": w.docker_check_method}
    ok = can_connect(facts.socket, w.proc_uid, w.proc_gid, w.proc_groups)
    s = facts.socket
    groups = ",".join(map(str, w.proc_groups))
    return {"id": f"uid={w.proc_uid} gid={w.proc_gid} groups={groups} (worker's main process, /proc)",
            "docker_ps_rc": None if ok is None else (0 if ok else 1),
            "docker_ps": f"{'allowed' if ok else 'denied' if ok is False else 'unknown'}: socket "
                         f"{format(s.mode or 0, 'o')} {s.owner}:{s.group}, worker groups {groups}",
            "method": "derived"}


_ID_ENTRY = r"[0-9]{1,10}(?:\([^()\s]*\))?"
_ID_LINE = re.compile(rf"uid={_ID_ENTRY} gid={_ID_ENTRY}(?: groups=({_ID_ENTRY}(?:,{_ID_ENTRY})*))?")


def id_groups(text: str) -> tuple[int, ...] | None:
    """The numeric groups of ``id`` output (the exact list, never a substring); None if no ``id`` line.

    >>> id_groups("uid=50000(airflow) gid=0(root) groups=0(root),999(docker)")
    (0, 999)
    >>> 99 in id_groups("uid=50000(airflow) gid=0(root) groups=0(root),999(docker)")
    False
    """
    for line in lines(text):
        m = _ID_LINE.fullmatch(line.strip())
        if m:
            return tuple(int(e.split("(", 1)[0]) for e in (m.group(1) or "").split(",") if e)
    return None
