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

from hostprep.change.detach import run_detached
from hostprep.host.facts import Facts, to_bytes
from hostprep.host.probe import host_script, probe_script
from hostprep.hostdata import lines
from hostprep.host.journal import new_run_id
from hostprep.change import draining, in_worker, markers
from hostprep.layout import STATE_DIR, path_in
from hostprep.redact import redact
from hostprep.strategies.steps import Action
from hostprep.ssh.transport import CommandResult, Transport

LOCKED = 75
STALE = 74     # the lock's holder is gone (and this run may not take it over)
INCOMPLETE = 73  # fewer actions ran than were sent: never counted as applied
NOSPACE = 72   # a write came out short (the file system is full)
DRIFTED = 76
REFUSED = 77   # a path was not what it must be (a planted symlink, a folder where a file belongs)
FAILED = 20
DIED = 69      # the detached run ended without an exit code (killed, or the host rebooted)
DRAIN_TIMEOUT = 78  # tasks were still running when --drain-timeout ran out: nothing was changed
DRAIN_FAILED = 79   # the worker could not be asked what it runs: nothing was changed


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
        """Exit 0 and the interpreter's last word said: a run cut short never counts."""
        return self.exit_code == 0 and bool(re.search(r"^@@hostprep:(done|released)$", self.log, re.M))

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
        return self.marker("failed")

    def marker(self, name: str) -> str | None:
        """The text of the interpreter's first ``@@hostprep:<name> ...`` line."""
        m = re.search(rf"^@@hostprep:{name} (.*)$", self.log, re.M)
        return m.group(1).strip() if m else None

    @property
    def restored(self) -> bool:
        """The host undid the failed apply itself, from its snapshot."""
        return self.marker("restored") is not None

    @property
    def restore_failed(self) -> bool:
        return self.marker("restore-failed") is not None

    @property
    def reconnects(self) -> int:
        said = self.marker("reconnected") or "0"
        return int(said) if re.fullmatch(r"[0-9]{1,3}", said) else 0

    @property
    def snapshot_stored(self) -> bool:
        """The interpreter said it stored its snapshot (it began changing the host after that)."""
        return self.marker("snapshot") is not None

    @property
    def lock_notes(self) -> list[str]:
        """Locks this run took over (stale) or broke (--break-lock), as the host's journal has them."""
        return [f"lock {m.group(1)}: {m.group(2).strip()}"
                for m in re.finditer(r"^@@hostprep:lock-(taken-over|broken) (.*)$", self.log, re.M)]

    def error(self) -> str:
        """What went wrong, naming the cause."""
        simple = {LOCKED: f"another hostprep run holds the host lock ({self.locked_by or 'unknown owner'}); "
                          "try again later (--lock-wait SECONDS)",
                  STALE: f"the host lock is stale ({self.marker('stale')}); re-run to take it over",
                  DRIFTED: "the host changed between fact gathering and apply; nothing was changed, re-run",
                  REFUSED: f"refused at {self.failed_step or 'setup'}: {self.refused or 'unsafe path'} "
                           "(hostprep never acts through a link)",
                  INCOMPLETE: f"the apply stopped short ({self.marker('incomplete')}): not counted as applied",
                  DIED: f"the run on the host ended without an exit code ({self.marker('runner-died') or self.marker('no-run')}):"
                        " killed, or the host rebooted"}
        if self.exit_code in simple:
            return simple[self.exit_code]
        if self.exit_code == NOSPACE:
            return no_space(self.marker("short-write") or "")
        if self.exit_code in (DRAIN_TIMEOUT, DRAIN_FAILED):
            return draining.failure(self.log)
        cause = self.marker("cause")
        tail = [redact(ln) for ln in lines(self.log) if ln.strip() and not ln.startswith("@@hostprep:")][-8:]
        return (f"apply failed at {self.failed_step or 'setup'} (exit {self.exit_code}): "
                + (redact(cause) if cause else " | ".join(tail)))

    def __repr__(self) -> str:
        return f"<Outcome exit={self.exit_code}>"


