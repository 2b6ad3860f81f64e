"""group-add (default): the host's docker GID as a supplementary group via Compose ``group_add``."""

from __future__ import annotations

from hostprep.facts import Facts
from hostprep.plan import Draft
from hostprep.settings import HostSettings


class GroupAdd:
    name = "group-add"

    def plan(self, facts: Facts, settings: HostSettings, draft: Draft) -> None:
        for svc in settings.services:
            draft.override.setdefault(svc, {})["group_add"] = [str(facts.docker_gid)]
        if str(facts.docker_gid) not in facts.worker.group_add or facts.docker_gid not in facts.worker.proc_groups:
            draft.recreate = True

    def satisfied(self, facts: Facts, settings: HostSettings) -> list[tuple[str, bool, str]]:
        from hostprep.strategies import group_mapped

        return group_mapped(facts)
