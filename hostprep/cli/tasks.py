"""The operator's Invoke tasks: parse arguments, call hostprep.cli.commands, print the reply (the edge)."""

from __future__ import annotations

import copy
import json
import os
import sys
from typing import TYPE_CHECKING, Callable

from invoke import Collection, Context, Exit, Task, task

from hostprep.strategy_names import NAMES as STRATEGY_NAMES
from hostprep.cli.deferred import Deferred
from hostprep.errors import InventoryError, SettingsError
from hostprep.fleet import rolling as rollout
from hostprep.redact import clean, for_terminal

if TYPE_CHECKING:   # what the task bodies use: imported when a task runs, not for --help (cli/deferred.py)
    from hostprep.audit import schedule
    from hostprep.change import apply, provision as prov
    from hostprep.change import remote_tls_run
    from hostprep.cli import audit_cmd, commands, remote_tls_cmd, selection
    from hostprep import strategies
    from hostprep.fleet import fanout, validate
else:
    schedule = Deferred("hostprep.audit.schedule")
    apply = Deferred("hostprep.change.apply")
    prov = Deferred("hostprep.change.provision")
    commands = Deferred("hostprep.cli.commands")
    audit_cmd = Deferred("hostprep.cli.audit_cmd")
    selection = Deferred("hostprep.cli.selection")
    remote_tls_cmd = Deferred("hostprep.cli.remote_tls_cmd")
    remote_tls_run = Deferred("hostprep.change.remote_tls_run")
    fanout = Deferred("hostprep.fleet.fanout")
    validate = Deferred("hostprep.fleet.validate")
    strategies = Deferred("hostprep.strategies")


SELECT_HELP = {
    "host": "one host (or a:b list) from the inventory",
    "group": "an inventory group",
    "limit": "an Ansible --limit pattern: a:b union, a:&b intersection, a:!b exclusion, globs",
    "inventory": "Ansible inventory: YAML or INI, or any source ansible-inventory reads (a *.aws_ec2.yml plugin "
                 "file, a script, a directory); default $HOSTPREP_INVENTORY or inventories/lab.yml",
    "json": "print machine-readable JSON",
    "known_hosts": "known_hosts file (default: hostprep_known_hosts_file var, else ~/.ssh/known_hosts)",
    "accept_new": "trust unknown host keys on first use (like StrictHostKeyChecking=accept-new)",
    "timeout": "SSH connect timeout in seconds (default 10)",
}


def _sel(host: str | None, group: str | None, limit: str | None, inventory: str | None) -> selection.Selection:
    return selection.Selection(inventory=inventory, host=host, group=group, limit=limit)


def _conn(known_hosts: str | None, accept_new: bool, timeout: float | str) -> fanout.ConnectOptions:
    return fanout.ConnectOptions(known_hosts=known_hosts, accept_new=accept_new, connect_timeout=float(timeout))


def _progress() -> Callable[[str], None] | None:
    """Where commands show a line per finished host: stderr, when someone watches it (the line was
    masked where the host's text met hostprep's, ``render.progress_line``)."""
    return (lambda line: print(clean(line), file=sys.stderr)) if sys.stderr.isatty() else None


def _shown(line: str, own: frozenset[str] = frozenset()) -> str:
    """A line as printed: text masked and cleaned again here at the edge (the run's host names are
    hostprep's own words, never a credential's name); JSON was masked value by value
    (``render.as_json``) and its escapes are already inert."""
    if line[:1] in "{[":
        try:
            json.loads(line)
            return line
        except ValueError:
            pass
    return for_terminal(line, own)


def _show(reply: selection.Reply) -> None:
    """Print what a command returned; its exit code becomes the task's."""
    for line in reply.lines:
        print(_shown(line, reply.own))
    for warning in reply.warnings:
        print(for_terminal(f"hostprep: {warning}"), file=sys.stderr)
    if reply.code:
        raise Exit(code=reply.code)


def _run(fn: Callable[..., selection.Reply], *args: object, **kwargs: object) -> None:
    """Turn bad input into a clear one-line error and exit code 2 (nothing was changed)."""
    try:
        reply = fn(*args, **kwargs)
    except (InventoryError, SettingsError, ValueError) as exc:
        print(for_terminal(f"hostprep: error: {exc}"), file=sys.stderr)
        raise Exit(code=2)
    _show(reply)