def no_space(short_write: str) -> str:
    """The message for a short write: which file, how much was needed, how much is free.

    >>> no_space("/var/lib/hostprep/snapshots/s.json 20480 8192 0")
    'no space left: writing /var/lib/hostprep/snapshots/s.json needed 20480 bytes, 8192 written, 0 bytes free in /var/lib/hostprep/snapshots'
    """
    parts = short_write.split()
    if len(parts) < 3:
        return "a write came out short (no space left?)"
    path, need, wrote = parts[:3]
    free = parts[3] if len(parts) > 3 else "?"
    return (f"no space left: writing {path} needed {need} bytes, {wrote} written, "
            f"{free} bytes free in {path.rsplit('/', 1)[0] or '/'}")


def lock_owner() -> str:
    """A token naming this run: controller host, pid and a random part (all plain characters)."""
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:60] or "controller"
    return f"{host}:{os.getpid()}:{base64.b32encode(os.urandom(5)).decode().lower()}"


@dataclass(frozen=True)
class Drain:
    """Before recreating a service that runs tasks (a Celery worker), wait up to ``timeout`` seconds
    for its running tasks, taking no new ones (``hostprep/change/drain.sh``); ``force``: do not wait, name
    what runs and recreate anyway."""

    timeout: int = 1800
    force: bool = False

    def env(self, actions: Sequence[Action]) -> dict[str, str]:
        """The interpreter's drain inputs: the services ``actions`` recreate (compose-up).

        >>> env = Drain(60).env([Action("write", ("/x", "0", "0", "644")), Action("compose-up", ("airflow-worker",))])
        >>> {k: env[k] for k in ("DRAIN_SVCS", "DRAIN_TIMEOUT", "FORCE")}
        {'DRAIN_SVCS': 'airflow-worker', 'DRAIN_TIMEOUT': '60', 'FORCE': '0'}
        """
        svcs = dict.fromkeys(s for a in actions if a.op == "compose-up" for s in a.args)
        return {"DRAIN_SVCS": " ".join(svcs), "DRAIN_TIMEOUT": str(self.timeout), "FORCE": "1" if self.force else "0",
                "IN_WORKER": in_worker.LAUNCHER}


@dataclass(frozen=True)
class LockPolicy:
    """How a run treats a lock someone else holds: take it over when its holder is gone
    (``takeover``), or remove it whatever holds it (``break_lock``, a person decided).
    ``snapshot`` names, in the holder record, the snapshot a restore puts back."""

    takeover: bool = False
    break_lock: bool = False
    snapshot: str = ""


def interpreter_env(facts: Facts, mode: str, owner: str, actions: Sequence[Action], *, lock_wait: int,
                    lock: LockPolicy) -> dict[str, str]:
    """The interpreter's inputs for ``actions``: each write's content (base64) and size beside it."""
    env = {
        "MODE": mode, "STATE_DIR": STATE_DIR, "LOCK_OWNER": owner, "LOCK_WAIT": str(lock_wait),
        "TAKEOVER": "1" if lock.takeover else "0", "BREAK_LOCK": "1" if lock.break_lock else "0",
        "PROJ": facts.project_dir, "COMPOSE": " ".join(facts.compose_cmd),
        "ACTIONS": action_lines(actions), "N_ACTIONS": str(len(actions)),
    }
    return env | action_env(actions, "W")


def action_lines(actions: Sequence[Action]) -> str:
    return "\n".join(" ".join((a.op, *a.args)) for a in actions)


def action_env(actions: Sequence[Action], prefix: str) -> dict[str, str]:
    """Each write's content (base64) as ``<prefix><n>`` and its size as ``<prefix>S<n>``."""
    env = {}
    for i, content in enumerate(a.content or "" for a in actions if a.op == "write"):
        data = to_bytes(content)
        env[f"{prefix}{i}"], env[f"{prefix}S{i}"] = base64.b64encode(data).decode(), str(len(data))
    return env


def interpreter() -> str:
    return host_script("drain.sh", "apply.sh", package=__package__)


