"""Ansible ``--limit`` host patterns, evaluated on plain data (pure).

Terms are separated by ``:`` or ``,``. A term is a host or group name, a glob
(``web*``, fnmatch, case-sensitive), ``~regex``, or ``all`` / ``*``; a
subscript picks by position, inclusive (``web[0]``, ``web[0:2]``). As in
Ansible, plain terms are unioned first, then ``&term`` intersects and
``!term`` excludes, whatever order they were written in:

>>> select_hosts("prod:&web:!web2", ["web1", "web2", "db1"],
...              {"all": ["web1", "web2", "db1"], "prod": ["web1", "web2", "db1"], "web": ["web1", "web2"]})
['web1']

Unlike Ansible, which warns and carries on, a term that names nothing is an
error: a typo in ``!canary`` must not widen a run to the canary.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Callable, Mapping, Sequence

from hostprep.errors import InventoryError

_TERM = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")
_SUBSCRIPT = re.compile(r"(.+)\[(?:(-?[0-9]{1,9})|([0-9]{1,9}):([0-9]{1,9})?)\]")   # fullmatch
_SHOWN = 20


def split_pattern(pattern: str) -> list[str]:
    """``"a:b,&c:!d"`` -> ``["a", "b", "&c", "!d"]``; ``[1:3]`` brackets stay whole."""
    return [t for piece in pattern.split(",") for t in _TERM.findall(piece)]


def order_terms(terms: Sequence[str]) -> list[str]:
    """Unions, then intersections, then exclusions; start from ``all`` when no plain term."""
    plain = [t for t in terms if t[0] not in "&!"]
    return (plain or ["all"]) + [t for t in terms if t[0] == "&"] + [t for t in terms if t[0] == "!"]


def select_hosts(pattern: str, hosts: Sequence[str], groups: Mapping[str, Sequence[str]]) -> list[str]:
    """Host names matching ``pattern``, in inventory order.

    ``hosts`` lists every host in inventory order; ``groups`` maps each group
    (including ``all``) to all its hosts, through child groups too.
    """
    if not pattern or not pattern.strip():
        raise InventoryError("empty host pattern; use 'all' for every host")
    terms = [pattern.strip()] if pattern.strip() in hosts or pattern.strip() in groups else split_pattern(pattern)
    selected: set[str] = set()
    for term in order_terms(terms):
        op, name = (term[0], term[1:]) if term[0] in "&!" else ("", term)
        if not name:
            raise InventoryError(f"host pattern {pattern!r}: {term!r} needs a name after {op!r}")
        matched = set(_match_term(name, hosts, groups, pattern))
        if op == "&":
            selected &= matched
        elif op == "!":
            selected -= matched
        else:
            selected |= matched
    return [h for h in hosts if h in selected]


def _match_term(term: str, hosts: Sequence[str], groups: Mapping[str, Sequence[str]], pattern: str) -> list[str]:
    """Hosts of matching groups; hosts by name too when no group matched or the term is a glob."""
    m = None if term.startswith("~") else _SUBSCRIPT.fullmatch(term)
    if m:
        base, index, start, end = m.groups()
        inside = set(_match_term(base, hosts, groups, pattern))
        found = [h for h in hosts if h in inside]
        if index is not None:
            i = int(index)
            picked = [found[i]] if -len(found) <= i < len(found) else []
        else:
            picked = found[int(start) : int(end) + 1 if end else len(found)]
        if not picked:
            raise InventoryError(f"host pattern {pattern!r}: {term!r} is out of range ({len(found)} hosts)")
        return picked
    matches = _matcher(term, pattern)
    wildcard = term.startswith("~") or any(c in term for c in "*?[.")
    found_groups = [g for g in groups if matches(g)]
    result = [h for g in found_groups for h in groups[g]]
    if not found_groups or wildcard:
        result += [h for h in hosts if matches(h)]
    if not result and not found_groups:
        raise InventoryError(
            f"host pattern {pattern!r}: {term!r} matches no host or group. "
            f"Groups: {_listing(list(groups))}. Hosts: {_listing(list(hosts))}."
        )
    return result


def _matcher(term: str, pattern: str) -> Callable[[str], bool]:
    if term.startswith("~"):
        try:
            regex = re.compile(term[1:])
        except re.error as exc:
            raise InventoryError(f"host pattern {pattern[:200]!r}: bad regex {term[1:200]!r}: {exc}") from None
        except (OverflowError, RecursionError, ValueError):   # e.g. a{99999999999}: a count re cannot hold
            raise InventoryError(f"host pattern {pattern[:200]!r}: regex {term[1:200]!r} is too large") from None
        return lambda name: regex.search(name) is not None
    return lambda name: fnmatch.fnmatchcase(name, term)


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN]) or "(none)"
    return shown + (f" ... ({len(names) - _SHOWN} more)" if len(names) > _SHOWN else "")
