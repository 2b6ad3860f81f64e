"""chmod: ``chmod 666`` on the socket. Explicit only; insecure and undone by dockerd restarts."""

from __future__ import annotations

from hostprep.facts import Facts
from hostprep.plan import Action, Draft, Step
from hostprep.settings import HostSettings

WARNING = ("chmod 666 on the Docker socket gives every local user root-equivalent access to the host, "
           "and dockerd resets it on every restart; prefer the default group-add")


class ChmodSocket:
    name = "chmod"

    def plan(self, facts: Facts, settings: HostSettings, draft: Draft) -> None:
        draft.warnings.append(WARNING)
        mode = facts.socket.mode
        if mode == 0o666:
            return
        draft.steps.append(Step(
            f"chmod 666 {facts.socket.path}", "every user may use the socket (requested explicitly)",
            (Action("chmod", (facts.socket.path, "666")),),
            f"{oct(mode or 0)[2:]} {facts.socket.owner}:{facts.socket.group}",
            f"666 {facts.socket.owner}:{facts.socket.group}"))

    def satisfied(self, facts: Facts, settings: HostSettings) -> list[tuple[str, bool, str]]:
        return [("socket is 666", facts.socket.mode == 0o666, oct(facts.socket.mode or 0)[2:])]
