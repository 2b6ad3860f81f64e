"""The socket-proxy guard's judgement: one Docker API request in, what to forward or why it is refused.

Pure and standard-library only (Python 3.8+): the guard container runs this very file (see
``proxy_guard_server.py``). The daemon is Go: its JSON decoder matches field names case-insensitively
(``privileged``, ``PRIVILEGED``, ``ſysctls`` all land in the same field, the last one wins), reads
HostConfig fields at the top level of a create body too, and reads form bodies into the query. So a
body is decoded strictly (UTF-8, no duplicate or case-variant keys, no NaN), judged on case-folded
keys at both levels, and only the re-serialised result is forwarded.

>>> p = Policy(owner="airflow", binds=("/opt/airflow/data",))
>>> judge(Request("POST", "/v1.41/containers/create", (), b'{"Image": "x", "HostConfig": {"\\\\u0050rivileged": true}}'), p, no_lookup).reason
'Privileged is not allowed'
>>> judge(Request("GET", "/_ping", ()), p, no_lookup).status
200
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple
from urllib.parse import quote, unquote_plus, urlencode

LABEL = "hostprep.proxy"            # every container created through the guard carries LABEL=<owner>
MAX_BODY = 1 << 20                  # a create body is a few KiB; more is refused unread
MAX_HEAD = 64 << 10
# Never bound into a task container, nor anything under or above them ("/" and "/var" hold them).
DANGEROUS = ("/etc", "/var/lib/docker", "/var/lib/containerd", "/proc", "/sys", "/dev", "/run", "/var/run",
             "/boot", "/root", "/usr", "/bin", "/sbin", "/lib", "/lib64")
SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")

Headers = Tuple[Tuple[str, str], ...]                         # (lower-case name, value)
Lookup = Callable[[str], Optional[Tuple[str, Mapping[str, str]]]]   # ref -> (full id, labels) or None


@dataclass(frozen=True)
class Policy:
    """What one guard allows: its owner label value, the host folders a task may bind, image patterns."""

    owner: str
    binds: Tuple[str, ...] = ()
    images: Tuple[str, ...] = ()      # fnmatch patterns; empty: any image
    auth: bool = False                # /auth open (DAGs with docker_conn_id)
    sockets: Tuple[str, ...] = SOCKETS

    def to_json(self) -> str:
        return json.dumps({"owner": self.owner, "binds": list(self.binds), "images": list(self.images),
                           "auth": self.auth, "sockets": list(self.sockets)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Policy":
        d = json.loads(text)
        return cls(str(d["owner"]), tuple(d["binds"]), tuple(d["images"]), bool(d["auth"]), tuple(d["sockets"]))


@dataclass(frozen=True)
class Request:
    method: str
    target: str                       # path and query as the client sent them
    headers: Headers
    body: bytes = b""


@dataclass(frozen=True)
class Verdict:
    """200: forward ``method target`` (re-serialised) with ``body``; otherwise answer ``status`` with ``reason``."""

    status: int
    reason: str = ""
    method: str = ""
    target: str = ""
    body: bytes = b""
    headers: Headers = ()             # the only client headers forwarded (Content-Type, X-Registry-Auth, Upgrade)
    upgrade: bool = False             # attach: the connection is hijacked after 101
    long: bool = False                # wait, attach, logs: no timeout (a task may run for hours)

    @property
    def allowed(self) -> bool:
        return self.status == 200


class Refused(Exception):
    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


def no_lookup(ref: str) -> None:
    """A lookup that finds nothing (for judging requests that name no container)."""
    return None


# ------------------------------------------------------------------ framing and headers

def header(headers: Headers, name: str) -> Optional[str]:
    """The one value of ``name``; sent twice is refused (which one would the daemon read?)."""
    found = [v for k, v in headers if k == name]
    if len(found) > 1:
        raise Refused(f"{name.title()} sent twice")
    return found[0] if found else None


def framing(headers: Headers) -> int:
    """The body's length, or -1 for chunked; refuses both at once, other encodings, and oversize bodies."""
    te, cl = header(headers, "transfer-encoding"), header(headers, "content-length")
    if header(headers, "content-encoding") not in (None, "identity"):
        raise Refused("Content-Encoding is not allowed (send the body as plain JSON)")
    if te is not None and cl is not None:
        raise Refused("Transfer-Encoding and Content-Length together are ambiguous")
    if te is not None:
        if te.strip().lower() != "chunked":
            raise Refused(f"Transfer-Encoding {te[:40]!r} is not allowed")
        return -1
    if cl is None:
        return 0
    if not re.fullmatch(r"[0-9]{1,10}", cl.strip()):
        raise Refused("Content-Length is not a number")
    if int(cl) > MAX_BODY:
        raise Refused(f"the body is larger than {MAX_BODY} bytes", 413)
    return int(cl)


