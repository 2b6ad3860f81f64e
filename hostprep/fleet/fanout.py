"""Fleet fan-out: every selected host in parallel, one report each, never stopping early; or batch by
batch (a rolling change), stopping only between batches."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Callable, Sequence

from hostprep.ssh.endpoint import endpoint_for
from hostprep.errors import AuthFailed, HostKeyRejected, SettingsError, Unreachable
from hostprep.inventory.hosts import HostEntry
from hostprep.change.results import FAILED, NOT_STARTED, UNREACHABLE, FleetReport, HostReport
from hostprep.fleet.rolling import Rollout
from hostprep.inventory.settings import HostSettings
from hostprep.ssh.transport import Transport
from hostprep.fleet.validate import validate_host

HostJob = Callable[[Transport, HostSettings], HostReport]


@dataclass(frozen=True)
class ConnectOptions:
    known_hosts: str | None = None
    accept_new: bool = False
    connect_timeout: float = 10.0


def validate_all(entries: Sequence[HostEntry]) -> list[HostSettings]:
    """Validate every host before connecting to any; one bad value refuses the whole run."""
    errors, settings = [], []
    for e in entries:
        try:
            endpoint_for(e)
            settings.append(validate_host(e))
        except SettingsError as exc:
            errors.append(str(exc))
    if errors:
        raise SettingsError("refusing to connect to any host:\n  " + "\n  ".join(errors))
    return settings


def _one(entry: HostEntry, settings: HostSettings, job: HostJob, opts: ConnectOptions) -> HostReport:
    known = opts.known_hosts or entry.vars.get("hostprep_known_hosts_file")
    endpoint = endpoint_for(entry, known_hosts=known, accept_new=opts.accept_new, connect_timeout=opts.connect_timeout)
    started = time.monotonic()
    try:
        with Transport(endpoint) as t:
            connected = time.monotonic()
            report = job(t, settings)
            report.data.setdefault("execs", t.execs)
        report.timings["connect"] = connected - started
    except (Unreachable, HostKeyRejected, AuthFailed) as exc:
        report = HostReport(entry.name).fail(str(exc), UNREACHABLE)
    except Exception as exc:  # one host's bug must not stop the others
        report = HostReport(entry.name).fail(f"{type(exc).__name__}: {exc}", FAILED)
    report.timings["total"] = time.monotonic() - started
    return report


def fan_out(
    entries: Sequence[HostEntry],
    job: HostJob,
    opts: ConnectOptions = ConnectOptions(),
    *,
    forks: int = 32,
    on_done: Callable[[HostReport], None] | None = None,
) -> FleetReport:
    """Run ``job`` on every host; reports come back in inventory order."""
    return _parallel(entries, validate_all(entries), job, opts, forks, on_done)


def _parallel(entries: Sequence[HostEntry], settings: Sequence[HostSettings], job: HostJob, opts: ConnectOptions,
              forks: int, on_done: Callable[[HostReport], None] | None) -> FleetReport:
    """``fan_out`` on hosts already validated (``settings`` in the same order)."""
    started = time.monotonic()
    reports: dict[str, HostReport] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(forks, len(entries)))) as pool:
        futures = {pool.submit(_one, e, s, job, opts): e.name for e, s in zip(entries, settings)}
        for fut in as_completed(futures):
            report = fut.result()
            reports[futures[fut]] = report
            if on_done:
                on_done(report)
    return FleetReport([reports[e.name] for e in entries], time.monotonic() - started)


def rolling(
    entries: Sequence[HostEntry],
    job: HostJob,
    rollout: Rollout,
    opts: ConnectOptions = ConnectOptions(),
    *,
    forks: int = 32,
    on_done: Callable[[HostReport], None] | None = None,
) -> FleetReport:
    """``fan_out`` batch by batch (``rollout.serial`` hosts each, every batch changed and verified
    before the next); a batch that fails beyond ``rollout.max_fail`` stops the rollout, and the hosts
    of the later batches are reported as not started. Every host is validated before the first batch."""
    started = time.monotonic()
    settings = dict(zip((e.name for e in entries), validate_all(entries)))
    reports: list[HostReport] = []
    stopped = None
    batches = rollout.batches(entries)
    for i, batch in enumerate(batches, 1):
        if stopped:
            reports += [HostReport(e.name, NOT_STARTED, error=f"not started: {stopped}") for e in batch]
            continue
        done = _parallel(batch, [settings[e.name] for e in batch], job, opts, forks, on_done).reports
        reports += done
        failed = sum(r.failed for r in done)
        if i < len(batches) and rollout.stops_after(failed, len(done)):
            stopped = (f"batch {i} of {len(batches)} had {failed} of {len(done)} host(s) failed, over --max-fail "
                       f"{rollout.max_fail}%; batches {i + 1}-{len(batches)} were not started")
    return FleetReport(reports, time.monotonic() - started, stopped=stopped)
