"""The socket-proxy guard: an HTTP server on the proxy's internal network that reads each Docker API request
whole (bounded), has ``proxy_policy`` judge it, and forwards only what the policy re-serialised to the socket.

Standard library only (Python 3.8+): hostprep hands this file and the policy to a container in environment
variables (the override stays the one file written) and runs ``python3 -I`` on them there.
Responses are streamed as they come (attach, logs and wait are never buffered); an attach that the daemon
upgrades (101) becomes a two-way byte pipe. Each request gets its own connection to the daemon
(``Connection: close``), so what the daemon sees is exactly one judged request.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys
import threading
from typing import Any, Mapping, Optional, Tuple

if __package__:
    from hostprep.strategies import proxy_policy as pp
else:   # in the guard container: the policy sits beside this file (python3 -I puts no folder on sys.path)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import proxy_policy as pp  # type: ignore[no-redef]

SOCKET = "/var/run/docker.sock"
HEAD_TIMEOUT = 60.0        # a client has this long to send a request head and body (slow clients are cut)
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_LINE = re.compile(rb"([A-Z]{1,10}) (/[\x21-\x7e]*) HTTP/1\.[01]")
PHRASES = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 413: "Payload Too Large",
           502: "Bad Gateway", 504: "Gateway Timeout"}


class BadRequest(Exception):
    pass


class Reader:
    """Buffered, bounded reads from a client socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf = sock, b""

    def _more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise BadRequest("the client closed the connection")
        self.buf += data

    def head(self) -> bytes:
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > pp.MAX_HEAD:
                raise BadRequest("the request head is too large")
            self._more()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return head

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if len(self.buf) > 4096:
                raise BadRequest("a chunk line is too long")
            self._more()
        out, _, self.buf = self.buf.partition(b"\r\n")
        return out

    def chunked(self) -> bytes:
        body = b""
        while True:
            size = self.line().split(b";", 1)[0].strip()
            if not re.fullmatch(rb"[0-9A-Fa-f]{1,8}", size):
                raise BadRequest("a chunk size is not hexadecimal")
            n = int(size, 16)
            if len(body) + n > pp.MAX_BODY:
                raise BadRequest(f"the body is larger than {pp.MAX_BODY} bytes")
            if n == 0:
                while self.line():   # trailers: read and dropped
                    pass
                return body
            body += self.exact(n)
            if self.exact(2) != b"\r\n":
                raise BadRequest("a chunk does not end with CRLF")


def parse_head(head: bytes) -> Tuple[str, str, pp.Headers]:
    """(method, target, headers): the request line and each header strictly, names lower-cased."""
    lines = head.split(b"\r\n")
    m = _LINE.fullmatch(lines[0])
    if not m:
        raise BadRequest("the request line is not METHOD /target HTTP/1.x")
    headers = []
    for raw in lines[1:]:
        name, sep, value = raw.partition(b":")
        if not sep or not _TOKEN.fullmatch(name) or b"\n" in value or b"\r" in value or b"\0" in value:
            raise BadRequest("a header line is malformed")
        headers.append((name.decode("ascii").lower(), value.strip(b" \t").decode("latin-1")))
    return m.group(1).decode(), m.group(2).decode("ascii"), tuple(headers)


def log(text: str) -> None:
    """One line to the container's log (``docker logs`` of the guard): the guard is its own program's edge."""
    os.write(2, (text.replace("\n", " ") + "\n").encode("utf-8", "replace"))


