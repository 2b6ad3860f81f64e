"""remote-tls: the task containers run on another machine's dockerd, reached over TCP with TLS client
certificates; the Airflow host keeps no Docker socket in any container.

Two hosts of one inventory take part. The **Airflow host** (``hostprep_task_host: NAME``) gets its client
certificate in a root-owned folder (group 0, 0640, mounted read-only into the services that need Docker),
``DOCKER_HOST=tcp://<task host>:<port>``, ``DOCKER_TLS_VERIFY=1`` and ``DOCKER_CERT_PATH`` for those
services, and their socket mounts masked as socket-proxy masks them. The **task host** (its own vars:
``hostprep_tls_address``, ``hostprep_tls_port``, ``hostprep_tls_ip``) gets a systemd drop-in that adds
``--tlsverify -H tcp://0.0.0.0:<port>`` to dockerd and keeps its unix socket. ``hostprep.remote_tls_run``
changes both; this module is the pure part: settings, the override, the drop-in, the desired state.

DockerOperator does not read DOCKER_CERT_PATH or DOCKER_TLS_VERIFY (apache-airflow-providers-docker 4.6:
TLS comes only from its own ``tls_*`` arguments; a Docker *connection* only carries a registry login). So the
services also get ``AIRFLOW_CONN_<ID>``: a generic Airflow connection whose ``extra`` holds exactly those
keyword arguments (paths, no secrets; see :func:`connection_json`), and a DAG passes them on
(:data:`DAG_NEEDS`). Bind mounts of a task are resolved by the task host's daemon.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any, Mapping

from hostprep.host.containers import ContainerFacts
from hostprep.errors import SettingsError
from hostprep.host.facts import Facts
from hostprep.strategies.findings import CRITICAL, WARNING, Finding, Rule, provision_hint
from hostprep.host.socket_exposure import socket_views
from hostprep.inventory.settings import HostSettings
from hostprep.strategies.steps import Draft
from hostprep.strategies.base import Row, Strategy
from hostprep.strategies.groups import recorded_services
from hostprep.strategies.socket_proxy import socket_targets

DEFAULT_PORT = 2376
CLIENT_DIR = "/etc/hostprep/docker-tls"          # on the Airflow host, and the same path in its workers
SERVER_DIR = "/etc/hostprep/dockerd-tls"         # on the task host
DROPIN_DIR = "/etc/systemd/system/docker.service.d"
DROPIN = f"{DROPIN_DIR}/hostprep-tls.conf"
MARK = "# hostprep remote-tls:"
CA, CERT, KEY = "ca.pem", "cert.pem", "key.pem"
DEFAULT_CONN_ID = "docker_tasks"
DAG_NEEDS = ("`from airflow.sdk import Connection` and DockerOperator(task_id=..., image=..., "
             "**Connection.get(\"{conn}\").extra_dejson) (docker_url and the tls_* arguments; the connection "
             "is in the environment of hostprep_services: a DAG that reads it at parse time needs the services that "
             "parse DAGs there too); Mount sources must exist on the task host")

_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")            # what facts.DOCKER_URL accepts as a host
_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,252}")  # an inventory host name
_CONN_ID = re.compile(r"[a-z][a-z0-9_]{0,62}")             # an Airflow connection id hostprep writes
_WORD = re.compile(r"[A-Za-z0-9_./:=$@%+,-]{1,200}")        # a word of dockerd's own ExecStart, as we keep it

SOCKET_MOUNTED = Rule("tls-socket-still-mounted", CRITICAL,
                      "services that use the task host neither mount the socket nor point DOCKER_HOST elsewhere")
NO_CERTS = Rule("tls-client-certs-unmounted", WARNING, "services that use the task host mount the client certificates")


def task_endpoint(vars: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Where Airflow hosts reach a task host: ``address`` (default its inventory name), ``port``
    (default 2376), ``ip`` (optional: pinned into the workers' /etc/hosts and put in the certificate).

    >>> task_endpoint({"hostprep_tls_ip": "10.0.0.7"}, "tasks1")
    {'address': 'tasks1', 'port': 2376, 'ip': '10.0.0.7'}
    """
    address = vars.get("hostprep_tls_address", name)
    if not isinstance(address, str) or not _NAME.fullmatch(address):
        raise SettingsError(f"{name}: hostprep_tls_address={address!r:.80}: must be a lower-case host or DNS name "
                            "(letters, digits and _ . -)")
    port = vars.get("hostprep_tls_port", DEFAULT_PORT)
    if isinstance(port, bool) or not str(port).isdigit() or not 1 <= int(str(port)) <= 65535:
        raise SettingsError(f"{name}: hostprep_tls_port={port!r:.80}: must be a TCP port (1-65535)")
    ip = vars.get("hostprep_tls_ip")
    if ip is not None:
        try:
            ip = str(ipaddress.ip_address(str(ip)))
        except ValueError:
            raise SettingsError(f"{name}: hostprep_tls_ip={ip!r:.80}: must be an IP address") from None
    return {"address": address, "port": int(str(port)), "ip": ip}


