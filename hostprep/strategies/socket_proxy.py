"""socket-proxy: the worker reaches Docker through a filtering proxy, never through the socket.

hostprep's override adds a proxy service (haproxy) that alone mounts the socket (read-only), on an
internal network shared only with the services that need Docker, never published on a host port.
Those services lose their socket mount and get ``DOCKER_HOST=tcp://hostprep-docker-proxy:2375``, which
DockerOperator (docker-py) honours whenever a DAG does not hard-code ``docker_url``.

The proxy's rules are hostprep's own haproxy config (handed to the image in an environment variable,
so the override file is the only thing written): what DockerOperator calls (``/_ping``, ``/version``,
``/containers``, ``/images``, and ``/auth`` only if asked) with GET, HEAD, POST and DELETE; exec and
export under ``/containers`` refused, and everything else too (volumes, networks, swarm, system,
secrets, plugins, build...). Tecnativa's config cuts every call idle for 10 minutes, which kills
``POST /containers/{id}/wait`` and silent attach streams of longer tasks: here those two (and logs)
go to a backend without an idle timeout, and the others get ``hostprep_proxy_timeout`` (default 1h).

What the proxy does NOT do: it never reads request bodies, so ``POST /containers/create`` with
``Privileged``, host binds of ``/`` or ``PidMode: host`` still passes. It narrows the API; it does not
make a worker that can start containers safe.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from hostprep import compose
from hostprep.access import id_groups
from hostprep.containers import ContainerFacts
from hostprep.errors import SettingsError
from hostprep.facts import Facts
from hostprep.settings import HostSettings
from hostprep.steps import Draft
from hostprep.strategies.base import Row, Strategy

SERVICE = "hostprep-docker-proxy"
NETWORK = "hostprep-docker-proxy"
PORT = 2375
DOCKER_URL = f"tcp://{SERVICE}:{PORT}"
# Upstream image, pinned by digest (as published for tecnativa/docker-socket-proxy 0.3.0).
DEFAULT_IMAGE = ("tecnativa/docker-socket-proxy:0.3.0"
                 "@sha256:9e4b9e7517a6b660f2cc903a19b257b1852d5b3344794e3ea334ff00ae677ac2")
DEFAULT_TIMEOUT = "1h"
CONFIG_VAR = "HOSTPREP_PROXY_CONFIG"
CONFIG_PATH = "/tmp/hostprep-haproxy.cfg"
# The image's own entrypoint is bypassed: write hostprep's config, then run haproxy (master-worker, foreground).
LAUNCH = f'printf "%s\\n" "$${CONFIG_VAR}" > {CONFIG_PATH} && exec haproxy -W -db -f {CONFIG_PATH}'
AREAS = ("volumes", "networks", "exec", "system", "swarm", "secrets")   # the negative checks, see probe.sh

_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./:@-]{0,254}")
_TIMEOUT = re.compile(r"[1-9][0-9]{0,5}(ms|s|m|h|d)")


def haproxy_config(*, auth: bool, timeout: str) -> str:
    """hostprep's proxy rules (pure; the same settings give the same text).

    >>> cfg = haproxy_config(auth=False, timeout="1h")
    >>> "/auth" in cfg, "timeout client 1h" in cfg, "bind :2375" in cfg
    (False, True, True)
    """
    sections = "_ping|version|containers|images" + ("|auth" if auth else "")
    v = r"^(/v[0-9.]+)?"
    return "\n".join([
        "global",
        "    log stdout format raw daemon info",
        "    maxconn 4000",
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    option dontlognull",
        "    option http-server-close",
        "    timeout http-request 10s",
        "    timeout queue 1m",
        "    timeout connect 10s",
        f"    timeout client {timeout}",
        f"    timeout server {timeout}",
        f"    timeout tunnel {timeout}",
        "    timeout http-keep-alive 10s",
        "frontend docker",
        f"    bind :{PORT}",
        "    http-request deny unless METH_GET || METH_HEAD || METH_POST || METH_DELETE",
        f"    http-request deny if {{ path,url_dec -m reg -i {v}/containers/[^/]+/(exec|export)(/|$) }}",
        f"    http-request allow if {{ path,url_dec -m reg -i {v}/({sections})(/|$) }}",
        "    http-request deny",
        f"    use_backend long if {{ path,url_dec -m reg -i {v}/containers/[^/]+/(wait|attach|logs)$ }}",
        "    default_backend dockerd",
        "backend dockerd",
        "    server dockerd /var/run/docker.sock",
        "backend long",
        "    # a task's wait and its attach stream stay silent as long as the task runs: no idle timeout",
        "    timeout server 0",
        "    timeout tunnel 0",
        "    server dockerd /var/run/docker.sock",
        "",
    ])


def proxy_options(settings: HostSettings) -> dict[str, Any]:
    """This strategy's settings for a host, defaults filled in."""
    own = dict(settings.options)
    return {"image": own.get("proxy_image", DEFAULT_IMAGE), "auth": own.get("proxy_auth", False),
            "timeout": own.get("proxy_timeout", DEFAULT_TIMEOUT)}


