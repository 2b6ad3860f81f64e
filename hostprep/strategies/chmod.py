"""chmod: ``chmod 666`` on the socket. Explicit only; insecure, and undone whenever the socket is made again.

What makes it again depends on the host: on a systemd host (docker.socket, ``dockerd -H fd://``) a
reboot or a restart of docker.socket, but not ``systemctl restart docker``; where dockerd makes its own
socket, every dockerd restart.
"""

from __future__ import annotations

from hostprep.host.facts import Facts
from hostprep.strategies.findings import CRITICAL, Finding, Rule, provision_hint
from hostprep.inventory.settings import HostSettings
from hostprep.host.socket_unit import REMADE_BY, undone_by
from hostprep.strategies.steps import Action, Draft, Step
from hostprep.strategies.base import Row, Strategy

INSECURE = "chmod 666 on the Docker socket gives every local user root-equivalent access to the host"
CHMOD_LOST = Rule("chmod-lost", CRITICAL, "a recorded chmod 666 still holds")


def plan_warning(facts: Facts) -> str:
    """The plan's warning, with what undoes the chmod on this kind of host."""
    return f"{INSECURE}, and {undone_by(facts.socket_manager)}; prefer the default group-add"


class ChmodSocket(Strategy):
    name = "chmod"
    help = "chmod 666 on the socket (insecure: every local user gets root-equivalent access)"
    warning = f"{INSECURE}, and the next time the socket is made (reboot, docker.socket or dockerd restart) undoes it"
    run_warning = ("--strategy chmod makes the Docker socket 666: every local user gets root-equivalent "
                   "access, and a reboot (or a restart of docker.socket; of dockerd where dockerd makes its own "
                   "socket) silently undoes it. A snapshot is kept for rollback.")
    needs_docker_group = False
    opens_socket = True
    rules = (CHMOD_LOST,)

    def plan(self, facts: Facts, settings: HostSettings, draft: Draft) -> None:
        draft.warnings.append(plan_warning(facts))
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
        return [Finding(CHMOD_LOST, f"{s.path} is {format(s.mode or 0, 'o')} again: the socket was made again "
                        f"since the chmod ({REMADE_BY[facts.socket_manager]})",
                        f"`{provision_hint(facts.host, self.name)}` re-applies it; group-add survives restarts "
                        "and reboots")]
