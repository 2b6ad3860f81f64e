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

By default the proxy is hostprep's guard instead (``proxy_guard.py``): it also reads what each create asks
for and refuses privileges, host namespaces, devices and binds outside ``hostprep_proxy_bind_allow``, and
lets a task touch only the containers it created. ``hostprep_proxy_guard: false`` keeps the path filter
alone (the audit then says ``proxy-unguarded``).
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from hostprep.host import compose
from hostprep.host.access import id_groups
from hostprep.host.containers import ContainerFacts
from hostprep.host import guard_checks
from hostprep.errors import SettingsError
from hostprep.host.facts import Facts
from hostprep.strategies.findings import CRITICAL, WARNING, Finding, Rule, override_chain_broken, override_document, provision_hint
from hostprep.host.socket_exposure import exposed_at, socket_views
from hostprep.inventory.settings import HostSettings
from hostprep.strategies.steps import Draft
from hostprep.strategies.base import Row, Strategy
from hostprep.strategies import proxy_guard
from hostprep.strategies.groups import recorded_services
from hostprep.strategies.proxy_policy import clean_path, dangerous_path
from hostprep.strategies.proxy_haproxy import CONFIG_VAR, LAUNCH, PORT, config_problems, haproxy_config

SERVICE = "hostprep-docker-proxy"
NETWORK = "hostprep-docker-proxy"
DOCKER_URL = f"tcp://{SERVICE}:{PORT}"
# Upstream image, pinned by digest (as published for tecnativa/docker-socket-proxy 0.3.0).
DEFAULT_IMAGE = ("tecnativa/docker-socket-proxy:0.3.0"
                 "@sha256:9e4b9e7517a6b660f2cc903a19b257b1852d5b3344794e3ea334ff00ae677ac2")
DEFAULT_TIMEOUT = "1h"
AREAS = ("volumes", "networks", "exec", "system", "swarm", "secrets")   # the negative checks, see probe.sh

PROXY_DOWN = Rule("proxy-down", CRITICAL, "hostprep's Docker proxy runs")
PROXY_PUBLISHED = Rule("proxy-published", CRITICAL, "the Docker proxy publishes no host port", fixable=False)
SOCKET_MOUNTED = Rule("socket-still-mounted", CRITICAL,
                      "services behind the proxy neither mount the socket nor bypass DOCKER_HOST")
OVERRIDE_MISSING = Rule("proxy-override-missing", WARNING, "hostprep's override with the proxy is in place and loaded")
SECTIONS = Rule("proxy-sections", WARNING, "the proxy opens only what DockerOperator needs")
UNGUARDED = Rule("proxy-unguarded", WARNING, "the proxy reads what a container asks for (hostprep's guard)")
BIND_ALLOW = Rule("proxy-bind-allow-dangerous", CRITICAL, "the guard's bind allow-list holds no system folder",
                  fixable=False)
DAG_MOUNT = Rule("dag-mount-refused", WARNING, "every DAG Mount source is in the guard's allow-list", fixable=False)
_DAG_SOURCE = re.compile(r"""source\s*=\s*["'](/[^"']*)["']|["'](/[^"':\s]*):/""")   # Mount(source=) or "src:dst"
DAG_BYPASS = Rule("dag-bypasses-proxy", WARNING, "no DAG hard-codes docker_url to the socket", fixable=False)
_BYPASS = re.compile(r"""docker_url["']?\s*[=:]\s*["']unix://""")   # a keyword argument or a dict entry

_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./:@-]{0,254}")
_TIMEOUT = re.compile(r"[1-9][0-9]{0,5}(ms|s|m|h|d)")


def proxy_options(settings: HostSettings) -> dict[str, Any]:
    """This strategy's settings for a host, defaults filled in."""
    own = dict(settings.options)
    return {"image": own.get("proxy_image", DEFAULT_IMAGE), "auth": own.get("proxy_auth", False),
            "timeout": own.get("proxy_timeout", DEFAULT_TIMEOUT)}


