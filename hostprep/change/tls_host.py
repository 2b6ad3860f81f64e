"""remote-tls on one host: read the files it manages, hold the host lock, put files (and restart dockerd
once), and the in-worker checks. I/O through the transport with ``tls_host.sh``; the parsers are pure.

What a host prints is data: sections are split at "\\n" only, paths must be the ones asked about,
modes, owners and contents must have their shapes, or the answer is refused whole.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from hostprep.host.probe import host_script
from hostprep.hostdata import lines
from hostprep.layout import STATE_DIR
from hostprep.ssh.transport import CommandResult, Transport

HOLD_SECONDS = 1800   # a hold outlives a dead controller by at most this long (then the lock is stale)


class TlsHostError(ValueError):
    """A host's answer that is not what tls_host.sh prints, or a step that failed (the message says which)."""


@dataclass(frozen=True)
class FileState:
    """One managed path as the host has it: kind (file | dir | missing), mode, owners, content."""

    path: str
    kind: str
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    content: bytes | None = None


@dataclass(frozen=True)
class TlsFacts:
    """The managed paths, docker.service as systemd has it, and whether the TLS port is taken."""

    host: str
    files: dict[str, FileState] = field(default_factory=dict)
    systemd: bool = False
    active: str | None = None
    exec_start: str | None = None               # the unit file's own ExecStart (drop-ins left out)
    execstart_dropins: tuple[str, ...] = ()     # drop-ins that replace ExecStart
    port_busy: bool = False

    def __repr__(self) -> str:
        return f"<TlsFacts {self.host} files={len(self.files)} port_busy={self.port_busy}>"


_FILE = re.compile(r"file (/[^ ]{1,200}) ([0-7]{3,4}) ([0-9]{1,10}) ([0-9]{1,10}) ([A-Za-z0-9+/=]{0,200000})")
_DIR = re.compile(r"dir (/[^ ]{1,200}) ([0-7]{3,4}) ([0-9]{1,10}) ([0-9]{1,10})")
_OTHER = re.compile(r"(missing|unsafe) (/[^ ]{1,200})(?: [a-z]{1,20})?")
_UNIT_PATH = re.compile(r"/[A-Za-z0-9_./@-]{1,200}")


def _sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines(text):
        if line.startswith("@@hostprep:"):
            current = out.setdefault(line[len("@@hostprep:"):], [])
        elif current is not None and line:
            current.append(line)
    return out


def parse_facts(host: str, text: str, paths: Sequence[str]) -> TlsFacts:
    """tls_host.sh's ``facts`` answer; anything but its own lines about the paths asked is refused."""
    sec = _sections(text)
    if "end" not in sec:
        raise TlsHostError(f"{host}: the remote-tls probe was cut short")
    files: dict[str, FileState] = {}
    for line in sec.get("files", []):
        f = _file_line(line)
        if f is None or f.path not in paths or f.path in files:
            raise TlsHostError(f"{host}: malformed remote-tls file line {line[:80]!r}")
        files[f.path] = f
    if set(files) != set(paths):
        raise TlsHostError(f"{host}: the remote-tls probe did not report {sorted(set(paths) - set(files))}")
    unit = dict(_unit_line(host, ln) for ln in sec.get("unit", []) if not ln.startswith("execstart-dropin "))
    dropins = tuple(ln.split(" ", 1)[1] for ln in sec.get("unit", []) if ln.startswith("execstart-dropin "))
    if not all(_UNIT_PATH.fullmatch(d) for d in dropins):
        raise TlsHostError(f"{host}: malformed drop-in path in the remote-tls probe")
    exec_start = None
    if unit.get("execstart"):
        try:
            exec_start = base64.b64decode(unit["execstart"], validate=True).decode().split("\n")[0].strip()
        except (binascii.Error, UnicodeDecodeError):
            raise TlsHostError(f"{host}: docker.service's ExecStart is not text") from None
    return TlsFacts(host, files, systemd="active" in unit, active=unit.get("active") or None, exec_start=exec_start,
                    execstart_dropins=dropins, port_busy=sec.get("port", []) == ["busy"])


def _file_line(line: str) -> FileState | None:
    m = _FILE.fullmatch(line)
    if m:
        try:
            content = base64.b64decode(m.group(5), validate=True)
        except binascii.Error:
            return None
        return FileState(m.group(1), "file", int(m.group(2), 8), int(m.group(3)), int(m.group(4)), content)
    m = _DIR.fullmatch(line)
    if m:
        return FileState(m.group(1), "dir", int(m.group(2), 8), int(m.group(3)), int(m.group(4)))
    m = _OTHER.fullmatch(line)
    return FileState(m.group(2), m.group(1)) if m else None


def _unit_line(host: str, line: str) -> tuple[str, str]:
    key, _, value = line.partition(" ")
    if key not in ("active", "fragment", "execstart") or not re.fullmatch(r"[A-Za-z0-9+/=_./@-]{0,4000}", value):
        raise TlsHostError(f"{host}: malformed docker.service line {line[:80]!r}")
    return key, value


# ------------------------------------------------------------------ I/O


def _run(t: Transport, env: Mapping[str, str], timeout: float = 120) -> CommandResult:
    return t.run_script(host_script("tls_host.sh", package=__package__), {"STATE_DIR": STATE_DIR, **env}, sudo=True, timeout=timeout)


