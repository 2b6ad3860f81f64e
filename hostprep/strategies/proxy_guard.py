"""The socket-proxy guard as Compose sees it: its settings, its service in hostprep's override, and the
refusals verification asks for from inside the worker (see ``proxy_policy`` and ``proxy_guard_server``).

The guard is two stdlib Python files handed to a container in environment variables and run with
``python3 -I``; the container is the worker's own image by default (python3 is there, nothing is pulled).
It runs as uid 65534 with the socket's group as its primary group (enough to open the socket), with every
capability dropped, no new privileges and a read-only root.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from hostprep.host import compose
from hostprep.errors import SettingsError
from hostprep.host.facts import Facts
from hostprep.host.guard_checks import default_binds
from hostprep.inventory.settings import HostSettings
from hostprep.strategies import proxy_policy as pp

POLICY_VAR, SERVER_VAR, RULES_VAR, TIMEOUT_VAR = ("HOSTPREP_GUARD_POLICY_PY", "HOSTPREP_GUARD_SERVER_PY",
                                                   "HOSTPREP_GUARD_POLICY", "HOSTPREP_GUARD_TIMEOUT")
DIR = "/tmp/hostprep-guard"
LAUNCH = (f'umask 077 && mkdir -p {DIR} && printf "%s\\n" "$${POLICY_VAR}" > {DIR}/proxy_policy.py && '
          f'printf "%s\\n" "$${SERVER_VAR}" > {DIR}/guard.py && exec python3 -I {DIR}/guard.py')
_HERE = Path(__file__).parent
_IMAGE_PATTERN = re.compile(r"[A-Za-z0-9_.*?/:@\[\]-]{1,255}")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def bind_allow(value: Any) -> tuple[str, ...]:
    """``hostprep_proxy_bind_allow``: clean absolute paths, none dangerous, none inside another."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(p, str) for p in items):
        raise SettingsError(f"hostprep_proxy_bind_allow={value!r:.80}: must be a list of absolute paths")
    for p in items:
        if not pp.clean_path(p):
            raise SettingsError(f"hostprep_proxy_bind_allow: {p!r:.80} is not a clean absolute path")
        why = pp.dangerous_path(p)
        if why:
            raise SettingsError(f"hostprep_proxy_bind_allow: {why}: a task container would own the host")
        nested = [q for q in items if q != p and q.startswith(p + "/")]
        if nested:
            raise SettingsError(f"hostprep_proxy_bind_allow: {nested[0]} is inside {p} (a task that binds {p} "
                                f"could plant a symlink at {nested[0]})")
    return tuple(items)


def image_patterns(value: Any) -> tuple[str, ...]:
    """``hostprep_proxy_images``: image patterns (``*`` and ``?`` as in a shell)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(p, str) and _IMAGE_PATTERN.fullmatch(p)
                                                       for p in items):
        raise SettingsError(f"hostprep_proxy_images={value!r:.80}: must be a list of image patterns")
    return tuple(items)


def seconds(timeout: str) -> float:
    """A haproxy time (``90m``, ``3s``) in seconds."""
    m = re.fullmatch(r"([0-9]+)(ms|s|m|h|d)", timeout)
    return float(int(m.group(1)) * _UNITS[m.group(2)]) if m else 3600.0


def policy(settings: HostSettings, own: Mapping[str, Any]) -> pp.Policy:
    """The guard's rules for this host: owner is the project folder (one guard per project)."""
    socks = tuple(dict.fromkeys((settings.socket_path, *pp.SOCKETS)))
    return pp.Policy(owner=settings.project_dir, binds=own.get("proxy_bind_allow") or default_binds(settings),
                     images=own.get("proxy_images", ()), auth=own.get("auth", False), sockets=socks)


def guard_image(facts: Facts | None, settings: HostSettings, own: Mapping[str, Any]) -> str | None:
    """``hostprep_proxy_guard_image``, else the worker's own image (compose file, else the running worker)."""
    if own.get("proxy_guard_image"):
        return str(own["proxy_guard_image"])
    if facts is None:
        return None
    svc = compose.service(facts.compose_data, settings.worker_service) or {}
    image = svc.get("image")
    if isinstance(image, str) and image:
        return compose.interpolate(image, facts.env)
    return facts.worker.image


def guard_service(settings: HostSettings, own: Mapping[str, Any], image: str, gid: int | None) -> dict[str, Any]:
    """The guard's Compose service: the worker's image, python3 -I on hostprep's two files, no privileges."""
    env = {POLICY_VAR: (_HERE / "proxy_policy.py").read_text(), SERVER_VAR: (_HERE / "proxy_guard_server.py").read_text(),
           RULES_VAR: policy(settings, own).to_json(), TIMEOUT_VAR: str(seconds(own["timeout"]))}
    return {
        "image": image,
        "entrypoint": ["/bin/sh", "-c", LAUNCH],
        "user": f"65534:{gid}" if gid is not None else "0:0",   # the socket's group opens it; root only without one
        # Compose interpolates environment values: "$$" is how a "$" of the sources reaches the container
        "environment": {k: v.replace("$", "$$") for k, v in env.items()},
        "volumes": [f"{settings.socket_path}:/var/run/docker.sock:ro"],
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "read_only": True,
        "tmpfs": ["/tmp"],
        "restart": "unless-stopped",
    }


def is_guard(service: Any) -> bool:
    """Whether an override's proxy service is the guard (not today's path-only haproxy)."""
    env = service.get("environment") if isinstance(service, dict) else None
    return isinstance(env, dict) and isinstance(env.get(SERVER_VAR), str)