def proxy_service(settings: HostSettings, facts: Facts | None = None) -> dict[str, Any]:
    """The proxy's Compose service: the socket read-only, the internal network only, no port; the guard
    (in the worker's image) unless ``hostprep_proxy_guard`` is false."""
    opts = proxy_options(settings)
    if guard_checks.guarded(settings):
        opts = {**dict(settings.options), **opts}
        image = proxy_guard.guard_image(facts, settings, opts)
        gid = facts.socket.gid if facts is not None else None
        return {**proxy_guard.guard_service(settings, opts, image or "", gid), "networks": [NETWORK]}
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
    """Where a service sees the Docker socket through a bind (the socket or a folder above it, any
    alias, ``socket_exposure.exposed_at``): in the compose files, and in its running container."""
    targets: set[str] = set()
    docs = [(facts.compose_file.name if facts.compose_file else "compose file", facts.compose_data)]
    extra = facts.files.get("docker-compose.override.yml")
    if extra and extra.exists and extra.content:
        docs.append((extra.name, compose.load_compose(extra.content, extra.name)))
    for name, doc in docs:
        for src, dst in volume_binds(doc, svc, facts.env, name):
            targets.update(exposed_at(src, dst, settings))
    for c in facts.service_containers(svc):
        for m in c.mounts:
            if m.kind == "bind" and m.source != "/dev/null":
                targets.update(exposed_at(m.source, m.target, settings))
    return sorted(targets)


def volume_binds(doc: Mapping[str, Any], svc: str, env: Mapping[str, str], name: str) -> list[tuple[str, str]]:
    """(host path, container path) of each volume entry of ``svc``, short or long syntax; an entry that is
    neither is a :class:`compose.ComposeError` naming the file, the service and the entry."""
    where = f"{name}: services.{svc}.volumes"
    raw = (compose.service(doc, svc) or {}).get("volumes")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise compose.ComposeError(f"{where}: must be a list, not {type(raw).__name__}")
    out = []
    for i, v in enumerate(raw):
        if isinstance(v, dict):
            src, dst = v.get("source"), v.get("target")
            if not isinstance(src, (str, type(None))) or not isinstance(dst, (str, type(None))):
                raise compose.ComposeError(f"{where}[{i}]: source and target must be text")
            if src and dst:
                out.append((compose.interpolate(src, env), dst))
        elif isinstance(v, str):
            parts = compose.interpolate(v, env).split(":")
            if len(parts) >= 2:
                out.append((parts[0], parts[1]))
        else:
            raise compose.ComposeError(f"{where}[{i}]: must be text or a mapping, not {type(v).__name__}")
    return out


def service_entries(facts: Facts, settings: HostSettings, svc: str) -> dict[str, Any]:
    """A service that needs Docker: DOCKER_HOST at the proxy, on its network, its socket mount masked.

    Compose merges volumes by target, so an override can only replace a mount, and the replacement
    needs a host source: Compose v2 carries the previous container's mount over to a source-less
    one at the same target (a tmpfs there kept the socket, seen on 2.26.1). ``/dev/null``, read-only,
    leaves a character device where the socket was: nothing to connect to. A folder above the socket
    (``/run:/host/run``) keeps its mount and gets ``/dev/null`` over the socket's path under it."""
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


def _boolean(var: str, value: Any) -> bool:
    if not isinstance(value, bool) and str(value).lower() not in ("true", "false"):
        raise SettingsError(f"{var}={value!r:.80}: must be true or false")
    return value if isinstance(value, bool) else str(value).lower() == "true"


