"""The audit's textfile in a real Prometheus: Debian's node exporter serves `hostprep audit --prom` output,
a real `prometheus` scrapes it with contrib/prometheus/hostprep.rules.yml, and drift planted on lab1 by
hand makes the critical-drift alert go pending.

Both daemons listen on 127.0.0.1 only (free ports), keep everything under tmp_path, know no other target
(no Alertmanager, no remote write), and are started and stopped by this test by PID.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from tests.integration.conftest import Pristine
from tests.lab import lab

RULES = lab.REPO / "contrib" / "prometheus" / "hostprep.rules.yml"
DASHBOARD = lab.REPO / "contrib" / "prometheus" / "hostprep-grafana-dashboard.json"
T = TypeVar("T")


def hostprep(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hostprep", *args, "--inventory", str(lab.INVENTORY)],
                          capture_output=True, text=True, cwd=lab.REPO, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(lab.REPO)})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def started(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A daemon of this test's own, ended by its PID however the test ends."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            yield proc
        finally:
            proc.terminate()
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
            proc.kill()   # only if it is still there (Popen does not signal a reaped PID)
            proc.wait()


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as reply:   # noqa: S310 - 127.0.0.1 only
        return json.loads(reply.read())


def wait_for(what: str, probe: Callable[[], T | None], procs: list[subprocess.Popen[bytes]], logs: list[Path],
             timeout: float = 40) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), "a daemon died:\n" + "\n".join(x.read_text()[-2000:] for x in logs)
        try:
            found = probe()
        except OSError:
            found = None
        if found is not None:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}:\n" + "\n".join(x.read_text()[-2000:] for x in logs))


def prometheus_config(tmp_path: Path, exporter: int) -> Path:
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({   # JSON is YAML: no YAML writer needed
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "hostprep", "static_configs": [{"targets": [f"127.0.0.1:{exporter}"]}]}],
    }))
    return config


def test_drift_planted_on_lab1_makes_the_critical_drift_alert_go_pending_in_a_real_prometheus(
        pristine: Pristine, tmp_path: Path) -> None:
    host = pristine("lab1")
    done = hostprep("provision", "--host", "lab1")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    textfiles = tmp_path / "textfile"
    prom_file = textfiles / "hostprep_audit.prom"
    clean = hostprep("audit", "--host", "lab1", "--prom", str(prom_file), "--every", "1m")
    assert clean.returncode == 0, clean.stdout + clean.stderr

    exporter, web = free_port(), free_port()
    logs = [tmp_path / "node-exporter.log", tmp_path / "prometheus.log"]
    with started(["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{exporter}",
                  "--collector.disable-defaults", "--collector.textfile",
                  f"--collector.textfile.directory={textfiles}"], logs[0]) as node, \
            started(["prometheus", f"--config.file={prometheus_config(tmp_path, exporter)}",
                     f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{web}",
                     f"--web.console.templates={tmp_path}", f"--web.console.libraries={tmp_path}"], logs[1]) as prom:
        api, procs = f"http://127.0.0.1:{web}/api/v1", [node, prom]

        def query(expr: str) -> list[dict[str, Any]]:
            return list(get(f"{api}/query?query={urllib.parse.quote(expr)}")["data"]["result"])

        def drift_alerts() -> list[dict[str, Any]]:
            return [a for a in get(f"{api}/alerts")["data"]["alerts"]
                    if a["labels"]["alertname"] == "HostprepCriticalDrift" and a["labels"].get("host") == "lab1"]

        seen = wait_for("the clean audit scraped", lambda: query('hostprep_host_reachable{host="lab1"} == 1') or None,
                        procs, logs)
        assert seen[0]["metric"]["job"] == "hostprep"
        rules = get(f"{api}/rules")["data"]["groups"]
        assert {g["name"] for g in rules} == {"hostprep.recording", "hostprep.alerts"}
        assert all(r["health"] == "ok" for g in rules for r in g["rules"]), rules
        assert query('hostprep_drift_findings{host="lab1"}')[0]["value"][1] == "0"
        assert drift_alerts() == []

        host.exec("chmod 666 /var/run/docker.sock")   # by hand, as someone "fixing" Docker access would
        drift = hostprep("audit", "--host", "lab1", "--prom", str(prom_file), "--every", "1m")
        assert drift.returncode == 2, drift.stdout + drift.stderr
        assert 'id="socket-world-writable",severity="critical"} 1' in prom_file.read_text()

        alert = wait_for("HostprepCriticalDrift on lab1", lambda: drift_alerts() or None, procs, logs)
        assert [(a["state"], a["labels"]["id"], a["labels"]["severity"]) for a in alert] == \
            [("pending", "socket-world-writable", "critical")]
        assert "lab1: critical drift (socket-world-writable)" == alert[0]["annotations"]["summary"]
        recorded = wait_for("the recording rule's sum", lambda: query(   # its own group, evaluated on its own tick
            'severity:hostprep_drift_finding:sum{severity="critical"}') or None, procs, logs)
        assert recorded[0]["value"][1] == "1"
        panels = json.loads(DASHBOARD.read_text())["panels"]
        answers = {p["title"]: [query(t["expr"]) for t in p["targets"]] for p in panels}
        assert all(rows for per_panel in answers.values() for rows in per_panel), answers   # every panel has data
        assert answers["Hosts with critical drift"][0][0]["value"][1] == "1"
    assert node.returncode is not None and prom.returncode is not None
