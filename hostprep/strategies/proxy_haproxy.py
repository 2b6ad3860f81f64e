"""Today's path-only proxy (``hostprep_proxy_guard: false``): the haproxy rules hostprep hands the image, and the check
that a loaded config opens only what DockerOperator needs. Pure.
"""

from __future__ import annotations

import re


PORT = 2375   # the proxy's port on its internal network (the guard's too)
CONFIG_VAR = "HOSTPREP_PROXY_CONFIG"
CONFIG_PATH = "/tmp/hostprep-haproxy.cfg"
# The image's own entrypoint is bypassed: write hostprep's config, then run haproxy (master-worker, foreground).
LAUNCH = f'printf "%s\\n" "$${CONFIG_VAR}" > {CONFIG_PATH} && exec haproxy -W -db -f {CONFIG_PATH}'
NEEDED = {"_ping", "version", "containers", "images", "auth"}
_ALLOWED = re.compile(r"http-request allow if \{[^}]*/\(([a-z_|]+)\)")


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


def config_problems(text: str, *, auth: bool) -> list[str]:
    """What a proxy config opens beyond DockerOperator's needs (sections, methods, exec).

    >>> config_problems(haproxy_config(auth=False, timeout="1h").replace("|images", "|images|volumes"), auth=False)
    ['opens volumes']
    """
    opened = {s for m in _ALLOWED.finditer(text) for s in m.group(1).split("|")}
    extra = opened - (NEEDED if auth else NEEDED - {"auth"})
    out = [f"opens {', '.join(sorted(extra))}"] if extra else []
    if "/(exec|export)" not in text:
        out.append("no longer refuses exec")
    if "METH_GET || METH_HEAD || METH_POST || METH_DELETE" not in text:
        out.append("allows other methods")
    return out
