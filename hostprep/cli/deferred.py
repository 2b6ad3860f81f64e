"""A module imported when it is first used, not when its importer is: how the CLI keeps start-up light.

`hostprep --version` needs nothing but the version, `hostprep TASK --help` needs Invoke and the tasks'
options, and only a task that runs needs the library (paramiko, Fabric, the inventory's YAML). So the
edge names the modules its task bodies use as ``Deferred("hostprep.cli.commands")`` (for mypy, the same
module under ``TYPE_CHECKING``), and the first attribute read imports it.

This is hostprep's only import by name; tests/unit/test_architecture.py exempts this module, and only it.
The import happens on the thread that first reads an attribute (the task body, before any fan-out), under
Python's import lock: a module is never seen half-loaded.

>>> Deferred("json").dumps([1])
'[1]'
"""

from __future__ import annotations

import importlib
from typing import Any


class Deferred:
    """A module by name, imported on the first attribute read (then Python's own ``sys.modules`` cache)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"Deferred({self._name!r})"
