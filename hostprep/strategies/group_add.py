"""group-add (default): the host's docker GID as a supplementary group via Compose ``group_add``."""

from __future__ import annotations

from hostprep.host.facts import Facts
from hostprep.strategies.findings import Finding, override_services
from hostprep.layout import OVERRIDE_FILE
from hostprep.inventory.settings import HostSettings
from hostprep.strategies.steps import Draft
from hostprep.strategies.base import Row, Strategy
from hostprep.strategies.groups import (GID_STALE, OVERRIDE_MISSING, gid_stale, group_mapped, id_shows_gid,
                                        override_gone, recorded_services, socket_gid_warning)


class GroupAdd(Strategy):
    name = "group-add"
    help = "the host's docker GID as a supplementary group, in hostprep's Compose override (the default)"
    rules = (GID_STALE, OVERRIDE_MISSING)

    def plan(self, facts: Facts, settings: HostSettings, draft: Draft) -> None:
        draft.warnings += socket_gid_warning(facts)
        for svc in settings.services:
            draft.override.setdefault(svc, {})["group_add"] = [str(facts.access_gid)]
        draft.override_gid = facts.access_gid
        if str(facts.access_gid) not in facts.worker.group_add or facts.access_gid not in facts.worker.proc_groups:
            draft.recreate = True

    def satisfied(self, facts: Facts, settings: HostSettings) -> list[Row]:
        return group_mapped(facts)

    def proof(self, facts: Facts) -> list[Row]:
        return id_shows_gid(facts)

    def drift(self, facts: Facts, settings: HostSettings) -> list[Finding]:
        """The GID in the override and in the running container; the override and the .env line loading it."""
        gid, places = str(facts.access_gid), []
        over = override_services(facts)
        mapped = sorted({str(g) for svc in (over or {}).values() if isinstance(svc, dict)
                         for g in svc.get("group_add") or []})
        if mapped and gid not in mapped:
            places.append(f"{OVERRIDE_FILE} maps {', '.join(mapped)}")
        if facts.worker.group_add and gid not in facts.worker.group_add:
            places.append(f"worker container has group_add {', '.join(facts.worker.group_add)}")
        return (gid_stale(facts, self.name, places)
                + override_gone(facts, self.name, recorded_services(facts, settings), over, group_add=True))