def expectations(facts: Facts) -> str:
    """What the host must still be when the apply holds the lock: every file hostprep manages in the
    project (``<sha|missing> <path>``), not only those this plan writes, and the socket's mode and owners
    (``socket:<mode>:<uid>:<gid>|socket:missing <path>``). Another run that changed any of it in between
    (with another strategy, say) makes this one refuse rather than stack a second fix."""
    lines = [f"{f.sha256 if f.exists else 'missing'} {path_in(facts.project_dir, f.name)}"
             for f in facts.files.values() if f.unsafe is None]
    sock = facts.socket
    state = f"socket:{sock.mode & 0o7777:o}:{sock.uid}:{sock.gid}" if sock.exists and sock.mode is not None \
        else "socket:missing"
    lines.append(f"{state} {sock.path}")
    return "\n".join(lines)


def drain_preview(transport: Transport, facts: Facts, actions: Sequence[Action]) -> list[str]:
    """--check: what a drain would wait for (the Celery workers' running tasks), asked without changing anything."""
    env = Drain(force=True).env(actions)
    if not env["DRAIN_SVCS"]:
        return []
    mark = markers.nonce()
    env.update(PROJ=facts.project_dir, STATE_DIR=STATE_DIR, MARK=mark)
    res = transport.run_script(host_script("drain.sh", package=__package__) + "drain\n", env, sudo=True,
                               timeout=30 + 2 * in_worker.MARGIN + 30)
    return draining.preview(markers.own(res.stdout, mark))


def split_probe(stdout: str, mark: str) -> tuple[str, str | None]:
    """The interpreter's own log, and the probe output that follows its ``@@hostprep:<mark>:probe`` line
    (said under the run's nonce: nothing Compose printed can pose as the start of the probe)."""
    head, found, tail = stdout.partition(f"\n{markers.PREFIX}{mark}:probe\n")   # always after "done"
    return head, (tail if found else None)


def parse_compose_seconds(log: str) -> float:
    """Seconds the host spent running Compose."""
    return parse_seconds(log, "compose")


def parse_seconds(log: str, what: str) -> float:
    """Seconds the host spent in ``what`` (compose, probe), from its start/end markers."""
    total, number = 0.0, r"([0-9]{1,12}(?:\.[0-9]{1,12})?)"
    for m in re.finditer(rf"^@@hostprep:{what}-seconds {number} {number}$", log, re.M):
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
    lock_wait: int = 10,
    probe: Mapping[str, str] | None = None,
    lock: LockPolicy = LockPolicy(),
    restore: Sequence[Action] = (),
    drain: Drain | None = None,
) -> Outcome:
    """One run of the interpreter in ``mode`` (apply | restore | release), detached from the SSH
    session (apply and restore: ``hostprep.change.detach``), so a dropped connection does not cut it.

    With ``probe`` (the probe's inputs), a successful run gathers facts afterwards in the
    same exec: the host is asked once for the change and its proof. With ``restore`` (the
    snapshot's restore actions), a failed apply is undone on the host at once. The host
    releases the lock on every way out.
    """
    mark = markers.nonce()   # on stdin and in the run's root-only script only, never on a command line
    env = interpreter_env(facts, mode, owner, actions, lock_wait=lock_wait, lock=lock) | {"MARK": mark}
    env.update(action_env(restore, "R"), R_ACTIONS=action_lines(restore), R_N=str(len(restore)))
    env.update((drain or Drain()).env(actions))
    snap_bytes = base64.b64decode(snapshot[1]) if snapshot else b""
    env.update(EXPECT=expect, SNAP_ID=snapshot[0] if snapshot else lock.snapshot, SNAP_B64=snapshot[1] if snapshot else "",
               SNAP_SIZE=str(len(snap_bytes)))
    if probe is not None:
        clash = {k for k in probe if k in env and env[k] != probe[k]}
        if clash:
            raise ValueError(f"probe and interpreter disagree on {sorted(clash)}")
        env.update(probe, PROBE=probe_script())
    if mode == "release":
        res: CommandResult = transport.run_script(interpreter(), env, sudo=True, timeout=60)
    else:
        res = run_detached(transport, new_run_id(), interpreter(), env,
                           timeout=1800 + (drain.timeout if drain and not drain.force else 0))
    stdout, probe_output = split_probe(res.stdout, mark)
    log = markers.own(stdout + ("\n" + res.stderr if res.stderr.strip() else ""), mark)
    return Outcome(res.exit_code, log, parse_compose_seconds(log), probe_output, parse_seconds(log, "probe"))