# ------------------------------------------------------------------ JSON, as strictly as Go would need

class _Ambiguous(ValueError):
    pass


def _pairs(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    seen: Dict[str, str] = {}
    for k, _ in pairs:
        f = k.casefold()
        if f in seen:
            raise _Ambiguous(f"duplicate key {k[:40]}" if seen[f] == k else
                             f"keys {seen[f][:40]} and {k[:40]} are one field to Docker")
        seen[f] = k
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(body: bytes) -> Any:
    """The body as JSON, or Refused: UTF-8 only, no duplicate or case-variant keys, no NaN, no trailing data."""
    try:
        text = body.decode("utf-8")
        return json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constant)
    except _Ambiguous as exc:
        raise Refused(f"ambiguous body: {exc}")
    except (ValueError, RecursionError):
        raise Refused("the body is not JSON")


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode()


# ------------------------------------------------------------------ paths a task may bind

def dangerous_path(path: str, sockets: Tuple[str, ...] = SOCKETS) -> Optional[str]:
    """Why ``path`` (clean, absolute) must never be bound: the socket, a system folder, under or above one."""
    for d in (*DANGEROUS, *sockets):
        if path == d or path.startswith(d + "/") or d.startswith(path.rstrip("/") + "/"):
            return f"{path} is never allowed" + ("" if path == d else f" (it is under {d})" if
                                                  path.startswith(d + "/") else f" (it holds {d})")
    return None


def clean_path(path: str) -> bool:
    """Absolute, normalised, printable: no ``..``, ``.``, ``//``, trailing slash or control characters."""
    return (path.startswith("/") and "//" not in path and posixpath.normpath(path) == path
            and path.isprintable() and ":" not in path and "," not in path)


def _bind_source(src: Any, where: str, policy: Policy) -> None:
    if not isinstance(src, str) or not clean_path(src):
        raise Refused(f"{where}: {str(src)[:80]!r} is not a clean absolute path")
    why = dangerous_path(src, policy.sockets)
    if why:
        raise Refused(f"{where}: {why}")
    if src not in policy.binds:
        raise Refused(f"{where}: {src} is not in hostprep_proxy_bind_allow")


# ------------------------------------------------------------------ what a container may ask for

_NAMES = {n.casefold(): n for n in (
    "Privileged", "CapAdd", "Devices", "DeviceRequests", "DeviceCgroupRules", "Sysctls", "VolumesFrom", "Links",
    "MaskedPaths", "ReadonlyPaths", "CgroupParent", "Cgroup", "Runtime", "PidMode", "IpcMode", "UTSMode",
    "UsernsMode", "CgroupnsMode", "NetworkMode", "SecurityOpt", "Binds", "Mounts", "VolumeDriver", "HostConfig")}
_MODES = {"PidMode": ("",), "UTSMode": ("",), "UsernsMode": ("",), "IpcMode": ("", "private", "shareable", "none"),
          "CgroupnsMode": ("", "private"), "Runtime": ("", "runc"), "VolumeDriver": ("", "local"),
          "CgroupParent": ("",), "Cgroup": ("",)}
