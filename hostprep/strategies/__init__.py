"""Fix strategies, registered by name. Each one plans its own steps and says what verification expects."""

from __future__ import annotations

from typing import Protocol

from hostprep.facts import Facts
from hostprep.plan import Draft
from hostprep.settings import HostSettings


class Strategy(Protocol):
    name: str

    def plan(self, facts: Facts, settings: HostSettings, draft: Draft) -> None:
        """Add this strategy's steps, problems and warnings to the draft."""

    def satisfied(self, facts: Facts, settings: HostSettings) -> list[tuple[str, bool, str]]:
        """(check, ok, detail) rows that must all hold once the fix is in place."""


def group_mapped(facts: Facts) -> list[tuple[str, bool, str]]:
    """Checks shared by the group strategies: the worker holds the docker GID and keeps primary GID 0."""
    gid = facts.docker_gid
    return [
        ("worker has the docker GID", gid in facts.worker.proc_groups,
         f"groups {list(facts.worker.proc_groups)}, docker GID {gid}"),
        ("worker primary GID is 0", facts.worker.proc_gid == 0, f"gid {facts.worker.proc_gid}"),
    ]


def get(name: str) -> Strategy:
    from hostprep.strategies import chmod, dockerfile, group_add

    registry: dict[str, Strategy] = {
        "group-add": group_add.GroupAdd(),
        "dockerfile": dockerfile.DockerfileGroup(),
        "chmod": chmod.ChmodSocket(),
    }
    if name not in registry:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(registry)}")
    return registry[name]


NAMES = ("group-add", "dockerfile", "chmod")
