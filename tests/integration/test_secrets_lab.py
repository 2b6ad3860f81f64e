"""Issue 12, finding 5 on the lab: a project whose .env holds every kind of credential is provisioned,
drifts, is audited, fixed, refused and rolled back, and not one credential shows in any output.

"Any output": stdout and stderr of every command (text and --json), the audit's report files
(audit.json, JUnit, .prom, the --json-file), the audit history (files and `audit.history`), the
snapshot listing, and the error a failed apply reports. Snapshots keep the real bytes (0600 on the
controller, root-only on the host) so rollback restores them byte for byte.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

from tests.integration.test_hostile_host_lab import hostile, hostprep, owner_writes
from tests.lab import lab

# Each secret starts with Zq7: a marker no output of hostprep holds, so any match is a leak.
SECRETS = {
    "www": "Zq7www-hunter2",
    "db": "Zq7db-p@ss/w0rd",                 # '@' and '/' inside a URI password
    "broker": "Zq7broker-redis",
    "fernet": "Zq7fernetZmVybmV0a2V5PQ==",
    "jwt": "Zq7jwt-secret",
    "aws": "Zq7awsWJALRXUTNFEMIK7MDENG",
    "conn": "Zq7conn-json-password",
    "pip": "Zq7ghp0123456789abcdefABCDEF",     # a token as a URI's user
    "pem": "Zq7pemb3BlbnNzaC1rZXktdjEAAAAA",   # the body of a multi-line private key
    "new": "Zq7new-rotated-password",          # what the owner rotates to later
}

ENV = f"""AIRFLOW_UID=50000
_AIRFLOW_WWW_USER_USERNAME=admin
_AIRFLOW_WWW_USER_PASSWORD={SECRETS["www"]}
AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://airflow:{SECRETS["db"]}@postgres/airflow
AIRFLOW__CELERY__BROKER_URL=redis://:{SECRETS["broker"]}@redis:6379/0
AIRFLOW__CORE__FERNET_KEY={SECRETS["fernet"]}
AIRFLOW__API_AUTH__JWT_SECRET={SECRETS["jwt"]}
AWS_SECRET_ACCESS_KEY={SECRETS["aws"]}
AIRFLOW_CONN_METADATA='{{"conn_type": "postgres", "login": "airflow", "password": "{SECRETS["conn"]}"}}'
_PIP_ADDITIONAL_REQUIREMENTS=git+https://{SECRETS["pip"]}@github.com/acme/operators.git
SSH_PRIVATE_KEY="-----BEGIN OPENSSH PRIVATE KEY-----
{SECRETS["pem"]}
-----END OPENSSH PRIVATE KEY-----"
"""


def leaks(text: str) -> list[str]:
    """The secrets found in ``text``: whole, by their marker, or as the base64 of the .env."""
    found = [k for k, v in SECRETS.items() if v in text]
    return found + (["marker Zq7"] if "Zq7" in text else []) + \
        (["env as base64"] if base64.b64encode(ENV.encode()).decode()[:40] in text else [])


def shown(run: subprocess.CompletedProcess[str]) -> str:
    return run.stdout + run.stderr


def test_a_project_full_of_credentials_shows_none_of_them_in_any_output(
        lab_hosts: dict[str, lab.LabHost], tmp_path: Path) -> None:
    h = hostile("lab1")
    owner_writes(h, ".env", ENV)
    state, reports = tmp_path / "state", tmp_path / "reports"
    out: list[str] = []

    def run(*args: str, code: int = 0) -> str:
        r = hostprep(*args, state=state)
        assert r.returncode == code, f"{args}: exit {r.returncode}\n{r.stdout[-1500:]}\n{r.stderr[-800:]}"
        out.append(shown(r))
        return shown(r)

    for fmt in ((), ("--json",)):
        run("facts", "--host", "lab1", *fmt)
        run("audit", "--host", "lab1", "--deep", *fmt, code=2)                # never applied: drift
    check = run("provision", "--host", "lab1", "--check")
    assert "_AIRFLOW_WWW_USER_PASSWORD" not in check or "PASSWORD=********" in check
    assert "+COMPOSE_FILE=docker-compose.yaml:docker-compose.hostprep.yml" in check   # the change itself shows
    run("provision", "--host", "lab1", "--check", "--json")
    run("provision", "--host", "lab1")
    run("audit", "--host", "lab1", "--deep", "--report-dir", str(reports), "--json-file", str(tmp_path / "a.json"))

    # the owner rotates a password and drops COMPOSE_FILE: drift, a diff full of credentials, a fix
    env = h.exec("cat /opt/airflow/.env")
    owner_writes(h, ".env", "".join(ln for ln in env.replace(SECRETS["www"], SECRETS["new"]).splitlines(keepends=True)
                                    if not ln.startswith("COMPOSE_FILE=")))
    run("audit", "--host", "lab1", "--report-dir", str(reports), code=2)
    diff = run("provision", "--host", "lab1", "--check")
    assert "+COMPOSE_FILE=" in diff
    run("audit", "--host", "lab1", "--fix", "--json", "--report-dir", str(reports))
    for fmt in ((), ("--json",)):
        run("snapshots", "--host", "lab1", *fmt)
        run("audit.history", *fmt)

    # a compose file that quotes a credential in its own error: the apply fails, the error is masked
    compose = h.exec("cat /opt/airflow/docker-compose.yaml")
    sock = "    - /var/run/docker.sock:/var/run/docker.sock\n"
    assert sock in compose
    owner_writes(h, "docker-compose.yaml", compose.replace(sock, sock + '    - "${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN}:/x:zz"\n'))
    env = h.exec("cat /opt/airflow/.env")
    owner_writes(h, ".env", "".join(ln for ln in env.splitlines(keepends=True) if not ln.startswith("COMPOSE_FILE=")))
    failed = run("provision", "--host", "lab1", code=2)
    assert "invalid spec: postgresql+psycopg2://airflow:********@postgres/airflow" in failed, failed[-1500:]
    # the automatic rollback's compose fails the same way: said so, and the host lock is not left held
    assert "automatic rollback FAILED" in failed
    assert h.exec("ls /var/lib/hostprep/lock 2>/dev/null || echo released") == "released\n"
    owner_writes(h, "docker-compose.yaml", compose)

    # the latest snapshot was taken while the compose file was broken; the owner repaired it since, so
    # the rollback says the host differs from it (an error full of hashes, no credential)
    run("rollback", "--host", "lab1", "--json", code=2)
    first = sorted((state / "hosts" / "lab1" / "snapshots").glob("*.json"))[0].stem
    run("rollback", "--host", "lab1", "--snapshot", first)
    assert h.exec("cat /opt/airflow/.env") == ENV

    files = [p for p in [*reports.iterdir(), tmp_path / "a.json", *state.rglob("*.jsonl")] if p.is_file()]
    assert len(files) >= 5
    everything = "".join(out) + "".join(p.read_text() for p in files)
    assert leaks(everything) == [], [(k, everything[max(0, everything.find(v) - 200):everything.find(v) + 50])
                                     for k, v in SECRETS.items() if v in everything]
    assert "********" in everything

    # the snapshots hold the real bytes, private; the host has the owner's .env back byte for byte
    snaps = sorted((state / "hosts" / "lab1" / "snapshots").glob("*.json"))
    assert snaps and all(oct(p.stat().st_mode & 0o777) == "0o600" for p in snaps)
    first = json.loads(snaps[0].read_text())
    assert base64.b64decode(first["files"]["/opt/airflow/.env"]["content_b64"]).decode() == ENV
    assert h.exec("stat -c '%a %U' /var/lib/hostprep/snapshots") == "700 root\n"
