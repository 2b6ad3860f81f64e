"""The plan's types: actions for the host interpreter, steps with before/after, the plan. Pure.

Strategies fill a :class:`Draft`; ``plan.make_plan`` freezes it into a :class:`Plan`. These
types sit below both, so neither imports the other to get them.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, replace

from hostprep.host.facts import Facts
from hostprep.hostdata import lines
from hostprep.layout import path_in
from hostprep.redact import redact

SAFE_ARG = re.compile(r"[A-Za-z0-9_./@+:=-]+")   # whole value (fullmatch): no space, newline, glob or quote


@dataclass(frozen=True)
class Action:
    """One primitive the host-side interpreter (apply.sh) executes."""

    op: str
    args: tuple[str, ...] = ()
    content: str | None = None

    def __post_init__(self) -> None:
        for a in (self.op, *self.args):
            if not isinstance(a, str) or not SAFE_ARG.fullmatch(a):
                raise ValueError(f"unsafe value in action {self.op}: {a!r}")

    def __repr__(self) -> str:
        return f"<Action {self.op} {' '.join(self.args)}>"


@dataclass(frozen=True)
class Step:
    """A change with its reason and a before/after for the diff."""

    name: str
    why: str
    actions: tuple[Action, ...]
    before: str | None = None
    after: str | None = None

    def diff(self) -> str:
        """Unified diff of before → after (empty when not a text change), credentials masked."""
        if self.before is None and self.after is None:
            return ""
        a = [ln + "\n" for ln in lines(redact(self.before or ""))]   # "\n" only: a file's \x85 opens no line here
        b = [ln + "\n" for ln in lines(redact(self.after or ""))]
        return "".join(difflib.unified_diff(a, b, f"before/{self.name}", f"after/{self.name}"))


@dataclass(frozen=True)
class Plan:
    host: str
    strategy: str
    steps: tuple[Step, ...] = ()
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    docker_gid: int | None = None
    more_services: tuple[str, ...] = ()     # services the override adds (started with the fixed ones)
    added_services: tuple[str, ...] = ()    # of those, the ones a rollback removes (not there before)
    added_networks: tuple[str, ...] = ()    # networks the override adds that a rollback removes
    project: str | None = None              # the Compose project name (its networks carry it)
    switched_from: str | None = None        # the recorded strategy this plan undoes first (hostprep.change.switch)

    @property
    def changed(self) -> bool:
        return bool(self.steps)

    @property
    def blocked(self) -> bool:
        return bool(self.problems)

    @property
    def actions(self) -> tuple[Action, ...]:
        return tuple(a for s in self.steps for a in s.actions)

    def __repr__(self) -> str:
        return f"<Plan {self.host} {self.strategy} steps={len(self.steps)} problems={len(self.problems)}>"


@dataclass
class Draft:
    """Mutable scratch a strategy fills in; frozen into a Plan at the end."""

    steps: list[Step] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    override: dict[str, dict[str, object]] = field(default_factory=dict)
    recreate: bool = False
    build: bool = False
    override_gid: int | None = None          # named in the override's header (the GID it maps)
    override_notes: tuple[str, ...] = ()     # more header lines, from the strategy
    override_top: dict[str, object] = field(default_factory=dict)   # top-level keys beside services (networks)
    more_services: list[str] = field(default_factory=list)          # services of the override's own, started too


def file_step(facts: Facts, name: str, after: str | None, why: str) -> Step | None:
    """Write (or delete, when ``after`` is None) a project file, if it differs."""
    f = facts.files.get(name)
    before = f.content if f and f.exists else None
    if before == after:
        return None
    path = path_in(facts.project_dir, name)
    if after is None:
        return Step(f"delete {name}", why, (Action("delete", (path,)),), before, None)
    ref = facts.compose_file
    owner = (str(f.uid), str(f.gid), oct(f.mode or 0o644)[2:]) if f and f.exists else \
        (str(ref.uid if ref else 0), str(ref.gid if ref else 0), "644")
    return Step(f"{'edit' if before is not None else 'create'} {name}", why,
                (Action("write", (path, *owner), after),), before, after)


COMMENTS_ONLY = "comments only: no service recreated"


def comments_only(step: Step) -> Step:
    """A file write that changes only text no container reads (comments): said so in the plan, and it
    asks for no recreate or rebuild (a host provisioned by an older hostprep is not restarted for a comment)."""
    return replace(step, name=f"rewrite {step.name.split(' ', 1)[1]}", why=COMMENTS_ONLY)
