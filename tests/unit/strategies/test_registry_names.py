"""The command line's list of strategy names (``hostprep.strategy_names``) is the registry's, in its order."""

from __future__ import annotations

from hostprep import strategies
from hostprep.strategy_names import NAMES


def test_the_help_lists_every_registered_strategy_in_the_registrys_order() -> None:
    assert NAMES == strategies.NAMES