def docker_url_of(endpoint: Mapping[str, Any]) -> str:
    return f"tcp://{endpoint['address']}:{endpoint['port']}"


def dropin_text(exec_start: str, port: int) -> str:
    """The drop-in for docker.service: the unit's own ExecStart, plus TLS and a TCP listener.

    Without any ``-H`` dockerd listens on its default socket; with one, only there: so the unix socket
    is named when the unit named none. ``exec_start`` is host data: every word is checked whole.

    >>> print(dropin_text("/usr/sbin/dockerd -H fd:// $DOCKER_OPTS", 2376).split("\\n")[-2])
    ExecStart=/usr/sbin/dockerd -H fd:// $DOCKER_OPTS --tlsverify --tlscacert=/etc/hostprep/dockerd-tls/ca.pem --tlscert=/etc/hostprep/dockerd-tls/cert.pem --tlskey=/etc/hostprep/dockerd-tls/key.pem -H tcp://0.0.0.0:2376
    """
    words = exec_start.split()
    if not words or not words[0].startswith("/") or not words[0].endswith("/dockerd") or \
            not all(_WORD.fullmatch(w) for w in words):
        raise SettingsError(f"docker.service's ExecStart {exec_start[:120]!r} is not a dockerd command hostprep can "
                            "extend (words of letters, digits and _ ./:=$@%+,- only)")
    hosts = [w.split("=", 1)[1] if "=" in w else (words[i + 1] if i + 1 < len(words) else "")
             for i, w in enumerate(words) if w.split("=", 1)[0] in ("-H", "--host")]
    if any(h.startswith("tcp://") for h in hosts) or any(w.startswith("--tls") for w in words):
        raise SettingsError(f"docker.service's ExecStart {exec_start[:120]!r} already sets TCP or TLS options")
    unix = [] if hosts else ["-H", "unix:///var/run/docker.sock"]
    tls = ["--tlsverify", f"--tlscacert={SERVER_DIR}/{CA}", f"--tlscert={SERVER_DIR}/{CERT}",
           f"--tlskey={SERVER_DIR}/{KEY}", "-H", f"tcp://0.0.0.0:{port}"]
    return "\n".join([f"{MARK} dockerd also listens on TCP {port}; clients must show a certificate from the fleet CA",
                      "[Service]", "ExecStart=", "ExecStart=" + " ".join([*words, *unix, *tls]), ""])


def connection_json(endpoint: Mapping[str, Any]) -> str:
    """The Airflow connection hostprep writes (``AIRFLOW_CONN_<ID>``): a generic connection whose ``extra``
    is DockerOperator's own keyword arguments for the task host. Paths only: the key stays in its file.

    >>> import json; sorted(json.loads(connection_json({"address": "tasks1", "port": 2376}))["extra"])
    ['docker_url', 'tls_ca_cert', 'tls_client_cert', 'tls_client_key', 'tls_hostname', 'tls_verify']
    """
    extra = {"docker_url": docker_url_of(endpoint), "tls_ca_cert": f"{CLIENT_DIR}/{CA}",
             "tls_client_cert": f"{CLIENT_DIR}/{CERT}", "tls_client_key": f"{CLIENT_DIR}/{KEY}",
             "tls_verify": True, "tls_hostname": endpoint["address"]}
    return json.dumps({"conn_type": "generic", "extra": extra}, sort_keys=True, separators=(",", ":"))


def conn_env(conn_id: str) -> str:
    """The variable Airflow reads a connection from: ``docker_tasks`` -> ``AIRFLOW_CONN_DOCKER_TASKS``."""
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def dag_warning(conn_id: str) -> str:
    """What the plan (and ``--strategy remote-tls``) says a DAG must write, for the connection ``conn_id``."""
    return f"DockerOperator takes TLS only from its own arguments: every DAG writes {DAG_NEEDS.format(conn=conn_id)}"


def conn_id_of(settings: HostSettings) -> str:
    return str(dict(settings.options).get("tls_conn_id", DEFAULT_CONN_ID))


def service_entries(facts: Facts, settings: HostSettings, svc: str, endpoint: Mapping[str, Any]) -> dict[str, Any]:
    """A service that needs Docker: DOCKER_HOST at the task host with TLS, the Airflow connection for
    DockerOperator, the client certificates read-only, its socket mounts masked (``/dev/null``, as
    socket-proxy does: see its ``service_entries``)."""
    entries: dict[str, Any] = {
        "environment": {"DOCKER_HOST": docker_url_of(endpoint), "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": CLIENT_DIR,
                        conn_env(conn_id_of(settings)): connection_json(endpoint)},
        "volumes": [f"{CLIENT_DIR}:{CLIENT_DIR}:ro", *(f"/dev/null:{t}:ro" for t in socket_targets(facts, settings, svc))],
    }
    if endpoint.get("ip"):
        entries["extra_hosts"] = [f"{endpoint['address']}:{endpoint['ip']}"]
    return entries