_ANY_VALUE = ("CapAdd", "Devices", "DeviceRequests", "DeviceCgroupRules", "Sysctls", "VolumesFrom", "Links")
_NNP = re.compile(r"no-new-privileges(?:[:=]true)?")
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def _mode(name: str, value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else "?"


def _judge_fields(obj: Mapping[str, Any], policy: Policy, lookup: Lookup) -> None:
    """Refuse any field of ``obj`` (a create body's top level, its HostConfig, an update body) that gives
    a container more than an ordinary one: keys compared case-folded, as Go's decoder compares them."""
    for key, value in obj.items():
        name = _NAMES.get(key.casefold())
        if name is None:
            continue
        if name == "Privileged":
            if value is not None and value is not False:
                raise Refused("Privileged is not allowed")
        elif name in _ANY_VALUE:
            if value is None or value in ("", [], {}):
                continue
            shown = ", ".join(str(v)[:30] for v in value) if isinstance(value, list) else str(value)[:60]
            raise Refused(f"{name} is not allowed ({shown})")
        elif name in ("MaskedPaths", "ReadonlyPaths"):
            if value is not None:
                raise Refused(f"{name} is not allowed (it unmasks /proc and /sys paths)")
        elif name in _MODES:
            if _mode(name, value) not in _MODES[name]:
                raise Refused(f"{name} {str(value)[:60]} is not allowed")
        elif name == "NetworkMode":
            _network_mode(value, policy, lookup)
        elif name == "SecurityOpt":
            _security_opt(value)
        elif name == "Binds":
            _binds(value, policy)
        elif name == "Mounts":
            _mounts(value, policy)
        elif name == "HostConfig":
            if value is None:
                continue
            if not isinstance(value, dict):
                raise Refused("HostConfig must be an object")
            _judge_fields(value, policy, lookup)


def _network_mode(value: Any, policy: Policy, lookup: Lookup) -> None:
    if value is None:
        return
    if not isinstance(value, str) or value.casefold() == "host":
        raise Refused(f"NetworkMode {str(value)[:60]} is not allowed")
    if value.casefold().startswith("container:"):
        ref = value.split(":", 1)[1]
        if not _owned(ref, policy, lookup):
            raise Refused(f"NetworkMode {value[:60]} is not allowed (not a container of this proxy)")


def _security_opt(value: Any) -> None:
    for opt in _items(value, "SecurityOpt"):
        if not isinstance(opt, str) or not _NNP.fullmatch(opt):
            raise Refused(f"SecurityOpt {str(opt)[:60]} is not allowed")


def _items(value: Any, name: str) -> List[Any]:
    """A list field's items (null: none); any other type is refused."""
    if value is not None and not isinstance(value, list):
        raise Refused(f"{name} must be a list")
    return value or []


def _binds(value: Any, policy: Policy) -> None:
    for b in _items(value, "Binds"):
        if not isinstance(b, str) or b.count(":") not in (1, 2):
            raise Refused(f"Binds: {str(b)[:80]!r} is not source:target[:options]")
        src, _, rest = b.partition(":")
        if not src.startswith("/"):
            raise Refused(f"Binds: the named volume {src[:60]!r} is not allowed")
        _bind_source(src, "Binds", policy)
        opts = rest.partition(":")[2].split(",")
        if any(o in ("shared", "rshared") for o in opts):
            raise Refused(f"Binds: propagation {rest.partition(':')[2][:30]} is not allowed")


def _get(obj: Mapping[str, Any], name: str) -> Any:
    """A field by its Go name (keys are unique once case-folded: ``strict_json`` saw to it)."""
    for k, v in obj.items():
        if k.casefold() == name.casefold():
            return v
    return None


def _mounts(value: Any, policy: Policy) -> None:
    for m in _items(value, "Mounts"):
        if not isinstance(m, dict):
            raise Refused("Mounts: each mount must be an object")
        kind, src = _get(m, "Type"), _get(m, "Source")
        if kind == "bind":
            _bind_source(src, "Mounts", policy)
            opts = _get(m, "BindOptions")
            prop = _get(opts, "Propagation") if isinstance(opts, dict) else None
            if opts not in (None, {}) and not isinstance(opts, dict) or prop in ("shared", "rshared"):
                raise Refused(f"Mounts: BindOptions {str(opts)[:60]} are not allowed")
        elif kind in ("volume", "tmpfs"):
            if src not in (None, ""):
                raise Refused(f"Mounts: the named volume {str(src)[:60]!r} is not allowed")
            opts = _get(m, "VolumeOptions")
            driver = _get(opts, "DriverConfig") if isinstance(opts, dict) else None
            if opts not in (None, {}) and not isinstance(opts, dict) or driver not in (None, {}):
                raise Refused("Mounts: volume driver options are not allowed (a local volume can bind any host path)")
        else:
            raise Refused(f"Mounts: Type {str(kind)[:30]} is not allowed")


def _owned(ref: str, policy: Policy, lookup: Lookup) -> Optional[str]:
    """The full id of container ``ref`` if this guard created it."""
    if not _REF.fullmatch(ref):
        return None
    found = lookup(ref)
    if found is None or found[1].get(LABEL) != policy.owner or not re.fullmatch(r"[0-9a-f]{64}", found[0]):
        return None
    return found[0]


def _image_allowed(image: Any, policy: Policy) -> None:
    if not isinstance(image, str) or not image:
        raise Refused("Image must be a name")
    if policy.images and not any(fnmatch.fnmatchcase(image, p) for p in policy.images):
        raise Refused(f"Image {image[:80]} is not in hostprep_proxy_images")


def judge_create(body: bytes, policy: Policy, lookup: Lookup) -> bytes:
    """A create body, judged and labelled with this guard's owner; what to forward."""
    obj = strict_json(body)
    if not isinstance(obj, dict):
        raise Refused("the body must be a JSON object")
    _judge_fields(obj, policy, lookup)      # Docker reads HostConfig fields at the top level too
    _image_allowed(_get(obj, "Image"), policy)
    net = _get(obj, "NetworkingConfig")
    ends = _get(net, "EndpointsConfig") if isinstance(net, dict) else None
    if net is not None and not isinstance(net, dict) or ends is not None and not isinstance(ends, dict):
        raise Refused("NetworkingConfig must be an object of networks")
    for name in ends or {}:
        _network_mode(name, policy, lookup)
    label_key = next((k for k in obj if k.casefold() == "labels"), "Labels")
    labels = obj.get(label_key)
    if labels is not None and not isinstance(labels, dict):
        raise Refused("Labels must be an object")
    obj[label_key] = {**(labels or {}), LABEL: policy.owner}
    return _dump(obj)


def judge_update(body: bytes, policy: Policy, lookup: Lookup) -> bytes:
    obj = strict_json(body)
    if not isinstance(obj, dict):
        raise Refused("the body must be a JSON object")
    _judge_fields(obj, policy, lookup)
    return _dump(obj)


# ------------------------------------------------------------------ routes

_VERSION = r"(?P<v>/v[0-9]{1,2}\.[0-9]{1,3})?"
_PATH_OK = re.compile(r"/[A-Za-z0-9_.:@/+-]*")
_QKEY = re.compile(r"[A-Za-z_]{1,40}")
_CONTAINER_ACTIONS = {
    "GET": ("json", "logs", "top", "stats", "changes", "archive"), "HEAD": ("archive",),
    "POST": ("start", "stop", "kill", "restart", "wait", "attach", "resize", "update"), "DELETE": ("",)}
_LONG = ("wait", "attach", "logs")


def split_target(target: str) -> Tuple[str, List[Tuple[str, str]]]:
    """(decoded path, query pairs); anything ambiguous (``..``, ``//``, repeated keys, odd bytes) refused."""
    raw_path, _, raw_query = target.partition("?")
    path = unquote_plus(raw_path.replace("+", "%2B"))
    if (not _PATH_OK.fullmatch(path) or "//" in path or "/./" in path or "/../" in path or path.endswith("/..")
            or "%" in path or "#" in target):
        raise Refused(f"the path {target[:80]!r} is not plain")
    query: List[Tuple[str, str]] = []
    for part in raw_query.split("&") if raw_query else []:
        k, _, v = part.partition("=")
        k, v = unquote_plus(k), unquote_plus(v)
        if not _QKEY.fullmatch(k) or k in dict(query) or not v.isprintable():
            raise Refused(f"the query parameter {k[:40]!r} is not plain or comes twice")
        query.append((k, v))
    return path, query


def _target(path: str, query: List[Tuple[str, str]]) -> str:
    q = urlencode(query)
    return quote(path, safe="/:@+") + ("?" + q if q else "")


def _content_type(req: Request, wants_json: bool) -> Headers:
    ct = (header(req.headers, "content-type") or "").strip().lower()
    if ct.startswith(("application/x-www-form-urlencoded", "multipart/")):
        raise Refused("form-encoded bodies are not allowed")
    if not req.body:
        return ()
    if not wants_json:
        raise Refused(f"{req.method} {split_target(req.target)[0][:60]} takes no body")
    if ct and ct.split(";")[0].strip() != "application/json":
        raise Refused(f"Content-Type {ct[:40]} is not allowed (JSON only)")
    return (("content-type", "application/json"),)


def _list_filters(query: List[Tuple[str, str]], policy: Policy) -> List[Tuple[str, str]]:
    """GET /containers/json lists only this guard's containers: its label is added to the filters."""
    q = dict(query)
    filters = strict_json(q["filters"].encode()) if q.get("filters") else {}
    if not isinstance(filters, dict):
        raise Refused("filters must be a JSON object")
    labels = filters.get("label", [])
    if isinstance(labels, dict):
        labels = [k for k, v in labels.items() if v]
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise Refused("filters.label must be a list of text")
    filters["label"] = [*labels, f"{LABEL}={policy.owner}"]
    q["filters"] = json.dumps(filters, separators=(",", ":"))
    return list(q.items())


def judge(req: Request, policy: Policy, lookup: Lookup) -> Verdict:
    """Allow (and what to forward) or refuse one request; never raises for any input."""
    try:
        return _judge(req, policy, lookup)
    except Refused as exc:
        return Verdict(exc.status, exc.reason)
    except Exception as exc:   # a bug must refuse, never forward
        return Verdict(403, f"refused: {type(exc).__name__}")


def _judge(req: Request, policy: Policy, lookup: Lookup) -> Verdict:
    m = req.method
    if m not in ("GET", "HEAD", "POST", "DELETE"):
        raise Refused(f"method {m[:10]} is not allowed")
    framing(req.headers)
    path, query = split_target(req.target)
    ver = re.match(_VERSION, path)
    v = (ver.group("v") or "") if ver else ""
    rest = path[len(v):]
    keys = {k for k, _ in query}

    def forward(p: str, q: List[Tuple[str, str]] = query, body: bytes = b"", wants_json: bool = False,
                **kw: Any) -> Verdict:
        hs = _content_type(req, wants_json)
        return Verdict(200, "", m, _target(v + p, q), body, hs if body else (), **kw)

    if (m in ("GET", "HEAD") and rest == "/_ping") or (m == "GET" and rest == "/version"):
        return forward(rest)
    if rest == "/auth" and m == "POST" and policy.auth:
        auth = strict_json(req.body)
        if not isinstance(auth, dict):
            raise Refused("the body must be a JSON object")
        return forward(rest, body=_dump(auth), wants_json=True)
    if rest == "/images/json" and m == "GET":
        return forward(rest)
    if rest == "/images/create" and m == "POST":
        if keys - {"fromImage", "tag", "platform"} or "fromImage" not in keys:
            raise Refused("POST /images/create: only pulls (fromImage, tag, platform) are allowed")
        q = dict(query)
        tag = q.get("tag", "")
        _image_allowed(q["fromImage"] + (("@" if ":" in tag else ":") + tag if tag else ""), policy)
        auth = header(req.headers, "x-registry-auth")
        hs = (("x-registry-auth", auth),) if auth and re.fullmatch(r"[A-Za-z0-9_=+/-]{1,8192}", auth) else ()
        _content_type(req, False)
        return Verdict(200, "", m, _target(v + rest, query), b"", hs, long=True)
    img = re.fullmatch(r"/images/([A-Za-z0-9][A-Za-z0-9_.:/@-]{0,254})/json", rest)
    if img and m == "GET" and ".." not in img.group(1):
        return forward(rest)
    if rest == "/containers/json" and m == "GET":
        return forward(rest, _list_filters(query, policy))
    if rest == "/containers/create" and m == "POST":
        if keys - {"name", "platform"}:
            raise Refused("POST /containers/create: only name and platform are allowed in the query")
        return forward(rest, body=judge_create(req.body, policy, lookup), wants_json=True)
    c = re.fullmatch(r"/containers/([^/]+)(?:/([a-z]+))?", rest)
    if c:
        return _judge_container(req, v, c.group(1), c.group(2) or "", query, policy, lookup)
    raise Refused(f"{m} {rest[:60]} is not opened by hostprep's proxy")


def _judge_container(req: Request, v: str, ref: str, action: str, query: List[Tuple[str, str]], policy: Policy,
                     lookup: Lookup) -> Verdict:
    """A call on one container: only the actions a task needs, only on containers this guard created."""
    m = req.method
    if action not in _CONTAINER_ACTIONS.get(m, ()):
        raise Refused(f"{m} /containers/{{id}}{'/' + action if action else ''} is not opened by hostprep's proxy")
    if m == "DELETE" and dict(query).get("link", "").lower() not in ("", "0", "false"):   # docker-py: link=False
        raise Refused("removing links is not allowed")
    if not _REF.fullmatch(ref):
        raise Refused(f"container {ref[:60]!r} is not a plain name or id")
    found = lookup(ref)
    if found is None:
        raise Refused(f"No such container: {ref}", 404)
    full = _owned(ref, policy, lambda _: found)
    if full is None:
        raise Refused(f"container {ref} was not created through hostprep's proxy")
    p = f"/containers/{full}" + (f"/{action}" if action else "")
    if action == "update":
        return Verdict(200, "", m, _target(v + p, query), judge_update(req.body, policy, lookup),
                       _content_type(req, True) if req.body else ())
    up = action == "attach" and (header(req.headers, "upgrade") or "").lower() == "tcp"
    _content_type(req, False)
    return Verdict(200, "", m, _target(v + p, query), b"", (), upgrade=up, long=action in _LONG)
