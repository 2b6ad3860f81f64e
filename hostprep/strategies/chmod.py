"""chmod: ``chmod 666`` on the socket. Explicit only; insecure and undone by dockerd restarts."""

from __future__ import annotations

from hostprep.facts import Facts
from hostprep.findings import CRITICAL, Finding, Rule, provision_hint
from hostprep.settings import HostSettings
from hostprep.steps import Action, Draft, Step
from hostprep.strategies.base import Row, Strategy

WARNING = ("chmod 666 on the Docker socket gives every local user root-equivalent access to the host, "
           "and dockerd resets it on every restart; prefer the default group-add")
CHMOD_LOST = Rule("chmod-lost", CRITICAL, "a recorded chmod 666 still holds")


class ChmodSocket(Strategy):
    name = "chmod"
    help = "chmod 666 on the socket (insecure: every local user gets root-equivalent access)"
    warning = WARNING
    run_warning = ("--strategy chmod makes the Docker socket 666: every local user gets root-equivalent "
                   "access, and a dockerd restart silently undoes it. A snapshot is kept for rollback.")
    needs_docker_group = False
    opens_socket = True
    rules = (CHMOD_LOST,)

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

    def satisfied(self, facts: Facts, settings: HostSettings) -> list[Row]:
        return [("socket is 666", facts.socket.mode == 0o666, oct(facts.socket.mode or 0)[2:])]

    def drift(self, facts: Facts, settings: HostSettings) -> list[Finding]:
        s = facts.socket
        if not s.exists or s.world_writable:
            return []
        return [Finding(CHMOD_LOST, f"{s.path} is {format(s.mode or 0, 'o')} again (dockerd restarted?)",
                        f"`{provision_hint(facts.host, self.name)}` re-applies it; group-add survives restarts")]
