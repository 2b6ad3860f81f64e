"""What a strategy is. Each one lives in its own module and owns everything about itself:
settings, plan, desired-state check, in-worker proof, audit rules and findings, warning and help.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

from hostprep.host.facts import Facts
from hostprep.strategies.findings import Finding, Rule
from hostprep.inventory.settings import HostSettings
from hostprep.strategies.steps import Draft

Row = tuple[str, bool, str]   # (check, ok, detail)


class Strategy:
    """A fix for Docker socket access. Subclass it in ``hostprep/strategies/<name>.py`` and add one
    instance to ``REGISTRY`` in ``hostprep/strategies/__init__.py``."""

    name: ClassVar[str]
    help: ClassVar[str]                        # one line, for --strategy's help
    warning: ClassVar[str | None] = None       # in every plan with this strategy
    run_warning: ClassVar[str | None] = None   # what the CLI says before a run asks for it
    needs_docker_group: ClassVar[bool] = True  # refuse hosts without a 'docker' group
    opens_socket: ClassVar[bool] = False       # leaves the socket world-writable on purpose
    settings: ClassVar[tuple[str, ...]] = ()   # its own hostprep_* vars (validated by ``options``)
    rules: ClassVar[tuple[Rule, ...]] = ()     # its own audit rules (``drift`` reports them)

    def options(self, vars: Mapping[str, Any]) -> dict[str, Any]:
        """This strategy's own settings from a host's vars, validated (raise ``SettingsError``)."""
        return {}

    def docker_url(self, settings: HostSettings) -> str | None:
        """The DOCKER_HOST this strategy gives the worker (``tcp://NAME:PORT``), if it does not use the socket;
        the in-worker checks use it too."""
        return None

    def plan(self, facts: Facts, settings: HostSettings, draft: Draft) -> None:
        """Add this strategy's steps, problems, warnings and override entries to the draft."""
        raise NotImplementedError

    def satisfied(self, facts: Facts, settings: HostSettings) -> list[Row]:
        """The desired state: rows that must all hold once the fix is in place (host-side facts)."""
        raise NotImplementedError

    def proof(self, facts: Facts) -> list[Row]:
        """What deep facts (``id`` and ``docker ps`` in the worker) must show, besides ``docker ps`` working."""
        return []

    def drift(self, facts: Facts, settings: HostSettings) -> list[Finding]:
        """Audit findings on a host where hostprep's record says this strategy is applied."""
        return []

    def __repr__(self) -> str:
        return f"<Strategy {self.name}>"
