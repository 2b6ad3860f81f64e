"""The strategy registry: every fix strategy, by name. Settings, the CLI, the plan, the audit and
verification ask here; none of them names a strategy.

A new strategy is one module, ``hostprep/strategies/<name>.py`` (a :class:`Strategy` subclass,
see ``base.py``), plus one line in ``REGISTRY`` below.
"""

from __future__ import annotations

from hostprep.strategies.findings import Rule
from hostprep.strategies.base import Strategy
from hostprep.strategies.chmod import ChmodSocket
from hostprep.strategies.dockerfile import DockerfileGroup
from hostprep.strategies.group_add import GroupAdd
from hostprep.strategies.remote_tls import RemoteTls
from hostprep.strategies.socket_proxy import SocketProxy

REGISTRY: tuple[Strategy, ...] = (
    GroupAdd(),
    DockerfileGroup(),
    ChmodSocket(),
    SocketProxy(),
    RemoteTls(),
)

BY_NAME = {s.name: s for s in REGISTRY}
NAMES = tuple(BY_NAME)


def get(name: str) -> Strategy:
    """The strategy called ``name``; ``ValueError`` listing the choices otherwise."""
    if name not in BY_NAME:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(NAMES)}")
    return BY_NAME[name]


def find(name: object) -> Strategy | None:
    """The strategy a host's record names, or None (nothing applied, or a name this version does not know)."""
    return BY_NAME.get(name) if isinstance(name, str) else None


def rules() -> tuple[Rule, ...]:
    """Every strategy's own audit rules, once each, in registry order."""
    return tuple({r.id: r for s in REGISTRY for r in s.rules}.values())


def settings() -> tuple[str, ...]:
    """Every strategy's own hostprep_* vars."""
    return tuple(dict.fromkeys(v for s in REGISTRY for v in s.settings))
