"""The fix strategies' names, in the registry's order, for the command line's help.

``hostprep --help`` lists them without importing the strategies (their policies and parsers are most of
what help would otherwise load); ``tests/unit/strategies/test_registry_names.py`` keeps this tuple equal to
``hostprep.strategies.NAMES``.
"""

from __future__ import annotations

NAMES = ("group-add", "dockerfile", "chmod", "socket-proxy", "remote-tls")
