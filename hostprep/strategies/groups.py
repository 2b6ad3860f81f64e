"""What the group-mapping strategies (group-add, dockerfile) share: the worker must hold the
host's docker GID with primary group 0, and every place that names the GID must name the current one."""

from __future__ import annotations

from typing import Any

from hostprep.host.access import id_groups
from hostprep.host.facts import Facts
from hostprep.strategies.findings import CRITICAL, WARNING, Finding, Rule, override_chain_broken, provision_hint
from hostprep.layout import OVERRIDE_FILE
from hostprep.inventory.settings import HostSettings
from hostprep.host.socket_unit import REMADE_BY
from hostprep.strategies.base import Row

GID_STALE = Rule("gid-mapping-stale", CRITICAL, "the mapped GID is the host's current docker GID")
OVERRIDE_MISSING = Rule("override-missing", WARNING, "hostprep's Compose override is in place and loaded")


def group_mapped(facts: Facts) -> list[Row]:
    """The worker holds the docker GID and keeps primary GID 0."""
    gid = facts.access_gid
    return [
        ("worker has the docker GID", gid in facts.worker.proc_groups,
         f"groups {list(facts.worker.proc_groups)}, docker GID {gid}"),
        ("worker primary GID is 0", facts.worker.proc_gid == 0, f"gid {facts.worker.proc_gid}"),
    ]


def id_shows_gid(facts: Facts) -> list[Row]:
    """`id` in the worker lists the docker GID."""
    gid, groups = facts.access_gid, id_groups(facts.worker.id_output or "")
    return [("`id` in the worker shows the docker GID", gid is not None and gid in (groups or ()),
             facts.worker.id_output or "no output")]


def socket_gid_warning(facts: Facts) -> list[str]:
    """Said in the plan when the socket's GID is not /etc/group's (a systemd socket after ``groupmod``)."""
    now, nxt = facts.access_gid, facts.next_socket_gid
    if now is None or nxt is None or now == nxt or facts.socket_manager is None:
        return []
    return [f"the socket's GID is {now} but the docker group is {nxt} in /etc/group: hostprep maps {now}, the GID "
            f"that opens the socket now; {REMADE_BY[facts.socket_manager]} makes it {nxt}: provision again then "
            "(`invoke audit` reports socket-gid-will-change until they agree)"]


def recorded_services(facts: Facts, settings: HostSettings) -> list[str]:
    """The services hostprep's record says it fixed (else the inventory's)."""
    return list((facts.record or {}).get("services") or settings.services)


def gid_stale(facts: Facts, strategy: str, places: list[str]) -> list[Finding]:
    """One finding naming every stale place (``places``, plus the record's GID if it is stale too)."""
    gid, rec = facts.access_gid, facts.record or {}
    stale = ([f"recorded {rec['docker_gid']}"] if rec.get("docker_gid") not in (None, gid) else []) + places
    if gid is None or not stale:
        return []
    return [Finding(GID_STALE, f"host's docker GID is now {gid}; " + "; ".join(stale),
                    f"`{provision_hint(facts.host, strategy)}` maps GID {gid} and recreates the worker")]


def override_gone(facts: Facts, strategy: str, services: list[str], over: dict[str, Any] | None, *,
                  group_add: bool) -> list[Finding]:
    """override-missing when hostprep's override (its services ``over``, see ``findings.override_services``;
    with ``group_add`` for ``services``, if asked) no longer takes effect on the next `compose up`."""
    if over is None:
        why: str | None = f"{OVERRIDE_FILE} is gone or no longer hostprep's"
    else:
        missing = [s for s in services if not (isinstance(over.get(s), dict) and over[s].get("group_add"))]
        why = (f"{OVERRIDE_FILE} no longer adds the docker group to {', '.join(missing)}" if group_add and missing
               else override_chain_broken(facts))
    if why is None:
        return []
    return [Finding(OVERRIDE_MISSING, why + "; the next `compose up` drops the fix",
                    f"`{provision_hint(facts.host, strategy)}` writes it again")]