DRAIN_HELP = {
    "drain_timeout": "seconds to wait for a Celery worker's running tasks before recreating it (default 1800); "
                     "on timeout nothing is changed",
    "force": "recreate a busy worker anyway, after naming the tasks that it kills",
}


def _drain(timeout: object, force: bool) -> apply.Drain:
    return apply.Drain(validate.seconds_arg("drain-timeout", timeout), force=bool(force))


@task(help=SELECT_HELP | {"shallow": "skip the checks that exec inside the worker (id, docker ps)"})
def facts(c: Context, host: str | None = None, group: str | None = None, limit: str | None = None,
          inventory: str | None = None, json: bool = False, shallow: bool = False, known_hosts: str | None = None,
          accept_new: bool = False, timeout: int = 10) -> None:
    """Gather facts (one SSH exec per host) and show them as a table or --json."""
    _run(commands.facts, _sel(host, group, limit, inventory), _conn(known_hosts, accept_new, timeout),
         as_json=json, deep=not shallow, progress=_progress())


@task(help=SELECT_HELP | {
    "strategy": f"fix strategy: {' | '.join(STRATEGY_NAMES)} (default: inventory's hostprep_strategy, else group-add)",
    "check": "show the plan as a diff and change nothing",
    "forks": "hosts worked on in parallel (default 32)",
    "lock_wait": "seconds to wait for another run's host lock (default 10)",
    "break_lock": "remove the host lock whoever holds it (a person decided; recorded in the host's journal)",
    "smoke_dag": "after the fix, DAG_ID:TASK_ID: one task with `airflow tasks test` in the worker; "
                 "DAG_ID: trigger a real DAG run and wait for it (10 min timeout)",
    "no_smoke": "skip the Airflow check (on by default when the worker has the airflow command)",
} | DRAIN_HELP | {
    "serial": "a rolling change: N hosts (or P% of them) per batch, each changed and verified before the next",
    "max_fail": "with --serial: stop the rollout when more than P% of a batch failed (0%: any failure)",
})
def provision(c: Context, host: str | None = None, group: str | None = None, limit: str | None = None,
              inventory: str | None = None, strategy: str | None = None, check: bool = False, json: bool = False,
              known_hosts: str | None = None, accept_new: bool = False, timeout: int = 10, forks: int = 32,
              lock_wait: int = 10, smoke_dag: str | None = None, no_smoke: bool = False, break_lock: bool = False,
              drain_timeout: int = 1800, force: bool = False, serial: str | None = None,
              max_fail: str | None = None) -> None:
    """Fix Docker socket access for the Airflow worker: plan, snapshot, apply, recreate, verify."""

    def run() -> selection.Reply:
        chosen = validate.strategy_arg(strategy)
        warning = chosen and strategies.get(chosen).run_warning
        if warning and not json:
            print(f"WARNING: {warning}", file=sys.stderr)
        opts = prov.Options(strategy=chosen, check=check, lock_wait=int(lock_wait),
                            smoke_dag=validate.smoke_dag_arg(smoke_dag), smoke=not no_smoke, break_lock=break_lock,
                            drain=_drain(drain_timeout, force))
        return commands.provision(_sel(host, group, limit, inventory), _conn(known_hosts, accept_new, timeout),
                                  opts, as_json=json, forks=int(forks), progress=_progress(),
                                  color=sys.stdout.isatty(), rollout=rollout.parse(serial, max_fail))

    _run(run)


@task(help=SELECT_HELP | {
    "snapshot": "snapshot id to restore (default: the latest)",
    "lock_wait": "seconds to wait for another run's host lock (default 10); a stale lock is taken over at once",
    "break_lock": "remove the host lock whoever holds it (a person decided; recorded in the host's journal)",
} | DRAIN_HELP)
def rollback(c: Context, host: str | None = None, group: str | None = None, limit: str | None = None,
             inventory: str | None = None, snapshot: str | None = None, json: bool = False,
             known_hosts: str | None = None, accept_new: bool = False, timeout: int = 10, lock_wait: int = 10,
             break_lock: bool = False, drain_timeout: int = 1800, force: bool = False) -> None:
    """Restore a host from its snapshot exactly, then verify it matches."""
    _run(lambda: commands.rollback(_sel(host, group, limit, inventory), _conn(known_hosts, accept_new, timeout),
                                   snapshot, as_json=json, color=sys.stdout.isatty(), lock_wait=int(lock_wait),
                                   break_lock=break_lock, drain=_drain(drain_timeout, force)))