class SocketProxy(Strategy):
    name = "socket-proxy"
    help = ("the worker reaches Docker through hostprep's guard on an internal network: it judges what each "
            "container asks for; no socket mount, no docker group")
    warning = ("the guard refuses privileged containers, host namespaces, devices and binds outside "
               "hostprep_proxy_bind_allow; a task still reads and writes the allowed data folders and can use "
               "CPU and memory without limits")
    unguarded = ("hostprep_proxy_guard is false: the proxy narrows the Docker API (no exec, volumes, networks, "
                 "swarm, system) but does not read request bodies: a DAG can still create a privileged container "
                 "or bind-mount / from the host")
    needs_docker_group = False
    settings = ("hostprep_proxy_image", "hostprep_proxy_auth", "hostprep_proxy_timeout", "hostprep_proxy_guard",
                "hostprep_proxy_guard_image", "hostprep_proxy_bind_allow", "hostprep_proxy_images")
    rules = (PROXY_DOWN, PROXY_PUBLISHED, SOCKET_MOUNTED, OVERRIDE_MISSING, SECTIONS, DAG_BYPASS, UNGUARDED, BIND_ALLOW,
             DAG_MOUNT)

    def options(self, vars: Mapping[str, Any]) -> dict[str, Any]:
        """``hostprep_proxy_image`` (an image reference), ``hostprep_proxy_auth`` (a boolean: open ``/auth``
        for ``docker_conn_id``), ``hostprep_proxy_timeout`` (haproxy time, e.g. ``90m``), ``hostprep_proxy_guard``
        (a boolean, default true), ``hostprep_proxy_guard_image``, ``hostprep_proxy_bind_allow`` (paths) and
        ``hostprep_proxy_images`` (patterns); only those set."""
        out: dict[str, Any] = {}
        image, auth, timeout, guard, guard_image, binds, images = (vars.get(k) for k in self.settings)
        for key, var, value in (("proxy_guard", "hostprep_proxy_guard", guard), ("proxy_auth", "hostprep_proxy_auth", auth)):
            if value is not None:
                out[key] = _boolean(var, value)
        for key, var, value in (("proxy_guard_image", "hostprep_proxy_guard_image", guard_image),
                                ("proxy_image", "hostprep_proxy_image", image)):
            if value is not None:
                if not isinstance(value, str) or not _IMAGE.fullmatch(value):
                    raise SettingsError(f"{var}={value!r:.80}: must be an image reference "
                                        "(letters, digits and _ . / : @ -)")
                out[key] = value
        if binds is not None:
            out["proxy_bind_allow"] = proxy_guard.bind_allow(binds)
        if images is not None:
            out["proxy_images"] = proxy_guard.image_patterns(images)
        if timeout is not None:
            if not isinstance(timeout, str) or not _TIMEOUT.fullmatch(timeout):
                raise SettingsError(f"hostprep_proxy_timeout={timeout!r:.80}: must be a haproxy time such as 90m or 2h")
            out["proxy_timeout"] = timeout
        return out

    def docker_url(self, settings: HostSettings) -> str | None:
        return DOCKER_URL

    def plan(self, facts: Facts, settings: HostSettings, draft: Draft) -> None:
        draft.warnings.append((self.warning if guard_checks.guarded(settings) else self.unguarded) or "")
        draft.override_top = {"networks": {NETWORK: {"internal": True}}}
        draft.override[SERVICE] = proxy_service(settings, facts)
        if draft.override[SERVICE]["image"] == "":
            draft.problems.append(f"no image for {SERVICE}: the worker's image is unknown; set "
                                  "hostprep_proxy_guard_image (an image with python3)")
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
            views = socket_views(c, settings) if c is not None else []
            rows.append((f"{svc} does not mount the socket", c is not None and not views,
                         "not running" if c is None else f"reaches it at {', '.join(views)}" if views else
                         ", ".join(f"{m.source}:{m.target}" for m in c.mounts if m.source) or "no host mounts"))
        return rows

    def drift(self, facts: Facts, settings: HostSettings) -> list[Finding]:
        """The proxy down or published; a service back on the socket; the override gone or widened; DAGs around it."""
        hint = f"`{provision_hint(facts.host, self.name)}` recreates it"
        proxy = facts.service_containers(SERVICE)
        out = [] if proxy and proxy[0].running else [Finding(
            PROXY_DOWN, f"{SERVICE} is {'stopped' if proxy else 'gone'}: the worker cannot reach Docker", hint)]
        out += [Finding(PROXY_PUBLISHED, f"{SERVICE} publishes {', '.join(c.published)}: the Docker API on a host port",
                        f"remove the ports of {SERVICE} (it needs none), then `{provision_hint(facts.host, self.name)}`")
                for c in proxy[:1] if c.published]
        services = recorded_services(facts, settings)
        for svc in services:
            c = _running(facts, svc)
            if c is None:
                continue
            views = socket_views(c, settings)
            why = ([f"reaches {settings.socket_path} at {', '.join(views)}"] if views else []) + \
                ([f"DOCKER_HOST is {c.docker_host or 'unset'}"] if c.docker_host != DOCKER_URL else [])
            if why:
                out.append(Finding(SOCKET_MOUNTED, f"{svc} {' and '.join(why)}: it reaches Docker around the proxy",
                                   hint, svc))
        out += _override_findings(facts, settings, services)
        out += guard_findings(facts, settings)
        out += [Finding(DAG_BYPASS, f"{d.where}: docker_url set to the socket; the worker has no socket, the task fails",
                        "drop docker_url (DockerOperator then uses DOCKER_HOST, the proxy)", d.where)
                for d in facts.dags if _BYPASS.search(d.text)]
        return out

    def proof(self, facts: Facts) -> list[Row]:
        """Through the proxy (not the socket); not in the docker group; every area outside the API refused;
        with the guard, each dangerous create refused from inside the worker and an ordinary one allowed."""
        groups = id_groups(facts.worker.id_output or "") or ()
        denied = dict(facts.worker.denied)
        return _guard_rows(facts) + [
            ("the in-worker checks went through the proxy", facts.docker_url == DOCKER_URL,
             f"DOCKER_HOST={facts.docker_url}"),
            ("the worker is not in the docker group", facts.docker_gid is None or facts.docker_gid not in groups,
             facts.worker.id_output or "no output"),
            ("the proxy refuses " + ", ".join(AREAS) + " (403)", all(denied.get(a) == "403" for a in AREAS),
             ", ".join(f"{a} {denied.get(a, 'not asked')}" for a in AREAS)),
        ]


