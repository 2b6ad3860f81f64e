"""The audit of a remote-tls pair: certificates near expiry, a task host unreachable or answering without
TLS, a worker back on the socket, hostprep's drop-in changed. :func:`judge` is pure; :func:`audit` reads
both hosts (no writes) and asks it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Mapping

from hostprep.change import certs, tls_host
from hostprep.errors import TransportError
from hostprep.host.facts import Facts
from hostprep.host.probe import gather
from hostprep.strategies.findings import CRITICAL, WARNING, Finding, Rule
from hostprep.host.posture_facts import DagLine
from hostprep.change.remote_tls_run import with_endpoint
from hostprep.inventory.settings import HostSettings
from hostprep.strategies.remote_tls import (CERT, CLIENT_DIR, DROPIN, SERVER_DIR, RemoteTls, docker_url_of,
                                            dropin_text, task_endpoint)
from hostprep.change.tls_files import AIRFLOW_PATHS, TASK_PATHS
from hostprep.ssh.transport import Transport

WARN_DAYS, CRITICAL_DAYS = 30, 7
EXPIRING = Rule("tls-cert-expiring", WARNING, f"remote-tls certificates have more than {WARN_DAYS} days left")
EXPIRES_SOON = Rule("tls-cert-expires-soon", CRITICAL,
                    f"remote-tls certificates exist, verify and have more than {CRITICAL_DAYS} days left")
UNREACHABLE = Rule("tls-task-host-unreachable", CRITICAL, "the task host and its dockerd's TLS port answer",
                   fixable=False)
NO_TLS = Rule("tls-task-host-without-tls", CRITICAL, "the task host's dockerd listens on TCP only with --tlsverify")
DROPIN_DRIFT = Rule("tls-dropin-drift", WARNING, "hostprep's drop-in for docker.service is as hostprep wrote it")
DAG_SOCKET = Rule("tls-dag-uses-local-socket", WARNING, "no DAG hard-codes docker_url to the local socket",
                  fixable=False)
MOUNT_MISSING = Rule("tls-mount-missing-on-task-host", WARNING,
                     "Mount sources in DAGs exist on the task host (its daemon resolves them)", fixable=False)
RULES = (EXPIRING, EXPIRES_SOON, UNREACHABLE, NO_TLS, DROPIN_DRIFT, DAG_SOCKET, MOUNT_MISSING, *RemoteTls.rules)
_SOCKET_URL = re.compile(r"""docker_url["']?\s*[=:]\s*["']unix://""")
_SOURCE = re.compile(r"""\bsource\s*=\s*["'](/[A-Za-z0-9_.@+/-]{0,200})["']""")   # Mount's 1st positional is the target


def mount_sources(dags: tuple[DagLine, ...]) -> dict[str, str]:
    """Absolute Mount sources the DAG lines name, each with where (``file:line``), first one kept.

    >>> mount_sources((DagLine("a.py", 3, 'mounts=[Mount(source="/opt/data", target="/d")]'),))
    {'/opt/data': 'a.py:3'}
    """
    out: dict[str, str] = {}
    for d in dags:
        for m in _SOURCE.finditer(d.text):
            if ".." not in m.group(1).split("/"):
                out.setdefault(m.group(1), d.where)
    return out


def dag_findings(dags: tuple[DagLine, ...], on_air: tls_host.TlsFacts | None, on_task: tls_host.TlsFacts | None) -> list[Finding]:
    """DockerOperators that still reach for the local socket; Mount sources the Airflow host has and the task host lacks."""
    out = [Finding(DAG_SOCKET, f"{d.where}: docker_url set to the local socket; the worker has none, the task fails",
                   "drop docker_url (DockerOperator then uses DOCKER_HOST, the task host) and pass the tls_* arguments",
                   d.where) for d in dags if _SOCKET_URL.search(d.text)]
    for path, where in mount_sources(dags).items():
        here = on_air.files.get(path) if on_air else None
        there = on_task.files.get(path) if on_task else None
        if here is not None and here.kind in ("file", "dir") and there is not None and there.kind == "missing":
            out.append(Finding(MOUNT_MISSING, f"{where}: Mount source {path} exists on the Airflow host but not on "
                               "the task host, whose daemon resolves it", f"create {path} on the task host (or "
                               "stop mounting it)", path))
    return out


def _hint(air: str) -> str:
    return f"`hostprep certs.rotate --host {air}` issues new certificates (a re-provision of the pair also does)"


def cert_findings(where: str, pem: bytes | None, ca_pem: bytes | None, air: str, now: datetime | None = None) -> list[Finding]:
    """One certificate: missing or not from its CA (critical), within 7 days (critical) or 30 (warning)."""
    if pem is None or ca_pem is None:
        return [Finding(EXPIRES_SOON, f"{where}: missing", _hint(air), where)]
    text = pem.decode(errors="replace")
    why = certs.verify_chain(text, ca_pem.decode(errors="replace"), now=now)
    if why is not None:
        return [Finding(EXPIRES_SOON, f"{where}: {why}", _hint(air), where)]
    left = certs.days_left(text, now=now)
    if left <= CRITICAL_DAYS:
        return [Finding(EXPIRES_SOON, f"{where}: expires in {left:.1f} days", _hint(air), where)]
    if left <= WARN_DAYS:
        return [Finding(EXPIRING, f"{where}: expires in {left:.0f} days", _hint(air), where)]
    return []


def _content(f: tls_host.TlsFacts, path: str) -> bytes | None:
    got = f.files.get(path)
    return got.content if got is not None and got.kind == "file" else None


def judge(air: str, af: tls_host.TlsFacts, tf: tls_host.TlsFacts, task_facts: Facts, endpoint: Mapping[str, Any],
          now: datetime | None = None) -> list[Finding]:
    """Findings about the pair from what both hosts showed (pure)."""
    out = cert_findings(f"{af.host}:{CLIENT_DIR}/{CERT}", _content(af, f"{CLIENT_DIR}/{CERT}"),
                        _content(af, f"{CLIENT_DIR}/ca.pem"), air, now)
    out += cert_findings(f"{tf.host}:{SERVER_DIR}/{CERT}", _content(tf, f"{SERVER_DIR}/{CERT}"),
                         _content(tf, f"{SERVER_DIR}/ca.pem"), air, now)
    fix = f"`hostprep provision --host {air} --strategy remote-tls` writes it again"
    if task_facts.daemon.tcp_without_tls:
        out.append(Finding(NO_TLS, f"{tf.host}: dockerd listens on TCP without TLS "
                           f"({', '.join(task_facts.daemon.tcp_hosts or task_facts.daemon.listening)})", fix))
    if not tf.port_busy:
        out.append(Finding(UNREACHABLE, f"{tf.host}: nothing listens on TCP {endpoint['port']}: the workers' tasks fail",
                           f"check docker.service on {tf.host} (`systemctl status docker`), then {fix}"))
    have = _content(tf, DROPIN)
    try:
        want = dropin_text(tf.exec_start or "", int(endpoint["port"])).encode()
    except ValueError:
        want = None
    if have is None:
        out.append(Finding(DROPIN_DRIFT, f"{tf.host}: {DROPIN} is gone: the next dockerd restart drops TLS", fix))
    elif want is not None and have != want:
        out.append(Finding(DROPIN_DRIFT, f"{tf.host}: {DROPIN} was changed since hostprep wrote it", fix))
    return out


def audit(air_t: Transport, air_settings: HostSettings, task_t: Transport, task_settings: HostSettings, task_vars: Mapping[str, Any],
          now: datetime | None = None) -> list[Finding]:
    """Read both hosts (no writes) and judge the pair; an unreachable task host is a finding, not an error."""
    endpoint = task_endpoint(task_vars, task_t.endpoint.name)
    settings = with_endpoint(air_settings, endpoint)
    air_facts = gather(air_t, settings, deep=False, docker_url=docker_url_of(endpoint))
    out = RemoteTls().drift(air_facts, settings)
    af = tls_host.gather(air_t, AIRFLOW_PATHS)
    try:
        tf = tls_host.gather(task_t, TASK_PATHS, endpoint["port"])
        task_facts = gather(task_t, task_settings, deep=False)
    except TransportError as exc:
        return [*out, Finding(UNREACHABLE, f"{task_t.endpoint.name}: unreachable ({str(exc)[:200]})",
                              "bring the task host back; the workers' Docker tasks fail meanwhile")]
    sources = sorted(mount_sources(air_facts.dags))
    dags = dag_findings(air_facts.dags, tls_host.gather(air_t, sources, stat_only=True) if sources else None,
                        tls_host.gather(task_t, sources, stat_only=True) if sources else None)
    return [*out, *judge(air_t.endpoint.name, af, tf, task_facts, endpoint, now), *dags]