@task(help=SELECT_HELP)
def status(c: Context, host: str | None = None, group: str | None = None, limit: str | None = None,
           inventory: str | None = None, json: bool = False, known_hosts: str | None = None, accept_new: bool = False,
           timeout: int = 10) -> None:
    """Per host: the lock's holder and age, how the last run ended (the host's journal), the latest
    snapshot, and whether the host is mid-change (with what to run)."""
    _run(commands.status, _sel(host, group, limit, inventory), _conn(known_hosts, accept_new, timeout),
         as_json=json)


@task(help=SELECT_HELP)
def snapshots(c: Context, host: str | None = None, group: str | None = None, limit: str | None = None,
              inventory: str | None = None, json: bool = False, known_hosts: str | None = None,
              accept_new: bool = False, timeout: int = 10) -> None:
    """List the snapshots stored on each host."""
    _run(commands.snapshots, _sel(host, group, limit, inventory), _conn(known_hosts, accept_new, timeout),
         as_json=json)


def _run_audit(fn: Callable[..., selection.Reply], *args: object, **kwargs: object) -> None:
    """Like _run, but bad input exits 1: 2 and 3 are audit verdicts."""
    try:
        reply = fn(*args, **kwargs)
    except (InventoryError, SettingsError, schedule.ScheduleError, ValueError) as exc:
        print(for_terminal(f"hostprep: error: {exc}"), file=sys.stderr)
        raise Exit(code=1)
    _show(reply)


RUN_HELP = {
    "run_file": "the run file `audit.begin` wrote: its id and start go into the report (needed with --shard)",
    "run_id": "the run's id (e.g. Airflow's $AIRFLOW_CTX_DAG_RUN_ID): the run file must hold it",
}


@task(name="begin", help={
    "run_file": "the file to write the run's id and start time to (where every shard and the merge can read it)",
    "run_id": "the run's id (e.g. Airflow's $AIRFLOW_CTX_DAG_RUN_ID; default: a new one); printed",
})
def audit_begin(c: Context, run_file: str | None = None, run_id: str | None = None) -> None:
    """Begin a sharded audit run: write its id and start time for `audit --shard` and `audit.merge`."""
    _run_audit(audit_cmd.audit_begin, run_file, run_id)


@task(name="run", default=True, help=SELECT_HELP | {
    "deep": "also exec `id` and `docker ps` inside each worker (the default judges from the host side only)",
    "fix": "re-provision drifted hosts (snapshot, apply, verify as `invoke provision`), then audit them again",
    "junit": "write a JUnit XML report to FILE (a testcase per host and check)",
    "prom": "write a Prometheus textfile to FILE (for node_exporter's textfile collector), atomically",
    "json_file": "write the JSON report to FILE",
    "report_dir": "write audit.json, audit-junit.xml and hostprep_audit.prom into DIR",
    "forks": "hosts audited in parallel (default 32)",
    "shard": "I/N: audit only a stable 1/N of the selected hosts (merge the N reports with audit.merge)",
    "every": "how often this audit is scheduled (15m, 1h, ...; audit.schedule passes it): written to the "
             "Prometheus textfile, so an alert fires when the audit has not run for twice that",
} | RUN_HELP)
def audit(c: Context, host: str | None = None, group: str | None = None, limit: str | None = None,
          inventory: str | None = None, json: bool = False, deep: bool = False, fix: bool = False,
          junit: str | None = None, prom: str | None = None, json_file: str | None = None,
          report_dir: str | None = None, known_hosts: str | None = None, accept_new: bool = False, timeout: int = 10,
          forks: int = 32, shard: str | None = None, run_file: str | None = None, run_id: str | None = None,
          every: str | None = None) -> None:
    """Report drift from the desired state on each host; read-only unless --fix. Exit 0 clean, 2 drift, 3 unaudited."""
    outputs = audit_cmd.AuditOutputs(as_json=json, junit=junit, prom=prom, json_file=json_file, report_dir=report_dir,
                                    every=every)
    sel = selection.Selection(inventory=inventory, host=host, group=group, limit=limit, shard=shard)
    _run_audit(audit_cmd.audit, sel, _conn(known_hosts, accept_new, timeout), outputs,
               deep=deep, fix=fix, forks=int(forks), progress=_progress(), run_file=run_file, run_id=run_id)


