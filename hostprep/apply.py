"""Apply: run actions on a host through the one fixed interpreter (apply.sh), under the host lock.

The interpreter gets every value as a shell variable (quoted by the transport and
sent on stdin, never on a command line) and every action pre-validated
(``plan.SAFE_ARG``), so no inventory value is ever spliced into shell code.
"""

from __future__ import annotations

import base64
import re
import socket
import os
from dataclasses import dataclass
from typing import Mapping, Sequence

from hostprep.facts import Facts, host_script, probe_script, to_bytes
from hostprep.layout import STATE_DIR, path_in
from hostprep.redact import redact
from hostprep.steps import Action, Plan
from hostprep.transport import CommandResult, Transport

LOCKED = 75
DRIFTED = 76
REFUSED = 77   # a path was not what it must be (a planted symlink, a folder where a file belongs)
FAILED = 20


@dataclass(frozen=True)
class Outcome:
    """What the interpreter reported."""

    exit_code: int
    log: str
    compose_seconds: float = 0.0
    probe_output: str | None = None   # the fact probe's output, when one ran after the apply
    probe_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def locked_by(self) -> str | None:
        m = re.search(r"^@@hostprep:locked (.*)$", self.log, re.M)
        return m.group(1).strip() if m else None

    @property
    def refused(self) -> str | None:
        m = re.search(r"^@@hostprep:refused (.*)$", self.log, re.M)
        return m.group(1).strip() if m else None

    @property
    def failed_step(self) -> str | None:
        m = re.search(r"^@@hostprep:failed (.*)$", self.log, re.M)
        return m.group(1).strip() if m else None

    def error(self) -> str:
        if self.exit_code == LOCKED:
            return f"another hostprep run holds the host lock ({self.locked_by or 'unknown owner'}); try again later"
        if self.exit_code == DRIFTED:
            return "the host changed between fact gathering and apply; nothing was changed, re-run"
        if self.exit_code == REFUSED:
            return f"refused at {self.failed_step or 'setup'}: {self.refused or 'unsafe path'} (hostprep never acts through a link)"
        tail = [redact(ln) for ln in self.log.splitlines() if ln.strip() and not ln.startswith("@@hostprep:")][-8:]
        return f"apply failed at {self.failed_step or 'setup'} (exit {self.exit_code}): " + " | ".join(tail)

    def __repr__(self) -> str:
        return f"<Outcome exit={self.exit_code}>"


def lock_owner() -> str:
    """A token naming this run: controller host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{base64.b32encode(os.urandom(5)).decode().lower()}"


def interpreter() -> str:
    return host_script("apply.sh")


def expectations(facts: Facts, plan: Plan) -> str:
    """``<sha|missing> <path>`` lines: what each file about to be written must still be."""
    by_path = {path_in(facts.project_dir, f.name): f for f in facts.files.values()}
    lines = []
    for a in plan.actions:
        if a.op in ("write", "delete") and a.args[0] in by_path:
            f = by_path[a.args[0]]
            lines.append(f"{f.sha256 if f.exists else 'missing'} {a.args[0]}")
    return "\n".join(lines)


def split_probe(stdout: str) -> tuple[str, str | None]:
    """The interpreter's own log, and the probe output that follows its ``@@hostprep:probe`` line."""
    head, mark, tail = stdout.partition("\n@@hostprep:probe\n")   # always after "@@hostprep:done"
    return head, (tail if mark else None)


def parse_compose_seconds(log: str) -> float:
    """Seconds the host spent running Compose."""
    return parse_seconds(log, "compose")


def parse_seconds(log: str, what: str) -> float:
    """Seconds the host spent in ``what`` (compose, probe), from its start/end markers."""
    total = 0.0
    for m in re.finditer(rf"^@@hostprep:{what}-seconds ([\d.]+) ([\d.]+)$", log, re.M):
        total += float(m.group(2)) - float(m.group(1))
    return total


def run(
    transport: Transport,
    facts: Facts,
    mode: str,
    *,
    owner: str,
    actions: Sequence[Action] = (),
    snapshot: tuple[str, str] | None = None,
    expect: str = "",
    release: bool = False,
    lock_wait: int = 10,
    probe: Mapping[str, str] | None = None,
) -> Outcome:
    """One exec of the interpreter in ``mode`` (apply | restore | release).

    With ``probe`` (the probe's inputs), a successful run gathers facts afterwards in the
    same exec: the host is asked once for the change and its proof.
    """
    env = {
        "MODE": mode,
        "STATE_DIR": STATE_DIR,
        "LOCK_OWNER": owner,
        "LOCK_WAIT": str(lock_wait),
        "PROJ": facts.project_dir,
        "COMPOSE": " ".join(facts.compose_cmd),
        "EXPECT": expect,
        "SNAP_ID": snapshot[0] if snapshot else "",
        "SNAP_B64": snapshot[1] if snapshot else "",
        "RELEASE": "1" if release else "0",
        "ACTIONS": "\n".join(" ".join((a.op, *a.args)) for a in actions),
    }
    writes = [a.content or "" for a in actions if a.op == "write"]
    for i, content in enumerate(writes):
        env[f"W{i}"] = base64.b64encode(to_bytes(content)).decode()
    if probe is not None:
        clash = {k for k in probe if k in env and env[k] != probe[k]}
        if clash:
            raise ValueError(f"probe and interpreter disagree on {sorted(clash)}")
        env.update(probe, PROBE=probe_script())
    res: CommandResult = transport.run_script(interpreter(), env, sudo=True, timeout=1800)
    stdout, probe_output = split_probe(res.stdout)
    log = stdout + ("\n" + res.stderr if res.stderr.strip() else "")
    return Outcome(res.exit_code, log, parse_compose_seconds(stdout), probe_output,
                   parse_seconds(stdout, "probe"))
