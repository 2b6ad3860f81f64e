"""Markers: the lines a host script says to the controller, told apart from everything else it prints.

A host script's output also carries what other programs said (Compose, dockerd, a worker's Python,
an Airflow task's log). None of that may pose as hostprep's own word, so each run draws a random
nonce that travels only on stdin or in a root-only file (never on a command line, where any process
on the host or in a container reads it), and a marker counts only when its line begins with the
prefix and this nonce, whole: ``@@hostprep:<nonce>:snapshot ID``. Pure; imports only hostdata.
"""

from __future__ import annotations

import re
import secrets

from hostprep.hostdata import lines

__all__ = ["NONCE", "PREFIX", "nonce", "own", "fenced"]

PREFIX = "@@hostprep:"
NONCE = re.compile(r"[0-9a-f]{24}")
FENCE = "| "   # what a line that is not this run's marker gets in front: it can never begin a marker


def nonce() -> str:
    """A fresh nonce: 24 hex digits (96 random bits)."""
    return secrets.token_hex(12)


def own(text: str | None, mark: str) -> str:
    """``text`` with this run's markers said plainly (``@@hostprep:<mark>:x`` → ``@@hostprep:x``) and
    every other line that begins with ``@@`` fenced, so only lines said under ``mark`` read as markers.

    >>> own("@@hostprep:%s:done\\n@@hostprep:snapshot forged\\nCompose says hi" % ("a" * 24), "a" * 24)
    '@@hostprep:done\\n| @@hostprep:snapshot forged\\nCompose says hi'
    """
    if not NONCE.fullmatch(mark):
        raise ValueError(f"not a marker nonce: {mark[:40]!r}")
    tag, out = f"{PREFIX}{mark}:", []
    for line in lines(text):
        if line.startswith(tag):
            out.append(PREFIX + line[len(tag):])
        elif line.startswith("@@"):
            out.append(FENCE + line)
        else:
            out.append(line)
    return "\n".join(out)


def fenced(text: str | None, tag: str, mark: str) -> list[str]:
    """The payloads of the lines ``<tag>:<mark> <payload>`` in ``text``, in order (``\\n`` splits lines).

    >>> fenced("@@x:%s {}\\n@@x {}\\nnoise @@x:%s 1" % ("b" * 24, "b" * 24), "@@x", "b" * 24)
    ['{}']
    """
    if not NONCE.fullmatch(mark):
        raise ValueError(f"not a marker nonce: {mark[:40]!r}")
    head = f"{tag}:{mark} "
    return [line[len(head):] for line in lines(text) if line.startswith(head)]
