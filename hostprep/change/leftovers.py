"""Compose's leftovers from an interrupted recreate, recognised from the facts. Pure.

To recreate a container Compose gives a copy of the service a temporary name, ``<12 hex digits of a container
id>_<name>``: Compose v1 (and early v2) renames the old container so (its own id), stops it, creates the new one
under the real name and then removes the old; Compose 2.2x creates the new container under that name (the old
one's id), stops and removes the old, then renames the new one. A run cut in between (killed, SIGTERM, a reboot)
leaves that copy behind, stopped (or created and never started), still labelled with its service. It is not
what Compose runs for the service: a snapshot never records it, a rollback never judges the service by it, and
the next provision or rollback removes it (by container id, re-checked on the host).
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from hostprep.host.containers import ContainerFacts
from hostprep.host.facts import Facts
from hostprep.strategies.steps import Action, Step

__all__ = ["CONTAINER_ID", "is_leftover", "leftovers", "removal_steps", "without_leftovers"]

CONTAINER_ID = re.compile(r"[0-9a-f]{64}")
_RENAMED = re.compile(r"([0-9a-f]{12})_([A-Za-z0-9][A-Za-z0-9_.-]{0,250})")
WHY = "left by an interrupted recreate"


def is_leftover(cid: Any, name: Any, service: Any, running: Any) -> bool:
    """A stopped container of a Compose service under Compose's temporary name ``<12 hex digits>_<name>``.

    >>> is_leftover("ab" * 32, "cdcdcdcdcdcd_airflow-airflow-worker-1", "airflow-worker", False)
    True
    >>> is_leftover("ab" * 32, "cdcdcdcdcdcd_airflow-airflow-worker-1", "airflow-worker", True)
    False
    """
    if not (isinstance(cid, str) and isinstance(name, str) and isinstance(service, str) and service):
        return False
    return running is False and _RENAMED.fullmatch(name.lstrip("/")) is not None and CONTAINER_ID.fullmatch(cid) is not None


def leftovers(containers: Iterable[ContainerFacts], project: str | None) -> list[ContainerFacts]:
    """The leftovers among ``containers`` that belong to the Compose ``project`` (None: none)."""
    if project is None:
        return []
    return [c for c in containers if c.project == project and is_leftover(c.id, c.name, c.service, c.running)]


def removal_steps(facts: Facts) -> list[Step]:
    """One step per leftover of the worker's Compose project: remove it by its id (apply.sh re-checks its name
    and state). A provision plans them first; a rollback and a recovery run them before their restore."""
    return [Step(f"remove leftover container {c.name} ({WHY})", f"a stopped copy of {c.service}; not part of the service",
                 (Action("container-rm", (c.id,)),)) for c in leftovers(facts.containers, facts.worker.compose_project)]


def without_leftovers(containers: Any) -> Any:
    """``containers`` as facts dicts (a snapshot's), leftovers dropped; anything that is not a list is kept as is."""
    if not isinstance(containers, (list, tuple)):
        return containers
    return [c for c in containers if not (isinstance(c, dict) and
                                          is_leftover(c.get("id"), c.get("name"), c.get("service"), c.get("running")))]