def proxy_service(settings: HostSettings) -> dict[str, Any]:
    """The proxy's Compose service: the socket read-only, the internal network only, no port."""
    opts = proxy_options(settings)
    return {
        "image": opts["image"],
        "entrypoint": ["/bin/sh", "-c", LAUNCH],
        # Compose interpolates environment values: "$$" is how a "$" of the config reaches haproxy
        "environment": {CONFIG_VAR: haproxy_config(auth=opts["auth"], timeout=opts["timeout"]).replace("$", "$$")},
        "volumes": [f"{settings.socket_path}:/var/run/docker.sock:ro"],
        "networks": [NETWORK],
        "read_only": True,
        "tmpfs": ["/tmp"],
        "restart": "unless-stopped",
    }


def socket_targets(facts: Facts, settings: HostSettings, svc: str) -> list[str]:
    """Where a service mounts the Docker socket: in the compose files, and in its running container."""
    paths = {settings.socket_path, settings.socket_path.removeprefix("/var"), "/var" + settings.socket_path}
    targets: set[str] = set()
    docs = [facts.compose_data]
    extra = facts.files.get("docker-compose.override.yml")
    if extra and extra.exists and extra.content:
        docs.append(compose.load_compose(extra.content, extra.name))
    for doc in docs:
        for v in (compose.service(doc, svc) or {}).get("volumes") or []:
            src, dst = _bind(v, facts.env)
            if src in paths and dst:
                targets.add(dst)
    for c in facts.service_containers(svc):
        targets.update(m.target for m in c.mounts if m.kind == "bind" and m.source in paths)
    return sorted(targets)


