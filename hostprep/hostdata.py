"""What a host (or another program) says is data: split and decoded one way, everywhere.

``str.splitlines()`` also breaks lines at ``\\x1c \\x1d \\x1e \\x85 \\u2028 \\u2029 \\v \\f \\r``, so a
byte a DAG author wrote in a comment could open a line of its own in the probe's output and pose
as a fact. Every line-oriented read of host output goes through :func:`lines` (``"\\n"`` only), and
every JSON read through :func:`loads` (deep nesting is a ``ValueError``, not a ``RecursionError``).
This module imports nothing from hostprep.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["MAX_JSON_DEPTH", "lines", "lines_kept", "loads"]

MAX_JSON_DEPTH = 64   # deeper than anything hostprep, dockerd or Compose writes


def lines(text: str | None) -> list[str]:
    r"""``text`` split at ``"\n"`` only, without a last empty line (as ``splitlines`` would drop it).

    >>> lines("a\x1cb\u2028c\r\nd\n")
    ['a\x1cb\u2028c\r', 'd']
    >>> lines("") == lines(None) == []
    True
    """
    if not text:
        return []
    out = text.split("\n")
    if out[-1] == "":
        out.pop()
    return out


def lines_kept(text: str | None) -> list[str]:
    r"""Like ``splitlines(keepends=True)``, at ``"\n"`` only: joined, the lines give ``text`` back exactly.

    >>> lines_kept("a\x85b\nc")
    ['a\x85b\n', 'c']
    """
    rows = [ln + "\n" for ln in (text or "").split("\n")]
    rows[-1] = rows[-1][:-1]
    return rows if rows[-1] else rows[:-1]


_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]')


def _depth(text: str) -> int:
    """How deep brackets nest in ``text`` outside strings: one linear regex scan, never recursive."""
    depth = deepest = 0
    for m in _TOKENS.finditer(text):
        ch = m.group(0)
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def loads(text: str | bytes, what: str = "JSON") -> Any:
    """``json.loads`` that raises only ``ValueError`` (naming ``what``), also for nesting deeper than
    :data:`MAX_JSON_DEPTH` or bytes that are not UTF-8.

    >>> loads('{"a": [1]}')
    {'a': [1]}
    >>> loads("[" * 1000)
    Traceback (most recent call last):
    ...
    ValueError: JSON: nested deeper than 64 levels
    """
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{what}: not UTF-8") from None
    if _depth(text) > MAX_JSON_DEPTH:
        raise ValueError(f"{what}: nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text)
    except RecursionError:   # pragma: no cover - the depth check comes first
        raise ValueError(f"{what}: nested too deeply") from None