def answer(sock: socket.socket, status: int, message: str) -> None:
    """A refusal the Docker CLI and docker-py show as they show the daemon's own errors."""
    # "403 Forbidden: ..." in the message too: the Docker CLI prints only the message, and tools match the status
    body = json.dumps({"message": f"{status} {PHRASES.get(status, 'Error')}: {message}"}).encode()
    sock.sendall(f"HTTP/1.1 {status} {PHRASES.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)


def daemon(timeout: Optional[float]) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(SOCKET)
    return s


_KNOWN: "dict[str, Tuple[str, Mapping[str, str]]]" = {}   # full id -> (id, labels): labels never change
_FULL_ID = re.compile(r"[0-9a-f]{64}")


def lookup(ref: str) -> Optional[Tuple[str, Mapping[str, str]]]:
    """(full id, labels) of container ``ref``, or None if the daemon has none by that name. Asked by full id
    it is remembered: a container's labels are fixed at create and an id is never reused (a name can be)."""
    if ref in _KNOWN:
        return _KNOWN[ref]
    found = _inspect(ref)
    if found is not None and _FULL_ID.fullmatch(ref) and found[0] == ref:
        if len(_KNOWN) > 4096:
            _KNOWN.clear()
        _KNOWN[ref] = found
    return found


def _inspect(ref: str) -> Optional[Tuple[str, Mapping[str, str]]]:
    s = daemon(30.0)
    try:
        s.sendall(f"GET /containers/{ref}/json HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while len(data) < 8 << 20:
            part = s.recv(65536)
            if not part:
                break
            data += part
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
    if status == b"404":
        return None
    if status != b"200":
        raise RuntimeError(f"inspect answered {status!r}")
    if b"transfer-encoding: chunked" in head.lower():
        body = _unchunk(body)
    info: Any = json.loads(body)
    labels = (info.get("Config") or {}).get("Labels") or {}
    return str(info.get("Id", "")), {str(k): str(v) for k, v in labels.items()}


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size, _, rest = data.partition(b"\r\n")
        n = int(size.split(b";")[0] or b"0", 16)
        if n == 0:
            break
        out, data = out + rest[:n], rest[n + 2:]
    return out


def pipe(src: socket.socket, dst: socket.socket) -> None:
    """Copy until ``src`` ends; then tell ``dst`` no more is coming."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def forward(client: socket.socket, reader: Reader, v: pp.Verdict, timeout: float) -> None:
    """Send the judged request to the daemon and stream its answer back."""
    try:
        up = daemon(None if v.long else timeout)
    except OSError as exc:
        answer(client, 502, f"hostprep's proxy cannot reach Docker: {exc}")
        return
    try:
        conn = "Connection: Upgrade\r\nUpgrade: tcp\r\n" if v.upgrade else "Connection: close\r\n"
        extra = "".join(f"{k.title()}: {val}\r\n" for k, val in v.headers)
        up.sendall(f"{v.method} {v.target} HTTP/1.1\r\nHost: docker\r\n{extra}{conn}"
                   f"Content-Length: {len(v.body)}\r\n\r\n".encode() + v.body)
        try:
            first = up.recv(65536)
        except socket.timeout:
            answer(client, 504, "Docker did not answer within hostprep_proxy_timeout")
            return
        client.sendall(first)
        if v.upgrade and first.startswith(b"HTTP/1.1 101"):
            up.settimeout(None)
            if reader.buf:
                up.sendall(reader.buf)
            t = threading.Thread(target=pipe, args=(client, up), daemon=True)
            t.start()
        pipe(up, client)
    finally:
        up.close()


def handle(client: socket.socket, policy: pp.Policy, timeout: float) -> None:
    reader = Reader(client)
    try:
        client.settimeout(HEAD_TIMEOUT)
        method, target, headers = parse_head(reader.head())
        try:
            n = pp.framing(headers)
            pp.header(headers, "expect")
        except pp.Refused as exc:
            answer(client, exc.status, exc.reason)
            return
        if (pp.header(headers, "expect") or "").lower() == "100-continue" and n:
            client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")   # curl waits for it before a large body
        body = reader.chunked() if n < 0 else reader.exact(n)
        client.settimeout(None)
        v = pp.judge(pp.Request(method, target, headers, body), policy, lookup)
        if not v.allowed:
            log(f"refused {method} {target[:200]}: {v.reason}")
            answer(client, v.status, v.reason)
            return
        forward(client, reader, v, timeout)
    except (BadRequest, UnicodeError) as exc:
        try:
            answer(client, 400, f"hostprep's proxy: {exc}")
        except OSError:
            pass
    except OSError:
        pass
    finally:
        client.close()


def main() -> None:
    policy = pp.Policy.from_json(os.environ["HOSTPREP_GUARD_POLICY"])
    timeout = float(os.environ.get("HOSTPREP_GUARD_TIMEOUT", "3600"))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((os.environ.get("HOSTPREP_GUARD_ADDR", "0.0.0.0"), int(os.environ.get("HOSTPREP_GUARD_PORT", "2375"))))
    srv.listen(128)
    log(f"hostprep guard: listening, owner {policy.owner}, binds {list(policy.binds)}")
    while True:
        client, _ = srv.accept()
        threading.Thread(target=handle, args=(client, policy, timeout), daemon=True).start()


if __name__ == "__main__":
    main()
