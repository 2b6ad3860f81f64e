"""A host's vars as a whole -> :class:`HostSettings`: the common settings (``hostprep.inventory.settings``),
then the chosen strategy's own (it validates them); and the CLI's own inputs.

Everything is checked before any connection; errors name the host and the var.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Mapping

from hostprep import strategies
from hostprep.errors import SettingsError
from hostprep.inventory.hosts import HostEntry
from hostprep.inventory.settings import HostSettings, host_name, smoke_dag


def host_settings(vars: Mapping[str, Any]) -> HostSettings:
    """Validate a host's merged vars (connection vars too); unset settings take defaults.

    >>> host_settings({"hostprep_strategy": "chmod"}).strategy
    'chmod'
    """
    base = HostSettings.from_vars(vars, strategies.NAMES, strategies.settings())
    # every strategy's own settings, validated whichever the inventory chose (`--strategy` may pick another)
    own = {k: v for s in strategies.REGISTRY for k, v in s.options(vars).items()}
    return replace(base, options=tuple(sorted(own.items()))) if own else base


def validate_host(entry: HostEntry) -> HostSettings:
    """Settings for one inventory host; errors start with the host name (itself checked first)."""
    host_name(entry.name)
    try:
        return host_settings(entry.vars)
    except SettingsError as exc:
        raise SettingsError(f"{entry.name}: {exc}") from None


def strategy_arg(name: str | None) -> str | None:
    """``--strategy``: a registered name (or None: the inventory's)."""
    if name is not None and name not in strategies.NAMES:
        raise SettingsError(f"unknown strategy {name!r}; choose one of {', '.join(strategies.NAMES)}")
    return name


def smoke_dag_arg(value: str | None) -> str | None:
    """``--smoke-dag``: DAG_ID or DAG_ID:TASK_ID, checked before anything connects."""
    try:
        return smoke_dag(value) if value else None
    except SettingsError as exc:
        raise SettingsError(f"--smoke-dag: {exc}") from None


def seconds_arg(name: str, value: object, *, most: int = 7 * 86400) -> int:
    """A ``--NAME SECONDS`` option: ASCII digits, 0..``most``.

    >>> seconds_arg("drain-timeout", "90")
    90
    >>> seconds_arg("drain-timeout", "1e3")
    Traceback (most recent call last):
    ...
    hostprep.errors.SettingsError: --drain-timeout must be whole seconds (0-604800), got '1e3'
    """
    text = str(value)
    if not re.fullmatch(r"[0-9]{1,7}", text) or int(text) > most:
        raise SettingsError(f"--{name} must be whole seconds (0-{most}), got {text[:40]!r}")
    return int(text)