@task(name="merge", iterable=["report"], help={
    "report": "a shard's audit.json, or the folder holding it; give one --report per shard",
    "json": "print the merged JSON report",
    "junit": "write the merged JUnit XML report to FILE",
    "prom": "write the merged Prometheus textfile to FILE",
    "json_file": "write the merged JSON report to FILE",
    "report_dir": "write audit.json, audit-junit.xml and hostprep_audit.prom into DIR",
    "every": "how often the sharded run is scheduled (15m, 1h, ...): written to the merged Prometheus textfile, "
             "so an alert fires when the merged audit has not run for twice that",
} | RUN_HELP)
def audit_merge(c: Context, report: list[str], json: bool = False, junit: str | None = None, prom: str | None = None,
                json_file: str | None = None, report_dir: str | None = None, run_file: str | None = None,
                run_id: str | None = None, every: str | None = None) -> None:
    """Merge the reports of `audit --shard 1/N` ... `N/N` into one run's; exit code as that run's (0, 2, 3).
    A report that is not this run's (--run-file) is refused by name: its hosts count as not audited (3)."""
    outputs = audit_cmd.AuditOutputs(as_json=json, junit=junit, prom=prom, json_file=json_file, report_dir=report_dir,
                                     every=every)
    _run_audit(audit_cmd.audit_merge, list(report), outputs, run_file=run_file, run_id=run_id)


@task(name="history", help={"host": "only these hosts (a:b or a,b)", "json": "print machine-readable JSON"})
def audit_history(c: Context, host: str | None = None, json: bool = False) -> None:
    """Show when each drift began and ended, from the controller's audit history."""
    _run_audit(audit_cmd.audit_history, host, as_json=json)


@task(name="schedule", help={k: SELECT_HELP[k] for k in ("host", "group", "limit", "inventory")} | {
    "every": "how often: 5m 15m 30m (minutes dividing 60), 1h 2h 6h 12h, 1d (1m for tests)",
    "report_dir": "where the scheduled run writes its reports (default: reports/ in the controller state dir)",
    "deep": "scheduled runs also exec inside the workers",
    "show": "show the installed schedule and change nothing",
    "systemd": "write systemd user units (service + timer) instead of a crontab entry",
    "unit_dir": "where --systemd writes units (default ~/.config/systemd/user)",
})
def audit_schedule(c: Context, every: str = "15m", host: str | None = None, group: str | None = None,
                   limit: str | None = None, inventory: str | None = None, report_dir: str | None = None,
                   deep: bool = False, show: bool = False, systemd: bool = False,
                   unit_dir: str | None = None) -> None:
    """Install the audit in the user's crontab (a marked block; other entries untouched)."""
    if show:
        _run_audit(audit_cmd.audit_schedule_show)
        return
    repo = os.getcwd()
    _run_audit(audit_cmd.audit_schedule, _sel(host, group, limit, inventory), every, repo, report_dir,
               deep=deep, systemd=systemd, unit_dir=unit_dir)


@task(name="unschedule", help={"systemd": "remove the systemd user units instead",
                               "unit_dir": "where --systemd wrote units (default ~/.config/systemd/user)"})
def audit_unschedule(c: Context, systemd: bool = False, unit_dir: str | None = None) -> None:
    """Remove exactly hostprep's audit entry from the crontab."""
    _run_audit(audit_cmd.audit_unschedule, systemd=systemd, unit_dir=unit_dir)


def _fresh(t: Task) -> Task:
    """A copy of a task with its own help dict: Invoke pops a task's help while building a parser, so a
    second program in the same process (a test, the manual's generator) would otherwise show none."""
    copied = copy.copy(t)
    copied.help = dict(t.help)
    return copied


PAIR_HELP = SELECT_HELP | {"host": "the Airflow host(s); each one's hostprep_task_host names its task host"}
CERT_HELP = PAIR_HELP | {"ca": "folder of the fleet CA (default $HOSTPREP_STATE_DIR/ca)",
                         "days": "lifetime of certificates issued now (default 365)"}


def _pair_opts(check: bool, ca: str | None, days: int) -> remote_tls_run.PairOptions:
    return remote_tls_run.PairOptions(check=check, ca_path=ca, days=int(days))