def _guarded_override(facts: Facts) -> bool | None:
    """Whether hostprep's override runs the guard as the proxy (None: no override with a proxy)."""
    doc = override_document(facts)
    services = doc.get("services") if isinstance(doc, dict) else None
    if not isinstance(services, dict) or SERVICE not in services:
        return None
    return proxy_guard.is_guard(services[SERVICE])


def _guard_rows(facts: Facts) -> list[Row]:
    if not _guarded_override(facts):
        return []
    said = guard_checks.parse_checks(facts.guard_checks)
    rows: list[Row] = []
    for name, *_ in guard_checks.CHECKS:
        status, msg = said.get(name, ("none", "not asked"))
        rows.append((f"proxy refuses {name}", status == "403", f"{status} {msg}".strip()))
    name = guard_checks.ALLOWED[0]
    status, msg = said.get(name, ("none", "not asked"))
    rows.append((f"proxy allows {name}", status == "201", f"{status} {msg or 'created'}".strip()))
    return rows


def guard_findings(facts: Facts, settings: HostSettings) -> list[Finding]:
    """The path-only proxy; an allow-list in the override with a system folder; DAG mounts the guard refuses."""
    guarded = _guarded_override(facts)
    hint = f"`{provision_hint(facts.host, SocketProxy.name)}` deploys hostprep's guard"
    if guarded is False:
        return [Finding(UNGUARDED, f"{SERVICE} only filters paths: a DAG can create a privileged container or bind /",
                        hint)]
    if not guarded:
        return []
    doc = override_document(facts) or {}
    env = _env(doc.get("services", {}), SERVICE)
    try:
        binds = [b for b in json.loads(env.get(proxy_guard.RULES_VAR, "{}")).get("binds", []) if isinstance(b, str)]
    except (ValueError, AttributeError):
        binds = []
    out = [Finding(BIND_ALLOW, f"the guard's allow-list in the override: {why}",
                   "remove it from hostprep_proxy_bind_allow and from the override, then provision", b)
           for b in binds for why in [dangerous_path(b) or ("" if clean_path(b) else f"{b!r} is not a clean path")]
           if why]
    for d in facts.dags:
        for src in (a or b for a, b in _DAG_SOURCE.findall(d.text)):
            if src not in binds and src.rstrip("/") not in binds:
                out.append(Finding(DAG_MOUNT, f"{d.where}: mounts {src}, which the guard refuses (not in "
                                              "hostprep_proxy_bind_allow): the task will fail",
                                   "add the folder to hostprep_proxy_bind_allow, or mount an allowed one",
                                   f"{d.where}:{src}"))
    return out


# ------------------------------------------------------------------ the audit's view (pure)


def _env(over: dict[str, Any], svc: str) -> dict[str, Any]:
    """A service's environment mapping in hostprep's override ({} when absent or not a mapping)."""
    env = over[svc].get("environment") if isinstance(over.get(svc), dict) else None
    return env if isinstance(env, dict) else {}


def _override_findings(facts: Facts, settings: HostSettings, services: list[str]) -> list[Finding]:
    doc = override_document(facts)
    over = doc.get("services") if isinstance(doc, dict) else None
    over = over if isinstance(over, dict) else {}
    hint = f"`{provision_hint(facts.host, SocketProxy.name)}` writes it again"
    if doc is None:
        why: str | None = "docker-compose.hostprep.yml is gone or no longer hostprep's"
    elif SERVICE not in over or any(_env(over, s).get("DOCKER_HOST") != DOCKER_URL for s in services):
        why = f"hostprep's override no longer defines {SERVICE} or DOCKER_HOST for {', '.join(services)}"
    else:
        why = override_chain_broken(facts)
    out = [Finding(OVERRIDE_MISSING, why + "; the next `compose up` drops the proxy", hint)] if why else []
    text = _env(over, SERVICE).get(CONFIG_VAR)
    if isinstance(text, str):
        problems = config_problems(text, auth=proxy_options(settings)["auth"])
        if problems:
            out.append(Finding(SECTIONS, f"the proxy's config in the override {'; '.join(problems)}",
                               f"`{provision_hint(facts.host, SocketProxy.name)}` writes hostprep's rules again"))
    return out
