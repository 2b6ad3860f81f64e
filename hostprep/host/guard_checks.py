"""The refusals verification asks socket-proxy's guard for, from inside the worker (probe.sh's
``guard_checks``), and the pure reading of its answers. A bottom module: the probe's inputs need it.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from hostprep.hostdata import lines
from hostprep.inventory.settings import HostSettings


def default_binds(settings: HostSettings) -> tuple[str, ...]:
    """The data folder the project's DAGs mount (``<project>/data``), unless the inventory says otherwise."""
    return (settings.project_dir.rstrip("/") + "/data",)


def guarded(settings: HostSettings) -> bool:
    """Whether socket-proxy runs the guard here (``hostprep_proxy_guard``, default true)."""
    return dict(settings.options).get("proxy_guard", True) is not False


NONE = "hostprep-guard-check/none:0"   # an image no host has: a refused create never gets as far as the image
CHECKS: tuple[tuple[str, str, str, Any], ...] = (   # (name, method, path, body); @WORKER@ @IMAGE@ @DATA@ filled in
    ("privileged", "POST", "/containers/create", {"Image": NONE, "HostConfig": {"Privileged": True}}),
    ("a bind of /", "POST", "/containers/create", {"Image": NONE, "HostConfig": {"Binds": ["/:/host"]}}),
    ("a bind of the socket", "POST", "/containers/create",
     {"Image": NONE, "HostConfig": {"Binds": ["/var/run/docker.sock:/var/run/docker.sock"]}}),
    ("PidMode host", "POST", "/containers/create", {"Image": NONE, "HostConfig": {"PidMode": "host"}}),
    ("CapAdd SYS_ADMIN", "POST", "/containers/create", {"Image": NONE, "HostConfig": {"CapAdd": ["SYS_ADMIN"]}}),
    ("VolumesFrom the worker", "POST", "/containers/create", {"Image": NONE, "HostConfig": {"VolumesFrom": ["@WORKER@"]}}),
    ("a device", "POST", "/containers/create", {"Image": NONE, "HostConfig": {"Devices": [
        {"PathOnHost": "/dev/mem", "PathInContainer": "/dev/mem", "CgroupPermissions": "rwm"}]}}),
    ("a case-variant privileged", "POST", "/containers/create", {"Image": NONE, "HostConfig": {"privileged": True}}),
    ("a duplicate key", "POST", "/containers/create",
     '{"Image":"' + NONE + '","HostConfig":{"Privileged":false,"Privileged":true}}'),
    ("stopping a container it did not create", "POST", "/containers/@WORKER@/stop?t=600", None),
)
ALLOWED = ("an allowed bind of the data folder with auto_remove and a network", "POST",
           "/containers/create?name=hostprep-guard-check-@NONCE@",
           {"Image": "@IMAGE@", "Cmd": ["true"], "HostConfig": {"Binds": ["@DATA@:/data"], "AutoRemove": True,
                                                              "NetworkMode": "bridge"}})


def checks_input(settings: HostSettings) -> str:
    """The probe's GUARD_CHECKS: one request a line, ``name<TAB>METHOD<TAB>PATH<TAB>base64(body)``."""
    binds = dict(settings.options).get("proxy_bind_allow") or default_binds(settings)
    data = binds[0] if binds else ""
    out = []
    for name, method, path, body in (*CHECKS, *((ALLOWED,) if data else ())):
        text = body if isinstance(body, str) or body is None else json.dumps(body)
        text = (text or "").replace("@DATA@", data)
        out.append("\t".join((name, method, path, base64.b64encode(text.encode()).decode())))
    return "".join(line + "\n" for line in out)


def parse_checks(section: str | None) -> dict[str, tuple[str, str]]:
    """The probe's ``worker_guard`` section (its nonce, then base64 of ``nonce<TAB>name<TAB>status<TAB>message``
    lines) -> {name: (status, message)}; lines not fenced by the nonce are ignored (pure)."""
    head = lines((section or "").strip())
    if len(head) < 2 or not re.fullmatch(r"[0-9a-f]{24}", head[0]):
        return {}
    try:
        text = base64.b64decode(head[1], validate=True).decode("utf-8", "replace")
    except ValueError:
        return {}
    out: dict[str, tuple[str, str]] = {}
    for line in lines(text):
        parts = line.split("\t")
        if len(parts) == 4 and parts[0] == head[0] and re.fullmatch(r"[0-9]{3}|none", parts[2]):
            msg = re.sub(r"^[0-9]{3} [A-Za-z ]+: ", "", parts[3])
            out[parts[1][:80]] = (parts[2], msg[:200])
    return out


def message(raw: str) -> str:
    """The ``message`` of a Docker-style JSON error body, else the text itself (one line)."""
    try:
        found = json.loads(raw).get("message")
    except (ValueError, AttributeError):
        found = None
    return (str(found) if found else raw).replace("\n", " ")[:160]
