"""YAML from files other people write, loaded with limits: no alias bomb, no deep nesting, no hang.

libyaml keeps an alias as a reference to one object, so loading a "billion laughs" document
is cheap; the blow-up comes later, when anything walks or prints it (``str()`` of a 495-byte
``user:`` hung). :func:`check` walks the event stream once (linear in the text) and refuses a
document whose aliases would add more than ``MAX_ALIAS_NODES`` nodes to those written out, or
that nests deeper than ``MAX_DEPTH``.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_ALIAS_NODES = 100_000   # nodes aliases may add beyond the text's own (the lab's compose file: ~60)
MAX_DEPTH = 200       # nested collections
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlLimit(ValueError):
    """The document is over one of the limits (the message says which)."""


def check(text: str) -> None:
    """Refuse a document whose alias expansion or nesting is over the limits; YAML errors pass through.

    >>> check("a: &x [1, 2]\\nb: *x\\n")
    >>> bomb = "a: &a [x, x, x, x, x, x, x, x, x]\\n" + "".join(
    ...     f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\\n" for p, n in zip("abcdefgh", "bcdefghi"))
    >>> try:
    ...     check(bomb)
    ... except YamlLimit as exc:
    ...     print(exc)
    aliases expand to more than 100000 nodes (a YAML alias bomb?)
    """
    sizes: dict[str, int] = {}
    stack: list[list[Any]] = []   # [node count so far, anchor]
    total = written = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent, yaml.ScalarEvent)):
            written += 1
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            stack.append([1, event.anchor])
            if len(stack) > MAX_DEPTH:
                raise YamlLimit(f"nested deeper than {MAX_DEPTH} levels")
            continue
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            size, anchor = stack.pop()
        elif isinstance(event, yaml.ScalarEvent):
            size, anchor = 1, event.anchor
        elif isinstance(event, yaml.AliasEvent):
            size, anchor = sizes.get(event.anchor or "", 1), None
        else:
            continue
        if anchor:
            sizes[anchor] = size
        if stack:
            stack[-1][0] += size
        else:
            total += size
        cap = written + MAX_ALIAS_NODES   # no part of the document can be bigger, expanded
        if size > cap or total > cap or (stack and stack[-1][0] > cap):
            raise YamlLimit(f"aliases expand to more than {MAX_ALIAS_NODES} nodes (a YAML alias bomb?)")


def load(text: str, loader: Any = _Loader) -> Any:
    """:func:`check`, then load with ``loader`` (a SafeLoader); YAMLError and YamlLimit pass through."""
    check(text)
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - SafeLoader or a subclass
    except RecursionError:
        raise YamlLimit(f"nested deeper than {MAX_DEPTH} levels") from None
