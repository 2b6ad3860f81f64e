"""Posture: the unsafe workarounds operators really use, found on any host whatever hostprep applied. Pure.

Each is read from facts the probe already gathers in its one exec (dockerd's flags, daemon.json and
listeners; the containers that mount the socket or belong to the project; the DAG files), so the
cheap and the deep audit find the same. None is fixable by a provision: each hint says what to do.
The world-writable socket and bind folders are the audit's own rules (``socket-world-writable``,
``bind-dir-world-writable``).
"""

from __future__ import annotations

import re
from typing import Callable

from hostprep.host.containers import ContainerFacts
from hostprep.host.facts import Facts
from hostprep.strategies.findings import CRITICAL, WARNING, Finding, Rule
from hostprep.inventory.settings import HostSettings
from hostprep.host.socket_exposure import socket_views

TCP_NO_TLS = Rule("dockerd-tcp-no-tls", CRITICAL, "dockerd does not listen on TCP without TLS client verification",
                  fixable=False)
SOCKET_PUBLISHED = Rule("socket-published", CRITICAL, "no container that mounts the socket publishes a host port",
                        fixable=False)
AIRFLOW_ROOT = Rule("airflow-runs-as-root", WARNING, "no Airflow service runs as uid 0", fixable=False)
SOCKET_NON_TASK = Rule("socket-in-non-task-service", WARNING, "only services that run tasks mount the socket",
                       fixable=False)
DAG_PRIVILEGED = Rule("dag-privileged", CRITICAL, "no DAG starts a privileged container", fixable=False)
DAG_HOST_BIND = Rule("dag-host-bind", CRITICAL, "no DAG bind-mounts /, /etc, /root or the Docker socket", fixable=False)
RULES = (TCP_NO_TLS, SOCKET_PUBLISHED, DAG_PRIVILEGED, DAG_HOST_BIND, AIRFLOW_ROOT, SOCKET_NON_TASK)

NON_TASK = re.compile(r"apiserver|webserver|scheduler|triggerer|dag-processor")
_PRIVILEGED = re.compile(r"privileged\s*=\s*True\b")
_HOST_PATH = r"(/|/etc|/root|/var/run/docker\.sock|/run/docker\.sock)/?"
_HOST_BIND = re.compile(rf"""source\s*=\s*["']{_HOST_PATH}["']|["']{_HOST_PATH}:[^"']*["']""")


def _mounts_socket(c: ContainerFacts, settings: HostSettings) -> bool:
    return bool(socket_views(c, settings))


def daemon_tcp(facts: Facts, settings: HostSettings) -> list[Finding]:
    d = facts.daemon
    if not d.tcp_without_tls:
        return []
    seen = "; ".join([*(f"configured {h}" for h in d.tcp_hosts), *(f"listening on {a}" for a in d.listening)])
    return [Finding(TCP_NO_TLS, f"dockerd accepts Docker API calls over TCP without TLS client verification ({seen}): "
                    "anyone who reaches the port is root on the host",
                    "remove the tcp:// host (-H flag, daemon.json `hosts`, docker.socket ListenStream) and use the "
                    "socket, or --tlsverify with client certificates")]


def published_socket(facts: Facts, settings: HostSettings) -> list[Finding]:
    return [Finding(SOCKET_PUBLISHED, f"container {c.name} mounts the Docker socket and publishes "
                    f"{', '.join(c.published)}: the Docker API (root) on a host port",
                    f"remove the port (or the container: `docker rm -f {c.name}`); give the worker a proxy on an "
                    "internal network instead (`--strategy socket-proxy`)", c.name)
            for c in facts.containers if c.running and c.published and _mounts_socket(c, settings)]


def _project(facts: Facts) -> list[ContainerFacts]:
    return [c for c in facts.containers if c.running and c.project and c.project == facts.worker.compose_project]


def airflow_root(facts: Facts, settings: HostSettings) -> list[Finding]:
    out = []
    for c in _project(facts):
        airflow = "airflow" in (c.service or "") or "airflow" in (c.image or "")
        user = (c.user or "").split(":")[0]
        if airflow and user in ("", "0", "root"):
            out.append(Finding(AIRFLOW_ROOT, f"service {c.service} runs as {c.user or 'the image default (root)'}",
                               f'set `user: "{settings.airflow_uid}:0"` for {c.service} (the official compose does)',
                               c.service))
    return out


def socket_in_non_task(facts: Facts, settings: HostSettings) -> list[Finding]:
    return [Finding(SOCKET_NON_TASK, f"service {c.service} mounts the Docker socket but does not run tasks",
                    f"remove the socket from {c.service}'s volumes (often it comes with x-airflow-common); only "
                    f"{', '.join(settings.services)} need Docker", c.service)
            for c in _project(facts)
            if c.service and NON_TASK.search(c.service) and c.service not in settings.services
            and _mounts_socket(c, settings)]


def dag_options(facts: Facts, settings: HostSettings) -> list[Finding]:
    """DockerOperator arguments that make a task root on the host (matched text only, never the line)."""
    out = []
    for d in facts.dags:
        if _PRIVILEGED.search(d.text):
            out.append(Finding(DAG_PRIVILEGED, f"{d.where}: privileged=True", "drop privileged=True (grant the one "
                               "capability the task needs with cap_add, if any)", d.where))
        bind = _HOST_BIND.search(d.text)
        if bind:
            out.append(Finding(DAG_HOST_BIND, f"{d.where}: bind-mounts {bind.group(1) or bind.group(2)} from the host",
                               "mount a dedicated folder (or a volume) instead; the socket or / in a task is root "
                               "on the host", d.where))
    return out


CHECKS: tuple[Callable[[Facts, HostSettings], list[Finding]], ...] = (
    daemon_tcp, published_socket, dag_options, airflow_root, socket_in_non_task,
)


def findings(facts: Facts, settings: HostSettings) -> list[Finding]:
    """Every posture finding on one host."""
    return [f for check in CHECKS for f in check(facts, settings)]
