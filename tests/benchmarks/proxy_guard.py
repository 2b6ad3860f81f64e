"""socket-proxy: 1,000 create/inspect/delete cycles through today's path-only proxy (haproxy) and through the
guard, side by side, on one lab host (issue 25, 6: the guard adds at most 2 ms median per call).

A figure to read, not a timed test. The lab host must be up (``HOSTPREP_LAB_PREFIX`` / ``_PORT_BASE`` as for
the lab tests):

    PYTHONPATH=. HOSTPREP_LAB_PREFIX=hp-h7 HOSTPREP_LAB_PORT_BASE=2900 python3 tests/benchmarks/proxy_guard.py [N]

The client runs in a container on the proxy's internal network (where the worker's tasks talk from), one
HTTP/1.1 connection per call as docker-py's ``Connection: close`` answers make it; it prints the median and
95th percentile of each call in milliseconds, and the machine's load average before and after.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hostprep.change import provision as prov
from hostprep.strategies.socket_proxy import NETWORK
from tests.integration.conftest import connect, entry
from tests.lab import docker_proxy, lab
from hostprep.fleet.validate import host_settings

HOST = "lab1"
CLIENT = r'''
import json, socket, statistics, sys, time
n = int(sys.argv[1]); times = {"create": [], "inspect": [], "delete": []}
def call(method, path, body=b""):
    s = socket.create_connection(("hostprep-docker-proxy", 2375), 10)
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    data = b""
    while True:
        part = s.recv(65536)
        if not part: break
        data += part
    s.close(); head, _, rest = data.partition(b"\r\n\r\n"); return int(head.split()[1]), rest
body = json.dumps({"Image": "hostprep-lab/airflow-base:latest", "Cmd": ["true"]}).encode()
for i in range(n):
    t = time.perf_counter(); st, rest = call("POST", "/v1.41/containers/create", body); times["create"].append(time.perf_counter() - t)
    assert st == 201, (st, rest[:200]); cid = json.loads(rest.split(b"\r\n")[1] if rest[:1] != b"{" else rest)["Id"]
    t = time.perf_counter(); st, _ = call("GET", f"/v1.41/containers/{cid}/json"); times["inspect"].append(time.perf_counter() - t)
    t = time.perf_counter(); st, _ = call("DELETE", f"/v1.41/containers/{cid}"); times["delete"].append(time.perf_counter() - t)
def ms(xs): xs = sorted(xs); return round(statistics.median(xs) * 1000, 2), round(xs[int(len(xs) * 0.95)] * 1000, 2)
print(json.dumps({k: ms(v) for k, v in times.items()}))
'''


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run(h: lab.LabHost, n: int, **extra: object) -> dict[str, list[float]]:
    settings = host_settings({**entry(HOST).vars, "hostprep_strategy": "socket-proxy", **extra})
    with connect(HOST) as t:
        report = prov.provision(t, settings, prov.Options())
    assert report.status in ("changed", "ok"), report.error
    out = h.exec(f"docker run --rm --network airflow_{NETWORK} {docker_proxy.GUARD_IMAGE} python3 -I -c "
                 f"'{CLIENT.replace(chr(39), chr(34))}' {n}")
    result: dict[str, list[float]] = json.loads(out.strip().split("\n")[-1])
    return result


def main(n: int) -> None:
    h = next(x for x in lab.hosts(2, 0) if x.name == HOST)
    docker_proxy.build()
    docker_proxy.load_into(h)
    print(f"load average before: {load()}")
    paths = run(h, n, hostprep_proxy_guard=False)
    guard = run(h, n)
    print(f"load average after: {load()}")
    print(f"{n} create/inspect/delete cycles on {HOST}; milliseconds per call, median / p95")
    print(f"{'call':8} {'path-only (haproxy)':>22} {'guard':>16} {'added (median)':>15}")
    for call in ("create", "inspect", "delete"):
        print(f"{call:8} {paths[call][0]:>10} / {paths[call][1]:<9} {guard[call][0]:>7} / {guard[call][1]:<6} "
              f"{guard[call][0] - paths[call][0]:>+12.2f}")
    with connect(HOST) as t:
        prov.rollback(t, host_settings(entry(HOST).vars))
        prov.rollback(t, host_settings(entry(HOST).vars))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