@task(name="provision", help=CERT_HELP | {"check": "show both hosts' plans, change nothing"})
def tls_provision(c: Context, host: str | None = None, group: str | None = None, limit: str | None = None,
                  inventory: str | None = None, check: bool = False, json: bool = False, known_hosts: str | None = None,
                  accept_new: bool = False, timeout: int = 10, ca: str | None = None, days: int = 365) -> None:
    """remote-tls: the task host's dockerd on TCP with TLS, the Airflow host's workers on it; both or neither."""
    _run(lambda: remote_tls_cmd.provision(_sel(host, group, limit, inventory), _conn(known_hosts, accept_new, timeout),
                                          _pair_opts(check, ca, days), as_json=json))


@task(name="rollback", help=PAIR_HELP | {"snapshot": "the run to undo (default: the latest)"})
def tls_rollback(c: Context, host: str | None = None, group: str | None = None, limit: str | None = None,
                 inventory: str | None = None, snapshot: str | None = None, json: bool = False,
                 known_hosts: str | None = None, accept_new: bool = False, timeout: int = 10) -> None:
    """Undo the last remote-tls run on both hosts."""
    _run(lambda: remote_tls_cmd.rollback(_sel(host, group, limit, inventory), _conn(known_hosts, accept_new, timeout),
                                         snapshot, as_json=json))


@task(name="audit", help=PAIR_HELP)
def tls_audit(c: Context, host: str | None = None, group: str | None = None, limit: str | None = None,
              inventory: str | None = None, json: bool = False, known_hosts: str | None = None,
              accept_new: bool = False, timeout: int = 10) -> None:
    """remote-tls findings: certificate expiry (30/7 days), the task host's TLS, the drop-in, the socket."""
    _run(lambda: remote_tls_cmd.audit(_sel(host, group, limit, inventory), _conn(known_hosts, accept_new, timeout),
                                      as_json=json))


@task(name="rotate", help=CERT_HELP | {
    "check": "show what would be issued, change nothing",
    "new_ca": "start a CA switch: a new fleet CA beside the old, both trusted, new certificates from it (one dockerd "
              "restart on each task host, after its task containers ended)",
    "finish_ca": "end the CA switch (once every pair went through --new-ca): only the new CA is trusted, the old retired",
    "drain_timeout": "seconds a CA switch waits for the task host's task containers before restarting dockerd "
                     "(default 1800); on timeout that step changes nothing"})
def certs_rotate(c: Context, host: str | None = None, group: str | None = None, limit: str | None = None,
                 inventory: str | None = None, check: bool = False, json: bool = False, known_hosts: str | None = None,
                 accept_new: bool = False, timeout: int = 10, ca: str | None = None, days: int = 365,
                 new_ca: bool = False, finish_ca: bool = False, drain_timeout: int = 1800) -> None:
    """New client certificates now (no dockerd restart: tasks in flight keep running); the server's when due;
    or a step of a CA switch (--new-ca, then --finish-ca)."""
    def go() -> commands.Reply:
        if new_ca and finish_ca:
            raise SettingsError("--new-ca and --finish-ca are two steps of a CA switch: give one")
        opts = remote_tls_run.PairOptions(check=check, ca_path=ca, days=int(days),
                                          drain_timeout=float(validate.seconds_arg("drain-timeout", drain_timeout)))
        return remote_tls_cmd.rotate(_sel(host, group, limit, inventory), _conn(known_hosts, accept_new, timeout), opts,
                                     as_json=json, ca_phase="new" if new_ca else "finish" if finish_ca else None)
    _run(go)


def collection() -> Collection:
    """A fresh collection of the operator's tasks (a clone's tasks.py adds the lab and the benchmark)."""
    ns = Collection(*(_fresh(t) for t in (facts, provision, rollback, snapshots, status)))
    audit_ns = Collection("audit")
    for t in (audit, audit_begin, audit_merge, audit_history, audit_schedule, audit_unschedule):
        audit_ns.add_task(_fresh(t))
    ns.add_collection(audit_ns)
    ns.add_collection(Collection("remote-tls", *(_fresh(t) for t in (tls_provision, tls_rollback, tls_audit))))
    ns.add_collection(Collection("certs", _fresh(certs_rotate)))
    return ns
