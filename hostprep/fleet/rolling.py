"""Rolling changes, as Ansible's ``serial`` and ``max_fail_percentage``: hosts in batches, each batch
changed and verified before the next, the rollout stopped when a batch fails beyond the limit. Pure.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence, TypeVar

from hostprep.errors import SettingsError

T = TypeVar("T")

_SPEC = re.compile(r"(?:[1-9][0-9]{0,5})|(?:(?:100|[1-9][0-9]?)%)")
_PERCENT = re.compile(r"(?:100|[1-9]?[0-9])%?")


@dataclass(frozen=True)
class Rollout:
    """``serial``: hosts per batch (a count or a percentage of the selection); ``max_fail``: the
    percentage of a batch that may fail before the rollout stops (Ansible: the rollout stops when
    *more* than it failed; 0 = any failure stops it; None = never stop)."""

    serial: str | None = None
    max_fail: int | None = None

    def batches(self, items: Sequence[T]) -> list[list[T]]:
        """``items`` in batches of ``serial`` (all at once without one).

        >>> Rollout("2").batches([1, 2, 3, 4, 5])
        [[1, 2], [3, 4], [5]]
        >>> Rollout("50%").batches([1, 2, 3, 4, 5])
        [[1, 2], [3, 4], [5]]
        >>> Rollout().batches([1, 2, 3])
        [[1, 2, 3]]
        """
        size = batch_size(self.serial, len(items))
        return [list(items[i:i + size]) for i in range(0, len(items), size)] if items else []

    def stops_after(self, failed: int, total: int) -> bool:
        """Does a batch with ``failed`` of ``total`` hosts failed stop the rollout?

        >>> Rollout("2", 0).stops_after(1, 2), Rollout("2", 50).stops_after(1, 2), Rollout("2", 49).stops_after(1, 2)
        (True, False, True)
        >>> Rollout("2").stops_after(2, 2)
        False
        """
        if self.max_fail is None or total == 0 or failed == 0:
            return False
        return failed * 100 > self.max_fail * total


def batch_size(serial: str | None, n: int) -> int:
    """Hosts per batch: ``serial`` as a count, or a percentage of ``n`` (at least 1, as Ansible)."""
    if serial is None:
        return max(1, n)
    if serial.endswith("%"):
        return max(1, math.floor(n * int(serial[:-1]) / 100))
    return int(serial)


def parse(serial: str | None, max_fail: str | int | None) -> Rollout:
    """The CLI's ``--serial N|P%`` and ``--max-fail P%``, full-match checked.

    >>> parse("25%", "0%")
    Rollout(serial='25%', max_fail=0)
    >>> parse("0", None)
    Traceback (most recent call last):
    ...
    hostprep.errors.SettingsError: --serial must be a host count (1-999999) or a percentage (1%-100%), got '0'
    """
    if serial is not None and not _SPEC.fullmatch(str(serial)):
        raise SettingsError(f"--serial must be a host count (1-999999) or a percentage (1%-100%), got {str(serial)!r}")
    limit = None
    if max_fail is not None:
        if not _PERCENT.fullmatch(str(max_fail)):
            raise SettingsError(f"--max-fail must be a percentage (0%-100%), got {str(max_fail)!r}")
        limit = int(str(max_fail).rstrip("%"))
    return Rollout(None if serial is None else str(serial), limit)