def _bind(v: Any, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(host path, container path) of one volume entry, short or long syntax."""
    if isinstance(v, dict):
        src, dst = v.get("source"), v.get("target")
        return (compose.interpolate(str(src), env) if src else None), (str(dst) if dst else None)
    parts = compose.interpolate(str(v), env).split(":")
    return (parts[0], parts[1]) if len(parts) >= 2 else (None, None)


def service_entries(facts: Facts, settings: HostSettings, svc: str) -> dict[str, Any]:
    """A service that needs Docker: DOCKER_HOST at the proxy, on its network, its socket mount masked.

    Compose merges volumes by target, so an override can only replace a mount, and the replacement
    needs a host source: Compose v2 carries the previous container's mount over to a source-less
    one at the same target (a tmpfs there kept the socket, seen on 2.26.1). ``/dev/null``, read-only,
    leaves a character device where the socket was: nothing to connect to."""
    base = compose.service(facts.compose_data, svc) or {}
    entries: dict[str, Any] = {"environment": {"DOCKER_HOST": DOCKER_URL},
                               "networks": [NETWORK] if base.get("networks") else ["default", NETWORK]}
    targets = socket_targets(facts, settings, svc)
    if targets:
        entries["volumes"] = [f"/dev/null:{t}:ro" for t in targets]
    return entries


def _running(facts: Facts, svc: str) -> ContainerFacts | None:
    found = facts.service_containers(svc)
    return found[0] if found and found[0].running else None


class SocketProxy(Strategy):
    name = "socket-proxy"
    help = ("the worker reaches Docker through a filtering proxy (haproxy) on an internal network; "
            "no socket mount, no docker group")
    warning = ("the proxy narrows the Docker API (no exec, volumes, networks, swarm, system) but does not "
               "read request bodies: a DAG can still create a privileged container or bind-mount / from the host")
    needs_docker_group = False
    settings = ("hostprep_proxy_image", "hostprep_proxy_auth", "hostprep_proxy_timeout")

    def options(self, vars: Mapping[str, Any]) -> dict[str, Any]:
        """``hostprep_proxy_image`` (an image reference), ``hostprep_proxy_auth`` (a boolean: open ``/auth``
        for ``docker_conn_id``), ``hostprep_proxy_timeout`` (haproxy time, e.g. ``90m``); only those set."""
        out: dict[str, Any] = {}
        image, auth, timeout = (vars.get(k) for k in self.settings)
        if image is not None:
            if not isinstance(image, str) or not _IMAGE.fullmatch(image):
                raise SettingsError(f"hostprep_proxy_image={image!r:.80}: must be an image reference "
                                    "(letters, digits and _ . / : @ -)")
            out["proxy_image"] = image
        if auth is not None:
            if not isinstance(auth, bool) and str(auth).lower() not in ("true", "false"):
                raise SettingsError(f"hostprep_proxy_auth={auth!r:.80}: must be true or false")
            out["proxy_auth"] = auth if isinstance(auth, bool) else str(auth).lower() == "true"
        if timeout is not None:
            if not isinstance(timeout, str) or not _TIMEOUT.fullmatch(timeout):
                raise SettingsError(f"hostprep_proxy_timeout={timeout!r:.80}: must be a haproxy time such as 90m or 2h")
            out["proxy_timeout"] = timeout
        return out

    def docker_url(self, settings: HostSettings) -> str | None:
        return DOCKER_URL

    def plan(self, facts: Facts, settings: HostSettings, draft: Draft) -> None:
        draft.warnings.append(self.warning or "")
        draft.override_top = {"networks": {NETWORK: {"internal": True}}}
        draft.override[SERVICE] = proxy_service(settings)
        draft.more_services.append(SERVICE)
        for svc in settings.services:
            draft.override.setdefault(svc, {}).update(service_entries(facts, settings, svc))
        if not all(ok for _, ok, _ in self.satisfied(facts, settings)):
            draft.recreate = True

    def satisfied(self, facts: Facts, settings: HostSettings) -> list[Row]:
        proxy = _running(facts, SERVICE)
        rows: list[Row] = [
            ("the proxy runs", proxy is not None, f"service {SERVICE}: {'running' if proxy else 'not running'}"),
            ("the proxy publishes no host port", proxy is not None and not proxy.published,
             ", ".join(proxy.published) if proxy and proxy.published else "none"),
        ]
        for svc in settings.services:
            c = _running(facts, svc)
            rows.append((f"{svc} gets DOCKER_HOST={DOCKER_URL}", c is not None and c.docker_host == DOCKER_URL,
                         f"DOCKER_HOST={c.docker_host}" if c else "not running"))
            rows.append((f"{svc} does not mount the socket", c is not None and not c.mounts_path(settings.socket_path),
                         "not running" if c is None else
                         ", ".join(f"{m.source}:{m.target}" for m in c.mounts if m.source) or "no host mounts"))
        return rows

    def proof(self, facts: Facts) -> list[Row]:
        """Through the proxy (not the socket); not in the docker group; every area outside the API refused."""
        groups = id_groups(facts.worker.id_output or "") or ()
        denied = dict(facts.worker.denied)
        return [
            ("the in-worker checks went through the proxy", facts.docker_url == DOCKER_URL,
             f"DOCKER_HOST={facts.docker_url}"),
            ("the worker is not in the docker group", facts.docker_gid is None or facts.docker_gid not in groups,
             facts.worker.id_output or "no output"),
            ("the proxy refuses " + ", ".join(AREAS) + " (403)", all(denied.get(a) == "403" for a in AREAS),
             ", ".join(f"{a} {denied.get(a, 'not asked')}" for a in AREAS)),
        ]