def endpoint_of(settings: HostSettings) -> dict[str, Any] | None:
    """The task host's endpoint the paired run put into this Airflow host's settings (None: not resolved)."""
    ep = dict(settings.options).get("tls_endpoint")
    return dict(ep) if isinstance(ep, (dict, tuple)) else None


def _running(facts: Facts, svc: str) -> ContainerFacts | None:
    return next((c for c in facts.service_containers(svc) if c.running), None)


class RemoteTls(Strategy):
    name = "remote-tls"
    help = ("task containers run on another host's dockerd over TCP with TLS client certificates "
            "(hostprep_task_host: NAME); no socket on the Airflow host's containers")
    warning = dag_warning(DEFAULT_CONN_ID)
    needs_docker_group = False
    settings = ("hostprep_task_host", "hostprep_tls_address", "hostprep_tls_port", "hostprep_tls_ip",
                "hostprep_tls_conn_id")
    rules = (SOCKET_MOUNTED, NO_CERTS)

    def options(self, vars: Mapping[str, Any]) -> dict[str, Any]:
        """``hostprep_task_host`` (an inventory host name) on an Airflow host; the ``hostprep_tls_*`` vars are
        the task host's own (checked by :func:`task_endpoint` when a run pairs the two);
        ``hostprep_tls_conn_id`` the Airflow connection's id (default ``docker_tasks``)."""
        conn = vars.get("hostprep_tls_conn_id")
        if conn is not None and (not isinstance(conn, str) or not _CONN_ID.fullmatch(conn)):
            raise SettingsError(f"hostprep_tls_conn_id={conn!r:.80}: must be an Airflow connection id of lower-case "
                                "letters, digits and _ (a letter first, at most 63)")
        task = vars.get("hostprep_task_host")
        if task is None:
            return {"tls_conn_id": conn} if conn is not None else {}
        if not isinstance(task, str) or not _HOST.fullmatch(task) or ".." in task:
            raise SettingsError(f"hostprep_task_host={task!r:.80}: must name a host of the inventory")
        return {"task_host": task, **({"tls_conn_id": conn} if conn is not None else {})}

    def docker_url(self, settings: HostSettings) -> str | None:
        ep = endpoint_of(settings)
        return docker_url_of(ep) if ep else None

    def plan(self, facts: Facts, settings: HostSettings, draft: Draft) -> None:
        ep = endpoint_of(settings)
        if ep is None:
            draft.problems.append("remote-tls needs hostprep_task_host: NAME (a host of the same inventory), and is "
                                  "applied by a run that changes both hosts")
            return
        draft.warnings.append(dag_warning(conn_id_of(settings)))
        draft.override_notes = (f"Docker runs on {ep['address']}:{ep['port']} (TLS, client certificate in {CLIENT_DIR})",)
        for svc in settings.services:
            draft.override.setdefault(svc, {}).update(service_entries(facts, settings, svc, ep))
        if not all(ok for _, ok, _ in self.satisfied(facts, settings)):
            draft.recreate = True

    def satisfied(self, facts: Facts, settings: HostSettings) -> list[Row]:
        ep = endpoint_of(settings)
        url = docker_url_of(ep) if ep else None
        rows: list[Row] = []
        for svc in settings.services:
            c = _running(facts, svc)
            rows.append((f"{svc} gets DOCKER_HOST={url}", c is not None and url is not None and c.docker_host == url,
                         f"DOCKER_HOST={c.docker_host}" if c else "not running"))
            certs = c is not None and any(m.target == CLIENT_DIR and m.source == CLIENT_DIR and m.read_only
                                          for m in c.mounts)
            rows.append((f"{svc} mounts {CLIENT_DIR} read-only", certs, "yes" if certs else "no"))
            views = socket_views(c, settings) if c is not None else []
            rows.append((f"{svc} does not mount the socket", c is not None and not views,
                         "not running" if c is None else f"reaches it at {', '.join(views)}" if views else "no"))
        return rows

    def drift(self, facts: Facts, settings: HostSettings) -> list[Finding]:
        """A service back on the socket, or without its certificates (the task host's side: ``remote_tls_run``)."""
        hint = f"`{provision_hint(facts.host, self.name)}` recreates it"
        out = []
        for svc in recorded_services(facts, settings):
            c = _running(facts, svc)
            if c is None:
                continue
            views = socket_views(c, settings)
            if views or not (c.docker_host or "").startswith("tcp://"):
                why = f"reaches {settings.socket_path} at {', '.join(views)}" if views else \
                    f"DOCKER_HOST is {c.docker_host or 'unset'}"
                out.append(Finding(SOCKET_MOUNTED, f"{svc} {why}: its tasks run on this host, not the task host", hint, svc))
            if not any(m.target == CLIENT_DIR for m in c.mounts):
                out.append(Finding(NO_CERTS, f"{svc} does not mount {CLIENT_DIR}: the task host refuses it", hint, svc))
        return out
