"""Small field readers the probe's parsers share: digits, octal modes, base64 and JSON objects, as data.

Each raises :class:`~hostprep.host.facts.ProbeFailed` (naming the field) or returns None; never anything else.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from hostprep.hostdata import loads
from hostprep.host.facts import ProbeFailed


_DIGITS = re.compile(r"[0-9]{1,10}")


def int_field(v: str | None) -> int | None:
    """A non-negative decimal of ASCII digits (at most 10), else None.

    >>> [int_field(x) for x in ("998", " 7 ", "\u00b2", "-1", "1" * 11, None)]
    [998, 7, None, None, None, None]
    """
    v = (v or "").strip()
    return int(v) if _DIGITS.fullmatch(v) else None


def need_int(v: str | None, what: str) -> int:
    """Like :func:`int_field`, for a field the probe always prints: malformed is :class:`ProbeFailed`."""
    n = int_field(v)
    if n is None:
        raise ProbeFailed(f"malformed {what} in probe output: {str(v)[:40]!r}")
    return n


def octal_field(v: str, what: str) -> int:
    if not re.fullmatch(r"[0-7]{1,6}", v):
        raise ProbeFailed(f"malformed {what} in probe output: {v[:40]!r}")
    return int(v, 8)


def b64_field(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raise ProbeFailed(f"malformed base64 in probe output ({what})") from None


def json_object(line: str, what: str) -> dict[str, Any]:
    """A JSON object from a base64 field; {} when empty (the container went away meanwhile)."""
    if not line.strip():
        return {}
    try:
        data = loads(b64_field(line, what), what)
    except ValueError:
        raise ProbeFailed(f"malformed {what} JSON in probe output") from None
    if not isinstance(data, dict):
        raise ProbeFailed(f"{what} in probe output is not a JSON object")
    return data


def as_dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def as_str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None