def gather(t: Transport, paths: Sequence[str], port: int | None = None, *, stat_only: bool = False) -> TlsFacts:
    """The managed paths (``stat_only``: without their contents) and docker.service on one host, in one exec."""
    res = _run(t, {"MODE": "facts", "PATHS": "\n".join(paths), "PORT": str(port or ""), "LOCK_OWNER": "",
                   "STAT_ONLY": "1" if stat_only else "0"})
    return parse_facts(t.endpoint.name, res.stdout, paths)


def _marker(text: str, name: str) -> str | None:
    m = re.search(rf"^@@hostprep:{name} (.*)$", text, re.M)
    return m.group(1).strip()[:400] if m else None


def hold(t: Transport, owner: str, snap_id: str, lock_wait: int = 10) -> None:
    """Take the host lock for this run (held until :func:`release`, at most HOLD_SECONDS)."""
    res = _run(t, {"MODE": "hold", "LOCK_OWNER": owner, "LOCK_WAIT": str(lock_wait), "SNAP_ID": snap_id,
                   "HOLD_SECONDS": str(HOLD_SECONDS)})
    if res.exit_code != 0 or "@@hostprep:held" not in res.stdout:
        why = _marker(res.stdout, "locked") or _marker(res.stdout, "stale") or res.stderr.strip()[-200:]
        raise TlsHostError(f"{t.endpoint.name}: cannot take the host lock ({why}); nothing was changed")


def release(t: Transport, owner: str) -> None:
    _run(t, {"MODE": "release", "LOCK_OWNER": owner}, timeout=60)


@dataclass(frozen=True)
class Put:
    """Actions for ``put``: ``(op, path, mode)`` with contents for writes, and whether dockerd restarts."""

    actions: tuple[tuple[str, str, str], ...]
    contents: tuple[bytes, ...] = ()
    restart: bool = False
    wait_port: int | None = None


def put(t: Transport, owner: str, change: Put) -> None:
    """Apply ``change`` under this run's lock; ``TlsHostError`` naming the failed step otherwise."""
    env = {"MODE": "put", "LOCK_OWNER": owner, "ACTIONS": "\n".join(" ".join(a).strip() for a in change.actions),
           "RESTART": "1" if change.restart else "0", "WAIT_PORT": str(change.wait_port or "")}
    for i, data in enumerate(change.contents):
        env[f"W{i}"], env[f"WS{i}"] = base64.b64encode(data).decode(), str(len(data))
    res = _run(t, env, timeout=300)
    if res.exit_code != 0 or not re.search(r"^@@hostprep:done$", res.stdout, re.M):
        why = (_marker(res.stdout, "cause") or _marker(res.stdout, "refused") or _marker(res.stdout, "locked")
               or _marker(res.stdout, "failed") or res.stderr.strip()[-200:] or f"exit {res.exit_code}")
        raise TlsHostError(f"{t.endpoint.name}: {why}")


CHECKS = ("tls", "nocert", "otherca", "plain", "sock")
# The same checks without a docker CLI: GET /containers/json (what `docker ps` asks); exit 0 when answered 200.
PY_CHECK = r"""import socket, ssl, sys
u, c, other, kind = sys.argv[1:5]
host, port = u[6:].rsplit(":", 1)
def tls(cert=None):
    ctx = ssl.create_default_context(cafile=c + "/ca.pem")
    if cert:
        ctx.load_cert_chain(*cert)
    return ctx
try:
    ctx = {"tls": lambda: tls((c + "/cert.pem", c + "/key.pem")), "nocert": tls,
           "otherca": lambda: tls((other, other)), "plain": lambda: None}[kind]()
    s = socket.create_connection((host, int(port)), 10)
    s = ctx.wrap_socket(s, server_hostname=host) if ctx else s
    s.sendall(b"GET /containers/json HTTP/1.0\r\nHost: docker\r\n\r\n")
    sys.exit(0 if s.recv(64).split(b"\r\n")[0].split(b" ")[1:2] == [b"200"] else 1)
except Exception:
    sys.exit(1)
"""


def worker_checks(t: Transport, cid: str, url: str, cert_dir: str, other_pem: str) -> dict[str, str]:
    """Inside the worker container ``cid``: each of :data:`CHECKS` with what it gave (an exit code, or
    ``socket``/``none``). The answers are fenced by a nonce the worker never sees on a command line."""
    nonce = secrets.token_hex(8)
    res = _run(t, {"MODE": "check", "CID": cid, "URL": url, "CERTS": cert_dir, "NONCE": nonce, "LOCK_OWNER": "", "PY": PY_CHECK,
                   "OTHER_B64": base64.b64encode(other_pem.encode()).decode()}, timeout=120)
    return parse_checks(res.stdout, nonce)


def parse_checks(text: str, nonce: str) -> dict[str, str]:
    """``@@<nonce> <check> <value>`` lines (only the first answer to each check counts).

    >>> parse_checks("@@ab tls 0\\n@@zz tls 1\\n@@ab sock none\\n@@ab tls 1\\n", "ab")
    {'tls': '0', 'sock': 'none'}
    """
    out: dict[str, str] = {}
    for line in lines(text):
        parts = line.split(" ")
        if len(parts) == 3 and parts[0] == f"@@{nonce}" and parts[1] in CHECKS and re.fullmatch(r"[a-z0-9]{1,10}", parts[2]):
            out.setdefault(parts[1], parts[2])
    return out
